/**
 * One job: the page's model and training settings without the DOM or TF.js (so tests can load
 * it): the train form's defaults, which follow the picked cell's lesson as `lstm-lyrics train
 * --cell` does, and a model's cell, layers and dropout in a few words for the table.
 */
import { DEFAULT_HIDDEN, DEFAULT_TRAIN, LEGACY_MODEL, lessonDefaults, type Cell, type Impl, type ModelConfig } from '../core/config';

/**
 * What a network is, in a few words: "GRU", "LSTM ×2", "LSTM ×2, dropout 0.3". A model listed
 * without a cell is one saved before the series had cells: one LSTM layer.
 */
export function describeShape(m: Partial<Pick<ModelConfig, 'cell' | 'layers' | 'dropout'>>): string {
  const cell = m.cell ?? LEGACY_MODEL.cell;
  const layers = m.layers ?? LEGACY_MODEL.layers;
  const dropout = m.dropout ?? LEGACY_MODEL.dropout;
  return `${cell.toUpperCase()}${layers > 1 ? ` ×${layers}` : ''}${dropout > 0 ? `, dropout ${dropout}` : ''}`;
}

/** The training settings the page offers, with the lesson's defaults. */
export interface PageTrainSettings {
  readonly cell: Cell;
  readonly layers: number;
  readonly dropout: number;
  readonly hidden: number;
  readonly numSteps: number;
  readonly batchSize: number;
  readonly epochs: number;
  readonly maxChars: number;
  readonly lr: Readonly<Record<Impl, number>>;
  readonly clip: number;
  readonly reportEvery: number;
  readonly seed: number;
}

/**
 * The lesson of `cell`'s settings, as `lstm-lyrics train --cell CELL` uses them: its epochs, report
 * interval and learning rates (lessonDefaults); the rest is the same in every lesson. One layer,
 * no dropout.
 */
export function pageTrainDefaults(cell: Cell): PageTrainSettings {
  const scratch = lessonDefaults(cell, 'scratch');
  const builtin = lessonDefaults(cell, 'builtin');
  return {
    cell,
    layers: 1,
    dropout: 0,
    hidden: DEFAULT_HIDDEN,
    numSteps: DEFAULT_TRAIN.numSteps,
    batchSize: DEFAULT_TRAIN.batchSize,
    // The two impls share the lesson's schedule; only their optimizers differ.
    epochs: scratch.epochs,
    maxChars: DEFAULT_TRAIN.maxChars,
    lr: { scratch: scratch.lr, builtin: builtin.lr },
    clip: DEFAULT_TRAIN.clip,
    reportEvery: scratch.reportEvery,
    seed: DEFAULT_TRAIN.seed,
  };
}

/** The LSTM lesson's settings, the form's first values. */
export const PAGE_TRAIN_DEFAULTS: PageTrainSettings = pageTrainDefaults(LEGACY_MODEL.cell);
