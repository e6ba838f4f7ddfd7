/**
 * The perplexity chart, as a vega-lite spec: perplexity against epoch, one line per model, on a log
 * scale. One spec for both places that draw it: `lstm-lyrics compare` renders it to SVG
 * (ui/chart.ts) and the page draws it live.
 */
import type { TopLevelSpec } from 'vega-lite';

/** One model's curve. */
export interface PerplexitySeries {
  /** The legend label: the impl, or the impl and directory when two runs share an impl. */
  readonly name: string;
  /**
   * Set on a comparison across cells: its colour is the cell's and its dash the impl's (scratch
   * solid, builtin dashed), so that six curves read as a grid. Without them, one colour per series.
   */
  readonly cell?: string;
  readonly impl?: string;
  readonly points: readonly PerplexityPoint[];
}

export interface PerplexityPoint {
  readonly epoch: number;
  readonly perplexity: number;
  /** Held-out perplexity (--val-chars), drawn dashed when present. */
  readonly heldOutPerplexity?: number;
}

export const CHART_TITLE = 'Perplexity by epoch';
export const CHART_SUBTITLE = 'scratch: the hand-written LSTM; builtin: tf.layers.lstm';
/** The subtitle of a comparison across cells (series with cell and impl). */
export const CELLS_SUBTITLE = 'scratch (solid): written by hand; builtin (dashed): tf.layers';

/** Dash patterns in order: the first impl solid, the second dashed; held-out lines dotted after them. */
const DASHES = [
  [1, 0],
  [6, 4],
  [2, 2],
  [6, 2, 2, 2],
  [1, 3],
  [8, 2, 1, 2],
];
/** Lines under the title. Without a canvas, vega estimates text widths generously, so keep them short. */
export type Subtitle = string | readonly string[];

interface Row {
  readonly model: string;
  readonly cell: string;
  /** The line's dash: the impl, with ", held-out" for held-out perplexity. */
  readonly line: string;
  readonly set: string;
  readonly epoch: number;
  readonly perplexity: number;
}

/** Rows for vega-lite: one per (model, epoch, training or held-out) with a finite, positive value. */
function rowsOf(series: readonly PerplexitySeries[]): Row[] {
  const rows: Row[] = [];
  for (const s of series) {
    const row = (set: string, epoch: number, perplexity: number): Row => ({
      model: s.name,
      cell: s.cell ?? s.name,
      line: set === 'training' ? (s.impl ?? set) : `${s.impl ?? ''}${s.impl ? ', ' : ''}${set}`,
      set,
      epoch,
      perplexity,
    });
    for (const p of s.points) {
      // A log scale cannot place 0, NaN or infinity; such a point is left out, not the chart.
      if (p.perplexity > 0 && Number.isFinite(p.perplexity)) rows.push(row('training', p.epoch, p.perplexity));
      if (p.heldOutPerplexity !== undefined && p.heldOutPerplexity > 0 && Number.isFinite(p.heldOutPerplexity)) {
        rows.push(row('held-out', p.epoch, p.heldOutPerplexity));
      }
    }
  }
  return rows;
}

/** The colour, dash and line-splitting channels of a comparison across cells. */
function byCellAndImpl(series: readonly PerplexitySeries[], rows: readonly Row[]) {
  const lines = [...new Set(rows.map((r) => r.line))].sort((a, b) => Number(a.includes(',')) - Number(b.includes(',')));
  return {
    color: { field: 'cell', type: 'nominal', title: 'cell', sort: [...new Set(series.map((s) => s.cell ?? s.name))] },
    strokeDash: {
      field: 'line',
      type: 'nominal',
      title: 'impl',
      scale: { domain: lines, range: lines.map((_, i) => DASHES[i % DASHES.length]) },
    },
    // Two runs of one cell and impl (from different directories) stay two lines.
    detail: { field: 'model', type: 'nominal' },
  } as const;
}

/** The vega-lite spec: x epoch, y perplexity (log), colour the model, dashes for held-out text. */
export function perplexitySpec(series: readonly PerplexitySeries[], subtitle: Subtitle = CHART_SUBTITLE): TopLevelSpec {
  const rows = rowsOf(series);
  const heldOut = rows.some((r) => r.set === 'held-out');
  const epochs = rows.map((r) => r.epoch);
  const span = epochs.length ? Math.max(...epochs) - Math.min(...epochs) : 0;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: CHART_TITLE, subtitle: typeof subtitle === 'string' ? subtitle : [...subtitle], anchor: 'start' },
    width: 560,
    height: 340,
    background: 'white',
    data: { values: rows },
    // Dots mark each epoch of a short run; on a long one they would hide the lines (and the dashes).
    mark: { type: 'line', point: new Set(epochs).size <= 30, tooltip: true },
    encoding: {
      // Whole epochs only: over a short run the default ticks would fall between them.
      x: {
        field: 'epoch',
        type: 'quantitative',
        title: 'epoch',
        axis: { format: 'd', ...(span <= 10 && { tickCount: Math.max(1, span) }) },
      },
      y: { field: 'perplexity', type: 'quantitative', title: 'perplexity (log scale)', scale: { type: 'log' } },
      ...(series.some((s) => s.cell !== undefined || s.impl !== undefined)
        ? byCellAndImpl(series, rows)
        : {
            // Legend order is the order the models were given (scratch first), not alphabetical.
            color: { field: 'model', type: 'nominal', title: 'model', sort: series.map((s) => s.name) },
            ...(heldOut && {
              strokeDash: { field: 'set', type: 'nominal', title: 'perplexity on', sort: ['training', 'held-out'] },
            }),
          }),
    },
  };
}
