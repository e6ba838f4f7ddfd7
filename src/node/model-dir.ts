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
import * as tf from '@tensorflow/tfjs';
import { firstLine, UsageError } from '../core/errors';
import {
  CHECKPOINT_FILE,
  checkpointFiles,
  modelOfCheckpoint,
  parseCheckpointMeta,
  type CheckpointFiles,
  type CheckpointInfo,
  type CheckpointMeta,
  type TrainingState,
} from '../core/checkpoint-format';
import { fileLimits, MAX_JSON_BYTES, type FileLimit } from '../core/model-check';
import type { LanguageModel, ModelFiles } from '../core/models';
import type { Vocabulary } from '../core/vocab';
import { backendMemoryLimit } from './memory-limit';
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

/** Reads `dir`'s checkpoint.json and checks it (core/model-check.ts); errors name it as `where` (default: its path). */
export function readCheckpointMeta(dir: string, where = path.join(dir, CHECKPOINT_FILE)): CheckpointMeta {
  const bytes = readRegularFile(path.join(dir, CHECKPOINT_FILE), { max: MAX_JSON_BYTES }, (problem) => {
    throw new UsageError(`cannot read ${where}: ${problem}`);
  });
  return parseCheckpointMeta(bytes, where, modelBudget());
}

export async function loadCheckpoint(dir: string): Promise<LoadedCheckpoint> {
  const from = resolveModelDir(dir);
  const meta = readCheckpointMeta(from);
  const files: ModelFiles = {};
  // Each file to the limit the checked checkpoint gives, so a file of the wrong length stops the
  // read at once (a weights.bin of /dev/zero's length is never read).
  for (const [name, limit] of Object.entries(fileLimits(meta))) {
    files[name] = readRegularFile(path.join(from, name), limit, (problem, missing) => {
      throw new UsageError(
        missing ? `model in ${from} is incomplete: ${name} is missing` : `model in ${from} is corrupt: ${name} ${problem}`,
      );
    });
  }
  const { model, vocab } = await modelOfCheckpoint({ meta, files }, from);
  return { model, vocab, meta, dir: from, files };
}

/**
 * The memory a loaded model may take: the chosen backend's, or wasm's (the smallest) when none is
 * chosen yet (the server's listing reads checkpoints without one; tf.getBackend() would start one).
 */
function modelBudget(): number {
  return backendMemoryLimit(tf.engine().backendName ?? 'wasm').bytes;
}

const NO_FOLLOW = fs.constants.O_NOFOLLOW ?? 0;
const NON_BLOCK = fs.constants.O_NONBLOCK ?? 0;

/**
 * The bytes of `file`, only if it is a regular file (not a link, a FIFO, a device, a directory)
 * within `limit`: exactly `exact` bytes, or at most `max`. Never blocks (a FIFO is refused before
 * it is opened, and opened non-blocking in case one replaced the file since) and never reads past
 * the limit (the size is checked on the open descriptor, then one byte more is asked for to catch
 * a file that grew). `fail` throws; `missing` is set when there is no such file.
 */
export function readRegularFile(file: string, limit: FileLimit, fail: (problem: string, missing?: boolean) => never): Uint8Array {
  let before: fs.Stats;
  try {
    before = fs.lstatSync(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return fail(code === 'ENOENT' ? 'is missing' : `cannot be read (${code ?? 'error'})`, code === 'ENOENT');
  }
  if (!before.isFile()) fail(`is not a regular file (${kindOf(before)})`);
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | NO_FOLLOW | NON_BLOCK);
  } catch (err) {
    return fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  try {
    const st = fs.fstatSync(fd);
    if (!st.isFile() || st.ino !== before.ino || st.dev !== before.dev) fail('was replaced while being read');
    const want = 'exact' in limit ? limit.exact : Math.min(st.size, limit.max);
    if ('exact' in limit && st.size !== limit.exact) fail(`has ${st.size} bytes, expected ${limit.exact}`);
    if ('max' in limit && st.size > limit.max) fail(`is larger than ${limit.max / 1024 / 1024} MiB (${st.size} bytes)`);
    const bytes = Buffer.alloc(want + 1);
    let got = 0;
    while (got < bytes.length) {
      const n = fs.readSync(fd, bytes, got, bytes.length - got, got);
      if (n === 0) break;
      got += n;
    }
    if (got > want) fail('grew while being read');
    if ('exact' in limit && got < want) fail(`has ${got} bytes, expected ${want}`);
    return bytes.subarray(0, got);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    return fail(`cannot be read (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  } finally {
    fs.closeSync(fd);
  }
}

function kindOf(st: fs.Stats): string {
  if (st.isSymbolicLink()) return 'a symbolic link';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  if (st.isSocket()) return 'a socket';
  return 'not a plain file';
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
