/** The CLI end to end, spawned as a user runs it (needs the build: `npm test` builds first). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPETITIVE_LYRIC, TINY, runCli, spawnCli, tempDir, useWasm, writeFile } from './helpers';

const run = (args: string[], cwd: string) => spawnCli(args, { cwd });

beforeAll(useWasm);

describe('lstm-lyrics CLI', () => {
  const cwd = tempDir();
  const corpus = writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);

  it("trains, printing the lesson's report lines, and saves the model", () => {
    const r = run(
      ['train', ...TINY, '--impl', 'scratch', '--corpus', corpus, '--epochs', '4', '--report-every', '2', '--lr', '10', '--clip', '1'],
      cwd,
    );
    expect(r.stderr).toBe('');
    expect(r.status).toBe(0);
    const lines = r.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^backend: wasm/);
    const reports = lines.filter((l) => l.startsWith('epoch '));
    expect(reports).toHaveLength(2);
    for (const line of reports) expect(line).toMatch(/^epoch [24], perplexity \d+\.\d{6}, time \d+\.\d{2} sec$/);
    expect(lines.filter((l) => l.startsWith(' - 分开'))).toHaveLength(2);
    expect(lines.filter((l) => l.startsWith(' - 不分开'))).toHaveLength(2);
    expect(fs.existsSync(path.join(cwd, 'models', 'scratch', 'checkpoint.json'))).toBe(true);
  });

  it('generates from the most recently trained model', () => {
    const r = run(['generate', '--prefix', '不分开', '--length', '12', '--backend', 'wasm'], cwd);
    expect(r.status).toBe(0);
    const text = r.stdout.replace(/\n$/, '');
    expect(text.startsWith('不分开')).toBe(true);
    expect(Array.from(text)).toHaveLength(3 + 12);
    expect(r.stderr).toMatch(/model: models[/\\]scratch/);
  });

  it.each([
    [
      'a prefix with unknown characters',
      ['generate', '--prefix', '分手吧', '--backend', 'wasm'],
      /not in the model's vocabulary: "手" "吧"/,
    ],
    [
      'a missing model',
      ['generate', '--prefix', '分开', '--model', 'models/none'],
      /no saved model in models\/none; make one with: lstm-lyrics train/,
    ],
    ['a missing corpus', ['train', '--corpus', 'nope.txt'], /corpus not found: nope.txt/],
    ['an unknown impl', ['train', '--impl', 'gru'], /Invalid values/],
    ['fractional epochs', ['train', '--corpus', 'song.txt', '--epochs', '2.5'], /--epochs must be a whole number/],
    ['a non-positive lr', ['train', '--corpus', 'song.txt', '--lr', '0'], /--lr must be a number > 0/],
    ['an unknown flag', ['train', '--epoch', '3'], /Unknown argument/],
  ])('exits 2 with one line on stderr for %s', async (_what, args, pattern) => {
    const r = await runCli(args as string[], cwd);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(pattern);
  });

  it('a real process exits with status 2 and prints its one line on stderr only', () => {
    const r = run(['train', '--epoch', '3'], cwd);
    expect(r.status).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr.trimEnd().split('\n')).toEqual([expect.stringMatching(/^lstm-lyrics: Unknown argument: epoch/)]);
  });

  it('repeats a seeded run exactly (the default seed 0 included): same perplexities to every digit, same generations', () => {
    const args = (seed: string, out: string) => [
      'train',
      ...TINY,
      '--impl',
      'scratch',
      '--corpus',
      corpus,
      '--epochs',
      '2',
      '--report-every',
      '1',
      '--seed',
      seed,
      '--lr',
      '10',
      '--out',
      out,
    ];
    // --threads auto measures the idle cores at start-up, so its count may differ between runs;
    // the numbers do not (tested below with --threads 2).
    const withoutTimes = (out: string) =>
      out
        .replace(/time [\d.]+ sec/g, 'time ? sec')
        .replace(/saving to \S+/, '')
        .replace(/\d+ threads?: auto: [\d.]+ of \d+ cores idle/, 'auto threads');
    const a = run(args('0', 'models/seeded-a'), cwd);
    const b = run(args('0', 'models/seeded-b'), cwd);
    expect(a.status).toBe(0);
    expect(withoutTimes(a.stdout)).toBe(withoutTimes(b.stdout));
    const c = run(args('8', 'models/seeded-c'), cwd);
    expect(withoutTimes(c.stdout)).not.toBe(withoutTimes(a.stdout));
  });

  it('writes --metrics JSON lines and a --json summary, and gates on --max-perplexity with exit 3', () => {
    const metrics = path.join(cwd, 'metrics.jsonl');
    const args = [
      'train',
      ...TINY,
      '--impl',
      'scratch',
      '--corpus',
      corpus,
      '--epochs',
      '3',
      '--report-every',
      '3',
      '--out',
      'models/gated',
      '--metrics',
      metrics,
      '--json',
    ];
    const ok = run([...args, '--max-perplexity', '1e9'], cwd);
    expect(ok.status).toBe(0);
    const summary = JSON.parse(ok.stdout);
    expect(summary).toMatchObject({ summary: true, impl: 'scratch', epochs: 3, backend: 'wasm' });
    expect(ok.stderr).toMatch(/^epoch 3, perplexity/m);
    const lines = fs
      .readFileSync(metrics, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.epoch ?? 'summary')).toEqual([1, 2, 3, 'summary']);
    for (const key of ['loss', 'perplexity', 'seconds', 'charsPerSecond', 'gradNorm', 'lr', 'numTensors'])
      expect(typeof lines[0][key]).toBe('number');
    expect(lines[3].finalPerplexity).toBe(lines[2].perplexity);

    const gated = run([...args, '--max-perplexity', '1.0001'], cwd);
    expect(gated.status).toBe(3);
    expect(gated.stderr.trim().split('\n').at(-1)).toMatch(/final perplexity [\d.]+ is above --max-perplexity 1.0001/);
  });

  it('runs multi-threaded wasm with --threads 2, with the same numbers as one thread, and exits', () => {
    // The matrices of --hidden 16, as wide as threads may split.
    const args = [
      'train',
      ...TINY,
      '--impl',
      'scratch',
      '--corpus',
      corpus,
      '--hidden',
      '16',
      '--epochs',
      '2',
      '--report-every',
      '1',
      '--seed',
      '1',
    ];
    const perplexities = (out: string) => out.match(/perplexity [\d.]+/g);
    const one = run([...args, '--out', 'models/t1'], cwd);
    const two = run([...args, '--threads', '2', '--out', 'models/t2'], cwd);
    expect(two.status).toBe(0);
    expect(two.stdout).toMatch(/^backend: wasm \(WebAssembly, SIMD, 2 threads\)/);
    expect(perplexities(two.stdout)).toEqual(perplexities(one.stdout));
  });

  it('prints help', () => {
    const r = run(['train', '--help'], cwd);
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/--impl/);
    expect(r.stdout).toMatch(/--sampling/);
  });
});

describe('report prefixes on a corpus without 分开', () => {
  const cwd = tempDir();
  const text = 'the quick brown fox jumps over the lazy dog and runs away '.repeat(30);
  const english = writeFile(cwd, 'english.txt', text);
  /** The corpus' own prefixes: its first two characters, and the first non-space one from its middle. */
  const middle = text.slice(Math.floor(text.length / 2)).trimStart()[0];
  const ENGLISH = ['--corpus', english, ...TINY, '--max-chars', '0', '--pred-len', '3'];

  it('train takes its prefixes from the corpus when none were given, and says so in one line', async () => {
    const r = await runCli(['train', ...ENGLISH, '--out', 'models/en'], cwd);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(
      r.out.filter((l) => l.includes(`lacks characters of 分开 不分开; report samples start from "th" "${middle}" instead`)),
    ).toHaveLength(1);
    expect(r.out.filter((l) => l.startsWith(' - '))).toEqual([
      expect.stringMatching(/^ - th.{3}$/),
      expect.stringMatching(new RegExp(`^ - ${middle}.{3}$`)),
    ]);
  });

  it('an explicit --prefixes outside the corpus is still exit 2 with the same message', async () => {
    const r = await runCli(['train', ...ENGLISH, '--out', 'models/en2', '--prefixes', '分开'], cwd);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([expect.stringMatching(/prefix "分开" has characters not in the corpus: 分 开/)]);
    expect(fs.existsSync(path.join(cwd, 'models', 'en2'))).toBe(false);
  });

  it('compare does the same for both models', async () => {
    const r = await runCli(['compare', ...ENGLISH, '--out', 'runs'], cwd);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out.filter((l) => l.includes(`report samples start from "th" "${middle}" instead`))).toHaveLength(2);
    expect(r.out.filter((l) => /^th\s+scratch\s+th/.test(l))).toHaveLength(1);
  });
});
