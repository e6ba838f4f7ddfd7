/**
 * `lstm-lyrics bench`: times the series' cells (scratch and builtin) on the lessons' reference configuration and, with
 * --reference, sets them beside the PyTorch version of the lesson run on the same machine and corpus.
 * A benchmark, not a test: it prints numbers and never fails on them.
 *
 * This module is the command's wiring (options, examples, checks of the numbers given); the work is
 * in src/cli/bench/rounds.ts (timing and the result table), src/cli/bench/scale.ts (--scale) and
 * src/node/pytorch-reference.ts (running the PyTorch script).
 */
import * as os from 'node:os';
import * as path from 'node:path';
import type { Argv } from 'yargs';
import { CELLS, IMPLS } from '../../core/config';
import { UsageError } from '../../core/errors';
import { DEFAULT_REFERENCE_SCRIPT, SERIES_SCRIPT_NAME } from '../../node/pytorch-reference';
import { count } from '../../core/numbers';
import { benchRounds, type BenchResult } from '../bench/rounds';
import { benchScale, SCALE_CHARS, SCALE_HIDDEN } from '../bench/scale';
import type { Logger } from '../logger';
import { BUNDLED_CORPUS, backendOption, cellOf, cellsOf, trainOptions, wholeNumber, type ArgsOf } from '../options';

export const command = 'bench';
export const describe =
  "time training and generation of the series' cells, scratch and builtin (and, with --reference, the PyTorch lessons)";

export const benchOptions = {
  impl: { choices: IMPLS, describe: 'benchmark only this implementation', defaultDescription: 'both' },
  cell: {
    type: 'string',
    default: 'lstm',
    describe: `which cells: ${CELLS.join(', ')}, all, or a comma list (gru,rnn); each with its lesson's optimizer and learning rate`,
  },
  layers: { type: 'number', default: 1, describe: 'stacked recurrent layers of every benchmarked model' },
  epochs: { type: 'number', default: 3, describe: 'timed epochs per impl (after one warm-up epoch)' },
  rounds: {
    type: 'number',
    default: 1,
    describe:
      "run each impl (and, with --reference, PyTorch right after it) this many times; medians over the rounds: steadier where the machine's speed drifts",
  },
  corpus: {
    type: 'string',
    default: BUNDLED_CORPUS,
    defaultDescription: 'the bundled corpus/songci300.txt',
    describe: 'training text: a UTF-8 .txt or a .zip holding one',
  },
  'max-chars': trainOptions['max-chars'],
  hidden: trainOptions.hidden,
  reference: { type: 'boolean', default: false, describe: 'also time the PyTorch lesson (--python + torch) and compare' },
  python: { type: 'string', default: 'python3', describe: 'the Python interpreter for --reference (one that can import torch)' },
  'reference-script': {
    type: 'string',
    default: DEFAULT_REFERENCE_SCRIPT,
    defaultDescription: '../shared/reference/seed_lstm.py beside the package',
    describe: 'the PyTorch LSTM lesson, for --cell lstm with one layer',
  },
  'series-script': {
    type: 'string',
    defaultDescription: `${SERIES_SCRIPT_NAME} beside --reference-script`,
    describe: 'the PyTorch series (every cell, stacked layers), for the other cells and for --layers above 1',
  },
  json: { type: 'boolean', default: false, describe: 'print the results as one JSON object on stdout instead of a table' },
  scale: {
    type: 'boolean',
    default: false,
    describe: `how time and memory grow: each impl at --max-chars ${SCALE_CHARS.map((n) => (n ? count(n) : 'all')).join(' / ')} x hidden ${SCALE_HIDDEN.join(' / ')}, each in a fresh process`,
  },
  ...backendOption,
  accel: {
    choices: ['on', 'off', 'both'] as const,
    default: 'on' as 'on' | 'off' | 'both',
    describe:
      'on: our speed-ups to TF.js; off: stock TF.js; both: each impl both ways, stock in a fresh process (one wasm thread, as stock TF.js runs in Node)',
  },
} as const;

export type BenchArgs = ArgsOf<typeof benchOptions>;

export function builder<T>(y: Argv<T>) {
  return y.options(benchOptions).example([
    ['$0 bench', 'both impls, 3 timed epochs, bundled corpus'],
    ['$0 bench --reference --corpus jaychou_lyrics.txt.zip --epochs 5', "the lesson's corpus, beside PyTorch"],
    ['$0 bench --reference --python /usr/bin/python3', 'PyTorch from a named interpreter'],
    ['$0 bench --reference --rounds 3', 'ours and PyTorch back to back three times; the median ratio'],
    ['$0 bench --accel both', 'with and without our speed-ups to TF.js, side by side'],
    ['$0 bench --cell all --reference', 'the plain RNN, the GRU and the LSTM, each beside its PyTorch lesson'],
    ['$0 bench --cell lstm --layers 2 --impl builtin --reference', 'a 2-layer LSTM beside nn.LSTM(num_layers=2)'],
  ]);
}

/**
 * Trains each cell x impl for a warm-up and `--epochs` timed epochs, then (with --reference) runs
 * its PyTorch lesson as long, --rounds times; with --scale, the grid of sizes instead. The table and
 * notes go to `log`; progress to `note`.
 */
export async function handler(args: BenchArgs, log: Logger, note: Logger = log): Promise<BenchResult> {
  const epochs = wholeNumber('epochs', args.epochs);
  const rounds = wholeNumber('rounds', args.rounds);
  const maxChars = wholeNumber('max-chars', args.maxChars, 0);
  const hidden = wholeNumber('hidden', args.hidden);
  const impls = args.impl ? [args.impl] : [...IMPLS];
  const cells = cellsOf(args.cell);
  const { layers } = cellOf({ layers: args.layers });
  const corpusPath = path.resolve(args.corpus);
  const script = path.resolve(args.referenceScript);
  const series = path.resolve(args.seriesScript ?? path.join(path.dirname(script), SERIES_SCRIPT_NAME));

  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, node: process.version };
  log.info(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`);
  if (args.scale) {
    if (args.accel === 'both') throw new UsageError('--scale takes --accel on or off, not both');
    if (cells.length !== 1) throw new UsageError(`--scale takes one --cell, got ${cells.join(',')}`);
    return benchScale({ ...args, accel: args.accel }, { impls, cell: cells[0], layers, epochs, corpusPath, machine }, log, note);
  }
  const reference = args.reference ? { python: args.python, lstm: script, series } : undefined;
  return benchRounds(args, { impls, cells, layers, epochs, rounds, maxChars, hidden, corpusPath, machine, reference }, log, note);
}
