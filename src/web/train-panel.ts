/**
 * One job: training in the page: the train form (its defaults, reading and checking it, the
 * corpus), the run with its progress bars, samples and live chart, the Stop button, and the
 * trained models' downloads, which join the models table.
 */
import type { Impl } from '../core/config';
import { firstLine } from '../core/errors';
import type { EpochMetrics } from '../core/metrics';
import { PAGE_TRAIN_DEFAULTS, corpusOfBytes, fetchBundledCorpus, trainModels, type PageTrainSettings } from './app';
import { drawChart } from './charts';
import { $ } from './dom';
import { download } from './download';
import { renderModels, select } from './models-table';
import type { PageState } from './state';

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

export function fillTrainDefaults(): void {
  for (const [id, get] of TRAIN_FIELDS) ($(id) as HTMLInputElement).value = String(get(PAGE_TRAIN_DEFAULTS));
}

/** The form's listeners: Train and Stop. */
export function wireTrainPanel(state: PageState): void {
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
    const run = ++state.trainedRuns;
    const localName = (impl: Impl) => `this page #${run}: ${impl}`;
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
