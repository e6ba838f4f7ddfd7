/**
 * Model directories on disk: the files of core/format.ts, written so that a reader never sees a
 * half-saved model.
 *
 * A directory is replaced as a whole: the new files are written beside it, then swapped in by
 * renames, so an interrupted save leaves the previous model loadable (from `<dir>.old` in the one
 * instant between the two renames; `resolveModelDir` looks there).
 */
import * as fs from 'fs';
import * as path from 'path';
import { UsageError } from '../core/errors';
import {
  CHECKPOINT_FILE,
  checkpointFiles,
  filesOf,
  modelOfCheckpoint,
  parseCheckpointMeta,
  type CheckpointFiles,
  type CheckpointInfo,
  type CheckpointMeta,
  type TrainingState,
} from '../core/format';
import type { LanguageModel, ModelFiles } from '../core/models';
import type { Vocabulary } from '../core/vocab';

export interface LoadedCheckpoint extends CheckpointFiles {
  readonly model: LanguageModel;
  readonly vocab: Vocabulary;
  /** Where it was read from (differs from the asked-for dir only after an interrupted save). */
  readonly dir: string;
}

export async function saveCheckpoint(dir: string, model: LanguageModel, info: CheckpointInfo, training?: TrainingState): Promise<void> {
  writeModelDir(dir, await checkpointFiles(model, info, training));
}

/** Writes `files` as directory `dir`, replacing what was there only once all are on disk. */
export function writeModelDir(dir: string, files: ModelFiles): void {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  for (const [name, bytes] of Object.entries(files)) {
    writeDurably(path.join(tmp, name), bytes);
    pauseForTests();
  }
  if (fs.existsSync(dir)) {
    fs.rmSync(old, { recursive: true, force: true });
    fs.renameSync(dir, old);
    pauseForTests();
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
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${file}: ${(err as Error).message}`);
  }
  return parseCheckpointMeta(bytes, file);
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const from = resolveModelDir(dir);
  const meta = readCheckpointMeta(from);
  const files: ModelFiles = {};
  for (const name of filesOf(meta)) {
    const file = path.join(from, name);
    if (!fs.existsSync(file)) throw new UsageError(`model in ${from} is incomplete: ${name} is missing`);
    files[name] = fs.readFileSync(file);
  }
  const { model, vocab } = await modelOfCheckpoint({ meta, files }, from);
  return { model, vocab, meta, dir: from, files };
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

/**
 * Test-only: LSTM_LYRICS_TEST_SAVE_PAUSE_MS pauses a save after each of its steps, so a test can
 * kill the process inside a save on purpose rather than by luck (test/failures.test.ts).
 */
function pauseForTests(): void {
  const ms = Number(process.env.LSTM_LYRICS_TEST_SAVE_PAUSE_MS ?? 0);
  if (ms > 0) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}
