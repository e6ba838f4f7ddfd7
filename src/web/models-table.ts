/**
 * One job: the models table (#models): its rows, and picking a row, which loads that model (once),
 * readies the generate form for it and draws its curves.
 */
import { firstLine } from '../core/errors';
import { loadModel, loadStoredModel, type LoadedModel } from './app';
import { drawSelectedCurves } from './charts';
import { $ } from './dom';
import { download } from './download';
import { checkPrefix } from './generate-panel';
import { describeShape } from './settings';
import type { Entry, PageState } from './state';

/** What a kept model's row offers; store-panel.ts handles the clicks (one listener on the table). */
export const STORED_ACTIONS = ['download', 'rename', 'delete', 'resume'] as const;
export type StoredAction = (typeof STORED_ACTIONS)[number];

/** The table's groups after the server's models, in order: [data-group, heading]. */
const GROUPS = {
  browser: 'this browser: kept across reloads',
  tab: 'this tab only: gone when the page reloads (download to keep it)',
} as const;

function groupOf(entry: Entry): keyof typeof GROUPS | undefined {
  return entry.stored ? 'browser' : entry.local ? 'tab' : undefined;
}

/**
 * The server's models, then those kept in this browser, then those only in this tab (trained
 * here but not kept: the browser refused them), each later group under a heading row.
 */
export function renderModels(state: PageState): void {
  const body = $('models').querySelector('tbody')!;
  body.replaceChildren();
  const order = [undefined, ...Object.keys(GROUPS)];
  const entries = [...state.entries.values()].sort((a, b) => order.indexOf(groupOf(a)) - order.indexOf(groupOf(b)));
  let lastGroup: string | undefined;
  for (const entry of entries) {
    const { summary: m, local, stored } = entry;
    const group = groupOf(entry);
    if (group && group !== lastGroup) body.append(groupRow(group, GROUPS[group]));
    lastGroup = group;
    const row = document.createElement('tr');
    row.dataset.name = m.name;
    if (group) row.dataset.group = group;
    if (!m.readable) {
      row.className = 'unreadable';
      row.append(nameCell(m.name), cell(`unreadable: ${m.reason ?? 'unknown reason'}`, 8));
      // A kept model that no longer reads can still be deleted.
      if (stored) row.lastElementChild!.append(' ', actionButton('delete'));
    } else {
      row.append(
        nameCell(m.name),
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
        Object.assign(cell(m.corpus ?? ''), { className: 'corpus' }),
        cell(m.savedAt ? m.savedAt.slice(0, 16).replace('T', ' ') : ''),
      );
      if (stored) {
        for (const action of STORED_ACTIONS) row.lastElementChild!.append(' ', actionButton(action, m.name));
      } else if (local) {
        const button = document.createElement('button');
        button.type = 'button';
        button.textContent = 'Download';
        button.setAttribute('aria-label', `Download ${m.name}`);
        button.className = 'download';
        button.addEventListener('click', (e) => {
          e.stopPropagation();
          void download(local);
        });
        row.lastElementChild!.append(' ', button);
      }
      row.tabIndex = -1;
      row.setAttribute('aria-selected', String(m.name === state.selected));
      row.addEventListener('click', (e) => {
        if (!(e.target as Element).closest('button')) void select(state, m.name);
      });
      row.addEventListener('keydown', (e) => {
        if (e.target !== row) return; // a key on a button in the row is the button's
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault(); // Space would also scroll the table's box
          void select(state, m.name);
        } else if (moveRowFocus(row, e.key)) {
          e.preventDefault();
        }
      });
    }
    body.append(row);
  }
  rovingTabStop();
}

/**
 * The table is a grid of selectable rows (role=grid in index.html): one Tab stop, the selected row
 * (or the first), so Tab passes a hundred models in one step; the arrows, Home and End move
 * between rows, and Enter or Space selects.
 */
function selectableRows(): HTMLElement[] {
  return [...$('models').querySelectorAll<HTMLElement>('tbody tr[aria-selected]')];
}

function rovingTabStop(focused?: HTMLElement): void {
  const rows = selectableRows();
  const stop = focused ?? rows.find((r) => r.getAttribute('aria-selected') === 'true') ?? rows[0];
  for (const r of rows) r.tabIndex = r === stop ? 0 : -1;
}

/** Moves the focus for ArrowUp/ArrowDown/Home/End; false for any other key. */
function moveRowFocus(row: HTMLElement, key: string): boolean {
  const rows = selectableRows();
  const at = rows.indexOf(row);
  const to = { ArrowUp: at - 1, ArrowDown: at + 1, Home: 0, End: rows.length - 1 }[key];
  if (to === undefined) return false;
  const target = rows[Math.max(0, Math.min(rows.length - 1, to))];
  rovingTabStop(target);
  target.focus();
  return true;
}

/** The model's name, free to wrap after each `/` (runs/compare/scratch) when its column is narrow. */
function nameCell(name: string): HTMLTableCellElement {
  const td = document.createElement('td');
  name.split('/').forEach((part, i) => {
    if (i > 0) td.append('/', document.createElement('wbr'));
    td.append(part);
  });
  return td;
}

/** A kept row's button; its accessible name says which model ("Delete runs/gru"), as a screen reader lists every row's buttons together. */
function actionButton(action: StoredAction, model: string): HTMLButtonElement {
  const button = document.createElement('button');
  button.type = 'button';
  button.textContent = action.charAt(0).toUpperCase() + action.slice(1);
  button.setAttribute('aria-label', `${button.textContent} ${model}`);
  button.className = 'row-action';
  button.dataset.action = action;
  return button;
}

function groupRow(group: string, heading: string): HTMLTableRowElement {
  const row = document.createElement('tr');
  row.className = 'group';
  row.dataset.group = group;
  const th = document.createElement('th');
  th.scope = 'colgroup';
  th.colSpan = 9;
  th.textContent = heading;
  row.append(th);
  return row;
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
  for (const row of selectableRows()) row.setAttribute('aria-selected', String(row.dataset.name === name));
  rovingTabStop(selectableRows().find((r) => r === document.activeElement));
  ($('generate-button') as HTMLButtonElement).disabled = true;
  $('selected').textContent = `Loading ${name}…`;
  entry.loaded ??= entry.local
    ? Promise.resolve(entry.local)
    : entry.stored && state.store
      ? loadStoredModel(state.store, entry.stored.id, name)
      : loadModel(name);
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
  // A link opens a model the server lists; one in this browser or this tab is nowhere else.
  ($('link-button') as HTMLButtonElement).disabled = !!entry.local || !!entry.stored;
  checkPrefix(loaded);
  await drawSelectedCurves(state, name);
  return true;
}
