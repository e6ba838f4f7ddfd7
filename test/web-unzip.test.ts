/**
 * The page's zip reader (src/web/unzip.ts) without a browser: it reads back what zip.ts writes and
 * what adm-zip deflates, and refuses, in one line that quotes no name or content, what a model zip
 * never is: a name that leaves its folder, too many entries, an entry over its limit or inflating
 * past its header, a bad CRC, a truncated, encrypted or zip64 archive. And model-import.ts finds
 * the checkpoint in a zip (at its top or in one folder) and reads only what the core's limits allow.
 */
import AdmZip from 'adm-zip';
import { CHECKPOINT_FILE, checkpointFiles, type CheckpointInfo } from '../src/core/checkpoint-format';
import { DEFAULT_TRAIN, LEGACY_MODEL, lessonDefaults } from '../src/core/config';
import { createModel, type ModelFiles } from '../src/core/models';
import { checkpointOfSource, zipSource } from '../src/web/model-import';
import { bytesAccess, MAX_ZIP_ENTRIES, readZipDirectory, readZipEntry, type ZipDirectoryEntry } from '../src/web/unzip';
import { zipFiles } from '../src/web/zip';
import { useWasm } from './helpers';

const text = (s: string) => new TextEncoder().encode(s);
const FILES = [
  { name: 'model/checkpoint.json', bytes: text('{"a": 1}') },
  { name: 'model/weights.bin', bytes: Uint8Array.from({ length: 1000 }, (_, i) => (i * 7) % 256) },
  { name: 'model/empty', bytes: new Uint8Array(0) },
];

const directory = (zip: Uint8Array) => readZipDirectory(bytesAccess(zip), 'the.zip');
const entryOf = (zip: Uint8Array, entry: ZipDirectoryEntry, max: number) => readZipEntry(bytesAccess(zip), entry, 'the.zip', max);

async function readAll(zip: Uint8Array, max = 1 << 20): Promise<Record<string, Uint8Array>> {
  const out: Record<string, Uint8Array> = {};
  for (const entry of await directory(zip)) {
    if (!entry.name.endsWith('/')) out[entry.name] = await entryOf(zip, entry, max);
  }
  return out;
}

/** The offset of the central directory's first entry (from the end record). */
function centralOffset(zip: Uint8Array): number {
  const view = new DataView(zip.buffer, zip.byteOffset);
  return view.getUint32(zip.length - 22 + 16, true);
}

describe('unzip.ts reads', () => {
  it('back what zip.ts writes (stored entries), byte for byte', async () => {
    const read = await readAll(zipFiles(FILES));
    expect(Object.keys(read)).toEqual(FILES.map((f) => f.name));
    for (const f of FILES) expect(Buffer.from(read[f.name])).toEqual(Buffer.from(f.bytes));
  });

  it('a deflated zip made by adm-zip, with a folder entry', async () => {
    const adm = new AdmZip();
    adm.addFile('dir/', Buffer.alloc(0));
    const lyric = Buffer.from('不分开 我们一起唱歌 '.repeat(200));
    adm.addFile('dir/lyric.txt', lyric);
    const zip = new Uint8Array(adm.toBuffer());
    const entries = await directory(zip);
    expect(entries.find((e) => e.name === 'dir/lyric.txt')!.method).toBe(8);
    expect(entries.find((e) => e.name === 'dir/lyric.txt')!.compressedSize).toBeLessThan(lyric.length / 10);
    const read = await readAll(zip);
    expect(Buffer.from(read['dir/lyric.txt'])).toEqual(lyric);
  });

  it('in slices: the directory and one entry, not the rest of the zip', async () => {
    const zip = zipFiles([...FILES, { name: 'model/large.bin', bytes: new Uint8Array(1 << 20) }]);
    let read = 0;
    const counting = {
      size: zip.length,
      async read(offset: number, length: number) {
        read += length;
        return zip.subarray(offset, offset + length);
      },
    };
    const [checkpoint] = await readZipDirectory(counting, 'the.zip');
    expect(Buffer.from(await readZipEntry(counting, checkpoint, 'the.zip', 100)).toString()).toBe('{"a": 1}');
    expect(read).toBeLessThan(70_000); // the tail searched for the end record, the directory, one entry
  });
});

describe('unzip.ts refuses, in one line that quotes no name', () => {
  it.each(['../evil.txt', 'model/../../evil.txt', '/etc/passwd', 'C:/x', 'a\\..\\b', 'a//b'])(
    'a name that leaves its folder (%j)',
    async (name) => {
      const zip = zipFiles([{ name, bytes: text('x') }]);
      await expect(directory(zip)).rejects.toThrow('the.zip entry 1 has a name that leaves its folder (an absolute path or ..)');
    },
  );

  it(`more than ${MAX_ZIP_ENTRIES} entries`, async () => {
    const zip = zipFiles(Array.from({ length: MAX_ZIP_ENTRIES + 1 }, (_, i) => ({ name: `f${i}`, bytes: text('x') })));
    await expect(directory(zip)).rejects.toThrow(
      `the.zip has ${MAX_ZIP_ENTRIES + 1} entries, more than the ${MAX_ZIP_ENTRIES} a model zip may hold`,
    );
    expect(
      await directory(zipFiles(Array.from({ length: MAX_ZIP_ENTRIES }, (_, i) => ({ name: `f${i}`, bytes: text('x') })))),
    ).toHaveLength(MAX_ZIP_ENTRIES);
  });

  it('an entry larger than its limit, before inflating any of it', async () => {
    const zip = zipFiles(FILES);
    const weights = (await directory(zip))[1];
    await expect(entryOf(zip, weights, 999)).rejects.toThrow('the.zip entry 2 is 1000 bytes, more than the 999 allowed');
    await expect(entryOf(zip, weights, 1000)).resolves.toHaveLength(1000);
  });

  it('a deflated entry that inflates past the size its header says (a zip bomb)', async () => {
    const adm = new AdmZip();
    adm.addFile('bomb', Buffer.alloc(1_000_000));
    const zip = new Uint8Array(adm.toBuffer());
    // Claim 1,000 bytes in the central directory: the reader stops at 1,000, not at a megabyte.
    new DataView(zip.buffer).setUint32(centralOffset(zip) + 24, 1000, true);
    const [entry] = await directory(zip);
    // Nor is more compressed data than deflate could ever make of 1,000 bytes read at all.
    await expect(entryOf(zip, { ...entry, compressedSize: 1_000_000 }, 2000)).rejects.toThrow(
      'the.zip entry 1 is compressed to more than its size (corrupt zip)',
    );
    await expect(entryOf(zip, entry, 2000)).rejects.toThrow(
      'the.zip entry 1 inflates to more than the 1000 bytes its header says (corrupt zip)',
    );
  });

  it('a CRC mismatch', async () => {
    const zip = zipFiles(FILES);
    const [checkpoint] = await directory(zip);
    zip[checkpoint.localOffset + 30 + checkpoint.name.length + 2] ^= 0xff; // one byte of its data
    await expect(entryOf(zip, checkpoint, 100)).rejects.toThrow('the.zip entry 1 fails its CRC-32 check (corrupt zip)');
  });

  it('a truncated archive, a truncated entry and truncated deflate data', async () => {
    const zip = zipFiles(FILES);
    await expect(directory(zip.subarray(0, zip.length - 30))).rejects.toThrow(
      'the.zip is not a zip file (no end of central directory; truncated?)',
    );
    const weights = (await directory(zip))[1];
    await expect(entryOf(zip.subarray(0, weights.localOffset + 100), weights, 1000)).rejects.toThrow('the.zip entry 2 is truncated');

    const adm = new AdmZip();
    adm.addFile('lyric.txt', Buffer.from('不分开 我们一起唱歌 '.repeat(200)));
    const deflated = new Uint8Array(adm.toBuffer());
    const [entry] = await directory(deflated);
    await expect(entryOf(deflated, { ...entry, compressedSize: Math.floor(entry.compressedSize / 2) }, 1 << 20)).rejects.toThrow(
      'the.zip entry 1 is not valid deflate data (corrupt or truncated zip)',
    );
  });

  it('an encrypted entry, a zip64 archive, a method other than stored or deflate', async () => {
    // Each a change to the first central directory entry.
    const cases: [(v: DataView, at: number) => void, string][] = [
      [(v, at) => v.setUint16(at + 8, 1, true), 'the.zip entry 1 is encrypted'],
      [(v, at) => v.setUint32(at + 24, 0xffffffff, true), 'the.zip is a zip64 archive, which a model zip never needs'],
      [(v, at) => v.setUint16(at + 10, 12, true), 'the.zip entry 1 uses compression method 12 (only stored and deflate are read)'],
    ];
    for (const [change, message] of cases) {
      const zip = zipFiles(FILES);
      change(new DataView(zip.buffer), centralOffset(zip));
      await expect(directory(zip)).rejects.toThrow(message);
    }
  });
});

describe('model-import.ts', () => {
  let files: ModelFiles;
  beforeAll(async () => {
    await useWasm();
    const model = createModel({ impl: 'scratch', ...LEGACY_MODEL, vocabSize: 3, hidden: 4 }, 1);
    const info: CheckpointInfo = {
      model: model.config,
      train: { ...DEFAULT_TRAIN, ...lessonDefaults('lstm', 'scratch'), corpus: 'test' },
      vocab: ['a', 'b', 'c'],
      epoch: 0,
      savedAt: '2026-01-01T00:00:00.000Z',
      backend: 'cpu',
      versions: {},
      corpusSha256: 'unknown',
      history: [],
    };
    files = await checkpointFiles(model, info);
    model.dispose();
  });
  const zipOf = (entries: Record<string, Uint8Array>, folder = '') =>
    zipFiles(Object.entries(entries).map(([name, bytes]) => ({ name: folder + name, bytes })));

  it.each(['', 'my-model/'])('finds the checkpoint at the top or in one folder (%j) and reads its files', async (folder) => {
    const zip = zipOf({ ...files, 'README.txt': text('ignored') }, folder);
    const read = await checkpointOfSource(await zipSource(bytesAccess(zip), 'm.zip'));
    expect(read.meta.model).toMatchObject({ impl: 'scratch', hidden: 4, vocabSize: 3 });
    expect(Object.keys(read.files).sort()).toEqual(Object.keys(files).sort());
  });

  it('refuses a corrupt checkpoint.json, a missing or mis-sized file, no checkpoint, two models', async () => {
    const cases: [Uint8Array, string][] = [
      [zipOf({ ...files, [CHECKPOINT_FILE]: text('{not json') }), 'cannot read m.zip: checkpoint.json: not valid JSON'],
      [zipOf({ [CHECKPOINT_FILE]: files[CHECKPOINT_FILE] }), 'model in m.zip is incomplete: '],
      [zipOf({ ...files, 'weights.bin': new Uint8Array(8) }), 'model in m.zip is corrupt: weights.bin has 8 bytes, expected'],
      [zipOf({ 'lyric.txt': text('x') }), 'm.zip holds no checkpoint.json (at its top or in one folder): not a model'],
      [
        zipFiles(['a/', 'b/'].flatMap((folder) => Object.entries(files).map(([k, bytes]) => ({ name: folder + k, bytes })))),
        'm.zip holds 2 models',
      ],
    ];
    for (const [zip, message] of cases)
      await expect(zipSource(bytesAccess(zip), 'm.zip').then(checkpointOfSource)).rejects.toThrow(message);
  });
});
