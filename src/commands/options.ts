/**
 * Command-line options and their checks, in one place, tied to the config types they fill.
 */
import * as path from 'path';
import type { Argv } from 'yargs';
import { BACKEND_PREFERENCES, type BackendPreference } from '../backend';
import { DEFAULT_HIDDEN, DEFAULT_TRAIN, IMPLS, OPTIMIZERS, SAMPLINGS, type Impl, type OptimizerName, type Sampling } from '../config';
import { UsageError } from '../errors';

/** The corpus that ships in corpus/, found relative to the installed package, not the cwd. */
export const BUNDLED_CORPUS = path.resolve(__dirname, '..', '..', 'corpus', 'songci300.txt');

export const backendOption = {
  backend: {
    choices: BACKEND_PREFERENCES,
    default: 'auto' as BackendPreference,
    describe: 'TF.js backend: auto tries CUDA, native TensorFlow, wasm, then plain JS',
  },
  threads: {
    type: 'number',
    default: 1,
    describe: 'wasm only: compute threads (2 helps on an idle 2-core machine, hurts on a busy one)',
  },
} as const;

export const trainOptions = {
  impl: { choices: IMPLS, default: 'scratch' as Impl, describe: 'scratch: hand-written LSTM from tf ops; builtin: tf.layers.lstm' },
  corpus: { type: 'string', default: BUNDLED_CORPUS, defaultDescription: 'the bundled 宋词三百首', describe: 'training text: a UTF-8 .txt, or a .zip holding one' },
  entry: { type: 'string', describe: 'which .txt inside a zip that holds several' },
  'max-chars': { type: 'number', default: DEFAULT_TRAIN.maxChars, describe: 'keep the first N characters of the corpus (0: all)' },
  'val-chars': { type: 'number', default: DEFAULT_TRAIN.valChars, describe: 'hold out the last N characters (or fraction < 1) and report their perplexity' },
  epochs: { type: 'number', default: DEFAULT_TRAIN.epochs, describe: 'passes over the corpus (with --resume: the total to reach)' },
  'num-steps': { type: 'number', default: DEFAULT_TRAIN.numSteps, describe: 'characters per training window (backprop through time)' },
  'batch-size': { type: 'number', default: DEFAULT_TRAIN.batchSize, describe: 'windows per batch' },
  hidden: { type: 'number', default: DEFAULT_HIDDEN, describe: 'LSTM hidden units' },
  sampling: { choices: SAMPLINGS, default: DEFAULT_TRAIN.sampling as Sampling, describe: 'consecutive windows carry the state across batches; random resets it' },
  optimizer: { choices: OPTIMIZERS, describe: 'default: sgd for scratch, adam for builtin (as the lesson)' },
  lr: { type: 'number', describe: 'learning rate; default: 100 for sgd, 0.01 for adam (as the lesson)' },
  clip: { type: 'number', default: DEFAULT_TRAIN.clip, describe: 'clip gradients to this global L2 norm' },
  'report-every': { type: 'number', default: DEFAULT_TRAIN.reportEvery, describe: 'print perplexity and samples, and save, every N epochs' },
  'pred-len': { type: 'number', default: DEFAULT_TRAIN.predLen, describe: 'characters generated after each prefix in reports' },
  prefixes: { type: 'string', array: true, default: [...DEFAULT_TRAIN.prefixes], describe: 'prefixes for the report samples' },
  seed: { type: 'number', default: DEFAULT_TRAIN.seed, describe: 'seed for weights and window order; same seed, same backend: same run' },
  out: { type: 'string', describe: 'directory to save the model in', defaultDescription: 'models/<impl>' },
  resume: { type: 'boolean', default: false, describe: 'continue the run saved in --out (its settings and corpus; --epochs may raise the total)' },
  metrics: { type: 'string', describe: 'write one JSON line per epoch, then a summary line, to this file' },
  json: { type: 'boolean', default: false, describe: 'print the final summary as JSON on stdout (report lines go to stderr)' },
  'max-perplexity': { type: 'number', describe: 'regression gate: exit 3 if the final perplexity is above this' },
  ...backendOption,
} as const;

export type TrainArgs = {
  impl: Impl;
  corpus: string;
  entry?: string;
  maxChars: number;
  valChars: number;
  epochs: number;
  numSteps: number;
  batchSize: number;
  hidden: number;
  sampling: Sampling;
  optimizer?: OptimizerName;
  lr?: number;
  clip: number;
  reportEvery: number;
  predLen: number;
  prefixes: string[];
  seed: number;
  out?: string;
  resume: boolean;
  metrics?: string;
  json: boolean;
  maxPerplexity?: number;
  backend: BackendPreference;
  threads: number;
};

export function withTrainOptions<T>(y: Argv<T>): Argv<T> {
  return y.options(trainOptions as unknown as Parameters<Argv<T>['options']>[0]) as Argv<T>;
}

/** A whole number >= min; flags like --epochs 2.5 or --epochs abc are usage errors. */
export function wholeNumber(flag: string, value: number, min = 1): number {
  if (!Number.isInteger(value) || value < min) {
    throw new UsageError(`--${flag} must be a whole number >= ${min}, got ${Number.isNaN(value) ? 'not a number' : value}`);
  }
  return value;
}

export function positiveNumber(flag: string, value: number): number {
  if (!Number.isFinite(value) || value <= 0) throw new UsageError(`--${flag} must be a number > 0, got ${value}`);
  return value;
}

export function nonNegative(flag: string, value: number): number {
  if (!Number.isFinite(value) || value < 0) throw new UsageError(`--${flag} must be a number >= 0, got ${value}`);
  return value;
}
