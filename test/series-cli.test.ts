/**
 * The series on the command line: train and generate with --cell, --layers and --dropout, each
 * cell's lesson defaults, --resume of a stacked or non-LSTM model, and checkpoints from before.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import yargs from 'yargs';
import { trainConfigOf } from '../src/cli/commands/train';
import { trainOptions, type TrainArgs } from '../src/cli/options';
import { REPETITIVE_LYRIC, TINY, runCli, spawnCli, startCli, tempDir, useWasm, writeFile } from './helpers';

beforeAll(useWasm);

const cwd = tempDir();
const corpus = writeFile(cwd, 'song.txt', REPETITIVE_LYRIC);
const SMALL = ['--corpus', corpus, ...TINY];
/** TINY without its --epochs 1, for runs that take the lesson's number of epochs. */
const NO_EPOCHS = SMALL.filter((_, i) => SMALL[i] !== '--epochs' && SMALL[i - 1] !== '--epochs');

const checkpoint = (dir: string) => JSON.parse(fs.readFileSync(path.join(cwd, dir, 'checkpoint.json'), 'utf8'));

describe('train: bad --cell, --layers and --dropout', () => {
  it.each([
    [['--cell', 'foo'], /Invalid values: Argument: cell, Given: "foo", Choices: "rnn", "gru", "lstm"/],
    [['--layers', '0'], /--layers must be a whole number from 1 to \d+, got 0$/],
    [['--layers', '-1'], /--layers must be a whole number from 1 to \d+, got -1$/],
    [['--layers', '1.5'], /--layers must be a whole number from 1 to \d+, got 1.5$/],
    [['--dropout', '-0.1'], /--dropout must be a number from 0 to below 1, got -0.1$/],
    [['--dropout', '1'], /--dropout must be a number from 0 to below 1, got 1$/],
    [['--dropout', 'NaN'], /--dropout must be a number from 0 to below 1, got not a number$/],
  ])('%j exits 2 with one line on stderr and saves nothing', async (flags, message) => {
    const r = await runCli(['train', ...SMALL, ...flags, '--out', 'models/bad'], cwd);
    expect(r.code).toBe(2);
    expect(r.out).toEqual([]);
    expect(r.err).toEqual([expect.stringMatching(/^lstm-lyrics: /)]);
    expect(r.err[0]).toMatch(message);
    expect(fs.existsSync(path.join(cwd, 'models', 'bad'))).toBe(false);
  });
});

describe("train: each cell's lesson", () => {
  const LESSONS = [
    ['rnn', 'scratch', { epochs: 250, reportEvery: 50, optimizer: 'sgd', lr: 100 }],
    ['rnn', 'builtin', { epochs: 250, reportEvery: 50, optimizer: 'adam', lr: 0.001 }],
    ['gru', 'scratch', { epochs: 160, reportEvery: 40, optimizer: 'sgd', lr: 100 }],
    ['gru', 'builtin', { epochs: 160, reportEvery: 40, optimizer: 'adam', lr: 0.01 }],
    ['lstm', 'scratch', { epochs: 160, reportEvery: 40, optimizer: 'sgd', lr: 100 }],
    ['lstm', 'builtin', { epochs: 160, reportEvery: 40, optimizer: 'adam', lr: 0.01 }],
  ] as const;

  it.each(LESSONS)('%s %s: the flags left out are filled from its lesson', (cell, impl, lesson) => {
    const args = yargs([...NO_EPOCHS, '--cell', cell, '--impl', impl])
      .options(trainOptions)
      .parseSync() as unknown as TrainArgs;
    expect(trainConfigOf(args)).toMatchObject(lesson);
  });

  // Whole lessons take seconds each: one per schedule and optimizer, run end to end.
  it.each([LESSONS[0], LESSONS[3]])(
    '%s %s trains with its lesson epochs, report interval, optimizer and lr when no flag sets them',
    async (cell, impl, lesson) => {
      const out = `models/lesson-${cell}-${impl}`;
      const r = await runCli(['train', ...NO_EPOCHS, '--cell', cell, '--impl', impl, '--out', out], cwd);
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
      expect(r.out).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^training ${impl} ${cell.toUpperCase()}: .*, ${lesson.epochs} epochs, ${lesson.optimizer} lr ${lesson.lr}, saving to`,
          ),
        ),
      );
      const reports = r.out.filter((l) => /^epoch \d+, perplexity/.test(l)).map((l) => Number(l.match(/^epoch (\d+)/)![1]));
      expect(reports).toEqual(Array.from({ length: lesson.epochs / lesson.reportEvery }, (_, i) => (i + 1) * lesson.reportEvery));
      const saved = checkpoint(out);
      expect(saved.train).toMatchObject(lesson);
      expect(saved.epoch).toBe(lesson.epochs);
    },
  );

  it('explicit flags win over the lesson', async () => {
    const out = 'models/flags-rnn';
    const r = await runCli(
      ['train', ...SMALL, '--cell', 'rnn', '--epochs', '3', '--report-every', '1', '--optimizer', 'adam', '--lr', '0.05', '--out', out],
      cwd,
    );
    expect(r.code).toBe(0);
    expect(r.out.filter((l) => /^epoch \d+, perplexity/.test(l))).toHaveLength(3);
    expect(checkpoint(out).train).toMatchObject({ epochs: 3, reportEvery: 1, optimizer: 'adam', lr: 0.05 });
  });

  it("another optimizer than the lesson's gets that optimizer's rate in the same lesson", async () => {
    const out = 'models/gru-adam-scratch';
    const r = await runCli(['train', ...SMALL, '--cell', 'gru', '--impl', 'scratch', '--optimizer', 'adam', '--out', out], cwd);
    expect(r.code).toBe(0);
    expect(checkpoint(out).train).toMatchObject({ optimizer: 'adam', lr: 0.01 });
  });
});

describe('train and generate every cell and depth', () => {
  it.each([
    [['--cell', 'gru'], 'models/gru-scratch', { impl: 'scratch', cell: 'gru', layers: 1, dropout: 0 }, 'scratch GRU'],
    [['--cell', 'rnn', '--impl', 'builtin'], 'models/rnn-builtin', { impl: 'builtin', cell: 'rnn', layers: 1, dropout: 0 }, 'builtin RNN'],
    [
      ['--layers', '2', '--dropout', '0.2', '--out', 'models/deep'],
      'models/deep',
      { impl: 'scratch', cell: 'lstm', layers: 2, dropout: 0.2 },
      'scratch LSTM, 2 layers, dropout 0.2',
    ],
    [
      ['--cell', 'gru', '--impl', 'builtin', '--layers', '3', '--out', 'models/deep-gru'],
      'models/deep-gru',
      { impl: 'builtin', cell: 'gru', layers: 3, dropout: 0 },
      'builtin GRU, 3 layers',
    ],
  ])('%j saves to %s a model that checkpoint.json describes, and generate writes from it', async (flags, dir, model, described) => {
    const trained = await runCli(['train', ...SMALL, ...flags], cwd);
    expect(trained.err).toEqual([]);
    expect(trained.code).toBe(0);
    expect(trained.out).toContainEqual(expect.stringMatching(new RegExp(`^training ${described}: `)));
    expect(checkpoint(dir).model).toMatchObject(model);

    const r = await runCli(['generate', '--prefix', '不分开', '--length', '7', '--model', dir, '--backend', 'wasm'], cwd);
    expect(r.code).toBe(0);
    expect(r.out).toHaveLength(1);
    expect(r.out[0].startsWith('不分开')).toBe(true);
    expect(Array.from(r.out[0])).toHaveLength(3 + 7);
    // The banner says which network wrote the text.
    expect(r.err).toContainEqual(`model: ${dir} (${described}, epoch 1, perplexity ${checkpoint(dir).history[0].perplexity.toFixed(3)})`);
  });
});

describe('--resume of a stacked GRU', () => {
  const out = 'models/resume-gru';
  const SHAPE = ['--cell', 'gru', '--layers', '2', '--dropout', '0.2'];
  beforeAll(async () => {
    expect((await runCli(['train', ...SMALL, ...SHAPE, '--out', out], cwd)).code).toBe(0);
  });

  it.each([
    [['--cell', 'lstm'], 'models/resume-gru holds a model with --cell gru; resume it with --cell gru or without --cell'],
    [['--layers', '3'], 'models/resume-gru holds a model with --layers 2; resume it with --layers 2 or without --layers'],
    [['--dropout', '0.5'], 'models/resume-gru holds a model with --dropout 0.2; resume it with --dropout 0.2 or without --dropout'],
  ])('refuses %j, naming the saved value, and changes nothing', async (flags, message) => {
    const before = fs.readFileSync(path.join(cwd, out, 'checkpoint.json'), 'utf8');
    const r = await runCli(['train', ...SMALL, '--epochs', '2', ...flags, '--out', out, '--resume'], cwd);
    expect(r.code).toBe(2);
    expect(r.err).toEqual([`lstm-lyrics: ${message}`]);
    expect(fs.readFileSync(path.join(cwd, out, 'checkpoint.json'), 'utf8')).toBe(before);
  });

  it('continues the saved model without those flags, and with the same ones', async () => {
    const r = await runCli(['train', ...SMALL, '--epochs', '2', '--out', out, '--resume'], cwd);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.out).toContainEqual(expect.stringMatching(/^resuming scratch GRU, 2 layers, dropout 0.2: .*, 2 epochs,/));
    expect(checkpoint(out)).toMatchObject({ epoch: 2, model: { cell: 'gru', layers: 2, dropout: 0.2 } });

    const same = await runCli(['train', ...SMALL, ...SHAPE, '--epochs', '3', '--out', out, '--resume'], cwd);
    expect(same.code).toBe(0);
    expect(checkpoint(out).epoch).toBe(3);
  });
});

describe('an interrupted 2-layer GRU (spawned: needs the build)', () => {
  const ARGS = ['train', ...SMALL, '--cell', 'gru', '--layers', '2', '--lr', '10', '--clip', '1', '--seed', '3', '--epochs', '40'];
  const finalPerplexity = (stdout: string) => stdout.match(/^epoch \d+, perplexity ([\d.]+)/gm)!.at(-1)!;

  it('SIGINT saves both layers mid-epoch; --resume then ends exactly where an uninterrupted run does', async () => {
    const run = startCli([...ARGS, '--report-every', '1', '--out', 'models/gru-a'], { cwd });
    if (await run.printed(/^epoch 1,/m)) run.child.kill('SIGINT');
    const interrupted = await run.exited;
    expect(interrupted.code).toBe(130);
    expect(interrupted.stderr).toMatch(/interrupted in epoch \d+ after batch \d+; saved to models\/gru-a/);
    const meta = checkpoint('models/gru-a');
    expect(meta.epoch).toBeLessThan(40);
    expect(meta.position).toMatchObject({ epoch: meta.epoch + 1, hasState: true });
    // One [h] per layer, batch 4 by hidden 8, float32: both layers' state is kept.
    expect(fs.statSync(path.join(cwd, 'models/gru-a/state.bin')).size).toBe(2 * 4 * 8 * 4);

    const resumed = spawnCli([...ARGS, '--report-every', '40', '--out', 'models/gru-a', '--resume'], { cwd });
    expect(resumed.stderr).toBe('');
    expect(resumed.status).toBe(0);
    expect(resumed.stdout).toMatch(/^resuming scratch GRU, 2 layers: /m);
    const straight = spawnCli([...ARGS, '--report-every', '40', '--out', 'models/gru-b'], { cwd });
    expect(straight.status).toBe(0);
    expect(finalPerplexity(resumed.stdout)).toBe(finalPerplexity(straight.stdout));
  });
});

describe('a checkpoint from before the series', () => {
  it('without cell, layers and dropout, loads in generate as one LSTM layer', async () => {
    const dir = 'models/old';
    expect((await runCli(['train', ...SMALL, '--out', dir], cwd)).code).toBe(0);
    const file = path.join(cwd, dir, 'checkpoint.json');
    const meta = JSON.parse(fs.readFileSync(file, 'utf8'));
    const { cell: _c, layers: _l, dropout: _d, ...older } = meta.model;
    fs.writeFileSync(file, JSON.stringify({ ...meta, model: older }));

    const r = await runCli(['generate', '--prefix', '分开', '--length', '4', '--model', dir, '--backend', 'wasm'], cwd);
    expect(r.err.filter((l) => l.startsWith('lstm-lyrics:'))).toEqual([]);
    expect(r.code).toBe(0);
    expect(r.err).toContainEqual(expect.stringMatching(/^model: models\/old \(scratch LSTM, epoch 1,/));
    expect(Array.from(r.out[0])).toHaveLength(2 + 4);
  });
});
