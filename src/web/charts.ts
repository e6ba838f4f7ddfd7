/**
 * One job: the perplexity charts, drawn with vega into #chart (the selected model and the models
 * saved beside it) and #train-chart (a training in this page).
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { expressionInterpreter } from 'vega-interpreter';
import { perplexitySpec, type PerplexitySeries } from '../core/chart-spec';
import type { ModelSummary } from './app';
import { $ } from './dom';
import { describeShape } from './settings';
import type { PageState } from './state';

/** Each chart element's live view, finalized before the element is drawn again. */
const views = new WeakMap<HTMLElement, vega.View>();

/**
 * The compare chart's own spec (core/chart-spec.ts), drawn as SVG. Vega's expressions run through
 * vega-interpreter (`ast: true`), so the page needs no eval and keeps a strict script policy.
 */
export async function drawChart(el: HTMLElement, series: PerplexitySeries[], subtitle: string): Promise<void> {
  views.get(el)?.finalize();
  el.replaceChildren();
  const points = series.reduce(
    (n, s) =>
      n +
      s.points.filter((p) => p.perplexity > 0 && Number.isFinite(p.perplexity)).length +
      s.points.filter((p) => p.heldOutPerplexity !== undefined).length,
    0,
  );
  el.dataset.points = String(points);
  if (points === 0) {
    el.textContent = 'No epochs recorded yet.';
    return;
  }
  const spec = compile(perplexitySpec(series, subtitle) as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(spec, undefined, { ast: true }), {
    expr: expressionInterpreter as never,
    renderer: 'svg',
    container: el,
    hover: true,
  });
  views.set(el, view);
  await view.runAsync();
}

/** The selected model's curve, with the models saved beside it (compare's scratch/ and builtin/). */
export async function drawSelectedCurves(state: PageState, name: string): Promise<void> {
  const { entries } = state;
  const parent = (n: string) => n.split('/').slice(0, -1).join('/');
  const group = [...entries.values()]
    .map((e) => e.summary)
    .filter(
      (m) =>
        m.readable &&
        m.history &&
        (m.name === name || (!entries.get(name)?.local && !entries.get(m.name)?.local && parent(m.name) === parent(name))),
    );
  group.sort((a, b) => (a.name === name ? -1 : b.name === name ? 1 : a.name.localeCompare(b.name)));
  // Each curve by its impl ("scratch") where every curve has the same cell; by impl and cell
  // ("builtin GRU" beside "scratch LSTM ×2") where they differ; by its name as well where even
  // that repeats.
  const sameShape = new Set(group.map((m) => describeShape(m))).size === 1;
  const label = (m: ModelSummary) => (sameShape ? m.impl! : `${m.impl} ${describeShape(m)}`);
  const series: PerplexitySeries[] = group.map((m) => ({
    name: group.filter((o) => label(o) === label(m)).length === 1 ? label(m) : `${label(m)} (${m.name})`,
    points: m.history!,
  }));
  await drawChart($('chart'), series, group.length > 1 ? group.map((m) => m.name).join(' and ') : name);
}
