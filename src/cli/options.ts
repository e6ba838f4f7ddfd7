/**
 * Command-line options and their checks, in one place, tied to the config types they fill.
 */
import * as path from 'node:path';
import type { InferredOptionTypes, Options } from 'yargs';
import { ACCEL_SETTINGS, setAccel, type AccelSetting, type AccelStatus } from '../accel';
import { installedVersions, versionMismatch } from '../accel/versions';
import { BACKEND_PREFERENCES, selectBackend, type BackendChoice, type BackendPreference } from '../backend/select';
import { MAX_AUTO_THREADS, type ThreadsSetting } from '../backend/threads';
import { CELLS, DEFAULT_HIDDEN, DEFAULT_TRAIN, IMPLS, OPTIMIZERS, SAMPLINGS, type Cell, type Impl, type Sampling } from '../core/config';
import { UsageError } from '../core/errors';
import { nonNegativeProblem, positiveNumberProblem, seedProblem, wholeNumberProblem } from '../core/input-rules';
import { shapeProblem } from '../core/model-check';

/** The corpus that ships in corpus/, found relative to the installed package, not the cwd. */
export const BUNDLED_CORPUS = path.resolve(__dirname, '..', '..', 'corpus', 'songci300.txt');

export const backendOption = {
  backend: {
    choices: BACKEND_PREFERENCES,
    default: 'auto' as BackendPreference,
    describe: 'TF.js backend: auto tries CUDA, native TensorFlow, wasm, then plain JS',
  },
  threads: {
    type: 'string',
    default: 'auto',
    describe: `wasm only: compute threads, a number or auto (the cores idle at start-up, at most ${MAX_AUTO_THREADS}; generate: 1; with --accel off: 1)`,
  },
  accel: {
    choices: ACCEL_SETTINGS,
    default: 'on' as AccelSetting,
    describe: 'on: our speed-ups to TF.js (same math; see src/accel/README.md); off: stock TF.js, to compare',
  },
} as const;

export const trainOptions = {
  impl: {
    choices: IMPLS,
    default: 'scratch' as Impl,
    describe: 'scratch: the cell written by hand from tf ops; builtin: tf.layers (simpleRNN, gru, lstm)',
  },
  cell: {
    choices: CELLS,
    defaultDescription: 'lstm (with --resume: the saved one)',
    describe: "the series' cell: rnn, gru or lstm; sets its lesson's epochs, report interval and learning rate",
  },
  layers: {
    type: 'number',
    defaultDescription: '1 (with --resume: the saved number)',
    describe: 'stacked recurrent layers, each feeding the next',
  },
  dropout: {
    type: 'number',
    defaultDescription: '0 (with --resume: the saved rate)',
    describe: 'dropout rate on the output of every layer but the last, in training only (as nn.LSTM)',
  },
  corpus: {
    type: 'string',
    default: BUNDLED_CORPUS,
    defaultDescription: 'the bundled 宋词三百首',
    describe: 'training text: a UTF-8 .txt, or a .zip holding one',
  },
  entry: { type: 'string', describe: 'which .txt inside a zip that holds several' },
  'max-chars': { type: 'number', default: DEFAULT_TRAIN.maxChars, describe: 'keep the first N characters of the corpus (0: all)' },
  'val-chars': {
    type: 'number',
    default: DEFAULT_TRAIN.valChars,
    describe: 'hold out the last N characters (or fraction < 1) and report their perplexity',
  },
  epochs: {
    type: 'number',
    defaultDescription: "the cell's lesson: 250 for rnn, 160 for gru and lstm (with --resume: the saved total)",
    describe: 'passes over the corpus (with --resume: the total to reach)',
  },
  'num-steps': { type: 'number', default: DEFAULT_TRAIN.numSteps, describe: 'characters per training window (backprop through time)' },
  'batch-size': { type: 'number', default: DEFAULT_TRAIN.batchSize, describe: 'windows per batch' },
  hidden: { type: 'number', default: DEFAULT_HIDDEN, describe: 'hidden units of every recurrent layer' },
  sampling: {
    choices: SAMPLINGS,
    default: DEFAULT_TRAIN.sampling as Sampling,
    describe: 'consecutive windows carry the state across batches; random resets it',
  },
  optimizer: { choices: OPTIMIZERS, describe: 'default: sgd for scratch, adam for builtin (as the lessons)' },
  lr: {
    type: 'number',
    describe: 'learning rate; default as the lessons: 100 for sgd; for adam 0.001 (rnn) or 0.01 (gru, lstm)',
  },
  clip: { type: 'number', default: DEFAULT_TRAIN.clip, describe: 'clip gradients to this global L2 norm' },
  'report-every': {
    type: 'number',
    defaultDescription: "the cell's lesson: 50 for rnn, 40 for gru and lstm",
    describe: 'print perplexity and samples, and save, every N epochs',
  },
  'pred-len': { type: 'number', default: DEFAULT_TRAIN.predLen, describe: 'characters generated after each prefix in reports' },
  prefixes: {
    type: 'string',
    array: true,
    defaultDescription: `${DEFAULT_TRAIN.prefixes.join(' ')} (or, where the corpus lacks them, prefixes taken from it)`,
    describe: 'prefixes for the report samples',
  },
  seed: { type: 'number', default: DEFAULT_TRAIN.seed, describe: 'seed for weights and window order; same seed, same backend: same run' },
  out: {
    type: 'string',
    describe: 'directory to save the model in',
    defaultDescription: 'models/<impl> (lstm), models/<cell>-<impl> (others)',
  },
  resume: {
    type: 'boolean',
    default: false,
    describe: 'continue the run saved in --out (its settings and corpus; --epochs may raise the total)',
  },
  metrics: { type: 'string', describe: 'write one JSON line per epoch, then a summary line, to this file' },
  json: { type: 'boolean', default: false, describe: 'print the final summary as JSON on stdout (report lines go to stderr)' },
  'max-perplexity': { type: 'number', describe: 'regression gate: exit 3 if the final perplexity is above this' },
  ...backendOption,
} as const;

/**
 * The arguments a command's handler receives, derived from its option definitions: every option
 * under its camelCase name, typed as yargs infers it. One new option is one new line above.
 */
export type ArgsOf<O extends Record<string, Options>> = Given<InferredOptionTypes<O>> & Optional<InferredOptionTypes<O>>;

/** Options that always have a value (a default, or demanded). */
type Given<T> = { readonly [K in keyof T as undefined extends T[K] ? never : CamelCase<K & string>]: T[K] };
/** Options that may be absent. */
type Optional<T> = { readonly [K in keyof T as undefined extends T[K] ? CamelCase<K & string> : never]?: T[K] };

/** 'max-chars' -> 'maxChars', as yargs names the parsed option. */
type CamelCase<S extends string> = S extends `${infer Head}-${infer Tail}` ? `${Head}${Capitalize<CamelCase<Tail>>}` : S;

export type BackendArgs = ArgsOf<typeof backendOption>;
export type TrainArgs = ArgsOf<typeof trainOptions>;

/** --threads: 'auto' or a whole number >= 1. */
export function threadsOf(value: string | number): ThreadsSetting {
  if (value === 'auto') return 'auto';
  const n = typeof value === 'number' ? value : value.trim() === '' ? NaN : Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`--threads must be auto or a whole number >= 1, got ${value}`);
  return n;
}

/** A whole number >= min; flags like --epochs 2.5 or --epochs abc are usage errors (the rule: core/input-rules). */
export function wholeNumber(flag: string, value: number, min = 1): number {
  return checked(wholeNumberProblem(`--${flag}`, value, min), value);
}

/**
 * --seed: a whole number from 0 to 2^53 - 1 (beyond that, distinct seeds are the same double).
 * abc, 1.5, NaN or -1 are usage errors, never silently some other seed.
 */
export function seedOf(value: number): number {
  return checked(seedProblem('--seed', value), value);
}

/** --cell, --layers, --dropout checked: what a fresh model is, besides its vocabulary and size. */
export function cellOf(args: { cell?: Cell; layers?: number; dropout?: number }): { cell: Cell; layers: number; dropout: number } {
  const layers = args.layers ?? 1;
  const dropout = args.dropout ?? 0;
  const problem = shapeProblem(layers, dropout, { layers: '--layers', dropout: '--dropout' });
  if (problem) throw new UsageError(problem);
  return { cell: args.cell ?? 'lstm', layers, dropout };
}

/**
 * bench's --cell: one cell, `all`, or a comma list (`gru,rnn`), in the order given, each once.
 * Anything else is a usage error naming what was given.
 */
export function cellsOf(value: string): Cell[] {
  const names = value.split(',').map((n) => n.trim().toLowerCase());
  const cells = names.flatMap((n) => (n === 'all' ? [...CELLS] : CELLS.filter((c) => c === n)));
  if (names.some((n) => n !== 'all' && !CELLS.includes(n as Cell)) || cells.length === 0) {
    throw new UsageError(`--cell must be ${CELLS.join(', ')}, all, or a comma list of them, got ${value === '' ? 'nothing' : value}`);
  }
  return [...new Set(cells)];
}

export function positiveNumber(flag: string, value: number): number {
  return checked(positiveNumberProblem(`--${flag}`, value), value);
}

export function nonNegative(flag: string, value: number): number {
  return checked(nonNegativeProblem(`--${flag}`, value), value);
}

/** `value`, or the rule's one line as a usage error. */
function checked(problem: string | undefined, value: number): number {
  if (problem) throw new UsageError(problem);
  return value;
}

/** The backend in use and the speed-ups in force, each said in `description` (one line). */
export interface StartedBackend extends BackendChoice {
  readonly accel: AccelStatus;
}

/**
 * Starts the TF.js backend that --backend, --threads and --accel ask for (after the input is
 * checked). `auto`, when given, is what --threads auto means for this command instead of the idle
 * cores. Multi-threaded wasm in Node is one of the speed-ups: with --accel off, wasm runs on one
 * thread, as stock TF.js does.
 */
export async function startBackend(args: BackendArgs, auto?: number): Promise<StartedBackend> {
  const threads = threadsOf(args.threads);
  if (args.accel === 'off' && threads !== 'auto' && threads > 1) {
    throw new UsageError(`--threads ${threads} needs --accel on: multi-threaded wasm in Node is one of the speed-ups`);
  }
  // Threaded wasm reaches into the backend's internals too: only on the verified version.
  const stock = args.accel === 'off' || versionMismatch(installedVersions()) !== undefined;
  const wasmThreads = stock ? 1 : threads === 'auto' && auto !== undefined ? auto : threads;
  const choice = await selectBackend(args.backend, { wasmThreads });
  const accel = setAccel({ setting: args.accel });
  return { ...choice, description: `${choice.description}; ${accel.description}`, accel };
}
