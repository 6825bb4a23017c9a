/**
 * `--baseline DIR`: this build against another, already built checkout of the project, in the same run.
 * Every gateway row gets a twin that runs the baseline's dist/src/main.js with the same config (id
 * suffix `-baseline`, label suffix ` [baseline]`), right after it; in odd repeats the twin goes first,
 * so drift of a shared machine hits both builds alike. The comparison is one table for any burst
 * scenario: per (shape, burst, row), this build's p50, p95, max and mean over the baseline's
 * (the burst scenarios' headline figures are p95 and max, against the ideal, which cancels here),
 * with "no worse" meaning p95 and max at most 1.05x.
 */
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { MatrixResult } from './matrix.js';
import { markdownTable, ratio, type Table } from './report.js';
import type { Summary } from './stats.js';
import type { Row } from './targets.js';

export const BASELINE_SUFFIX = '-baseline';
/** p95 and max of this build at most this many times the baseline's count as no worse. */
export const NO_WORSE = 1.05;

/** The baseline's entry script; throws when the checkout is not built. */
export function baselineMain(dir: string): string {
  const main = join(resolve(dir), 'dist', 'src', 'main.js');
  if (!existsSync(main)) throw new Error(`${main} is missing: build the baseline checkout first (npx tsc -p tsconfig.json there)`);
  return main;
}

/** Each gateway row followed by its twin on the baseline build; other rows as they are. */
export function withBaseline(rows: readonly Row[], main: string): Row[] {
  return rows.flatMap((r) =>
    r.target.kind === 'gateway'
      ? [r, { ...r, id: `${r.id}${BASELINE_SUFFIX}`, label: `${r.label} [baseline]`, target: { ...r.target, main }, baselineOf: r.id }]
      : [r],
  );
}

/** The rows in the order a repeat runs them: in odd repeats each baseline twin swaps places with its row. */
export function repeatOrder(rows: readonly Row[], repeat: number): Row[] {
  const out = [...rows];
  if (repeat % 2 === 0) return out;
  for (let i = 0; i + 1 < out.length; i++) {
    if (out[i + 1]?.baselineOf === out[i]?.id) {
      [out[i], out[i + 1]] = [out[i + 1] as Row, out[i] as Row];
      i++;
    }
  }
  return out;
}

const FIGURES = ['p50', 'p95', 'max', 'mean'] as const satisfies readonly (keyof Summary)[];

export interface PairComparison {
  readonly row: string;
  readonly shape: string;
  readonly burst: number;
  /** this / baseline per figure; null where either side has no number. */
  readonly ratios: Record<(typeof FIGURES)[number], number | null>;
  readonly errors: { readonly thisBuild: number; readonly baseline: number };
  /** p95 and max ratios at most NO_WORSE; null when a side did not run. */
  readonly noWorse: boolean | null;
  readonly note?: string;
}

function errorsOf(result: MatrixResult, row: string, shape: string, burst: number): number {
  return (result.get(row, shape, burst)?.runs ?? []).reduce((n, x) => n + x.errors, 0);
}

/** Every (row, shape, burst) that both builds ran, in the order of the result's cells. */
export function comparePairs(result: MatrixResult, rows: readonly Row[]): PairComparison[] {
  const out: PairComparison[] = [];
  for (const twin of rows) {
    if (!twin.baselineOf) continue;
    for (const b of result.cells.filter((c) => c.row === twin.id)) {
      const a = result.get(twin.baselineOf, b.shape, b.burst);
      const mine = a?.status === 'ok' ? a.summary : undefined;
      const theirs = b.status === 'ok' ? b.summary : undefined;
      const r = (k: (typeof FIGURES)[number]) => (mine && theirs && theirs[k] > 0 && Number.isFinite(mine[k]) ? mine[k] / theirs[k] : null);
      const ratios = Object.fromEntries(FIGURES.map((k) => [k, r(k)])) as PairComparison['ratios'];
      const noWorse = ratios.p95 === null || ratios.max === null ? null : ratios.p95 <= NO_WORSE && ratios.max <= NO_WORSE;
      // The reason itself is in the cell notes under the scenario's table, once per row.
      const note = [a && a.status !== 'ok' ? `this build ${a.status}` : '', b.status !== 'ok' ? `baseline ${b.status}` : ''].filter(Boolean).join(', ');
      out.push({
        row: twin.baselineOf,
        shape: b.shape,
        burst: b.burst,
        ratios,
        errors: { thisBuild: errorsOf(result, twin.baselineOf, b.shape, b.burst), baseline: errorsOf(result, twin.id, b.shape, b.burst) },
        noWorse,
        ...(note ? { note } : {}),
      });
    }
  }
  return out;
}

function x(v: number | null): string {
  return v === null ? '-' : ratio(v, 1);
}

/** Pairs of which one side could not run at all (n/a: settings a build does not accept): listed once per row, not per cell. */
const notRun = (p: PairComparison) => p.note?.includes('n/a') === true;

export function comparisonTable(all: readonly PairComparison[], rows: readonly Row[]): Table {
  const label = new Map(rows.map((r) => [r.id, r.label]));
  const pairs = all.filter((p) => !notRun(p));
  return {
    header: ['shape', 'burst', 'row', ...FIGURES.map((k) => `${k} this/base`), 'errors this/base', 'no worse'],
    rows: pairs.map((p) => [
      p.shape,
      String(p.burst),
      label.get(p.row) ?? p.row,
      ...FIGURES.map((k) => x(p.ratios[k])),
      `${p.errors.thisBuild}/${p.errors.baseline}`,
      p.noWorse === null ? (p.note ?? 'n/a') : p.noWorse ? 'yes' : 'WORSE',
    ]),
    align: ['l', 'r', 'l', 'r', 'r', 'r', 'r', 'r', 'l'],
  };
}

function geomean(values: readonly (number | null)[]): number | null {
  const v = values.filter((n): n is number => n !== null && n > 0);
  return v.length === 0 ? null : Math.exp(v.reduce((s, n) => s + Math.log(n), 0) / v.length);
}

/** One line: how many cells are no worse, the geometric means, and the worse cells. */
export function comparisonSummary(pairs: readonly PairComparison[], rows: readonly Row[]): string {
  const label = new Map(rows.map((r) => [r.id, r.label]));
  const judged = pairs.filter((p) => p.noWorse !== null);
  const worse = judged.filter((p) => !p.noWorse);
  const gm = (k: (typeof FIGURES)[number]) => x(geomean(judged.map((p) => p.ratios[k])));
  const list = worse.map((p) => `${label.get(p.row) ?? p.row} (${p.shape}, burst ${p.burst}: p95 ${x(p.ratios.p95)}, max ${x(p.ratios.max)})`);
  const skipped = [...new Set(pairs.filter(notRun).map((p) => `${label.get(p.row) ?? p.row} (${p.note})`))];
  return (
    `${judged.length - worse.length} of ${judged.length} cells no worse (p95 and max <= ${NO_WORSE}x the baseline); ` +
    `geometric mean this/baseline: p50 ${gm('p50')}, p95 ${gm('p95')}, max ${gm('max')}, mean ${gm('mean')}.` +
    (list.length > 0 ? ` Worse: ${list.join('; ')}.` : '') +
    (skipped.length > 0 ? ` Not compared: ${skipped.join('; ')}.` : '')
  );
}

/** The Markdown section "this build vs baseline"; nothing when the run had no baseline. */
export function baselineSection(result: MatrixResult, rows: readonly Row[]): string[] {
  if (!result.baseline) return [];
  const pairs = comparePairs(result, rows);
  return [
    '## This build vs baseline',
    '',
    `Baseline: \`${result.baseline}\` (its dist/src/main.js, same configs), each gateway row run right beside its twin ` +
      '(alternating which goes first per repeat). Ratios are this build / baseline of the cell medians; only ratios within this run mean anything.',
    '',
    markdownTable(comparisonTable(pairs, rows)),
    '',
    comparisonSummary(pairs, rows),
    '',
  ];
}
