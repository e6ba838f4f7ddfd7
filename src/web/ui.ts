/**
 * One job: start the page: create its one state object, wire the panels (models-table.ts,
 * generate-panel.ts, train-panel.ts, charts.ts) to it, start the backend, list the models, and
 * follow a link's generation. The UI modules never touch a tensor; app.ts and the core never touch
 * the DOM.
 */
import { firstLine } from '../core/errors';
import { fetchModelList, startBackend } from './app';
import { $ } from './dom';
import { readLinkRequest, runGeneration, showGenerated, wireGeneratePanel } from './generate-panel';
import { renderModels, select } from './models-table';
import { createState } from './state';
import { openStore, wireStorePanel } from './store-panel';
import { fillTrainDefaults, updateTrainEstimate, wireTrainPanel } from './train-panel';

export async function start(): Promise<void> {
  const params = new URLSearchParams(location.search);
  const state = createState();
  const { entries } = state;
  fillTrainDefaults();
  wireGeneratePanel(state);
  wireTrainPanel(state);
  wireStorePanel(state);

  try {
    const backend = await startBackend(params.get('backend') ?? undefined, params.get('accel') === 'off' ? 'off' : 'on');
    state.backendName = backend.name;
    setStatus($('backend'), 'ready', `TF.js backend: ${backend.name}. ${capitalise(backend.why)}.`);
    $('backend').dataset.backend = backend.name;
  } catch (err) {
    setStatus($('backend'), 'error', `TF.js backend: none started (${firstLine(err)})`);
    return;
  }
  ($('train-button') as HTMLButtonElement).disabled = false;
  updateTrainEstimate(state);

  try {
    for (const summary of await fetchModelList()) entries.set(summary.name, { summary });
    renderModels(state);
    const readable = [...entries.values()].filter((e) => e.summary.readable).length;
    setStatus(
      $('models-status'),
      'ready',
      entries.size === 0
        ? 'No saved models yet: train one with lstm-lyrics train, or below.'
        : `${readable} readable of ${entries.size} listed.`,
    );
  } catch (err) {
    setStatus($('models-status'), 'error', `Cannot read the model list: ${firstLine(err)}`);
  }
  // After the server's list, so the server's models keep their names and kept ones come after.
  await openStore(state);

  // A link carries a generation: ?model=NAME&prefix=...&length=...&temperature=...&top-k=...&seed=...
  const model = params.get('model');
  if (model !== null) {
    // Checked first, with the form's rules: a wrong parameter is shown beside its field and nothing runs.
    const request = readLinkRequest(params);
    if (!entries.has(model)) {
      showGenerated('error', `no model named ${JSON.stringify(model)} in the list`);
      return;
    }
    if (!request) {
      await select(state, model);
      return;
    }
    if (await select(state, model)) await runGeneration(state, request);
    else showGenerated('error', `cannot generate with ${model}: ${entries.get(model)?.summary.reason ?? $('selected').textContent}`);
  } else {
    const first = [...entries.values()].find((e) => e.summary.readable);
    if (first) await select(state, first.summary.name);
  }
}

function setStatus(el: HTMLElement, status: string, text: string): void {
  el.dataset.state = status;
  el.textContent = text;
}

function capitalise(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
