/**
 * The one minibatch sampler, shared by both models. A batch is `batchSize` windows of `numSteps`
 * character ids; targets are the same windows shifted one character on.
 */
import { UsageError } from './errors';
import type { Sampling } from './config';
import { shuffle } from './random';

/** Row-major [batchSize, numSteps] ids. */
export interface Batch {
  readonly x: Int32Array;
  readonly y: Int32Array;
  readonly batchSize: number;
  readonly numSteps: number;
}

/**
 * Consecutive sampling (the lesson's 相邻采样): the corpus is cut into `batchSize` rows, and
 * batch k+1 continues each row where batch k stopped, so the LSTM state can be carried across.
 */
export function consecutiveBatches(ids: Int32Array, batchSize: number, numSteps: number): Batch[] {
  const rowLength = Math.floor(ids.length / batchSize);
  const count = batchesPerEpoch('consecutive', ids.length, batchSize, numSteps);
  const batches: Batch[] = [];
  for (let k = 0; k < count; k++) {
    batches.push(gatherWindows(ids, batchSize, numSteps, (row) => row * rowLength + k * numSteps));
  }
  return batches;
}

/**
 * Random sampling (随机采样): the corpus is cut into windows that start every `numSteps`
 * characters; each epoch visits them in a new random order, `batchSize` at a time. Windows of a
 * batch are unrelated, so the state is reset for every batch.
 */
export function randomBatches(ids: Int32Array, batchSize: number, numSteps: number, rng: () => number): Batch[] {
  const windowCount = Math.floor((ids.length - 1) / numSteps);
  const count = batchesPerEpoch('random', ids.length, batchSize, numSteps);
  const starts = shuffle(
    Array.from({ length: windowCount }, (_, i) => i * numSteps),
    rng,
  );
  const batches: Batch[] = [];
  for (let k = 0; k < count; k++) {
    batches.push(gatherWindows(ids, batchSize, numSteps, (row) => starts[k * batchSize + row]));
  }
  return batches;
}

/**
 * The fewest characters that make one batch: consecutive sampling cuts `batchSize` rows that each
 * need `numSteps` + 1 characters (inputs and the targets one on); random sampling needs
 * `batchSize` windows and one more character for the last target. batchesPerEpoch is at least 1
 * exactly from this length on.
 */
export function minimumCorpusLength(sampling: Sampling, batchSize: number, numSteps: number): number {
  return sampling === 'consecutive' ? batchSize * (numSteps + 1) : batchSize * numSteps + 1;
}

/** Batches in an epoch of `length` characters; a UsageError if not even one fits. */
export function batchesPerEpoch(sampling: Sampling, length: number, batchSize: number, numSteps: number): number {
  const count =
    sampling === 'consecutive'
      ? Math.floor((Math.floor(length / batchSize) - 1) / numSteps)
      : Math.floor(Math.floor((length - 1) / numSteps) / batchSize);
  if (count < 1) throw tooShort(length, minimumCorpusLength(sampling, batchSize, numSteps));
  return count;
}

export function makeBatches(sampling: Sampling, ids: Int32Array, batchSize: number, numSteps: number, rng: () => number): Batch[] {
  return sampling === 'consecutive' ? consecutiveBatches(ids, batchSize, numSteps) : randomBatches(ids, batchSize, numSteps, rng);
}

function gatherWindows(ids: Int32Array, batchSize: number, numSteps: number, startOf: (row: number) => number): Batch {
  const x = new Int32Array(batchSize * numSteps);
  const y = new Int32Array(batchSize * numSteps);
  for (let row = 0; row < batchSize; row++) {
    const start = startOf(row);
    x.set(ids.subarray(start, start + numSteps), row * numSteps);
    y.set(ids.subarray(start + 1, start + 1 + numSteps), row * numSteps);
  }
  return { x, y, batchSize, numSteps };
}

function tooShort(length: number, needed: number): UsageError {
  return new UsageError(`corpus too short: ${length} characters, need at least ${needed} for this --batch-size and --num-steps`);
}
