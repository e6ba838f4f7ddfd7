/**
 * One job: training in the page: the train form (its defaults, reading and checking it, the
 * corpus), the run with its progress bars, samples and live chart, the Stop button, and the
 * trained models' downloads, which join the models table.
 */
import { CELLS, type Cell, type Impl } from '../core/config';
import { firstLine } from '../core/errors';
import type { EpochMetrics } from '../core/metrics';
import { shapeProblem } from '../core/model-check';
import { corpusOfBytes, fetchBundledCorpus, trainModels } from './app';
import { drawChart } from './charts';
import { $ } from './dom';
import { download } from './download';
import { renderModels, select } from './models-table';
import { describeShape, PAGE_TRAIN_DEFAULTS, pageTrainDefaults, type PageTrainSettings } from './settings';
import type { PageState } from './state';

const TRAIN_FIELDS: readonly [string, (s: PageTrainSettings) => number][] = [
  ['layers', (s) => s.layers],
  ['dropout', (s) => s.dropout],
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

/** The fields whose default depends on the cell's lesson (lessonDefaults); the rest are the same in every lesson. */
const LESSON_FIELDS: readonly [string, (s: PageTrainSettings) => number][] = [
  ['epochs', (s) => s.epochs],
  ['report-every', (s) => s.reportEvery],
  ['lr-scratch', (s) => s.lr.scratch],
  ['lr-builtin', (s) => s.lr.builtin],
];

export function fillTrainDefaults(): void {
  for (const [id, get] of TRAIN_FIELDS) ($(id) as HTMLInputElement).value = String(get(PAGE_TRAIN_DEFAULTS));
  ($(`cell-${PAGE_TRAIN_DEFAULTS.cell}`) as HTMLInputElement).checked = true;
}

function checkedCell(): Cell {
  return CELLS.find((c) => ($(`cell-${c}`) as HTMLInputElement).checked) ?? PAGE_TRAIN_DEFAULTS.cell;
}

/**
 * Picking a cell puts its lesson's epochs, report interval and learning rates in the form, as
 * `train --cell` does, except in the fields the user has typed in: what they chose stays.
 * (Setting .value fires no input event, so only the user's edits mark a field.)
 */
function wireCellDefaults(): void {
  for (const [id] of LESSON_FIELDS) {
    $(id).addEventListener('input', () => {
      $(id).dataset.edited = 'true';
    });
  }
  for (const cell of CELLS) {
    $(`cell-${cell}`).addEventListener('change', () => {
      const defaults = pageTrainDefaults(checkedCell());
      for (const [id, get] of LESSON_FIELDS) {
        if ($(id).dataset.edited !== 'true') ($(id) as HTMLInputElement).value = String(get(defaults));
      }
    });
  }
}

/** The form's listeners: the cell's defaults, Train and Stop. */
export function wireTrainPanel(state: PageState): void {
  wireCellDefaults();
  $('train-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runTraining(state);
  });
  $('stop-button').addEventListener('click', () => {
    state.stopRequested = true;
    ($('stop-button') as HTMLButtonElement).disabled = true;
  });
}

function readTrainSettings(): PageTrainSettings {
  const num = (id: string, whole: boolean, min: number) => {
    const v = Number(($(id) as HTMLInputElement).value);
    if (!Number.isFinite(v) || v < min || (whole && !Number.isInteger(v))) {
      throw new Error(`${id.replace('-', ' ')} must be ${whole ? 'a whole number' : 'a number'} >= ${min}`);
    }
    return v;
  };
  const layers = Number(($('layers') as HTMLInputElement).value);
  const dropout = Number(($('dropout') as HTMLInputElement).value);
  // The CLI's rule for --layers and --dropout, word for word but for the dashes.
  const problem = shapeProblem(layers, dropout);
  if (problem) throw new Error(problem);
  return {
    cell: checkedCell(),
    layers,
    dropout,
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

/** Dispatched on document with the names of the models a training just added to the table (store-panel.ts keeps them). */
export const MODELS_TRAINED_EVENT = 'lstm-lyrics:models-trained';

export async function readCorpusBytes(): Promise<{ bytes: Uint8Array; name: string }> {
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

async function runTraining(state: PageState): Promise<void> {
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
    state.stopRequested = false;
    // "this page #1: scratch GRU ×2": the run, and what was trained (as train's banner says it).
    const nameOf = (run: number, impl: Impl) => `this page #${run}: ${impl} ${describeShape(settings)}`;
    let run = ++state.trainedRuns;
    // A name still listed (kept in this browser, or opened by hand) is not reused.
    while (impls.some((impl) => state.entries.has(nameOf(run, impl)))) run = ++state.trainedRuns;
    const localName = (impl: Impl) => nameOf(run, impl);
    const series = new Map<Impl, EpochMetrics[]>(impls.map((impl) => [impl, []]));
    const drawTrainChart = () =>
      drawChart(
        $('train-chart'),
        impls.map((i) => ({ name: i, points: series.get(i)! })),
        `${corpus.text.length.toLocaleString()} characters of ${name}, trained in this page (${state.backendName})`,
      );
    const bars = new Map(impls.map((impl) => [impl, progressRow(impl)]));
    progress.replaceChildren(...bars.values());
    progress.dataset.state = 'running';
    $('samples').replaceChildren();
    $('train-chart').replaceChildren();
    $('train-chart').dataset.points = '0';
    const started = performance.now();
    let redraw: Promise<void> = Promise.resolve();
    let dirty = false;
    const trained = await trainModels(corpus, name, impls, settings, state.backendName, {
      shouldStop: () => state.stopRequested,
      onBatch(impl, epoch, batch, batches) {
        const done = (epoch - 1) * batches + batch;
        const total = settings.epochs * batches;
        const elapsed = (performance.now() - started) / 1000;
        const eta = (elapsed / done) * (total - done);
        const last = series.get(impl)!.at(-1);
        bars
          .get(impl)!
          .update(
            done / total,
            `${impl}: epoch ${epoch}/${settings.epochs}, batch ${batch}/${batches}` +
              (last ? `, perplexity ${last.perplexity.toFixed(2)}` : '') +
              `, ETA ${formatSeconds(eta)}`,
          );
      },
      onEpoch(impl, metrics) {
        series.get(impl)!.push(metrics);
        bars.get(impl)!.dataset.perplexities = series
          .get(impl)!
          .map((m) => m.perplexity)
          .join(',');
        bars.get(impl)!.dataset.seconds = series
          .get(impl)!
          .map((m) => m.seconds.toFixed(3))
          .join(',');
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
        pre.textContent =
          `${impl} epoch ${report.metrics.epoch}, perplexity ${report.metrics.perplexity.toFixed(3)}, ${report.metrics.seconds.toFixed(2)} s\n` +
          report.samples.map((s) => ` - ${s}`).join('\n');
        $('samples').append(pre);
      },
    });
    await redraw;
    await drawTrainChart();
    const stopped = trained.some((t) => t.stopped);
    for (const t of trained) {
      const last = t.info.history.at(-1);
      bars
        .get(t.impl)!
        .update(
          1,
          `${t.impl}: ${t.stopped ? 'stopped' : 'done'} after ${t.info.epoch} epoch${t.info.epoch === 1 ? '' : 's'}` +
            (last ? `, perplexity ${last.perplexity.toFixed(3)}` : '') +
            `, ${formatSeconds((performance.now() - started) / 1000)}`,
        );
      const name = localName(t.impl);
      state.entries.set(name, {
        local: t,
        summary: {
          name,
          readable: true,
          impl: t.impl,
          cell: t.model.config.cell,
          layers: t.model.config.layers,
          dropout: t.model.config.dropout,
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
    renderModels(state);
    document.dispatchEvent(new CustomEvent(MODELS_TRAINED_EVENT, { detail: trained.map((t) => localName(t.impl)) }));
    $('trained').replaceChildren(
      ...trained.map((t) => {
        const div = document.createElement('div');
        const button = document.createElement('button');
        button.type = 'button';
        button.className = 'download';
        button.dataset.impl = t.impl;
        button.textContent = `Download ${t.impl} ${describeShape(t.model.config)} (.zip)`;
        button.addEventListener('click', () => void download(t));
        div.append(button, ` a model directory for lstm-lyrics generate --model (unzip it first)`);
        return div;
      }),
    );
    progress.dataset.state = stopped ? 'stopped' : 'done';
    await select(state, localName(trained[0].impl));
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

function formatSeconds(s: number): string {
  if (!Number.isFinite(s)) return '…';
  const m = Math.floor(s / 60);
  return `${m}:${String(Math.round(s % 60)).padStart(2, '0')}`;
}
