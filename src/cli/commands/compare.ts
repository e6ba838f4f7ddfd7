/**
 * `lstm-lyrics compare`: train both impls of each cell of --cells with the same settings (or read
 * runs saved earlier, with --from), then print them side by side and chart their perplexity.
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
import { CELLS, type Cell, describeCell, describeModel, IMPLS, type Impl, lessonDefaults, type ModelConfig } from '../../core/config';
import { firstLine, GateError, InterruptedError, UsageError } from '../../core/errors';
import { generateText } from '../../core/generate';
import { parameterCount } from '../../core/models';
import { noProgress, type Progress } from '../../terminal/progress';
import { isReportEpoch, median, type EpochMetrics } from '../../core/metrics';
import { CELLS_SUBTITLE, CHART_SUBTITLE, type PerplexitySeries } from '../../core/chart-spec';
import { unknownChars } from '../../core/vocab';
import { writePerplexityChart } from '../../terminal/chart';
import { count } from '../../core/numbers';
import { displayWidth, formatTable, pad } from '../../terminal/table';
import type { Logger } from '../logger';
import { cellOf, positiveNumber, seedOf, startBackend, trainOptions, type ArgsOf } from '../options';
import * as train from './train';

export const command = 'compare';
export const describe = 'train the hand-written and the built-in model of each cell alike, then compare them in a table and a chart';

export const CHART_FILE = 'compare.svg';
const DEFAULT_OUT = 'models';

export const compareOptions = {
  ...trainOptions,
  // Every train flag applies to every run; --impl (no default here) narrows the runs to one impl.
  impl: { choices: IMPLS, describe: 'train only this impl', defaultDescription: 'both: scratch and builtin' },
  // One cell is --cells with one name; two flags for it would only disagree.
  cell: { choices: CELLS, hidden: true },
  cells: {
    type: 'string',
    default: 'lstm',
    describe: "the cells to train, comma-separated (e.g. lstm,gru,rnn); each gets its lesson's epochs, report interval and optimizer",
  },
  out: {
    type: 'string',
    default: DEFAULT_OUT,
    describe: `directory for ${CHART_FILE} and the models: <out>/<impl> for lstm, <out>/<cell>-<impl> for the other cells`,
  },
  metrics: {
    type: 'string',
    describe: "write each run's JSON lines to this file with the run added to its name (m.jsonl: m.scratch.jsonl, m.gru-builtin.jsonl)",
  },
  json: { type: 'boolean', default: false, describe: 'print the comparison as JSON on stdout (training and table lines go to stderr)' },
  'max-perplexity': { type: 'number', describe: 'regression gate: exit 3 if any final perplexity is above this' },
  from: {
    type: 'string',
    array: true,
    describe: 'compare models saved earlier instead of training (their directories; training flags, --cells and --impl are then ignored)',
  },
} as const;

export type CompareArgs = ArgsOf<typeof compareOptions>;

export function builder<T>(y: Argv<T>) {
  return y.options(compareOptions).example([
    ['$0 compare', "the lesson's settings for both: 160 epochs each, models/compare.svg"],
    ['$0 compare --epochs 20 --report-every 5 --hidden 128 --out runs/quick', 'a quick comparison'],
    ['$0 compare --cells lstm,gru,rnn', "the series: six models, each cell with its lesson's settings, one table and chart"],
    ['$0 compare --cells gru,rnn --impl scratch --layers 2', 'two stacked hand-written GRUs and RNNs'],
    ['$0 compare --from models/scratch models/builtin', 'the table and chart of two earlier runs'],
  ]);
}

/** One column of the table: a saved model, as its checkpoint describes it. */
export interface CompareEntry {
  /**
   * Column header and legend label: the impl when every model is a one-layer LSTM (as before the
   * series), else the impl and network ("scratch GRU, 2 layers"); plus the directory when two
   * columns would share one.
   */
  readonly label: string;
  readonly dir: string;
  readonly impl: Impl;
  readonly cell: Cell;
  readonly layers: number;
  readonly dropout: number;
  readonly parameters: number;
  readonly backend: string;
  readonly corpus: string;
  readonly hidden: number;
  readonly optimizer: string;
  readonly lr: number;
  /** Whether optimizer and lr are this cell and impl's lesson defaults, not set by flags. */
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
  if (args.cell !== undefined) throw new UsageError(`compare takes its cells from --cells; use --cells ${args.cell}`);
  if (args.maxPerplexity !== undefined) positiveNumber('max-perplexity', args.maxPerplexity);
  // Before any path is made or locked (each train run checks them again), so that a mistake
  // cannot surface after the first runs have trained.
  seedOf(args.seed);
  cellOf(args);
  const runs = plannedRuns(args.out, cellsOf(args.cells), args.impl ? [args.impl] : IMPLS);
  // Every path written, checked before any training: the chart, and (when training) both models.
  const chart = path.join(args.out, CHART_FILE);
  checkOutDir('--out', args.out);
  checkOutFile('--out', chart);
  const locks: Lock[] = [];
  try {
    return await compareLocked(args, runs, chart, log, progress, locks, stop);
  } finally {
    locks.forEach((lock) => lock.release());
  }
}

/** One model compare trains: a cell and impl, its name (log prefix, metrics file) and directory. */
interface PlannedRun {
  readonly cell: Cell;
  readonly impl: Impl;
  readonly name: string;
  readonly dir: string;
}

/**
 * --cells: names from CELLS, comma-separated, each once. Spaces around the names are allowed
 * (`--cells "lstm, gru"`).
 */
function cellsOf(value: string): Cell[] {
  const names = value.split(',').map((name) => name.trim());
  const cells: Cell[] = [];
  for (const name of names) {
    if (!(CELLS as readonly string[]).includes(name)) {
      throw new UsageError(`--cells must list cells from ${CELLS.join(', ')} separated by commas, got ${JSON.stringify(value)}`);
    }
    if (cells.includes(name as Cell)) throw new UsageError(`--cells names ${name} twice`);
    cells.push(name as Cell);
  }
  return cells;
}

/**
 * Every cell with every impl, in that order. LSTMs keep the layout from before the series
 * (<out>/scratch, <out>/builtin), so earlier comparisons still resume; other cells get
 * <out>/<cell>-<impl>, as train's default --out does.
 */
function plannedRuns(out: string, cells: readonly Cell[], impls: readonly Impl[]): PlannedRun[] {
  return cells.flatMap((cell) =>
    impls.map((impl) => {
      const name = cell === 'lstm' ? impl : `${cell}-${impl}`;
      return { cell, impl, name, dir: path.join(out, name) };
    }),
  );
}

async function compareLocked(
  args: CompareArgs,
  runs: readonly PlannedRun[],
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
    dirs = runs.map((run) => run.dir);
    for (const run of runs) train.checkTrainPaths(run.dir, args.metrics && withRun(args.metrics, run.name));
    for (const dir of dirs) locks.push(lockModelDir('--out', dir));
    for (const { cell, impl, name, dir: out } of runs) {
      const prefixed: Logger = { info: (line) => log.info(`[${name}] ${line}`) };
      const resume = args.resume && resumable(out, args.epochs ?? lessonDefaults(cell, impl).epochs, prefixed);
      if (resume === 'done') continue;
      try {
        // epochs, report interval, optimizer and lr stay undefined unless given, so each run gets its lesson's.
        await train.handler(
          { ...args, cell, impl, out, resume, metrics: args.metrics && withRun(args.metrics, name), maxPerplexity: undefined, json: false },
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

/** `m.jsonl` -> `m.scratch.jsonl`, `m.gru-builtin.jsonl`: one metrics file per run. */
export function withRun(file: string, run: string): string {
  const ext = path.extname(file);
  return `${file.slice(0, file.length - ext.length)}.${run}${ext}`;
}

/** Reads each saved model; generates each prefix (of all the runs' prefixes) greedily. */
export async function compareEntries(dirs: readonly string[]): Promise<CompareEntry[]> {
  // Every checkpoint is read before any model is loaded, so a bad directory fails fast.
  const metas = dirs.map((dir) => readCheckpointMeta(resolveModelDir(dir)));
  const prefixes = [...new Set(metas.flatMap((meta) => meta.train.prefixes))];
  // Before the series every model was a one-layer LSTM, and the impl named it; now the network may differ.
  const plain = plainLstms(metas.map((meta) => meta.model));
  const nameOf = (model: ModelConfig) => (plain ? model.impl : describeModel(model));
  const names = metas.map((meta) => nameOf(meta.model));
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
    const { impl, cell, layers, dropout } = meta.model;
    const { history, train: config } = meta;
    const last = history.at(-1);
    const defaults = lessonDefaults(cell, impl);
    const name = nameOf(meta.model);
    entries.push({
      label: names.filter((n) => n === name).length > 1 ? `${name} (${dir})` : name,
      dir: from,
      impl,
      cell,
      layers,
      dropout,
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
    [
      'optimizer',
      ...entries.map(
        (e) =>
          `${e.optimizer} lr ${e.lr}${e.defaultOptimizer ? ` (${e.cell === 'lstm' ? '' : `${e.cell} `}${e.impl} default)` : ' (set by flags)'}`,
      ),
    ],
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

/** One curve per model, for the chart; across cells (or depths), coloured by network and dashed by impl. */
export function seriesOf(entries: readonly CompareEntry[]): PerplexitySeries[] {
  const acrossCells = !plainLstms(entries);
  return entries.map((e) => ({
    name: e.label,
    ...(acrossCells && { cell: describeCell(e), impl: e.impl }),
    points: e.history.map((m) => ({ epoch: m.epoch, perplexity: m.perplexity, heldOutPerplexity: m.heldOutPerplexity })),
  }));
}

function chartSubtitle(entries: readonly CompareEntry[]): string[] {
  const corpora = [...new Set(entries.map((e) => e.corpus))];
  const about = plainLstms(entries) ? CHART_SUBTITLE : CELLS_SUBTITLE;
  return corpora.length === 1 ? [about, `corpus: ${corpora[0]}`] : [about];
}

/** Whether every model is a one-layer LSTM without dropout, as every model was before the series. */
function plainLstms(models: readonly Pick<ModelConfig, 'cell' | 'layers' | 'dropout'>[]): boolean {
  return models.every((m) => m.cell === 'lstm' && m.layers === 1 && m.dropout === 0);
}
