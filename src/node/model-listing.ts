/**
 * The models folder as the page sees it: the model directories under it (models.json), and which
 * of a listed model's files may be read. A model is named by its listed name and a file by a name
 * its checkpoint.json lists, and the file's real path (links resolved) must lie inside the models
 * folder. One module for both, so that the list and what the server and the export read from it
 * follow the same rules.
 *
 * The folder holds files other people made, so nothing in it is trusted: a file is looked at with
 * lstat before it is opened (a FIFO or a device is never opened: opening a FIFO blocks the whole
 * server), opened non-blocking without following a last link and checked again on the descriptor,
 * read no further than its size and a cap, and no reason given for refusing it quotes its content.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { firstLine, UsageError } from '../core/errors';
import { CHECKPOINT_FILE, filesOf, parseCheckpointMeta, type CheckpointMeta } from '../core/checkpoint-format';
import { isSafeName } from './site-layout';

/** checkpoint.json is a few KiB (a vocabulary, a history); anything this big is not one, and is not read. */
export const CHECKPOINT_SIZE_CAP = 1024 * 1024;

export const MODEL_LIST_FILE = 'models.json';

/** One line of the model list: what the page shows, and what it needs to fetch the model. */
export type ModelListing = ReadableModel | UnreadableModel;

export interface ReadableModel {
  /** The directory's path relative to the models folder, with '/' separators. */
  readonly name: string;
  readonly readable: true;
  readonly impl: string;
  /** The recurrent cell, its stacked layers and dropout; a checkpoint saved before they existed lists as one LSTM layer. */
  readonly cell: string;
  readonly layers: number;
  readonly dropout: number;
  readonly hidden: number;
  readonly vocabSize: number;
  readonly epochs: number;
  readonly perplexity: number | null;
  readonly heldOutPerplexity: number | null;
  /** The corpus file's name (not its path on the server's disk). */
  readonly corpus: string;
  readonly savedAt: string;
  readonly history: readonly { epoch: number; perplexity: number; heldOutPerplexity?: number }[];
}

export interface UnreadableModel {
  readonly name: string;
  readonly readable: false;
  readonly reason: string;
}

/** How deep below the models folder model directories are looked for (runs/compare/scratch: 3). */
const MAX_DEPTH = 4;

/**
 * Every model directory under `root`: a directory holding checkpoint.json, or a directory of files
 * without one (listed as unreadable, like one whose checkpoint cannot be parsed). In-progress
 * saves (`.tmp`, `.old`) and hidden entries are skipped. Never throws for what it finds on disk.
 */
export function listModels(root: string, cache: CheckpointCache = new CheckpointCache()): ModelListing[] {
  const found: ModelListing[] = [];
  let rootReal: string;
  try {
    rootReal = fs.realpathSync(root);
  } catch {
    return found;
  }
  const visit = (rel: string[], depth: number) => {
    const dir = path.join(rootReal, ...rel);
    const name = rel.join('/');
    let entries: fs.Dirent[];
    try {
      if (rel.length > 0 && !insideRoot(rootReal, fs.realpathSync(dir))) {
        found.push({ name, readable: false, reason: 'a link out of the models folder' });
        return;
      }
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch (err) {
      if (rel.length > 0) found.push({ name, readable: false, reason: firstLine(err) });
      return;
    }
    if (entries.some((e) => e.name === CHECKPOINT_FILE)) {
      found.push(describeModel(dir, name, rootReal, cache));
      return;
    }
    const subdirs = entries.filter(
      (e) => isListable(e.name) && (e.isDirectory() || (e.isSymbolicLink() && isDirectory(path.join(dir, e.name)))),
    );
    if (rel.length > 0 && subdirs.length === 0 && entries.some((e) => e.isFile())) {
      found.push({ name, readable: false, reason: `no ${CHECKPOINT_FILE} (not a saved model, or its save never finished)` });
      return;
    }
    if (depth >= MAX_DEPTH) return;
    for (const sub of subdirs.sort((a, b) => a.name.localeCompare(b.name))) visit([...rel, sub.name], depth + 1);
  };
  visit([], 0);
  cache.keepOnly(found.map((m) => path.join(rootReal, ...m.name.split('/'), CHECKPOINT_FILE)));
  return found;
}

function describeModel(dir: string, name: string, rootReal: string, cache: CheckpointCache): ModelListing {
  try {
    const meta = cache.read(dir, rootReal, `${name}/${CHECKPOINT_FILE}`);
    const files = filesOf(meta);
    const unsafe = files.filter((file) => !isSafeName(file));
    if (unsafe.length > 0) return { name, readable: false, reason: `${name}/${CHECKPOINT_FILE} names files outside its directory` };
    const missing = files.filter((file) => !fs.existsSync(path.join(dir, file)));
    if (missing.length > 0) return { name, readable: false, reason: `incomplete: ${missing.join(', ')} missing` };
    const linkedOut = files.filter((file) => !insideRoot(rootReal, fs.realpathSync(path.join(dir, file))));
    if (linkedOut.length > 0) return { name, readable: false, reason: `${linkedOut.join(', ')} links out of the models folder` };
    // stat, not open: a FIFO or a device among a model's files makes it unreadable, unopened.
    const special = files.filter((file) => !fs.statSync(path.join(dir, file)).isFile());
    if (special.length > 0) return { name, readable: false, reason: `${special.join(', ')}: not a regular file` };
    const last = meta.history.at(-1);
    return {
      name,
      readable: true,
      impl: meta.model.impl,
      cell: meta.model.cell,
      layers: meta.model.layers,
      dropout: meta.model.dropout,
      hidden: meta.model.hidden,
      vocabSize: meta.model.vocabSize,
      epochs: meta.epoch,
      perplexity: last?.perplexity ?? null,
      heldOutPerplexity: last?.heldOutPerplexity ?? null,
      corpus: path.basename(String(meta.train?.corpus ?? '')),
      savedAt: meta.savedAt,
      history: meta.history.map((m) => ({
        epoch: m.epoch,
        perplexity: m.perplexity,
        ...(m.heldOutPerplexity !== undefined && { heldOutPerplexity: m.heldOutPerplexity }),
      })),
    };
  } catch (err) {
    return { name, readable: false, reason: firstLine(err) };
  }
}

/**
 * checkpoint.json as read and checked, kept by its real path while the file's (size, mtime, inode)
 * stay the same: a listing request stats each checkpoint and parses only those that changed, so a
 * folder of many models costs a stat each, not a parse each. A file replaced by a save gets a new
 * inode (written beside, then renamed), so it is read again even within one mtime tick.
 */
export class CheckpointCache {
  private readonly entries = new Map<string, { readonly key: string; readonly meta?: CheckpointMeta; readonly reason?: string }>();

  /** `parse` is replaceable so tests can count what is parsed. */
  constructor(private readonly parse: (bytes: Uint8Array, where: string) => CheckpointMeta = parseCheckpoint) {}

  /** The checkpoint of model directory `dir`, or a UsageError with a one-line reason that quotes nothing of the file. */
  read(dir: string, rootReal: string, where: string): CheckpointMeta {
    const file = path.join(dir, CHECKPOINT_FILE);
    const { real, stat } = regularFileInside(file, rootReal, where);
    if (stat.size > CHECKPOINT_SIZE_CAP) throw new UsageError(`${where} is too large (${stat.size} bytes; a checkpoint is at most 1 MiB)`);
    const key = `${stat.size}:${stat.mtimeMs}:${stat.ino}`;
    const hit = this.entries.get(real);
    if (hit?.key === key) {
      if (hit.meta) return hit.meta;
      throw new UsageError(hit.reason);
    }
    try {
      const meta = this.parse(readRegularFile(real, CHECKPOINT_SIZE_CAP, where), where);
      this.entries.set(real, { key, meta });
      return meta;
    } catch (err) {
      const reason = firstLine(err);
      this.entries.set(real, { key, reason });
      throw new UsageError(reason);
    }
  }

  /** Forgets checkpoints no longer listed, so the cache holds no more than the folder does. */
  keepOnly(files: readonly string[]): void {
    const keep = new Set(files.map((f) => realOrSelf(f)));
    for (const file of this.entries.keys()) if (!keep.has(file)) this.entries.delete(file);
  }
}

/** checkpoint.json, checked field by field by the core (src/core/model-check.ts), with errors that never quote it. */
export function parseCheckpoint(bytes: Uint8Array, where: string): CheckpointMeta {
  return parseCheckpointMeta(bytes, where);
}

/**
 * A file that lies, links resolved, inside the models folder and is a regular file: its real path
 * and its stat. Refused without opening it otherwise (lstat and stat open nothing).
 */
function regularFileInside(file: string, rootReal: string, where: string): { real: string; stat: fs.Stats } {
  let real: string;
  try {
    fs.lstatSync(file);
    real = fs.realpathSync(file);
  } catch (err) {
    throw new UsageError(`cannot read ${where}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!insideRoot(rootReal, real)) throw new UsageError(`${where} links out of the models folder`);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(real);
  } catch (err) {
    throw new UsageError(`cannot read ${where}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!stat.isFile()) throw new UsageError(`${where} is not a regular file`);
  return { real, stat };
}

/**
 * A regular file's bytes, at most `cap` of them: opened non-blocking (a FIFO swapped in after the
 * stat cannot hang the open) and not through a last link, checked on the descriptor to be a
 * regular file, read up to the size it had when opened and no further (a file that grows, or
 * /dev/zero, is not read without end).
 */
export function readRegularFile(file: string, cap: number, where: string): Buffer {
  let fd: number;
  try {
    fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK | fs.constants.O_NOFOLLOW);
  } catch (err) {
    throw new UsageError(`cannot read ${where}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) throw new UsageError(`${where} is not a regular file`);
    if (stat.size > cap) throw new UsageError(`${where} is too large (${stat.size} bytes)`);
    const bytes = Buffer.alloc(stat.size);
    let read = 0;
    while (read < bytes.length) {
      const n = readSeam(fd, bytes, read, bytes.length - read, read);
      if (n === 0) break; // shrunk while read: what was there
      read += n;
    }
    return bytes.subarray(0, read);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`cannot read ${where}: ${(err as NodeJS.ErrnoException).code ?? firstLine(err)}`);
  } finally {
    fs.closeSync(fd);
  }
}

let readSeam = (fd: number, buffer: Buffer, offset: number, length: number, position: number) =>
  fs.readSync(fd, buffer, offset, length, position);

/**
 * Replaces the read under readRegularFile (a failing disk, for tests of the export's cleanup) and
 * returns what puts the real one back. The CLI never calls it.
 */
export function setReadSeam(read: typeof readSeam): () => void {
  const before = readSeam;
  readSeam = read;
  return () => {
    readSeam = before;
  };
}

export interface ModelFolder {
  readonly rootReal: string;
  readonly dir: string;
  readonly meta: CheckpointMeta;
}

/** A listed model's folder, inside the models folder, and its checkpoint; undefined if not one. */
export function modelFolder(
  modelsDir: string,
  dirSegments: string[],
  cache: CheckpointCache = new CheckpointCache(),
): ModelFolder | undefined {
  try {
    const rootReal = fs.realpathSync(modelsDir);
    const dir = path.join(rootReal, ...dirSegments);
    if (!insideRoot(rootReal, fs.realpathSync(dir))) return undefined;
    if (dirSegments.some((s) => !isListable(s))) return undefined;
    return { rootReal, dir, meta: cache.read(dir, rootReal, [...dirSegments, CHECKPOINT_FILE].join('/')) };
  } catch {
    return undefined;
  }
}

/**
 * checkpoint.json or a file it names, as its real path, if that is inside the models folder and a
 * regular file. The caller opens it with readRegularFile's flags (non-blocking, no last link), so
 * a file swapped for a FIFO or a link after this check is still refused.
 */
export function fileOfModel({ rootReal, dir, meta }: ModelFolder, name: string): string | undefined {
  if (!isSafeName(name) || (name !== CHECKPOINT_FILE && !filesOf(meta).includes(name))) return undefined;
  try {
    const real = fs.realpathSync(path.join(dir, name));
    return insideRoot(rootReal, real) && fs.statSync(real).isFile() ? real : undefined;
  } catch {
    return undefined;
  }
}

function isListable(name: string): boolean {
  return !name.startsWith('.') && !name.endsWith('.tmp') && !name.endsWith('.old');
}

function insideRoot(rootReal: string, real: string): boolean {
  return real === rootReal || real.startsWith(rootReal + path.sep);
}

function realOrSelf(file: string): string {
  try {
    return fs.realpathSync(file);
  } catch {
    return file;
  }
}

function isDirectory(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}
