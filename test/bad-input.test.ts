/**
 * Bad input of every kind: a one-line error on stderr, exit 2, and no saved model touched.
 * Runs the CLI in process (test/cli.test.ts checks that a real process exits with the same code).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPETITIVE_LYRIC, TINY, runCli, snapshot as snapshotOf, tempDir, useWasm, writeFile, writeZip } from './helpers';

const cwd = tempDir();
const run = (args: string[]) => runCli(args, cwd);

/** Every file (with its hash) and directory under models/: must be identical after each bad command. */
const snapshot = () => snapshotOf(path.join(cwd, 'models'));

function copyModel(from: string, to: string, spoil: (dir: string) => void): void {
  fs.cpSync(path.join(cwd, from), path.join(cwd, to), { recursive: true });
  spoil(path.join(cwd, to));
}

beforeAll(async () => {
  await useWasm();
  writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);
  writeFile(cwd, 'empty.txt', '');
  writeFile(cwd, 'short.txt', '分开不分开');
  writeFile(cwd, 'binary.txt', Buffer.from([0xc3, 0x28, 0xa0, 0xa1]));
  writeFile(cwd, 'fake.zip', 'this is not a zip');
  writeZip(cwd, 'no-text.zip', { 'notes.md': 'x' });
  writeZip(cwd, 'two-texts.zip', { 'a.txt': REPETITIVE_LYRIC, 'b.txt': REPETITIVE_LYRIC });
  for (const impl of ['scratch', 'builtin']) {
    const r = await run(['train', ...TINY, '--impl', impl, '--corpus', 'song.txt', '--out', `models/${impl}`]);
    if (r.code !== 0) throw new Error(r.err.join('\n'));
  }
  const truncate = (file: string) => (dir: string) => {
    const p = path.join(dir, file);
    fs.writeFileSync(p, fs.readFileSync(p).subarray(0, 100));
  };
  copyModel('models/builtin', 'models/truncated-model-json', truncate('model.json'));
  copyModel('models/builtin', 'models/truncated-weights', truncate('weights.bin'));
  copyModel('models/scratch', 'models/truncated-scratch-weights', truncate('weights.bin'));
  copyModel('models/scratch', 'models/corrupt-checkpoint', truncate('checkpoint.json'));
  copyModel('models/scratch', 'models/future-format', (dir) => {
    const p = path.join(dir, 'checkpoint.json');
    fs.writeFileSync(p, fs.readFileSync(p, 'utf8').replace('"lstm-lyrics/1"', '"lstm-lyrics/9"'));
  });
  copyModel('models/scratch', 'models/missing-weights', (dir) => fs.rmSync(path.join(dir, 'weights.bin')));
});

const train = (...args: string[]) => ['train', ...TINY, '--corpus', 'song.txt', '--out', 'models/scratch', ...args];
const generate = (...args: string[]) => ['generate', '--prefix', '分开', '--backend', 'wasm', ...args];

const cases: [string, string[], RegExp][] = [
  ['a missing corpus', train('--corpus', 'nope.txt'), /corpus not found: nope.txt/],
  ['a corpus that is not UTF-8', train('--corpus', 'binary.txt'), /binary.txt is not UTF-8 text/],
  ['a .zip that is not a zip', train('--corpus', 'fake.zip'), /fake.zip is not a valid zip file/],
  ['a zip without a .txt entry', train('--corpus', 'no-text.zip'), /holds no .txt entry/],
  [
    'a zip with several .txt entries and no --entry',
    train('--corpus', 'two-texts.zip'),
    /several .txt entries \(a.txt, b.txt\); pick one with --entry/,
  ],
  ['an empty corpus', train('--corpus', 'empty.txt'), /corpus is empty/],
  ['a corpus too short for batch-size x num-steps', train('--corpus', 'short.txt'), /corpus too short: 5 characters/],
  ...['epochs', 'batch-size', 'num-steps', 'hidden'].flatMap((flag): [string, string[], RegExp][] => [
    [`zero --${flag}`, train(`--${flag}`, '0'), new RegExp(`--${flag} must be a whole number >= 1, got 0`)],
    [`negative --${flag}`, train(`--${flag}`, '-3'), new RegExp(`--${flag} must be a whole number >= 1, got -3`)],
    [`fractional --${flag}`, train(`--${flag}`, '1.5'), new RegExp(`--${flag} must be a whole number >= 1, got 1.5`)],
    [`non-numeric --${flag}`, train(`--${flag}`, 'lots'), new RegExp(`--${flag} must be a whole number >= 1, got not a number`)],
  ]),
  ['a fractional --length', generate('--length', '2.5'), /--length must be a whole number >= 0, got 2.5/],
  ['a non-numeric --length', generate('--length', 'x'), /--length must be a whole number >= 0, got not a number/],
  ['a zero --lr', train('--lr', '0'), /--lr must be a number > 0, got 0/],
  ['a negative --lr', train('--lr', '-1'), /--lr must be a number > 0, got -1/],
  ['an unknown impl', train('--impl', 'gru'), /Invalid values:.*impl/s],
  ['an unknown backend', train('--backend', 'tpu'), /Invalid values:.*backend/s],
  ['an unknown optimizer', train('--optimizer', 'rmsprop'), /Invalid values:.*optimizer/s],
  ['an unknown sampling', train('--sampling', 'shuffled'), /Invalid values:.*sampling/s],
  ['a report prefix outside the vocabulary', train('--prefixes', '分手'), /prefix "分手" has characters not in the corpus: 手/],
  [
    'a generate prefix outside the vocabulary',
    generate('--model', 'models/scratch', '--prefix', '分手吧'),
    /characters not in the model's vocabulary: "手" "吧"/,
  ],
  [
    'a missing model directory',
    generate('--model', 'models/nowhere'),
    /no saved model in models\/nowhere; make one with: lstm-lyrics train/,
  ],
  [
    'resuming a model of the other impl',
    train('--impl', 'builtin', '--resume'),
    /models\/scratch holds a scratch model; resume it with --impl scratch/,
  ],
  [
    'a model of an incompatible version',
    generate('--model', 'models/future-format'),
    /is not a model this version can read \(format "lstm-lyrics\/9"/,
  ],
  [
    'a corrupt checkpoint.json',
    generate('--model', 'models/corrupt-checkpoint'),
    /cannot read models\/corrupt-checkpoint\/checkpoint.json/,
  ],
  ['a truncated model.json', generate('--model', 'models/truncated-model-json'), /model in models\/truncated-model-json is corrupt/],
  ['a truncated builtin weights file', generate('--model', 'models/truncated-weights'), /model in models\/truncated-weights is corrupt/],
  [
    'a truncated scratch weights file',
    generate('--model', 'models/truncated-scratch-weights'),
    /model in models\/truncated-scratch-weights is corrupt/,
  ],
  [
    'a missing weights file',
    generate('--model', 'models/missing-weights'),
    /model in models\/missing-weights is incomplete: weights.bin is missing/,
  ],
  ['an unknown command', ['sing'], /Unknown argument: sing/],
];

describe('bad input', () => {
  it.each(cases)('%s: exit 2, one line on stderr, saved models untouched', async (_what, args, pattern) => {
    const before = snapshot();
    const r = await run(args);
    expect(r.code).toBe(2);
    const lines = r.err;
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^lstm-lyrics: /);
    expect(lines[0]).toMatch(pattern);
    expect(r.out).toEqual([]);
    expect(snapshot()).toEqual(before);
  });
});
