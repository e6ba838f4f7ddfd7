/**
 * The PyTorch version of the lesson, run as a child process for `bench --reference`: whether the
 * interpreter can run it, the environment it runs in, and the one result line it prints.
 *
 * Apart from the CLI because it is Node shell work (spawning Python, reading its output), not
 * option wiring: the command only decides when to call it and how to print what comes back.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Cell, Impl } from '../core/config';

/** The package root: the reference script's default path is relative to it, not to the cwd. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..');
export const DEFAULT_REFERENCE_SCRIPT = path.resolve(PACKAGE_ROOT, '..', 'shared', 'reference', 'seed_lstm.py');
/** The series' script (every cell, stacked layers), beside seed_lstm.py unless named. */
export const SERIES_SCRIPT_NAME = 'series.py';
/**
 * Set on these machines and slowing OpenBLAS down (a wrong core type, a small L2): removed from the
 * reference child's environment only, never from ours.
 */
export const OPENBLAS_VARS_UNSET = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;

/** The reference script's last line, parsed (and its GEN line, when it timed generation). */
export interface ReferenceResult {
  readonly impl: string;
  /** series.py names its cell and layers; seed_lstm.py is the one-layer LSTM and says neither. */
  readonly cell?: string;
  readonly layers?: number;
  readonly vocab: number;
  readonly epochs: number;
  readonly medianEpochSeconds: number;
  /** seed_lstm.py only; series.py does not print it. */
  readonly totalSeconds?: number;
  readonly finalPerplexity: number;
  /** `GEN chars_per_s=...`: greedy generation after training, when asked for. */
  readonly generateCharsPerSecond?: number;
}

/** `KEY=value KEY=value` after a line's first word, as an object. */
function fieldsOf(line: string): Record<string, string> {
  return Object.fromEntries(
    line
      .trim()
      .split(/\s+/)
      .slice(1)
      .map((kv) => kv.split('=', 2)),
  );
}

/** The last line of `stdout` that starts with `word `. */
function lastLine(stdout: string, word: string): string | undefined {
  return stdout
    .split('\n')
    .reverse()
    .find((l) => l.startsWith(`${word} `));
}

/**
 * Parses `RESULT impl=... vocab=... ...` from the reference script's output (its last such line),
 * and `GEN chars_per_s=...` if there is one. Fields a script does not print are left out, not NaN,
 * so that --json never carries a null that looks like a failed measurement.
 */
export function parseResultLine(stdout: string): ReferenceResult | undefined {
  const line = lastLine(stdout, 'RESULT');
  if (!line) return undefined;
  const f = fieldsOf(line);
  const num = (k: string) => Number(f[k]);
  const gen = lastLine(stdout, 'GEN');
  const genRate = gen === undefined ? NaN : Number(fieldsOf(gen).chars_per_s);
  const result: ReferenceResult = {
    impl: f.impl,
    ...(f.cell !== undefined && { cell: f.cell }),
    ...(f.layers !== undefined && { layers: num('layers') }),
    vocab: num('vocab'),
    epochs: num('epochs'),
    medianEpochSeconds: num('median_epoch_s'),
    ...(f.total_s !== undefined && { totalSeconds: num('total_s') }),
    finalPerplexity: num('final_perplexity'),
    ...(Number.isFinite(genRate) && { generateCharsPerSecond: genRate }),
  };
  return result.impl && Number.isFinite(result.medianEpochSeconds) ? result : undefined;
}

/**
 * Whether `python` can run the reference: undefined when it can, else why not (one line).
 * Checked before training, so a missing interpreter costs seconds, not a whole benchmark.
 * `scripts`: the script (named by --reference-script), or each script the run needs with the flag
 * that names it.
 */
export function referenceProblem(
  python: string,
  scripts: string | readonly { readonly path: string; readonly flag: string }[],
): string | undefined {
  const needed = typeof scripts === 'string' ? [{ path: scripts, flag: 'reference-script' }] : scripts;
  const missing = needed.find((s) => !fs.existsSync(s.path));
  if (missing) return `${missing.path} not found (see --${missing.flag})`;
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', env: referenceEnv() });
  if (probe.error) return `cannot run ${python}: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message} (see --python)`;
  if (probe.status !== 0) {
    return `${python} cannot import torch: PyTorch is not installed for it; see README, 'lstm-lyrics bench' (--reference, --python)`;
  }
  return undefined;
}

/** Our environment without OPENBLAS_VARS_UNSET: for the reference child process only. */
export function referenceEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of OPENBLAS_VARS_UNSET) delete copy[name];
  return copy;
}

/** The two PyTorch scripts: the LSTM lesson itself, and the series (every cell, stacked layers). */
export interface ReferenceScripts {
  readonly python: string;
  /** seed_lstm.py: the one-layer LSTM, the numbers the project has always been compared with. */
  readonly lstm: string;
  /** series.py: the RNN and GRU lessons, and any cell stacked. */
  readonly series: string;
}

/**
 * What one reference run is: which script and its arguments. The one-layer LSTM stays on
 * seed_lstm.py, so that its comparison is the one measured before the series existed; every other
 * cell or depth runs series.py. REPORT_EVERY 1000 never samples text inside the timed epochs;
 * `genChars` > 0 times a greedy continuation after training (outside the epochs' times).
 */
export function referenceCommand(
  scripts: ReferenceScripts,
  run: { corpusPath: string; cell: Cell; impl: Impl; layers: number; epochs: number; genChars: number },
): string[] {
  const { corpusPath, cell, impl, layers, epochs, genChars } = run;
  if (cell === 'lstm' && layers === 1) return [scripts.lstm, corpusPath, impl, String(epochs), '1000', String(genChars)];
  return [scripts.series, corpusPath, cell, impl, String(epochs), '1000', String(layers), String(genChars)];
}

/** Runs the PyTorch lesson for `run.epochs` epochs (see referenceCommand) and parses its result. */
export function runReference(scripts: ReferenceScripts, run: Parameters<typeof referenceCommand>[1]): ReferenceResult {
  const argv = referenceCommand(scripts, run);
  const child = spawnSync(scripts.python, argv, { encoding: 'utf8', maxBuffer: 64 << 20, env: referenceEnv() });
  const result = child.status === 0 ? parseResultLine(child.stdout) : undefined;
  if (!result) {
    const why = child.error?.message ?? (child.stderr || child.stdout).trim().split('\n').slice(-3).join(' | ');
    const what = `${run.cell} ${run.impl}${run.layers > 1 ? `, ${run.layers} layers` : ''}`;
    throw new Error(`${argv[0]} (${what}) failed (exit ${child.status}): ${why}`);
  }
  return result;
}
