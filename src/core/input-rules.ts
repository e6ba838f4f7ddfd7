/**
 * The rules for numbers a person types, one copy for every shell: the CLI checks its flags with
 * them (naming a setting `--hidden`), the page its fields and link parameters (naming it "hidden
 * units"). Each returns what is wrong in one line, or undefined; the caller decides how to report
 * it (the CLI throws a UsageError, the page shows the line next to the field).
 *
 * `given` is what to show after "got": the CLI leaves it out (the parsed number is shown, NaN as
 * "not a number"), the page passes the text that was typed or linked (see givenText).
 */

/** How a rejected number is shown: NaN (what `--epochs abc` parses to) as words. */
function shown(value: number): string {
  return Number.isNaN(value) ? 'not a number' : String(value);
}

/** A whole number >= min (`--epochs 2.5`, `--epochs abc` are wrong). */
export function wholeNumberProblem(name: string, value: number, min = 1, given?: string): string | undefined {
  if (Number.isInteger(value) && value >= min) return undefined;
  return `${name} must be a whole number >= ${min}, got ${given ?? shown(value)}`;
}

/**
 * A seed: a whole number from 0 to 2^53 - 1 (beyond that, distinct seeds are the same double).
 * abc, 1.5, NaN or -1 are wrong, never silently some other seed.
 */
export function seedProblem(name: string, value: number, given?: string): string | undefined {
  if (Number.isSafeInteger(value) && value >= 0) return undefined;
  return `${name} must be a whole number >= 0, got ${given ?? shown(value)}`;
}

/** A finite number > 0 (a learning rate, a clip norm). NaN is shown as the CLI always showed it. */
export function positiveNumberProblem(name: string, value: number, given?: string): string | undefined {
  if (Number.isFinite(value) && value > 0) return undefined;
  return `${name} must be a number > 0, got ${given ?? value}`;
}

/** A finite number >= 0 (a temperature). */
export function nonNegativeProblem(name: string, value: number, given?: string): string | undefined {
  if (Number.isFinite(value) && value >= 0) return undefined;
  return `${name} must be a number >= 0, got ${given ?? value}`;
}

/** The longest typed text a message repeats: a pasted page of text in a number field stays one short line. */
export const MAX_GIVEN_CHARS = 24;

/**
 * Typed or linked text as a message shows it after "got": trimmed, "nothing" when empty, cut at
 * MAX_GIVEN_CHARS characters.
 */
export function givenText(text: string): string {
  const chars = Array.from(text.trim());
  if (chars.length === 0) return 'nothing';
  return chars.length > MAX_GIVEN_CHARS ? `${chars.slice(0, MAX_GIVEN_CHARS).join('')}…` : chars.join('');
}

/** Typed or linked text as a number: empty or not numeric (`abc`) -> NaN, which every rule refuses. */
export function numberOfText(text: string): number {
  const trimmed = text.trim();
  return trimmed === '' ? Number.NaN : Number(trimmed);
}
