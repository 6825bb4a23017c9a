/**
 * `autoscale` (issue 5 item 6 and its acceptance): the HPA of deploy/ emulated against the gateway's
 * real /metrics while the load ramps from 1 to 100 requests per second and back, beside a fixed
 * cluster of 2 pods under the same arrivals.
 *
 * Realism kept: the gateway is the product's process with `kubernetes:` discovery, watching
 * EndpointSlices on the fake API server of the tests (real list+watch protocol); pods are added not
 * ready, become ready after a start-up delay, and leave through terminating, as the EndpointSlice
 * controller writes them (bench/lib/kube.ts). The HPA is the documented autoscaling/v2 loop
 * (bench/lib/hpa.ts) with deploy/'s numbers: External metric in flight + queued summed over the
 * pool, AverageValue target = slots per pod, tolerance 0.1, scale-up window 0 s with +100 % or +4
 * pods per 15 s, scale-down window 300 s with -10 % or -1 pod per 60 s, 1 to 10 pods.
 *
 * Time is scaled: every duration of the control loop and of the ramp (sync period, windows, policy
 * periods, pod start-up, the gateway's slow start) runs 10x faster (`--quick`: 30x); request rates,
 * service times and queue limits are real. Both clusters run at the same time, on the same clock,
 * each with its own gateway process and pods.
 */
import { startGateways, type Gateways, type PoolSettings } from '../lib/gateway.js';
import { deployBehaviour, Hpa, type HpaDecision, type HpaSpec } from '../lib/hpa.js';
import { EmulatedDeployment, FakeApiServer, kubeconfigFile, NAMESPACE } from '../lib/kube.js';
import { arrivals, openLoop, perRequest, type OpenLoopResult, type Reply, type Sender } from '../lib/load.js';
import { timeSeries, type TimeLine } from '../lib/plot.js';
import { periodic } from '../lib/procs.js';
import { clock, Progress } from '../lib/progress.js';
import { fixed, machine, markdownTable, ratio, sec, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { demand, scrape } from '../lib/scrape.js';
import { seededRandom, summarize, windows } from '../lib/stats.js';

const POD = { slots: 4, serviceMs: 250 };
const FIXED_PODS = 2;
const PEAK = 100;
const BASE = 1;
/** Real-time durations (seconds) the scaled run stands for. */
const REAL = { syncS: 15, startupS: 60, slowStartS: 30, pre: 60, up: 600, hold: 300, down: 600, tail: 750 };

type RunId = 'hpa' | 'fixed';

interface Phases {
  readonly pre: number;
  readonly up: number;
  readonly hold: number;
  readonly down: number;
  readonly tail: number;
}

function phasesAt(scale: number): Phases {
  const s = (x: number) => (x * 1000) / scale;
  return { pre: s(REAL.pre), up: s(REAL.up), hold: s(REAL.hold), down: s(REAL.down), tail: s(REAL.tail) };
}

function phaseSpans(p: Phases): { from: number; to: number; label: string }[] {
  const b = [0, p.pre, p.pre + p.up, p.pre + p.up + p.hold, p.pre + p.up + p.hold + p.down, p.pre + p.up + p.hold + p.down + p.tail];
  const labels = [`${BASE} req/s`, `ramp up to ${PEAK}`, `${PEAK} req/s`, 'ramp down', `${BASE} req/s`];
  return labels.map((label, i) => ({ from: (b[i] as number) / 1000, to: (b[i + 1] as number) / 1000, label }));
}

/** Offered requests per second at t (ms from the start): 1, linear up to 100, hold, down, 1. */
function rateAt(p: Phases, t: number): number {
  if (t < p.pre) return BASE;
  if (t < p.pre + p.up) return BASE + ((PEAK - BASE) * (t - p.pre)) / p.up;
  if (t < p.pre + p.up + p.hold) return PEAK;
  if (t < p.pre + p.up + p.hold + p.down) return PEAK - ((PEAK - BASE) * (t - p.pre - p.up - p.hold)) / p.down;
  return BASE;
}

interface Tick {
  /** Seconds (scaled) since the load started. */
  readonly t: number;
  readonly replicas: number;
  readonly ready: number;
  readonly demand: number;
  readonly decision?: HpaDecision;
}

interface Side {
  readonly id: RunId;
  readonly deployment: EmulatedDeployment;
  readonly gateway: Gateways;
  readonly sender: Sender;
  readonly ticks: Tick[];
  readonly hpa?: Hpa;
  scrapeErrors: number;
}

interface WindowRow {
  readonly from: number;
  readonly offered: number;
  readonly sent: number;
  readonly p95Ms: Record<RunId, number>;
  readonly non200: Record<RunId, number>;
  readonly replicas: number;
  readonly ready: number;
  readonly demand: Record<RunId, number>;
}

async function startSide(id: RunId, api: FakeApiServer, kubeconfig: string, scale: number, spec: HpaSpec): Promise<Side> {
  const service = `rasa-${id}`;
  const deployment = new EmulatedDeployment({ api, service, pod: POD, startupMs: (REAL.startupS * 1000) / scale, terminatingMs: 500 });
  await deployment.scale(id === 'hpa' ? 1 : FIXED_PODS, 0);
  const pool: PoolSettings = {
    kubernetes: { namespace: NAMESPACE, service, port: 'http' },
    balancer: 'least-outstanding',
    slotsPerEndpoint: POD.slots,
    slowStartMs: Math.round((REAL.slowStartS * 1000) / scale),
    queue: { maxLength: 1000, maxWaitMs: 30_000 },
    upstreamTimeoutMs: 60_000,
  };
  const gateway = await startGateways({ endpoints: [], pool, env: { KUBECONFIG: kubeconfig } });
  const sender = perRequest(gateway.urls);
  await sender.warm(100, 8);
  return { id, deployment, gateway, sender, ticks: [], scrapeErrors: 0, ...(id === 'hpa' ? { hpa: new Hpa(spec) } : {}) };
}

export const autoscale: Scenario = {
  name: 'autoscale',
  title: "Autoscaling: deploy/'s HPA emulated on the gateway's /metrics, ramp 1-100-1 req/s, vs a fixed 2-pod cluster",
  async prepare(options, log) {
    const scale = options.quick ? 30 : 10;
    const phases = phasesAt(scale);
    const totalMs = phases.pre + phases.up + phases.hold + phases.down + phases.tail;
    const syncMs = (REAL.syncS * 1000) / scale;
    const windowMs = options.quick ? 5000 : 10_000;
    const spec: HpaSpec = { minReplicas: 1, maxReplicas: 10, target: POD.slots, tolerance: 0.1, ...deployBehaviour(scale) };
    const estimateS = totalMs / 1000 + 12;
    return {
      estimateS,
      plan: `ramp ${BASE}-${PEAK}-${BASE} req/s over ${clock(totalMs / 1000)} (time scaled ${scale}x: stands for ${clock((totalMs * scale) / 1000)}), HPA vs fixed ${FIXED_PODS} pods, concurrently`,
      async run() {
        const progress = new Progress('autoscale', 3, estimateS);
        progress.begin('starting the fake API server, pods and two gateways', 5);
        const api = await FakeApiServer.start({ namespace: NAMESPACE });
        const kubeconfig = kubeconfigFile(api);
        const sides: Side[] = [];
        try {
          for (const id of ['hpa', 'fixed'] as const) sides.push(await startSide(id, api, kubeconfig, scale, spec));
          const hpaSide = sides[0] as Side;
          const at = arrivals((t) => rateAt(phases, t), totalMs, 'poisson', seededRandom(55), PEAK);
          progress.begin(`ramp: ${at.length} requests per cluster over ${clock(totalMs / 1000)}`, totalMs / 1000);
          const started = performance.now();
          const loops = sides.map((side) =>
            periodic(syncMs, async () => {
              let total: number;
              try {
                total = demand(await scrape(side.gateway.adminUrls[0] as string));
              } catch {
                side.scrapeErrors++;
                return;
              }
              const t = (performance.now() - started) / 1000;
              const decision = side.hpa?.step(performance.now(), side.deployment.replicas, total);
              if (decision && decision.desired !== side.deployment.replicas) await side.deployment.scale(decision.desired);
              side.ticks.push({ t, replicas: side.deployment.replicas, ready: side.deployment.readyCount, demand: total, ...(decision ? { decision } : {}) });
            }),
          );
          let results: OpenLoopResult<Reply>[];
          try {
            results = await Promise.all(sides.map((side, k) => openLoop<Reply>(at, (i) => side.sender.send('/model/parse', JSON.stringify({ text: `utterance ${i}`, message_id: `${side.id}-${k}-${i}` })))));
          } finally {
            await Promise.all(loops.map((l) => l.stop()));
          }
          progress.begin('reporting', 2);
          const [hpaRes, fixedRes] = results as [OpenLoopResult<Reply>, OpenLoopResult<Reply>];
          const finalReplicas = hpaSide.deployment.replicas;

          // --- windows by send time
          const idx = at.map((_, i) => i);
          const count = Math.ceil(totalMs / windowMs);
          const wins = windows(idx, (i) => at[i] as number, windowMs, count);
          const p95Of = (res: OpenLoopResult<Reply>, ids: readonly number[]) => summarize(ids.filter((i) => res.results[i]?.status === 200).map((i) => res.latencyMs[i] as number)).p95;
          const non200Of = (res: OpenLoopResult<Reply>, ids: readonly number[]) => ids.filter((i) => res.results[i]?.status !== 200).length;
          const tickAt = (side: Side, tEnd: number) => [...side.ticks].reverse().find((x) => x.t <= tEnd) ?? side.ticks[0];
          const maxDemand = (side: Side, from: number, to: number) => Math.max(0, ...side.ticks.filter((x) => x.t >= from && x.t < to).map((x) => x.demand));
          const rows: WindowRow[] = wins.map((ids, k) => {
            const from = (k * windowMs) / 1000;
            const to = from + windowMs / 1000;
            const tick = tickAt(hpaSide, to);
            return {
              from,
              offered: ids.length / (windowMs / 1000),
              sent: ids.length,
              p95Ms: { hpa: p95Of(hpaRes, ids), fixed: p95Of(fixedRes, ids) },
              non200: { hpa: non200Of(hpaRes, ids), fixed: non200Of(fixedRes, ids) },
              replicas: tick?.replicas ?? NaN,
              ready: tick?.ready ?? NaN,
              demand: { hpa: maxDemand(hpaSide, from, to), fixed: maxDemand(sides[1] as Side, from, to) },
            };
          });
          const pct = (n: number, of: number) => (of === 0 ? '-' : n === 0 ? '0' : `${((n / of) * 100).toFixed(1)} %`);
          const overTime: Table = {
            header: ['t s', `real min (x${scale})`, 'offered req/s', 'HPA pods (ready)', 'HPA demand max', 'fixed demand max', 'HPA p95 s', 'fixed p95 s', 'HPA non-200', 'fixed non-200'],
            rows: rows.map((r) => [
              `${fixed(r.from)}-${fixed(r.from + windowMs / 1000)}`,
              fixed((r.from * scale) / 60, 1),
              fixed(r.offered, 1),
              `${fixed(r.replicas)} (${fixed(r.ready)})`,
              fixed(r.demand.hpa),
              fixed(r.demand.fixed),
              sec(r.p95Ms.hpa),
              sec(r.p95Ms.fixed),
              pct(r.non200.hpa, r.sent),
              pct(r.non200.fixed, r.sent),
            ]),
          };
          // --- checks
          const holdFrom = phases.pre + phases.up;
          const holdTo = holdFrom + phases.hold;
          const peakIds = idx.filter((i) => (at[i] as number) >= holdFrom && (at[i] as number) < holdTo);
          const peak = {
            requests: peakIds.length,
            hpaP95Ms: p95Of(hpaRes, peakIds),
            fixedP95Ms: p95Of(fixedRes, peakIds),
            hpaNon200: non200Of(hpaRes, peakIds),
            fixedNon200: non200Of(fixedRes, peakIds),
          };
          const rampTicks = hpaSide.ticks.filter((x) => x.t * 1000 < holdTo);
          const maxReplicas = Math.max(...rampTicks.map((x) => x.replicas));
          const firstMax = rampTicks.find((x) => x.replicas === maxReplicas);
          const backToMin = hpaSide.ticks.find((x) => x.t * 1000 >= holdTo && x.replicas === spec.minReplicas);
          const checks = {
            scalesOut: { maxReplicas, atS: firstMax?.t, ok: maxReplicas >= 3 },
            scalesIn: { finalReplicas, backToMinAtS: backToMin?.t, ok: finalReplicas === spec.minReplicas },
            peak: { ...peak, p95Ratio: peak.hpaP95Ms / peak.fixedP95Ms, farBelow: peak.hpaP95Ms <= peak.fixedP95Ms / 5 },
            overall: {
              hpa: { non200: non200Of(hpaRes, idx), p95Ms: p95Of(hpaRes, idx) },
              fixed: { non200: non200Of(fixedRes, idx), p95Ms: p95Of(fixedRes, idx) },
            },
            podSeconds: {
              hpa: integrate(hpaSide.ticks, totalMs / 1000),
              fixed: FIXED_PODS * (totalMs / 1000),
            },
            scrapeErrors: { hpa: hpaSide.scrapeErrors, fixed: (sides[1] as Side).scrapeErrors },
          };
          const checkTable: Table = {
            header: ['check (issue 5)', 'result', 'detail'],
            rows: [
              ['scales out during the ramp', checks.scalesOut.ok ? 'yes' : 'no', `up to ${maxReplicas} pods (first at ${fixed(firstMax?.t)} s)`],
              ['scales back in after it', checks.scalesIn.ok ? 'yes' : 'no', `${finalReplicas} pod(s) at the end${backToMin ? `, back to ${spec.minReplicas} at ${fixed(backToMin.t)} s` : ''}`],
              [
                `p95 at the top of the ramp (${PEAK} req/s) far below the fixed cluster's (< 1/5)`,
                checks.peak.farBelow ? 'yes' : 'no',
                `HPA ${sec(peak.hpaP95Ms)} s vs fixed ${sec(peak.fixedP95Ms)} s (${ratio(peak.hpaP95Ms, peak.fixedP95Ms, 3)}); non-200: HPA ${pct(peak.hpaNon200, peak.requests)}, fixed ${pct(peak.fixedNon200, peak.requests)} of ${peak.requests}`,
              ],
              ['pod-seconds used (scaled)', '-', `HPA ${fixed(checks.podSeconds.hpa)}, fixed ${fixed(checks.podSeconds.fixed)} (${ratio(checks.podSeconds.hpa, checks.podSeconds.fixed)})`],
            ],
            align: ['l', 'l', 'l'],
          };
          const events = hpaSide.ticks
            .map((x, k) => ({ x, prev: hpaSide.ticks[k - 1] }))
            .filter(({ x, prev }) => x.decision && prev && x.replicas !== prev.replicas)
            .map(({ x, prev }) => [fixed(x.t, 1), `${prev?.replicas} -> ${x.replicas}`, fixed(x.demand), fixed(x.decision?.metric, 2), fixed(x.decision?.usageRatio, 2), String(x.decision?.recommendation), x.decision?.limitedBy ?? '']);
          const eventTable: Table = { header: ['t s', 'pods', 'demand', 'metric (demand / pods)', 'usage ratio', 'recommendation', 'held back by'], rows: events };
          const command = benchCommand('autoscale', options);
          const md = [
            "# Autoscaling on the gateway's demand",
            '',
            `Command: \`${command}\``,
            '',
            `Load: Poisson arrivals of \`POST /model/parse\`, ${BASE} req/s, a linear ramp to ${PEAK} req/s, a hold, a ramp down, ${BASE} req/s`,
            `again; the same arrival times for both clusters, run at the same time. Pods: emulated, ${POD.slots} slots x ${POD.serviceMs} ms`,
            `(${(POD.slots * 1000) / POD.serviceMs} req/s each); ready after a start-up delay. Gateway: the product's process, least-outstanding, ${POD.slots} slots`,
            'per pod, queue 1,000 / 30 s (the defaults), `kubernetes:` discovery of EndpointSlices on the fake API server of the tests.',
            '',
            `**Time is scaled ${scale}x** for everything that is a duration of the control loop or the ramp: HPA sync every ${syncMs / 1000} s (15 s),`,
            `scale-up window 0 s, scale-down window ${spec.scaleDown.stabilizationMs / 1000} s (300 s), policy periods ${(spec.scaleUp.policies[0]?.periodMs ?? 0) / 1000} s (15 s) and`,
            `${(spec.scaleDown.policies[0]?.periodMs ?? 0) / 1000} s (60 s), pod start-up ${REAL.startupS / scale} s (${REAL.startupS} s), gateway slow start ${REAL.slowStartS / scale} s (${REAL.slowStartS} s), and the`,
            `phases (${phaseSpans(phases).map((s) => `${s.label} ${fixed(s.to - s.from)} s`).join(', ')}; real: x${scale}). Request rates, service times and`,
            'queue limits are real. HPA (deploy/ values): External metric = sum(gateway_inflight_requests) + sum(gateway_queue_length),',
            `AverageValue target ${spec.target} (= slots per pod), tolerance ${spec.tolerance}, scale up by max(+100 %, +4 pods) per period, down by`,
            `max(-10 %, -1 pod) per period, ${spec.minReplicas}-${spec.maxReplicas} pods; the metric is read straight from the gateway's /metrics at each sync`,
            '(no Prometheus scrape interval or adapter delay). Removed pods: not-ready first, then the newest; terminating until idle.',
            '',
            markdownTable(checkTable),
            '',
            `## Over time (${windowMs / 1000} s windows by send time; p95 of the 200 answers)`,
            '',
            markdownTable(overTime),
            '',
            '## Scaling events (HPA)',
            '',
            markdownTable(eventTable),
            '',
            '![pods and p95 over time](autoscale.png)',
          ].join('\n');
          process.stdout.write(`\n${markdownTable(checkTable)}\n\n${markdownTable(overTime)}\n\n${markdownTable(eventTable)}\n`);
          const pts = (side: Side, f: (x: Tick) => number): TimeLine['points'] => side.ticks.map((x) => [x.t, f(x)] as const);
          const winPts = (f: (r: WindowRow) => number): TimeLine['points'] => rows.map((r) => [r.from + windowMs / 2000, f(r)] as const);
          const fixedSide = sides[1] as Side;
          const chart = timeSeries({
            name: 'autoscale',
            title: `Autoscaling on in-flight + queued: ramp ${BASE}-${PEAK}-${BASE} req/s, HPA vs fixed ${FIXED_PODS} pods`,
            subtitle: `pods ${POD.slots} slots x ${POD.serviceMs} ms; time scaled ${scale}x (HPA sync ${syncMs / 1000} s, down window ${spec.scaleDown.stabilizationMs / 1000} s, start-up ${REAL.startupS / scale} s); p95 at ${PEAK} req/s: HPA ${sec(peak.hpaP95Ms)} s, fixed ${sec(peak.fixedP95Ms)} s`,
            xLabel: `seconds of the scaled run (x${scale} for real time)`,
            spans: phaseSpans(phases),
            panels: [
              {
                title: 'Pods',
                yLabel: 'pods',
                logY: false,
                yMinTop: spec.maxReplicas,
                series: [
                  { name: 'HPA: replicas', points: pts(hpaSide, (x) => x.replicas), color: '#1f77b4', step: true },
                  { name: 'HPA: ready', points: pts(hpaSide, (x) => x.ready), color: '#17becf', step: true, dashed: true },
                  { name: `fixed: ${FIXED_PODS} pods`, points: pts(fixedSide, (x) => x.replicas), color: '#d62728', step: true },
                ],
              },
              {
                title: 'Offered load and demand (in flight + queued at the gateway; log scale)',
                yLabel: 'req/s | requests',
                logY: true,
                series: [
                  { name: 'offered req/s', points: winPts((r) => r.offered), color: '#7f7f7f', dashed: true },
                  { name: 'HPA: demand', points: pts(hpaSide, (x) => x.demand), color: '#1f77b4' },
                  { name: 'fixed: demand', points: pts(fixedSide, (x) => x.demand), color: '#d62728' },
                ],
              },
              {
                title: `p95 latency per ${windowMs / 1000} s window (200 answers, by send time)`,
                yLabel: 'seconds',
                logY: true,
                series: [
                  { name: 'HPA', points: winPts((r) => r.p95Ms.hpa / 1000), color: '#1f77b4' },
                  { name: 'fixed', points: winPts((r) => r.p95Ms.fixed / 1000), color: '#d62728' },
                ],
              },
              {
                title: 'Answers other than 200 (503: queue full or queue timeout)',
                yLabel: '% of the window',
                logY: false,
                yMinTop: 10,
                series: [
                  { name: 'HPA', points: winPts((r) => (r.sent ? (100 * r.non200.hpa) / r.sent : 0)), color: '#1f77b4' },
                  { name: 'fixed', points: winPts((r) => (r.sent ? (100 * r.non200.fixed) / r.sent : 0)), color: '#d62728' },
                ],
              },
            ],
          });
          const statuses = (res: OpenLoopResult<Reply>) => {
            const out: Record<string, number> = {};
            for (const r of res.results) {
              const k = r?.status ? String(r.status) : `error: ${r?.error ?? 'unknown'}`;
              out[k] = (out[k] ?? 0) + 1;
            }
            return out;
          };
          const files = writeResults({
            scenario: 'autoscale',
            outDir: options.outDir,
            json: {
              scenario: 'autoscale',
              command,
              generatedAt: new Date().toISOString(),
              machine: machine(),
              plan: { timeScale: scale, real: REAL, phasesMs: phases, syncMs, windowMs, pod: POD, fixedPods: FIXED_PODS, hpa: spec, discovery: 'kubernetes: EndpointSlices on the fake API server (test/helpers/fake-apiserver.ts)' },
              checks,
              statuses: { hpa: statuses(hpaRes), fixed: statuses(fixedRes) },
              windows: rows,
              ticks: { hpa: hpaSide.ticks, fixed: fixedSide.ticks },
              requests: { sentMs: at, hpaLatencyMs: hpaRes.latencyMs, hpaStatus: hpaRes.results.map((r) => r?.status ?? 0), fixedLatencyMs: fixedRes.latencyMs, fixedStatus: fixedRes.results.map((r) => r?.status ?? 0) },
            },
            markdown: md,
            charts: [chart],
          });
          progress.finish();
          log(`wrote ${files.join(', ')}`);
        } finally {
          for (const side of sides) {
            await side.sender.close();
            await side.gateway.stop();
            await side.deployment.close();
          }
          await api.close();
        }
      },
    };
  },
};

/** Pod-seconds: replicas held from each tick to the next, up to `endS`. */
function integrate(ticks: readonly Tick[], endS: number): number {
  let total = 0;
  ticks.forEach((x, k) => {
    const next = ticks[k + 1]?.t ?? endS;
    total += x.replicas * Math.max(0, Math.min(next, endS) - x.t);
  });
  return total;
}
