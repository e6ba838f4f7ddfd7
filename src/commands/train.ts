/** `lstm-lyrics train`: train one model on a corpus, report as the lesson does, save it. */
import * as fs from 'fs';
import type { Argv } from 'yargs';
import { selectBackend } from '../backend';
import { saveCheckpoint } from '../checkpoint';
import { DEFAULT_OPTIMIZER, type ModelConfig, type TrainConfig } from '../config';
import { loadCorpus, unknownChars, type Corpus } from '../data/corpus';
import { GateError, InterruptedError, UsageError } from '../errors';
import { createModel, parameterCount, type LanguageModel } from '../models';
import { train, type EpochMetrics, type Report } from '../train';
import { VERSIONS } from '../versions';
import type { Logger } from './logger';
import { positiveNumber, wholeNumber, withTrainOptions, type TrainArgs } from './options';

export const command = 'train';
export const describe = 'train an LSTM language model on a corpus and save it';

export function builder<T>(y: Argv<T>): Argv<T> {
  return withTrainOptions(y).example([
    ['$0 train --impl scratch', 'the lesson: hand-written LSTM, SGD lr 100, 160 epochs, bundled corpus'],
    ['$0 train --impl builtin --corpus jaychou_lyrics.txt.zip', 'tf.layers.lstm with Adam on the lesson\'s own corpus'],
    ['$0 train --epochs 20 --report-every 5 --hidden 128', 'a quick run'],
  ]);
}

/** The outcome of a run: the last line of --metrics, and --json's output. */
export interface TrainSummary {
  readonly summary: true;
  readonly impl: string;
  readonly out: string;
  readonly backend: string;
  readonly parameters: number;
  readonly epochs: number;
  readonly finalPerplexity: number;
  readonly medianEpochSeconds: number;
  readonly totalSeconds: number;
  readonly samples: readonly string[];
}

function summarise(run: { impl: string; out: string; backend: string; parameters: number; history: readonly EpochMetrics[]; lastReport?: Report }): TrainSummary {
  const seconds = run.history.map((m) => m.seconds).sort((a, b) => a - b);
  return {
    summary: true,
    impl: run.impl,
    out: run.out,
    backend: run.backend,
    parameters: run.parameters,
    epochs: run.history.length,
    finalPerplexity: run.history.at(-1)?.perplexity ?? NaN,
    medianEpochSeconds: seconds[Math.floor(seconds.length / 2)] ?? NaN,
    totalSeconds: seconds.reduce((a, b) => a + b, 0),
    samples: run.lastReport?.samples ?? [],
  };
}

function checkGate(perplexity: number, maxPerplexity: number | undefined): void {
  if (maxPerplexity !== undefined && !(perplexity <= maxPerplexity)) {
    throw new GateError(`final perplexity ${perplexity.toFixed(4)} is above --max-perplexity ${maxPerplexity}`);
  }
}

/** Checks the flags and fills in the per-impl defaults. */
export function trainConfigOf(args: TrainArgs): TrainConfig {
  const optimizer = args.optimizer ?? DEFAULT_OPTIMIZER[args.impl].optimizer;
  const lr = args.lr ?? (optimizer === DEFAULT_OPTIMIZER.scratch.optimizer ? DEFAULT_OPTIMIZER.scratch.lr : DEFAULT_OPTIMIZER.builtin.lr);
  if (args.prefixes.length === 0 || args.prefixes.some((p) => p.length === 0)) throw new UsageError('--prefixes must be non-empty strings');
  return {
    corpus: args.corpus,
    entry: args.entry,
    maxChars: wholeNumber('max-chars', args.maxChars, 0),
    epochs: wholeNumber('epochs', args.epochs),
    numSteps: wholeNumber('num-steps', args.numSteps),
    batchSize: wholeNumber('batch-size', args.batchSize),
    sampling: args.sampling,
    optimizer,
    lr: positiveNumber('lr', lr),
    clip: positiveNumber('clip', args.clip),
    reportEvery: wholeNumber('report-every', args.reportEvery),
    predLen: wholeNumber('pred-len', args.predLen, 0),
    prefixes: args.prefixes,
    seed: wholeNumber('seed', args.seed, 0),
  };
}

export async function handler(args: TrainArgs, log: Logger): Promise<TrainSummary> {
  const config = trainConfigOf(args);
  if (args.maxPerplexity !== undefined) positiveNumber('max-perplexity', args.maxPerplexity);
  const hidden = wholeNumber('hidden', args.hidden);
  const out = args.out ?? `models/${args.impl}`;
  const corpus = loadCorpus(config.corpus, config);
  checkPrefixes(corpus, config.prefixes);
  const backend = await selectBackend(args.backend);
  log.info(backend.description);

  const modelConfig: ModelConfig = { impl: args.impl, vocabSize: corpus.vocab.chars.length, hidden };
  const model = createModel(modelConfig, config.seed);
  const parameters = parameterCount(model);
  log.info(
    `training ${args.impl} LSTM: ${parameters.toLocaleString('en')} parameters, vocabulary ${modelConfig.vocabSize}, ` +
      `${Array.from(corpus.text).length.toLocaleString('en')} characters, ${config.epochs} epochs, ${config.optimizer} lr ${config.lr}, saving to ${out}`,
  );

  let interrupted = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    // The first signal finishes the batch and saves; a second one gives up at once. Either way the
    // last saved model stays intact, because saves are atomic.
    if (++interrupted > 1) process.exit(130);
    log.info(`${signal}: finishing this batch and saving to ${out} (again to quit at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  let lastReport: Report | undefined;
  const history: EpochMetrics[] = [];
  if (args.metrics) fs.writeFileSync(args.metrics, '');
  try {
    const result = await train(model, corpus, config, {
      shouldStop: () => interrupted > 0,
      onEpoch: (metrics) => {
        history.push(metrics);
        if (args.metrics) fs.appendFileSync(args.metrics, JSON.stringify(metrics) + '\n');
      },
      onReport: async (report) => {
        lastReport = report;
        const { epoch, perplexity, seconds } = report.metrics;
        log.info(`epoch ${epoch}, perplexity ${perplexity.toFixed(6)}, time ${seconds.toFixed(2)} sec`);
        for (const sample of report.samples) log.info(` - ${sample}`);
        await save(out, model, modelConfig, config, corpus, backend.name, history);
      },
    });
    if (result.stopped) throw new InterruptedError(`interrupted; model saved to ${out} after epoch ${result.history.at(-1)?.epoch}`);
    const summary = summarise({ impl: args.impl, out, backend: backend.name, parameters, history: result.history, lastReport });
    if (args.metrics) fs.appendFileSync(args.metrics, JSON.stringify(summary) + '\n');
    checkGate(summary.finalPerplexity, args.maxPerplexity);
    return summary;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    model.dispose();
  }
}

function checkPrefixes(corpus: Corpus, prefixes: readonly string[]): void {
  for (const prefix of prefixes) {
    const missing = unknownChars(corpus.vocab, prefix);
    if (missing.length > 0) {
      throw new UsageError(`prefix ${JSON.stringify(prefix)} has characters not in the corpus: ${missing.join(' ')}`);
    }
  }
}

async function save(
  out: string,
  model: LanguageModel,
  modelConfig: ModelConfig,
  config: TrainConfig,
  corpus: Corpus,
  backend: string,
  history: readonly EpochMetrics[],
): Promise<void> {
  await saveCheckpoint(out, model, {
    model: modelConfig,
    train: config,
    vocab: corpus.vocab.chars,
    epoch: history.at(-1)?.epoch ?? 0,
    savedAt: new Date().toISOString(),
    backend,
    versions: VERSIONS,
    corpusSha256: corpus.sha256,
    history,
  });
}
