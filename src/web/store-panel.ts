/**
 * One job: the models kept in this browser and those brought in by hand. It opens the store and
 * lists what it keeps (the models table's "this browser" group), keeps each model trained here,
 * opens a .zip or a folder (checked by the core, as the CLI checks a model directory, before
 * anything is kept), and runs a kept row's Download, Rename, Delete and Resume. Tensors stay in
 * app.ts; the files in browser-store.ts.
 */
import { parseCheckpointMeta, CHECKPOINT_FILE } from '../core/checkpoint-format';
import { firstLine } from '../core/errors';
import { givenText, numberOfText, wholeNumberProblem } from '../core/input-rules';
import type { Impl } from '../core/config';
import {
  checkpointOfFiles,
  disposeLoaded,
  releaseIfUnused,
  loadCheckpoint,
  modelFiles,
  resumeTraining,
  summaryOf,
  type LoadedModel,
  type ModelSummary,
  type TrainedModel,
} from './app';
import { BrowserStoreError, openBrowserStore } from './browser-store';
import { $ } from './dom';
import { downloadFiles } from './download';
import { checkpointOfSource, folderSource, zipSource, type FileSource } from './model-import';
import { renderModels, select, type StoredAction } from './models-table';
import { blobAccess } from './unzip';
import type { PageState } from './state';
import { MODELS_TRAINED_EVENT, readCorpusBytes } from './train-panel';

/** A name a person gives a model: long enough to say what it is, short enough for the table. */
const MAX_NAME_LENGTH = 100;

/** Opens the store and lists its models under "this browser"; says in one line when the browser keeps nothing. */
export async function openStore(state: PageState): Promise<void> {
  try {
    state.store = await openBrowserStore();
    const kept = await state.store.list();
    for (const record of kept) {
      const name = uniqueName(state, record.name);
      let summary: ModelSummary;
      try {
        summary = summaryOf(name, parseCheckpointMeta(record.checkpoint, `${name}: ${CHECKPOINT_FILE}`));
      } catch (err) {
        summary = { name, readable: false, reason: firstLine(err) };
      }
      state.entries.set(name, { summary, stored: { id: record.id } });
      // "this page #N" names stay taken: the next run in this page numbers after them.
      const run = /^this page #(\d+):/.exec(name);
      if (run) state.trainedRuns = Math.max(state.trainedRuns, Number(run[1]));
    }
    renderModels(state);
    setStatus('ready', kept.length === 0 ? 'No models kept in this browser yet.' : `${kept.length} kept in this browser.`);
  } catch (err) {
    state.store = undefined;
    state.storeProblem = firstLine(err);
    setStatus(
      'error',
      `Models trained or opened here cannot be kept in this browser: ${state.storeProblem}; they work until the page reloads (download them to keep them).`,
    );
  }
}

/** The "Open a model" inputs, the kept rows' buttons, and keeping each model trained in this page. */
export function wireStorePanel(state: PageState): void {
  const zipInput = $('open-zip') as HTMLInputElement;
  zipInput.addEventListener('change', () => {
    const file = zipInput.files?.[0];
    if (file) void openModel(state, () => zipSource(blobAccess(file), file.name)).finally(() => (zipInput.value = ''));
  });
  const folderInput = $('open-folder') as HTMLInputElement;
  folderInput.addEventListener('change', () => {
    const files = [...(folderInput.files ?? [])];
    if (files.length === 0) return;
    const folder = files[0].webkitRelativePath.split('/')[0] || 'the folder';
    const picked = files.map((file) => ({ path: file.webkitRelativePath || file.name, file }));
    void openModel(state, async () => folderSource(picked, folder)).finally(() => (folderInput.value = ''));
  });
  $('models').addEventListener('click', (e) => {
    const button = (e.target as Element).closest('button[data-action]') as HTMLButtonElement | null;
    const name = (button?.closest('tr') as HTMLElement | null)?.dataset.name;
    if (!button || name === undefined) return;
    void act(state, button.dataset.action as StoredAction, name);
  });
  document.addEventListener(MODELS_TRAINED_EVENT, (e) => void keepTrained(state, (e as CustomEvent<string[]>).detail));
}

/** Keeps models just trained in this page; each that cannot be kept stays in this tab, and the page says why. */
async function keepTrained(state: PageState, names: readonly string[]): Promise<void> {
  const kept: string[] = [];
  const problems: string[] = [];
  for (const name of names) {
    const entry = state.entries.get(name);
    if (!entry?.local) continue;
    try {
      if (!state.store) throw new Error(state.storeProblem ?? 'the store is not open');
      entry.stored = { id: await state.store.put(name, await modelFiles(entry.local)) };
      kept.push(name);
    } catch (err) {
      problems.push(`${name} is not kept in this browser (${firstLine(err)})`);
    }
  }
  renderModels(state);
  if (problems.length > 0) {
    setStatus('error', `${problems.join('; ')}: it works in this tab until the page reloads; download it to keep it.`);
  } else if (kept.length > 0) setStatus('ready', `Kept in this browser: ${kept.join(', ')}.`);
}

/**
 * Opens a model brought in by hand: read within the core's limits, checked and built as the CLI
 * builds one, then kept (or, when the browser keeps nothing, held in this tab) and selected.
 * A bad one costs one line in #open-problem and keeps nothing.
 */
async function openModel(state: PageState, source: () => Promise<FileSource>): Promise<void> {
  const problem = $('open-problem');
  problem.hidden = true;
  setStatus('loading', 'Opening the model…');
  let loaded: LoadedModel | undefined;
  try {
    const from = await source();
    const checkpoint = await checkpointOfSource(from);
    loaded = await loadCheckpoint(checkpoint, from.where);
    const name = uniqueName(state, from.where.replace(/\.zip$/i, ''));
    const summary = summaryOf(name, loaded.info);
    let kept = false;
    if (state.store) {
      try {
        state.entries.set(name, {
          summary,
          stored: { id: await state.store.put(name, checkpoint.files) },
          loaded: Promise.resolve(loaded),
        });
        kept = true;
      } catch (err) {
        if (!(err instanceof BrowserStoreError)) throw err;
        state.storeProblem = err.message;
      }
    }
    if (!kept) {
      const local: TrainedModel = { ...loaded, impl: loaded.model.config.impl as Impl, stopped: false };
      state.entries.set(name, { summary, local, loaded: Promise.resolve(local) });
    }
    renderModels(state);
    setStatus(
      kept ? 'ready' : 'error',
      kept
        ? `Opened ${name}: kept in this browser.`
        : `Opened ${name}, but it is not kept in this browser (${state.storeProblem}): it works in this tab until the page reloads.`,
    );
    await select(state, name);
  } catch (err) {
    if (loaded) disposeLoaded(loaded);
    problem.textContent = `Cannot open the model: ${firstLine(err)}`;
    problem.hidden = false;
    setStatus('error', 'Nothing was kept: the model could not be opened.');
  }
}

/** A kept row's button. */
async function act(state: PageState, action: StoredAction, name: string): Promise<void> {
  const entry = state.entries.get(name);
  const store = state.store;
  if (!entry?.stored || !store) return;
  const { id } = entry.stored;
  try {
    if (action === 'download') {
      const { meta, files } = checkpointOfFiles(await store.files(id), name);
      downloadFiles(files, `lstm-lyrics-${meta.model.impl}-${meta.model.cell}`);
    } else if (action === 'rename') {
      const wanted = prompt(`A new name for ${name}:`, name)?.trim();
      if (!wanted || wanted === name) return;
      if (wanted.length > MAX_NAME_LENGTH) throw new Error(`a name may have at most ${MAX_NAME_LENGTH} characters`);
      if (state.entries.has(wanted)) throw new Error(`a model named ${JSON.stringify(wanted)} is already listed`);
      await store.rename(id, wanted);
      state.entries.delete(name);
      state.entries.set(wanted, { ...entry, summary: { ...entry.summary, name: wanted } });
      renderModels(state);
      if (state.selected === name) await select(state, wanted);
      setStatus('ready', `Renamed ${name} to ${wanted}.`);
    } else if (action === 'delete') {
      if (!confirm(`Delete ${name} from this browser?`)) return;
      await store.delete(id);
      state.entries.delete(name);
      if (state.selected === name) unselect(state);
      renderModels(state);
      await forget(state, entry.loaded);
      setStatus('ready', `Deleted ${name} from this browser.`);
    } else {
      await resume(state, name, id);
    }
  } catch (err) {
    setStatus('error', `${action} ${name}: ${firstLine(err)}`);
  }
}

/**
 * Trains a kept model `#resume-epochs` more epochs on the train form's corpus (it must be the one
 * the model was trained on), from its saved optimizer and position, as `train --resume` does. The
 * kept model is replaced only when the run ends or is stopped; until then it is untouched.
 */
async function resume(state: PageState, name: string, id: number): Promise<void> {
  const store = state.store!;
  const trainButton = $('train-button') as HTMLButtonElement;
  const stopButton = $('stop-button') as HTMLButtonElement;
  const progress = $('resume-progress');
  if (trainButton.disabled) throw new Error('a training is running; resume when it ends');
  const typed = ($('resume-epochs') as HTMLInputElement).value;
  const more = numberOfText(typed);
  const badMore = wholeNumberProblem('more epochs on resume', more, 1, givenText(typed));
  if (badMore) throw new Error(badMore);
  const corpusRead = readCorpusBytes(state);
  // Its problem is shown beside the corpus field.
  if (!corpusRead) throw new Error("the train form's corpus is missing: resume trains on it");
  const corpus = await corpusRead;
  const checkpoint = checkpointOfFiles(await store.files(id), name);
  trainButton.disabled = true;
  stopButton.disabled = false;
  state.stopRequested = false;
  progress.dataset.state = 'running';
  progress.textContent = `${name}: resuming…`;
  try {
    const trained = await resumeTraining(checkpoint, name, corpus, more, state.backendName, {
      shouldStop: () => state.stopRequested,
      onBatch(_impl, epoch, batch, batches) {
        progress.textContent = `${name}: epoch ${epoch}/${checkpoint.meta.epoch + more}, batch ${batch}/${batches}`;
      },
    });
    // Found by id: the row may have been renamed (or deleted) while it trained.
    const [current, entry] = [...state.entries].find(([, e]) => e.stored?.id === id) ?? [name];
    const last = trained.info.history.at(-1);
    progress.textContent =
      `${current}: ${trained.stopped ? 'stopped' : 'done'} after ${trained.info.epoch} epochs` +
      (last ? `, perplexity ${last.perplexity.toFixed(3)}` : '');
    progress.dataset.state = trained.stopped ? 'stopped' : 'done';
    progress.dataset.epochs = String(trained.info.epoch);
    if (!entry) {
      // Deleted while it trained: nothing to keep.
      disposeLoaded(trained);
      return;
    }
    const old = entry.loaded;
    entry.loaded = Promise.resolve(trained);
    entry.summary = summaryOf(current, trained.info);
    try {
      await store.replace(id, await modelFiles(trained));
      setStatus('ready', `Kept ${current} in this browser after ${trained.info.epoch} epochs.`);
    } catch (err) {
      setStatus('error', `${current} trained on, but the kept copy is the one before (${firstLine(err)}): download it to keep it.`);
    }
    renderModels(state);
    if (state.selected === current) await select(state, current);
    await forget(state, old);
  } catch (err) {
    progress.dataset.state = 'error';
    throw err;
  } finally {
    trainButton.disabled = false;
    stopButton.disabled = true;
  }
}

/**
 * Frees a row's model once no row uses it, after a generation with it has seen the newer token and
 * stopped; a model trained in this page is kept while the train panel's Download still offers it
 * (releaseIfUnused), and freed when a later run replaces it there.
 */
async function forget(state: PageState, loaded: Promise<LoadedModel> | undefined): Promise<void> {
  if (!loaded) return;
  state.generationToken++;
  const model = await loaded.catch(() => undefined);
  await new Promise((resolve) => setTimeout(resolve, 0));
  if (model) releaseIfUnused(state, model);
}

function unselect(state: PageState): void {
  state.selected = undefined;
  state.generationToken++;
  $('selected').textContent = 'No model selected.';
  delete $('selected').dataset.model;
  ($('generate-button') as HTMLButtonElement).disabled = true;
}

/** `wanted` cut to MAX_NAME_LENGTH, with " (2)", " (3)"... added while a listed model has it. */
function uniqueName(state: PageState, wanted: string): string {
  const base = wanted.trim().slice(0, MAX_NAME_LENGTH) || 'a model';
  let name = base;
  for (let n = 2; state.entries.has(name); n++) name = `${base} (${n})`;
  return name;
}

function setStatus(status: string, text: string): void {
  $('store-status').dataset.state = status;
  $('store-status').textContent = text;
}
