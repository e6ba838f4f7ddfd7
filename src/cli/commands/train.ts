/** `lstm-lyrics train`: train one model on a corpus, report as the lesson does, save it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type * as tf from '@tensorflow/tfjs';
import type { Argv } from 'yargs';
import type { BackendChoice } from '../../backend/select';
import { batchesPerEpoch } from '../../core/batches';
import { DEFAULT_TRAIN, describeModel, lessonDefaults, type TrainConfig } from '../../core/config';
import { firstLine, GateError, InterruptedError, UsageError } from '../../core/errors';
import { CHECKPOINT_FILE, restoreTraining } from '../../core/checkpoint-format';
import { median, type EpochMetrics, type Report, type TrainPosition } from '../../core/metrics';
import { createModel, parameterCount, type LanguageModel } from '../../core/models';
import { makeOptimizer } from '../../core/optimizer';
import { train } from '../../core/train';
import { defaultPrefixes, splitHeldOut, unknownChars, type Corpus } from '../../core/vocab';
import { loadCorpus } from '../../node/corpus-file';
import { lockModelDir } from '../../node/lock';
import { checkTrainingFits } from '../../node/memory-limit';
import { loadCheckpoint, readCheckpointMeta, resolveModelDir, saveCheckpoint } from '../../node/model-dir';
import { checkModelOut, checkOutFile, makeDirs, withoutTrailingSlash } from '../../node/out-path';
import { VERSIONS } from '../../node/versions';
import { noProgress, type Progress } from '../../terminal/progress';
import { count } from '../../core/numbers';
import type { Logger } from '../logger';
import { cellOf, nonNegative, positiveNumber, seedOf, startBackend, trainOptions, wholeNumber, type TrainArgs } from '../options';

export const command = 'train';
export const describe = 'train a character model (RNN, GRU or LSTM; scratch or builtin) on a corpus and save it';

export function builder<T>(y: Argv<T>) {
  return y.options(trainOptions).example([
    ['$0 train --impl scratch', 'the lesson: hand-written LSTM, SGD lr 100, 160 epochs, bundled corpus'],
    ['$0 train --impl builtin --corpus jaychou_lyrics.txt.zip', "tf.layers.lstm with Adam on the lesson's own corpus"],
    ['$0 train --cell gru', 'the GRU lesson: hand-written GRU, SGD lr 100, 160 epochs'],
    ['$0 train --cell rnn --impl builtin', 'the RNN lesson: tf.layers.simpleRNN, Adam lr 0.001, 250 epochs'],
    ['$0 train --layers 2 --dropout 0.2', 'two stacked LSTM layers, dropout between them'],
    ['$0 train --epochs 20 --report-every 5 --hidden 128', 'a quick run'],
  ]);
}

/** The outcome of a run: the last line of --metrics, and --json's output. */
export interface TrainSummary {
  readonly summary: true;
  readonly impl: string;
  readonly cell: string;
  readonly layers: number;
  readonly out: string;
  readonly backend: string;
  readonly parameters: number;
  readonly epochs: number;
  readonly finalPerplexity: number;
  readonly medianEpochSeconds: number;
  readonly totalSeconds: number;
  readonly samples: readonly string[];
}

function summarise(run: {
  impl: string;
  cell: string;
  layers: number;
  out: string;
  backend: string;
  parameters: number;
  history: readonly EpochMetrics[];
  lastReport?: Report;
}): TrainSummary {
  const seconds = run.history.map((m) => m.seconds);
  return {
    summary: true,
    impl: run.impl,
    cell: run.cell,
    layers: run.layers,
    out: run.out,
    backend: run.backend,
    parameters: run.parameters,
    epochs: run.history.length,
    finalPerplexity: run.history.at(-1)?.perplexity ?? NaN,
    medianEpochSeconds: median(seconds),
    totalSeconds: seconds.reduce((a, b) => a + b, 0),
    samples: run.lastReport?.samples ?? [],
  };
}

function checkGate(perplexity: number, maxPerplexity: number | undefined): void {
  if (maxPerplexity !== undefined && !(perplexity <= maxPerplexity)) {
    throw new GateError(`final perplexity ${perplexity.toFixed(4)} is above --max-perplexity ${maxPerplexity}`);
  }
}

/** Checks the flags and fills in the defaults of the cell's lesson (explicit flags win). */
export function trainConfigOf(args: TrainArgs): TrainConfig {
  const lesson = lessonDefaults(args.cell ?? 'lstm', args.impl);
  const optimizer = args.optimizer ?? lesson.optimizer;
  // An optimizer other than the lesson's gets that optimizer's usual rate in the lessons.
  const lr =
    args.lr ??
    (optimizer === lesson.optimizer ? lesson.lr : lessonDefaults(args.cell ?? 'lstm', optimizer === 'sgd' ? 'scratch' : 'builtin').lr);
  if (args.prefixes && (args.prefixes.length === 0 || args.prefixes.some((p) => p.length === 0)))
    throw new UsageError('--prefixes must be non-empty strings');
  return {
    corpus: args.corpus,
    entry: args.entry,
    maxChars: wholeNumber('max-chars', args.maxChars, 0),
    valChars: nonNegative('val-chars', args.valChars),
    epochs: wholeNumber('epochs', args.epochs ?? lesson.epochs),
    numSteps: wholeNumber('num-steps', args.numSteps),
    batchSize: wholeNumber('batch-size', args.batchSize),
    sampling: args.sampling,
    optimizer,
    lr: positiveNumber('lr', lr),
    clip: positiveNumber('clip', args.clip),
    reportEvery: wholeNumber('report-every', args.reportEvery ?? lesson.reportEvery),
    predLen: wholeNumber('pred-len', args.predLen, 0),
    prefixes: args.prefixes ?? DEFAULT_TRAIN.prefixes,
    seed: seedOf(args.seed),
  };
}

/**
 * Trains, reporting to `log` and `progress`. When `stop` is aborted (the entry point does that on
 * SIGINT/SIGTERM), the current batch finishes, a checkpoint with the mid-epoch position is saved,
 * and an InterruptedError says how to resume.
 */
export async function handler(args: TrainArgs, log: Logger, progress: Progress = noProgress, stop?: AbortSignal): Promise<TrainSummary> {
  if (args.maxPerplexity !== undefined) positiveNumber('max-perplexity', args.maxPerplexity);
  const out = withoutTrailingSlash(args.out ?? defaultOut(args));
  // Every path this run writes, checked before the long work; then one run at a time per --out.
  checkTrainPaths(out, args.metrics);
  const lock = lockModelDir('--out', out);
  try {
    return await trainLocked(args, out, log, progress, stop);
  } finally {
    lock.release();
  }
}

/** models/scratch and models/builtin hold LSTMs, as before the series; other cells get models/gru-scratch and the like. */
function defaultOut(args: TrainArgs): string {
  const cell = args.cell ?? 'lstm';
  return cell === 'lstm' ? `models/${args.impl}` : `models/${cell}-${args.impl}`;
}

/** --out is empty, missing or a model directory, and writable; --metrics a writable file. */
export function checkTrainPaths(out: string, metrics: string | undefined): void {
  checkModelOut('--out', out);
  if (metrics !== undefined) checkOutFile('--metrics', metrics);
}

async function trainLocked(
  args: TrainArgs,
  out: string,
  log: Logger,
  progress: Progress,
  stop: AbortSignal | undefined,
): Promise<TrainSummary> {
  const run = args.resume ? await resumeRun(args, out) : await freshRun(args, log);
  const { model, config, corpus, heldOut } = run;
  log.info(run.backend.description);
  const parameters = parameterCount(model);
  log.info(
    `${args.resume ? 'resuming' : 'training'} ${describeModel(model.config)}: ${count(parameters)} parameters, ` +
      `vocabulary ${model.config.vocabSize}, ${count(corpus.ids.length)} training characters` +
      (heldOut ? ` (+${count(heldOut.length)} held out)` : '') +
      `, ${config.epochs} epochs, ${config.optimizer} lr ${config.lr}, saving to ${out}`,
  );

  const onStop = () => {
    progress.clear();
    log.info(`${String(stop?.reason ?? 'stop')}: finishing this batch and saving to ${out} (again to quit at once)`);
  };
  stop?.addEventListener('abort', onStop, { once: true });

  const history: EpochMetrics[] = [...run.history];
  let lastReport: Report | undefined;
  const save = (position?: TrainPosition) =>
    saveCheckpoint(
      out,
      model,
      {
        model: model.config,
        train: config,
        vocab: corpus.vocab.chars,
        epoch: history.at(-1)?.epoch ?? 0,
        savedAt: new Date().toISOString(),
        backend: run.backend.name,
        versions: VERSIONS,
        corpusSha256: corpus.sha256,
        history,
      },
      { optimizer: run.optimizer, position },
    );
  // A failed write (a full disk) names the file; what is saved in --out is untouched by it.
  const writeMetrics = (write: () => void) => {
    try {
      write();
    } catch (err) {
      throw new Error(
        `cannot write --metrics ${args.metrics}: ${firstLine(err)}; ${fs.existsSync(path.join(out, CHECKPOINT_FILE)) ? `the model saved in ${out} is unchanged` : 'no model was saved'}`,
      );
    }
  };
  if (args.metrics) writeMetrics(() => makeDirs(path.dirname(path.resolve(args.metrics!))));
  if (args.metrics && !args.resume) writeMetrics(() => fs.writeFileSync(args.metrics!, ''));
  try {
    const result = await train(
      model,
      corpus,
      config,
      {
        shouldStop: () => stop?.aborted ?? false,
        onBatch: (epoch, batch, batches) => progress.update(epoch, config.epochs, batch, batches, history.at(-1)?.perplexity),
        onEpoch: (metrics) => {
          history.push(metrics);
          if (args.metrics) writeMetrics(() => fs.appendFileSync(args.metrics!, `${JSON.stringify(metrics)}\n`));
        },
        onReport: async (report) => {
          lastReport = report;
          progress.clear();
          log.info(reportLine(report.metrics));
          for (const sample of report.samples) log.info(` - ${sample}`);
          await save();
        },
      },
      { optimizer: run.optimizer, from: run.from, heldOut },
    );
    progress.clear();
    if (result.stoppedAt) {
      await save(result.stoppedAt);
      const { epoch, batch } = result.stoppedAt;
      throw new InterruptedError(
        `interrupted in epoch ${epoch} after batch ${batch}; saved to ${out}; continue with: lstm-lyrics train --resume --out ${out}`,
      );
    }
    const { impl, cell, layers } = model.config;
    const summary = summarise({ impl, cell, layers, out, backend: run.backend.name, parameters, history, lastReport });
    if (args.metrics) writeMetrics(() => fs.appendFileSync(args.metrics!, `${JSON.stringify(summary)}\n`));
    checkGate(summary.finalPerplexity, args.maxPerplexity);
    return summary;
  } finally {
    stop?.removeEventListener('abort', onStop);
    model.dispose();
  }
}

/** `epoch N, perplexity P, time T sec`, as the lesson prints it (plus held-out when asked for). */
export function reportLine(m: EpochMetrics): string {
  const heldOut = m.heldOutPerplexity === undefined ? '' : `, held-out perplexity ${m.heldOutPerplexity.toFixed(6)}`;
  return `epoch ${m.epoch}, perplexity ${m.perplexity.toFixed(6)}${heldOut}, time ${m.seconds.toFixed(2)} sec`;
}

/** Everything a run needs, fresh or resumed. */
interface Run {
  readonly model: LanguageModel;
  readonly config: TrainConfig;
  readonly corpus: Corpus;
  readonly heldOut?: Int32Array;
  readonly backend: BackendChoice;
  readonly optimizer: tf.Optimizer;
  readonly from?: TrainPosition;
  readonly history: readonly EpochMetrics[];
}

async function freshRun(args: TrainArgs, log: Logger): Promise<Run> {
  let config = trainConfigOf(args);
  const hidden = wholeNumber('hidden', args.hidden);
  const shape = cellOf(args);
  if (shape.dropout > 0 && shape.layers === 1) {
    log.info(`--dropout ${shape.dropout} with one layer drops nothing: dropout acts between stacked layers (add --layers 2)`);
  }
  // Input first, so a mistake costs one line on stderr and no backend start-up.
  const whole = loadCorpus(config.corpus, config);
  if (args.prefixes) {
    checkPrefixes(whole, config.prefixes);
  } else {
    const { prefixes, fromCorpus } = defaultPrefixes(whole, DEFAULT_TRAIN.prefixes);
    if (fromCorpus)
      log.info(
        `the corpus lacks characters of ${DEFAULT_TRAIN.prefixes.join(' ')}; report samples start from ${prefixes.map((p) => JSON.stringify(p)).join(' ')} instead (set them with --prefixes)`,
      );
    config = { ...config, prefixes };
  }
  const { train: corpus, heldOut } = splitHeldOut(whole, config.valChars);
  batchesPerEpoch(config.sampling, corpus.ids.length, config.batchSize, config.numSteps); // throws if too short
  const backend = await startBackend(args);
  const size = {
    ...shape,
    vocabSize: whole.vocab.chars.length,
    hidden,
    batchSize: config.batchSize,
    numSteps: config.numSteps,
    optimizer: config.optimizer,
  };
  checkTrainingFits(size, backend.name);
  const model = createModel({ impl: args.impl, ...shape, vocabSize: whole.vocab.chars.length, hidden }, config.seed);
  return { model, config, corpus, heldOut, backend, optimizer: makeOptimizer(config.optimizer, config.lr), history: [] };
}

/** Continues the run saved in `out`: its settings and corpus, its optimizer state and position. */
async function resumeRun(args: TrainArgs, out: string): Promise<Run> {
  const meta = readCheckpointMeta(resolveModelDir(out));
  if (meta.model.impl !== args.impl) {
    throw new UsageError(`${out} holds a ${meta.model.impl} model; resume it with --impl ${meta.model.impl}`);
  }
  // The network cannot change under a resumed run: a flag that differs from the saved model is a mistake.
  const saved = meta.model;
  for (const [flag, given, value] of [
    ['cell', args.cell, saved.cell],
    ['layers', args.layers, saved.layers],
    ['dropout', args.dropout, saved.dropout],
  ] as const) {
    if (given !== undefined && given !== value) {
      throw new UsageError(`${out} holds a model with --${flag} ${value}; resume it with --${flag} ${value} or without --${flag}`);
    }
  }
  const config: TrainConfig = { ...meta.train, epochs: wholeNumber('epochs', args.epochs ?? meta.train.epochs) };
  const whole = loadCorpus(config.corpus, config);
  if (whole.sha256 !== meta.corpusSha256) {
    throw new UsageError(`${config.corpus} has changed since ${out} was trained on it (SHA-256 differs); cannot resume`);
  }
  const { train: corpus, heldOut } = splitHeldOut(whole, config.valChars);
  const backend = await startBackend(args);
  const loaded = await loadCheckpoint(out);
  const { optimizer, position } = await restoreTraining(loaded, config);
  const from = position ?? { epoch: meta.epoch + 1, batch: 0, lossSum: 0, normSum: 0, seconds: 0, state: null };
  if (from.epoch > config.epochs) {
    loaded.model.dispose();
    throw new UsageError(`${out} has already trained ${meta.epoch} epochs; pass a larger --epochs to continue`);
  }
  return { model: loaded.model, config, corpus, heldOut, backend, optimizer, from, history: meta.history };
}

function checkPrefixes(corpus: Corpus, prefixes: readonly string[]): void {
  for (const prefix of prefixes) {
    const missing = unknownChars(corpus.vocab, prefix);
    if (missing.length > 0) {
      throw new UsageError(`prefix ${JSON.stringify(prefix)} has characters not in the corpus: ${missing.join(' ')}`);
    }
  }
}
