/**
 * Every setting of a run, as typed objects with the lesson's defaults.
 *
 * Model settings (what the network is) and training settings (how it is trained) are kept apart:
 * the model settings alone rebuild a saved model, the training settings are recorded beside it.
 */

/** Which network: written by hand from tf ops, or tf.layers (simpleRNN, gru, lstm). */
export type Impl = 'scratch' | 'builtin';
export const IMPLS: readonly Impl[] = ['scratch', 'builtin'];

/** The recurrent cell, one per lesson of the series: the plain RNN, the GRU and the LSTM. */
export type Cell = 'rnn' | 'gru' | 'lstm';
export const CELLS: readonly Cell[] = ['rnn', 'gru', 'lstm'];

/** Consecutive windows carry the LSTM state across batches; random windows reset it. */
export type Sampling = 'consecutive' | 'random';
export const SAMPLINGS: readonly Sampling[] = ['consecutive', 'random'];

export type OptimizerName = 'sgd' | 'adam';
export const OPTIMIZERS: readonly OptimizerName[] = ['sgd', 'adam'];

/** What a network is: enough to rebuild it before loading its weights. */
export interface ModelConfig {
  readonly impl: Impl;
  readonly cell: Cell;
  /** Stacked recurrent layers, each feeding the next; the last one feeds the output layer. */
  readonly layers: number;
  /**
   * Dropout rate on the output of every recurrent layer but the last, in training only (where
   * nn.LSTM(num_layers, dropout) puts it). 0: none.
   */
  readonly dropout: number;
  /** Number of distinct characters; inputs are one-hot over it, outputs are logits over it. */
  readonly vocabSize: number;
  /** Hidden units of every recurrent layer. */
  readonly hidden: number;
}

/** "scratch GRU", "builtin LSTM, 2 layers, dropout 0.2": what a model is, in banners and labels. */
export function describeModel(model: Pick<ModelConfig, 'impl' | 'cell' | 'layers' | 'dropout'>): string {
  return `${model.impl} ${describeCell(model)}`;
}

/** "GRU", "LSTM, 2 layers, dropout 0.2": the network whichever impl runs it. */
export function describeCell({ cell, layers, dropout }: Pick<ModelConfig, 'cell' | 'layers' | 'dropout'>): string {
  return `${cell.toUpperCase()}${layers > 1 ? `, ${layers} layers` : ''}${dropout > 0 ? `, dropout ${dropout}` : ''}`;
}

/** What a model saved before cells and layers existed was: one LSTM layer without dropout. */
export const LEGACY_MODEL: Pick<ModelConfig, 'cell' | 'layers' | 'dropout'> = { cell: 'lstm', layers: 1, dropout: 0 };

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

/** The settings each lesson of the series trains its cell with; explicit flags override them. */
export interface LessonDefaults {
  readonly epochs: number;
  readonly reportEvery: number;
  readonly optimizer: OptimizerName;
  readonly lr: number;
}

/**
 * The lessons' settings by cell and implementation: every scratch cell trains with plain SGD at
 * lr 100; nn.RNN with Adam at lr 0.001, nn.GRU and nn.LSTM at lr 0.01. The RNN lesson runs 250
 * epochs reporting every 50, the GRU and LSTM lessons 160 reporting every 40.
 */
export function lessonDefaults(cell: Cell, impl: Impl): LessonDefaults {
  const schedule = cell === 'rnn' ? { epochs: 250, reportEvery: 50 } : { epochs: 160, reportEvery: 40 };
  if (impl === 'scratch') return { ...schedule, optimizer: 'sgd', lr: 100 };
  return { ...schedule, optimizer: 'adam', lr: cell === 'rnn' ? 0.001 : 0.01 };
}

/** The LSTM lesson's optimizers, from lessonDefaults so the two never disagree. */
export const DEFAULT_OPTIMIZER: Readonly<Record<Impl, { optimizer: OptimizerName; lr: number }>> = {
  scratch: { optimizer: lessonDefaults('lstm', 'scratch').optimizer, lr: lessonDefaults('lstm', 'scratch').lr },
  builtin: { optimizer: lessonDefaults('lstm', 'builtin').optimizer, lr: lessonDefaults('lstm', 'builtin').lr },
};

/** The corpus bundled with the tool (Song-dynasty ci, public domain; see corpus/README.md). */
export const DEFAULT_CORPUS = 'corpus/songci300.txt';
