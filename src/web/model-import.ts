/**
 * One job: a model brought in by hand (a .zip or a picked folder) as the files of one checked
 * checkpoint, read no further than the core's limits allow: checkpoint.json up to MAX_JSON_BYTES,
 * parsed and checked (parseCheckpointMeta), then only the files it names, each within
 * fileLimits(meta). The caller builds the model with modelOfCheckpoint, which runs checkModelFiles.
 * No DOM, no tensors.
 */
import { CHECKPOINT_FILE, filesOf, parseCheckpointMeta, type CheckpointFiles } from '../core/checkpoint-format';
import { UsageError } from '../core/errors';
import { fileLimits, MAX_JSON_BYTES } from '../core/model-check';
import type { ModelFiles } from '../core/models';
import { readZipDirectory, readZipEntry, type RandomAccess } from './unzip';

/** Files by '/'-separated path, their sizes known before any is read. */
export interface FileSource {
  /** Shown in errors: the zip's or the folder's name. */
  readonly where: string;
  readonly sizes: ReadonlyMap<string, number>;
  /** The file's bytes; `maxBytes` has been checked against its size already, the source checks it again. */
  read(path: string, maxBytes: number): Promise<Uint8Array>;
}

/** A zip's files (folders left out), read entry by entry through unzip.ts. */
export async function zipSource(zip: RandomAccess, where: string): Promise<FileSource> {
  const entries = new Map((await readZipDirectory(zip, where)).filter((e) => !e.name.endsWith('/')).map((e) => [e.name, e]));
  return {
    where,
    sizes: new Map([...entries].map(([name, e]) => [name, e.size])),
    read: (path, maxBytes) => readZipEntry(zip, entries.get(path)!, where, maxBytes),
  };
}

/** A picked folder's files (`<input webkitdirectory>`: paths start with the folder's name). */
export function folderSource(files: readonly { readonly path: string; readonly file: Blob }[], where: string): FileSource {
  const byPath = new Map(files.map((f) => [f.path, f.file]));
  return {
    where,
    sizes: new Map(files.map((f) => [f.path, f.file.size])),
    async read(path, maxBytes) {
      const file = byPath.get(path)!;
      if (file.size > maxBytes) throw new UsageError(`${where}: a file is ${file.size} bytes, more than the ${maxBytes} allowed`);
      return new Uint8Array(await file.arrayBuffer());
    },
  };
}

/**
 * The checkpoint in `source`: checkpoint.json at its top or in one folder (a CLI model directory
 * zipped, or a Download), and the files it names beside it, checkpoint.json among them. Anything
 * else in the source is never read.
 */
export async function checkpointOfSource(source: FileSource): Promise<CheckpointFiles> {
  const { where, sizes } = source;
  const found = [...sizes.keys()].filter((p) => p === CHECKPOINT_FILE || /^[^/]+\/checkpoint\.json$/.test(p));
  if (found.length === 0) throw new UsageError(`${where} holds no ${CHECKPOINT_FILE} (at its top or in one folder): not a model`);
  if (found.length > 1)
    throw new UsageError(`${where} holds ${found.length} models (${CHECKPOINT_FILE} in several folders); open one at a time`);
  const folder = found[0].slice(0, -CHECKPOINT_FILE.length);
  const read = async (name: string, maxBytes: number, exact?: number) => {
    const size = sizes.get(folder + name);
    if (size === undefined) throw new UsageError(`model in ${where} is incomplete: ${name} is missing`);
    if (exact !== undefined && size !== exact)
      throw new UsageError(`model in ${where} is corrupt: ${name} has ${size} bytes, expected ${exact}`);
    if (size > maxBytes) throw new UsageError(`model in ${where} is corrupt: ${name} is larger than ${maxBytes} bytes`);
    return source.read(folder + name, maxBytes);
  };
  const checkpoint = await read(CHECKPOINT_FILE, MAX_JSON_BYTES);
  const meta = parseCheckpointMeta(checkpoint, `${where}: ${CHECKPOINT_FILE}`);
  const limits = fileLimits(meta);
  // checkpoint.json too: the files are kept as they came, to store and to download again.
  const files: ModelFiles = { [CHECKPOINT_FILE]: checkpoint };
  for (const name of filesOf(meta)) {
    const limit = limits[name];
    files[name] = 'exact' in limit ? await read(name, limit.exact, limit.exact) : await read(name, limit.max);
  }
  return { meta, files };
}
