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
/** Lines under the title. Without a canvas, vega estimates text widths generously, so keep them short. */
export type Subtitle = string | readonly string[];

/** Rows for vega-lite: one per (model, epoch, training or held-out) with a finite, positive value. */
function rowsOf(series: readonly PerplexitySeries[]): { model: string; set: string; epoch: number; perplexity: number }[] {
  const rows = [];
  for (const s of series) {
    for (const p of s.points) {
      // A log scale cannot place 0, NaN or infinity; such a point is left out, not the chart.
      if (p.perplexity > 0 && Number.isFinite(p.perplexity))
        rows.push({ model: s.name, set: 'training', epoch: p.epoch, perplexity: p.perplexity });
      if (p.heldOutPerplexity !== undefined && p.heldOutPerplexity > 0 && Number.isFinite(p.heldOutPerplexity)) {
        rows.push({ model: s.name, set: 'held-out', epoch: p.epoch, perplexity: p.heldOutPerplexity });
      }
    }
  }
  return rows;
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
      // Legend order is the order the models were given (scratch first), not alphabetical.
      color: { field: 'model', type: 'nominal', title: 'model', sort: series.map((s) => s.name) },
      ...(heldOut && {
        strokeDash: { field: 'set', type: 'nominal', title: 'perplexity on', sort: ['training', 'held-out'] },
      }),
    },
  };
}
