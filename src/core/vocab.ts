/**
 * Text to ids and back: the lesson's normalisation, the vocabulary, and the held-out split. A
 * character is a Unicode code point, so a CJK character outside the BMP is one character, not two
 * UTF-16 halves. Reading files (from disk or a zip) is the shell's job: see node/corpus-file.ts.
 */
import { UsageError } from './errors';

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
  /** SHA-256 of the source's bytes, recorded with models so a run can be traced to its data. */
  readonly sha256: string;
}

/**
 * A corpus from raw text: normalised as the lesson does, cut to its first `maxChars` characters
 * (0 keeps all). `sha256` is the digest of the bytes the text came from (the caller has them).
 */
export function corpusFromText(raw: string, maxChars: number, sha256: string, source?: string): Corpus {
  const whole = normalise(raw);
  const text = truncate(whole, maxChars);
  if (text.length === 0) throw new UsageError(`corpus is empty${source ? `: ${source}` : ''}`);
  const vocab = buildVocabulary(text);
  // With one character there is nothing to predict (and one-hot over one id fails deep in TF.js).
  if (vocab.chars.length < 2) {
    throw new UsageError(
      `corpus needs at least two distinct characters, has one${text.length < whole.length ? ` in its first ${maxChars}` : ''} (line breaks count as spaces)${source ? `: ${source}` : ''}`,
    );
  }
  return { text, ids: encode(vocab, text), vocab, sha256 };
}

/** The lesson turns each line break character into a space (so "\r\n" becomes two). */
export function normalise(raw: string): string {
  return raw.replace(/^\uFEFF/, '').replace(/[\r\n]/g, ' ');
}

/** The first `maxChars` characters (code points) of `text`; 0 keeps all. */
export function truncate(text: string, maxChars: number): string {
  if (maxChars <= 0) return text;
  return Array.from(text).slice(0, maxChars).join('');
}

/**
 * Splits off the last `valChars` characters (a fraction of the corpus if below 1) as held-out
 * text. Training windows are drawn from the rest only, so none overlaps the held-out tail.
 */
export function splitHeldOut(corpus: Corpus, valChars: number): { train: Corpus; heldOut?: Int32Array } {
  if (valChars <= 0) return { train: corpus };
  const count = valChars < 1 ? Math.round(corpus.ids.length * valChars) : valChars;
  if (count < 2 || count >= corpus.ids.length) {
    throw new UsageError(
      `--val-chars ${valChars} leaves ${count} held-out characters of ${corpus.ids.length}; need at least 2 and fewer than all`,
    );
  }
  const cut = corpus.ids.length - count;
  return { train: { ...corpus, ids: corpus.ids.subarray(0, cut) }, heldOut: corpus.ids.subarray(cut) };
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

/**
 * Prefixes for the report samples when none were asked for: `preferred` (the lesson's 分开 and
 * 不分开) where the corpus has their characters, else the corpus' own first two characters and one
 * from its middle, so any corpus (English, Tang poems without 分 or 开) trains with no flags.
 */
export function defaultPrefixes(
  corpus: Pick<Corpus, 'text' | 'vocab'>,
  preferred: readonly string[],
): { prefixes: string[]; fromCorpus: boolean } {
  if (preferred.every((p) => unknownChars(corpus.vocab, p).length === 0)) return { prefixes: [...preferred], fromCorpus: false };
  const chars = Array.from(corpus.text);
  const firstNonSpace = (from: number) => {
    const i = chars.findIndex((c, k) => k >= from && c.trim() !== '');
    return i < 0 ? from : i;
  };
  const start = firstNonSpace(0);
  const prefixes = [chars.slice(start, start + 2).join(''), chars[firstNonSpace(Math.floor(chars.length / 2))]];
  return { prefixes: [...new Set(prefixes.filter((p) => p !== undefined && p.length > 0))], fromCorpus: true };
}
