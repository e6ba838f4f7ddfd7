import { colorLevel } from '../src/terminal/colors';
import { progressFor } from '../src/terminal/progress';
import { spawnCli } from './helpers';

function fakeStream(isTTY: boolean) {
  const writes: string[] = [];
  return { isTTY, columns: 80, writes, write: (t: string) => writes.push(t) > 0 };
}

describe('progress bar', () => {
  it('draws on a terminal: epoch, batch, perplexity and ETA on one rewritten line', () => {
    const stream = fakeStream(true);
    const bar = progressFor(stream, {});
    bar.update(1, 10, 3, 8, 123.456);
    expect(stream.writes).toHaveLength(1);
    expect(stream.writes[0]).toMatch(/^\r\[#*\.*\] epoch 1\/10 batch 3\/8 {2}perplexity 123.46 {2}ETA /);
    bar.clear();
    expect(stream.writes.at(-1)).toBe('\r\x1b[K');
  });

  it.each([
    ['piped output', false, {}],
    ['CI, even on a terminal', true, { CI: 'true' }],
  ])('draws nothing for %s', (_what, isTTY, env) => {
    const stream = fakeStream(isTTY);
    const bar = progressFor(stream, env);
    bar.update(1, 10, 3, 8, 1);
    bar.clear();
    expect(stream.writes).toEqual([]);
  });
});

describe('colours', () => {
  it.each([
    ['a terminal', true, {}, 1],
    ['a pipe', false, {}, 0],
    ['a terminal with NO_COLOR', true, { NO_COLOR: '1' }, 0],
    ['a terminal with an empty NO_COLOR (means unset)', true, { NO_COLOR: '' }, 1],
    ['a pipe with FORCE_COLOR', false, { FORCE_COLOR: '1' }, 1],
    ['a pipe with FORCE_COLOR=3', false, { FORCE_COLOR: '3' }, 3],
    ['a terminal with FORCE_COLOR=0', true, { FORCE_COLOR: '0' }, 0],
    ['a dumb terminal', true, { TERM: 'dumb' }, 0],
  ])('on %s: level %#', (_what, isTTY, env, level) => {
    expect(colorLevel({ isTTY }, env as NodeJS.ProcessEnv)).toBe(level);
  });

  it("colour the CLI's error prefix only when forced on a pipe", () => {
    const plain = spawnCli(['train', '--corpus', 'nope.txt'], { env: { FORCE_COLOR: '0' } });
    expect(plain.stderr).toBe('lstm-lyrics: corpus not found: nope.txt\n');
    // FORCE_COLOR wins over the NO_COLOR spawnCli sets.
    const forced = spawnCli(['train', '--corpus', 'nope.txt'], { env: { FORCE_COLOR: '1' } });
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the ANSI escapes are what is tested
    expect(forced.stderr).toMatch(/^\x1b\[31m\x1b\[1mlstm-lyrics:/);
  });
});
