/**
 * One job: the generate form: read and check it (and a link's parameters) with the CLI's rules,
 * each problem next to its field; flag prefix characters the model lacks; stream the generated
 * text into #generated, with Stop; and make a link that repeats a generation.
 */
import { firstLine } from '../core/errors';
import { unknownChars } from '../core/vocab';
import { generate, type GenerateRequest, type LoadedModel } from './app';
import { $ } from './dom';
import { fieldText, showFieldProblems } from './field-problems';
import { checkGenerateInputs, GENERATE_FIELDS, type GenerateField, MAX_PAGE_LENGTH } from './inputs';
import type { PageState } from './state';

/** A newer generation or selection took over: this one ends without a word. */
class Cancelled extends Error {}
/** Stop was pressed: this one ends, keeping its text, and says so. */
class Stopped extends Error {}

/** The form's listeners: Generate, Stop, each field's check as one types, and Link. */
export function wireGeneratePanel(state: PageState): void {
  $('generate-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const request = readGenerateForm();
    if (request) void runGeneration(state, request);
  });
  $('stop-generate-button').addEventListener('click', () => {
    state.stopGeneration = state.generating;
    ($('stop-generate-button') as HTMLButtonElement).disabled = true;
  });
  for (const id of GENERATE_FIELDS) $(id).addEventListener('input', () => void readGenerateForm());
  $('prefix').addEventListener('input', () => {
    const loaded = state.selected ? state.entries.get(state.selected)?.loaded : undefined;
    void loaded?.then(checkPrefix).catch(() => undefined);
  });
  $('length').setAttribute('max', String(MAX_PAGE_LENGTH));
  $('link-button').addEventListener('click', () => {
    const request = readGenerateForm();
    if (request) showLink(state, request);
  });
}

/** The form checked: the request, or undefined with every problem shown next to its field. */
export function readGenerateForm(): GenerateRequest | undefined {
  const text = Object.fromEntries(GENERATE_FIELDS.map((id) => [id, id === 'prefix' ? ($(id) as HTMLInputElement).value : fieldText(id)]));
  const result = checked(text as Record<GenerateField, string>);
  return result.ok ? result.value : undefined;
}

/**
 * A link's generation settings: each parameter the link gives (the rest as the form has them),
 * checked as the form is. The valid ones go into the form; a wrong one shows its problem next to
 * its field, and then nothing is generated (#generated says where to look).
 */
export function readLinkRequest(params: URLSearchParams): GenerateRequest | undefined {
  const text = {} as Record<GenerateField, string>;
  for (const id of GENERATE_FIELDS) {
    const input = $(id) as HTMLInputElement;
    text[id] = params.get(id) ?? (id === 'prefix' ? input.value : fieldText(id));
    // A number input cannot hold text like `abc` (it would read as empty, the default): the
    // message says what the link gave instead.
    input.value = text[id];
  }
  const result = checked(text);
  if (!result.ok) {
    const wrong = GENERATE_FIELDS.filter((id) => result.problems[id] !== undefined);
    showGenerated(
      'error',
      `Nothing generated: the link's ${wrong.join(', ')} ${wrong.length === 1 ? 'is' : 'are'} not valid (see beside ${wrong.length === 1 ? 'it' : 'them'}).`,
    );
  }
  return result.ok ? result.value : undefined;
}

/** The fields checked, each problem shown beside its field (and the others' cleared). */
function checked(text: Record<GenerateField, string>): ReturnType<typeof checkGenerateInputs> {
  const result = checkGenerateInputs(text);
  showFieldProblems(GENERATE_FIELDS, result.ok ? {} : result.problems);
  return result;
}

/** Names, inline, the prefix characters the model's vocabulary lacks; true if there are none. */
export function checkPrefix(loaded: LoadedModel): boolean {
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

export async function runGeneration(state: PageState, request: GenerateRequest): Promise<void> {
  const token = ++state.generationToken;
  const entry = state.selected ? state.entries.get(state.selected) : undefined;
  if (!entry?.loaded) return showGenerated('error', 'pick a model first');
  const loaded = await entry.loaded;
  if (!checkPrefix(loaded)) return showGenerated('error', '');
  if (token !== state.generationToken) return;
  const out = $('generated');
  const prefix = document.createElement('span');
  prefix.className = 'prefix';
  prefix.textContent = request.prefix;
  const rest = document.createTextNode('');
  out.replaceChildren(prefix, rest);
  out.dataset.state = 'running';
  out.dataset.model = state.selected;
  // #generated is a polite live region: busy while characters stream in, so a screen reader reads
  // the text once it is whole instead of one character at a time.
  out.setAttribute('aria-busy', 'true');
  const status = $('generate-status');
  status.textContent = '';
  const stop = $('stop-generate-button') as HTMLButtonElement;
  state.generating = token;
  stop.disabled = false;
  let written = 0;
  try {
    // The sampler gives the event loop a turn every few characters, so a click on Stop is seen
    // within milliseconds; throwing from here ends it and frees its tensors.
    await generate(loaded, request, (char) => {
      if (token !== state.generationToken) throw new Cancelled();
      if (state.stopGeneration === token) throw new Stopped();
      rest.appendData(char);
      written++;
    });
    out.dataset.state = 'done';
  } catch (err) {
    if (err instanceof Cancelled) return;
    if (err instanceof Stopped) {
      out.dataset.state = 'stopped';
      status.textContent = `Stopped after ${written.toLocaleString('en')} of ${request.length.toLocaleString('en')} characters; the text so far stays.`;
      return;
    }
    showGenerated('error', firstLine(err));
  } finally {
    // Unless a newer generation has taken #generated over (it replaced the prefix span).
    if (out.firstChild === prefix) out.removeAttribute('aria-busy');
    if (state.generating === token) {
      state.generating = undefined;
      stop.disabled = true;
    }
  }
}

export function showGenerated(status: string, message: string): void {
  const out = $('generated');
  out.textContent = message;
  out.dataset.state = status;
  out.removeAttribute('aria-busy');
}

function showLink(state: PageState, request: GenerateRequest): void {
  const { selected } = state;
  if (!selected) return;
  const params = new URLSearchParams({
    model: selected,
    prefix: request.prefix,
    length: String(request.length),
    temperature: String(request.temperature),
    'top-k': String(request.topK),
  });
  if (request.seed !== undefined) params.set('seed', String(request.seed));
  const url = `${location.origin}${location.pathname}?${params}`;
  history.replaceState(null, '', url);
  void navigator.clipboard?.writeText(url).catch(() => undefined);
  $('selected').textContent = `Link (in the address bar, and copied if the browser allowed it): ${url}`;
}
