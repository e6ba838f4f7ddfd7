/**
 * `lstm-lyrics bench`: times both LSTMs on the lesson's reference configuration and, with
 * --reference, sets them beside the PyTorch version of the lesson run on the same machine and corpus.
 * A benchmark, not a test: it prints numbers and never fails on them.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as tf from '@tensorflow/tfjs';
import type { Argv } from 'yargs';
import { resolveThreads } from '../../backend/threads';
import { DEFAULT_HIDDEN, DEFAULT_OPTIMIZER, DEFAULT_TRAIN, IMPLS, type Impl, type TrainConfig } from '../../core/config';
import { generateText } from '../../core/generate';
import { median } from '../../core/metrics';
import { createModel } from '../../core/models';
import { makeOptimizer } from '../../core/optimizer';
import { train } from '../../core/train';
import { unknownChars, type Corpus } from '../../core/vocab';
import { loadCorpus } from '../../node/corpus-file';
import { count, formatTable } from '../../ui/table';
import type { Logger } from '../logger';
import { BUNDLED_CORPUS, backendOption, startBackend, threadsOf, trainOptions, wholeNumber, type ArgsOf } from '../options';

export const command = 'bench';
export const describe = 'time training and generation of both LSTMs (and, with --reference, the PyTorch lesson)';

/** The package root: the reference script's default path is relative to it, not to the cwd. */
const PACKAGE_ROOT = path.resolve(__dirname, '..', '..', '..');
export const DEFAULT_REFERENCE_SCRIPT = path.resolve(PACKAGE_ROOT, '..', 'shared', 'reference', 'seed_lstm.py');
const INSTALL_TORCH = 'apt-get update && apt-get install -y python3-torch libopenblas0-pthread';
/**
 * Set on these machines and slowing OpenBLAS down (a wrong core type, a small L2): removed from the
 * reference child's environment only, never from ours.
 */
export const OPENBLAS_VARS_UNSET = ['OPENBLAS_CORETYPE', 'OPENBLAS_L2_SIZE'] as const;
/** The goal: ours / PyTorch median seconds per epoch at most this (issue 10's "done"). */
export const TARGET_RATIO: Readonly<Record<Impl, number>> = { scratch: 1.0, builtin: 2.0 };
/** --scale's grid: the lesson's 10,000 characters and the whole corpus (0), three model sizes. */
export const SCALE_CHARS = [10_000, 0] as const;
export const SCALE_HIDDEN = [128, 256, 512] as const;
const GEN_PREFIX = '分开';
const GEN_CHARS = 200;

export const benchOptions = {
  impl: { choices: IMPLS, describe: 'benchmark only this LSTM', defaultDescription: 'both' },
  epochs: { type: 'number', default: 3, describe: 'timed epochs per impl (after one warm-up epoch)' },
  rounds: { type: 'number', default: 1, describe: 'run each impl (and, with --reference, PyTorch right after it) this many times; medians over the rounds: steadier where the machine\'s speed drifts' },
  corpus: { type: 'string', default: BUNDLED_CORPUS, defaultDescription: 'the bundled corpus/songci300.txt', describe: 'training text: a UTF-8 .txt or a .zip holding one' },
  'max-chars': trainOptions['max-chars'],
  hidden: trainOptions.hidden,
  reference: { type: 'boolean', default: false, describe: 'also time the PyTorch lesson (--python + torch) and compare' },
  python: { type: 'string', default: 'python3', describe: 'the Python interpreter for --reference (one that can import torch)' },
  'reference-script': { type: 'string', default: DEFAULT_REFERENCE_SCRIPT, defaultDescription: '../shared/reference/seed_lstm.py beside the package', describe: 'the PyTorch reference script' },
  json: { type: 'boolean', default: false, describe: 'print the results as one JSON object on stdout instead of a table' },
  scale: { type: 'boolean', default: false, describe: `how time and memory grow: each impl at --max-chars ${SCALE_CHARS.map((n) => (n ? count(n) : 'all')).join(' / ')} x hidden ${SCALE_HIDDEN.join(' / ')}, each in a fresh process` },
  ...backendOption,
} as const;

export type BenchArgs = ArgsOf<typeof benchOptions>;

export function builder<T>(y: Argv<T>) {
  return y.options(benchOptions).example([
    ['$0 bench', 'both impls, 3 timed epochs, bundled corpus'],
    ['$0 bench --reference --corpus jaychou_lyrics.txt.zip --epochs 5', 'the lesson\'s corpus, beside PyTorch'],
    ['$0 bench --reference --python /usr/bin/python3', 'PyTorch from a named interpreter'],
    ['$0 bench --reference --rounds 3', 'ours and PyTorch back to back three times; the median ratio'],
  ]);
}

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
  /** Characters trained on (after --max-chars). */
  readonly chars: number;
  readonly vocab: number;
  readonly hidden: number;
  readonly epochs: number;
  readonly medianEpochSeconds: number;
  /**
   * Median CPU seconds (user + system, all threads) of this process per timed epoch: on a busy
   * machine wall time also counts the time other processes held the cores; this does not.
   */
  readonly medianEpochCpuSeconds: number;
  readonly charsPerSecond: number;
  readonly finalPerplexity: number;
  readonly peakRssMiB: number;
  /** tf.memory().numTensors after disposing everything, minus before: anything but 0 leaks. */
  readonly tensorsLeaked: number;
  readonly generateCharsPerSecond: number;
  reference?: ReferenceResult & { readonly ratio: number; readonly target: number; readonly met: boolean };
  /** With --rounds above 1: ours/PyTorch of each round, in order (the ratio above is their median). */
  roundRatios?: number[];
}

/** What `bench` returns, and what --json prints. */
export interface BenchResult {
  readonly machine: { readonly cpu: string; readonly cores: number; readonly node: string };
  readonly backend: string;
  readonly corpus: { readonly path: string; readonly chars: number; readonly vocab: number };
  readonly epochs: number;
  readonly results: ImplResult[];
  /** Why the reference did not run, when asked for and it could not. */
  referenceNote?: string;
  /** --scale: one row per impl, corpus length and hidden size. */
  scale?: ImplResult[];
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
  const header = ['impl', 'backend', 's/epoch', 'CPU s/epoch', 'chars/s', 'peak RSS MiB', 'tensors left', 'gen chars/s'];
  if (withRef) header.push('PyTorch s/epoch*', 'ours/PyTorch', 'target', 'met');
  const rows = results.map((r) => {
    const row = [r.impl, r.backend, r.medianEpochSeconds.toFixed(3), r.medianEpochCpuSeconds.toFixed(3), count(r.charsPerSecond), count(r.peakRssMiB), String(r.tensorsLeaked), count(r.generateCharsPerSecond)];
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

/**
 * Whether `python` can run the reference: undefined when it can, else why not (one line).
 * Checked before training, so a missing interpreter costs seconds, not a whole benchmark.
 */
export function referenceProblem(python: string, script: string): string | undefined {
  if (!fs.existsSync(script)) return `${script} not found (see --reference-script)`;
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8', env: referenceEnv() });
  if (probe.error) return `cannot run ${python}: ${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message} (see --python)`;
  if (probe.status !== 0) return `${python} cannot import torch; install it with: ${INSTALL_TORCH} (and pass --python /usr/bin/python3)`;
  return undefined;
}

/** Our environment without OPENBLAS_VARS_UNSET: for the reference child process only. */
export function referenceEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const copy = { ...env };
  for (const name of OPENBLAS_VARS_UNSET) delete copy[name];
  return copy;
}

/** Runs the PyTorch lesson for `epochs` epochs and parses its result. */
export function runReference(python: string, script: string, corpusPath: string, impl: Impl, epochs: number): ReferenceResult {
  // REPORT_EVERY 1000: never samples text inside the timed epochs.
  const run = spawnSync(python, [script, corpusPath, impl, String(epochs), '1000'], { encoding: 'utf8', maxBuffer: 64 << 20, env: referenceEnv() });
  const result = run.status === 0 ? parseResultLine(run.stdout) : undefined;
  if (!result) {
    const why = run.error?.message ?? (run.stderr || run.stdout).trim().split('\n').slice(-3).join(' | ');
    throw new Error(`${script} ${impl} failed (exit ${run.status}): ${why}`);
  }
  return result;
}

async function benchImpl(impl: Impl, corpus: Corpus, corpusPath: string, epochs: number, hidden: number, backend: string): Promise<ImplResult> {
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
  const model = createModel({ impl, vocabSize: corpus.vocab.chars.length, hidden }, config.seed);
  // Ours, not train()'s, so it can be disposed: Adam's moment variables would otherwise count as leaked.
  const optimizer = makeOptimizer(config.optimizer, config.lr);
  let genCharsPerSecond: number;
  let history;
  const cpuSeconds: number[] = [];
  let cpuMark = process.cpuUsage();
  const onEpoch = () => {
    const used = process.cpuUsage(cpuMark);
    cpuSeconds.push((used.user + used.system) / 1e6);
    cpuMark = process.cpuUsage();
  };
  try {
    ({ history } = await train(model, corpus, config, { onBatch: () => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), onEpoch }, { optimizer }));
    const prefix = unknownChars(corpus.vocab, GEN_PREFIX).length === 0 ? GEN_PREFIX : corpus.vocab.chars[0];
    generateText(model, corpus.vocab, prefix, 5); // warm-up: the first batch-1 step sets up its kernels
    const start = performance.now();
    generateText(model, corpus.vocab, prefix, GEN_CHARS);
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
    chars: corpus.ids.length,
    vocab: corpus.vocab.chars.length,
    hidden,
    epochs,
    medianEpochSeconds: seconds,
    medianEpochCpuSeconds: median(cpuSeconds.slice(1)),
    charsPerSecond: charsPerEpoch / seconds,
    finalPerplexity: timed[timed.length - 1].perplexity,
    peakRssMiB: peakRss / 2 ** 20,
    tensorsLeaked: tf.memory().numTensors - tensorsBefore,
    generateCharsPerSecond: genCharsPerSecond,
  };
}

/** One round of one impl: ours, and PyTorch's right after it (with --reference). */
interface Round {
  ours: ImplResult;
  reference?: ReferenceResult;
}

/**
 * One impl's result over its rounds: each measure the median of the rounds' (peak RSS and tensors
 * left the largest), and ours/PyTorch the median of the rounds' ratios, each of a pair run back to
 * back. One round is simply its own result.
 */
export function combineRounds(runs: readonly Round[]): ImplResult {
  const ours = runs.map((r) => r.ours);
  const of = (measure: (r: ImplResult) => number) => median(ours.map(measure));
  const combined: ImplResult = {
    ...ours[0],
    medianEpochSeconds: of((r) => r.medianEpochSeconds),
    medianEpochCpuSeconds: of((r) => r.medianEpochCpuSeconds),
    charsPerSecond: of((r) => r.charsPerSecond),
    generateCharsPerSecond: of((r) => r.generateCharsPerSecond),
    peakRssMiB: Math.max(...ours.map((r) => r.peakRssMiB)),
    tensorsLeaked: Math.max(...ours.map((r) => r.tensorsLeaked)),
  };
  const references = runs.map((r) => r.reference).filter((r): r is ReferenceResult => r !== undefined);
  if (references.length !== runs.length) return combined;
  const ratios = runs.map((r, i) => r.ours.medianEpochSeconds / references[i].medianEpochSeconds);
  const ratio = median(ratios);
  const target = TARGET_RATIO[combined.impl];
  return {
    ...combined,
    reference: { ...references[0], medianEpochSeconds: median(references.map((r) => r.medianEpochSeconds)), ratio, target, met: ratio <= target },
    ...(runs.length > 1 && { roundRatios: ratios }),
  };
}

/**
 * Trains each impl for a warm-up and `--epochs` timed epochs, then (with --reference) runs the
 * PyTorch lesson as long, --rounds times. The table and notes go to `log`; progress to `note`.
 */
export async function handler(args: BenchArgs, log: Logger, note: Logger = log): Promise<BenchResult> {
  const epochs = wholeNumber('epochs', args.epochs);
  const rounds = wholeNumber('rounds', args.rounds);
  const maxChars = wholeNumber('max-chars', args.maxChars, 0);
  const hidden = wholeNumber('hidden', args.hidden);
  const impls = args.impl ? [args.impl] : [...IMPLS];
  const corpusPath = path.resolve(args.corpus);
  const script = path.resolve(args.referenceScript);

  const cpus = os.cpus();
  const machine = { cpu: cpus[0]?.model.trim() ?? 'unknown', cores: cpus.length, node: process.version };
  log.info(`machine: ${machine.cpu}, ${machine.cores} cores, node ${machine.node}`);
  if (args.scale) return scaleHandler(args, { impls, epochs, corpusPath, machine }, log, note);
  const loadBefore = os.loadavg()[0];
  // Before the minutes of training: a reference that cannot run is said at once.
  const referenceNote = args.reference ? referenceProblem(args.python, script) : undefined;
  if (referenceNote) log.info(`reference skipped: ${referenceNote}`);
  const backend = await startBackend(args);
  log.info(backend.description);
  const corpus = loadCorpus(corpusPath, { maxChars });
  log.info(`corpus: ${corpusPath} (${count(corpus.ids.length)} characters, vocabulary ${corpus.vocab.chars.length}); hidden ${hidden}; ${epochs} timed epoch${epochs === 1 ? '' : 's'} after 1 warm-up`);

  const withReference = args.reference && !referenceNote;
  if (withReference) {
    log.info(`reference: ${args.python} ${script}, with ${OPENBLAS_VARS_UNSET.join(' and ')} unset in its environment (they slow OpenBLAS down on these machines)`);
    if (maxChars !== DEFAULT_TRAIN.maxChars || hidden !== DEFAULT_HIDDEN) {
      note.info(`warning: the reference always reads the first ${count(DEFAULT_TRAIN.maxChars)} characters with hidden ${DEFAULT_HIDDEN}: not the same task`);
    }
  }
  const results: ImplResult[] = [];
  for (const impl of impls) {
    const runs: Round[] = [];
    for (let k = 1; k <= rounds; k++) {
      const round = rounds > 1 ? ` (round ${k} of ${rounds})` : '';
      note.info(`training ${impl}${round}: 1 warm-up + ${epochs} timed epochs...`);
      const ours = await benchImpl(impl, corpus, corpusPath, epochs, hidden, backend.name);
      // Right after ours, so both see the machine as it is then; never alongside: on a 2-core
      // machine they would slow each other down.
      let reference: ReferenceResult | undefined;
      if (withReference) {
        note.info(`running PyTorch reference ${impl}${round}: ${epochs + 1} epochs...`);
        reference = runReference(args.python, script, corpusPath, impl, epochs + 1);
        if (reference.vocab !== ours.vocab) note.info(`warning: PyTorch read a vocabulary of ${reference.vocab}, ours ${ours.vocab}: not the same task`);
      }
      runs.push({ ours, reference });
    }
    results.push(combineRounds(runs));
  }

  log.info('');
  log.info(resultTable(results));
  log.info('');
  log.info(`load average (1 min): ${loadBefore.toFixed(1)} before this bench, ${os.loadavg()[0].toFixed(1)} after (which counts the bench itself), on ${machine.cores} cores: when it was well above 0 before, other processes shared the cores and wall times are inflated; CPU times much less so.`);
  log.info(`s/epoch: median of the timed epochs (wall); CPU s/epoch: this process' CPU time, all threads; chars/s: characters trained per epoch / that median; gen chars/s: greedy ${GEN_CHARS} characters after ${GEN_PREFIX}, on this process' threads (lstm-lyrics generate runs on 1 under --threads auto: batch-1 steps are too small to share, and slower on 2).`);
  log.info('peak RSS: sampled per batch during that impl\'s run (the wasm heap never shrinks, so a later impl inherits an earlier one\'s growth).');
  if (results.some((r) => r.reference)) {
    log.info(`* PyTorch's median is over all ${epochs + 1} of its epochs, its first (warm-up) included; ours excludes the warm-up.`);
  }
  for (const r of results) {
    if (r.roundRatios) log.info(`${r.impl}: ours/PyTorch by round ${r.roundRatios.map((x) => x.toFixed(2) + 'x').join(', ')}; the table shows the median of each column over the ${rounds} rounds, and of these ratios.`);
  }
  return {
    machine,
    backend: backend.description,
    corpus: { path: corpusPath, chars: corpus.ids.length, vocab: corpus.vocab.chars.length },
    epochs,
    results,
    ...(referenceNote && { referenceNote }),
  };
}

/** Where the compiled CLI's entry point is, to run each --scale configuration in a fresh process. */
const BIN = path.join(PACKAGE_ROOT, 'bin', 'lstm-lyrics.js');

/**
 * --scale: every impl x corpus length x hidden size, each in its own process (`bench --json`), so
 * that each peak RSS is that configuration's alone: the wasm heap never shrinks. The thread count is
 * resolved once here, so that the load of one run does not change the next one's.
 */
async function scaleHandler(
  args: BenchArgs,
  run: { impls: Impl[]; epochs: number; corpusPath: string; machine: BenchResult['machine'] },
  log: Logger,
  note: Logger,
): Promise<BenchResult> {
  const threads = await resolveThreads(threadsOf(args.threads));
  const backendArgs = ['--backend', args.backend, '--threads', String(threads.threads)];
  const rows: ImplResult[] = [];
  let backend = '';
  let corpusInfo: BenchResult['corpus'] | undefined;
  for (const impl of run.impls) {
    for (const maxChars of SCALE_CHARS) {
      for (const hidden of SCALE_HIDDEN) {
        note.info(`scale: ${impl}, ${maxChars ? count(maxChars) : 'all'} characters, hidden ${hidden}...`);
        const child = spawnSync(
          process.execPath,
          [BIN, 'bench', '--json', '--impl', impl, '--epochs', String(run.epochs), '--corpus', run.corpusPath, '--max-chars', String(maxChars), '--hidden', String(hidden), ...backendArgs],
          { encoding: 'utf8', maxBuffer: 64 << 20 },
        );
        const last = child.stdout?.trim().split('\n').at(-1);
        if (child.status !== 0 || !last) throw new Error(`bench --scale: ${impl} hidden ${hidden} failed (exit ${child.status}): ${(child.stderr ?? '').trim().split('\n').at(-1)}`);
        const result = JSON.parse(last) as BenchResult;
        backend = result.backend;
        if (maxChars === 0) corpusInfo = result.corpus;
        rows.push(result.results[0]);
      }
    }
  }
  log.info(backend + (threads.why ? ` (--threads ${threads.why}, resolved once for every run)` : ''));
  log.info(`corpus: ${run.corpusPath}; ${run.epochs} timed epoch${run.epochs === 1 ? '' : 's'} after 1 warm-up, each configuration in a fresh process`);
  log.info('');
  log.info(scaleTable(rows));
  log.info('');
  for (const line of scaleNotes(rows)) log.info(line);
  return { machine: run.machine, backend, corpus: corpusInfo ?? { path: run.corpusPath, chars: NaN, vocab: NaN }, epochs: run.epochs, results: [], scale: rows };
}

export function scaleTable(rows: readonly ImplResult[]): string {
  const header = ['impl', 'chars', 'vocab', 'hidden', 's/epoch', 'CPU s/epoch', 'ms per 1k chars', 'peak RSS MiB', 'tensors left'];
  return formatTable(
    rows.map((r) => [r.impl, count(r.chars), count(r.vocab), String(r.hidden), r.medianEpochSeconds.toFixed(3), r.medianEpochCpuSeconds.toFixed(3), (1e6 / r.charsPerSecond).toFixed(1), count(r.peakRssMiB), String(r.tensorsLeaked)]),
    header,
  ).join('\n');
}

/**
 * Per impl and hidden size, short corpus -> long corpus: CPU time per character (wall time on a
 * shared machine says more about the neighbours), against what the matmul work per character
 * predicts: 3·hidden·4·hidden for the recurrence plus 3·hidden·vocab for the output layer (forward,
 * and two products backward), which grows with the vocabulary, not with the corpus length. Time is
 * called linear in characters when the two ratios agree within 15%; memory flat when peak RSS
 * grows less than 15%.
 */
export function scaleNotes(rows: readonly ImplResult[]): string[] {
  const notes: string[] = [];
  for (const short of rows) {
    const long = rows.find((r) => r.impl === short.impl && r.hidden === short.hidden && r.chars > short.chars);
    if (!long) continue;
    const cpuPerChar = (r: ImplResult) => r.medianEpochCpuSeconds / (r.charsPerSecond * r.medianEpochSeconds);
    const work = (r: ImplResult) => 3 * r.hidden * 4 * r.hidden + 3 * r.hidden * r.vocab;
    const time = cpuPerChar(long) / cpuPerChar(short);
    const predicted = work(long) / work(short);
    const memory = long.peakRssMiB / short.peakRssMiB;
    const what = `${short.impl} hidden ${short.hidden}, ${count(short.chars)} -> ${count(long.chars)} characters (vocabulary ${count(short.vocab)} -> ${count(long.vocab)})`;
    notes.push(
      `${what}: CPU time per character x${time.toFixed(2)}, matmul work per character x${predicted.toFixed(2)} ` +
        `(${Math.abs(time / predicted - 1) <= 0.15 ? 'linear in characters' : 'NOT linear in characters'}); ` +
        `peak RSS x${memory.toFixed(2)} (${Math.abs(memory - 1) <= 0.15 ? 'flat' : 'NOT flat'})`,
    );
  }
  return notes;
}
