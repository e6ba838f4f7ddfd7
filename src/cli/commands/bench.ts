/**
 * `npm run bench`: times both LSTMs on the lesson's reference configuration and, with --reference,
 * sets them beside the PyTorch version of the lesson run on the same machine and corpus.
 * A benchmark, not a test: it prints numbers and never fails on them.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import yargs from 'yargs';
import { BACKEND_PREFERENCES, selectBackend, type BackendPreference } from '../../backend/select';
import { BUNDLED_CORPUS, wholeNumber } from '../options';
import { DEFAULT_HIDDEN, DEFAULT_OPTIMIZER, DEFAULT_TRAIN, IMPLS, type Impl, type TrainConfig } from '../../core/config';
import { loadCorpus } from '../../node/corpus-file';
import type { Corpus } from '../../core/vocab';
import { UsageError, exitCodeOf } from '../../core/errors';
import { generateText } from '../../core/generate';
import { createModel } from '../../core/models';
import { median } from '../../core/metrics';
import { makeOptimizer } from '../../core/optimizer';
import { train } from '../../core/train';
import { count, formatTable } from '../../ui/table';

const PYTHON = '/usr/bin/python3';
const INSTALL_TORCH = 'apt-get update && apt-get install -y python3-torch libopenblas0-pthread';
const DEFAULT_REFERENCE_SCRIPT = path.resolve(__dirname, '..', '..', 'shared', 'reference', 'seed_lstm.py');
/** How much slower than PyTorch each impl may be (ours / PyTorch median seconds per epoch). */
export const TARGET_RATIO: Readonly<Record<Impl, number>> = { scratch: 2.0, builtin: 4.0 };
const GEN_PREFIX = '分开';
const GEN_CHARS = 200;

/** The reference script's last line, parsed. */
export interface ReferenceResult {
  readonly impl: string;
  readonly vocab: number;
  readonly epochs: number;
  readonly medianEpochSeconds: number;
  readonly totalSeconds: number;
  readonly finalPerplexity: number;
}

export interface ImplResult {
  readonly impl: Impl;
  readonly backend: string;
  readonly vocab: number;
  readonly epochs: number;
  readonly medianEpochSeconds: number;
  readonly charsPerSecond: number;
  readonly finalPerplexity: number;
  readonly peakRssMiB: number;
  /** tf.memory().numTensors after disposing everything, minus before: anything but 0 leaks. */
  readonly tensorsLeaked: number;
  readonly generateCharsPerSecond: number;
  reference?: ReferenceResult & { readonly ratio: number; readonly target: number; readonly met: boolean };
}

/** Parses `RESULT impl=... vocab=... ...` from the reference script's output (its last such line). */
export function parseResultLine(stdout: string): ReferenceResult | undefined {
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('RESULT '));
  if (!line) return undefined;
  const f = Object.fromEntries(line.slice(7).trim().split(/\s+/).map((kv) => kv.split('=', 2)));
  const num = (k: string) => Number(f[k]);
  const result = {
    impl: f.impl,
    vocab: num('vocab'),
    epochs: num('epochs'),
    medianEpochSeconds: num('median_epoch_s'),
    totalSeconds: num('total_s'),
    finalPerplexity: num('final_perplexity'),
  };
  return result.impl && Number.isFinite(result.medianEpochSeconds) ? result : undefined;
}

export function resultTable(results: readonly ImplResult[]): string {
  const withRef = results.some((r) => r.reference);
  const header = ['impl', 'backend', 's/epoch', 'chars/s', 'peak RSS MiB', 'tensors left', 'gen chars/s'];
  if (withRef) header.push('PyTorch s/epoch*', 'ours/PyTorch', 'target', 'met');
  const rows = results.map((r) => {
    const row = [r.impl, r.backend, r.medianEpochSeconds.toFixed(3), count(r.charsPerSecond), count(r.peakRssMiB), String(r.tensorsLeaked), count(r.generateCharsPerSecond)];
    if (r.reference) {
      const ref = r.reference;
      row.push(ref.medianEpochSeconds.toFixed(3), ref.ratio.toFixed(2) + 'x', '<=' + ref.target.toFixed(1) + 'x', ref.met ? 'yes' : 'NO');
    } else if (withRef) {
      row.push('-', '-', '-', '-');
    }
    return row;
  });
  return formatTable(rows, header).join('\n');
}

async function benchImpl(impl: Impl, corpus: Corpus, corpusPath: string, epochs: number, backend: string): Promise<ImplResult> {
  const config: TrainConfig = {
    ...DEFAULT_TRAIN,
    ...DEFAULT_OPTIMIZER[impl],
    corpus: corpusPath,
    epochs: epochs + 1, // the first is a warm-up (kernel set-up, allocator growth), dropped below
    // train() reports after the last epoch whatever reportEvery says; no prefixes makes that free.
    reportEvery: epochs + 2,
    prefixes: [],
    predLen: 0,
  };
  const tensorsBefore = tf.memory().numTensors;
  // RSS is sampled per batch rather than read from resourceUsage().maxRSS, which is process-wide
  // and would charge the second impl with the first one's peak.
  let peakRss = process.memoryUsage.rss();
  const model = createModel({ impl, vocabSize: corpus.vocab.chars.length, hidden: DEFAULT_HIDDEN }, config.seed);
  // Ours, not train()'s, so it can be disposed: Adam's moment variables would otherwise count as leaked.
  const optimizer = makeOptimizer(config.optimizer, config.lr);
  let genCharsPerSecond: number;
  let history;
  try {
    ({ history } = await train(model, corpus, config, { onBatch: () => (peakRss = Math.max(peakRss, process.memoryUsage.rss())) }, { optimizer }));
    generateText(model, corpus.vocab, GEN_PREFIX, 5); // warm-up: the first batch-1 step sets up its kernels
    const start = performance.now();
    generateText(model, corpus.vocab, GEN_PREFIX, GEN_CHARS);
    genCharsPerSecond = GEN_CHARS / ((performance.now() - start) / 1000);
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  } finally {
    model.dispose();
    optimizer.dispose();
  }
  const timed = history.slice(1);
  const seconds = median(timed.map((m) => m.seconds));
  const charsPerEpoch = timed[0].charsPerSecond * timed[0].seconds; // batches x batch size x steps
  return {
    impl,
    backend,
    vocab: corpus.vocab.chars.length,
    epochs,
    medianEpochSeconds: seconds,
    charsPerSecond: charsPerEpoch / seconds,
    finalPerplexity: timed[timed.length - 1].perplexity,
    peakRssMiB: peakRss / 2 ** 20,
    tensorsLeaked: tf.memory().numTensors - tensorsBefore,
    generateCharsPerSecond: genCharsPerSecond,
  };
}

function torchAvailable(): boolean {
  return spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0;
}

/** Runs the PyTorch lesson for as many epochs as we trained (warm-up included) and parses its result. */
function runReference(script: string, corpusPath: string, impl: Impl, epochs: number): ReferenceResult {
  // REPORT_EVERY 1000: never samples text inside the timed epochs.
  const run = spawnSync(PYTHON, [script, corpusPath, impl, String(epochs + 1), '1000'], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const result = run.status === 0 ? parseResultLine(run.stdout) : undefined;
  if (!result) throw new Error(`${script} ${impl} failed (exit ${run.status}): ${(run.stderr || run.stdout).trim().split('\n').slice(-3).join(' | ')}`);
  return result;
}

async function main(): Promise<void> {
  const args = await yargs(process.argv.slice(2))
    .scriptName('npm run bench --')
    .usage(
      '$0 [options]\n\nTimes training and generation of both LSTMs on the lesson\'s reference configuration ' +
        `(hidden ${DEFAULT_HIDDEN}, ${DEFAULT_TRAIN.numSteps} steps, batch ${DEFAULT_TRAIN.batchSize}, first ${count(DEFAULT_TRAIN.maxChars)} characters, ` +
        'the lesson\'s optimizers), after one untimed warm-up epoch.',
    )
    .options({
      impl: { choices: IMPLS, describe: 'benchmark only this LSTM', defaultDescription: 'both' },
      epochs: { type: 'number', default: 3, describe: 'timed epochs per impl (after one warm-up epoch)' },
      corpus: { type: 'string', default: BUNDLED_CORPUS, defaultDescription: 'the bundled corpus/songci300.txt', describe: 'training text: a UTF-8 .txt or a .zip holding one' },
      backend: { choices: BACKEND_PREFERENCES, default: 'auto' as BackendPreference, describe: 'TF.js backend' },
      threads: { type: 'number', default: 1, describe: 'wasm compute threads (see lstm-lyrics train --help)' },
      reference: { type: 'boolean', default: false, describe: `also time the PyTorch lesson (${PYTHON} + torch) and compare` },
      'reference-script': { type: 'string', default: DEFAULT_REFERENCE_SCRIPT, defaultDescription: '../../../shared/reference/seed_lstm.py', describe: 'the PyTorch reference script' },
      json: { type: 'boolean', default: false, describe: 'print the results as one JSON object instead of a table' },
    })
    .example([
      ['$0', 'both impls, 3 timed epochs'],
      ['$0 --impl builtin --epochs 5 --reference', 'one impl, compared with PyTorch'],
    ])
    .strict()
    .help()
    .alias('h', 'help')
    .version(false)
    .wrap(Math.min(110, process.stdout.columns ?? 110))
    .parseAsync();

  const epochs = wholeNumber('epochs', args.epochs);
  const impls = args.impl ? [args.impl] : [...IMPLS];
  const corpusPath = path.resolve(args.corpus);
  // Progress and context go to stderr so that --json leaves stdout to the one object.
  const note = (line: string) => process.stderr.write(line + '\n');
  const say = args.json ? note : (line: string) => process.stdout.write(line + '\n');

  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, node: process.version };
  say(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`);
  const backend = await selectBackend(args.backend, { wasmThreads: wholeNumber('threads', args.threads) });
  say(backend.description);
  const corpus = loadCorpus(corpusPath, { maxChars: DEFAULT_TRAIN.maxChars });
  say(`corpus: ${corpusPath} (${count(corpus.ids.length)} characters, vocabulary ${corpus.vocab.chars.length}); ${epochs} timed epoch${epochs === 1 ? '' : 's'} after 1 warm-up`);

  const results: ImplResult[] = [];
  for (const impl of impls) {
    note(`training ${impl}: 1 warm-up + ${epochs} timed epochs...`);
    results.push(await benchImpl(impl, corpus, corpusPath, epochs, backend.name));
  }

  let referenceNote: string | undefined;
  if (args.reference) {
    const script = path.resolve(args['reference-script']);
    if (!fs.existsSync(script)) referenceNote = `reference skipped: ${script} not found (see --reference-script)`;
    else if (!torchAvailable()) referenceNote = `reference skipped: ${PYTHON} cannot import torch; install it with: ${INSTALL_TORCH}`;
    else {
      // Run after ours, never alongside: on a 2-core machine they would slow each other down.
      for (const r of results) {
        note(`running PyTorch reference ${r.impl}: ${epochs + 1} epochs...`);
        const ref = runReference(script, corpusPath, r.impl, epochs);
        const ratio = r.medianEpochSeconds / ref.medianEpochSeconds;
        r.reference = { ...ref, ratio, target: TARGET_RATIO[r.impl], met: ratio <= TARGET_RATIO[r.impl] };
        if (ref.vocab !== r.vocab) note(`warning: PyTorch read a vocabulary of ${ref.vocab}, ours ${r.vocab}: not the same task`);
      }
    }
    if (referenceNote) say(referenceNote);
  }

  if (args.json) {
    const corpusInfo = { path: corpusPath, chars: corpus.ids.length, vocab: corpus.vocab.chars.length };
    process.stdout.write(JSON.stringify({ machine, backend: backend.description, corpus: corpusInfo, epochs, results, referenceNote }) + '\n');
    return;
  }
  say('');
  say(resultTable(results));
  say('');
  say(`s/epoch: median of the timed epochs; chars/s: characters trained per epoch / that median; gen chars/s: greedy ${GEN_CHARS} characters after ${GEN_PREFIX}.`);
  say('peak RSS: sampled per batch during that impl\'s run (the wasm heap never shrinks, so a later impl inherits an earlier one\'s growth).');
  if (results.some((r) => r.reference)) {
    say(`* PyTorch's median is over all ${epochs + 1} of its epochs, its first (warm-up) included; ours excludes the warm-up.`);
  }
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`bench: ${err instanceof UsageError ? err.message : (err?.stack ?? err)}\n`);
    process.exit(exitCodeOf(err));
  });
}
