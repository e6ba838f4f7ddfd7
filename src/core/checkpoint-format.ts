/**
 * A saved model as a map of file names to bytes, the same on disk (node/model-dir.ts), over HTTP
 * and in a downloaded zip (the page): the model's own files in TF.js' formats, and checkpoint.json
 * with the model and training settings, the vocabulary and the metrics so far.
 */
import * as tf from '@tensorflow/tfjs';
import { arrayBufferOf, utf8Bytes } from './bytes';
import type { ModelConfig, TrainConfig } from './config';
import { firstLine, UsageError } from './errors';
import type { EpochMetrics, TrainPosition } from './metrics';
import { checkCheckpointMeta, checkModelFiles, DEFAULT_MODEL_BUDGET, parseJson } from './model-check';
import { modelFromFiles, type LanguageModel, type ModelFiles, type RecurrentState } from './models';
import { stateSize } from './models/types';
import { makeOptimizer } from './optimizer';
import { vocabularyOf, type Vocabulary } from './vocab';

export const CHECKPOINT_FILE = 'checkpoint.json';
/** Bumped when the layout changes in a way older readers cannot follow. */
export const CHECKPOINT_FORMAT = 'lstm-lyrics/1';
/** Optimizer slots (Adam's moments), for --resume. */
export const OPTIMIZER_FILE = 'optimizer.bin';
/** The carried recurrent state of a run stopped mid-epoch (see RecurrentState for the order). */
export const STATE_FILE = 'state.bin';

export interface CheckpointMeta {
  readonly format: typeof CHECKPOINT_FORMAT;
  readonly model: ModelConfig;
  readonly train: TrainConfig;
  /** Characters in id order. */
  readonly vocab: readonly string[];
  /** Epochs completed. */
  readonly epoch: number;
  readonly savedAt: string;
  readonly backend: string;
  readonly versions: Readonly<Record<string, string>>;
  readonly corpusSha256: string;
  readonly history: readonly EpochMetrics[];
  /** The model's own files in the directory, besides checkpoint.json. */
  readonly files: readonly string[];
  /** Optimizer slots (Adam's moments, the step count) in optimizer.bin, in the optimizer's order. */
  readonly optimizerWeights?: readonly tf.io.WeightsManifestEntry[];
  /** Set when training stopped mid-epoch (SIGINT): where --resume continues; the state in state.bin. */
  readonly position?: Omit<TrainPosition, 'state'> & { readonly hasState: boolean };
}

/** What the caller says about a model when saving it; the rest of CheckpointMeta is derived. */
export type CheckpointInfo = Omit<CheckpointMeta, 'files' | 'format' | 'optimizerWeights' | 'position'>;

/** What --resume needs besides the weights. */
export interface TrainingState {
  readonly optimizer: tf.Optimizer;
  readonly position?: TrainPosition;
}

/** A checkpoint as read back: its record and its files by name. */
export interface CheckpointFiles {
  readonly meta: CheckpointMeta;
  readonly files: ModelFiles;
}

/**
 * Every file of a saved model, checkpoint.json last (a writer that writes in order and stops
 * half-way leaves a directory without it, which readers treat as incomplete).
 */
export async function checkpointFiles(model: LanguageModel, info: CheckpointInfo, training?: TrainingState): Promise<ModelFiles> {
  const files: ModelFiles = await model.toFiles();
  let meta: CheckpointMeta = { format: CHECKPOINT_FORMAT, ...info, files: Object.keys(files) };
  if (training) {
    // Slot names embed per-process variable names; the optimizer restores slots by order, so
    // number them instead.
    const weights = await training.optimizer.getWeights();
    const slots = weights.map((w, i) => ({ name: `slot${i}`, tensor: w.tensor }));
    // getWeights() makes a new scalar for the iteration count each call (the slots are the
    // optimizer's own variables): ours to free, or every save leaks one tensor.
    const made = weights.map((w) => w.tensor).filter((t) => !(t instanceof tf.Variable));
    const { data, specs } = await tf.io.encodeWeights(slots).finally(() => tf.dispose(made));
    files[OPTIMIZER_FILE] = new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
    meta = { ...meta, optimizerWeights: specs };
    const position = training.position;
    if (position) {
      const { state, ...rest } = position;
      if (state) {
        // The file is the tensors' floats in order (one LSTM layer: h then c, as before stacking).
        const encoded = await tf.io.encodeWeights(state.map((tensor, i) => ({ name: stateName(i), tensor })));
        files[STATE_FILE] = new Uint8Array(tf.io.CompositeArrayBuffer.join(encoded.data));
      }
      meta = { ...meta, position: { ...rest, hasState: state !== null } };
    }
  }
  files[CHECKPOINT_FILE] = utf8Bytes(JSON.stringify(meta, null, 1));
  return files;
}

/**
 * Reads and checks checkpoint.json (core/model-check.ts: every field, the files it names, the
 * memory the model needs against `budget`); `where` names it in the one-line error.
 */
export function parseCheckpointMeta(bytes: Uint8Array, where: string, budget = DEFAULT_MODEL_BUDGET): CheckpointMeta {
  const fail = (problem: string): never => {
    // "cannot read" for what is not a checkpoint at all; "corrupt" for a checkpoint with a bad field.
    const unreadable = /^(not valid JSON|not UTF-8 text|larger than|not a JSON object)/.test(problem);
    throw new UsageError(
      unreadable
        ? `cannot read ${where}: ${problem}`
        : problem.startsWith('not a model')
          ? `${where} is ${problem}`
          : `${where} is corrupt: ${problem}`,
    );
  };
  const value = parseJson(bytes, fail);
  return checkCheckpointMeta(value, CHECKPOINT_FORMAT, fail, budget) as unknown as CheckpointMeta;
}

/** The files besides checkpoint.json that a checkpoint needs, by name. */
export function filesOf(meta: CheckpointMeta): string[] {
  return [...meta.files, ...(meta.optimizerWeights ? [OPTIMIZER_FILE] : []), ...(meta.position?.hasState ? [STATE_FILE] : [])];
}

/** Rebuilds a saved model from its files; `where` names it in the one-line error. */
export async function modelOfCheckpoint(
  { meta, files }: CheckpointFiles,
  where: string,
): Promise<{ model: LanguageModel; vocab: Vocabulary }> {
  for (const name of filesOf(meta)) {
    if (!files[name]) throw new UsageError(`model in ${where} is incomplete: ${name} is missing`);
  }
  // Before any tensor or layer is made: a bad file costs one line, not gigabytes.
  checkModelFiles(meta, files, (problem) => {
    throw new UsageError(`model in ${where} is corrupt: ${problem}`);
  });
  try {
    return { model: await modelFromFiles(meta.model, files), vocab: vocabularyOf(meta.vocab) };
  } catch (err) {
    throw new UsageError(`model in ${where} is corrupt: ${firstLine(err)}`);
  }
}

function stateName(i: number): string {
  return `state${i}`;
}

/** The optimizer and mid-epoch position saved with a checkpoint, for --resume. */
export async function restoreTraining({ meta, files }: CheckpointFiles, config: TrainConfig): Promise<TrainingState> {
  const optimizer = makeOptimizer(config.optimizer, config.lr);
  if (meta.optimizerWeights && files[OPTIMIZER_FILE]) {
    const slots = tf.io.decodeWeights(arrayBufferOf(files[OPTIMIZER_FILE]), [...meta.optimizerWeights]);
    await optimizer.setWeights(meta.optimizerWeights.map((spec) => ({ name: spec.name, tensor: slots[spec.name] })));
  }
  if (!meta.position) return { optimizer };
  let state: RecurrentState | null = null;
  if (meta.position.hasState) {
    const names = Array.from({ length: stateSize(meta.model) }, (_, i) => stateName(i));
    const tensors = tf.io.decodeWeights(
      arrayBufferOf(files[STATE_FILE]),
      names.map((name) => ({ name, shape: [config.batchSize, meta.model.hidden], dtype: 'float32' as const })),
    );
    state = names.map((name) => tensors[name] as tf.Tensor2D);
  }
  const { hasState: _, ...position } = meta.position;
  return { optimizer, position: { ...position, state } };
}
