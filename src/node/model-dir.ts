/**
 * Model directories on disk: the files of core/format.ts, written so that a reader never sees a
 * half-saved model.
 *
 * A directory is replaced as a whole: the new files are written beside it, then swapped in by
 * renames, so an interrupted save leaves the previous model loadable (from `<dir>.old` in the one
 * instant between the two renames; `resolveModelDir` looks there).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { firstLine, UsageError } from '../core/errors';
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
} from '../core/checkpoint-format';
import type { LanguageModel, ModelFiles } from '../core/models';
import type { Vocabulary } from '../core/vocab';
import { makeDirs, removeEmptyDirs } from './out-path';

export interface LoadedCheckpoint extends CheckpointFiles {
  readonly model: LanguageModel;
  readonly vocab: Vocabulary;
  /** Where it was read from (differs from the asked-for dir only after an interrupted save). */
  readonly dir: string;
}

export async function saveCheckpoint(dir: string, model: LanguageModel, info: CheckpointInfo, training?: TrainingState): Promise<void> {
  saveModelDir(dir, await checkpointFiles(model, info, training));
}

/**
 * writeModelDir, and when it fails (disk full, a read-only place), no partial files left behind
 * and the previous model back in place: the error says what failed and what is unchanged.
 */
export function saveModelDir(dir: string, files: ModelFiles): void {
  const hadModel = fs.existsSync(path.join(dir, CHECKPOINT_FILE));
  let madeDirs: string | undefined;
  try {
    madeDirs = makeDirs(path.dirname(path.resolve(dir)));
    writeModelDir(dir, files);
  } catch (err) {
    let cleanup = '';
    try {
      fs.rmSync(`${dir}.tmp`, { recursive: true, force: true });
      // Failed between the two renames: the previous model is in <dir>.old; put it back.
      if (!fs.existsSync(dir) && fs.existsSync(path.join(`${dir}.old`, CHECKPOINT_FILE))) fs.renameSync(`${dir}.old`, dir);
      if (madeDirs) removeEmptyDirs(path.dirname(path.resolve(dir)), madeDirs);
    } catch (cleanupErr) {
      cleanup = `; could not remove ${dir}.tmp either (${firstLine(cleanupErr)})`;
    }
    const unchanged = hadModel ? `the previous model in ${dir} is unchanged` : 'nothing was saved';
    throw new Error(`cannot save the model to ${dir}: ${firstLine(err)}${cleanup}; ${unchanged}`);
  }
}

/** Writes `files` as directory `dir`, replacing what was there only once all are on disk. */
export function writeModelDir(dir: string, files: ModelFiles): void {
  const tmp = `${dir}.tmp`;
  const old = `${dir}.old`;
  fs.rmSync(tmp, { recursive: true, force: true });
  makeDirs(tmp);
  for (const [name, bytes] of Object.entries(files)) {
    writeDurably(path.join(tmp, name), bytes);
    seams.afterStep(name);
  }
  if (fs.existsSync(dir)) {
    fs.rmSync(old, { recursive: true, force: true });
    fs.renameSync(dir, old);
    seams.afterStep('moved aside');
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

/** Reads `dir`'s checkpoint.json; errors name it as `where` (default: its path). */
export function readCheckpointMeta(dir: string, where = path.join(dir, CHECKPOINT_FILE)): CheckpointMeta {
  const file = path.join(dir, CHECKPOINT_FILE);
  let bytes: Uint8Array;
  try {
    bytes = fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${where}: ${(err as Error).message}`);
  }
  return parseCheckpointMeta(bytes, where);
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
    seams.write(fd, bytes);
    fs.fsyncSync(fd);
  } catch (err) {
    // Node's messages for write errors omit the file ("ENOSPC: no space left on device, write").
    throw Object.assign(new Error(`${firstLine(err)} (${file})`), { code: (err as NodeJS.ErrnoException).code });
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * The points of a save where a disk fails or a process dies, as seams: tests replace them to fail
 * a write as a full disk does, or to hold a save between its steps so that a kill lands inside it.
 */
export interface SaveSeams {
  /** Writes one model file's bytes to its open descriptor. */
  write(fd: number, bytes: Uint8Array): void;
  /** Runs after each step of a save: each file written (`step` is its name), the previous model moved aside ('moved aside'). */
  afterStep(step: string): void;
}

const REAL_SEAMS: SaveSeams = {
  write: (fd, bytes) => void fs.writeSync(fd, bytes),
  afterStep: () => undefined,
};
let seams: SaveSeams = REAL_SEAMS;

/**
 * Replaces the seams of every save this process makes from now on (the ones not given stay real),
 * and returns the function that puts the previous ones back. For tests only: the CLI never calls
 * it, so a shipped run always writes for real; a test sets it in-process, or in a spawned CLI with
 * `node --require` a file that calls it (test/failures.test.ts).
 */
export function setSaveSeams(replacement: Partial<SaveSeams>): () => void {
  const before = seams;
  seams = { ...REAL_SEAMS, ...replacement };
  return () => {
    seams = before;
  };
}
