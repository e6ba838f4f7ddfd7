/**
 * `bench` without --scale: times each cell x impl (a warm-up epoch, then the timed ones, then
 * greedy generation), --rounds times, each round followed by its PyTorch lesson with --reference,
 * and combines the rounds into one row per cell x impl of the result table.
 *
 * Apart from the command module so that the measuring and the arithmetic over rounds can be read
 * (and tested) without the option wiring around them.
 */
import { spawnSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { type Cell, DEFAULT_HIDDEN, DEFAULT_TRAIN, type Impl, lessonDefaults, type TrainConfig } from '../../core/config';
import { generateText } from '../../core/generate';
import { median, type EpochMetrics } from '../../core/metrics';
import { createModel } from '../../core/models';
import { makeOptimizer } from '../../core/optimizer';
import { train } from '../../core/train';
import { unknownChars, type Corpus } from '../../core/vocab';
import { loadCorpus } from '../../node/corpus-file';
import {
  OPENBLAS_VARS_UNSET,
  type ReferenceResult,
  type ReferenceScripts,
  referenceProblem,
  runReference,
} from '../../node/pytorch-reference';
import { count } from '../../core/numbers';
import { formatTable } from '../../terminal/table';
import type { Logger } from '../logger';
import { startBackend, type BackendArgs } from '../options';

/** --accel for bench: on, off, or both side by side. */
export type BenchAccel = 'on' | 'off' | 'both';

/**
 * The goal per impl, for every cell and depth: ours / PyTorch median seconds per epoch at most
 * this, on the same machine and corpus (scratch against the lesson's scratch code, builtin against
 * nn.RNN / nn.GRU / nn.LSTM with the same num_layers). Printed, never asserted: a benchmark.
 */
export const TARGET_RATIO: Readonly<Record<Impl, number>> = { scratch: 1.0, builtin: 2.0 };
/** The generation goal: ours / PyTorch greedy characters per second at least this. */
export const GEN_TARGET_RATIO = 1.0;
const GEN_PREFIX = '分开';
/** Greedy characters timed after training, ours and (with --reference) PyTorch's alike. */
export const GEN_CHARS = 200;
/**
 * Ours times GEN_CHARS this many times, after GEN_WARMUP_RUNS untimed runs of as many, and keeps the
 * median. One timing of 200 characters lasts 10-30 ms: on a shared 2-core machine a single one
 * measured the scheduler as much as the model (the same 2-layer RNN timed 3,000-19,000 characters a
 * second run after run).
 */
export const GEN_RUNS = 5;
/**
 * The first 1,000-1,500 characters a process generates run at 2,000-8,000 a second, then 15,000-20,000
 * (a 2-layer RNN, every impl alike): V8 is still optimising the path (the engine's runKernel, tidy, the
 * kernel's JS; under node --no-opt the slow start is gone, and so is the steady speed). One warm-up of 5
 * characters left the process' first generating impl (bench's first row, or the only one with
 * --impl) timed inside that, so 2,000 characters first: about what a long `generate` amortises.
 */
export const GEN_WARMUP_RUNS = 10;

export interface ImplResult {
  readonly cell: Cell;
  readonly layers: number;
  readonly impl: Impl;
  readonly backend: string;
  /** Whether our speed-ups (src/accel) were on. */
  readonly accel: 'on' | 'off';
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
  reference?: ReferenceResult & {
    readonly ratio: number;
    readonly target: number;
    readonly met: boolean;
    /** Ours / PyTorch generated characters per second (median over rounds), when PyTorch timed it. */
    readonly generateRatio?: number;
    readonly generateMet?: boolean;
  };
  /** With --rounds above 1: ours/PyTorch of each round, in order (the ratio above is their median). */
  roundRatios?: number[];
}

/** `lstm scratch`, `gru builtin, 2 layers`: a row's name in progress lines and notes. */
export function rowLabel(r: { cell: Cell; impl: Impl; layers: number }): string {
  return `${r.cell} ${r.impl}${r.layers > 1 ? `, ${r.layers} layers` : ''}`;
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

export function resultTable(results: readonly ImplResult[]): string {
  const withRef = results.some((r) => r.reference);
  const header = [
    'cell',
    'layers',
    'impl',
    'backend',
    'accel',
    's/epoch',
    'CPU s/epoch',
    'chars/s',
    'peak RSS MiB',
    'tensors left',
    'gen chars/s',
  ];
  if (withRef)
    header.push('PyTorch s/epoch*', 'ours/PyTorch', 'goal', 'met', 'PyTorch gen chars/s', 'gen ours/PyTorch', 'gen goal', 'gen met');
  const rows = results.map((r) => {
    const row = [
      r.cell,
      String(r.layers),
      r.impl,
      r.backend,
      r.accel,
      r.medianEpochSeconds.toFixed(3),
      r.medianEpochCpuSeconds.toFixed(3),
      count(r.charsPerSecond),
      count(r.peakRssMiB),
      String(r.tensorsLeaked),
      count(r.generateCharsPerSecond),
    ];
    if (r.reference) {
      const ref = r.reference;
      row.push(ref.medianEpochSeconds.toFixed(3), `${ref.ratio.toFixed(2)}x`, `<=${ref.target.toFixed(1)}x`, ref.met ? 'yes' : 'NO');
      if (ref.generateCharsPerSecond !== undefined && ref.generateRatio !== undefined) {
        row.push(
          count(ref.generateCharsPerSecond),
          `${ref.generateRatio.toFixed(2)}x`,
          `>=${GEN_TARGET_RATIO.toFixed(1)}x`,
          ref.generateMet ? 'yes' : 'NO',
        );
      } else {
        row.push('-', '-', '-', '-');
      }
    } else if (withRef) {
      row.push('-', '-', '-', '-', '-', '-', '-', '-');
    }
    return row;
  });
  return formatTable(rows, header).join('\n');
}

async function benchImpl(
  cell: Cell,
  layers: number,
  impl: Impl,
  corpus: Corpus,
  corpusPath: string,
  epochs: number,
  hidden: number,
  backend: string,
  accel: 'on' | 'off',
): Promise<ImplResult> {
  // Each cell trains with its own lesson's optimizer and rate (nn.RNN's Adam runs at 0.001, not
  // 0.01): the same work per step either way, but the perplexity printed is then the lesson's.
  const { optimizer: optimizerName, lr } = lessonDefaults(cell, impl);
  const config: TrainConfig = {
    ...DEFAULT_TRAIN,
    optimizer: optimizerName,
    lr,
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
  // No dropout: PyTorch's reference has none, and it would only add work to the timed epochs.
  const model = createModel({ impl, cell, layers, dropout: 0, vocabSize: corpus.vocab.chars.length, hidden }, config.seed);
  // Ours, not train()'s, so it can be disposed: Adam's moment variables would otherwise count as leaked.
  const optimizer = makeOptimizer(config.optimizer, config.lr);
  let genCharsPerSecond: number;
  let history: readonly EpochMetrics[];
  const cpuSeconds: number[] = [];
  let cpuMark = process.cpuUsage();
  const onEpoch = () => {
    const used = process.cpuUsage(cpuMark);
    cpuSeconds.push((used.user + used.system) / 1e6);
    cpuMark = process.cpuUsage();
  };
  try {
    ({ history } = await train(
      model,
      corpus,
      config,
      { onBatch: () => (peakRss = Math.max(peakRss, process.memoryUsage.rss())), onEpoch },
      { optimizer },
    ));
    const prefix = unknownChars(corpus.vocab, GEN_PREFIX).length === 0 ? GEN_PREFIX : corpus.vocab.chars[0];
    genCharsPerSecond = generationRate(() => generateText(model, corpus.vocab, prefix, GEN_CHARS));
    peakRss = Math.max(peakRss, process.memoryUsage.rss());
  } finally {
    model.dispose();
    optimizer.dispose();
  }
  const timed = history.slice(1);
  const seconds = median(timed.map((m) => m.seconds));
  const charsPerEpoch = timed[0].charsPerSecond * timed[0].seconds; // batches x batch size x steps
  return {
    cell,
    layers,
    impl,
    backend,
    accel,
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

/**
 * Greedy characters a second of `generate` (GEN_CHARS characters a call): GEN_WARMUP_RUNS untimed
 * calls (see there), then the median of GEN_RUNS timed ones.
 */
export function generationRate(generate: () => unknown, now: () => number = () => performance.now()): number {
  for (let k = 0; k < GEN_WARMUP_RUNS; k++) generate();
  const rates: number[] = [];
  for (let k = 0; k < GEN_RUNS; k++) {
    const start = now();
    generate();
    rates.push(GEN_CHARS / ((now() - start) / 1000));
  }
  return median(rates);
}

/** One round of one cell x impl: ours, and PyTorch's right after it (with --reference). */
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
  // Generation likewise: the median of each round's ours/PyTorch, when every round timed it.
  const genRates = references.map((r) => r.generateCharsPerSecond).filter((x): x is number => x !== undefined);
  const generate =
    genRates.length === runs.length
      ? (() => {
          const generateRatio = median(runs.map((r, i) => r.ours.generateCharsPerSecond / genRates[i]));
          return { generateCharsPerSecond: median(genRates), generateRatio, generateMet: generateRatio >= GEN_TARGET_RATIO };
        })()
      : undefined;
  return {
    ...combined,
    reference: {
      ...references[0],
      medianEpochSeconds: median(references.map((r) => r.medianEpochSeconds)),
      ratio,
      target,
      met: ratio <= target,
      ...generate,
    },
    ...(runs.length > 1 && { roundRatios: ratios }),
  };
}

/**
 * Trains each cell x impl for a warm-up and `run.epochs` timed epochs, then (with `run.reference`)
 * runs its PyTorch lesson as long, `run.rounds` times. The table and notes go to `log`; progress to `note`.
 */
export async function benchRounds(
  args: Omit<BackendArgs, 'accel'> & { readonly accel: BenchAccel },
  run: {
    impls: Impl[];
    cells: Cell[];
    layers: number;
    epochs: number;
    rounds: number;
    maxChars: number;
    hidden: number;
    corpusPath: string;
    machine: BenchResult['machine'];
    /** With --reference: the interpreter and the scripts to run. */
    reference?: ReferenceScripts;
  },
  log: Logger,
  note: Logger,
): Promise<BenchResult> {
  const { epochs, rounds, maxChars, hidden, layers, corpusPath, machine } = run;
  const loadBefore = os.loadavg()[0];
  // Before the minutes of training: a reference that cannot run is said at once. Only the scripts
  // this run calls must exist: seed_lstm.py for the one-layer LSTM, series.py for the rest.
  const needed = run.reference
    ? [
        ...(run.cells.some((c) => c === 'lstm' && layers === 1) ? [{ path: run.reference.lstm, flag: 'reference-script' }] : []),
        ...(run.cells.some((c) => c !== 'lstm' || layers > 1) ? [{ path: run.reference.series, flag: 'series-script' }] : []),
      ]
    : [];
  const referenceNote = run.reference ? referenceProblem(run.reference.python, needed) : undefined;
  if (referenceNote) log.info(`reference skipped: ${referenceNote}`);
  const backend = await startBackend({ ...args, accel: args.accel === 'both' ? 'on' : args.accel });
  log.info(backend.description);
  if (args.accel === 'both')
    log.info(
      'accel off: each round of each impl also runs in a fresh process with --accel off (stock TF.js: one wasm thread, no kernel, engine or optimizer patches)',
    );
  const corpus = loadCorpus(corpusPath, { maxChars });
  log.info(
    `corpus: ${corpusPath} (${count(corpus.ids.length)} characters, vocabulary ${corpus.vocab.chars.length}); hidden ${hidden}; ${layers} layer${layers === 1 ? '' : 's'}; ${epochs} timed epoch${epochs === 1 ? '' : 's'} after 1 warm-up; each cell with its lesson's optimizer and learning rate`,
  );

  const reference = referenceNote ? undefined : run.reference;
  if (reference) {
    log.info(
      `reference: ${reference.python} ${needed.map((s) => s.path).join(' and ')}, with ${OPENBLAS_VARS_UNSET.join(' and ')} unset in its environment (they slow OpenBLAS down on these machines)`,
    );
    if (maxChars !== DEFAULT_TRAIN.maxChars || hidden !== DEFAULT_HIDDEN) {
      note.info(
        `warning: the reference always reads the first ${count(DEFAULT_TRAIN.maxChars)} characters with hidden ${DEFAULT_HIDDEN}: not the same task`,
      );
    }
  }
  const results: ImplResult[] = [];
  const stock: Round[] = [];
  for (const cell of run.cells) {
    for (const impl of run.impls) {
      const label = rowLabel({ cell, impl, layers });
      const runs: Round[] = [];
      for (let k = 1; k <= rounds; k++) {
        const round = rounds > 1 ? ` (round ${k} of ${rounds})` : '';
        note.info(`training ${label}${round}: 1 warm-up + ${epochs} timed epochs...`);
        const ours = await benchImpl(cell, layers, impl, corpus, corpusPath, epochs, hidden, backend.name, backend.accel.on ? 'on' : 'off');
        // Right after ours, so both see the machine as it is then; never alongside: on a 2-core
        // machine they would slow each other down.
        let theirs: ReferenceResult | undefined;
        if (reference) {
          note.info(`running PyTorch reference ${label}${round}: ${epochs + 1} epochs...`);
          theirs = runReference(reference, { corpusPath, cell, impl, layers, epochs: epochs + 1, genChars: GEN_CHARS });
          if (theirs.vocab !== ours.vocab)
            note.info(`warning: PyTorch read a vocabulary of ${theirs.vocab}, ours ${ours.vocab}: not the same task`);
        }
        runs.push({ ours, reference: theirs });
        if (args.accel === 'both') {
          note.info(`training ${label}${round} with --accel off, in a fresh process...`);
          const child = benchInChild([
            '--cell',
            cell,
            '--layers',
            String(layers),
            '--impl',
            impl,
            '--epochs',
            String(epochs),
            '--corpus',
            corpusPath,
            '--max-chars',
            String(maxChars),
            '--hidden',
            String(hidden),
            '--backend',
            args.backend,
            '--accel',
            'off',
          ]);
          stock.push({ ours: child.results[0] });
        }
      }
      results.push(combineRounds(runs));
      if (stock.length > 0) results.push(combineRounds(stock.splice(0)));
    }
  }

  log.info('');
  log.info(resultTable(results));
  log.info('');
  log.info(
    `load average (1 min): ${loadBefore.toFixed(1)} before this bench, ${os.loadavg()[0].toFixed(1)} after (which counts the bench itself), on ${machine.cores} cores: when it was well above 0 before, other processes shared the cores and wall times are inflated; CPU times much less so.`,
  );
  log.info(
    `s/epoch: median of the timed epochs (wall); CPU s/epoch: this process' CPU time, all threads; chars/s: characters trained per epoch / that median; gen chars/s: greedy ${GEN_CHARS} characters after ${GEN_PREFIX}, the median of ${GEN_RUNS} timings after ${GEN_WARMUP_RUNS} untimed ones (PyTorch's: one timing), on this process' threads (lstm-lyrics generate runs on 1 under --threads auto: batch-1 steps are too small to share, and slower on 2).`,
  );
  log.info(
    "peak RSS: sampled per batch during that impl's run (the wasm heap never shrinks, so a later impl inherits an earlier one's growth).",
  );
  if (results.some((r) => r.reference)) {
    log.info(`* PyTorch's median is over all ${epochs + 1} of its epochs, its first (warm-up) included; ours excludes the warm-up.`);
    log.info(
      `goals: every scratch <=${TARGET_RATIO.scratch.toFixed(1)}x its PyTorch lesson's s/epoch; every builtin <=${TARGET_RATIO.builtin.toFixed(1)}x nn.RNN / nn.GRU / nn.LSTM (stacked: the same num_layers); generation >=${GEN_TARGET_RATIO.toFixed(1)}x PyTorch's chars/s (greedy ${GEN_CHARS} characters; PyTorch's under torch.no_grad()). A benchmark: it reports them, never fails on them.`,
    );
  }
  for (const on of results.filter((r) => r.accel === 'on')) {
    const off = results.find((r) => r.accel === 'off' && r.impl === on.impl && r.cell === on.cell && r.layers === on.layers);
    if (off)
      log.info(
        `${rowLabel(on)}: accel off / on ${(off.medianEpochSeconds / on.medianEpochSeconds).toFixed(2)}x the seconds per epoch, ${(on.generateCharsPerSecond / off.generateCharsPerSecond).toFixed(2)}x the generated characters per second; final perplexity ${on.finalPerplexity.toFixed(4)} on, ${off.finalPerplexity.toFixed(4)} off`,
      );
  }
  for (const r of results) {
    if (r.roundRatios)
      log.info(
        `${rowLabel(r)}: ours/PyTorch by round ${r.roundRatios.map((x) => `${x.toFixed(2)}x`).join(', ')}; the table shows the median of each column over the ${rounds} rounds, and of these ratios.`,
      );
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

/** Where the compiled CLI's entry point is, to bench in a fresh process. */
const BIN = path.resolve(__dirname, '..', '..', '..', 'bin', 'lstm-lyrics.js');

/** `lstm-lyrics bench --json ARGV` in a fresh process (its own wasm heap and thread count): what it returned. */
export function benchInChild(argv: readonly string[]): BenchResult {
  const child = spawnSync(process.execPath, [BIN, 'bench', '--json', ...argv], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const last = child.stdout?.trim().split('\n').at(-1);
  if (child.status !== 0 || !last)
    throw new Error(`bench ${argv.join(' ')} failed (exit ${child.status}): ${(child.stderr ?? '').trim().split('\n').at(-1)}`);
  return JSON.parse(last) as BenchResult;
}
