/**
 * Colour only where a person reads it: on a terminal, unless NO_COLOR is set (no-color.org);
 * FORCE_COLOR turns it on anywhere (or off with 0/false). chalk's own detection ignores NO_COLOR,
 * hence this small rule of our own.
 */
import chalk from 'chalk';

export function colorLevel(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): 0 | 1 | 2 | 3 {
  const force = env.FORCE_COLOR;
  if (force !== undefined) {
    if (force === 'false' || force === '0') return 0;
    if (force === '' || force === 'true') return 1;
    return Math.min(3, Math.max(1, parseInt(force, 10) || 1)) as 1 | 2 | 3;
  }
  if (env.NO_COLOR !== undefined && env.NO_COLOR !== '') return 0;
  return stream.isTTY && env.TERM !== 'dumb' ? 1 : 0;
}

export function colorsFor(stream: { readonly isTTY?: boolean }, env: NodeJS.ProcessEnv = process.env): chalk.Chalk {
  return new chalk.Instance({ level: colorLevel(stream, env) });
}
