/**
 * The perplexity chart of `lstm-lyrics compare` as an SVG file: core/chart-spec.ts's spec, rendered
 * by vega's headless renderer (no browser, no canvas). vega 5 / vega-lite 5 because they still
 * load with require(); 6 is ESM-only.
 */
import * as fs from 'node:fs';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { perplexitySpec, type PerplexitySeries, type Subtitle } from '../core/chart-spec';

export async function perplexityChartSvg(series: readonly PerplexitySeries[], subtitle?: Subtitle): Promise<string> {
  const view = new vega.View(vega.parse(compile(perplexitySpec(series, subtitle)).spec), { renderer: 'none' });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

/**
 * Writes the chart to `file` (written beside it, then renamed, so a reader never sees half; if
 * that fails, the half-written copy is removed and `file` is as it was).
 */
export async function writePerplexityChart(file: string, series: readonly PerplexitySeries[], subtitle?: Subtitle): Promise<void> {
  const svg = await perplexityChartSvg(series, subtitle);
  const tmp = `${file}.tmp`;
  try {
    fs.writeFileSync(tmp, svg);
    fs.renameSync(tmp, file);
  } catch (err) {
    fs.rmSync(tmp, { force: true });
    throw err;
  }
}
