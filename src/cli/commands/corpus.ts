/**
 * `lstm-lyrics corpus info PATH`: what a corpus holds; `lstm-lyrics corpus fetch jaychou`: download
 * the lesson's own corpus, checked against its known size and SHA-256.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv } from 'yargs';
import { DEFAULT_TRAIN } from '../../core/config';
import { buildVocabulary } from '../../core/vocab';
import { loadCorpus } from '../../node/corpus-file';
import { UsageError } from '../../core/errors';
import { DEFAULT_TIMEOUT_MS, downloadVerified, fileDigest, type ExpectedFile } from '../../node/fetch';
import { checkOutDir, checkOutFile } from '../../node/out-path';
import type { Logger } from '../logger';
import { count } from '../../core/numbers';
import { formatTable } from '../../terminal/table';
import { positiveNumber, wholeNumber, type ArgsOf } from '../options';

export const command = 'corpus <action> <target>';
export const describe = "inspect a corpus (info PATH) or download the lesson's (fetch jaychou)";

/** A corpus `fetch` knows: where it lives and what its bytes must be. */
export interface KnownCorpus {
  readonly url: string;
  readonly file: string;
  readonly expected: ExpectedFile;
  readonly description: string;
}

/** The d2l-zh book's Jay Chou lyrics, as its RNN chapters load them. */
export const KNOWN_CORPORA: Readonly<Record<string, KnownCorpus>> = {
  jaychou: {
    url: 'https://raw.githubusercontent.com/d2l-ai/d2l-zh/v1/data/jaychou_lyrics.txt.zip',
    file: 'jaychou_lyrics.txt.zip',
    expected: { bytes: 52_607, sha256: '3cfedd7d174111cdad5a27eaffaa6a2432a2842cf2590a03dd8a97610ea07043' },
    description: "Jay Chou's lyrics, the corpus of the d2l-zh lesson (branch v1 of d2l-ai/d2l-zh)",
  },
};

export const ACTIONS = ['info', 'fetch'] as const;
export type Action = (typeof ACTIONS)[number];

export const corpusOptions = {
  entry: { type: 'string', describe: 'info: which .txt inside a zip that holds several' },
  'max-chars': {
    type: 'number',
    default: DEFAULT_TRAIN.maxChars,
    describe: 'info: also count the vocabulary of the first N characters (what train reads)',
  },
  top: { type: 'number', default: 10, describe: 'info: how many of the most frequent characters to list' },
  'sample-chars': { type: 'number', default: 80, describe: 'info: length of the sample from the start of the text' },
  dir: { type: 'string', default: 'corpus', describe: 'fetch: the directory to save into' },
  url: { type: 'string', describe: 'fetch: download from this URL (a mirror) instead', defaultDescription: "the corpus' home" },
  timeout: { type: 'number', default: DEFAULT_TIMEOUT_MS / 1000, describe: 'fetch: give up after this many seconds without data' },
} as const;

/** The two positionals (required by the command string) and the options. */
export type CorpusArgs = ArgsOf<typeof corpusOptions> & { readonly action: Action; readonly target: string };

export function builder<T>(y: Argv<T>) {
  return y
    .positional('action', {
      choices: ACTIONS,
      demandOption: true,
      describe: 'info: describe a corpus file; fetch: download a known corpus',
    })
    .positional('target', {
      type: 'string',
      demandOption: true,
      describe: `info: a .txt or .zip file; fetch: a corpus name (${Object.keys(KNOWN_CORPORA).join(', ')})`,
    })
    .options(corpusOptions)
    .example([
      ['$0 corpus info corpus/songci300.txt', 'characters, vocabulary, most frequent characters, a sample'],
      ['$0 corpus fetch jaychou', 'download jaychou_lyrics.txt.zip into corpus/ and check its SHA-256'],
    ]);
}

/** Returns the lines to print; diagnostics go to `log`. `known` is injectable for tests. */
export async function handler(
  args: CorpusArgs,
  log: Logger,
  known: Readonly<Record<string, KnownCorpus>> = KNOWN_CORPORA,
): Promise<string[]> {
  return args.action === 'fetch' ? fetchCorpus(args, log, known) : corpusInfo(args);
}

export function corpusInfo(args: Pick<CorpusArgs, 'target' | 'entry' | 'maxChars' | 'top' | 'sampleChars'>): string[] {
  const maxChars = wholeNumber('max-chars', args.maxChars, 0);
  const top = wholeNumber('top', args.top, 0);
  const sampleChars = wholeNumber('sample-chars', args.sampleChars, 0);
  const corpus = loadCorpus(args.target, { entry: args.entry, maxChars: 0 });
  const chars = Array.from(corpus.text);
  const counts = new Map<string, number>();
  for (const c of chars) counts.set(c, (counts.get(c) ?? 0) + 1);
  const frequent = [...counts].sort((a, b) => b[1] - a[1] || a[0].codePointAt(0)! - b[0].codePointAt(0)!).slice(0, top);
  const rows: [string, string][] = [
    [
      'file',
      `${args.target}${args.entry ? ` (${args.entry})` : ''}, ${count(fs.statSync(args.target).size)} bytes, SHA-256 ${corpus.sha256}`,
    ],
    ['characters', `${count(chars.length)} (line breaks count as spaces, as training reads them)`],
    ['vocabulary', `${count(corpus.vocab.chars.length)} distinct characters`],
  ];
  if (maxChars > 0 && maxChars < chars.length) {
    const first = buildVocabulary(chars.slice(0, maxChars).join('')).chars.length;
    rows.push([`first ${count(maxChars)}`, `${count(first)} distinct characters (what train reads with --max-chars ${maxChars})`]);
  }
  if (top > 0) {
    rows.push(['most frequent', frequent.map(([c, n]) => `${JSON.stringify(c)} ${((100 * n) / chars.length).toFixed(1)}%`).join('  ')]);
  }
  if (sampleChars > 0) rows.push(['sample', chars.slice(0, sampleChars).join('') + (chars.length > sampleChars ? '…' : '')]);
  return formatTable(rows);
}

async function fetchCorpus(args: CorpusArgs, log: Logger, known: Readonly<Record<string, KnownCorpus>>): Promise<string[]> {
  const corpus = known[args.target];
  if (!corpus) throw new UsageError(`no known corpus ${JSON.stringify(args.target)}; fetch knows: ${Object.keys(known).join(', ')}`);
  const timeout = positiveNumber('timeout', args.timeout);
  const dest = path.join(args.dir, corpus.file);
  checkOutDir('--dir', args.dir);
  checkOutFile('--dir', dest);
  const useIt = `train on it with: lstm-lyrics train --corpus ${dest}`;
  if (fs.existsSync(dest)) {
    const { bytes, sha256 } = fileDigest(dest);
    if (bytes === corpus.expected.bytes && sha256 === corpus.expected.sha256)
      return [`${dest} is already here and verified (SHA-256 ${sha256}); ${useIt}`];
    log.info(`${dest} exists but is not the expected file (SHA-256 ${sha256}); downloading it again`);
  }
  const url = args.url ?? corpus.url;
  log.info(`downloading ${corpus.description} from ${url}`);
  await downloadVerified(url, dest, corpus.expected, { timeoutMs: timeout * 1000 });
  return [`saved ${dest} (${count(corpus.expected.bytes)} bytes, SHA-256 ${corpus.expected.sha256} verified); ${useIt}`];
}
