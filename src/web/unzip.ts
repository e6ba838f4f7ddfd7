/**
 * A minimal, bounded zip reader (zip.ts is the writer): the central directory, then one entry at a
 * time, stored or deflated (DecompressionStream 'deflate-raw', in Chromium and Node 18+). Zips
 * come from strangers, so it refuses what a model zip never is (encrypted, zip64, split, more than
 * a few dozen entries, a name that leaves its folder) and reads no more than the caller allows:
 * the zip is read in slices (its end record, its directory, then each wanted entry), never whole.
 * Every error is one line that names the entry by number, never by its name or content.
 */
import { UsageError } from '../core/errors';
import { crc32 } from './zip';

/** A model directory has at most a handful of files; a zip of one holds a few more (folders, __MACOSX). */
export const MAX_ZIP_ENTRIES = 32;

const EOCD_SIGNATURE = 0x06054b50;
const ZIP64_LOCATOR_SIGNATURE = 0x07064b50;
const CENTRAL_SIGNATURE = 0x02014b50;
const LOCAL_SIGNATURE = 0x04034b50;
const EOCD_SIZE = 22;
const CENTRAL_SIZE = 46;
const LOCAL_SIZE = 30;
/** zip64 marks a size or offset it moved to its extra field with all ones. */
const ZIP64_MARK = 0xffffffff;

/** The largest central directory read: the most entries, each with the longest name, extra and comment. */
const MAX_CENTRAL_BYTES = (maxEntries: number) => maxEntries * (CENTRAL_SIZE + 3 * 0xffff);

/** A zip read in slices: from memory, or from a picked file without loading it whole. */
export interface RandomAccess {
  readonly size: number;
  /** `length` bytes from `offset` (both checked by the caller to lie inside `size`). */
  read(offset: number, length: number): Promise<Uint8Array>;
}

export function bytesAccess(bytes: Uint8Array): RandomAccess {
  return { size: bytes.byteLength, read: async (offset, length) => bytes.subarray(offset, offset + length) };
}

export function blobAccess(blob: Blob): RandomAccess {
  return { size: blob.size, read: async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()) };
}

/** One file in the zip, as the central directory describes it. */
export interface ZipDirectoryEntry {
  /** From 1, in the directory's order: how errors name it. */
  readonly index: number;
  /** '/'-separated, relative, without `..` (checked). Ends in '/' for a folder. */
  readonly name: string;
  readonly method: number;
  readonly crc: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localOffset: number;
}

/**
 * The zip's central directory, checked: every entry inside the archive, stored or deflated, not
 * encrypted, with a relative name that stays in its folder. `where` names the zip in errors.
 */
export async function readZipDirectory(zip: RandomAccess, where: string, maxEntries = MAX_ZIP_ENTRIES): Promise<ZipDirectoryEntry[]> {
  const fail = (problem: string): never => {
    throw new UsageError(`${where} ${problem}`);
  };
  // The end record lies in the last 22 bytes plus a comment of up to 64 KiB (and a zip64 locator before it).
  const tailStart = Math.max(0, zip.size - EOCD_SIZE - 0xffff - 20);
  const tail = await zip.read(tailStart, zip.size - tailStart);
  const tailView = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  const eocd = findEndRecord(tailView);
  if (eocd < 0) fail('is not a zip file (no end of central directory; truncated?)');
  if (eocd >= 20 && tailView.getUint32(eocd - 20, true) === ZIP64_LOCATOR_SIGNATURE)
    fail('is a zip64 archive, which a model zip never needs');
  if (tailView.getUint16(eocd + 4, true) !== 0 || tailView.getUint16(eocd + 6, true) !== 0) fail('is split over several disks');
  const count = tailView.getUint16(eocd + 10, true);
  const centralSize = tailView.getUint32(eocd + 12, true);
  const centralOffset = tailView.getUint32(eocd + 16, true);
  if (count === 0xffff || centralSize === ZIP64_MARK || centralOffset === ZIP64_MARK)
    fail('is a zip64 archive, which a model zip never needs');
  if (tailView.getUint16(eocd + 8, true) !== count) fail('is split over several disks');
  if (count > maxEntries) fail(`has ${count} entries, more than the ${maxEntries} a model zip may hold`);
  if (centralOffset + centralSize > tailStart + eocd) fail('is truncated (its central directory lies outside the file)');
  if (centralSize > MAX_CENTRAL_BYTES(maxEntries)) fail(`is corrupt: its central directory is ${centralSize} bytes`);

  const central = await zip.read(centralOffset, centralSize);
  const view = new DataView(central.buffer, central.byteOffset, central.byteLength);
  const entries: ZipDirectoryEntry[] = [];
  let at = 0;
  for (let index = 1; index <= count; index++) {
    if (at + CENTRAL_SIZE > centralSize || view.getUint32(at, true) !== CENTRAL_SIGNATURE) {
      fail(`is corrupt: central directory entry ${index} is missing or damaged`);
    }
    const flags = view.getUint16(at + 8, true);
    const method = view.getUint16(at + 10, true);
    const crc = view.getUint32(at + 16, true);
    const compressedSize = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const localOffset = view.getUint32(at + 42, true);
    const next = at + CENTRAL_SIZE + nameLength + extraLength + commentLength;
    if (next > centralSize) fail(`is corrupt: central directory entry ${index} runs past the directory`);
    if (flags & 0x1) fail(`entry ${index} is encrypted`);
    if (compressedSize === ZIP64_MARK || size === ZIP64_MARK || localOffset === ZIP64_MARK) {
      fail('is a zip64 archive, which a model zip never needs');
    }
    if (method !== 0 && method !== 8) fail(`entry ${index} uses compression method ${method} (only stored and deflate are read)`);
    const name = new TextDecoder().decode(central.subarray(at + CENTRAL_SIZE, at + CENTRAL_SIZE + nameLength));
    if (!isRelativeName(name)) fail(`entry ${index} has a name that leaves its folder (an absolute path or ..)`);
    if (localOffset + LOCAL_SIZE > centralOffset) fail(`is truncated (entry ${index} lies outside the file)`);
    entries.push({ index, name, method, crc, compressedSize, size, localOffset });
    at = next;
  }
  return entries;
}

/**
 * One entry's bytes, refused unless it is at most `maxBytes` long (by the directory, before any
 * is read, and again while inflating), matches its CRC-32 and lies wholly inside the zip.
 */
export async function readZipEntry(zip: RandomAccess, entry: ZipDirectoryEntry, where: string, maxBytes: number): Promise<Uint8Array> {
  const fail = (problem: string): never => {
    throw new UsageError(`${where} entry ${entry.index} ${problem}`);
  };
  if (entry.size > maxBytes) fail(`is ${entry.size} bytes, more than the ${maxBytes} allowed`);
  // Deflate never grows data by more than a few bytes per 16 KiB block: more is not a real entry.
  if (entry.compressedSize > entry.size + Math.ceil(entry.size / 1000) + 1024) fail('is compressed to more than its size (corrupt zip)');
  const local = entry.localOffset;
  if (local + LOCAL_SIZE > zip.size) fail('has no local header (corrupt zip)');
  const header = await zip.read(local, LOCAL_SIZE);
  const view = new DataView(header.buffer, header.byteOffset, header.byteLength);
  if (view.getUint32(0, true) !== LOCAL_SIGNATURE) fail('has no local header (corrupt zip)');
  if (view.getUint16(6, true) & 0x1) fail('is encrypted');
  const start = local + LOCAL_SIZE + view.getUint16(26, true) + view.getUint16(28, true);
  if (start + entry.compressedSize > zip.size) fail('is truncated');
  const data = await zip.read(start, entry.compressedSize);
  let bytes: Uint8Array;
  if (entry.method === 0) {
    if (entry.compressedSize !== entry.size) fail('is stored with two different sizes (corrupt zip)');
    bytes = data;
  } else {
    bytes = await inflateRaw(data, entry.size, fail);
  }
  if (bytes.byteLength !== entry.size) fail(`has ${bytes.byteLength} bytes, its header says ${entry.size} (corrupt zip)`);
  if (crc32(bytes) !== entry.crc) fail('fails its CRC-32 check (corrupt zip)');
  return bytes;
}

/** Raw deflate data inflated, stopping as soon as it passes `size` bytes (a zip bomb costs no more). */
async function inflateRaw(data: Uint8Array, size: number, fail: (problem: string) => never): Promise<Uint8Array> {
  const out = new Uint8Array(size);
  let length = 0;
  const inflate = new DecompressionStream('deflate-raw');
  const writer = inflate.writable.getWriter();
  // Errors surface on the reading side; a copy, because the stream may take ownership of its buffer.
  writer.write(data.slice()).catch(() => {});
  writer.close().catch(() => {});
  const reader = inflate.readable.getReader();
  try {
    for (;;) {
      const chunk = await reader.read().catch(() => undefined);
      if (!chunk) return fail('is not valid deflate data (corrupt or truncated zip)');
      if (chunk.done) break;
      if (length + chunk.value.byteLength > size) fail(`inflates to more than the ${size} bytes its header says (corrupt zip)`);
      out.set(chunk.value, length);
      length += chunk.value.byteLength;
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  return out.subarray(0, length);
}

/** The end-of-central-directory record's offset, searched from the end past a comment of up to 64 KiB; -1 if none. */
function findEndRecord(view: DataView): number {
  const last = view.byteLength - EOCD_SIZE;
  for (let at = last; at >= 0 && at >= last - 0xffff; at--) {
    if (view.getUint32(at, true) === EOCD_SIGNATURE && at + EOCD_SIZE + view.getUint16(at + 20, true) === view.byteLength) return at;
  }
  return -1;
}

/** A relative '/'-separated path with no `..`, `.` or empty segment, no drive letter, backslash or control character. */
function isRelativeName(name: string): boolean {
  if (name.length === 0 || name.startsWith('/') || /^[A-Za-z]:/.test(name) || name.includes('\\')) return false;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (/[\u0000-\u001f\u007f]/.test(name)) return false;
  const segments = name.replace(/\/$/, '').split('/');
  return segments.every((s) => s !== '' && s !== '.' && s !== '..');
}
