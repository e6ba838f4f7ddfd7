import { buildVocabulary, decode, encode, normalise, splitHeldOut, unknownChars } from '../src/core/vocab';
import { loadCorpus } from '../src/node/corpus-file';
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
    const file = writeFile(dir, 'all.txt', 'x'.repeat(12_345));
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
