/**
 * The one corpus loader of the Node shell: reads a .txt or a .zip from disk and hands the text to
 * the core (core/vocab.ts), which normalises it and maps characters to ids.
 *
 * Memory is bounded by the settings, not by the file: a .txt is read only as far as --max-chars
 * needs (and hashed in chunks), a zip entry is unpacked only up to MAX_TEXT_BYTES, and a .zip,
 * which is read whole to find its entries, may be at most MAX_ZIP_BYTES.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import AdmZip from 'adm-zip';
import { utf8Text } from '../core/bytes';
import { firstLine, UsageError } from '../core/errors';
import { corpusFromText, type Corpus } from '../core/vocab';
import { count } from '../core/numbers';

export interface CorpusOptions {
  /** Which .txt entry of a zip; required when it holds several. */
  readonly entry?: string;
  /** Keep the first N characters after normalising (0 keeps all). */
  readonly maxChars: number;
}

/** The most text read: a whole .txt or zip entry with --max-chars 0, or a zip entry unpacked. */
export const MAX_TEXT_BYTES = 32 * 1024 * 1024;
/** The largest .zip read (it is read whole). */
export const MAX_ZIP_BYTES = 64 * 1024 * 1024;

export function loadCorpus(file: string, options: CorpusOptions): Corpus {
  if (!fs.existsSync(file)) throw new UsageError(`corpus not found: ${file}`);
  const stat = fs.statSync(file);
  if (!stat.isFile()) throw new UsageError(`corpus is not a file: ${file}`);
  if (file.toLowerCase().endsWith('.zip')) {
    if (stat.size > MAX_ZIP_BYTES)
      throw new UsageError(
        `${file} is ${mib(stat.size)} (${count(stat.size)} bytes); a .zip corpus may be at most ${mib(MAX_ZIP_BYTES)} (unpack it and pass the .txt)`,
      );
    const bytes = fs.readFileSync(file);
    const raw = readZipText(file, bytes, options.entry, options.maxChars);
    return corpusFromText(raw, options.maxChars, createHash('sha256').update(bytes).digest('hex'), file);
  }
  const { text, sha256 } = readTextFile(file, stat.size, options.maxChars);
  return corpusFromText(text, options.maxChars, sha256, file);
}

/**
 * How many bytes of UTF-8 hold the first `maxChars` characters after normalising: at most 4 bytes
 * a character, plus a byte-order mark (normalising maps each line break to one space, so it never
 * makes more characters). 0 (all) reads up to MAX_TEXT_BYTES.
 */
function bytesNeeded(maxChars: number): number {
  return maxChars > 0 ? Math.min(4 * maxChars + 3, MAX_TEXT_BYTES) : MAX_TEXT_BYTES;
}

/** The text `maxChars` needs from a .txt, and the SHA-256 of the whole file, in bounded memory. */
function readTextFile(file: string, size: number, maxChars: number): { text: string; sha256: string } {
  if (maxChars <= 0 && size > MAX_TEXT_BYTES) throw tooLarge(file, `is ${mib(size)} (${count(size)} bytes)`);
  const want = Math.min(size, bytesNeeded(maxChars));
  const hash = createHash('sha256');
  const chunk = Buffer.alloc(1024 * 1024);
  const head = Buffer.alloc(want);
  const fd = fs.openSync(file, 'r');
  try {
    for (let pos = 0; ; ) {
      const n = fs.readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      if (pos < want) chunk.copy(head, pos, 0, Math.min(n, want - pos));
      hash.update(chunk.subarray(0, n));
      pos += n;
    }
  } finally {
    fs.closeSync(fd);
  }
  return { text: decodeUtf8(head, file, want < size), sha256: hash.digest('hex') };
}

function tooLarge(what: string, size: string): UsageError {
  return new UsageError(
    `${what} ${size}; with --max-chars 0 a corpus text may be at most ${mib(MAX_TEXT_BYTES)} (read part of it with --max-chars N)`,
  );
}

/** `cut`: the bytes are the start of a longer text, which may end inside a character. */
function decodeUtf8(bytes: Uint8Array, what: string, cut = false): string {
  try {
    return cut ? new TextDecoder('utf-8', { fatal: true }).decode(bytes, { stream: true }) : utf8Text(bytes, true);
  } catch {
    throw new UsageError(`${what} is not UTF-8 text`);
  }
}

function readZipText(file: string, bytes: Buffer, entry: string | undefined, maxChars: number): string {
  let zip: AdmZip;
  try {
    zip = new AdmZip(bytes);
  } catch {
    throw new UsageError(`${file} is not a valid zip file`);
  }
  const texts = zip
    .getEntries()
    .filter((e) => !e.isDirectory && e.entryName.toLowerCase().endsWith('.txt') && !e.entryName.startsWith('__MACOSX/'));
  let chosen: (typeof texts)[number] | undefined;
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
  const what = `${file}:${chosen.entryName}`;
  const { data, cut } = unpack(chosen, what, bytesNeeded(maxChars), maxChars);
  return decodeUtf8(data, what, cut);
}

/**
 * At most `limit` bytes of an entry's text (a zip may declare any size, and 2 MB of deflate can
 * hold 2 GB of text). `cut`: there was more than `limit`.
 */
function unpack(entry: AdmZip.IZipEntry, what: string, limit: number, maxChars: number): { data: Buffer; cut: boolean } {
  const { method, size, compressedSize } = entry.header;
  const refuse = () =>
    tooLarge(what, `unpacks to more than ${mib(MAX_TEXT_BYTES)} (${count(compressedSize)} bytes packed, ${count(size)} bytes declared)`);
  let data: Buffer;
  try {
    if (method === 0) data = entry.getCompressedData();
    else if (method === 8 && maxChars <= 0) data = inflateAll(entry.getCompressedData(), limit, refuse);
    else if (method === 8) data = inflateStart(entry.getCompressedData(), limit + INFLATE_SLACK);
    else throw new Error(`compression method ${method}`);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`${what}: cannot read this entry (corrupt zip? ${firstLine(err)})`);
  }
  if (data.length <= limit) return { data, cut: false };
  if (maxChars <= 0) throw refuse();
  return { data: data.subarray(0, limit), cut: true };
}

/** All of raw deflate data, or `refuse()` as soon as it passes `limit` bytes. */
function inflateAll(packed: Buffer, limit: number, refuse: () => Error): Buffer {
  try {
    return zlib.inflateRawSync(packed, { maxOutputLength: limit + 1 });
  } catch (err) {
    throw (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' ? refuse() : err;
  }
}

/** More than the largest output of one byte of deflate (~1,032 bytes), so the search below never falls short. */
const INFLATE_SLACK = 64 * 1024;

/**
 * The start of raw deflate data, unpacked to at most `maxOutput` bytes: all of it when it fits;
 * else the output of the longest prefix of the input whose output fits (output only grows with
 * input, so a binary search finds it; each try costs at most `maxOutput` of memory). That is
 * within ~1 KB of `maxOutput`.
 */
function inflateStart(packed: Buffer, maxOutput: number): Buffer {
  const inflate = (input: Buffer) => zlib.inflateRawSync(input, { maxOutputLength: maxOutput, finishFlush: zlib.constants.Z_SYNC_FLUSH });
  const tooBig = (err: unknown) => (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
  try {
    return zlib.inflateRawSync(packed, { maxOutputLength: maxOutput });
  } catch (err) {
    if (!tooBig(err)) throw err;
  }
  let fits = Buffer.alloc(0);
  let lo = 0; // a prefix length whose output fits
  let hi = packed.length; // one whose output does not
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    try {
      fits = inflate(packed.subarray(0, mid));
      lo = mid;
    } catch (err) {
      if (!tooBig(err)) throw err;
      hi = mid;
    }
  }
  return fits;
}

function mib(bytes: number): string {
  const m = bytes / 1024 / 1024;
  return `${Number.isInteger(m) ? m : m.toFixed(1)} MiB`;
}

function names(entries: readonly AdmZip.IZipEntry[]): string {
  return entries.length === 0 ? '(none)' : entries.map((e) => e.entryName).join(', ');
}
