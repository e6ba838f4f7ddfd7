/**
 * One job: the models table (#models): its rows, and picking a row, which loads that model (once),
 * readies the generate form for it and draws its curves.
 */
import { firstLine } from '../core/errors';
import { loadModel, type LoadedModel } from './app';
import { drawSelectedCurves } from './charts';
import { $ } from './dom';
import { download } from './download';
import { checkPrefix } from './generate-panel';
import { describeShape } from './settings';
import type { PageState } from './state';

export function renderModels(state: PageState): void {
  const body = $('models').querySelector('tbody')!;
  body.replaceChildren();
  for (const { summary: m, local } of state.entries.values()) {
    const row = document.createElement('tr');
    row.dataset.name = m.name;
    if (!m.readable) {
      row.className = 'unreadable';
      row.append(cell(m.name), cell(`unreadable: ${m.reason ?? 'unknown reason'}`, 8));
    } else {
      row.append(
        cell(m.name),
        cell(m.impl ?? ''),
        cell(describeShape(m)),
        cell(String(m.hidden), 1, true),
        cell(String(m.vocabSize), 1, true),
        cell(String(m.epochs), 1, true),
        cell(
          m.perplexity == null
            ? '–'
            : m.perplexity.toFixed(3) + (m.heldOutPerplexity == null ? '' : ` (held-out ${m.heldOutPerplexity.toFixed(3)})`),
          1,
          true,
        ),
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
      row.setAttribute('aria-selected', String(m.name === state.selected));
      row.addEventListener('click', () => void select(state, m.name));
      row.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') void select(state, m.name);
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
export async function select(state: PageState, name: string): Promise<boolean> {
  const entry = state.entries.get(name);
  if (!entry?.summary.readable) return false;
  state.selected = name;
  state.generationToken++;
  for (const row of $('models').querySelectorAll('tbody tr'))
    row.setAttribute('aria-selected', String((row as HTMLElement).dataset.name === name));
  ($('generate-button') as HTMLButtonElement).disabled = true;
  $('selected').textContent = `Loading ${name}…`;
  entry.loaded ??= entry.local ? Promise.resolve(entry.local) : loadModel(name);
  let loaded: LoadedModel;
  try {
    loaded = await entry.loaded;
  } catch (err) {
    entry.loaded = undefined;
    if (state.selected === name) $('selected').textContent = `Cannot load ${name}: ${firstLine(err)}`;
    return false;
  }
  if (state.selected !== name) return false;
  const m = entry.summary;
  $('selected').textContent =
    `${name}: ${m.impl} ${describeShape(m)}, ${m.hidden} hidden units, ${m.vocabSize} characters, ${m.epochs} epochs${m.perplexity == null ? '' : `, perplexity ${m.perplexity.toFixed(3)}`}.`;
  $('selected').dataset.model = name;
  ($('generate-button') as HTMLButtonElement).disabled = false;
  ($('link-button') as HTMLButtonElement).disabled = !!entry.local;
  checkPrefix(loaded);
  await drawSelectedCurves(state, name);
  return true;
}
