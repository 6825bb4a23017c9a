/**
 * The gateway's `/metrics` as the bench reads it: one scrape parsed from the Prometheus text format
 * into series, summed or picked by name and labels. The soak scenario samples the default Node.js
 * metrics (heap, event-loop lag) and the pool gauges with it; the autoscale scenario computes the
 * HPA's metric from it exactly as the prometheus-adapter rule does (in flight + queued, summed).
 */

export interface Series {
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly value: number;
}

const LINE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

export function parseMetrics(text: string): Series[] {
  const out: Series[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = LINE.exec(line);
    if (!m) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(LABEL)) labels[l[1] as string] = (l[2] as string).replace(/\\(.)/g, (_a, c: string) => (c === 'n' ? '\n' : c));
    const raw = m[3] as string;
    out.push({ name: m[1] as string, labels, value: raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : Number(raw) });
  }
  return out;
}

export class Scrape {
  constructor(
    readonly series: readonly Series[],
    /** performance.now() when the answer arrived. */
    readonly atMs: number,
  ) {}

  /** Every series of `name` whose labels include `labels`. */
  select(name: string, labels: Readonly<Record<string, string>> = {}): Series[] {
    return this.series.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  }

  /** The sum over the selected series (0 when there is none: a gauge of no pool is nothing in flight). */
  sum(name: string, labels: Readonly<Record<string, string>> = {}): number {
    return this.select(name, labels).reduce((s, x) => s + x.value, 0);
  }

  /** The sums of `name` by the values of one label (`{}` when there is no such series). */
  sumBy(name: string, label: string): Record<string, number> {
    const out: Record<string, number> = {};
    for (const x of this.select(name)) {
      const key = x.labels[label] ?? '';
      out[key] = (out[key] ?? 0) + x.value;
    }
    return out;
  }

  /** The one value of `name` (the first match); NaN when absent. */
  value(name: string, labels: Readonly<Record<string, string>> = {}): number {
    return this.select(name, labels)[0]?.value ?? NaN;
  }
}

/** GET <adminUrl>/metrics; rejects on a non-200 or a timeout. */
export async function scrape(adminUrl: string, timeoutMs = 2000): Promise<Scrape> {
  const res = await fetch(`${adminUrl}/metrics`, { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`${adminUrl}/metrics answered ${res.status}`);
  return new Scrape(parseMetrics(text), performance.now());
}

/** The HPA's input for a pool: in-flight + queued requests (what deploy/prometheus-adapter sums). */
export function demand(s: Scrape, pool?: string): number {
  const labels: Record<string, string> = pool === undefined ? {} : { pool };
  return s.sum('gateway_inflight_requests', labels) + s.sum('gateway_queue_length', labels);
}
