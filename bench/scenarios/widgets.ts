/**
 * `widgets` (issue 16, finding 7): real socket.io clients as the Rasa chat widgets connect (polling
 * handshake, then the websocket upgrade), thousands of conversations opened within a few seconds and
 * held, each `session_request` then 3 `user_uttered` messages with think time, waiting for every
 * `bot_uttered` reply. The same clients, in the same run, go straight to one emulated pod (direct)
 * and through a real gateway process with 3 emulated pods in a pool `affinity: rasa`. Repeats
 * alternate the two targets.
 *
 * Reported per target: clients connected, upgraded to websocket, ended on polling, replies received /
 * expected, the clients' disconnect reasons and connect errors (and the pods' disconnect reasons),
 * message round trip (emit `user_uttered` -> its `bot_uttered`) p50/p95/p99 and the ratio
 * gateway/direct, and the gateway's RSS and V8 heap per open conversation (its /metrics at the
 * plateau, every conversation open, minus before the clients arrived). The machine has 2 cores shared
 * with other sessions: ratios say more than absolute numbers. Everything on 127.0.0.1, every client
 * bounded in time (connect timeout, reply timeout, a common end of the hold).
 */
import type { RasaPod } from '../../src/emulator/rasa-pod.js';
import { startGateways, type Gateways, type PoolSettings } from '../lib/gateway.js';
import { hbarChart } from '../lib/plot.js';
import { startPod, type PodSpec } from '../lib/pods.js';
import { runSync, sleep } from '../lib/procs.js';
import { Progress } from '../lib/progress.js';
import { fixed, machine, markdownTable, ratio, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { scrape, type Scrape } from '../lib/scrape.js';
import { runWidgets, type WidgetPlan } from '../lib/widget-clients.js';
import { median, summarize, type Summary } from '../lib/stats.js';

const MiB = 2 ** 20;
const MESSAGES = 3;
const PODS = 3;
/** A pod answers a message after 100 ms (a fast Rasa turn); its slots never limit a run of this size. */
const podSpec = (name: string): PodSpec => ({ name, slots: 100_000, serviceMs: 100 });
const pool: PoolSettings = { affinity: 'rasa' };

interface Plan extends WidgetPlan {
  readonly repeats: number;
}

const common = { messages: MESSAGES, connectTimeoutMs: 20_000 };
const fullPlan: Plan = { ...common, clients: 2000, openMs: 3000, holdMs: 60_000, thinkMs: [300, 3000], replyTimeoutMs: 30_000, repeats: 2 };
const quickPlan: Plan = { ...common, clients: 800, openMs: 2000, holdMs: 20_000, thinkMs: [200, 1500], replyTimeoutMs: 15_000, repeats: 1 };

type TargetId = 'direct' | 'gateway';

interface RunResult {
  readonly target: TargetId;
  readonly repeat: number;
  readonly clients: number;
  readonly connected: number;
  readonly upgraded: number;
  readonly endedOnPolling: number;
  readonly replies: number;
  readonly expected: number;
  readonly rtt: Summary;
  readonly connect: Summary;
  readonly disconnects: Record<string, number>;
  readonly connectErrors: Record<string, number>;
  readonly podDisconnects: Record<string, number>;
  /** Sessions per pod at the plateau (the pods' own engine.io count). */
  readonly podSessions: readonly number[];
  readonly openAtPlateau: number;
  readonly memory?: { rssPerConvKiB: number; heapPerConvKiB: number; rssBaseMiB: number; rssPlateauMiB: number; heapBaseMiB: number; heapPlateauMiB: number };
  readonly gatewayErrors?: Record<string, number>;
}

function count(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

/** Counts the pods' own view of how each engine.io session ended, by reason and transport. */
function watchPods(pods: readonly RasaPod[]): Record<string, number> {
  const reasons: Record<string, number> = {};
  for (const pod of pods) {
    pod.io.on('connection', (socket) => {
      socket.on('disconnect', (reason: string) => count(reasons, `${reason} (${socket.conn.transport.name})`));
    });
  }
  return reasons;
}

interface Target {
  readonly url: string;
  readonly pods: readonly RasaPod[];
  readonly adminUrl?: string;
  stop(): Promise<void>;
}

async function startTarget(target: TargetId, repeat: number): Promise<Target> {
  const count = target === 'direct' ? 1 : PODS;
  const pods = await Promise.all(Array.from({ length: count }, (_, i) => startPod(podSpec(`${target}-${repeat}-pod-${i}`))));
  const closePods = () => Promise.all(pods.map((p) => p.close())).then(() => undefined);
  if (target === 'direct') return { url: (pods[0] as RasaPod).url, pods, stop: closePods };
  let gw: Gateways;
  try {
    gw = await startGateways({ endpoints: pods.map((p) => p.url), pool });
  } catch (err) {
    await closePods();
    throw err;
  }
  return {
    url: gw.urls[0] as string,
    adminUrl: gw.adminUrls[0] as string,
    pods,
    async stop() {
      await gw.stop();
      await closePods();
    },
  };
}

async function scrapeOrUndefined(adminUrl: string | undefined): Promise<Scrape | undefined> {
  if (!adminUrl) return undefined;
  try {
    return await scrape(adminUrl, 5000);
  } catch {
    return undefined;
  }
}

async function runOnce(target: TargetId, repeat: number, plan: Plan, seed: number, progress: Progress): Promise<RunResult> {
  const t = await startTarget(target, repeat);
  try {
    const podDisconnects = watchPods(t.pods);
    // Warm-up: a few conversations, so neither target pays for JIT and first connections in the run.
    await runWidgets({ url: t.url, plan: { ...plan, clients: 20, openMs: 200, holdMs: 2500, thinkMs: [10, 50] }, tag: `warm-${target}-${repeat}`, seed, startAtEpochMs: Date.now() + 200 });
    await sleep(500);
    for (const k of Object.keys(podDisconnects)) delete podDisconnects[k];
    const base = await scrapeOrUndefined(t.adminUrl);
    // The worker needs a moment to load socket.io-client: every client starts on the same grid regardless.
    const startAt = Date.now() + 500;
    const running = runWidgets({ url: t.url, plan, tag: `${target}-${repeat}`, seed, startAtEpochMs: startAt });
    // The plateau: every conversation open and its messages done, shortly before the common end.
    await sleep(Math.max(0, startAt + plan.openMs + plan.holdMs - 2000 - Date.now()));
    const plateau = await scrapeOrUndefined(t.adminUrl);
    const podSessions = t.pods.map((p) => p.io.engine.clientsCount);
    const done = await running;
    await sleep(500);
    const after = await scrapeOrUndefined(t.adminUrl);
    const openAtPlateau = podSessions.reduce((a, b) => a + b, 0);
    const disconnects: Record<string, number> = {};
    const connectErrors: Record<string, number> = {};
    for (const r of done) {
      if (r.disconnect) count(disconnects, `${r.disconnect} (${r.finalTransport})`);
      if (r.connectError) count(connectErrors, r.connectError);
    }
    const result: RunResult = {
      target,
      repeat,
      clients: plan.clients,
      connected: done.filter((r) => r.connected).length,
      upgraded: done.filter((r) => r.upgraded).length,
      endedOnPolling: done.filter((r) => r.connected && r.finalTransport === 'polling').length,
      replies: done.reduce((s, r) => s + r.replies, 0),
      expected: plan.clients * MESSAGES,
      rtt: summarize(done.flatMap((r) => r.rtts)),
      connect: summarize(done.filter((r) => r.connected).map((r) => r.connectMs)),
      disconnects,
      connectErrors,
      podDisconnects: { ...podDisconnects },
      podSessions,
      openAtPlateau,
      ...(base && plateau && openAtPlateau > 0
        ? {
            memory: {
              rssPerConvKiB: (plateau.value('process_resident_memory_bytes') - base.value('process_resident_memory_bytes')) / openAtPlateau / 1024,
              heapPerConvKiB: (plateau.value('nodejs_heap_size_used_bytes') - base.value('nodejs_heap_size_used_bytes')) / openAtPlateau / 1024,
              rssBaseMiB: base.value('process_resident_memory_bytes') / MiB,
              rssPlateauMiB: plateau.value('process_resident_memory_bytes') / MiB,
              heapBaseMiB: base.value('nodejs_heap_size_used_bytes') / MiB,
              heapPlateauMiB: plateau.value('nodejs_heap_size_used_bytes') / MiB,
            },
          }
        : {}),
      ...(after
        ? {
            gatewayErrors: {
              ...Object.fromEntries(Object.entries(after.sumBy('gateway_rejected_requests_total', 'code')).map(([k, v]) => [`rejected ${k}`, v - (base?.sum('gateway_rejected_requests_total', { code: k }) ?? 0)])),
              ...Object.fromEntries(Object.entries(after.sumBy('gateway_upstream_failures_total', 'code')).map(([k, v]) => [`upstream ${k}`, v - (base?.sum('gateway_upstream_failures_total', { code: k }) ?? 0)])),
              ...Object.fromEntries(Object.entries(after.sumBy('gateway_internal_errors_total', 'stage')).map(([k, v]) => [`internal ${k}`, v - (base?.sum('gateway_internal_errors_total', { stage: k }) ?? 0)])),
            },
          }
        : {}),
    };
    progress.log(
      `${target} #${repeat + 1}: connected ${result.connected}/${result.clients}, upgraded ${result.upgraded}, on polling ${result.endedOnPolling}, replies ${result.replies}/${result.expected}, rtt p95 ${fixed(result.rtt.p95)} ms`,
    );
    return result;
  } finally {
    await t.stop();
  }
}

function reasons(r: Record<string, number>): string {
  const entries = Object.entries(r).filter(([, v]) => v > 0);
  return entries.length === 0 ? '-' : entries.map(([k, v]) => `${k}: ${v}`).join('; ');
}

function runsTable(runs: readonly RunResult[]): Table {
  return {
    header: ['target', 'run', 'connected', 'upgraded', 'ended on polling', 'replies', 'lost', 'rtt p50 ms', 'p95 ms', 'p99 ms', 'connect p95 ms', 'client disconnects', 'connect errors'],
    rows: runs.map((r) => [
      r.target,
      String(r.repeat + 1),
      `${r.connected}/${r.clients}`,
      String(r.upgraded),
      String(r.endedOnPolling),
      `${r.replies}/${r.expected}`,
      `${fixed(((r.expected - r.replies) / r.expected) * 100, 2)} %`,
      fixed(r.rtt.p50),
      fixed(r.rtt.p95),
      fixed(r.rtt.p99),
      fixed(r.connect.p95),
      reasons(r.disconnects),
      reasons(r.connectErrors),
    ]),
    align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l'],
  };
}

function ratioTable(runs: readonly RunResult[]): Table {
  const of = (t: TargetId, k: keyof Summary) => median(runs.filter((r) => r.target === t).map((r) => r.rtt[k]));
  return {
    header: ['round trip (median over runs)', 'direct ms', 'gateway ms', 'gateway/direct', 'added ms'],
    rows: (['p50', 'p95', 'p99'] as const).map((k) => [k, fixed(of('direct', k)), fixed(of('gateway', k)), ratio(of('gateway', k), of('direct', k)), fixed(of('gateway', k) - of('direct', k))]),
  };
}

function memoryTable(runs: readonly RunResult[]): Table {
  return {
    header: ['gateway run', 'open conversations', 'RSS before MiB', 'RSS plateau MiB', 'RSS KiB / conv', 'heap before MiB', 'heap plateau MiB', 'heap KiB / conv', 'sessions per pod', 'pod disconnects', 'gateway errors'],
    rows: runs
      .filter((r) => r.target === 'gateway')
      .map((r) => [
        String(r.repeat + 1),
        String(r.openAtPlateau),
        fixed(r.memory?.rssBaseMiB),
        fixed(r.memory?.rssPlateauMiB),
        fixed(r.memory?.rssPerConvKiB, 1),
        fixed(r.memory?.heapBaseMiB),
        fixed(r.memory?.heapPlateauMiB),
        fixed(r.memory?.heapPerConvKiB, 1),
        r.podSessions.join(' / '),
        reasons(r.podDisconnects),
        reasons(r.gatewayErrors ?? {}),
      ]),
    align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'l', 'l'],
  };
}

/** The soft and hard limits on open files (`ulimit -n`), NaN when unknown. */
function fileLimits(): { soft: number; hard: number } {
  const r = runSync('sh', ['-c', 'ulimit -Sn; ulimit -Hn']);
  const [soft, hard] = r.out.trim().split('\n').map((x) => (x.trim() === 'unlimited' ? Infinity : Number(x)));
  return { soft: soft ?? NaN, hard: hard ?? NaN };
}

export const widgets: Scenario = {
  name: 'widgets',
  title: 'Chat widgets: thousands of real socket.io clients through the gateway vs straight to a pod',
  async prepare(options, log) {
    const base = options.quick ? quickPlan : fullPlan;
    const limits = fileLimits();
    // Per conversation at most ~3 sockets in this process (client side) and ~3 at the pod, during the upgrade.
    const fdBudget = Number.isFinite(limits.soft) ? Math.floor((limits.soft - 512) / 6) : base.clients;
    const clients = Math.min(base.clients, fdBudget);
    if (clients < base.clients) log(`ulimit -n is ${limits.soft} (hard ${limits.hard}): ${clients} clients instead of ${base.clients}; raise it with \`ulimit -n ${base.clients * 6 + 512}\``);
    const plan: Plan = { ...base, clients, repeats: options.repeats ?? base.repeats };
    const perRun = 3 + plan.openMs / 1000 + plan.holdMs / 1000 + 4;
    const estimateS = perRun * 2 * plan.repeats;
    return {
      estimateS,
      plan: `${plan.clients} socket.io conversations opened over ${plan.openMs / 1000} s, held ${plan.holdMs / 1000} s, ${MESSAGES} messages each; direct and gateway (${PODS} pods), ${plan.repeats} repeat(s)`,
      async run() {
        const progress = new Progress('widgets', plan.repeats * 2, estimateS);
        const runs: RunResult[] = [];
        for (let rep = 0; rep < plan.repeats; rep++) {
          const order: TargetId[] = rep % 2 === 0 ? ['direct', 'gateway'] : ['gateway', 'direct'];
          for (const target of order) {
            progress.begin(`${target} run ${rep + 1}`, perRun);
            runs.push(await runOnce(target, rep, plan, 1000 + rep, progress));
          }
        }
        progress.finish();
        const sorted = [...runs].sort((a, b) => a.repeat - b.repeat || a.target.localeCompare(b.target));
        const results = runsTable(sorted);
        const ratios = ratioTable(sorted);
        const memory = memoryTable(sorted);
        const gw = sorted.filter((r) => r.target === 'gateway');
        const direct = sorted.filter((r) => r.target === 'direct');
        const complete = (r: RunResult) => r.connected === r.clients && r.replies === r.expected;
        const p95 = (rs: RunResult[]) => median(rs.map((r) => r.rtt.p95));
        const acceptance = {
          everyClientEveryReplyDirect: direct.every(complete),
          everyClientEveryReplyGateway: gw.every(complete),
          p95Ratio: p95(gw) / p95(direct),
          p95Within1_5x: p95(gw) <= 1.5 * p95(direct),
        };
        const accTable: Table = {
          header: ['acceptance (issue 16)', 'result'],
          rows: [
            ['every client connects and gets every reply, direct (every run)', acceptance.everyClientEveryReplyDirect ? 'yes' : 'no'],
            ['every client connects and gets every reply, gateway (every run)', acceptance.everyClientEveryReplyGateway ? 'yes' : 'no'],
            ['round trip p95 gateway/direct (median over runs) within 1.5x', `${ratio(p95(gw), p95(direct))} ${acceptance.p95Within1_5x ? 'yes' : 'no'}`],
          ],
        };
        const command = benchCommand('widgets', options);
        process.stdout.write(`\n${markdownTable(results)}\n\n${markdownTable(ratios)}\n\n${markdownTable(memory)}\n\n${markdownTable(accTable)}\n`);
        const md = [
          '# Chat widgets: real socket.io clients through the gateway vs straight to a pod',
          '',
          `Command: \`${command}\`. ${plan.clients} socket.io-client 4 conversations (transports polling then websocket, upgrade on, no`,
          `reconnection, connect timeout 20 s) opened evenly over ${plan.openMs / 1000} s and held until ${(plan.openMs + plan.holdMs) / 1000} s; each sends`,
          `\`session_request\`, then ${MESSAGES} \`user_uttered\` (think time ${plan.thinkMs[0]}-${plan.thinkMs[1]} ms before each) and waits up to ${plan.replyTimeoutMs / 1000} s`,
          `for each \`bot_uttered\`. Pods: emulated, a reply ${podSpec('x').serviceMs} ms after the message. direct: one pod; gateway: one gateway`,
          `process, pool \`affinity: rasa\` over ${PODS} pods. ${plan.repeats} repeat(s), alternating which target goes first; 20`,
          'warm-up conversations before each run. Round trip: emit `user_uttered` -> its `bot_uttered`; percentiles nearest-rank.',
          '"ended on polling": connected clients whose transport was still polling at the end. Disconnect reasons are',
          "socket.io-client's, with the transport at that moment (the normal end, `io client disconnect`, is not counted).",
          `2 cores shared with other work: compare ratios, not absolute numbers. Machine: ${JSON.stringify(machine())}.`,
          '',
          '## Per run',
          '',
          markdownTable(results),
          '',
          '## Round trip, gateway vs direct',
          '',
          markdownTable(ratios),
          '',
          '## Gateway memory per open conversation, and the pods\' view',
          '',
          'RSS and heap from the gateway\'s /metrics (`process_resident_memory_bytes`, `nodejs_heap_size_used_bytes`) at the',
          'plateau minus before the clients arrived, over the sessions the pods held then (no forced GC: an upper bound).',
          '',
          markdownTable(memory),
          '',
          '## Acceptance',
          '',
          markdownTable(accTable),
          '',
          '![round trip per target](widgets.png)',
        ].join('\n');
        const targets = sorted.map((r) => `${r.target} #${r.repeat + 1}`);
        const chart = hbarChart({
          name: 'widgets',
          title: `Chat widgets: message round trip, ${plan.clients} socket.io conversations`,
          subtitle: 'p50, p95 (bars) and p99 (whiskers) per run, ms',
          categories: targets,
          series: [
            { name: 'p50', values: sorted.map((r) => r.rtt.p50) },
            { name: 'p95', values: sorted.map((r) => r.rtt.p95), whiskers: sorted.map((r) => r.rtt.p99) },
          ],
          xLabel: 'round trip (ms)',
        });
        const files = writeResults({
          scenario: 'widgets',
          outDir: options.outDir,
          json: { scenario: 'widgets', command, plan, pods: { count: PODS, ...podSpec('x') }, pool, machine: machine(), fileLimits: limits, runs: sorted, acceptance },
          markdown: md,
          charts: [chart],
        });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
