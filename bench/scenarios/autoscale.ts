/**
 * `autoscale` (issue 5 item 6, issue 18's acceptance): the HPA of deploy/ emulated against the
 * gateway's real /metrics while the load ramps from 1 to 100 requests per second and back, on both
 * signals the chart offers, in one run: `demand` (in flight + queued, AverageValue = slots per pod)
 * and `desiredPods` (gateway_pool_desired_pods, the capacity model's answer, AverageValue 1), each
 * with its own pods and gateway, under the same arrivals. (A fixed cluster, issue 5's comparison, is
 * not run any more: on two shared cores a third gateway at 100 req/s would cost the other two CPU
 * time; its pod-seconds need no run, and the report gives those of a fixed cluster sized for the peak.)
 *
 * Realism kept: each gateway is the product's process with `kubernetes:` discovery, watching
 * EndpointSlices on the fake API server of the tests (real list+watch protocol); pods are added not
 * ready, become ready after a start-up delay, and leave through terminating, as the EndpointSlice
 * controller writes them (bench/lib/kube.ts). The HPA is the documented autoscaling/v2 loop
 * (bench/lib/hpa.ts) with deploy/'s behaviour: tolerance 0.1, scale-up window 0 s with +100 % or +4
 * pods per 15 s, scale-down window 300 s with -10 % or -1 pod per 60 s, 1 to 10 pods.
 *
 * Time is scaled: every duration of the control loop and of the ramp (sync period, windows, policy
 * periods, pod start-up, the gateway's slow start, and the capacity model's measuring window and
 * backlog horizon) runs 10x faster (`--quick`: 30x); request rates, service times, queue limits and
 * the queue-wait target are real. Both clusters run at the same time, on the same clock.
 */
import { startGateways, type Gateways, type PoolSettings } from '../lib/gateway.js';
import { podsForWait } from '../../src/capacity/queue-model.js';
import { fromMoments } from '../../src/capacity/service-time.js';
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
const PEAK = 100;
const BASE = 1;
/**
 * The desired-pods cluster's p95 queue-wait target: a fifth of a service time, i.e. "barely any
 * queueing", the same promise the demand signal makes (a slot for everything in flight or queued).
 */
const TARGET_WAIT_MS = 50;
/** Real-time durations (seconds) the scaled run stands for; window and horizon are capacity's defaults. */
const REAL = { syncS: 15, startupS: 60, slowStartS: 30, windowS: 30, horizonS: 60, pre: 60, up: 600, hold: 300, down: 600, tail: 750 };

type RunId = 'demand' | 'desired';
const RUNS: readonly RunId[] = ['demand', 'desired'];
const LABEL: Record<RunId, string> = { demand: 'HPA on demand', desired: 'HPA on desired pods' };
const COLOR: Record<RunId, string> = { demand: '#d62728', desired: '#1f77b4' };

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
  /** In flight + queued, summed over the pool. */
  readonly demand: number;
  /** gateway_pool_desired_pods. */
  readonly desired: number;
  readonly decision?: HpaDecision;
}

interface Side {
  readonly id: RunId;
  readonly deployment: EmulatedDeployment;
  readonly gateway: Gateways;
  readonly sender: Sender;
  readonly ticks: Tick[];
  readonly hpa: Hpa;
  scrapeErrors: number;
}

interface WindowRow {
  readonly from: number;
  readonly offered: number;
  readonly sent: number;
  readonly p95Ms: Record<RunId, number>;
  readonly non200: Record<RunId, number>;
  readonly replicas: Record<RunId, number>;
  readonly desired: number;
}

function hpaSpec(id: RunId, scale: number): HpaSpec {
  return { minReplicas: 1, maxReplicas: 10, target: id === 'demand' ? POD.slots : 1, tolerance: 0.1, ...deployBehaviour(scale, id === 'demand' ? 'demand' : 'desiredPods') };
}

async function startSide(id: RunId, api: FakeApiServer, kubeconfig: string, scale: number): Promise<Side> {
  const service = `rasa-${id}`;
  const deployment = new EmulatedDeployment({ api, service, pod: POD, startupMs: (REAL.startupS * 1000) / scale, terminatingMs: 500 });
  await deployment.scale(1, 0);
  const pool: PoolSettings = {
    kubernetes: { namespace: NAMESPACE, service, port: 'http' },
    balancer: 'least-outstanding',
    slotsPerEndpoint: POD.slots,
    slowStartMs: Math.round((REAL.slowStartS * 1000) / scale),
    queue: { maxLength: 1000, maxWaitMs: 30_000 },
    upstreamTimeoutMs: 60_000,
    capacity: { targetQueueWaitMs: TARGET_WAIT_MS, windowMs: Math.round((REAL.windowS * 1000) / scale), horizonMs: Math.round((REAL.horizonS * 1000) / scale) },
  };
  const gateway = await startGateways({ endpoints: [], pool, env: { KUBECONFIG: kubeconfig } });
  const sender = perRequest(gateway.urls);
  await sender.warm(100, 8);
  return { id, deployment, gateway, sender, ticks: [], scrapeErrors: 0, hpa: new Hpa(hpaSpec(id, scale)) };
}

const byRun = <T>(f: (id: RunId) => T): Record<RunId, T> => ({ demand: f('demand'), desired: f('desired') });

export const autoscale: Scenario = {
  name: 'autoscale',
  title: "Autoscaling: deploy/'s HPA on demand and on desired pods, emulated on the gateway's /metrics, ramp 1-100-1 req/s",
  async prepare(options, log) {
    const scale = options.quick ? 30 : 10;
    const phases = phasesAt(scale);
    const totalMs = phases.pre + phases.up + phases.hold + phases.down + phases.tail;
    const syncMs = (REAL.syncS * 1000) / scale;
    const windowMs = options.quick ? 5000 : 10_000;
    const spec = hpaSpec('demand', scale);
    const desiredSpec = hpaSpec('desired', scale);
    const estimateS = totalMs / 1000 + 15;
    return {
      estimateS,
      plan: `ramp ${BASE}-${PEAK}-${BASE} req/s over ${clock(totalMs / 1000)} (time scaled ${scale}x: stands for ${clock((totalMs * scale) / 1000)}), HPA on demand and HPA on desired pods, concurrently`,
      async run() {
        const progress = new Progress('autoscale', 3, estimateS);
        progress.begin('starting the fake API server, pods and two gateways', 5);
        const api = await FakeApiServer.start({ namespace: NAMESPACE });
        const kubeconfig = kubeconfigFile(api);
        const sides: Side[] = [];
        try {
          for (const id of RUNS) sides.push(await startSide(id, api, kubeconfig, scale));
          const side = (id: RunId) => sides.find((x) => x.id === id) as Side;
          const at = arrivals((t) => rateAt(phases, t), totalMs, 'poisson', seededRandom(55), PEAK);
          progress.begin(`ramp: ${at.length} requests per cluster over ${clock(totalMs / 1000)}`, totalMs / 1000);
          const started = performance.now();
          const loops = sides.map((s) =>
            periodic(syncMs, async () => {
              let m;
              try {
                m = await scrape(s.gateway.adminUrls[0] as string);
              } catch {
                s.scrapeErrors++;
                return;
              }
              const inFlightAndQueued = demand(m);
              const desired = m.sum('gateway_pool_desired_pods');
              const t = (performance.now() - started) / 1000;
              const decision = s.hpa.step(performance.now(), s.deployment.replicas, s.id === 'desired' ? desired : inFlightAndQueued);
              if (decision.desired !== s.deployment.replicas) await s.deployment.scale(decision.desired);
              s.ticks.push({ t, replicas: s.deployment.replicas, ready: s.deployment.readyCount, demand: inFlightAndQueued, desired, decision });
            }),
          );
          let results: OpenLoopResult<Reply>[];
          try {
            results = await Promise.all(sides.map((s, k) => openLoop<Reply>(at, (i) => s.sender.send('/model/parse', JSON.stringify({ text: `utterance ${i}`, message_id: `${s.id}-${k}-${i}` })))));
          } finally {
            await Promise.all(loops.map((l) => l.stop()));
          }
          progress.begin('reporting', 2);
          const res = byRun((id) => results[RUNS.indexOf(id)] as OpenLoopResult<Reply>);

          // --- windows by send time
          const idx = at.map((_, i) => i);
          const count = Math.ceil(totalMs / windowMs);
          const wins = windows(idx, (i) => at[i] as number, windowMs, count);
          const p95Of = (r: OpenLoopResult<Reply>, ids: readonly number[]) => summarize(ids.filter((i) => r.results[i]?.status === 200).map((i) => r.latencyMs[i] as number)).p95;
          const non200Of = (r: OpenLoopResult<Reply>, ids: readonly number[]) => ids.filter((i) => r.results[i]?.status !== 200).length;
          const tickAt = (s: Side, tEnd: number) => [...s.ticks].reverse().find((x) => x.t <= tEnd) ?? s.ticks[0];
          const rows: WindowRow[] = wins.map((ids, k) => {
            const from = (k * windowMs) / 1000;
            const to = from + windowMs / 1000;
            return {
              from,
              offered: ids.length / (windowMs / 1000),
              sent: ids.length,
              p95Ms: byRun((id) => p95Of(res[id], ids)),
              non200: byRun((id) => non200Of(res[id], ids)),
              replicas: byRun((id) => tickAt(side(id), to)?.replicas ?? NaN),
              desired: Math.max(0, ...side('desired').ticks.filter((x) => x.t >= from && x.t < to).map((x) => x.desired)),
            };
          });
          const pct = (n: number, of: number) => (of === 0 ? '-' : n === 0 ? '0' : `${((n / of) * 100).toFixed(1)} %`);
          const overTime: Table = {
            header: ['t s', `real min (x${scale})`, 'offered req/s', 'pods: demand', 'pods: desired', 'desired-pods metric max', 'p95 s: demand', 'p95 s: desired', 'non-200: demand', 'non-200: desired'],
            rows: rows.map((r) => [
              `${fixed(r.from)}-${fixed(r.from + windowMs / 1000)}`,
              fixed((r.from * scale) / 60, 1),
              fixed(r.offered, 1),
              fixed(r.replicas.demand),
              fixed(r.replicas.desired),
              fixed(r.desired, 2),
              sec(r.p95Ms.demand),
              sec(r.p95Ms.desired),
              pct(r.non200.demand, r.sent),
              pct(r.non200.desired, r.sent),
            ]),
          };
          // --- checks
          const holdFrom = phases.pre + phases.up;
          const holdTo = holdFrom + phases.hold;
          const peakIds = idx.filter((i) => (at[i] as number) >= holdFrom && (at[i] as number) < holdTo);
          const profile = { service: fromMoments(POD.serviceMs, 0), slots: POD.slots };
          const need = {
            bare: (PEAK * POD.serviceMs) / 1000 / POD.slots,
            atTarget: podsForWait(PEAK, profile, TARGET_WAIT_MS),
          };
          const perHpa = (id: RunId) => {
            const s = side(id);
            const rampTicks = s.ticks.filter((x) => x.t * 1000 < holdTo);
            const maxReplicas = Math.max(...rampTicks.map((x) => x.replicas));
            const backToMin = s.ticks.find((x) => x.t * 1000 >= holdTo && x.replicas === 1);
            return {
              peakPods: maxReplicas,
              firstPeakAtS: rampTicks.find((x) => x.replicas === maxReplicas)?.t,
              finalReplicas: s.deployment.replicas,
              backToMinAtS: backToMin?.t,
              podSeconds: integrate(s.ticks, totalMs / 1000),
              topP95Ms: p95Of(res[id], peakIds),
              topNon200: non200Of(res[id], peakIds),
              overallP95Ms: p95Of(res[id], idx),
              non200: non200Of(res[id], idx),
            };
          };
          const d = perHpa('demand');
          const q = perHpa('desired');
          const checks = {
            need: { ...need, utilisationAtTarget: need.bare / need.atTarget, targetWaitMs: TARGET_WAIT_MS },
            demand: d,
            desired: q,
            /** A fixed cluster sized for the peak at the target: what neither autoscaler should exceed. */
            fixedForPeak: { pods: need.atTarget, podSeconds: need.atTarget * (totalMs / 1000) },
            peakWithin: { ratioToNeed: q.peakPods / need.atTarget, ratioToBare: q.peakPods / need.bare, ok: q.peakPods <= 1.2 * need.atTarget },
            podSecondsSaved: { ratio: q.podSeconds / d.podSeconds, ok: q.podSeconds <= 0.8 * d.podSeconds },
            topP95NoWorse: { ratio: q.topP95Ms / d.topP95Ms, ok: q.topP95Ms <= d.topP95Ms && q.topNon200 <= d.topNon200 },
            scrapeErrors: byRun((id) => side(id).scrapeErrors),
          };
          const checkTable: Table = {
            header: ['check (issue 18)', 'result', 'detail'],
            rows: [
              [
                'desired pods: peak during the ramp at most 1.2x what the rate needs',
                checks.peakWithin.ok ? 'yes' : 'no',
                `peak ${q.peakPods} pods; ${PEAK} req/s needs ${need.atTarget} at the ${TARGET_WAIT_MS} ms target (utilisation ${(checks.need.utilisationAtTarget * 100).toFixed(0)} %): ${ratio(q.peakPods, need.atTarget)}; bare load ${fixed(need.bare, 2)} pods: ${ratio(q.peakPods, need.bare)}; demand signal peak ${d.peakPods} (${ratio(d.peakPods, need.atTarget)})`,
              ],
              ['pod-seconds at least 20 % below the demand signal', checks.podSecondsSaved.ok ? 'yes' : 'no', `desired ${fixed(q.podSeconds)}, demand ${fixed(d.podSeconds)} (${ratio(q.podSeconds, d.podSeconds)}); a fixed ${need.atTarget}-pod cluster (the peak's need) ${fixed(checks.fixedForPeak.podSeconds)}`],
              [
                `p95 at the top of the ramp (${PEAK} req/s) no worse`,
                checks.topP95NoWorse.ok ? 'yes' : 'no',
                `desired ${sec(q.topP95Ms)} s, demand ${sec(d.topP95Ms)} s (${ratio(q.topP95Ms, d.topP95Ms, 3)}); non-200 ${pct(q.topNon200, peakIds.length)} / ${pct(d.topNon200, peakIds.length)} of ${peakIds.length}`,
              ],
              ['both scale back in', d.finalReplicas === 1 && q.finalReplicas === 1 ? 'yes' : 'no', `back to 1 pod at ${fixed(d.backToMinAtS)} s (demand), ${fixed(q.backToMinAtS)} s (desired)`],
            ],
            align: ['l', 'l', 'l'],
          };
          const eventTable = (id: RunId): Table => {
            const s = side(id);
            const events = s.ticks
              .map((x, k) => ({ x, prev: s.ticks[k - 1] }))
              .filter(({ x, prev }) => x.decision && prev && x.replicas !== prev.replicas)
              .map(({ x, prev }) => [fixed(x.t, 1), `${prev?.replicas} -> ${x.replicas}`, fixed(x.demand), fixed(x.desired, 2), fixed(x.decision?.metric, 2), fixed(x.decision?.usageRatio, 2), String(x.decision?.recommendation), x.decision?.limitedBy ?? '']);
            return { header: ['t s', 'pods', 'demand', 'desired pods', 'metric per pod', 'usage ratio', 'recommendation', 'held back by'], rows: events };
          };
          const command = benchCommand('autoscale', options);
          const md = [
            '# Autoscaling on demand and on desired pods',
            '',
            `Command: \`${command}\``,
            '',
            `Load: Poisson arrivals of \`POST /model/parse\`, ${BASE} req/s, a linear ramp to ${PEAK} req/s, a hold, a ramp down, ${BASE} req/s`,
            `again; the same arrival times for both clusters, run at the same time. Pods: emulated, ${POD.slots} slots x ${POD.serviceMs} ms`,
            `(${(POD.slots * 1000) / POD.serviceMs} req/s each); ready after a start-up delay. Gateways: the product's process, least-outstanding, ${POD.slots} slots`,
            'per pod, queue 1,000 / 30 s (the defaults), `kubernetes:` discovery of EndpointSlices on the fake API server of the tests.',
            '',
            `**Time is scaled ${scale}x** for everything that is a duration of the control loop or the ramp: HPA sync every ${syncMs / 1000} s (15 s),`,
            `scale-up window 0 s, scale-down window ${spec.scaleDown.stabilizationMs / 1000} s (300 s) on demand and ${desiredSpec.scaleDown.stabilizationMs / 1000} s (${(desiredSpec.scaleDown.stabilizationMs * scale) / 1000} s) on desired pods, policy periods ${(spec.scaleUp.policies[0]?.periodMs ?? 0) / 1000} s (15 s) and`,
            `${(spec.scaleDown.policies[0]?.periodMs ?? 0) / 1000} s (60 s), pod start-up ${REAL.startupS / scale} s (${REAL.startupS} s), gateway slow start ${REAL.slowStartS / scale} s (${REAL.slowStartS} s), the capacity`,
            `window ${REAL.windowS / scale} s (${REAL.windowS} s) and backlog horizon ${REAL.horizonS / scale} s (${REAL.horizonS} s), and the`,
            `phases (${phaseSpans(phases).map((x) => `${x.label} ${fixed(x.to - x.from)} s`).join(', ')}; real: x${scale}). Request rates, service times,`,
            `queue limits and the queue-wait target (${TARGET_WAIT_MS} ms, p95) are real. HPA (deploy/ values): tolerance ${spec.tolerance}, scale up by max(+100 %, +4 pods)`,
            `per period, down by max(-10 %, -1 pod) per period, ${spec.minReplicas}-${spec.maxReplicas} pods. Demand: External metric sum(gateway_inflight_requests) +`,
            `sum(gateway_queue_length), AverageValue ${POD.slots} (= slots per pod). Desired pods: sum(gateway_pool_desired_pods), AverageValue 1.`,
            'Metrics are read straight from each gateway\'s /metrics at each sync (no Prometheus scrape interval or adapter delay).',
            'Removed pods: not-ready first, then the newest; terminating until idle.',
            '',
            markdownTable(checkTable),
            '',
            `## Over time (${windowMs / 1000} s windows by send time; p95 of the 200 answers; pods at the end of the window)`,
            '',
            markdownTable(overTime),
            '',
            '## Scaling events: HPA on desired pods',
            '',
            markdownTable(eventTable('desired')),
            '',
            '## Scaling events: HPA on demand',
            '',
            markdownTable(eventTable('demand')),
            '',
            '![pods and p95 over time](autoscale.png)',
          ].join('\n');
          process.stdout.write(`\n${markdownTable(checkTable)}\n\n${markdownTable(overTime)}\n`);
          const pts = (s: Side, f: (x: Tick) => number): TimeLine['points'] => s.ticks.map((x) => [x.t, f(x)] as const);
          const winPts = (f: (r: WindowRow) => number): TimeLine['points'] => rows.map((r) => [r.from + windowMs / 2000, f(r)] as const);
          const chart = timeSeries({
            name: 'autoscale',
            title: `Autoscaling on demand vs on desired pods: ramp ${BASE}-${PEAK}-${BASE} req/s`,
            subtitle: `pods ${POD.slots} slots x ${POD.serviceMs} ms; time scaled ${scale}x; peak pods ${d.peakPods} (demand) vs ${q.peakPods} (desired); pod-seconds ${ratio(q.podSeconds, d.podSeconds)}; p95 at ${PEAK} req/s ${sec(d.topP95Ms)} s vs ${sec(q.topP95Ms)} s`,
            xLabel: `seconds of the scaled run (x${scale} for real time)`,
            spans: phaseSpans(phases),
            panels: [
              {
                title: 'Pods (replicas)',
                yLabel: 'pods',
                logY: false,
                yMinTop: spec.maxReplicas,
                series: [
                  ...RUNS.map((id) => ({ name: LABEL[id], points: pts(side(id), (x) => x.replicas), color: COLOR[id], step: true })),
                  { name: 'desired-pods metric', points: pts(side('desired'), (x) => x.desired), color: COLOR.desired, dashed: true },
                ],
              },
              {
                title: 'Offered load and demand (in flight + queued at the gateway; log scale)',
                yLabel: 'req/s | requests',
                logY: true,
                series: [
                  { name: 'offered req/s', points: winPts((r) => r.offered), color: '#2ca02c', dashed: true },
                  ...RUNS.map((id) => ({ name: `${LABEL[id]}: demand`, points: pts(side(id), (x) => x.demand), color: COLOR[id] })),
                ],
              },
              {
                title: `p95 latency per ${windowMs / 1000} s window (200 answers, by send time)`,
                yLabel: 'seconds',
                logY: true,
                series: RUNS.map((id) => ({ name: LABEL[id], points: winPts((r) => r.p95Ms[id] / 1000), color: COLOR[id] })),
              },
              {
                title: 'Answers other than 200 (503: queue full or queue timeout)',
                yLabel: '% of the window',
                logY: false,
                yMinTop: 10,
                series: RUNS.map((id) => ({ name: LABEL[id], points: winPts((r) => (r.sent ? (100 * r.non200[id]) / r.sent : 0)), color: COLOR[id] })),
              },
            ],
          });
          const statuses = (r: OpenLoopResult<Reply>) => {
            const out: Record<string, number> = {};
            for (const x of r.results) {
              const k = x?.status ? String(x.status) : `error: ${x?.error ?? 'unknown'}`;
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
              plan: {
                timeScale: scale,
                real: REAL,
                phasesMs: phases,
                syncMs,
                windowMs,
                pod: POD,
                targetWaitMs: TARGET_WAIT_MS,
                hpa: { demand: hpaSpec('demand', scale), desired: hpaSpec('desired', scale) },
                discovery: 'kubernetes: EndpointSlices on the fake API server (test/helpers/fake-apiserver.ts)',
              },
              checks,
              statuses: byRun((id) => statuses(res[id])),
              windows: rows,
              ticks: byRun((id) => side(id).ticks),
              requests: { sentMs: at, ...Object.fromEntries(RUNS.flatMap((id) => [[`${id}LatencyMs`, res[id].latencyMs], [`${id}Status`, res[id].results.map((x) => x?.status ?? 0)]])) },
            },
            markdown: md,
            charts: [chart],
          });
          progress.finish();
          log(`wrote ${files.join(', ')}`);
        } finally {
          for (const s of sides) {
            await s.sender.close();
            await s.gateway.stop();
            await s.deployment.close();
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
