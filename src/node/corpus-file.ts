/**
 * The one corpus loader of the Node shell: reads a .txt or a .zip from disk and hands the text to
 * the core (core/vocab.ts), which normalises it and maps characters to ids.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import AdmZip from 'adm-zip';
import { utf8Text } from '../core/bytes';
import { UsageError } from '../core/errors';
import { corpusFromText, type Corpus } from '../core/vocab';

export interface CorpusOptions {
  /** Which .txt entry of a zip; required when it holds several. */
  readonly entry?: string;
  /** Keep the first N characters after normalising (0 keeps all). */
  readonly maxChars: number;
}

export function loadCorpus(file: string, options: CorpusOptions): Corpus {
  if (!fs.existsSync(file)) throw new UsageError(`corpus not found: ${file}`);
  if (!fs.statSync(file).isFile()) throw new UsageError(`corpus is not a file: ${file}`);
  const bytes = fs.readFileSync(file);
  const raw = file.toLowerCase().endsWith('.zip') ? readZipText(file, bytes, options.entry) : decodeUtf8(bytes, file);
  return corpusFromText(raw, options.maxChars, createHash('sha256').update(bytes).digest('hex'), file);
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return utf8Text(bytes, true);
  } catch {
    throw new UsageError(`${what} is not UTF-8 text`);
  }
}

function readZipText(file: string, bytes: Buffer, entry: string | undefined): string {
  let zip: AdmZip;
  try {
    zip = new AdmZip(bytes);
  } catch {
    throw new UsageError(`${file} is not a valid zip file`);
  }
  const texts = zip
    .getEntries()
    .filter((e) => !e.isDirectory && e.entryName.toLowerCase().endsWith('.txt') && !e.entryName.startsWith('__MACOSX/'));
  let chosen;
  if (entry !== undefined) {
    chosen = texts.find((e) => e.entryName === entry) ?? texts.find((e) => path.posix.basename(e.entryName) === entry);
    if (!chosen) throw new UsageError(`${file} has no entry ${entry}; its .txt entries: ${names(texts)}`);
  } else if (texts.length === 0) {
    throw new UsageError(`${file} holds no .txt entry`);
  } else if (texts.length > 1) {
    throw new UsageError(`${file} holds several .txt entries (${names(texts)}); pick one with --entry`);
  } else {
    chosen = texts[0];
  }
  let data: Buffer;
  try {
    data = chosen.getData();
  } catch {
    throw new UsageError(`${file}: cannot read entry ${chosen.entryName} (corrupt zip?)`);
  }
  return decodeUtf8(data, `${file}:${chosen.entryName}`);
}

function names(entries: readonly AdmZip.IZipEntry[]): string {
  return entries.length === 0 ? '(none)' : entries.map((e) => e.entryName).join(', ');
}
