/**
 * What the page's site is made of, and the path checks made on it: the built page, the bundled
 * corpus, the models folder. Its own module because the server serves this site and the export
 * writes it as files, and the two must agree on where each part comes from.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** The built page (scripts/build-web.js writes it), found relative to the package, not the cwd. */
export const WEB_DIR = path.resolve(__dirname, '..', '..', 'dist', 'web');
export const CORPUS_DIR = path.resolve(__dirname, '..', '..', 'corpus');
/** The corpus the page offers for training, served read-only under corpus/. */
export const PAGE_CORPUS = 'songci300.txt';

export interface ServerOptions {
  /** The models folder. */
  readonly modelsDir: string;
  /** The built page; defaults to WEB_DIR. */
  readonly webDir?: string;
  /** Where the bundled corpus lies; defaults to the package's corpus/. */
  readonly corpusDir?: string;
  /** The name or address the server was bound with (--host): a Host header it answers to. */
  readonly host?: string;
}

/** A single path segment that names something directly (no traversal, no separators, no NUL). */
export function isSafeName(name: string): boolean {
  return name.length > 0 && name !== '.' && name !== '..' && !/[/\\\0]/.test(name) && !path.isAbsolute(name);
}

export function isFile(file: string): boolean {
  try {
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}
