/**
 * A Markdown table padded so it also reads as plain text in a terminal: what `rasa-gateway plan`
 * prints and what the bench writes into bench/results/*.md (bench/lib/report.ts re-exports it).
 * The first column is left-aligned and the others right-aligned unless `align` says otherwise.
 */
export type Align = 'l' | 'r';

export interface Table {
  readonly header: readonly string[];
  readonly rows: readonly (readonly string[])[];
  readonly align?: readonly Align[];
}

export function markdownTable(t: Table): string {
  const widths = t.header.map((h, c) => Math.max(h.length, ...t.rows.map((r) => (r[c] ?? '').length), 3));
  const al = (c: number): Align => t.align?.[c] ?? (c === 0 ? 'l' : 'r');
  const cell = (text: string, c: number) => (al(c) === 'l' ? text.padEnd(widths[c] as number) : text.padStart(widths[c] as number));
  const line = (cells: readonly string[]) => `| ${cells.map((x, c) => cell(x, c)).join(' | ')} |`;
  const rule = `|${widths.map((w, c) => (al(c) === 'l' ? `:${'-'.repeat(w + 1)}` : `${'-'.repeat(w + 1)}:`)).join('|')}|`;
  return [line(t.header), rule, ...t.rows.map((r) => line(t.header.map((_, c) => r[c] ?? '')))].join('\n');
}
