/** `lstm-lyrics compare`: the table, the chart beside the models, and both ways in (train, --from). */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { saveCheckpoint } from '../src/node/model-dir';
import { comparisonTable, withRun, type CompareEntry } from '../src/cli/commands/compare';
import { displayWidth } from '../src/terminal/table';
import { DEFAULT_OPTIMIZER, DEFAULT_TRAIN, type Impl, LEGACY_MODEL } from '../src/core/config';
import { loadCorpus } from '../src/node/corpus-file';
import { createModel, parameterCount } from '../src/core/models';
import type { EpochMetrics } from '../src/core/metrics';
import { REPETITIVE_LYRIC, TINY, runCli, tempDir, useWasm, writeFile } from './helpers';

beforeAll(useWasm);

const run = (argv: string[]) => runCli(argv);

/** The line of the table whose label is `label`, split into its cells. */
function row(lines: readonly string[], label: string): string[] {
  const line = lines.find((l) => l.startsWith(`${label}  `));
  if (line === undefined) throw new Error(`no row ${label} in:\n${lines.join('\n')}`);
  return line.slice(label.length).trim().split(/ {2,}/);
}

const metrics = (epoch: number, perplexity: number, seconds = 0.5): EpochMetrics => ({
  epoch,
  loss: Math.log(perplexity),
  perplexity,
  seconds,
  charsPerSecond: 1000,
  gradNorm: 1,
  lr: 1,
  numTensors: 10,
});

describe('the comparison table', () => {
  const entry = (impl: Impl, over: Partial<CompareEntry> = {}): Omit<CompareEntry, 'history'> => ({
    label: impl,
    dir: `models/${impl}`,
    impl,
    ...LEGACY_MODEL,
    parameters: 12_345,
    backend: 'wasm',
    corpus: 'song.txt',
    hidden: 16,
    optimizer: DEFAULT_OPTIMIZER[impl].optimizer,
    lr: DEFAULT_OPTIMIZER[impl].lr,
    defaultOptimizer: true,
    epochs: 80,
    finalPerplexity: 3.21,
    reports: [
      { epoch: 40, perplexity: 9.87654 },
      { epoch: 80, perplexity: 3.21 },
    ],
    medianEpochSeconds: 0.25,
    generations: [
      { prefix: '分开', text: '分开 我们' },
      { prefix: '不分开', text: '不分开 我' },
    ],
    ...over,
  });
  const lines = comparisonTable([
    entry('scratch'),
    entry('builtin', {
      optimizer: 'sgd',
      lr: 1,
      defaultOptimizer: false,
      epochs: 60,
      finalPerplexity: 1.5,
      finalHeldOutPerplexity: 2.5,
      reports: [
        { epoch: 20, perplexity: 4 },
        { epoch: 40, perplexity: 2 },
        { epoch: 60, perplexity: 1.5 },
      ],
      generations: [{ prefix: '分开', text: '分开 爱' }, { prefix: '不分开' }],
    }),
  ]);

  it('has one column per model and a row for each measure', () => {
    expect(lines[0].trim().split(/ +/)).toEqual(['scratch', 'builtin']);
    expect(row(lines, 'parameters')).toEqual(['12,345', '12,345']);
    expect(row(lines, 'backend')).toEqual(['wasm', 'wasm']);
    expect(row(lines, 'optimizer')).toEqual(['sgd lr 100 (scratch default)', 'sgd lr 1 (set by flags)']);
    expect(row(lines, 'final perplexity')).toEqual(['3.210', '1.500']);
    expect(row(lines, 'final held-out perplexity')).toEqual(['-', '2.500']);
    expect(row(lines, 'median seconds per epoch')).toEqual(['0.250', '0.250']);
  });

  it('lists the perplexity at every report epoch of either run, in order, with - where a run has none', () => {
    const reportRows = lines.filter((l) => l.startsWith('perplexity at epoch'));
    expect(reportRows.map((l) => l.match(/epoch (\d+)/)![1])).toEqual(['20', '40', '60', '80']);
    expect(row(lines, 'perplexity at epoch 20')).toEqual(['-', '4.000']);
    expect(row(lines, 'perplexity at epoch 40')).toEqual(['9.877', '2.000']);
    expect(row(lines, 'perplexity at epoch 80')).toEqual(['3.210', '-']);
  });

  it('lines up its columns', () => {
    const table = lines.slice(0, lines.indexOf(''));
    const second = lines[0].indexOf('builtin');
    for (const line of table) expect(line[second - 1]).toBe(' ');
    for (const line of table.slice(1)) expect(line[second]).not.toBe(' ');
  });

  it("shows each prefix's generations one model under the other, aligned despite double-width characters", () => {
    const generations = lines.slice(lines.indexOf('greedy generations after each prefix:') + 1);
    expect(generations).toEqual([
      '分开    scratch  分开 我们',
      '        builtin  分开 爱',
      '不分开  scratch  不分开 我',
      "        builtin  (prefix has characters outside this model's vocabulary)",
    ]);
    expect(new Set(generations.map((l) => displayWidth(l.slice(0, l.search(/(?<=(scratch|builtin) {2})\S/)))))).toEqual(new Set([17]));
  });

  it('names one metrics file per run', () => {
    expect(withRun('runs/m.jsonl', 'scratch')).toBe('runs/m.scratch.jsonl');
    expect(withRun('metrics', 'builtin')).toBe('metrics.builtin');
    expect(withRun('runs/m.jsonl', 'gru-builtin')).toBe('runs/m.gru-builtin.jsonl');
  });

  it('names the lesson whose optimizer a run kept', () => {
    const rnn = comparisonTable([entry('builtin', { label: 'builtin RNN', cell: 'rnn', optimizer: 'adam', lr: 0.001 })]);
    expect(row(rnn, 'optimizer')).toEqual(['adam lr 0.001 (rnn builtin default)']);
  });
});

describe('compare --from: models saved earlier', () => {
  const dir = tempDir();
  const corpus = loadCorpus(writeFile(dir, 'song.txt', REPETITIVE_LYRIC), { maxChars: 0 });
  const parameters: number[] = [];
  const save = async (name: string, impl: Impl, history: EpochMetrics[], prefixes = ['分开']) => {
    const model = createModel({ impl, ...LEGACY_MODEL, vocabSize: corpus.vocab.chars.length, hidden: 8 }, 0);
    parameters.push(parameterCount(model));
    const train = {
      ...DEFAULT_TRAIN,
      ...DEFAULT_OPTIMIZER[impl],
      corpus: 'song.txt',
      maxChars: 0,
      epochs: history.length,
      reportEvery: 2,
      predLen: 5,
      prefixes,
    };
    await saveCheckpoint(path.join(dir, name), model, {
      model: model.config,
      train,
      vocab: corpus.vocab.chars,
      epoch: history.length,
      savedAt: '',
      backend: tf.getBackend(),
      versions: {},
      corpusSha256: corpus.sha256,
      history,
    });
    model.dispose();
    return path.join(dir, name);
  };
  let scratch: string;
  let builtin: string;
  beforeAll(async () => {
    scratch = await save('scratch', 'scratch', [metrics(1, 14), metrics(2, 9, 0.3), metrics(3, 6, 0.2)]);
    builtin = await save('builtin', 'builtin', [metrics(1, 12), metrics(2, 5, 0.4), metrics(3, 2, 0.4)], ['不分开', '唱歌']);
  });

  it('prints the table from their checkpoints and writes the chart into --out', async () => {
    const out = path.join(dir, 'charts');
    const r = await run(['compare', '--from', scratch, builtin, '--out', out, '--backend', 'wasm']);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(row(r.out, 'model directory')).toEqual([scratch, builtin]);
    expect(row(r.out, 'parameters')).toEqual(parameters.map((n) => n.toLocaleString('en')));
    expect(row(r.out, 'epochs')).toEqual(['3', '3']);
    expect(row(r.out, 'perplexity at epoch 2')).toEqual(['9.000', '5.000']);
    expect(row(r.out, 'perplexity at epoch 3')).toEqual(['6.000', '2.000']); // the last epoch, though not a multiple of 2
    expect(r.out.some((l) => l.startsWith('perplexity at epoch 1'))).toBe(false);
    expect(row(r.out, 'median seconds per epoch')).toEqual(['0.300', '0.400']);
    // Every prefix of either run, generated by both (5 characters on: these models are untrained).
    const generations = r.out.slice(r.out.indexOf('greedy generations after each prefix:') + 1, -1);
    expect(generations.map((l) => l.split(/ {2,}/).slice(0, 2).join(' ').trim())).toEqual([
      '分开 scratch',
      'builtin',
      '不分开 scratch',
      'builtin',
      '唱歌 scratch',
      'builtin',
    ]);
    for (const line of generations) expect(Array.from(line.split(/ {2,}/).at(-1)!).length).toBeGreaterThanOrEqual(2 + 5);
    expect(r.out.at(-1)).toBe(`chart: ${path.join(out, 'compare.svg')}`);
    const svg = fs.readFileSync(path.join(out, 'compare.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toMatch(/model: scratch/);
    expect(svg).toMatch(/model: builtin/);
  });

  it('labels two runs of one impl by their directories', async () => {
    const other = await save('scratch-2', 'scratch', [metrics(1, 13), metrics(2, 8)]);
    const r = await run(['compare', '--from', scratch, other, '--out', dir, '--backend', 'wasm', '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out.join('\n'));
    expect(result.entries.map((e: CompareEntry) => e.label)).toEqual([`scratch (${scratch})`, `scratch (${other})`]);
    expect(result.entries[1]).toMatchObject({
      impl: 'scratch',
      epochs: 2,
      finalPerplexity: 8,
      optimizer: 'sgd',
      lr: 100,
      defaultOptimizer: true,
    });
    expect(result.chart).toBe(path.join(dir, 'compare.svg'));
    expect(r.err.some((l) => l.startsWith('final perplexity'))).toBe(true); // the table went to stderr
  });

  it('exits 3 when a final perplexity is above --max-perplexity, after printing the table', async () => {
    const r = await run(['compare', '--from', scratch, builtin, '--out', dir, '--backend', 'wasm', '--max-perplexity', '4']);
    expect(r.code).toBe(3);
    expect(row(r.out, 'final perplexity')).toEqual(['6.000', '2.000']);
    expect(r.err).toEqual(['lstm-lyrics: final perplexity above --max-perplexity 4: scratch 6.0000']);
  });

  it.each([
    ['--cell', ['--cell', 'gru'], /^lstm-lyrics: compare takes its cells from --cells; use --cells gru$/],
    ['a directory without a model', ['--from', path.join(dir, 'nothing')], /no saved model in .*nothing/],
    ['--from without directories', ['--from'], /--from needs the model directories/],
  ])('exits 2 with one line for %s', async (_what, args, message) => {
    const r = await run(['compare', ...args, '--out', dir]);
    expect(r.code).toBe(2);
    expect(r.err).toHaveLength(1);
    expect(r.err[0]).toMatch(message);
  });
});

describe('compare: training both', () => {
  it('trains scratch and builtin alike, each with its optimizer, saves both beside the chart, and tables them', async () => {
    const dir = tempDir();
    writeFile(dir, 'song.txt', REPETITIVE_LYRIC);
    const out = path.join(dir, 'runs');
    const metricsFile = path.join(dir, 'm.jsonl');
    const r = await run([
      'compare',
      '--corpus',
      path.join(dir, 'song.txt'),
      '--hidden',
      '16',
      '--batch-size',
      '4',
      '--num-steps',
      '8',
      '--epochs',
      '2',
      '--report-every',
      '1',
      '--pred-len',
      '6',
      '--backend',
      'wasm',
      '--out',
      out,
      '--metrics',
      metricsFile,
    ]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    // The runs' own lines, each marked with its impl, then the table.
    expect(r.out.filter((l) => /^\[scratch\] epoch \d, perplexity/.test(l))).toHaveLength(2);
    expect(r.out.filter((l) => /^\[builtin\] epoch \d, perplexity/.test(l))).toHaveLength(2);
    expect(
      r.out
        .find((l) => l.startsWith('  '))!
        .trim()
        .split(/ +/),
    ).toEqual(['scratch', 'builtin']);
    expect(row(r.out, 'model directory')).toEqual([path.join(out, 'scratch'), path.join(out, 'builtin')]);
    expect(row(r.out, 'optimizer')).toEqual(['sgd lr 100 (scratch default)', 'adam lr 0.01 (builtin default)']);
    expect(row(r.out, 'backend')).toEqual(['wasm', 'wasm']);
    expect(row(r.out, 'hidden units')).toEqual(['16', '16']);
    for (const impl of ['scratch', 'builtin']) {
      const saved = JSON.parse(fs.readFileSync(path.join(out, impl, 'checkpoint.json'), 'utf8'));
      expect(saved.train).toMatchObject({ epochs: 2, seed: 0, batchSize: 4, numSteps: 8, ...DEFAULT_OPTIMIZER[impl as Impl] });
      expect(row(r.out, 'final perplexity')[impl === 'scratch' ? 0 : 1]).toBe(saved.history[1].perplexity.toFixed(3));
      expect(fs.readFileSync(withRun(metricsFile, impl), 'utf8').trim().split('\n')).toHaveLength(3); // 2 epochs + summary
    }
    const generations = r.out.slice(r.out.indexOf('greedy generations after each prefix:') + 1, -1);
    expect(generations).toHaveLength(4);
    const svg = fs.readFileSync(path.join(out, 'compare.svg'), 'utf8');
    expect(svg.startsWith('<svg')).toBe(true);
    expect(svg).toMatch(/model: scratch/);
    expect(svg).toMatch(/model: builtin/);
    expect(svg).toMatch(/X-axis titled 'epoch'/);
    expect(fs.readdirSync(out).sort()).toEqual(['builtin', 'compare.svg', 'scratch']);

    // --resume continues both runs to the new total; a run that already has it is kept as it is.
    const common = ['compare', '--resume', '--backend', 'wasm', '--out', out];
    const more = await run([...common, '--epochs', '3']);
    expect(more.code).toBe(0);
    expect(more.out.filter((l) => /^\[(scratch|builtin)\] epoch 3, perplexity/.test(l))).toHaveLength(2);
    expect(row(more.out, 'epochs')).toEqual(['3', '3']);
    const same = await run([...common, '--epochs', '3']);
    expect(same.code).toBe(0);
    expect(same.out.filter((l) => l.includes('has already trained 3 epochs; kept as it is'))).toHaveLength(2);
    expect(row(same.out, 'final perplexity')).toEqual(row(more.out, 'final perplexity'));
  });

  it('with --resume, trains from the start a run that saved nothing yet', async () => {
    const dir = tempDir();
    const corpus = writeFile(dir, 'song.txt', REPETITIVE_LYRIC);
    const small = ['--corpus', corpus, ...TINY];
    expect((await run(['train', '--impl', 'scratch', ...small, '--out', path.join(dir, 'scratch')])).code).toBe(0);
    const r = await run(['compare', '--resume', ...small, '--out', dir]);
    expect(r.code).toBe(0);
    expect(r.out).toContain(`[scratch] ${path.join(dir, 'scratch')} has already trained 1 epoch; kept as it is`);
    expect(r.out.some((l) => l.startsWith('[builtin] training builtin LSTM'))).toBe(true);
    expect(row(r.out, 'epochs')).toEqual(['1', '1']);
  });
});

describe('compare --cells', () => {
  const dir = tempDir();
  const corpus = writeFile(dir, 'song.txt', REPETITIVE_LYRIC);
  const small = ['--corpus', corpus, ...TINY, '--epochs', '2', '--report-every', '1'];

  it("--cells gru,rnn trains four models, each with its lesson's optimizer, and the table and chart name every run", async () => {
    const out = path.join(dir, 'series');
    const metricsFile = path.join(dir, 'series.jsonl');
    const r = await run(['compare', '--cells', 'gru,rnn', ...small, '--out', out, '--metrics', metricsFile]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    const runs = ['gru-scratch', 'gru-builtin', 'rnn-scratch', 'rnn-builtin'];
    for (const name of runs) expect(r.out.filter((l) => l.startsWith(`[${name}] epoch `))).toHaveLength(2);
    const labels = ['scratch GRU', 'builtin GRU', 'scratch RNN', 'builtin RNN'];
    expect(
      r.out
        .find((l) => l.startsWith('  '))!
        .trim()
        .split(/ {2,}/),
    ).toEqual(labels);
    expect(row(r.out, 'model directory')).toEqual(runs.map((name) => path.join(out, name)));
    expect(row(r.out, 'optimizer')).toEqual([
      'sgd lr 100 (gru scratch default)',
      'adam lr 0.01 (gru builtin default)',
      'sgd lr 100 (rnn scratch default)',
      'adam lr 0.001 (rnn builtin default)',
    ]);
    for (const name of runs) {
      const saved = JSON.parse(fs.readFileSync(path.join(out, name, 'checkpoint.json'), 'utf8'));
      expect(saved.model).toMatchObject({ cell: name.split('-')[0], impl: name.split('-')[1], layers: 1 });
      expect(saved.train.seed).toBe(0);
      expect(fs.readFileSync(withRun(metricsFile, name), 'utf8').trim().split('\n')).toHaveLength(3); // 2 epochs + summary
    }
    const generations = r.out.slice(r.out.indexOf('greedy generations after each prefix:') + 1, -1);
    expect(generations).toHaveLength(2 * 4);
    expect(fs.readdirSync(out).sort()).toEqual(['compare.svg', ...[...runs].sort()]);
    const svg = fs.readFileSync(path.join(out, 'compare.svg'), 'utf8');
    for (const label of labels) expect(svg).toContain(`model: ${label}`);
    // Colour by cell, dash by impl: scratch solid, builtin dashed.
    expect(svg).toMatch(/legend titled 'cell' .* 2 values: GRU, RNN/);
    expect(svg).toMatch(/legend titled 'impl' .* 2 values: scratch, builtin/);
    expect(svg).toContain('stroke-dasharray');
    expect(svg).toContain('scratch (solid): written by hand; builtin (dashed): tf.layers');
  });

  it('--impl trains only that impl of each cell, LSTMs where compare always put them', async () => {
    const out = path.join(dir, 'builtin-only');
    const r = await run(['compare', '--cells', 'lstm,gru', '--impl', 'builtin', ...small, '--out', out, '--json']);
    expect(r.code).toBe(0);
    const result = JSON.parse(r.out.join('\n'));
    expect(result.entries.map((e: CompareEntry) => [e.label, e.dir])).toEqual([
      ['builtin LSTM', path.join(out, 'builtin')],
      ['builtin GRU', path.join(out, 'gru-builtin')],
    ]);
    expect(fs.readdirSync(out).sort()).toEqual(['builtin', 'compare.svg', 'gru-builtin']);
  });

  it('--from labels each run with its cell and impl, and two of one kind with their directories', async () => {
    const out = path.join(dir, 'series');
    const r = await run([
      'compare',
      '--from',
      ...['gru-scratch', 'rnn-builtin', 'gru-scratch'].map((n) => path.join(out, n)),
      '--out',
      dir,
      '--json',
      '--backend',
      'wasm',
    ]);
    expect(r.code).toBe(0);
    const labels = JSON.parse(r.out.join('\n')).entries.map((e: CompareEntry) => e.label);
    expect(labels).toEqual([
      `scratch GRU (${path.join(out, 'gru-scratch')})`,
      'builtin RNN',
      `scratch GRU (${path.join(out, 'gru-scratch')})`,
    ]);
  });

  it.each([
    [
      'an unknown cell',
      ['--cells', 'gru,foo'],
      /^lstm-lyrics: --cells must list cells from rnn, gru, lstm separated by commas, got "gru,foo"$/,
    ],
    ['an empty list', ['--cells', ''], /^lstm-lyrics: --cells must list cells from rnn, gru, lstm/],
    ['a trailing comma', ['--cells', 'gru,'], /^lstm-lyrics: --cells must list cells from rnn, gru, lstm/],
    ['a cell twice', ['--cells', 'gru,rnn,gru'], /^lstm-lyrics: --cells names gru twice$/],
    ['an unknown impl', ['--impl', 'both'], /^lstm-lyrics: Invalid values: Argument: impl, Given: "both"/],
    ['--layers 0', ['--cells', 'gru,rnn', '--layers', '0'], /^lstm-lyrics: --layers must be a whole number from 1/],
  ])('exits 2 with one line, training nothing, for %s', async (_what, flags, message) => {
    const out = path.join(dir, 'bad');
    const r = await run(['compare', ...small, ...flags, '--out', out]);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([expect.stringMatching(message)]);
    expect(fs.existsSync(out)).toBe(false);
  });
});
