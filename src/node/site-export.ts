/**
 * The page as static files (`lstm-lyrics serve --export`), for hosts that serve files and run
 * nothing. Its own module because it needs nothing of the HTTP server's (headers, limits, streaming):
 * it writes the same site (site-layout.ts), its models read by the same rules (model-listing.ts).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../core/errors';
import { CHECKPOINT_FILE, filesOf } from '../core/checkpoint-format';
import { fileOfModel, listModels, modelFolder, MODEL_LIST_FILE, type ReadableModel } from './model-listing';
import { makeDirs } from './out-path';
import { CORPUS_DIR, isFile, PAGE_CORPUS, WEB_DIR, type ServerOptions } from './site-layout';

export interface ExportResult {
  readonly dir: string;
  readonly models: string[];
  readonly files: number;
}

/**
 * The page as static files any static host serves: the page's files, the bundled corpus,
 * models.json, and models/<name>/<file> for each chosen model (all readable ones by default).
 */
export function exportSite(outDir: string, options: ServerOptions & { readonly only?: readonly string[] }): ExportResult {
  const { modelsDir, webDir = WEB_DIR, corpusDir = CORPUS_DIR, only } = options;
  const listed = listModels(modelsDir);
  const readable = listed.filter((m): m is ReadableModel => m.readable);
  const unknown = (only ?? []).filter((name) => !readable.some((m) => m.name === name));
  if (unknown.length > 0) {
    throw new UsageError(
      `not a readable model under ${modelsDir}: ${unknown.join(', ')} (readable: ${readable.map((m) => m.name).join(', ') || 'none'})`,
    );
  }
  const chosen = only ? readable.filter((m) => only.includes(m.name)) : readable;
  let count = 0;
  const write = (rel: string[], bytes: Uint8Array | string) => {
    const file = path.join(outDir, ...rel);
    makeDirs(path.dirname(file)); // one level at a time: a recursive mkdir spins forever on /proc
    fs.writeFileSync(file, bytes);
    count++;
  };
  for (const name of fs.readdirSync(webDir)) {
    if (isFile(path.join(webDir, name))) write([name], fs.readFileSync(path.join(webDir, name)));
  }
  write(['corpus', PAGE_CORPUS], fs.readFileSync(path.join(corpusDir, PAGE_CORPUS)));
  for (const model of chosen) {
    const segments = model.name.split('/');
    const folder = modelFolder(modelsDir, segments);
    if (folder === undefined) throw new UsageError(`cannot export ${model.name}/${CHECKPOINT_FILE}: not inside ${modelsDir}`);
    for (const name of [CHECKPOINT_FILE, ...filesOf(folder.meta)]) {
      const from = fileOfModel(folder, name);
      if (from === undefined) throw new UsageError(`cannot export ${model.name}/${name}: not inside ${modelsDir}`);
      write(['models', ...segments, name], fs.readFileSync(from));
    }
  }
  write([MODEL_LIST_FILE], JSON.stringify(chosen));
  return { dir: outDir, models: chosen.map((m) => m.name), files: count };
}
