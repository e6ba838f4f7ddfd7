/** Numbers as people read them, for every shell (terminal, errors, the page). */

/** 12345 -> "12,345" (rounded to a whole number). */
export function count(n: number): string {
  return Math.round(n).toLocaleString('en');
}
