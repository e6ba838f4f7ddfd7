/**
 * Bad values are errors, never silently something else: --seed must be a whole number wherever it
 * exists (train, generate, compare), and a corpus needs two distinct characters (in the core, so
 * the page refuses it too). Each: exit 2, one line on stderr, nothing written.
 */
import * as path from 'node:path';
import { UsageError } from '../src/core/errors';
import { corpusFromText } from '../src/core/vocab';
import { REPETITIVE_LYRIC, TINY, runCli, snapshot, spawnCli, tempDir, useWasm, writeFile } from './helpers';

const cwd = tempDir();
const run = (args: string[]) => runCli(args, cwd);

beforeAll(async () => {
  await useWasm();
  writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);
  writeFile(cwd, 'breaks.txt', '\n\r\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n');
  writeFile(cwd, 'one.txt', '啊'.repeat(150)); // under TINY's --max-chars 200
  writeFile(cwd, 'late.txt', `${'啊'.repeat(300)}不分开`);
  const r = await run(['train', ...TINY, '--corpus', 'song.txt', '--out', 'models/s']);
  if (r.code !== 0) throw new Error(r.err.join('\n'));
});

const commands: [string, string[]][] = [
  ['train', ['train', ...TINY, '--corpus', 'song.txt', '--out', 'models/t']],
  ['generate', ['generate', '--model', 'models/s', '--prefix', '分开', '--temperature', '1', '--backend', 'wasm']],
  ['compare', ['compare', ...TINY, '--corpus', 'song.txt', '--out', 'cmp']],
];

describe('--seed must be a whole number >= 0', () => {
  it.each(
    commands.flatMap(([name, args]) => ['abc', '1.5', 'NaN', '-1', '1e300'].map((seed): [string, string, string[]] => [name, seed, args])),
  )('%s --seed %s: exit 2, one line, nothing written', async (_name, seed, args) => {
    const before = snapshot(cwd);
    const r = await run([...args, '--seed', seed]);
    const shown = seed === 'abc' || seed === 'NaN' ? 'not a number' : seed === '1e300' ? '1e+300' : seed;
    expect({ code: r.code, err: r.err, out: r.out }).toEqual({
      code: 2,
      err: [`lstm-lyrics: --seed must be a whole number >= 0, got ${shown}`],
      out: [],
    });
    expect(snapshot(cwd)).toEqual(before);
  });

  it('a whole --seed repeats the same sampled text', async () => {
    const args = [...commands[1][1], '--length', '30', '--seed', '12'];
    const a = await run(args);
    expect(a.code).toBe(0);
    expect((await run(args)).out).toEqual(a.out);
  });
});

describe('a corpus needs at least two distinct characters', () => {
  it.each([
    [
      'only line breaks',
      'breaks.txt',
      [],
      /^lstm-lyrics: corpus needs at least two distinct characters, has one \(line breaks count as spaces\): breaks.txt$/,
    ],
    ['one character repeated', 'one.txt', [], /has one \(line breaks count as spaces\): one.txt$/],
    [
      'one character in the first --max-chars',
      'late.txt',
      ['--max-chars', '200'],
      /has one in its first 200 \(line breaks count as spaces\)/,
    ],
  ])('train on %s: exit 2, one line, no model written', async (_what, file, extra, pattern) => {
    const before = snapshot(cwd);
    const r = await run(['train', ...TINY, '--corpus', file, '--out', 'models/x', ...extra]);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([expect.stringMatching(pattern)]);
    expect(snapshot(cwd)).toEqual(before);
  });

  it('the corpus command says so too', async () => {
    const r = await run(['corpus', 'info', 'one.txt']);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([expect.stringMatching(/corpus needs at least two distinct characters/)]);
  });

  it('in the core, so the page refuses it the same way', () => {
    expect(() => corpusFromText('\n\n\n', 0, 'x', 'dropped.txt')).toThrow(UsageError);
    expect(() => corpusFromText('aaaa', 0, 'x')).toThrow(/at least two distinct characters/);
    expect(corpusFromText('ab', 0, 'x').vocab.chars).toEqual(['a', 'b']);
  });

  it('a real process exits 2 with the one line', () => {
    const r = spawnCli(['train', '--corpus', path.join(cwd, 'breaks.txt'), '--out', path.join(cwd, 'models/y'), '--backend', 'wasm'], {
      timeout: 60_000,
    });
    expect(r.status).toBe(2);
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^lstm-lyrics: corpus needs at least two distinct characters/)]);
  });
});
