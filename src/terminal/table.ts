/** Plain-text tables for the terminal (compare's side-by-side table, bench's results). */

/** Columns a string takes in a terminal: CJK and full-width characters take two. */
export function displayWidth(text: string): number {
  let width = 0;
  for (const c of text) width += WIDE.test(c) ? 2 : 1;
  return width;
}

const WIDE =
  /[\u1100-\u115F\u2E80-\u303E\u3041-\u33FF\u3400-\u4DBF\u4E00-\u9FFF\uA000-\uA4CF\uAC00-\uD7A3\uF900-\uFAFF\uFE30-\uFE4F\uFF00-\uFF60\uFFE0-\uFFE6\u{20000}-\u{3FFFD}]/u;

/** `text` padded with spaces to `width` terminal columns. */
export function pad(text: string, width: number): string {
  return text + ' '.repeat(Math.max(0, width - displayWidth(text)));
}

/** Rows as aligned columns, two spaces apart; `header` (if given) is underlined with dashes. Text
 *  columns are left-aligned, numeric ones right-aligned. */
export function formatTable(rows: readonly (readonly string[])[], header?: readonly string[]): string[] {
  const all = header ? [header, ...rows] : rows;
  const columns = Math.max(0, ...all.map((r) => r.length));
  const widths = Array.from({ length: columns }, (_, i) => Math.max(...all.map((r) => displayWidth(r[i] ?? ''))));
  const numeric = widths.map((_, i) => header !== undefined && rows.length > 0 && rows.every((r) => /^[-+\d.,x]+$/.test(r[i] ?? '')));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => (numeric[i] ? ' '.repeat(Math.max(0, widths[i] - displayWidth(c))) + c : pad(c, widths[i])))
      .join('  ')
      .trimEnd();
  return header ? [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)] : rows.map(line);
}
