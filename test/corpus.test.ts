import { buildVocabulary, decode, encode, normalise, splitHeldOut, unknownChars } from '../src/core/vocab';
import { createHash } from 'node:crypto';
import AdmZip from 'adm-zip';
import * as fs from 'node:fs';
import { loadCorpus, MAX_TEXT_BYTES, MAX_ZIP_BYTES } from '../src/node/corpus-file';
import { UsageError } from '../src/core/errors';
import { tempDir, writeFile, writeZip } from './helpers';

describe('loadCorpus', () => {
  const dir = tempDir();

  it('reads a .txt, turning each line break character into a space', () => {
    const file = writeFile(dir, 'a.txt', '分开\n不分开\r\n好');
    expect(loadCorpus(file, { maxChars: 0 }).text).toBe('分开 不分开  好');
  });

  it('reads the only .txt entry of a zip', () => {
    const file = writeZip(dir, 'one.zip', { 'lyrics.txt': '想要\n有直升机' });
    expect(loadCorpus(file, { maxChars: 0 }).text).toBe('想要 有直升机');
  });

  it('needs --entry when a zip holds several .txt entries, and uses it', () => {
    const file = writeZip(dir, 'two.zip', { 'a.txt': '甲乙', 'dir/b.txt': '丙丁' });
    expect(() => loadCorpus(file, { maxChars: 0 })).toThrow(/several .txt entries.*--entry/);
    expect(loadCorpus(file, { maxChars: 0, entry: 'dir/b.txt' }).text).toBe('丙丁');
    expect(loadCorpus(file, { maxChars: 0, entry: 'b.txt' }).text).toBe('丙丁');
    expect(() => loadCorpus(file, { maxChars: 0, entry: 'c.txt' })).toThrow(/no entry c.txt/);
  });

  it('rejects a zip without a .txt entry', () => {
    const file = writeZip(dir, 'none.zip', { 'readme.md': 'x' });
    expect(() => loadCorpus(file, { maxChars: 0 })).toThrow(/no .txt entry/);
  });

  it('keeps the first max-chars characters, counting code points, not UTF-16 units', () => {
    // 𠀀 (U+20000) is one character but two UTF-16 units.
    const file = writeFile(dir, 'astral.txt', '𠀀𠀁ab');
    const corpus = loadCorpus(file, { maxChars: 3 });
    expect(corpus.text).toBe('𠀀𠀁a');
    expect(corpus.ids.length).toBe(3);
    expect(corpus.vocab.chars).toEqual(['a', '𠀀', '𠀁']);
  });

  it('keeps everything with max-chars 0', () => {
    // Two characters: a corpus of one repeated character is refused (test/bad-values.test.ts).
    const file = writeFile(dir, 'all.txt', `${'xy'.repeat(6_172)}x`);
    expect(loadCorpus(file, { maxChars: 0 }).text.length).toBe(12_345);
    expect(loadCorpus(file, { maxChars: 10_000 }).text.length).toBe(10_000);
  });

  it.each([
    ['a missing file', () => 'nope.txt', /corpus not found/],
    ['an empty file', (d: string) => writeFile(d, 'empty.txt', ''), /corpus is empty/],
    ['bytes that are not UTF-8', (d: string) => writeFile(d, 'bin.txt', Buffer.from([0xff, 0xfe, 0x00, 0xc3])), /not UTF-8/],
    ['a .zip that is not a zip', (d: string) => writeFile(d, 'fake.zip', 'hello'), /not a valid zip/],
  ])('rejects %s with a UsageError', (_what, make, pattern) => {
    const file = make(dir);
    expect(() => loadCorpus(file, { maxChars: 0 })).toThrow(UsageError);
    expect(() => loadCorpus(file, { maxChars: 0 })).toThrow(pattern);
  });

  it('records the SHA-256 of the file', () => {
    const file = writeFile(dir, 'hash.txt', 'abc');
    expect(loadCorpus(file, { maxChars: 0 }).sha256).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

describe('loadCorpus reads only what --max-chars needs (memory bounded by the settings, not the file)', () => {
  const dir = tempDir();
  const line = '不分开 我们一起唱歌 分开了 就不要再说爱\n';
  // 40 MB of one line: above MAX_TEXT_BYTES unpacked, a few hundred KB packed.
  const big = Buffer.from(line.repeat(Math.ceil((MAX_TEXT_BYTES + 8_000_000) / Buffer.byteLength(line))));
  const bomb = (() => {
    const zip = new AdmZip();
    zip.addFile('big.txt', big);
    return writeFile(dir, 'bomb.zip', zip.toBuffer());
  })();
  const bigTxt = writeFile(dir, 'big.txt', big);

  it('a zip entry that unpacks to far more than it needs: the first --max-chars characters, quickly', () => {
    const started = Date.now();
    const corpus = loadCorpus(bomb, { maxChars: 10_000 });
    expect(corpus.text).toBe(Array.from(line.replace('\n', ' ').repeat(1000)).slice(0, 10_000).join(''));
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  it('the same entry with --max-chars 0: refused, naming the sizes and the limit', () => {
    expect(() => loadCorpus(bomb, { maxChars: 0 })).toThrow(
      /bomb.zip:big.txt unpacks to more than 32 MiB \([\d,]+ bytes packed, [\d,]+ bytes declared\); with --max-chars 0 a corpus text may be at most 32 MiB/,
    );
  });

  it('a big .txt: the start is decoded, the whole file hashed; with --max-chars 0 refused', () => {
    const corpus = loadCorpus(bigTxt, { maxChars: 7 });
    expect(corpus.text).toBe('不分开 我们一');
    expect(corpus.sha256).toBe(createHash('sha256').update(big).digest('hex'));
    expect(() => loadCorpus(bigTxt, { maxChars: 0 })).toThrow(
      /big.txt is [\d.]+ MiB \([\d,]+ bytes\); with --max-chars 0 a corpus text may be at most 32 MiB/,
    );
  });

  it('a .zip over MAX_ZIP_BYTES is refused before it is read', () => {
    const file = writeFile(dir, 'huge.zip', '');
    fs.truncateSync(file, MAX_ZIP_BYTES + 1); // sparse: no disk, no memory
    expect(() => loadCorpus(file, { maxChars: 10 })).toThrow(
      /huge.zip is 64.0 MiB \(67,108,865 bytes\); a .zip corpus may be at most 64 MiB/,
    );
  });

  it('a cut that falls inside a character is not mistaken for bad UTF-8', () => {
    // 4-byte characters: the bytes read for 3 characters end part-way into a later one.
    const file = writeFile(dir, 'astral-long.txt', `${'𠀀𠀁𠀂'.repeat(10)}\uFEFF`);
    expect(loadCorpus(file, { maxChars: 3 }).text).toBe('𠀀𠀁𠀂');
    const zipped = writeZip(dir, 'astral.zip', { 'a.txt': '𠀀𠀁𠀂'.repeat(10) });
    expect(loadCorpus(zipped, { maxChars: 4 }).text).toBe('𠀀𠀁𠀂𠀀');
  });
});

describe('vocabulary', () => {
  it('is sorted by code point, so the same text always gives the same ids', () => {
    const a = buildVocabulary('分开不分开abc');
    const b = buildVocabulary('cba开分不');
    expect(a.chars).toEqual(b.chars);
    expect(a.chars).toEqual(['a', 'b', 'c', '不', '分', '开']);
  });

  it('sorts astral characters after the whole BMP, as Python does', () => {
    // UTF-16 unit order would put U+20000 (D840 DC00) before U+FF0C (，).
    expect(buildVocabulary('𠀀，').chars).toEqual(['，', '𠀀']);
  });

  it('encodes and decodes round trip', () => {
    const vocab = buildVocabulary('不分开的爱');
    expect(decode(vocab, encode(vocab, '分开的爱不'))).toBe('分开的爱不');
  });

  it('names the characters it lacks', () => {
    const vocab = buildVocabulary('不分开');
    expect(unknownChars(vocab, '分手分手吧')).toEqual(['手', '吧']);
    expect(() => encode(vocab, '分手')).toThrow(/"手"/);
  });

  it('normalise strips a byte order mark', () => {
    expect(normalise('\uFEFF一\n二')).toBe('一 二');
  });
});

describe('splitHeldOut', () => {
  const corpus = loadCorpus(writeFile(tempDir(), 'c.txt', 'abcdefghij'), { maxChars: 0 });

  it('keeps the last N characters (or a fraction) out of training', () => {
    const { train, heldOut } = splitHeldOut(corpus, 3);
    expect(decode(corpus.vocab, train.ids)).toBe('abcdefg');
    expect(decode(corpus.vocab, heldOut!)).toBe('hij');
    expect(decode(corpus.vocab, splitHeldOut(corpus, 0.2).heldOut!)).toBe('ij');
    expect(splitHeldOut(corpus, 0).heldOut).toBeUndefined();
  });

  it('rejects a held-out part of fewer than 2 characters or the whole corpus', () => {
    expect(() => splitHeldOut(corpus, 1)).toThrow(UsageError);
    expect(() => splitHeldOut(corpus, 10)).toThrow(UsageError);
  });
});
