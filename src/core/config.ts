/**
 * Every setting of a run, as typed objects with the lesson's defaults.
 *
 * Model settings (what the network is) and training settings (how it is trained) are kept apart:
 * the model settings alone rebuild a saved model, the training settings are recorded beside it.
 */

/** Which LSTM: written by hand from tf ops, or tf.layers.lstm. */
export type Impl = 'scratch' | 'builtin';
export const IMPLS: readonly Impl[] = ['scratch', 'builtin'];

/** Consecutive windows carry the LSTM state across batches; random windows reset it. */
export type Sampling = 'consecutive' | 'random';
export const SAMPLINGS: readonly Sampling[] = ['consecutive', 'random'];

export type OptimizerName = 'sgd' | 'adam';
export const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'adam'];

/** What a network is: enough to rebuild it before loading its weights. */
export interface ModelConfig {
  readonly impl: Impl;
  /** Number of distinct characters; inputs are one-hot over it, outputs are logits over it. */
  readonly vocabSize: number;
  /** LSTM hidden units. */
  readonly hidden: number;
}

/** How a network is trained. */
export interface TrainConfig {
  /** A .txt or .zip file of UTF-8 text. */
  readonly corpus: string;
  /** Which .txt entry of a zip to read; needed only when it holds several. */
  readonly entry?: string;
  /** Keep the first N characters of the corpus (0 keeps all). */
  readonly maxChars: number;
  /** Hold out the last N characters (or this fraction, if below 1) for a held-out perplexity. */
  readonly valChars: number;
  readonly epochs: number;
  /** Characters per training window (time steps of truncated backprop). */
  readonly numSteps: number;
  readonly batchSize: number;
  readonly sampling: Sampling;
  readonly optimizer: OptimizerName;
  readonly lr: number;
  /** Gradients are rescaled so that their global L2 norm is at most this. */
  readonly clip: number;
  /** Print perplexity and sample lines (and save) every N epochs. */
  readonly reportEvery: number;
  /** Characters generated after each prefix in reports. */
  readonly predLen: number;
  readonly prefixes: readonly string[];
  /** Seeds initial weights and window order; the same seed repeats a run on the same backend. */
  readonly seed: number;
}

/** The lesson's settings (d2l-zh, "LSTM from scratch" and "concise LSTM"). */
export const DEFAULT_HIDDEN = 256;

export const DEFAULT_TRAIN: Omit<TrainConfig, 'corpus' | 'optimizer' | 'lr'> = {
  maxChars: 10_000,
  valChars: 0,
  epochs: 160,
  numSteps: 35,
  batchSize: 32,
  sampling: 'consecutive',
  clip: 0.01,
  reportEvery: 40,
  predLen: 50,
  prefixes: ['分开', '不分开'],
  seed: 0,
};

/** The lesson trains its scratch LSTM with plain SGD at lr 100 and nn.LSTM with Adam at lr 0.01. */
export const DEFAULT_OPTIMIZER: Readonly<Record<Impl, { optimizer: OptimizerName; lr: number }>> = {
  scratch: { optimizer: 'sgd', lr: 100 },
  builtin: { optimizer: 'adam', lr: 0.01 },
};

/** The corpus bundled with the tool (Song-dynasty ci, public domain; see corpus/README.md). */
export const DEFAULT_CORPUS = 'corpus/songci300.txt';
