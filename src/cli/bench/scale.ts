/**
 * `bench --scale`: how time and memory grow with corpus length and model size. Every impl x corpus
 * length x hidden size runs in its own process (`bench --json`), so that each peak RSS is that
 * configuration's alone: the wasm heap never shrinks. Then one table, and a note per impl and size
 * on whether time per character stays linear and memory flat.
 *
 * Apart from the plain bench (rounds.ts) because it measures nothing itself: it spawns the CLI and
 * reads back what each child printed.
 */
import { resolveThreads } from '../../backend/threads';
import type { Cell, Impl } from '../../core/config';
import { count } from '../../core/numbers';
import { formatTable } from '../../terminal/table';
import type { Logger } from '../logger';
import { threadsOf, type BackendArgs } from '../options';
import { benchInChild, type BenchResult, type ImplResult, rowLabel } from './rounds';

/** --scale's grid: the lesson's 10,000 characters and the whole corpus (0), three model sizes. */
export const SCALE_CHARS = [10_000, 0] as const;
export const SCALE_HIDDEN = [128, 256, 512] as const;

/**
 * Runs the grid and prints its table and notes. The thread count is resolved once here, so that the
 * load of one run does not change the next one's.
 */
export async function benchScale(
  args: BackendArgs,
  run: { impls: Impl[]; cell: Cell; layers: number; epochs: number; corpusPath: string; machine: BenchResult['machine'] },
  log: Logger,
  note: Logger,
): Promise<BenchResult> {
  const threads = await resolveThreads(threadsOf(args.threads));
  const backendArgs = ['--backend', args.backend, '--threads', String(threads.threads), '--accel', args.accel];
  const rows: ImplResult[] = [];
  let backend = '';
  let corpusInfo: BenchResult['corpus'] | undefined;
  for (const impl of run.impls) {
    for (const maxChars of SCALE_CHARS) {
      for (const hidden of SCALE_HIDDEN) {
        note.info(`scale: ${run.cell} ${impl}, ${maxChars ? count(maxChars) : 'all'} characters, hidden ${hidden}...`);
        const result = benchInChild([
          '--cell',
          run.cell,
          '--layers',
          String(run.layers),
          '--impl',
          impl,
          '--epochs',
          String(run.epochs),
          '--corpus',
          run.corpusPath,
          '--max-chars',
          String(maxChars),
          '--hidden',
          String(hidden),
          ...backendArgs,
        ]);
        backend = result.backend;
        if (maxChars === 0) corpusInfo = result.corpus;
        rows.push(result.results[0]);
      }
    }
  }
  log.info(backend + (threads.why ? ` (--threads ${threads.why}, resolved once for every run)` : ''));
  log.info(
    `corpus: ${run.corpusPath}; ${run.epochs} timed epoch${run.epochs === 1 ? '' : 's'} after 1 warm-up, each configuration in a fresh process`,
  );
  log.info('');
  log.info(scaleTable(rows));
  log.info('');
  for (const line of scaleNotes(rows)) log.info(line);
  return {
    machine: run.machine,
    backend,
    corpus: corpusInfo ?? { path: run.corpusPath, chars: NaN, vocab: NaN },
    epochs: run.epochs,
    results: [],
    scale: rows,
  };
}

export function scaleTable(rows: readonly ImplResult[]): string {
  const header = [
    'cell',
    'layers',
    'impl',
    'chars',
    'vocab',
    'hidden',
    's/epoch',
    'CPU s/epoch',
    'ms per 1k chars',
    'peak RSS MiB',
    'tensors left',
  ];
  return formatTable(
    rows.map((r) => [
      r.cell,
      String(r.layers),
      r.impl,
      count(r.chars),
      count(r.vocab),
      String(r.hidden),
      r.medianEpochSeconds.toFixed(3),
      r.medianEpochCpuSeconds.toFixed(3),
      (1e6 / r.charsPerSecond).toFixed(1),
      count(r.peakRssMiB),
      String(r.tensorsLeaked),
    ]),
    header,
  ).join('\n');
}

/** Weight blocks per recurrent layer: one product of the state per gate or candidate. */
const GATES: Readonly<Record<Cell, number>> = { rnn: 1, gru: 3, lstm: 4 };

/**
 * Per impl and hidden size, short corpus -> long corpus: CPU time per character (wall time on a
 * shared machine says more about the neighbours), against what the matmul work per character
 * predicts: 3·hidden·gates·hidden per layer for the recurrence (4 gates for the LSTM, 3 for the
 * GRU, 1 for the RNN; a stacked layer's input product as much again) plus 3·hidden·vocab for the
 * output layer (forward, and two products backward), which grows with the vocabulary, not with the
 * corpus length. Time is
 * called linear in characters when the two ratios agree within 15%; memory flat when peak RSS
 * grows less than 15%.
 */
export function scaleNotes(rows: readonly ImplResult[]): string[] {
  const notes: string[] = [];
  for (const short of rows) {
    const long = rows.find(
      (r) =>
        r.cell === short.cell && r.layers === short.layers && r.impl === short.impl && r.hidden === short.hidden && r.chars > short.chars,
    );
    if (!long) continue;
    const cpuPerChar = (r: ImplResult) => r.medianEpochCpuSeconds / (r.charsPerSecond * r.medianEpochSeconds);
    const work = (r: ImplResult) => 3 * r.hidden * GATES[r.cell] * r.hidden * (2 * r.layers - 1) + 3 * r.hidden * r.vocab;
    const time = cpuPerChar(long) / cpuPerChar(short);
    const predicted = work(long) / work(short);
    const memory = long.peakRssMiB / short.peakRssMiB;
    const what = `${rowLabel(short)} hidden ${short.hidden}, ${count(short.chars)} -> ${count(long.chars)} characters (vocabulary ${count(short.vocab)} -> ${count(long.vocab)})`;
    notes.push(
      `${what}: CPU time per character x${time.toFixed(2)}, matmul work per character x${predicted.toFixed(2)} ` +
        `(${Math.abs(time / predicted - 1) <= 0.15 ? 'linear in characters' : 'NOT linear in characters'}); ` +
        `peak RSS x${memory.toFixed(2)} (${Math.abs(memory - 1) <= 0.15 ? 'flat' : 'NOT flat'})`,
    );
  }
  return notes;
}
