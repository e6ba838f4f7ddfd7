/**
 * The page as static files (`lstm-lyrics serve --export`), for hosts that serve files and run
 * nothing. Its own module because it needs nothing of the HTTP server's (headers, limits, streaming):
 * it writes the same site (site-layout.ts), its models read by the same rules (model-listing.ts).
 *
 * An export never destroys: it writes only into a folder that is new, empty, or a previous export
 * (which holds EXPORT_MARKER), never into or around the models folder, and it writes the whole site
 * beside the folder first and renames it into place, so a failure leaves nothing behind and a
 * repeated export replaces the previous one whole.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { firstLine, UsageError } from '../core/errors';
import { CHECKPOINT_FILE, filesOf } from '../core/checkpoint-format';
import {
  CheckpointCache,
  fileOfModel,
  listModels,
  modelFolder,
  MODEL_LIST_FILE,
  readRegularFile,
  type ReadableModel,
} from './model-listing';
import { checkOutDir, makeDirs, removeEmptyDirs, withoutTrailingSlash } from './out-path';
import { CORPUS_DIR, isFile, PAGE_CORPUS, WEB_DIR, type ServerOptions } from './site-layout';

/** Written into every export: the sign that a folder is one, which a later export may replace. */
export const EXPORT_MARKER = '.lstm-lyrics-export';

/** A model file is read whole into memory to be copied; no model the CLI trains comes near this. */
const MODEL_FILE_CAP = 2 ** 31 - 1;

export interface ExportResult {
  readonly dir: string;
  readonly models: string[];
  readonly files: number;
}

export interface ExportOptions extends ServerOptions {
  readonly only?: readonly string[];
  /** The flag that named the folder, for error messages. */
  readonly flag?: string;
  /** Writes one file of the site (its folder exists); replaceable so tests can fail an export half-way. */
  readonly writeFile?: (file: string, bytes: Uint8Array | string) => void;
}

/**
 * The page as static files any static host serves: the page's files, the bundled corpus,
 * models.json, and models/<name>/<file> for each chosen model (all readable ones by default).
 */
export function exportSite(outDir: string, options: ExportOptions): ExportResult {
  const { modelsDir, webDir = WEB_DIR, corpusDir = CORPUS_DIR, only, flag = '--export', writeFile = fs.writeFileSync } = options;
  const target = path.resolve(withoutTrailingSlash(outDir));
  checkExportTarget(flag, outDir, target, modelsDir);
  const cache = new CheckpointCache();
  const listed = listModels(modelsDir, cache);
  const readable = listed.filter((m): m is ReadableModel => m.readable);
  const unknown = (only ?? []).filter((name) => !readable.some((m) => m.name === name));
  if (unknown.length > 0) {
    throw new UsageError(
      `not a readable model under ${modelsDir}: ${unknown.join(', ')} (readable: ${readable.map((m) => m.name).join(', ') || 'none'})`,
    );
  }
  const chosen = only ? readable.filter((m) => only.includes(m.name)) : readable;

  // Beside the folder, so the final rename stays on one file system; the pid keeps two exports apart.
  const tmp = `${target}.tmp-${process.pid}`;
  const old = `${target}.old-${process.pid}`;
  const madeDirs = makeDirs(path.dirname(target));
  let count = 0;
  try {
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp);
    const write = (rel: string[], bytes: Uint8Array | string) => {
      const file = path.join(tmp, ...rel);
      makeDirs(path.dirname(file)); // one level at a time: a recursive mkdir spins forever on /proc
      writeFile(file, bytes);
      count++;
    };
    for (const name of fs.readdirSync(webDir)) {
      if (isFile(path.join(webDir, name))) write([name], fs.readFileSync(path.join(webDir, name)));
    }
    write(['corpus', PAGE_CORPUS], fs.readFileSync(path.join(corpusDir, PAGE_CORPUS)));
    for (const model of chosen) {
      const segments = model.name.split('/');
      const folder = modelFolder(modelsDir, segments, cache);
      if (folder === undefined) throw new UsageError(`cannot export ${model.name}/${CHECKPOINT_FILE}: not inside ${modelsDir}`);
      for (const name of [CHECKPOINT_FILE, ...filesOf(folder.meta)]) {
        const from = fileOfModel(folder, name);
        if (from === undefined) throw new UsageError(`cannot export ${model.name}/${name}: not inside ${modelsDir}`);
        write(['models', ...segments, name], readRegularFile(from, MODEL_FILE_CAP, `${model.name}/${name}`));
      }
    }
    write([MODEL_LIST_FILE], JSON.stringify(chosen));
    write([EXPORT_MARKER], `${JSON.stringify({ writtenBy: 'lstm-lyrics serve --export', models: chosen.map((m) => m.name) })}\n`);
    if (fs.existsSync(target)) {
      fs.renameSync(target, old);
      fs.renameSync(tmp, target);
      fs.rmSync(old, { recursive: true, force: true });
    } else {
      fs.renameSync(tmp, target);
    }
  } catch (err) {
    let cleanup = '';
    try {
      fs.rmSync(tmp, { recursive: true, force: true });
      // Failed between the two renames: the previous export is in <dir>.old-<pid>; put it back.
      if (!fs.existsSync(target) && fs.existsSync(old)) fs.renameSync(old, target);
      if (madeDirs) removeEmptyDirs(path.dirname(target), madeDirs);
    } catch (cleanupErr) {
      cleanup = `; could not remove ${tmp} either (${firstLine(cleanupErr)})`;
    }
    const unchanged = fs.existsSync(target) ? `${outDir} is unchanged` : 'nothing was written';
    const message = `cannot export to ${outDir}: ${firstLine(err)}${cleanup}; ${unchanged}`;
    throw err instanceof UsageError ? new UsageError(message) : new Error(message);
  }
  return { dir: outDir, models: chosen.map((m) => m.name), files: count };
}

/**
 * The rules an export folder must meet, checked before anything is written: a folder (or nothing
 * yet), not the models folder nor inside it nor around it (each run would export the previous
 * export, nesting deeper, or replace the models), and empty or a previous export (a user's
 * index.html is not the export's to replace); then that it can be written at all.
 */
function checkExportTarget(flag: string, outDir: string, target: string, modelsDir: string): void {
  const stat = statOrUndefined(target);
  if (stat && !stat.isDirectory()) throw new UsageError(`${flag} ${outDir} is a file, not a directory`);
  const real = realOfPath(target);
  const models = realOfPath(path.resolve(modelsDir));
  if (real === models) throw new UsageError(`${flag} ${outDir} is the models folder ${modelsDir}; name a folder outside it`);
  if (isInside(models, real)) throw new UsageError(`${flag} ${outDir} is inside the models folder ${modelsDir}; name a folder outside it`);
  if (isInside(real, models)) throw new UsageError(`${flag} ${outDir} holds the models folder ${modelsDir}; name a folder outside it`);
  if (stat) {
    const entries = fs.readdirSync(target);
    if (entries.length > 0 && !entries.includes(EXPORT_MARKER)) {
      throw new UsageError(
        `${flag} ${outDir} is a folder that holds other files (${entries.length} entr${entries.length === 1 ? 'y' : 'ies'}, no ${EXPORT_MARKER} from a previous export); name a new or empty folder`,
      );
    }
  }
  checkOutDir(flag, outDir); // a place that cannot be written: exit 2 before writing
}

/** The real path of `p`, resolved as far as it exists (links in its existing part followed). */
function realOfPath(p: string): string {
  const rest: string[] = [];
  for (let d = p; ; d = path.dirname(d)) {
    try {
      return path.join(fs.realpathSync(d), ...rest);
    } catch {
      if (path.dirname(d) === d) return p;
      rest.unshift(path.basename(d));
    }
  }
}

function isInside(parent: string, child: string): boolean {
  const rel = path.relative(parent, child);
  return rel !== '' && !rel.startsWith('..') && !path.isAbsolute(rel);
}

function statOrUndefined(p: string): fs.Stats | undefined {
  try {
    return fs.statSync(p);
  } catch {
    return undefined;
  }
}
