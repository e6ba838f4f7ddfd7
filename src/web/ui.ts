/**
 * The page's one UI module: reads the forms, draws the list, the text, the progress and the
 * charts, and wires buttons to app.ts through callbacks. It never touches a tensor; app.ts and the
 * core never touch the DOM.
 */
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { expressionInterpreter } from 'vega-interpreter';
import { perplexitySpec, type PerplexitySeries } from '../core/chart-spec';
import { firstLine } from '../core/errors';
import type { Impl } from '../core/config';
import type { EpochMetrics } from '../core/metrics';
import { unknownChars } from '../core/vocab';
import {
  PAGE_TRAIN_DEFAULTS,
  corpusOfBytes,
  fetchBundledCorpus,
  fetchModelList,
  generate,
  loadModel,
  modelZip,
  startBackend,
  trainModels,
  type GenerateRequest,
  type LoadedModel,
  type ModelSummary,
  type PageTrainSettings,
  type TrainedModel,
} from './app';

interface Entry {
  summary: ModelSummary;
  /** Trained in this page (not on the server): downloadable. */
  local?: TrainedModel;
  loaded?: Promise<LoadedModel>;
}

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;
const entries = new Map<string, Entry>();
let selected: string | undefined;
let backendName = 'unknown';
/** Bumped by every generation; a running one that sees a newer number stops. */
let generationToken = 0;
let stopRequested = false;
let trainedRuns = 0;

class Cancelled extends Error {}

export async function start(): Promise<void> {
  const params = new URLSearchParams(location.search);
  fillTrainDefaults();
  $('generate-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runGeneration(readGenerateForm());
  });
  $('prefix').addEventListener('input', () => {
    const loaded = selected ? entries.get(selected)?.loaded : undefined;
    void loaded?.then(checkPrefix).catch(() => undefined);
  });
  $('link-button').addEventListener('click', () => showLink(readGenerateForm()));
  $('train-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runTraining();
  });
  $('stop-button').addEventListener('click', () => {
    stopRequested = true;
    ($('stop-button') as HTMLButtonElement).disabled = true;
  });

  try {
    const backend = await startBackend(params.get('backend') ?? undefined);
    backendName = backend.name;
    setState($('backend'), 'ready', `TF.js backend: ${backend.name}. ${capitalise(backend.why)}.`);
    $('backend').dataset.backend = backend.name;
  } catch (err) {
    setState($('backend'), 'error', `TF.js backend: none started (${firstLine(err)})`);
    return;
  }
  ($('train-button') as HTMLButtonElement).disabled = false;

  try {
    for (const summary of await fetchModelList()) entries.set(summary.name, { summary });
    renderModels();
    const readable = [...entries.values()].filter((e) => e.summary.readable).length;
    setState($('models-status'), 'ready', entries.size === 0 ? 'No saved models yet: train one with lstm-lyrics train, or below.' : `${readable} readable of ${entries.size} listed.`);
  } catch (err) {
    setState($('models-status'), 'error', `Cannot read the model list: ${firstLine(err)}`);
  }

  // A link carries a generation: ?model=NAME&prefix=...&length=...&temperature=...&top-k=...&seed=...
  const model = params.get('model');
  if (model !== null) {
    for (const key of ['prefix', 'length', 'temperature', 'top-k', 'seed']) {
      const value = params.get(key);
      if (value !== null) ($(key) as HTMLInputElement).value = value;
    }
    if (!entries.has(model)) {
      showGenerated('error', `no model named ${JSON.stringify(model)} in the list`);
      return;
    }
    if (await select(model)) await runGeneration(readGenerateForm());
    else showGenerated('error', `cannot generate with ${model}: ${entries.get(model)?.summary.reason ?? $('selected').textContent}`);
  } else {
    const first = [...entries.values()].find((e) => e.summary.readable);
    if (first) await select(first.summary.name);
  }
}

// ---------------------------------------------------------------------------------------------
// Models

function renderModels(): void {
  const body = $('models').querySelector('tbody')!;
  body.replaceChildren();
  for (const { summary: m, local } of entries.values()) {
    const row = document.createElement('tr');
    row.dataset.name = m.name;
    if (!m.readable) {
      row.className = 'unreadable';
      row.append(cell(m.name), cell(`unreadable: ${m.reason ?? 'unknown reason'}`, 7));
    } else {
      row.append(
        cell(m.name),
        cell(m.impl ?? ''),
        cell(String(m.hidden), 1, true),
        cell(String(m.vocabSize), 1, true),
        cell(String(m.epochs), 1, true),
        cell(m.perplexity == null ? '–' : m.perplexity.toFixed(3) + (m.heldOutPerplexity == null ? '' : ` (held-out ${m.heldOutPerplexity.toFixed(3)})`), 1, true),
        cell(m.corpus ?? ''),
        cell(m.savedAt ? m.savedAt.slice(0, 16).replace('T', ' ') : ''),
      );
      if (local) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'Download';
        button.className = 'download';
        button.addEventListener('click', (e) => {
          e.stopPropagation();
          void download(local);
        });
        row.lastElementChild!.append(' ', button);
      }
      row.tabIndex = 0;
      row.setAttribute('aria-selected', String(m.name === selected));
      row.addEventListener('click', () => void select(m.name));
      row.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') void select(m.name);
      });
    }
    body.append(row);
  }
}

function cell(text: string, span = 1, numeric = false): HTMLTableCellElement {
  const td = document.createElement('td');
  td.textContent = text;
  if (span > 1) td.colSpan = span;
  if (numeric) td.className = 'num';
  return td;
}

/** Loads (once) and selects a model; false if it cannot be read. */
async function select(name: string): Promise<boolean> {
  const entry = entries.get(name);
  if (!entry || !entry.summary.readable) return false;
  selected = name;
  generationToken++;
  for (const row of $('models').querySelectorAll('tbody tr')) row.setAttribute('aria-selected', String((row as HTMLElement).dataset.name === name));
  ($('generate-button') as HTMLButtonElement).disabled = true;
  $('selected').textContent = `Loading ${name}…`;
  entry.loaded ??= entry.local ? Promise.resolve(entry.local) : loadModel(name);
  let loaded: LoadedModel;
  try {
    loaded = await entry.loaded;
  } catch (err) {
    entry.loaded = undefined;
    if (selected === name) $('selected').textContent = `Cannot load ${name}: ${firstLine(err)}`;
    return false;
  }
  if (selected !== name) return false;
  const m = entry.summary;
  $('selected').textContent = `${name}: ${m.impl}, ${m.hidden} hidden units, ${m.vocabSize} characters, ${m.epochs} epochs${m.perplexity == null ? '' : `, perplexity ${m.perplexity.toFixed(3)}`}.`;
  $('selected').dataset.model = name;
  ($('generate-button') as HTMLButtonElement).disabled = false;
  ($('link-button') as HTMLButtonElement).disabled = !!entry.local;
  checkPrefix(loaded);
  await drawSelectedCurves(name);
  return true;
}

/** The selected model's curve, with the models saved beside it (compare's scratch/ and builtin/). */
async function drawSelectedCurves(name: string): Promise<void> {
  const parent = (n: string) => n.split('/').slice(0, -1).join('/');
  const group = [...entries.values()]
    .map((e) => e.summary)
    .filter((m) => m.readable && m.history && (m.name === name || (!entries.get(name)?.local && !entries.get(m.name)?.local && parent(m.name) === parent(name))));
  group.sort((a, b) => (a.name === name ? -1 : b.name === name ? 1 : a.name.localeCompare(b.name)));
  const impls = group.map((m) => m.impl);
  const series: PerplexitySeries[] = group.map((m) => ({
    name: impls.filter((i) => i === m.impl).length > 1 ? `${m.impl} (${m.name})` : m.impl!,
    points: m.history!,
  }));
  await drawChart($('chart'), series, group.length > 1 ? group.map((m) => m.name).join(' and ') : name);
}

// ---------------------------------------------------------------------------------------------
// Generate

function readGenerateForm(): GenerateRequest {
  const value = (id: string) => ($(id) as HTMLInputElement).value.trim();
  const seed = value('seed');
  return {
    prefix: ($('prefix') as HTMLInputElement).value,
    length: Number(value('length') || 50),
    temperature: Number(value('temperature') || 0),
    topK: Number(value('top-k') || 0),
    seed: seed === '' ? undefined : Number(seed),
  };
}

function requestProblem(r: GenerateRequest): string | undefined {
  if (r.prefix.length === 0) return 'the prefix must not be empty';
  if (!Number.isInteger(r.length) || r.length < 0) return 'length must be a whole number >= 0';
  if (!Number.isFinite(r.temperature) || r.temperature < 0) return 'temperature must be a number >= 0';
  if (!Number.isInteger(r.topK) || r.topK < 0) return 'top-k must be a whole number >= 0';
  if (r.seed !== undefined && !Number.isInteger(r.seed)) return 'seed must be a whole number';
  return undefined;
}

/** Names, inline, the prefix characters the model's vocabulary lacks; true if there are none. */
function checkPrefix(loaded: LoadedModel): boolean {
  const prefix = ($('prefix') as HTMLInputElement).value;
  const missing = unknownChars(loaded.vocab, prefix);
  const problem = $('prefix-problem');
  if (missing.length === 0) {
    problem.hidden = true;
    return true;
  }
  problem.replaceChildren(`The model's vocabulary lacks ${missing.length === 1 ? 'this character' : 'these characters'} of the prefix: `);
  for (const char of Array.from(prefix)) {
    if (missing.includes(char)) {
      const mark = document.createElement('mark');
      mark.textContent = char;
      problem.append(mark);
    } else {
      problem.append(char);
    }
  }
  problem.append(` (${missing.map((c) => JSON.stringify(c)).join(' ')})`);
  problem.hidden = false;
  return false;
}

async function runGeneration(request: GenerateRequest): Promise<void> {
  const token = ++generationToken;
  const entry = selected ? entries.get(selected) : undefined;
  if (!entry?.loaded) return showGenerated('error', 'pick a model first');
  const problem = requestProblem(request);
  if (problem) return showGenerated('error', problem);
  const loaded = await entry.loaded;
  if (!checkPrefix(loaded)) return showGenerated('error', '');
  const out = $('generated');
  const prefix = document.createElement('span');
  prefix.className = 'prefix';
  prefix.textContent = request.prefix;
  const rest = document.createTextNode('');
  out.replaceChildren(prefix, rest);
  out.dataset.state = 'running';
  out.dataset.model = selected;
  try {
    await generate(loaded, request, (char) => {
      if (token !== generationToken) throw new Cancelled();
      rest.appendData(char);
    });
    out.dataset.state = 'done';
  } catch (err) {
    if (err instanceof Cancelled) return;
    showGenerated('error', firstLine(err));
  }
}

function showGenerated(state: string, message: string): void {
  const out = $('generated');
  out.textContent = message;
  out.dataset.state = state;
}

function showLink(request: GenerateRequest): void {
  if (!selected) return;
  const params = new URLSearchParams({ model: selected, prefix: request.prefix, length: String(request.length), temperature: String(request.temperature), 'top-k': String(request.topK) });
  if (request.seed !== undefined) params.set('seed', String(request.seed));
  const url = `${location.origin}${location.pathname}?${params}`;
  history.replaceState(null, '', url);
  void navigator.clipboard?.writeText(url).catch(() => undefined);
  $('selected').textContent = `Link (in the address bar, and copied if the browser allowed it): ${url}`;
}

// ---------------------------------------------------------------------------------------------
// Train

const TRAIN_FIELDS: readonly [string, (s: PageTrainSettings) => number][] = [
  ['max-chars', (s) => s.maxChars],
  ['hidden', (s) => s.hidden],
  ['num-steps', (s) => s.numSteps],
  ['batch-size', (s) => s.batchSize],
  ['epochs', (s) => s.epochs],
  ['lr-scratch', (s) => s.lr.scratch],
  ['lr-builtin', (s) => s.lr.builtin],
  ['clip', (s) => s.clip],
  ['report-every', (s) => s.reportEvery],
  ['train-seed', (s) => s.seed],
];

function fillTrainDefaults(): void {
  for (const [id, get] of TRAIN_FIELDS) ($(id) as HTMLInputElement).value = String(get(PAGE_TRAIN_DEFAULTS));
}

function readTrainSettings(): PageTrainSettings {
  const num = (id: string, whole: boolean, min: number) => {
    const v = Number(($(id) as HTMLInputElement).value);
    if (!Number.isFinite(v) || v < min || (whole && !Number.isInteger(v))) {
      throw new Error(`${id.replace('-', ' ')} must be ${whole ? 'a whole number' : 'a number'} >= ${min}`);
    }
    return v;
  };
  return {
    maxChars: num('max-chars', true, 0),
    hidden: num('hidden', true, 1),
    numSteps: num('num-steps', true, 1),
    batchSize: num('batch-size', true, 1),
    epochs: num('epochs', true, 1),
    lr: { scratch: num('lr-scratch', false, 0), builtin: num('lr-builtin', false, 0) },
    clip: num('clip', false, 0),
    reportEvery: num('report-every', true, 1),
    seed: num('train-seed', true, 0),
  };
}

async function readCorpusBytes(): Promise<{ bytes: Uint8Array; name: string }> {
  const source = (document.querySelector('input[name="corpus"]:checked') as HTMLInputElement).value;
  if (source === 'paste') {
    const text = ($('corpus-text') as HTMLTextAreaElement).value;
    if (text.trim() === '') throw new Error('paste some text first');
    return { bytes: new TextEncoder().encode(text), name: 'pasted text' };
  }
  if (source === 'file') {
    const file = ($('corpus-file') as HTMLInputElement).files?.[0];
    if (!file) throw new Error('pick a .txt file first');
    return { bytes: new Uint8Array(await file.arrayBuffer()), name: file.name };
  }
  return fetchBundledCorpus();
}

async function runTraining(): Promise<void> {
  const problem = $('train-problem');
  problem.hidden = true;
  const impls = (['scratch', 'builtin'] as Impl[]).filter((impl) => ($(`impl-${impl}`) as HTMLInputElement).checked);
  const trainButton = $('train-button') as HTMLButtonElement;
  const stopButton = $('stop-button') as HTMLButtonElement;
  const progress = $('progress');
  try {
    if (impls.length === 0) throw new Error('tick scratch, builtin or both');
    const settings = readTrainSettings();
    const { bytes, name } = await readCorpusBytes();
    const corpus = await corpusOfBytes(bytes, name, settings.maxChars);

    trainButton.disabled = true;
    stopButton.disabled = false;
    stopRequested = false;
    const run = ++trainedRuns;
    const localName = (impl: Impl) => `this page #${run}: ${impl}`;
    const series = new Map<Impl, EpochMetrics[]>(impls.map((impl) => [impl, []]));
    const drawTrainChart = () =>
      drawChart($('train-chart'), impls.map((i) => ({ name: i, points: series.get(i)! })), `${corpus.text.length.toLocaleString()} characters of ${name}, trained in this page (${backendName})`);
    const bars = new Map(impls.map((impl) => [impl, progressRow(impl)]));
    progress.replaceChildren(...bars.values());
    progress.dataset.state = 'running';
    $('samples').replaceChildren();
    $('train-chart').replaceChildren();
    $('train-chart').dataset.points = '0';
    const started = performance.now();
    let redraw: Promise<void> = Promise.resolve();
    let dirty = false;
    const trained = await trainModels(corpus, name, impls, settings, backendName, {
      shouldStop: () => stopRequested,
      onBatch(impl, epoch, batch, batches) {
        const done = (epoch - 1) * batches + batch;
        const total = settings.epochs * batches;
        const elapsed = (performance.now() - started) / 1000;
        const eta = (elapsed / done) * (total - done);
        const last = series.get(impl)!.at(-1);
        bars.get(impl)!.update(done / total, `${impl}: epoch ${epoch}/${settings.epochs}, batch ${batch}/${batches}` + (last ? `, perplexity ${last.perplexity.toFixed(2)}` : '') + `, ETA ${formatSeconds(eta)}`);
      },
      onEpoch(impl, metrics) {
        series.get(impl)!.push(metrics);
        bars.get(impl)!.dataset.perplexities = series.get(impl)!.map((m) => m.perplexity).join(',');
        bars.get(impl)!.dataset.seconds = series.get(impl)!.map((m) => m.seconds.toFixed(3)).join(',');
        // Redraw at most one chart at a time; the latest points win.
        if (!dirty) {
          dirty = true;
          redraw = redraw.then(async () => {
            dirty = false;
            await drawTrainChart();
          });
        }
      },
      onReport(impl, report) {
        const pre = document.createElement('pre');
        pre.textContent = `${impl} epoch ${report.metrics.epoch}, perplexity ${report.metrics.perplexity.toFixed(3)}, ${report.metrics.seconds.toFixed(2)} s\n` + report.samples.map((s) => ` - ${s}`).join('\n');
        $('samples').append(pre);
      },
    });
    await redraw;
    await drawTrainChart();
    const stopped = trained.some((t) => t.stopped);
    for (const t of trained) {
      const last = t.info.history.at(-1);
      bars.get(t.impl)!.update(1, `${t.impl}: ${t.stopped ? 'stopped' : 'done'} after ${t.info.epoch} epoch${t.info.epoch === 1 ? '' : 's'}` + (last ? `, perplexity ${last.perplexity.toFixed(3)}` : '') + `, ${formatSeconds((performance.now() - started) / 1000)}`);
      const name = localName(t.impl);
      entries.set(name, {
        local: t,
        summary: {
          name,
          readable: true,
          impl: t.impl,
          hidden: t.model.config.hidden,
          vocabSize: t.model.config.vocabSize,
          epochs: t.info.epoch,
          perplexity: last?.perplexity ?? null,
          heldOutPerplexity: null,
          corpus: t.info.train.corpus,
          savedAt: t.info.savedAt,
          history: t.info.history,
        },
      });
    }
    renderModels();
    $('trained').replaceChildren(
      ...trained.map((t) => {
        const div = document.createElement('div');
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'download';
        button.dataset.impl = t.impl;
        button.textContent = `Download ${t.impl} (.zip)`;
        button.addEventListener('click', () => void download(t));
        div.append(button, ` a model directory for lstm-lyrics generate --model (unzip it first)`);
        return div;
      }),
    );
    progress.dataset.state = stopped ? 'stopped' : 'done';
    await select(localName(trained[0].impl));
  } catch (err) {
    problem.textContent = firstLine(err);
    problem.hidden = false;
    progress.dataset.state = 'error';
  } finally {
    trainButton.disabled = false;
    stopButton.disabled = true;
  }
}

function progressRow(impl: Impl): HTMLElement & { update(fraction: number, text: string): void } {
  const row = document.createElement('div') as HTMLElement & { update(fraction: number, text: string): void };
  row.className = 'run';
  row.dataset.impl = impl;
  const text = document.createElement('span');
  text.textContent = `${impl}: starting…`;
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  row.append(text, bar);
  row.update = (fraction, line) => {
    bar.value = fraction;
    text.textContent = line;
  };
  return row;
}

async function download(trained: TrainedModel): Promise<void> {
  const folder = `lstm-lyrics-${trained.impl}`;
  const bytes = await modelZip(trained, folder);
  const url = URL.createObjectURL(new Blob([bytes as unknown as BlobPart], { type: 'application/zip' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = `${folder}.zip`;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

// ---------------------------------------------------------------------------------------------
// Charts and small helpers

const views = new WeakMap<HTMLElement, vega.View>();

/**
 * The compare chart's own spec (core/chart-spec.ts), drawn as SVG. Vega's expressions run through
 * vega-interpreter (`ast: true`), so the page needs no eval and keeps a strict script policy.
 */
async function drawChart(el: HTMLElement, series: PerplexitySeries[], subtitle: string): Promise<void> {
  views.get(el)?.finalize();
  el.replaceChildren();
  const points = series.reduce((n, s) => n + s.points.filter((p) => p.perplexity > 0 && Number.isFinite(p.perplexity)).length + s.points.filter((p) => p.heldOutPerplexity !== undefined).length, 0);
  el.dataset.points = String(points);
  if (points === 0) {
    el.textContent = 'No epochs recorded yet.';
    return;
  }
  const spec = compile(perplexitySpec(series, subtitle) as TopLevelSpec).spec;
  const view = new vega.View(vega.parse(spec, undefined, { ast: true }), { expr: expressionInterpreter as never, renderer: 'svg', container: el, hover: true });
  views.set(el, view);
  await view.runAsync();
}

function setState(el: HTMLElement, state: string, text: string): void {
  el.dataset.state = state;
  el.textContent = text;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '…';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}
