/**
 * Saving and loading a trained model: its weights in TF.js' formats, and checkpoint.json with the
 * model and training settings, the vocabulary and the metrics so far.
 *
 * A directory is replaced as a whole: the new files are written beside it, then swapped in by
 * renames, so an interrupted save leaves the previous model loadable (from `<dir>.old` in the one
 * instant between the two renames; `resolveModelDir` looks there).
 */
import * as fs from 'fs';
import * as path from 'path';
import type { ModelConfig, TrainConfig } from './config';
import { IMPLS } from './config';
import { vocabularyOf, type Vocabulary } from './data/corpus';
import { UsageError } from './errors';
import { modelFromFiles, type LanguageModel, type ModelFiles } from './models';
import * as tf from '@tensorflow/tfjs';
import type { LstmState } from './models';
import { makeOptimizer, type EpochMetrics, type TrainPosition } from './train';

export const CHECKPOINT_FILE = 'checkpoint.json';
/** Bumped when the layout changes in a way older readers cannot follow. */
export const CHECKPOINT_FORMAT = 'lstm-lyrics/1';

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
  /** Set when training stopped mid-epoch (SIGINT): where --resume continues; (h, c) in state.bin. */
  readonly position?: Omit<TrainPosition, 'state'> & { readonly hasState: boolean };
}

/** What --resume needs besides the weights. */
export interface TrainingState {
  readonly optimizer: tf.Optimizer;
  readonly position?: TrainPosition;
}

const OPTIMIZER_FILE = 'optimizer.bin';
const STATE_FILE = 'state.bin';

export interface LoadedCheckpoint {
  readonly model: LanguageModel;
  readonly vocab: Vocabulary;
  readonly meta: CheckpointMeta;
  /** Where it was read from (differs from the asked-for dir only after an interrupted save). */
  readonly dir: string;
  /** Every file the checkpoint lists, by name. */
  readonly files: ModelFiles;
}

type CheckpointInfo = Omit<CheckpointMeta, 'files' | 'format' | 'optimizerWeights' | 'position'>;

export async function saveCheckpoint(dir: string, model: LanguageModel, meta: CheckpointInfo, training?: TrainingState): Promise<void> {
  const files: ModelFiles = await model.toFiles();
  let full: CheckpointMeta = { format: CHECKPOINT_FORMAT, ...meta, files: Object.keys(files) };
  if (training) {
    // Slot names embed per-process variable names; the optimizer restores slots by order, so
    // number them instead.
    const slots = (await training.optimizer.getWeights()).map((w, i) => ({ name: `slot${i}`, tensor: w.tensor }));
    const { data, specs } = await tf.io.encodeWeights(slots);
    files[OPTIMIZER_FILE] = new Uint8Array(tf.io.CompositeArrayBuffer.join(data));
    full = { ...full, optimizerWeights: specs };
    const position = training.position;
    if (position) {
      const { state, ...rest } = position;
      if (state) {
        const encoded = await tf.io.encodeWeights({ h: state.h, c: state.c });
        files[STATE_FILE] = new Uint8Array(tf.io.CompositeArrayBuffer.join(encoded.data));
      }
      full = { ...full, position: { ...rest, hasState: state !== null } };
    }
  }
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) writeDurably(path.join(tmp, name), bytes);
  // checkpoint.json last: a directory with it is complete.
  writeDurably(path.join(tmp, CHECKPOINT_FILE), Buffer.from(JSON.stringify(full, null, 1)));
  if (fs.existsSync(dir)) {
    fs.rmSync(old, { recursive: true, force: true });
    fs.renameSync(dir, old);
  }
  fs.renameSync(tmp, dir);
  fs.rmSync(old, { recursive: true, force: true });
}

/** The directory that holds the model meant by `dir`, or a one-line error saying how to make one. */
export function resolveModelDir(dir: string): string {
  if (fs.existsSync(path.join(dir, CHECKPOINT_FILE))) return dir;
  if (fs.existsSync(path.join(`${dir}.old`, CHECKPOINT_FILE))) return `${dir}.old`;
  throw new UsageError(`no saved model in ${dir}; make one with: lstm-lyrics train --impl scratch --out ${dir}`);
}

export function readCheckpointMeta(dir: string): CheckpointMeta {
  const file = path.join(dir, CHECKPOINT_FILE);
  let meta: CheckpointMeta;
  try {
    meta = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  if (meta?.format !== CHECKPOINT_FORMAT) {
    throw new UsageError(`${file} is not a model this version can read (format ${JSON.stringify(meta?.format)}, expected ${CHECKPOINT_FORMAT})`);
  }
  if (!IMPLS.includes(meta.model?.impl) || !Array.isArray(meta.vocab) || meta.vocab.length !== meta.model.vocabSize) {
    throw new UsageError(`${file} is corrupt: bad model settings or vocabulary`);
  }
  return meta;
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const from = resolveModelDir(dir);
  const meta = readCheckpointMeta(from);
  const files: ModelFiles = {};
  for (const name of [...meta.files, ...(meta.optimizerWeights ? [OPTIMIZER_FILE] : []), ...(meta.position?.hasState ? [STATE_FILE] : [])]) {
    const file = path.join(from, name);
    if (!fs.existsSync(file)) throw new UsageError(`model in ${from} is incomplete: ${name} is missing`);
    files[name] = fs.readFileSync(file);
  }
  let model: LanguageModel;
  try {
    model = await modelFromFiles(meta.model, files);
  } catch (err) {
    throw new UsageError(`model in ${from} is corrupt: ${firstLine((err as Error).message)}`);
  }
  return { model, vocab: vocabularyOf(meta.vocab), meta, dir: from, files };
}

/** The optimizer and mid-epoch position saved with a checkpoint, for --resume. */
export async function restoreTraining(loaded: LoadedCheckpoint, config: TrainConfig): Promise<TrainingState> {
  const { meta, files } = loaded;
  const optimizer = makeOptimizer(config.optimizer, config.lr);
  if (meta.optimizerWeights && files[OPTIMIZER_FILE]) {
    const slots = tf.io.decodeWeights(arrayBufferOf(files[OPTIMIZER_FILE]), [...meta.optimizerWeights]);
    await optimizer.setWeights(meta.optimizerWeights.map((spec) => ({ name: spec.name, tensor: slots[spec.name] })));
  }
  if (!meta.position) return { optimizer };
  let state: LstmState | null = null;
  if (meta.position.hasState) {
    const { h, c } = tf.io.decodeWeights(arrayBufferOf(files[STATE_FILE]), [
      { name: 'h', shape: [config.batchSize, meta.model.hidden], dtype: 'float32' },
      { name: 'c', shape: [config.batchSize, meta.model.hidden], dtype: 'float32' },
    ]);
    state = { h: h as tf.Tensor2D, c: c as tf.Tensor2D };
  }
  const { hasState: _, ...position } = meta.position;
  return { optimizer, position: { ...position, state } };
}

export function arrayBufferOf(bytes: Uint8Array): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
}

/** The most recently saved model under `modelsDir`, if any. */
export function latestModelDir(modelsDir: string): string | undefined {
  if (!fs.existsSync(modelsDir)) return undefined;
  const saved = fs
    .readdirSync(modelsDir)
    .filter((name) => !name.endsWith('.tmp'))
    .map((name) => path.join(modelsDir, name))
    .filter((dir) => fs.existsSync(path.join(dir, CHECKPOINT_FILE)))
    .map((dir) => ({ dir, time: fs.statSync(path.join(dir, CHECKPOINT_FILE)).mtimeMs }));
  saved.sort((a, b) => b.time - a.time);
  return saved[0]?.dir;
}

function writeDurably(file: string, bytes: Uint8Array): void {
  const fd = fs.openSync(file, 'w');
  try {
    fs.writeSync(fd, bytes);
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

function firstLine(message: string): string {
  return message.split('\n')[0];
}
