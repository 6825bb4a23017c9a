/**
 * The loop every burst scenario shares: for each cluster shape, start its pods; for each repeat and
 * measured row, start the row's target, fire each burst size at it, wait until every pod is idle, and
 * record every request. Ideal rows are simulated from the same arrivals and service times. Repeats
 * are interleaved (all rows, then all rows again) so slow drift of the machine hits every row alike;
 * a cell's summary is the median of each statistic over its repeats. With `--baseline` every gateway
 * row has a twin on the baseline build beside it (baseline.ts). Per row and repeat it also records
 * the most requests each pod held at once (pods.ts), to show a pod given more than its slots.
 */
import { baselineMain, comparePairs, comparisonSummary, comparisonTable, repeatOrder, withBaseline } from './baseline.js';
import { checkPoolSettings, debugCluster, debugPools } from './gateway.js';
import { burstArrivals, simulate } from './ideal.js';
import { runBurst, type BurstSample, type Sender } from './load.js';
import { startCluster, type Cluster, type Shape } from './pods.js';
import { findTool } from './peers.js';
import { sleep } from './procs.js';
import { Progress } from './progress.js';
import type { BenchOptions } from './scenario.js';
import { markdownTable } from './report.js';
import { medianSummary, summarize, type Summary } from './stats.js';
import { needsCheck, podsLike, scheduleLike, startCostS, startTarget, toolOf, type Row } from './targets.js';

export interface MatrixPlan {
  readonly scenario: string;
  readonly shapes: readonly Shape[];
  readonly bursts: readonly number[];
  readonly rows: readonly Row[];
  readonly repeats: number;
  /** The study's one second. */
  readonly windowMs: number;
  /** < 1 shrinks service times and the window alike (quick mode); results are scaled back. */
  readonly timeScale: number;
  /** Leave out a (shape, burst) cell entirely. */
  readonly skip?: (shape: Shape, burst: number) => boolean;
  /** Whether a measured row runs on a shape (default: every row on every shape). */
  readonly measures?: (shape: Shape, row: Row) => boolean;
  readonly path?: string;
}

export interface RunRecord {
  readonly repeat: number;
  /** Per request, in the order sent, in the shape's own milliseconds (scaled back). */
  readonly latenciesMs: number[];
  /** How late each request left against its schedule (ms, unscaled): the load generator's precision. */
  readonly lateMs?: number[];
  /** Requests served per pod (pod order of the shape). */
  readonly perPod: number[];
  readonly errors: number;
  readonly errorExamples?: string[];
  readonly summary: Summary;
}

export interface CellResult {
  readonly row: string;
  readonly shape: string;
  readonly burst: number;
  status: 'ok' | 'n/a' | 'failed';
  note?: string;
  readonly runs: RunRecord[];
  summary?: Summary;
}

export class MatrixResult {
  readonly cells: CellResult[] = [];
  /** /debug/pools from each gateway row after its first repeat, by row and shape (and /debug/cluster, key suffix `|cluster`). */
  readonly debug: Record<string, unknown> = {};
  /** Per `row|shape`, per repeat, per pod: the most requests the pod held at once (running + waiting inside it). */
  readonly peaks: Record<string, number[][]> = {};
  /** The baseline checkout the gateway rows were compared with (`--baseline`). */
  baseline?: string;
  private readonly index = new Map<string, CellResult>();

  cell(row: string, shape: string, burst: number): CellResult {
    const key = `${row}|${shape}|${burst}`;
    let c = this.index.get(key);
    if (!c) {
      c = { row, shape, burst, status: 'ok', runs: [] };
      this.index.set(key, c);
      this.cells.push(c);
    }
    return c;
  }

  get(row: string, shape: string, burst: number): CellResult | undefined {
    return this.index.get(`${row}|${shape}|${burst}`);
  }

  /** The median summary of a cell, if it was measured. */
  summary(row: string, shape: string, burst: number): Summary | undefined {
    return this.get(row, shape, burst)?.summary;
  }
}

export interface PreparedMatrix {
  readonly estimateS: number;
  readonly steps: number;
  readonly rows: readonly Row[];
  /** Rows that cannot run here (peer missing), with the reason. */
  readonly unavailable: ReadonlyMap<string, string>;
  run(): Promise<MatrixResult>;
}

const SETTLE_S = 0.25;
/** Instant requests before a row's first burst: a warm proxy, as in production (see Sender.warm); then `prime`. */
const WARM_REQUESTS = 400;
const WARM_CONCURRENCY = 32;

/** The burst scenarios' common plan: one cluster shape, bursts of 10, 50 and 100 in one second. */
export function burstPlan(scenario: string, shape: Shape, rows: readonly Row[], options: BenchOptions): MatrixPlan {
  return { scenario, shapes: [shape], bursts: [10, 50, 100], rows, repeats: options.repeats ?? (options.quick ? 1 : 3), windowMs: 1000, timeScale: 1 };
}

/** A one-shape burst scenario, prepared, with the line its plan prints. */
export function prepareBursts(scenario: string, shape: Shape, rows: readonly Row[], options: BenchOptions, log: (line: string) => void) {
  const plan = burstPlan(scenario, shape, rows, options);
  const prepared = prepareMatrix(plan, options, log);
  const summary = `${shape.label}; bursts ${plan.bursts.join(', ')}; ${prepared.rows.length} rows; ${plan.repeats} repeat(s)`;
  return { plan, prepared, summary };
}

export function prepareMatrix(plan: MatrixPlan, options: BenchOptions, log: (line: string) => void): PreparedMatrix {
  const chosen = options.rows ? plan.rows.filter((r) => r.target.kind === 'ideal' || options.rows?.includes(r.id)) : plan.rows;
  const rows = options.baseline ? withBaseline(chosen, baselineMain(options.baseline)) : chosen;
  const unavailable = new Map<string, string>();
  for (const r of rows) {
    const tool = toolOf(r.target);
    const status = tool ? findTool(tool, { install: options.install, log }) : undefined;
    if (status && !status.ok) unavailable.set(r.id, status.note);
    if (r.target.kind === 'gateway' && needsCheck(r.target)) {
      const { main, cluster } = r.target;
      const check = checkPoolSettings(r.target.pool, { ...(main ? { main } : {}), ...(cluster ? { cluster } : {}) });
      if (!check.ok) unavailable.set(r.id, `${main ? 'the baseline' : 'this'} gateway build does not accept these settings (${check.message})`);
    }
  }
  // A baseline twin runs wherever its row does.
  const byId = new Map(rows.map((r) => [r.id, r]));
  const original = (r: Row) => (r.baselineOf ? (byId.get(r.baselineOf) ?? r) : r);
  const measures = plan.measures ? (s: Shape, r: Row) => (plan.measures as NonNullable<MatrixPlan['measures']>)(s, original(r)) : undefined;
  const planned = { ...plan, ...(measures ? { measures } : {}) };
  const measured = rows.filter((r) => r.target.kind !== 'ideal' && !unavailable.has(r.id));
  /** Seconds each (row, shape, burst) run should take: the row's schedule simulated, plus settling. */
  const stepS = new Map<string, number>();
  let estimateS = 0;
  let steps = 0;
  for (const r of measured) {
    for (const s of plan.shapes) {
      if (measures && !measures(s, r)) continue;
      const bursts = plan.bursts.filter((b) => !plan.skip?.(s, b));
      if (bursts.length > 0) {
        const primeS = priming(r, s).reduce((sum, n) => sum + (simulate(scheduleLike(r.target), burstArrivals(n, plan.windowMs), podsLike(r.target, s.pods)).makespanMs * plan.timeScale) / 1000 + SETTLE_S, 0);
        estimateS += (startCostS(r.target) + primeS) * plan.repeats;
      }
      for (const b of bursts) {
        const sim = simulate(scheduleLike(r.target), burstArrivals(b, plan.windowMs), podsLike(r.target, s.pods));
        const seconds = (sim.makespanMs * plan.timeScale) / 1000 + SETTLE_S;
        stepS.set(`${r.id}|${s.id}|${b}`, seconds);
        estimateS += seconds * plan.repeats;
        steps += plan.repeats;
      }
    }
  }
  const progress = () => new Progress(plan.scenario, steps, estimateS);
  const run = async () => {
    const result = await runMatrix(planned, rows, measured, unavailable, stepS, progress());
    if (options.baseline) {
      result.baseline = options.baseline;
      const pairs = comparePairs(result, rows);
      process.stdout.write(`\nThis build vs baseline (${options.baseline}):\n${markdownTable(comparisonTable(pairs, rows))}\n${comparisonSummary(pairs, rows)}\n`);
    }
    return result;
  };
  return { estimateS, steps, rows, unavailable, run };
}

async function runMatrix(
  plan: MatrixPlan,
  rows: readonly Row[],
  measured: readonly Row[],
  unavailable: ReadonlyMap<string, string>,
  stepS: ReadonlyMap<string, number>,
  progress: Progress,
): Promise<MatrixResult> {
  const result = new MatrixResult();
  const path = plan.path ?? '/webhooks/rest/webhook';
  let burstNo = 0;
  for (const r of rows) {
    const note = unavailable.get(r.id);
    if (!note) continue;
    progress.log(`row "${r.label}" skipped: ${note}`);
    for (const s of plan.shapes) for (const b of plan.bursts) Object.assign(result.cell(r.id, s.id, b), { status: 'n/a', note });
  }
  for (const s of plan.shapes) {
    const bursts = plan.bursts.filter((b) => !plan.skip?.(s, b));
    if (bursts.length === 0) continue;
    for (const r of rows.filter((x) => x.target.kind === 'ideal')) {
      for (const b of bursts) {
        const sim = simulate(scheduleLike(r.target), burstArrivals(b, plan.windowMs), s.pods);
        const perPod = s.pods.map((_, i) => sim.pods.filter((p) => p === i).length);
        const summary = summarize(sim.latenciesMs);
        const cell = result.cell(r.id, s.id, b);
        cell.runs.push({ repeat: 0, latenciesMs: sim.latenciesMs, perPod, errors: 0, summary });
        cell.summary = summary;
      }
    }
    const here = measured.filter((r) => !plan.measures || plan.measures(s, r));
    if (here.length === 0) continue;
    const cluster = await startCluster(s, plan.timeScale);
    try {
      for (let rep = 0; rep < plan.repeats; rep++) {
        for (const r of repeatOrder(here, rep)) {
          const label = (b: number) => `${s.id} | ${r.label} | burst ${b}${plan.repeats > 1 ? ` | repeat ${rep + 1}/${plan.repeats}` : ''}`;
          let running;
          cluster.takePeaks();
          try {
            running = await startTarget(r.target, cluster, 1000 * rep + 17);
            await running.sender.warm(WARM_REQUESTS, WARM_CONCURRENCY);
          } catch (err) {
            const message = (err as Error).message;
            progress.log(`row "${r.label}" failed to start on ${s.id}: ${message}`);
            for (const b of bursts) {
              progress.begin(label(b), stepS.get(`${r.id}|${s.id}|${b}`) ?? 0);
              Object.assign(result.cell(r.id, s.id, b), { status: 'failed', note: `failed to start: ${message}` });
            }
            continue;
          }
          try {
            for (const n of priming(r, s)) await prime(running.sender, n, cluster, plan, path, `${plan.scenario}-prime-${++burstNo}`);
            for (const b of bursts) {
              progress.begin(label(b), stepS.get(`${r.id}|${s.id}|${b}`) ?? 0);
              const tag = `${plan.scenario}-${++burstNo}`;
              const samples = await runBurst(running.sender, {
                n: b,
                windowMs: plan.windowMs * plan.timeScale,
                path,
                body: (i) => JSON.stringify({ sender: `${tag}-${i}`, message: 'hello, what can you do for me?' }),
              });
              if (!(await cluster.idle())) progress.log(`pods of ${s.id} still busy 120 s after a burst`);
              const counts = cluster.takeCounts();
              result.cell(r.id, s.id, b).runs.push(record(rep, samples, counts, plan.windowMs * plan.timeScale, plan.timeScale));
              await sleep(100);
            }
            (result.peaks[`${r.id}|${s.id}`] ??= []).push(cluster.takePeaks());
            if (rep === 0 && running.adminUrls.length > 0) {
              result.debug[`${r.id}|${s.id}`] = await Promise.all(running.adminUrls.map((u) => debugPools(u)));
              if (r.target.kind === 'gateway' && r.target.cluster) {
                result.debug[`${r.id}|${s.id}|cluster`] = await Promise.all(running.adminUrls.map((u) => debugCluster(u)));
              }
            }
          } finally {
            await running.stop();
          }
        }
      }
    } finally {
      await cluster.close();
    }
  }
  for (const cell of result.cells) {
    if (cell.status !== 'ok' || cell.summary) continue;
    if (cell.runs.length === 0) continue;
    cell.summary = medianSummary(cell.runs.map((x) => x.summary));
    const errors = cell.runs.reduce((n, x) => n + x.errors, 0);
    if (errors > 0) cell.note = `${errors} failed requests over ${cell.runs.length} runs`;
  }
  progress.finish();
  return result;
}

/**
 * Unmeasured bursts before a row's first measured one, so rows that learn from latency start from what
 * a running gateway knows, not from the instant warm-up requests. Rows that only learn service times
 * or latency averages (completion-aware dispatch, peak-EWMA) and rows that learn nothing get one burst
 * of 2 x the cluster's slots. Adaptive slots must also see each pod saturated for a few service times
 * to learn its slots, and a completion-aware pool rarely saturates a slow pod: those rows get two
 * bursts, each as many requests as the cluster serves in 4 s (a minute of real traffic teaches more),
 * unless the row is measured `cold` (a fresh gateway's first seconds).
 */
export function priming(r: Row, shape: Shape): number[] {
  if (r.target.kind === 'gateway' && r.target.pool.slotsPerEndpoint === 'auto' && !r.cold) {
    const perSecond = shape.pods.reduce((sum, p) => sum + (p.slots * 1000) / p.serviceMs, 0);
    const n = Math.ceil(4 * perSecond);
    return [n, n];
  }
  return [2 * shape.pods.reduce((sum, p) => sum + p.slots, 0)];
}

async function prime(sender: Sender, n: number, cluster: Cluster, plan: MatrixPlan, path: string, tag: string): Promise<void> {
  await runBurst(sender, { n, windowMs: plan.windowMs * plan.timeScale, path, body: (i) => JSON.stringify({ sender: `${tag}-${i}`, message: 'hello' }) });
  await cluster.idle();
  cluster.takeCounts();
}

function record(repeat: number, samples: readonly BurstSample[], perPod: number[], windowMs: number, timeScale: number): RunRecord {
  const ok = samples.filter((x) => x.status === 200);
  const failed = samples.filter((x) => x.status !== 200);
  const latenciesMs = samples.map((x) => (x.status === 200 ? x.latencyMs / timeScale : NaN));
  return {
    repeat,
    latenciesMs,
    lateMs: samples.map((x) => x.sentMs - (x.i * windowMs) / samples.length),
    perPod,
    errors: failed.length,
    ...(failed.length > 0 ? { errorExamples: [...new Set(failed.map((x) => x.error ?? `HTTP ${x.status}`))].slice(0, 3) } : {}),
    summary: summarize(ok.map((x) => x.latencyMs / timeScale)),
  };
}
