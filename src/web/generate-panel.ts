/**
 * One job: the generate form: read and check it, flag prefix characters the model lacks, stream
 * the generated text into #generated, and make a link that repeats a generation.
 */
import { firstLine } from '../core/errors';
import { unknownChars } from '../core/vocab';
import { generate, type GenerateRequest, type LoadedModel } from './app';
import { $ } from './dom';
import type { PageState } from './state';

class Cancelled extends Error {}

/** The form's listeners: Generate, the prefix check as one types, and Link. */
export function wireGeneratePanel(state: PageState): void {
  $('generate-form').addEventListener('submit', (e) => {
    e.preventDefault();
    void runGeneration(state, readGenerateForm());
  });
  $('prefix').addEventListener('input', () => {
    const loaded = state.selected ? state.entries.get(state.selected)?.loaded : undefined;
    void loaded?.then(checkPrefix).catch(() => undefined);
  });
  $('link-button').addEventListener('click', () => showLink(state, readGenerateForm()));
}

export function readGenerateForm(): GenerateRequest {
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
  out.dataset.model = state.selected;
  // #generated is a polite live region: busy while characters stream in, so a screen reader reads
  // the text once it is whole instead of one character at a time.
  out.setAttribute('aria-busy', 'true');
  try {
    await generate(loaded, request, (char) => {
      if (token !== state.generationToken) throw new Cancelled();
      rest.appendData(char);
    });
    out.dataset.state = 'done';
  } catch (err) {
    if (err instanceof Cancelled) return;
    showGenerated('error', firstLine(err));
  } finally {
    // Unless a newer generation has taken #generated over (it replaced the prefix span).
    if (out.firstChild === prefix) out.removeAttribute('aria-busy');
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
