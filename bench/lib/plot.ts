/**
 * A small plotting module: charts are SVG strings built here (no chart library, nothing downloaded),
 * turned into PNG by @resvg/resvg-js with a font from /usr/share/fonts/truetype. Three kinds cover the
 * scenarios: horizontal grouped bars (one block per strategy, one bar per burst size, a whisker to the
 * max, a tick for a reference such as the ideal), line panels (p95 against burst size, one panel
 * per cluster size, log scale when values span decades) and stacked time series (soak, autoscale:
 * panels over one numeric time axis, each with its own y axis and unit, shaded phases).
 */
import { Resvg } from '@resvg/resvg-js';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

export interface Chart {
  /** File name without extension. */
  readonly name: string;
  readonly svg: string;
}

export const palette = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf', '#393b79', '#e7ba52', '#637939', '#ad494a', '#7b4173', '#3182bd'];

const FONT = 'DejaVu Sans';

function esc(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${x.toFixed(1)}" y="${y.toFixed(1)}" font-family="${FONT}" ${attrs}>${esc(s)}</text>`;
}

/** Round axis steps: 1, 2, 2.5 or 5 times a power of ten, about `count` of them up to `max`. */
export function niceTicks(max: number, count = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / count;
  const pow = 10 ** Math.floor(Math.log10(raw));
  const step = ([1, 2, 2.5, 5, 10].find((m) => m * pow >= raw) ?? 10) * pow;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toFixed(10)));
  return ticks;
}

function logTicks(min: number, max: number): number[] {
  const ticks: number[] = [];
  for (let e = Math.floor(Math.log10(min)); e <= Math.ceil(Math.log10(max)); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      if (v >= min * 0.999 && v <= max * 1.001) ticks.push(v);
    }
  }
  return ticks;
}

function tickLabel(v: number): string {
  return Number.isInteger(v) ? String(v) : String(Number(v.toPrecision(3)));
}

export interface BarSeries {
  readonly name: string;
  /** One value per category; undefined draws nothing (n/a). */
  readonly values: readonly (number | undefined)[];
  /** Optional upper whisker per category (e.g. the max above a p95 bar). */
  readonly whiskers?: readonly (number | undefined)[];
  readonly color?: string;
}

export interface HBarOptions {
  readonly name: string;
  readonly title: string;
  readonly subtitle?: string;
  /** One block of bars per category (a strategy), labelled on the left. */
  readonly categories: readonly string[];
  readonly series: readonly BarSeries[];
  readonly xLabel: string;
  /** Per series, a reference value drawn as a dashed line across every block (e.g. the ideal p95). */
  readonly references?: readonly (number | undefined)[];
}

export function hbarChart(o: HBarOptions): Chart {
  const width = 1100;
  const left = 330;
  const right = 60;
  const top = o.subtitle ? 74 : 56;
  const barH = 13;
  const blockGap = 12;
  const blockH = o.series.length * barH + blockGap;
  const plotH = o.categories.length * blockH;
  const legendH = 34;
  const height = top + plotH + 44 + legendH;
  const all = o.series.flatMap((s) => [...s.values, ...(s.whiskers ?? [])]).filter((v): v is number => v !== undefined && Number.isFinite(v));
  const ticks = niceTicks(Math.max(...all, ...(o.references ?? []).filter((v): v is number => v !== undefined), 1e-9));
  const xMax = ticks[ticks.length - 1] as number;
  const plotW = width - left - right;
  const x = (v: number) => left + (Math.min(v, xMax) / xMax) * plotW;
  const parts: string[] = [`<rect width="${width}" height="${height}" fill="#fff"/>`];
  parts.push(text(16, 28, o.title, 'font-size="18" font-weight="bold"'));
  if (o.subtitle) parts.push(text(16, 50, o.subtitle, 'font-size="13" fill="#444"'));
  for (const t of ticks) {
    parts.push(`<line x1="${x(t)}" y1="${top}" x2="${x(t)}" y2="${top + plotH}" stroke="#e3e3e3"/>`);
    parts.push(text(x(t), top + plotH + 16, tickLabel(t), 'font-size="12" text-anchor="middle" fill="#333"'));
  }
  parts.push(text(left + plotW / 2, top + plotH + 34, o.xLabel, 'font-size="13" text-anchor="middle"'));
  o.categories.forEach((cat, c) => {
    const y0 = top + c * blockH;
    if (c % 2 === 1) parts.push(`<rect x="0" y="${y0 - blockGap / 2}" width="${width}" height="${blockH}" fill="#000" fill-opacity="0.03"/>`);
    parts.push(text(left - 10, y0 + (o.series.length * barH) / 2 + 4, cat, 'font-size="13" text-anchor="end"'));
    o.series.forEach((s, k) => {
      const v = s.values[c];
      const y = y0 + k * barH;
      const color = s.color ?? (palette[k % palette.length] as string);
      if (v === undefined || !Number.isFinite(v)) {
        parts.push(text(left + 4, y + barH - 3, 'n/a', 'font-size="10" fill="#999"'));
        return;
      }
      parts.push(`<rect x="${left}" y="${y + 1}" width="${Math.max(1, x(v) - left).toFixed(1)}" height="${barH - 2}" fill="${color}"/>`);
      const w = s.whiskers?.[c];
      let labelX = x(v) + 4;
      if (w !== undefined && Number.isFinite(w) && w > v) {
        const ym = y + barH / 2;
        parts.push(`<line x1="${x(v)}" y1="${ym}" x2="${x(w)}" y2="${ym}" stroke="${color}" stroke-width="1.5"/>`);
        parts.push(`<line x1="${x(w)}" y1="${y + 2}" x2="${x(w)}" y2="${y + barH - 2}" stroke="${color}" stroke-width="1.5"/>`);
        labelX = x(w) + 4;
      }
      parts.push(text(labelX, y + barH - 3, tickLabel(Number(v.toPrecision(3))), 'font-size="10" fill="#333"'));
    });
  });
  (o.references ?? []).forEach((r, k) => {
    if (r === undefined || !Number.isFinite(r)) return;
    const color = o.series[k]?.color ?? (palette[k % palette.length] as string);
    parts.push(`<line x1="${x(r)}" y1="${top - 4}" x2="${x(r)}" y2="${top + plotH}" stroke="${color}" stroke-dasharray="5,4" stroke-width="1.2"/>`);
  });
  parts.push(`<line x1="${left}" y1="${top - 4}" x2="${left}" y2="${top + plotH}" stroke="#333"/>`);
  parts.push(legend(o.series.map((s, k) => ({ name: s.name, color: s.color ?? (palette[k % palette.length] as string) })), left, top + plotH + 52, width - left));
  return { name: o.name, svg: svg(width, height, parts) };
}

function legend(items: readonly { name: string; color: string; dashed?: boolean }[], x0: number, y0: number, width: number): string {
  const parts: string[] = [];
  let x = x0;
  let y = y0;
  for (const it of items) {
    const w = 34 + it.name.length * 7;
    if (x + w > x0 + width) {
      x = x0;
      y += 18;
    }
    parts.push(`<line x1="${x}" y1="${y - 4}" x2="${x + 22}" y2="${y - 4}" stroke="${it.color}" stroke-width="${it.dashed ? 2 : 6}"${it.dashed ? ' stroke-dasharray="5,3"' : ''}/>`);
    parts.push(text(x + 27, y, it.name, 'font-size="12"'));
    x += w;
  }
  return parts.join('');
}

function legendHeight(items: readonly { name: string }[], width: number): number {
  let x = 0;
  let rows = 1;
  for (const it of items) {
    const w = 34 + it.name.length * 7;
    if (x + w > width) {
      x = 0;
      rows++;
    }
    x += w;
  }
  return rows * 18;
}

export interface LineSeries {
  readonly name: string;
  /** One value per x position of the panel; undefined leaves a gap. */
  readonly values: readonly (number | undefined)[];
  readonly color?: string;
  readonly dashed?: boolean;
}

export interface Panel {
  readonly title: string;
  /** Labels of the x positions, evenly spaced. */
  readonly x: readonly string[];
  readonly series: readonly LineSeries[];
}

export interface LinePanelsOptions {
  readonly name: string;
  readonly title: string;
  readonly subtitle?: string;
  readonly panels: readonly Panel[];
  readonly xLabel: string;
  readonly yLabel: string;
  /** Log scale (default: when the values span more than a factor 20). */
  readonly logY?: boolean;
}

export function linePanels(o: LinePanelsOptions): Chart {
  const width = 1200;
  const top = o.subtitle ? 80 : 60;
  const panelH = 300;
  const gap = 26;
  const left = 64;
  const right = 16;
  const panelW = (width - left - right - gap * (o.panels.length - 1)) / o.panels.length;
  const names: { name: string; color: string; dashed?: boolean }[] = [];
  const colorOf = new Map<string, { color: string; dashed: boolean }>();
  for (const p of o.panels) {
    for (const s of p.series) {
      if (colorOf.has(s.name)) continue;
      const c = { color: s.color ?? (palette[colorOf.size % palette.length] as string), dashed: s.dashed ?? false };
      colorOf.set(s.name, c);
      names.push({ name: s.name, ...c });
    }
  }
  const values = o.panels.flatMap((p) => p.series.flatMap((s) => s.values)).filter((v): v is number => v !== undefined && Number.isFinite(v) && v > 0);
  const vMin = Math.min(...values);
  const vMax = Math.max(...values);
  const log = o.logY ?? vMax / vMin > 20;
  const ticks = log ? logTicks(Math.max(vMin * 0.8, 1e-6), vMax * 1.2) : niceTicks(vMax);
  const lo = log ? Math.min(ticks[0] as number, vMin) : 0;
  const hi = log ? Math.max(ticks[ticks.length - 1] as number, vMax) : (ticks[ticks.length - 1] as number);
  const y = (v: number) => top + panelH - (log ? (Math.log(v / lo) / Math.log(hi / lo)) * panelH : ((v - lo) / (hi - lo)) * panelH);
  const legendH = legendHeight(names, width - left - right);
  const height = top + panelH + 56 + legendH + 10;
  const parts: string[] = [`<rect width="${width}" height="${height}" fill="#fff"/>`];
  parts.push(text(16, 28, o.title, 'font-size="18" font-weight="bold"'));
  if (o.subtitle) parts.push(text(16, 50, o.subtitle, 'font-size="13" fill="#444"'));
  parts.push(text(18, top + panelH / 2, o.yLabel, `font-size="13" text-anchor="middle" transform="rotate(-90 18 ${top + panelH / 2})"`));
  o.panels.forEach((p, i) => {
    const x0 = left + i * (panelW + gap);
    const xs = (k: number) => x0 + ((k + 0.5) / p.x.length) * panelW;
    parts.push(`<rect x="${x0}" y="${top}" width="${panelW}" height="${panelH}" fill="none" stroke="#999"/>`);
    parts.push(text(x0 + panelW / 2, top - 8, p.title, 'font-size="13" font-weight="bold" text-anchor="middle"'));
    for (const t of ticks) {
      if (t < lo || t > hi) continue;
      parts.push(`<line x1="${x0}" y1="${y(t)}" x2="${x0 + panelW}" y2="${y(t)}" stroke="#e6e6e6"/>`);
      if (i === 0) parts.push(text(x0 - 6, y(t) + 4, tickLabel(t), 'font-size="11" text-anchor="end" fill="#333"'));
    }
    p.x.forEach((lab, k) => parts.push(text(xs(k), top + panelH + 16, lab, 'font-size="11" text-anchor="middle" fill="#333"')));
    for (const s of p.series) {
      const c = colorOf.get(s.name) as { color: string; dashed: boolean };
      let path = '';
      s.values.forEach((v, k) => {
        if (v === undefined || !Number.isFinite(v) || v <= 0) return;
        path += `${path ? 'L' : 'M'}${xs(k).toFixed(1)},${y(v).toFixed(1)}`;
        parts.push(`<circle cx="${xs(k).toFixed(1)}" cy="${y(v).toFixed(1)}" r="2.6" fill="${c.color}"/>`);
      });
      if (path) parts.push(`<path d="${path}" fill="none" stroke="${c.color}" stroke-width="${c.dashed ? 2.2 : 1.6}"${c.dashed ? ' stroke-dasharray="6,4"' : ''}/>`);
    }
  });
  parts.push(text(left + (width - left - right) / 2, top + panelH + 34, o.xLabel, 'font-size="13" text-anchor="middle"'));
  parts.push(legend(names, left, top + panelH + 58, width - left - right));
  return { name: o.name, svg: svg(width, height, parts) };
}

export interface TimeLine {
  readonly name: string;
  /** [x, y] in x order; y undefined (or not finite) breaks the line. */
  readonly points: readonly (readonly [number, number | undefined])[];
  readonly color?: string;
  readonly dashed?: boolean;
  /** Draw as stairs (a count that holds until the next point, e.g. pods). */
  readonly step?: boolean;
}

export interface TimePanel {
  readonly title: string;
  readonly yLabel: string;
  readonly series: readonly TimeLine[];
  /** Log scale (default: when the positive values span more than a factor 50). */
  readonly logY?: boolean;
  /** Linear axes start at 0 and reach at least this. */
  readonly yMinTop?: number;
}

export interface TimeSeriesOptions {
  readonly name: string;
  readonly title: string;
  readonly subtitle?: string;
  readonly xLabel: string;
  readonly panels: readonly TimePanel[];
  /** Shaded x ranges with a label at the top of the first panel (load phases). */
  readonly spans?: readonly { readonly from: number; readonly to: number; readonly label: string }[];
}

/** Panels stacked over one numeric x axis (time), each with its own y axis and legend. */
export function timeSeries(o: TimeSeriesOptions): Chart {
  const width = 1200;
  const left = 78;
  const right = 20;
  const plotW = width - left - right;
  const panelH = 210;
  const xs = o.panels.flatMap((p) => p.series.flatMap((s) => s.points.map((pt) => pt[0]))).filter((v) => Number.isFinite(v));
  const xTicks = niceTicks(Math.max(...xs, ...(o.spans ?? []).map((s) => s.to), 1e-9), 10);
  const xMax = xTicks[xTicks.length - 1] as number;
  const x = (v: number) => left + (Math.max(0, Math.min(v, xMax)) / xMax) * plotW;
  const parts: string[] = [];
  parts.push(text(16, 28, o.title, 'font-size="18" font-weight="bold"'));
  if (o.subtitle) parts.push(text(16, 50, o.subtitle, 'font-size="13" fill="#444"'));
  let y0 = o.subtitle ? 72 : 52;
  let color = 0;
  o.panels.forEach((p, i) => {
    const items = p.series.map((s) => ({ name: s.name, color: s.color ?? (palette[color++ % palette.length] as string), ...(s.dashed ? { dashed: true } : {}) }));
    parts.push(text(left, y0 + 14, p.title, 'font-size="14" font-weight="bold"'));
    const legendTop = y0 + 34;
    parts.push(legend(items, left, legendTop, plotW));
    const top = legendTop + legendHeight(items, plotW) - 6;
    const values = p.series.flatMap((s) => s.points.map((pt) => pt[1])).filter((v): v is number => v !== undefined && Number.isFinite(v));
    const positive = values.filter((v) => v > 0);
    const vMax = Math.max(...values, p.yMinTop ?? 0, 1e-9);
    const log = p.logY ?? (positive.length > 0 && Math.max(...positive) / Math.min(...positive) > 50);
    const lo = log ? 10 ** Math.floor(Math.log10(Math.min(...positive))) : 0;
    const yTicks = log ? logTicks(lo, vMax * 1.05) : niceTicks(vMax, 4);
    const hi = log ? Math.max(yTicks[yTicks.length - 1] as number, vMax) : (yTicks[yTicks.length - 1] as number);
    const y = (v: number) => top + panelH - (log ? (Math.log(Math.max(v, lo) / lo) / Math.log(hi / lo)) * panelH : (Math.min(v, hi) / hi) * panelH);
    for (const s of o.spans ?? []) {
      parts.push(`<rect x="${x(s.from).toFixed(1)}" y="${top}" width="${Math.max(0, x(s.to) - x(s.from)).toFixed(1)}" height="${panelH}" fill="#000" fill-opacity="${(o.spans ?? []).indexOf(s) % 2 === 0 ? 0.035 : 0.07}"/>`);
      if (i === 0) parts.push(text((x(s.from) + x(s.to)) / 2, top + 14, s.label, 'font-size="11" text-anchor="middle" fill="#555"'));
    }
    parts.push(`<rect x="${left}" y="${top}" width="${plotW}" height="${panelH}" fill="none" stroke="#999"/>`);
    for (const t of yTicks) {
      if (t < lo || t > hi) continue;
      parts.push(`<line x1="${left}" y1="${y(t).toFixed(1)}" x2="${left + plotW}" y2="${y(t).toFixed(1)}" stroke="#e6e6e6"/>`);
      parts.push(text(left - 6, y(t) + 4, tickLabel(t), 'font-size="11" text-anchor="end" fill="#333"'));
    }
    for (const t of xTicks) {
      parts.push(`<line x1="${x(t).toFixed(1)}" y1="${top}" x2="${x(t).toFixed(1)}" y2="${top + panelH}" stroke="#f0f0f0"/>`);
      parts.push(text(x(t), top + panelH + 15, tickLabel(t), 'font-size="11" text-anchor="middle" fill="#333"'));
    }
    parts.push(text(18, top + panelH / 2, p.yLabel, `font-size="12" text-anchor="middle" transform="rotate(-90 18 ${top + panelH / 2})"`));
    p.series.forEach((s, k) => {
      const c = items[k] as { color: string; dashed?: boolean };
      let path = '';
      let prev: number | undefined;
      for (const [px, py] of s.points) {
        if (py === undefined || !Number.isFinite(py) || (log && py <= 0)) {
          prev = undefined;
          continue;
        }
        const X = x(px).toFixed(1);
        const Y = y(py).toFixed(1);
        if (prev === undefined) path += `M${X},${Y}`;
        else path += s.step ? `H${X}V${Y}` : `L${X},${Y}`;
        prev = py;
      }
      if (path) parts.push(`<path d="${path}" fill="none" stroke="${c.color}" stroke-width="${s.dashed ? 2 : 1.7}"${s.dashed ? ' stroke-dasharray="6,4"' : ''}/>`);
    });
    y0 = top + panelH + 26;
  });
  parts.push(text(left + plotW / 2, y0 + 4, o.xLabel, 'font-size="13" text-anchor="middle"'));
  const height = y0 + 20;
  return { name: o.name, svg: svg(width, height, [`<rect width="${width}" height="${height}" fill="#fff"/>`, ...parts]) };
}

function svg(width: number, height: number, parts: readonly string[]): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">${parts.join('')}</svg>`;
}

let fontFiles: string[] | undefined;

/** DejaVu Sans when present, else any TrueType font under /usr/share/fonts/truetype. */
function findFonts(): string[] {
  if (fontFiles) return fontFiles;
  const base = '/usr/share/fonts/truetype';
  const preferred = ['dejavu/DejaVuSans.ttf', 'dejavu/DejaVuSans-Bold.ttf'].map((f) => join(base, f)).filter((f) => existsSync(f));
  if (preferred.length > 0) return (fontFiles = preferred);
  const any: string[] = [];
  const walk = (dir: string) => {
    if (!existsSync(dir) || any.length >= 4) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (e.name.endsWith('.ttf') && any.length < 4) any.push(join(dir, e.name));
    }
  };
  walk(base);
  return (fontFiles = any);
}

export function svgToPng(svgText: string): Buffer {
  const files = findFonts();
  const resvg = new Resvg(svgText, {
    font: files.length > 0 ? { fontFiles: files, loadSystemFonts: false, defaultFontFamily: FONT } : { loadSystemFonts: true },
    fitTo: { mode: 'original' },
  });
  return resvg.render().asPng();
}
