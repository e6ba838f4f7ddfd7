/**
 * `lstm-lyrics compare`: train both LSTMs with the same settings (or read runs saved earlier, with
 * --from), then print them side by side and chart their perplexity.
 *
 * Both modes end on the same path: read each saved checkpoint, load its model for the greedy
 * generations, build one table and one chart from that.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Argv } from 'yargs';
import { lockModelDir, type Lock } from '../../node/lock';
import { loadCheckpoint, readCheckpointMeta, resolveModelDir } from '../../node/model-dir';
import { checkOutDir, checkOutFile, makeDirs } from '../../node/out-path';
import { DEFAULT_OPTIMIZER, IMPLS, type Impl, lessonDefaults } from '../../core/config';
import { firstLine, GateError, InterruptedError, UsageError } from '../../core/errors';
import { generateText } from '../../core/generate';
import { parameterCount } from '../../core/models';
import { noProgress, type Progress } from '../../terminal/progress';
import { isReportEpoch, median, type EpochMetrics } from '../../core/metrics';
import { CHART_SUBTITLE, type PerplexitySeries } from '../../core/chart-spec';
import { unknownChars } from '../../core/vocab';
import { writePerplexityChart } from '../../terminal/chart';
import { count } from '../../core/numbers';
import { displayWidth, formatTable, pad } from '../../terminal/table';
import type { Logger } from '../logger';
import { positiveNumber, seedOf, startBackend, trainOptions, type ArgsOf } from '../options';
import * as train from './train';

export const command = 'compare';
export const describe = 'train the hand-written and the built-in LSTM alike, then compare them in a table and a chart';

export const CHART_FILE = 'compare.svg';
const DEFAULT_OUT = 'models';

export const compareOptions = {
  ...trainOptions,
  // Every train flag applies to both runs, except the one that picks a single impl (refused if given).
  impl: { choices: IMPLS, hidden: true },
  out: { type: 'string', default: DEFAULT_OUT, describe: `directory for ${CHART_FILE} and the two models (<out>/scratch, <out>/builtin)` },
  metrics: {
    type: 'string',
    describe: "write each run's JSON lines to this file with the impl added to its name (m.jsonl: m.scratch.jsonl, m.builtin.jsonl)",
  },
  json: { type: 'boolean', default: false, describe: 'print the comparison as JSON on stdout (training and table lines go to stderr)' },
  'max-perplexity': { type: 'number', describe: 'regression gate: exit 3 if either final perplexity is above this' },
  from: {
    type: 'string',
    array: true,
    describe: 'compare models saved earlier instead of training (their directories; training flags are then ignored)',
  },
} as const;

export type CompareArgs = ArgsOf<typeof compareOptions>;

export function builder<T>(y: Argv<T>) {
  return y.options(compareOptions).example([
    ['$0 compare', "the lesson's settings for both: 160 epochs each, models/compare.svg"],
    ['$0 compare --epochs 20 --report-every 5 --hidden 128 --out runs/quick', 'a quick comparison'],
    ['$0 compare --from models/scratch models/builtin', 'the table and chart of two earlier runs'],
  ]);
}

/** One column of the table: a saved model, as its checkpoint describes it. */
export interface CompareEntry {
  /** Column header and legend label: the impl, plus the directory when two columns share one. */
  readonly label: string;
  readonly dir: string;
  readonly impl: Impl;
  readonly parameters: number;
  readonly backend: string;
  readonly corpus: string;
  readonly hidden: number;
  readonly optimizer: string;
  readonly lr: number;
  /** Whether optimizer and lr are this impl's defaults (the lesson's), not set by flags. */
  readonly defaultOptimizer: boolean;
  readonly epochs: number;
  readonly finalPerplexity: number;
  readonly finalHeldOutPerplexity?: number;
  /** Perplexity at each report epoch (every --report-every epochs, and the last). */
  readonly reports: readonly { readonly epoch: number; readonly perplexity: number }[];
  readonly medianEpochSeconds: number;
  /** Greedy continuations of each prefix, --pred-len characters long; undefined where the prefix is outside the vocabulary. */
  readonly generations: readonly { readonly prefix: string; readonly text?: string }[];
  readonly history: readonly EpochMetrics[];
}

export interface CompareResult {
  readonly chart: string;
  readonly entries: readonly Omit<CompareEntry, 'history'>[];
}

export async function handler(args: CompareArgs, log: Logger, progress: Progress = noProgress, stop?: AbortSignal): Promise<CompareResult> {
  if (args.impl !== undefined) throw new UsageError('compare trains both impls; drop --impl (or run: lstm-lyrics train --impl ...)');
  if (args.maxPerplexity !== undefined) positiveNumber('max-perplexity', args.maxPerplexity);
  // Before any path is made or locked (each train run checks it again).
  seedOf(args.seed);
  // Every path written, checked before any training: the chart, and (when training) both models.
  const chart = path.join(args.out, CHART_FILE);
  checkOutDir('--out', args.out);
  checkOutFile('--out', chart);
  const locks: Lock[] = [];
  try {
    return await compareLocked(args, chart, log, progress, locks, stop);
  } finally {
    locks.forEach((lock) => lock.release());
  }
}

async function compareLocked(
  args: CompareArgs,
  chart: string,
  log: Logger,
  progress: Progress,
  locks: Lock[],
  stop?: AbortSignal,
): Promise<CompareResult> {
  let dirs: string[];
  if (args.from !== undefined) {
    if (args.from.length === 0)
      throw new UsageError('--from needs the model directories to compare, e.g. --from models/scratch models/builtin');
    dirs = args.from;
    for (const dir of dirs) readCheckpointMeta(resolveModelDir(dir)); // a wrong directory costs one line, no backend start-up
    await startBackend(args);
  } else {
    dirs = IMPLS.map((impl) => path.join(args.out, impl));
    IMPLS.forEach((impl, i) => train.checkTrainPaths(dirs[i], args.metrics && withImpl(args.metrics, impl)));
    for (const dir of dirs) locks.push(lockModelDir('--out', dir));
    for (const [i, impl] of IMPLS.entries()) {
      const out = dirs[i];
      const prefixed: Logger = { info: (line) => log.info(`[${impl}] ${line}`) };
      const resume = args.resume && resumable(out, args.epochs ?? lessonDefaults(args.cell ?? 'lstm', impl).epochs, prefixed);
      if (resume === 'done') continue;
      try {
        // optimizer and lr stay undefined unless given, so each impl gets its own defaults.
        await train.handler(
          { ...args, impl, out, resume, metrics: args.metrics && withImpl(args.metrics, impl), maxPerplexity: undefined, json: false },
          prefixed,
          progress,
          stop,
        );
      } catch (err) {
        if (err instanceof InterruptedError)
          log.info(`to finish the comparison later: lstm-lyrics compare --resume --out ${args.out} (and the same flags)`);
        throw err;
      }
    }
  }
  const entries = await compareEntries(dirs);
  makeDirs(args.out);
  try {
    await writePerplexityChart(chart, seriesOf(entries), chartSubtitle(entries));
  } catch (err) {
    throw new Error(
      `cannot write ${chart}: ${firstLine(err)}; ${fs.existsSync(chart) ? 'the previous chart is unchanged; ' : ''}the models in ${dirs.join(' and ')} are saved`,
    );
  }
  for (const line of comparisonTable(entries)) log.info(line);
  log.info(`chart: ${chart}`);
  const above = entries.filter((e) => args.maxPerplexity !== undefined && !(e.finalPerplexity <= args.maxPerplexity));
  if (above.length > 0) {
    throw new GateError(
      `final perplexity above --max-perplexity ${args.maxPerplexity}: ${above.map((e) => `${e.label} ${e.finalPerplexity.toFixed(4)}`).join(', ')}`,
    );
  }
  return { chart, entries: entries.map(({ history: _, ...rest }) => rest) };
}

/**
 * With --resume, what to do with one impl's run: continue it (true), train it from the start
 * (false: it never saved anything), or leave it ('done': it has all its epochs).
 */
function resumable(out: string, epochs: number, log: Logger): boolean | 'done' {
  let dir: string;
  try {
    dir = resolveModelDir(out);
  } catch {
    return false; // nothing saved there yet
  }
  const meta = readCheckpointMeta(dir);
  if (meta.position === undefined && meta.epoch >= epochs) {
    log.info(`${out} has already trained ${meta.epoch} epoch${meta.epoch === 1 ? '' : 's'}; kept as it is`);
    return 'done';
  }
  return true;
}

/** `m.jsonl` -> `m.scratch.jsonl`: one metrics file per run. */
export function withImpl(file: string, impl: Impl): string {
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}.${impl}${ext}`;
}

/** Reads each saved model; generates each prefix (of all the runs' prefixes) greedily. */
export async function compareEntries(dirs: readonly string[]): Promise<CompareEntry[]> {
  // Every checkpoint is read before any model is loaded, so a bad directory fails fast.
  const metas = dirs.map((dir) => readCheckpointMeta(resolveModelDir(dir)));
  const prefixes = [...new Set(metas.flatMap((meta) => meta.train.prefixes))];
  const impls = metas.map((meta) => meta.model.impl);
  const entries: CompareEntry[] = [];
  for (const dir of dirs) {
    const { model, vocab, meta, dir: from } = await loadCheckpoint(dir);
    let parameters: number;
    let generations: CompareEntry['generations'];
    try {
      parameters = parameterCount(model);
      generations = prefixes.map((prefix) =>
        unknownChars(vocab, prefix).length > 0 ? { prefix } : { prefix, text: generateText(model, vocab, prefix, meta.train.predLen) },
      );
    } finally {
      model.dispose();
    }
    const impl = meta.model.impl;
    const { history, train: config } = meta;
    const last = history.at(-1);
    const defaults = DEFAULT_OPTIMIZER[impl];
    entries.push({
      label: impls.filter((i) => i === impl).length > 1 ? `${impl} (${dir})` : impl,
      dir: from,
      impl,
      parameters,
      backend: meta.backend,
      corpus: path.basename(config.corpus) + (config.maxChars > 0 ? `, first ${count(config.maxChars)} characters` : ''),
      hidden: meta.model.hidden,
      optimizer: config.optimizer,
      lr: config.lr,
      defaultOptimizer: config.optimizer === defaults.optimizer && config.lr === defaults.lr,
      epochs: meta.epoch,
      finalPerplexity: last?.perplexity ?? NaN,
      ...(last?.heldOutPerplexity !== undefined && { finalHeldOutPerplexity: last.heldOutPerplexity }),
      reports: history
        .filter((m) => isReportEpoch(m.epoch, config.reportEvery, last?.epoch ?? 0))
        .map((m) => ({ epoch: m.epoch, perplexity: m.perplexity })),
      medianEpochSeconds: median(history.map((m) => m.seconds)),
      generations,
      history,
    });
  }
  return entries;
}

/**
 * The side-by-side table: one column per model, one row per measure, then the generations, each
 * prefix's continuations one under the other (50 characters each would not fit side by side).
 */
export function comparisonTable(entries: readonly Omit<CompareEntry, 'history'>[]): string[] {
  const reportEpochs = [...new Set(entries.flatMap((e) => e.reports.map((r) => r.epoch)))].sort((a, b) => a - b);
  const perplexity = (p: number | undefined) => (p === undefined || Number.isNaN(p) ? '-' : p.toFixed(3));
  const rows: [string, ...string[]][] = [
    ['', ...entries.map((e) => e.label)],
    ['model directory', ...entries.map((e) => e.dir)],
    ['parameters', ...entries.map((e) => count(e.parameters))],
    ['backend', ...entries.map((e) => e.backend)],
    ['corpus', ...entries.map((e) => e.corpus)],
    ['hidden units', ...entries.map((e) => String(e.hidden))],
    ['optimizer', ...entries.map((e) => `${e.optimizer} lr ${e.lr}${e.defaultOptimizer ? ` (${e.impl} default)` : ' (set by flags)'}`)],
    ['epochs', ...entries.map((e) => String(e.epochs))],
    ...reportEpochs.map((epoch): [string, ...string[]] => [
      `perplexity at epoch ${epoch}`,
      ...entries.map((e) => perplexity(e.reports.find((r) => r.epoch === epoch)?.perplexity)),
    ]),
    ['final perplexity', ...entries.map((e) => perplexity(e.finalPerplexity))],
  ];
  if (entries.some((e) => e.finalHeldOutPerplexity !== undefined)) {
    rows.push(['final held-out perplexity', ...entries.map((e) => perplexity(e.finalHeldOutPerplexity))]);
  }
  rows.push([
    'median seconds per epoch',
    ...entries.map((e) => (Number.isNaN(e.medianEpochSeconds) ? '-' : e.medianEpochSeconds.toFixed(3))),
  ]);
  const lines = formatTable(rows);

  const labelWidth = Math.max(...entries.map((e) => displayWidth(e.label)));
  const prefixes = entries[0]?.generations.map((g) => g.prefix) ?? [];
  const prefixWidth = Math.max(0, ...prefixes.map(displayWidth));
  lines.push('', 'greedy generations after each prefix:');
  for (const prefix of prefixes) {
    entries.forEach((e, i) => {
      const text = e.generations.find((g) => g.prefix === prefix)?.text ?? "(prefix has characters outside this model's vocabulary)";
      lines.push(`${pad(i === 0 ? prefix : '', prefixWidth)}  ${pad(e.label, labelWidth)}  ${text}`);
    });
  }
  return lines;
}

/** One curve per model, for the chart. */
export function seriesOf(entries: readonly CompareEntry[]): PerplexitySeries[] {
  return entries.map((e) => ({
    name: e.label,
    points: e.history.map((m) => ({ epoch: m.epoch, perplexity: m.perplexity, heldOutPerplexity: m.heldOutPerplexity })),
  }));
}

function chartSubtitle(entries: readonly CompareEntry[]): string[] {
  const corpora = [...new Set(entries.map((e) => e.corpus))];
  return corpora.length === 1 ? [CHART_SUBTITLE, `corpus: ${corpora[0]}`] : [CHART_SUBTITLE];
}
