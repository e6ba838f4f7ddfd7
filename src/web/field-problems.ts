/**
 * One job: a field's problem shown next to the field: one element per field (id `<field>-error`,
 * made by this module the first time the field has a problem, right after the field's label, so
 * a new field needs no markup of its own), the input marked `aria-invalid` and pointing to it with
 * `aria-describedby`, so a screen reader reads the problem with the field.
 */
import { $ } from './dom';

/** Shows `problem` next to field `id`, or clears what was there when it is undefined. */
export function showFieldProblem(id: string, problem: string | undefined): void {
  const field = $(id);
  const errorId = `${id}-error`;
  let message = document.getElementById(errorId);
  if (problem === undefined) {
    field.removeAttribute('aria-invalid');
    if (message) {
      message.hidden = true;
      message.textContent = '';
    }
    return;
  }
  if (!message) {
    message = document.createElement('p');
    message.id = errorId;
    message.className = 'problem field-error';
    // After the label that holds the field (the label's text stays the field's name), else the field.
    (field.closest('label') ?? field).after(message);
  }
  message.textContent = problem;
  message.hidden = false;
  field.setAttribute('aria-invalid', 'true');
  const described = (field.getAttribute('aria-describedby') ?? '').split(/\s+/).filter(Boolean);
  if (!described.includes(errorId)) field.setAttribute('aria-describedby', [...described, errorId].join(' '));
}

/** Shows each field's problem and clears the others' (`problems` by field id). */
export function showFieldProblems(ids: readonly string[], problems: Readonly<Partial<Record<string, string>>>): void {
  for (const id of ids) showFieldProblem(id, problems[id]);
}

/**
 * A field's text as typed. A number input that holds text it cannot read (Chromium empties
 * `.value` then) says so, rather than looking empty.
 */
export function fieldText(id: string): string {
  const input = $(id) as HTMLInputElement;
  return input.validity?.badInput ? 'not a number' : input.value;
}
