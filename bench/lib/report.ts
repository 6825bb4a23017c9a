/**
 * Tables and result files. A table is built once as cells and printed twice: to the terminal and into
 * `bench/results/<scenario>.md`, as Markdown padded so it also reads as plain text. Every scenario
 * writes `<scenario>.json` (every measurement, the plan and the machine) and its charts beside it.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join, relative } from 'node:path';
import { svgToPng, type Chart } from './plot.js';
import { repoRoot } from './paths.js';

export { markdownTable, type Align, type Table } from '../../src/util/markdown-table.js';

/** Seconds from milliseconds, two decimals; "-" when there is no number. */
export function sec(ms: number | undefined, digits = 2): string {
  return ms === undefined || !Number.isFinite(ms) ? '-' : (ms / 1000).toFixed(digits);
}

/** "1.03x" (a ratio to a reference); "-" when undefined. */
export function ratio(value: number | undefined, reference: number | undefined, digits = 2): string {
  if (value === undefined || reference === undefined || !Number.isFinite(value) || !Number.isFinite(reference) || reference === 0) return '-';
  return `${(value / reference).toFixed(digits)}x`;
}

export function fixed(value: number | undefined, digits = 0): string {
  return value === undefined || !Number.isFinite(value) ? '-' : value.toFixed(digits);
}

export function machine(): Record<string, unknown> {
  const c = cpus();
  return { node: process.version, cpus: c.length, cpuModel: c[0]?.model ?? 'unknown', memoryGiB: Math.round(totalmem() / 2 ** 30), platform: process.platform };
}

export interface ResultFiles {
  readonly scenario: string;
  readonly outDir: string;
  readonly json: unknown;
  readonly markdown: string;
  readonly charts: readonly Chart[];
}

/** Indented JSON with numbers rounded to 3 decimals and arrays of numbers kept on one line. */
export function compactJson(value: unknown): string {
  const text = JSON.stringify(value, (_k, v: unknown) => (typeof v === 'number' && !Number.isInteger(v) ? Math.round(v * 1000) / 1000 : v), 1);
  return text.replace(/\[\s*(?:(?:-?[\d.e+-]+|null)\s*,\s*)*(?:-?[\d.e+-]+|null)\s*\]/g, (m) => m.replace(/\s+/g, ''));
}

/** Writes `<scenario>.json`, `<scenario>.md` and one PNG per chart; returns the paths written. */
export function writeResults(r: ResultFiles): string[] {
  mkdirSync(r.outDir, { recursive: true });
  const written: string[] = [];
  const put = (name: string, data: string | Buffer) => {
    const file = join(r.outDir, name);
    writeFileSync(file, data);
    written.push(relative(repoRoot, file) || file);
  };
  put(`${r.scenario}.json`, `${compactJson(r.json)}\n`);
  put(`${r.scenario}.md`, r.markdown.endsWith('\n') ? r.markdown : `${r.markdown}\n`);
  for (const chart of r.charts) {
    try {
      put(`${chart.name}.png`, svgToPng(chart.svg));
    } catch (err) {
      process.stderr.write(`chart ${chart.name}: PNG conversion failed (${(err as Error).message}); writing SVG instead\n`);
      put(`${chart.name}.svg`, chart.svg);
    }
  }
  return written;
}
