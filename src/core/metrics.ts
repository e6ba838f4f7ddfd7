/**
 * What training measures and where it stands: the types the loop produces and the saved model
 * records, and the small rules both sides use. Below the training loop, so saving and the
 * commands need not import the loop for them.
 */
import type { RecurrentState } from './models/types';

/** What one epoch did; a line of --metrics output. */
export interface EpochMetrics {
  readonly epoch: number;
  /** Mean cross-entropy per character over the epoch (nats). */
  readonly loss: number;
  /** exp(loss): the lesson's measure. 1 is perfect; the vocabulary size is a uniform guess. */
  readonly perplexity: number;
  /** Perplexity on the held-out tail of the corpus (--val-chars), which training never sees. */
  readonly heldOutPerplexity?: number;
  readonly seconds: number;
  readonly charsPerSecond: number;
  /** Mean over the epoch's batches of the global gradient norm, before clipping. */
  readonly gradNorm: number;
  readonly lr: number;
  /** tf.memory().numTensors after the epoch: flat from epoch to epoch, or something leaks. */
  readonly numTensors: number;
}

/** A report: the epoch's metrics and a greedy line for each prefix. */
export interface Report {
  readonly metrics: EpochMetrics;
  readonly samples: readonly string[];
}

/**
 * Where training stands, mid-epoch included: enough to continue exactly where it stopped.
 * `state` (the LSTM state carried by consecutive sampling) is owned by the position.
 */
export interface TrainPosition {
  /** The epoch in progress, from 1. */
  readonly epoch: number;
  /** Batches of that epoch already trained. */
  readonly batch: number;
  /** Over those batches: summed loss and summed gradient norm, and seconds spent. */
  readonly lossSum: number;
  readonly normSum: number;
  readonly seconds: number;
  readonly state: RecurrentState | null;
}

/** Reports (perplexity, samples, a save) fall every `reportEvery` epochs and on the last one. */
export function isReportEpoch(epoch: number, reportEvery: number, lastEpoch: number): boolean {
  return epoch % reportEvery === 0 || epoch === lastEpoch;
}

/**
 * The middle value, the upper one of an even count: the rule of the lesson's reference script
 * (sorted[n // 2]), so our "median seconds per epoch" compares like for like with its own.
 */
export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? NaN;
}
