/**
 * The one corpus loader: reads a .txt or a .zip, normalises it the way the lesson does, and maps
 * characters to ids. A character is a Unicode code point, so a CJK character outside the BMP is
 * one character, not two UTF-16 halves.
 */
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import AdmZip from 'adm-zip';
import { UsageError } from '../errors';

/** Characters in id order; ids are positions. Saved with every model. */
export interface Vocabulary {
  readonly chars: readonly string[];
  readonly index: ReadonlyMap<string, number>;
}

export interface Corpus {
  /** The normalised, truncated text that training reads. */
  readonly text: string;
  /** `text` as ids into `vocab`. */
  readonly ids: Int32Array;
  readonly vocab: Vocabulary;
  /** SHA-256 of the file's bytes, recorded with models so a run can be traced to its data. */
  readonly sha256: string;
}

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
  const text = truncate(normalise(raw), options.maxChars);
  if (text.length === 0) throw new UsageError(`corpus is empty: ${file}`);
  const vocab = buildVocabulary(text);
  return { text, ids: encode(vocab, text), vocab, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** The lesson turns each line break character into a space (so "\r\n" becomes two). */
export function normalise(raw: string): string {
  return raw.replace(/^\uFEFF/, '').replace(/[\r\n]/g, ' ');
}

/**
 * Splits off the last `valChars` characters (a fraction of the corpus if below 1) as held-out
 * text. Training windows are drawn from the rest only, so none overlaps the held-out tail.
 */
export function splitHeldOut(corpus: Corpus, valChars: number): { train: Corpus; heldOut?: Int32Array } {
  if (valChars <= 0) return { train: corpus };
  const count = valChars < 1 ? Math.round(corpus.ids.length * valChars) : valChars;
  if (count < 2 || count >= corpus.ids.length) {
    throw new UsageError(`--val-chars ${valChars} leaves ${count} held-out characters of ${corpus.ids.length}; need at least 2 and fewer than all`);
  }
  const cut = corpus.ids.length - count;
  return { train: { ...corpus, ids: corpus.ids.subarray(0, cut) }, heldOut: corpus.ids.subarray(cut) };
}

function truncate(text: string, maxChars: number): string {
  if (maxChars <= 0) return text;
  return Array.from(text).slice(0, maxChars).join('');
}

/**
 * Sorted by code point, like Python's sorted(set(text)) in the lesson, so the same text always
 * gives the same ids (JS's default sort compares UTF-16 units, which differs outside the BMP).
 */
export function buildVocabulary(text: string): Vocabulary {
  const chars = Array.from(new Set(text)).sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!);
  return vocabularyOf(chars);
}

export function vocabularyOf(chars: readonly string[]): Vocabulary {
  return { chars, index: new Map(chars.map((c, i) => [c, i])) };
}

/** Characters of `text` that `vocab` lacks, each once, in order of appearance. */
export function unknownChars(vocab: Vocabulary, text: string): string[] {
  return Array.from(new Set(Array.from(text).filter((c) => !vocab.index.has(c))));
}

export function encode(vocab: Vocabulary, text: string): Int32Array {
  const missing = unknownChars(vocab, text);
  if (missing.length > 0) {
    throw new UsageError(`characters not in the model's vocabulary: ${missing.map((c) => JSON.stringify(c)).join(' ')}`);
  }
  return Int32Array.from(Array.from(text), (c) => vocab.index.get(c)!);
}

export function decode(vocab: Vocabulary, ids: ArrayLike<number>): string {
  return Array.from(ids, (i) => vocab.chars[i]).join('');
}

function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
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
