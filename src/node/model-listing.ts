/**
 * The models folder as the page sees it: the model directories under it (models.json), and which
 * of a listed model's files may be read. A model is named by its listed name and a file by a name
 * its checkpoint.json lists, and the file's real path (links resolved) must lie inside the models
 * folder. One module for both, so that the list and what the server and the export read from it
 * follow the same rules.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { firstLine } from '../core/errors';
import { CHECKPOINT_FILE, filesOf, type CheckpointMeta } from '../core/checkpoint-format';
import { readCheckpointMeta } from './model-dir';
import { isFile, isSafeName } from './site-layout';

export const MODEL_LIST_FILE = 'models.json';

/** One line of the model list: what the page shows, and what it needs to fetch the model. */
export type ModelListing = ReadableModel | UnreadableModel;

export interface ReadableModel {
  /** The directory's path relative to the models folder, with '/' separators. */
  readonly name: string;
  readonly readable: true;
  readonly impl: string;
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
export function listModels(root: string): ModelListing[] {
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
      found.push(describeModel(dir, name, rootReal));
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
  return found;
}

function describeModel(dir: string, name: string, rootReal: string): ModelListing {
  try {
    const meta = readCheckpointMeta(dir, `${name}/${CHECKPOINT_FILE}`);
    const missing = filesOf(meta).filter((file) => !isSafeName(file) || !fs.existsSync(path.join(dir, file)));
    if (missing.length > 0) return { name, readable: false, reason: `incomplete: ${missing.join(', ')} missing` };
    const linkedOut = filesOf(meta).filter((file) => !insideRoot(rootReal, fs.realpathSync(path.join(dir, file))));
    if (linkedOut.length > 0) return { name, readable: false, reason: `${linkedOut.join(', ')} links out of the models folder` };
    const last = meta.history.at(-1);
    return {
      name,
      readable: true,
      impl: meta.model.impl,
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

export interface ModelFolder {
  readonly rootReal: string;
  readonly dir: string;
  readonly meta: CheckpointMeta;
}

/** A listed model's folder, inside the models folder, and its checkpoint; undefined if not one. */
export function modelFolder(modelsDir: string, dirSegments: string[]): ModelFolder | undefined {
  try {
    const rootReal = fs.realpathSync(modelsDir);
    const dir = path.join(rootReal, ...dirSegments);
    if (!insideRoot(rootReal, fs.realpathSync(dir))) return undefined;
    if (dirSegments.some((s) => !isListable(s))) return undefined;
    return { rootReal, dir, meta: readCheckpointMeta(dir, CHECKPOINT_FILE) };
  } catch {
    return undefined;
  }
}

/** checkpoint.json or a file it names, if its real path is inside the models folder. */
export function fileOfModel({ rootReal, dir, meta }: ModelFolder, name: string): string | undefined {
  if (name !== CHECKPOINT_FILE && !filesOf(meta).includes(name)) return undefined;
  const file = path.join(dir, name);
  try {
    return insideRoot(rootReal, fs.realpathSync(file)) && isFile(file) ? file : undefined;
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

function isDirectory(file: string): boolean {
  try {
    return fs.statSync(file).isDirectory();
  } catch {
    return false;
  }
}
