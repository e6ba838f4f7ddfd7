/**
 * One job: training in the page: the train form (its defaults, reading and checking it with the
 * CLI's rules, each problem beside its field, the memory estimate beside Train, the corpus), the
 * run with its progress bars, samples and live chart, the Stop button, and the trained models'
 * downloads, which join the models table.
 */
import { utf8Text } from '../core/bytes';
import { CELLS, type Cell, type Impl } from '../core/config';
import { firstLine } from '../core/errors';
import type { EpochMetrics } from '../core/metrics';
import { corpusOfBytes, fetchBundledCorpus, releaseIfUnused, summaryOf, trainModels } from './app';
import { drawChart } from './charts';
import { $ } from './dom';
import { download } from './download';
import { fieldText, showFieldProblem, showFieldProblems } from './field-problems';
import {
  checkTrainInputs,
  corpusLengthProblem,
  pageMemoryLimit,
  TRAIN_FIELDS,
  type TrainField,
  trainingMemory,
  vocabularySize,
} from './inputs';
import { renderModels, select } from './models-table';
import { describeShape, PAGE_TRAIN_DEFAULTS, pageTrainDefaults, type PageTrainSettings } from './settings';
import type { CorpusRead, PageState } from './state';

/** Each number field's value in a set of settings (the fields' ids are TRAIN_FIELDS). */
const FIELD_VALUES: readonly [TrainField, (s: PageTrainSettings) => number][] = [
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
  for (const [id, get] of FIELD_VALUES) ($(id) as HTMLInputElement).value = String(get(PAGE_TRAIN_DEFAULTS));
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

/** The form's listeners: the cell's defaults, each field's check and the memory estimate as one types, Train and Stop. */
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
  // Every change of the form (a field, the cell, the impls, the corpus) checks it again.
  for (const event of ['input', 'change']) $('train-form').addEventListener(event, () => updateTrainEstimate(state));
}

/** Each number field as typed. */
function trainFieldTexts(): Record<TrainField, string> {
  return Object.fromEntries(TRAIN_FIELDS.map((id) => [id, fieldText(id)])) as Record<TrainField, string>;
}

/** Dispatched on document with the names of the models a training just added to the table (store-panel.ts keeps them). */
export const MODELS_TRAINED_EVENT = 'lstm-lyrics:models-trained';

function tickedImpls(): Impl[] {
  return (['scratch', 'builtin'] as Impl[]).filter((impl) => ($(`impl-${impl}`) as HTMLInputElement).checked);
}

/** The train form checked with the CLI's rules: the settings, or undefined with each problem shown beside its field. */
function readTrainSettings(): PageTrainSettings | undefined {
  const result = checkTrainInputs(trainFieldTexts(), checkedCell());
  showFieldProblems(TRAIN_FIELDS, result.ok ? {} : result.problems);
  const noImpl = tickedImpls().length === 0;
  showFieldProblem('impl-builtin', noImpl ? 'tick scratch, builtin or both' : undefined);
  return result.ok && !noImpl ? result.value : undefined;
}

/**
 * The fields checked and, when they are right, the memory the training needs beside Train
 * (trainingMemory: the CLI's estimate) with the vocabulary of the corpus as picked, once read;
 * too large, it says so there, and Train refuses.
 */
export function updateTrainEstimate(state: PageState): void {
  const estimate = $('train-estimate');
  const settings = readTrainSettings();
  const vocab = settings && corpusVocabulary(state, settings.maxChars, () => updateTrainEstimate(state));
  if (!settings || vocab === undefined) {
    estimate.textContent = '';
    estimate.dataset.state = 'unknown';
    return;
  }
  showEstimate(trainingMemory(settings, tickedImpls(), vocab, memoryLimit(state)));
}

function showEstimate(memory: ReturnType<typeof trainingMemory>): void {
  $('train-estimate').textContent = memory.text;
  $('train-estimate').dataset.state = memory.fits ? 'fits' : 'too-large';
}

function memoryLimit(state: PageState): ReturnType<typeof pageMemoryLimit> {
  // navigator.deviceMemory (Chromium only): the device's memory in GiB, rounded.
  return pageMemoryLimit(state.backendName, (navigator as { deviceMemory?: number }).deviceMemory);
}

/**
 * The vocabulary size of the corpus as picked, for the estimate: pasted text at once; the bundled
 * corpus or a picked file once read (each read once: the training uses the same bytes), calling
 * `then` when it is; undefined until then, or when it cannot be read (Train says why).
 */
function corpusVocabulary(state: PageState, maxChars: number, then: () => void): number | undefined {
  const source = pickedSource();
  if (source === 'paste') return vocabularySize(($('corpus-text') as HTMLTextAreaElement).value, maxChars);
  const read = source === 'bundled' ? bundledCorpus(state) : pickedFile(state);
  if (!read) return undefined;
  if (!read.done) {
    void read.bytes.then(then, () => undefined);
    return undefined;
  }
  const cached = state.vocabEstimate;
  if (cached?.of === read.done.bytes && cached.maxChars === maxChars) return cached.count;
  let count: number | undefined;
  try {
    count = vocabularySize(utf8Text(read.done.bytes, true), maxChars);
  } catch {
    count = undefined; // not UTF-8: Train says so
  }
  state.vocabEstimate = { of: read.done.bytes, maxChars, count };
  return count;
}

function pickedSource(): string {
  return (document.querySelector('input[name="corpus"]:checked') as HTMLInputElement).value;
}

/** The bundled corpus, fetched once. */
function bundledCorpus(state: PageState): CorpusRead {
  state.bundledCorpus ??= readOnce(fetchBundledCorpus());
  return state.bundledCorpus;
}

/** The picked .txt file, read once for each file picked. */
function pickedFile(state: PageState): CorpusRead | undefined {
  const file = ($('corpus-file') as HTMLInputElement).files?.[0];
  if (!file) return undefined;
  if (state.fileCorpus?.file !== file) {
    state.fileCorpus = { file, read: readOnce(file.arrayBuffer().then((b) => ({ bytes: new Uint8Array(b), name: file.name }))) };
  }
  return state.fileCorpus.read;
}

function readOnce(bytes: Promise<{ bytes: Uint8Array; name: string }>): CorpusRead {
  const read: CorpusRead = { bytes };
  bytes.then(
    (done) => {
      read.done = done;
    },
    () => undefined,
  );
  return read;
}

/** The corpus as picked (being read), or undefined with the problem beside the corpus field. */
export function readCorpusBytes(state: PageState): Promise<{ bytes: Uint8Array; name: string }> | undefined {
  const source = pickedSource();
  showFieldProblem('corpus-text', undefined);
  showFieldProblem('corpus-file', undefined);
  if (source === 'paste') {
    const text = ($('corpus-text') as HTMLTextAreaElement).value;
    if (text.trim() !== '') return Promise.resolve({ bytes: new TextEncoder().encode(text), name: 'pasted text' });
    showFieldProblem('corpus-text', 'paste some text first');
    return undefined;
  }
  const read = source === 'file' ? pickedFile(state) : bundledCorpus(state);
  if (read) return read.bytes;
  showFieldProblem('corpus-file', 'pick a .txt file first');
  return undefined;
}

async function runTraining(state: PageState): Promise<void> {
  const problem = $('train-problem');
  problem.hidden = true;
  const trainButton = $('train-button') as HTMLButtonElement;
  const stopButton = $('stop-button') as HTMLButtonElement;
  const progress = $('progress');
  const impls = tickedImpls();
  // Nothing starts while something is wrong: the reason beside its field and Train, and here.
  const refuse = (message: string) => {
    problem.textContent = message;
    problem.hidden = false;
    progress.replaceChildren();
    progress.dataset.state = 'error';
  };
  const settings = readTrainSettings();
  const corpusRead = settings && readCorpusBytes(state);
  if (!settings || !corpusRead) {
    return refuse($('train-form').querySelector('.field-error:not([hidden])')?.textContent ?? 'a field is not valid');
  }
  try {
    const { bytes, name } = await corpusRead;
    const corpus = await corpusOfBytes(bytes, name, settings.maxChars);
    // The CLI's checks of a run, before anything is built.
    const tooShort = corpusLengthProblem(corpus.ids.length, settings.batchSize, settings.numSteps);
    if (tooShort) throw new Error(tooShort);
    const memory = trainingMemory(settings, impls, corpus.vocab.chars.length, memoryLimit(state));
    showEstimate(memory);
    if (!memory.fits) return refuse(memory.text);

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
      state.entries.set(name, { local: t, summary: summaryOf(name, t.info) });
    }
    renderModels(state);
    document.dispatchEvent(new CustomEvent(MODELS_TRAINED_EVENT, { detail: trained.map((t) => localName(t.impl)) }));
    // This run's models replace the last run's in the Download buttons; those no row keeps are freed.
    const previous = state.trainPanelModels;
    state.trainPanelModels = trained;
    for (const model of previous) releaseIfUnused(state, model);
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
    // The progress row says why the run did not start or why it ended, never `starting…`.
    const message = firstLine(err);
    problem.textContent = message;
    problem.hidden = false;
    const rows = [...progress.querySelectorAll<ProgressRow>('.run')];
    if (rows.length === 0) {
      const row = document.createElement('div');
      row.className = 'run';
      row.textContent = message;
      progress.replaceChildren(row);
    }
    for (const row of rows) row.update(row.querySelector('progress')?.value ?? 0, `${row.dataset.impl}: ${message}`);
    progress.dataset.state = 'error';
  } finally {
    trainButton.disabled = false;
    stopButton.disabled = true;
  }
}

type ProgressRow = HTMLElement & { update(fraction: number, text: string): void };

function progressRow(impl: Impl): ProgressRow {
  const row = document.createElement('div') as ProgressRow;
  row.className = 'run';
  row.dataset.impl = impl;
  const text = document.createElement('span');
  text.textContent = `${impl}: starting…`;
  const bar = document.createElement('progress');
  bar.max = 1;
  bar.value = 0;
  bar.setAttribute('aria-label', `${impl} training progress`);
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
