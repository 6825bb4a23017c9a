/**
 * `cluster` (issue 17): what a grant costs through the cluster. Two parts, in one run (the machine's
 * cores are shared). Targets: the grant round trip at most 0.5 ms at p50 on loopback, and at least
 * 5,000 grants/s on one core of the scheduler.
 *
 * The link: two processes on loopback, each a cluster member (src/cluster/); this one sends
 * grant-sized requests, the other (bench/lib/cluster-scheduler.ts) answers each at once, without a
 * queue. Measured: the request/reply round trip one at a time (p50, p95, p99), and the pairs per
 * second the far side sustains with 256 outstanding, with its CPU time, as pairs per core-second.
 *
 * The real scheduler: a gateway process (dist/src/main.js, cluster on, static peers = the gateway
 * and this process) schedules a pool of 8 fake pods x 32 slots that never see traffic; this process
 * is the other member and plays a non-scheduler replica speaking the admission protocol
 * (bench/lib/remote-replica.ts): admit -> grant, then release + done. The ports are chosen so the
 * gateway wins the pool's rendezvous election, checked on its `/debug/cluster`. Measured: the grant
 * round trip one at a time, then closed loops of W requests outstanding, each grant followed at once
 * by release + done and a new admit: W below the 256 slots (grants at once), W above them (the
 * queue holds W - 256 waiters, each release lets one in), and with conversation keys (sticky table,
 * one turn at a time per conversation). The scheduler's CPU is its `process_cpu_seconds_total`
 * (/metrics) over each interval. At the end its accounting must be back to zero (`/debug/pools`:
 * nothing queued or in flight on any pod), every slot must be grantable again (256 admits granted,
 * the 257th queued until a release) and every conversation's turn free; the run fails otherwise.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createCluster, type Cluster, type ClusterMessage } from '../../src/cluster/cluster.js';
import { rendezvousWinner } from '../../src/cluster/rendezvous.js';
import { clusterUrl, debugCluster, debugPools, startGateways, type Gateways } from '../lib/gateway.js';
import { repoRoot } from '../lib/paths.js';
import { freePort, sleep } from '../lib/procs.js';
import { RemoteReplica, RejectedError, type AdmitOptions, type Grant } from '../lib/remote-replica.js';
import { markdownTable, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { scrape } from '../lib/scrape.js';
import { summarize, type Summary } from '../lib/stats.js';

interface LinkResult {
  readonly roundTripMs: Summary;
  readonly throughput: { readonly pairs: number; readonly seconds: number; readonly pairsPerSecond: number; readonly schedulerCpuSeconds: number; readonly pairsPerCoreSecond: number; readonly window: number };
}

/** Request/reply by id over the cluster: resolves with the reply. */
function requester(cluster: Cluster, peer: string) {
  let next = 0;
  const waiting = new Map<number, (m: ClusterMessage) => void>();
  const answer = (_from: string, m: ClusterMessage) => {
    const done = waiting.get(m.id as number);
    waiting.delete(m.id as number);
    done?.(m);
  };
  cluster.on('adm.bench.granted', answer);
  cluster.on('adm.bench.cpu', answer);
  return (t: string, body: object = {}): Promise<ClusterMessage> =>
    new Promise((resolve, reject) => {
      const id = next++;
      waiting.set(id, resolve);
      if (!cluster.send(peer, { t, id, ...body })) reject(new Error('link down'));
    });
}

async function measureLink(quick: boolean, log: (line: string) => void): Promise<LinkResult> {
  const [mine, theirs] = [await freePort(), await freePort()];
  const self = clusterUrl(mine);
  const peer = clusterUrl(theirs);
  const child = spawn(process.execPath, [join(repoRoot, 'dist', 'bench', 'lib', 'cluster-scheduler.js'), String(theirs), self], { stdio: ['ignore', 'pipe', 'inherit'] });
  await once(child.stdout!, 'data');
  const cluster = await createCluster({ listen: { host: '127.0.0.1', port: mine }, advertise: self, peers: [self, peer], heartbeatMs: 250, deadAfterMs: 2000 });
  await cluster.start(['bench']);
  try {
    const ask = requester(cluster, peer);
    const grant = { pool: 'dialog', key: 'conversation-0123456789', deadlineMs: 30000 };
    for (let tries = 0; ; tries++) {
      try {
        await ask('adm.bench.grant', grant);
        break;
      } catch (err) {
        if (tries > 200) throw err;
        await new Promise((r) => setTimeout(r, 25));
      }
    }
    // Low load: one at a time, after a warm-up.
    const samples: number[] = [];
    const n = quick ? 1000 : 5000;
    for (let i = 0; i < n + 500; i++) {
      const t0 = performance.now();
      await ask('adm.bench.grant', grant);
      if (i >= 500) samples.push(performance.now() - t0);
    }
    const roundTripMs = summarize(samples);
    log(`round trip p50 ${roundTripMs.p50.toFixed(3)} ms, p95 ${roundTripMs.p95.toFixed(3)} ms`);
    // Throughput: a window of outstanding requests, each reply sends the next.
    const window = 256;
    const seconds = quick ? 2 : 5;
    const cpuBefore = ((await ask('adm.bench.cpu')).cpuMs as number) / 1000;
    const started = performance.now();
    const until = started + seconds * 1000;
    let pairs = 0;
    await Promise.all(
      Array.from({ length: window }, async () => {
        while (performance.now() < until) {
          await ask('adm.bench.grant', grant);
          pairs++;
        }
      }),
    );
    const elapsed = (performance.now() - started) / 1000;
    const schedulerCpuSeconds = ((await ask('adm.bench.cpu')).cpuMs as number) / 1000 - cpuBefore;
    const throughput = { pairs, seconds: elapsed, pairsPerSecond: pairs / elapsed, schedulerCpuSeconds, pairsPerCoreSecond: pairs / schedulerCpuSeconds, window };
    log(`${Math.round(throughput.pairsPerSecond)} pairs/s; scheduler CPU ${schedulerCpuSeconds.toFixed(2)} s -> ${Math.round(throughput.pairsPerCoreSecond)} pairs per core-second`);
    return { roundTripMs, throughput };
  } finally {
    await cluster.stop();
    child.kill('SIGTERM');
    await once(child, 'exit');
  }
}

// ---- the real scheduler ----

const PODS = 8;
const SLOTS = 32;
const TOTAL_SLOTS = PODS * SLOTS;
const POOL = 'default';
/** The latency each release reports (`l`): feeds the scheduler's peak-EWMA and service times as a real one would. */
const RELEASE_LATENCY_MS = 20;
/** Turns per conversation in the keyed loop before a worker starts a new one. */
const TURNS = 4;

interface Setting {
  readonly window: number;
  readonly keyed: boolean;
}

interface LoopResult extends Setting {
  readonly grants: number;
  readonly seconds: number;
  readonly grantsPerSecond: number;
  readonly schedulerCpuSeconds: number;
  readonly grantsPerCoreSecond: number;
  /** admit -> grant under this load (queue wait included when W exceeds the slots). */
  readonly grantWaitMs: Summary;
  /** `/debug/pools` queueLength half-way through. */
  readonly queuedMidRun: number;
  readonly stickyCopies: number;
  /** This process's CPU seconds (the replica side and its load loop) over the interval. */
  readonly replicaCpuSeconds: number;
}

interface Accounting {
  readonly queueLength: number;
  readonly inflight: number;
  readonly podInflight: number;
  readonly podWaiting: number;
}

interface SchedulerResult {
  readonly scheduler: string;
  readonly pool: { readonly pods: number; readonly slotsPerPod: number };
  readonly roundTripMs: Summary;
  readonly loops: readonly LoopResult[];
  readonly accountingAfter: Accounting;
  /** All slots granted again after the run, the next admit queued until a release. */
  readonly everySlot: { readonly granted: number; readonly queuedBeyond: boolean; readonly grantedOnRelease: boolean };
  /** Each keyed worker's last conversation got one more turn at once (no gate left held). */
  readonly turnsFree: { readonly checked: number; readonly granted: number };
  readonly accountingFinal: Accounting;
  readonly strays: number;
  readonly ok: boolean;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_r, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** Cluster ports for the gateway and this process such that the gateway wins the pool's election (static-elector.ts). */
async function electionPorts(): Promise<{ gateway: number; self: number }> {
  for (let tries = 0; tries < 64; tries++) {
    const [gateway, self] = [await freePort(), await freePort()];
    if (gateway !== self && rendezvousWinner(POOL, [clusterUrl(gateway), clusterUrl(self)]) === clusterUrl(gateway)) return { gateway, self };
  }
  throw new Error('no pair of free ports found where the gateway wins the election');
}

interface PoolView {
  readonly name: string;
  readonly queueLength: number;
  readonly inflight: number;
  readonly endpoints: readonly { readonly inflight: number; readonly waiting: number }[];
}

async function accounting(adminUrl: string): Promise<Accounting> {
  const view = (await debugPools(adminUrl)) as { pools?: readonly PoolView[] };
  const pool = view.pools?.find((p) => p.name === POOL);
  if (!pool) throw new Error(`no pool ${POOL} in /debug/pools: ${JSON.stringify(view)}`);
  const sum = (f: (e: PoolView['endpoints'][number]) => number) => pool.endpoints.reduce((s, e) => s + f(e), 0);
  return { queueLength: pool.queueLength, inflight: pool.inflight, podInflight: sum((e) => e.inflight), podWaiting: sum((e) => e.waiting) };
}

const isZero = (a: Accounting) => a.queueLength === 0 && a.inflight === 0 && a.podInflight === 0 && a.podWaiting === 0;

/** Polls `/debug/pools` until nothing is queued or in flight (the last releases may still be on the wire), at most `timeoutMs`. */
async function settled(adminUrl: string, timeoutMs = 3000): Promise<Accounting> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const a = await accounting(adminUrl);
    if (isZero(a) || performance.now() > deadline) return a;
    await sleep(50);
  }
}

async function cpuOf(adminUrl: string): Promise<number> {
  return (await scrape(adminUrl)).value('process_cpu_seconds_total');
}

/** W workers, each: admit, and on the grant release + done at once, then the next admit; for `seconds`. */
async function closedLoop(replica: RemoteReplica, adminUrl: string, setting: Setting, seconds: number, lastKeys: Map<number, string>): Promise<LoopResult> {
  const waits: number[] = [];
  const stickyBefore = replica.stickyCopies;
  const cpuBefore = await cpuOf(adminUrl);
  const ownBefore = process.cpuUsage();
  const started = performance.now();
  const until = started + seconds * 1000;
  let grants = 0;
  const worker = async (w: number) => {
    for (let turn = 0; performance.now() < until; turn++) {
      let ask: AdmitOptions = {};
      if (setting.keyed) {
        const key = `conversation-${w}-${Math.floor(turn / TURNS)}`;
        lastKeys.set(w, key);
        ask = { key, ordered: true };
      }
      const t0 = performance.now();
      const grant = await replica.admit(ask);
      waits.push(performance.now() - t0);
      replica.finish(grant, RELEASE_LATENCY_MS);
      grants++;
    }
  };
  const mid = sleep((seconds * 1000) / 2).then(() => accounting(adminUrl));
  await withTimeout(Promise.all(Array.from({ length: setting.window }, (_, w) => worker(w))), seconds * 1000 + 15_000, `${setting.window} outstanding`);
  const elapsed = (performance.now() - started) / 1000;
  const own = process.cpuUsage(ownBefore);
  const schedulerCpuSeconds = (await cpuOf(adminUrl)) - cpuBefore;
  return {
    ...setting,
    grants,
    seconds: elapsed,
    grantsPerSecond: grants / elapsed,
    schedulerCpuSeconds,
    grantsPerCoreSecond: grants / schedulerCpuSeconds,
    grantWaitMs: summarize(waits),
    queuedMidRun: (await mid).queueLength,
    stickyCopies: replica.stickyCopies - stickyBefore,
    replicaCpuSeconds: (own.user + own.system) / 1e6,
  };
}

/** After the run: every slot grantable again, one more queued until a release. */
async function everySlot(replica: RemoteReplica): Promise<SchedulerResult['everySlot']> {
  let granted = 0;
  const grants: Grant[] = [];
  const admits = Array.from({ length: TOTAL_SLOTS }, () => replica.admit().then((g) => (grants.push(g), granted++)));
  const beyond = replica.admit();
  let beyondGranted = false;
  void beyond.then(() => (beyondGranted = true), () => {});
  await withTimeout(Promise.all(admits), 5000, `${TOTAL_SLOTS} admits after the run`).catch(() => {});
  await sleep(200);
  const queuedBeyond = granted === TOTAL_SLOTS && !beyondGranted;
  for (const g of grants.splice(0, 1)) replica.finish(g, RELEASE_LATENCY_MS);
  const last = await withTimeout(beyond, 2000, 'the admit beyond the slots').catch(() => undefined);
  for (const g of [...grants, ...(last ? [last] : [])]) replica.finish(g, RELEASE_LATENCY_MS);
  return { granted, queuedBeyond, grantedOnRelease: last !== undefined };
}

async function measureScheduler(quick: boolean, log: (line: string) => void): Promise<SchedulerResult> {
  const ports = await electionPorts();
  const scheduler = clusterUrl(ports.gateway);
  const self = clusterUrl(ports.self);
  const member: Cluster = await createCluster({ listen: { host: '127.0.0.1', port: ports.self }, advertise: self, peers: [scheduler, self], heartbeatMs: 250, deadAfterMs: 2000 });
  const replica = new RemoteReplica(member, scheduler, POOL);
  await member.start([POOL]);
  let gateways: Gateways | undefined;
  try {
    const pods = Array.from({ length: PODS }, (_, i) => `http://127.0.0.${i + 2}:9`); // never dialled
    gateways = await startGateways({
      endpoints: pods,
      pool: { slotsPerEndpoint: SLOTS, slowStartMs: 0, affinity: 'rasa' },
      cluster: { ports: [ports.gateway], others: [self] },
    });
    const admin = gateways.adminUrls[0] as string;
    const view = (await debugCluster(admin)) as { pools?: Record<string, { scheduler?: string | null }> };
    const named = view.pools?.[POOL]?.scheduler;
    if (named !== scheduler) throw new Error(`the gateway names ${named} the scheduler of ${POOL}, not itself (${scheduler}): ${JSON.stringify(view)}`);
    for (let tries = 0; member.schedulerOf(POOL) !== scheduler; tries++) {
      if (tries > 200) throw new Error(`this member names ${member.schedulerOf(POOL)} the scheduler, not ${scheduler}`);
      await sleep(25);
    }
    // The vote and the first admit may reach the gateway a moment before its scheduler takes the pool.
    for (let tries = 0; ; tries++) {
      try {
        replica.vote();
        replica.finish(await withTimeout(replica.admit(), 2000, 'first admit'), RELEASE_LATENCY_MS);
        break;
      } catch (err) {
        if (!(err instanceof RejectedError) || err.code !== 'NOT_SCHEDULER' || tries > 100) throw err;
        await sleep(50);
      }
    }
    // The grant round trip, one at a time, after a warm-up.
    const samples: number[] = [];
    const n = quick ? 1000 : 5000;
    for (let i = 0; i < n + 500; i++) {
      const t0 = performance.now();
      const grant = await withTimeout(replica.admit(), 2000, 'sequential admit');
      if (i >= 500) samples.push(performance.now() - t0);
      replica.finish(grant, RELEASE_LATENCY_MS);
    }
    const roundTripMs = summarize(samples);
    log(`real scheduler: grant round trip p50 ${roundTripMs.p50.toFixed(3)} ms, p95 ${roundTripMs.p95.toFixed(3)} ms`);
    const settings: Setting[] = [
      { window: 64, keyed: false },
      { window: TOTAL_SLOTS, keyed: false },
      { window: 3 * TOTAL_SLOTS, keyed: false },
      { window: TOTAL_SLOTS, keyed: true },
    ];
    const seconds = quick ? 2 : 5;
    const lastKeys = new Map<number, string>();
    const loops: LoopResult[] = [];
    for (const setting of settings) {
      const r = await closedLoop(replica, admin, setting, seconds, lastKeys);
      loops.push(r);
      log(`${setting.window} outstanding${setting.keyed ? ', keyed' : ''}: ${Math.round(r.grantsPerSecond)} grants/s; scheduler CPU ${r.schedulerCpuSeconds.toFixed(2)} s -> ${Math.round(r.grantsPerCoreSecond)} grants per core-second; ${r.queuedMidRun} queued mid-run`);
    }
    const accountingAfter = await settled(admin);
    const slots = await everySlot(replica);
    let turnsGranted = 0;
    for (const key of lastKeys.values()) {
      const grant = await withTimeout(replica.admit({ key, ordered: true }), 2000, `a turn of ${key}`).catch(() => undefined);
      if (!grant) continue;
      turnsGranted++;
      replica.finish(grant, RELEASE_LATENCY_MS);
    }
    const accountingFinal = await settled(admin);
    const ok =
      isZero(accountingAfter) &&
      isZero(accountingFinal) &&
      slots.granted === TOTAL_SLOTS &&
      slots.queuedBeyond &&
      slots.grantedOnRelease &&
      turnsGranted === lastKeys.size &&
      replica.strays === 0;
    return {
      scheduler,
      pool: { pods: PODS, slotsPerPod: SLOTS },
      roundTripMs,
      loops,
      accountingAfter,
      everySlot: slots,
      turnsFree: { checked: lastKeys.size, granted: turnsGranted },
      accountingFinal,
      strays: replica.strays,
      ok,
    };
  } finally {
    await gateways?.stop();
    await member.stop();
  }
}

const ms = (v: number) => v.toFixed(3);
const counts = (a: Accounting) => `queued ${a.queueLength}, in flight ${a.inflight}, on pods ${a.podInflight}, waiting for a pod ${a.podWaiting}`;

function summaryTable(link: LinkResult, s: SchedulerResult): Table {
  const worst = Math.min(...s.loops.map((l) => l.grantsPerCoreSecond));
  return {
    header: ['part', 'measure', 'value', 'target'],
    align: ['l', 'l', 'r', 'l'],
    rows: [
      ['link', 'round trip p50 (ms)', ms(link.roundTripMs.p50), '<= 0.5'],
      ['link', 'round trip p95 (ms)', ms(link.roundTripMs.p95), ''],
      ['link', 'round trip p99 (ms)', ms(link.roundTripMs.p99), ''],
      ['link', `pairs/s (${link.throughput.window} outstanding)`, String(Math.round(link.throughput.pairsPerSecond)), ''],
      ['link', 'scheduler CPU (share of one core)', (link.throughput.schedulerCpuSeconds / link.throughput.seconds).toFixed(2), ''],
      ['link', 'pairs per core-second (scheduler side)', String(Math.round(link.throughput.pairsPerCoreSecond)), '>= 5000'],
      ['real scheduler', 'grant round trip p50 (ms)', ms(s.roundTripMs.p50), '<= 0.5'],
      ['real scheduler', 'grant round trip p95 (ms)', ms(s.roundTripMs.p95), ''],
      ['real scheduler', 'grant round trip p99 (ms)', ms(s.roundTripMs.p99), ''],
      ['real scheduler', 'grants per core-second, lowest of the loops below', String(Math.round(worst)), '>= 5000'],
      ['real scheduler', 'accounting after the loops', isZero(s.accountingAfter) ? 'zero' : counts(s.accountingAfter), 'zero'],
      ['real scheduler', `every slot again (${TOTAL_SLOTS} granted, the next queued until a release)`, s.everySlot.granted === TOTAL_SLOTS && s.everySlot.queuedBeyond && s.everySlot.grantedOnRelease ? 'yes' : JSON.stringify(s.everySlot), 'yes'],
      ['real scheduler', "each keyed worker's last conversation: one more turn granted", `${s.turnsFree.granted} of ${s.turnsFree.checked}`, 'all'],
      ['real scheduler', 'accounting at the end', isZero(s.accountingFinal) ? 'zero' : counts(s.accountingFinal), 'zero'],
    ],
  };
}

function loopTable(s: SchedulerResult): Table {
  return {
    header: ['outstanding', 'keys', 'grants/s', 'scheduler CPU (share of one core)', 'grants per core-second', 'replica CPU (this process)', 'queued mid-run', 'admit -> grant p50 (ms)', 'p99 (ms)'],
    align: ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
    rows: s.loops.map((l) => [
      String(l.window),
      l.keyed ? `sticky, ordered (${TURNS} turns each)` : 'none',
      String(Math.round(l.grantsPerSecond)),
      (l.schedulerCpuSeconds / l.seconds).toFixed(2),
      String(Math.round(l.grantsPerCoreSecond)),
      (l.replicaCpuSeconds / l.seconds).toFixed(2),
      String(l.queuedMidRun),
      ms(l.grantWaitMs.p50),
      ms(l.grantWaitMs.p99),
    ]),
  };
}

export const cluster: Scenario = {
  name: 'cluster',
  title: 'what a grant costs through the cluster: the link alone, then a real gateway scheduling (round trip, grants per core-second)',
  async prepare(options, log) {
    return {
      estimateS: options.quick ? 20 : 45,
      plan: 'the link (two members: sequential round trips, then 256 outstanding); the real scheduler (a gateway with 8 x 32 slots: sequential grants, then 64, 256, 768 and 256 keyed outstanding)',
      async run() {
        const link = await measureLink(options.quick, log);
        const scheduler = await measureScheduler(options.quick, log);
        const tables = [summaryTable(link, scheduler), loopTable(scheduler)];
        const md = [
          '# Cluster: the link, and the real scheduler',
          '',
          '**The link.** Two processes on loopback, each a cluster member (src/cluster/). This one sends grant-sized',
          "requests (`{ t, id, pool, key, deadlineMs }`), the other answers each at once with `{ t, id, pod }`: the link's",
          'cost, without the queue. Round trips one at a time (after 500 warm-up), then 256 requests outstanding',
          "for the throughput; the far side's CPU time comes from its own `process.cpuUsage()`.",
          '',
          `**The real scheduler.** A gateway process (\`dist/src/main.js\`, cluster on, static peers: the gateway and`,
          `this process, ports chosen so the gateway wins the pool's election, checked on its \`/debug/cluster\`)`,
          `schedules a pool of ${PODS} fake pods x ${SLOTS} slots (dispatch default, \`affinity: rasa\`); the pods never`,
          'see traffic. This process plays a non-scheduler replica speaking the admission protocol',
          '(`adm.admit` -> `adm.grant`, then `adm.release` with outcome ok and `adm.done`). Round trips one at a time',
          `(after 500 warm-up); then closed loops for ${options.quick ? 2 : 5} s each, each grant followed at once by release +`,
          `done and a new admit: ${TOTAL_SLOTS} outstanding or fewer are granted at once, ${3 * TOTAL_SLOTS} keep ${2 * TOTAL_SLOTS} waiting in the`,
          "scheduler's queue (each release lets one in), and the keyed loop sends conversation keys with one turn at a",
          `time (${TURNS} turns per conversation, then a new one: sticky table, ordering gate, a binding copied to this`,
          "process for each new conversation). The scheduler's CPU is its `process_cpu_seconds_total` over each",
          'loop. After the loops the accounting must be zero (`/debug/pools`), every slot grantable again and',
          "every conversation's turn free, or the run fails.",
          '',
          'One run; the machine has 2 shared cores, so grants/s is bounded by both processes sharing them, and',
          "grants per core-second (grants / scheduler CPU seconds) is what one core sustains on the scheduler's side.",
          '',
          `Command: \`${benchCommand('cluster', options)}\``,
          '',
          markdownTable(tables[0] as Table),
          '',
          markdownTable(tables[1] as Table),
        ].join('\n');
        process.stdout.write(`\n${tables.map((t) => markdownTable(t)).join('\n\n')}\n`);
        const files = writeResults({ scenario: 'cluster', outDir: options.outDir, json: { link, scheduler }, markdown: md, charts: [] });
        log(`wrote ${files.join(', ')}`);
        if (!scheduler.ok) throw new Error(`the scheduler's accounting is not back to zero or slots/turns are lost: ${JSON.stringify({ after: scheduler.accountingAfter, everySlot: scheduler.everySlot, turnsFree: scheduler.turnsFree, final: scheduler.accountingFinal, strays: scheduler.strays })}`);
      },
    };
  },
};
