/**
 * Tables, charts and the JSON document for burst-matrix results, shared by the burst, study, mixed
 * and replicas scenarios: p50 / p95 / max per strategy and burst size with ratios to the ideal
 * schedule, bars per strategy (p95 with a whisker to the max, the ideal dashed), every run, each
 * pod's peak load per row, and with `--baseline` the comparison with the baseline build.
 */
import { baselineSection, comparePairs } from './baseline.js';
import type { MatrixPlan, MatrixResult, PreparedMatrix } from './matrix.js';
import { hbarChart, type Chart } from './plot.js';
import type { Shape } from './pods.js';
import { machine, markdownTable, ratio, sec, type Table } from './report.js';
import type { Row } from './targets.js';

export const burstColors = ['#9ecae1', '#4292c6', '#08519c', '#08306b'];

/** How every measured row starts, for the Markdown files (see matrix.ts: warm-up and `priming`). */
export const methodNote =
  "Each measured row starts fresh, gets 400 instant requests (connections, JIT) and one unmeasured burst of 2x the cluster's " +
  "slots, so rows that learn from latency start from what a running gateway knows; adaptive-slot rows (`slots auto`) get two " +
  "unmeasured bursts of 4 s of the cluster's capacity instead (learning a pod's slots takes saturating it for a few service " +
  'times, and a completion-aware pool rarely saturates a slow pod), except rows marked cold. Then the bursts in order.';

/** The Markdown lines every burst scenario shows first: its command, how rows start, the table, and the baseline comparison if any. */
export function measuredSection(command: string, table: Table, result: MatrixResult, rows: readonly Row[]): string[] {
  const baseline = baselineSection(result, rows);
  return [`Command: \`${command}\``, '', methodNote, '', markdownTable(table), '', ...cellNotes(result, rows), ...(baseline.length > 0 ? ['', ...baseline] : [])];
}

/**
 * Per measured row and shape: the most requests each pod held at once over the row's runs (warm-up and
 * priming included), against the pod's slots, and whether any pod was given more than its slots.
 */
export function podPeakTable(result: MatrixResult, rows: readonly Row[], shapes: readonly Shape[]): Table {
  const out: string[][] = [];
  for (const s of shapes) {
    for (const r of rows) {
      const runs = result.peaks[`${r.id}|${s.id}`];
      if (!runs || runs.length === 0) continue;
      const peak = s.pods.map((_, i) => Math.max(...runs.map((x) => x[i] ?? 0)));
      const over = s.pods.filter((p, i) => (peak[i] as number) > p.slots).map((p) => p.name);
      out.push([s.id, r.label, s.pods.map((p, i) => `${peak[i]}/${p.slots}`).join(' '), over.length === 0 ? 'no' : `YES: ${over.join(', ')}`]);
    }
  }
  return { header: ['shape', 'row', 'peak/slots per pod', 'more than its slots'], rows: out, align: ['l', 'l', 'l', 'l'] };
}

/** One line per (burst, strategy): p50, p95, max in seconds and p95, max as ratios to `idealId`. */
export function latencyTable(result: MatrixResult, rows: readonly Row[], s: Shape, bursts: readonly number[], idealId = 'ideal'): Table {
  const out: string[][] = [];
  for (const b of bursts) {
    const ideal = result.summary(idealId, s.id, b);
    for (const r of rows) {
      const c = result.get(r.id, s.id, b);
      const m = c?.status === 'ok' ? c.summary : undefined;
      const label = `${r.label}${c?.status === 'ok' && c.note ? ' *' : ''}`;
      const p50 = c && c.status !== 'ok' ? c.status : sec(m?.p50);
      out.push([String(b), label, p50, sec(m?.p95), sec(m?.max), ratio(m?.p95, ideal?.p95), ratio(m?.max, ideal?.max)]);
    }
  }
  return { header: ['burst', 'strategy', 'p50 s', 'p95 s', 'max s', 'p95/ideal', 'max/ideal'], rows: out, align: ['r', 'l', 'r', 'r', 'r', 'r', 'r'] };
}

/** Notes under a table: cells with failed requests or that could not run. */
export function cellNotes(result: MatrixResult, rows: readonly Row[]): string[] {
  const label = new Map(rows.map((r) => [r.id, r.label]));
  const notes = new Set<string>();
  for (const c of result.cells) {
    if (!c.note || !label.has(c.row)) continue;
    notes.add(c.status === 'ok' ? `- * ${label.get(c.row)}, ${c.shape}, burst ${c.burst}: ${c.note}` : `- ${label.get(c.row)}: ${c.status} (${c.note})`);
  }
  return [...notes];
}

/** Bars per strategy: one bar per burst size (p95), whisker to the max, the ideal p95 dashed. */
export function strategyBars(name: string, title: string, result: MatrixResult, rows: readonly Row[], s: Shape, bursts: readonly number[], subtitle?: string): Chart {
  return hbarChart({
    name,
    title,
    subtitle: subtitle ?? s.label,
    categories: rows.map((r) => r.label),
    series: bursts.map((b, k) => ({
      name: `${b} requests in 1 s: p95 (bar), max (whisker)`,
      values: rows.map((r) => result.summary(r.id, s.id, b)?.p95).map((v) => (v === undefined ? undefined : v / 1000)),
      whiskers: rows.map((r) => result.summary(r.id, s.id, b)?.max).map((v) => (v === undefined ? undefined : v / 1000)),
      color: burstColors[k % burstColors.length] as string,
    })),
    references: bursts.map((b) => {
      const v = result.summary('ideal', s.id, b)?.p95;
      return v === undefined ? undefined : v / 1000;
    }),
    xLabel: 'seconds from send to full response (dashed: ideal p95 for the burst of that colour)',
  });
}

export function matrixJson(plan: MatrixPlan, prepared: PreparedMatrix, result: MatrixResult, extra: Record<string, unknown> = {}): unknown {
  return {
    scenario: plan.scenario,
    generatedAt: new Date().toISOString(),
    machine: machine(),
    notes: [
      'latencies in milliseconds of the shape (scaled back when timeScale < 1), from send to the end of the response body',
      'percentiles are nearest-rank; a cell summary is the median over repeats of each statistic',
      'latenciesMs are per request in send order; null marks a failed request',
      'podPeaks: per row|shape, per repeat, per pod (shape order): the most requests the pod held at once, running plus waiting inside it',
    ],
    plan: {
      windowMs: plan.windowMs,
      timeScale: plan.timeScale,
      repeats: plan.repeats,
      bursts: plan.bursts,
      shapes: plan.shapes,
      rows: prepared.rows,
      unavailable: Object.fromEntries(prepared.unavailable),
    },
    ...extra,
    ...(result.baseline ? { baseline: { dir: result.baseline, comparison: comparePairs(result, prepared.rows) } } : {}),
    cells: result.cells,
    podPeaks: result.peaks,
    gatewayDebugPools: result.debug,
  };
}
