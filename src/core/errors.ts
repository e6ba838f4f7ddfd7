/**
 * Errors the CLI reports as one line, each mapped to a documented exit code. Anything else that
 * escapes is a bug or a runtime failure (exit 1).
 */

/** Bad flags or bad input (a missing corpus, a prefix outside the vocabulary...): exit 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** A regression gate (--max-perplexity) failed: exit 3. */
export class GateError extends Error {
  override readonly name = 'GateError';
}

/** Training was stopped by SIGINT/SIGTERM after saving a checkpoint: exit 130. */
export class InterruptedError extends Error {
  override readonly name = 'InterruptedError';
}

/** The first line of an error's message (or of the thing thrown), for one-line reports. */
export function firstLine(err: unknown): string {
  return String((err as Error)?.message ?? err).split('\n')[0];
}

export const EXIT = { ok: 0, failure: 1, usage: 2, gate: 3, interrupted: 130 } as const;

export function exitCodeOf(err: unknown): number {
  if (err instanceof UsageError) return EXIT.usage;
  if (err instanceof GateError) return EXIT.gate;
  if (err instanceof InterruptedError) return EXIT.interrupted;
  return EXIT.failure;
}
