/**
 * `failover` (issue 17): what one central queue across replicas costs and how it survives losing its
 * scheduler, with real gateway processes (cluster on, static peers) and emulated pods.
 * - Grant cost: two replicas; the same sequential parses through the replica that schedules the pool
 *   (a local grant) and through the other one (a grant over the cluster link), interleaved in blocks,
 *   over one keep-alive connection each (undici, not fetch: its own cost per request is larger than
 *   what is measured): the p50 difference is what a remote grant adds. Twice, one after the other:
 *   with grants in advance (`cluster.prefetchGrants: 1`, the default) and without (0).
 * - SIGKILL: three replicas, closed-loop clients on the two that do not schedule; the scheduler is
 *   killed mid-run. Measured: every answer's status, the time until both survivors name the same new
 *   scheduler (polling `/debug/cluster` every 10 ms), and latency before, around and after the kill.
 * - Partition: three replicas, the scheduler cut off from both peers behind a relay (alive, its own
 *   clients still served), then healed; clients on all three. Measured: statuses, the most requests
 *   any pod held in each phase, when the cut replica lost quorum, when the others named a successor
 *   and called it dead, and when all three agreed again after healing.
 * Both losses run twice: with the default `cluster.takeoverWaitMs` and with 0, the price of the wait
 * (latency right after the loss) beside what it buys (the most requests a pod held).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RasaPod } from '../../src/emulator/rasa-pod.js';
import { Pool } from 'undici';
import { rendezvousWinner } from '../../src/cluster/rendezvous.js';
import { freePort, Relay } from '../../test/helpers/cluster.js';
import { agreed, clusterUrl, startGateways, type Gateways } from '../lib/gateway.js';
import { startPod } from '../lib/pods.js';
import { repoRoot } from '../lib/paths.js';
import { benchTmp, startProcess } from '../lib/procs.js';
import { markdownTable, writeResults } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { summarize, type Summary } from '../lib/stats.js';

interface ClusterView {
  readonly pools: Record<string, { scheduler: string | null }>;
  readonly self: string | null;
  readonly quorum: boolean;
  readonly peers: readonly { readonly url: string; readonly state: string }[];
}

async function view(adminUrl: string): Promise<ClusterView | undefined> {
  try {
    return (await (await fetch(`${adminUrl}/debug/cluster`)).json()) as ClusterView;
  } catch {
    return undefined;
  }
}

async function parse(url: string, text: string): Promise<{ status: number; ms: number; atMs: number }> {
  const atMs = performance.now();
  try {
    const res = await fetch(`${url}/model/parse`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text }) });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - atMs, atMs };
  } catch {
    return { status: 0, ms: performance.now() - atMs, atMs };
  }
}

/** Which replica schedules `pool`, by index into the gateways' lists. */
async function schedulerIndex(g: Gateways, pool: string): Promise<number> {
  const views = await Promise.all(g.adminUrls.map(view));
  const url = views[0]?.pools[pool]?.scheduler;
  return views.findIndex((v) => v?.self === url);
}

/** Sequential parses over one keep-alive connection: each answer's time, 0 for a status other than 200. */
async function keepAliveParses(client: Pool, count: number, into: number[]): Promise<void> {
  const body = JSON.stringify({ text: 'grant' });
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const r = await client.request({ path: '/model/parse', method: 'POST', headers: { 'content-type': 'application/json' }, body });
    await r.body.arrayBuffer();
    if (r.statusCode === 200) into.push(performance.now() - t0);
  }
}

async function grantCost(endpoints: readonly string[], quick: boolean, prefetchGrants: number) {
  const g = await startGateways({ endpoints, pool: { slotsPerEndpoint: 16, dispatch: 'greedy' }, replicas: 2, cluster: { settings: { prefetchGrants } } });
  const s = await schedulerIndex(g, 'default');
  const clients = { local: new Pool(g.urls[s] as string, { connections: 1 }), remote: new Pool(g.urls[1 - s] as string, { connections: 1 }) };
  try {
    const blocks = quick ? 6 : 20;
    const perBlock = 200;
    const samples = { local: [] as number[], remote: [] as number[] };
    for (let b = 0; b < blocks + 1; b++) {
      for (const name of b % 2 === 0 ? (['local', 'remote'] as const) : (['remote', 'local'] as const)) {
        await keepAliveParses(clients[name], perBlock, b > 0 ? samples[name] : []);
      }
    }
    const view = await (await fetch(`${g.adminUrls[1 - s]}/debug/cluster`)).json() as { pools: Record<string, { grantsInAdvance?: { claimed: number } }> };
    return { prefetchGrants, local: summarize(samples.local), remote: summarize(samples.remote), claimed: view.pools.default?.grantsInAdvance?.claimed ?? 0, sent: (blocks + 1) * perBlock };
  } finally {
    await Promise.all([clients.local.close(), clients.remote.close()]);
    await g.stop();
  }
}

interface Answer {
  readonly status: number;
  readonly ms: number;
  readonly atMs: number;
}

/** 12 closed-loop clients over `urls` (client c on urls[c mod n]) until `runMs` has passed. */
function closedLoop(urls: readonly string[], runMs: number): { answers: Answer[]; done: Promise<void> } {
  const start = performance.now();
  const answers: Answer[] = [];
  const clients = Array.from({ length: 12 }, async (_, c) => {
    while (performance.now() - start < runMs) answers.push(await parse(urls[c % urls.length] as string, `client ${c}`));
  });
  return { answers, done: Promise.all(clients).then(() => undefined) };
}

/** Polls every 10 ms until `test` holds; the ms it took from `since`, undefined after 15 s. */
async function until(since: number, test: () => Promise<boolean>): Promise<number | undefined> {
  while (performance.now() - since < 15_000) {
    if (await test()) return performance.now() - since;
    await new Promise((r) => setTimeout(r, 10));
  }
  return undefined;
}

function byStatus(answers: readonly Answer[]): Record<string, number> {
  const statuses: Record<string, number> = {};
  for (const a of answers) statuses[String(a.status)] = (statuses[String(a.status)] ?? 0) + 1;
  return statuses;
}

/** The 200 answers sent between `from` and `to` ms after `t0`. */
function phase(answers: readonly Answer[], t0: number, from: number, to: number): Summary {
  return summarize(answers.filter((a) => a.status === 200 && a.atMs - t0 >= from && a.atMs - t0 < to).map((a) => a.ms));
}

/** `cluster.takeoverWaitMs` for a run: the default (deadAfterMs / 2), or a value. */
type TakeoverWait = number | 'default';
const takeoverSettings = (wait: TakeoverWait) => (wait === 'default' ? {} : { takeoverWaitMs: wait });

async function sigkill(pods: readonly RasaPod[], quick: boolean, wait: TakeoverWait) {
  const g = await startGateways({ endpoints: pods.map((p) => p.url), pool: { slotsPerEndpoint: 2, dispatch: 'greedy' }, replicas: 3, cluster: { settings: takeoverSettings(wait) } });
  try {
    const s = await schedulerIndex(g, 'default');
    const killedUrl = (await view(g.adminUrls[s] as string))?.self;
    const survivors = g.urls.filter((_, i) => i !== s);
    const survivorAdmins = g.adminUrls.filter((_, i) => i !== s);
    const runMs = quick ? 5000 : 10_000;
    const load = closedLoop(survivors, runMs);
    for (const p of pods) p.maxHeld = 0;
    await new Promise((r) => setTimeout(r, runMs / 2));
    const peakBefore = Math.max(...pods.map((p) => p.maxHeld));
    for (const p of pods) p.maxHeld = 0;
    const killedAt = performance.now();
    g.procs[s]!.child.kill('SIGKILL');
    const agreedMs = await until(killedAt, async () => {
      const names = new Set((await Promise.all(survivorAdmins.map(view))).map((v) => v?.pools.default?.scheduler));
      const only = [...names][0];
      return names.size === 1 && typeof only === 'string' && only !== killedUrl;
    });
    await load.done;
    return {
      wait,
      answers: load.answers.length,
      statuses: byStatus(load.answers),
      agreedMs,
      peaks: { before: peakBefore, after: Math.max(...pods.map((p) => p.maxHeld)) },
      before: phase(load.answers, killedAt, -Infinity, 0),
      around: phase(load.answers, killedAt, 0, 2500),
      after: phase(load.answers, killedAt, 2500, Infinity),
    };
  } finally {
    await g.stop();
  }
}

/**
 * The scheduler replica cut off from its two peers (alive, its clients still served) and healed:
 * its cluster links all go through a relay that the bench cuts (connections destroyed, new ones
 * refused), as in test/cluster-scheduling.test.ts. The relay's address is chosen so that the
 * replica behind it wins the pool's election. Clients on all three replicas throughout.
 */
async function partition(pods: readonly RasaPod[], quick: boolean, wait: TakeoverWait) {
  const [a, b, c] = [await freePort('127.0.0.1'), await freePort('127.0.0.1'), await freePort('127.0.0.3')];
  let relay = await Relay.start('127.0.0.2', { host: '127.0.0.3', port: c });
  for (let tries = 0; rendezvousWinner('default', [clusterUrl(a), clusterUrl(b), relay.url]) !== relay.url; tries++) {
    if (tries > 50) throw new Error('no relay port makes the cut replica the scheduler');
    await relay.cut();
    relay = await Relay.start('127.0.0.2', { host: '127.0.0.3', port: c });
  }
  const g = await startGateways({
    endpoints: pods.map((p) => p.url),
    pool: { slotsPerEndpoint: 2, dispatch: 'greedy' },
    replicas: 3,
    cluster: { ports: [a, b, c], hosts: [undefined, undefined, '127.0.0.3'], advertise: [undefined, undefined, relay.url], settings: takeoverSettings(wait) },
  });
  try {
    const majority = g.adminUrls.slice(0, 2);
    const views = () => Promise.all(g.adminUrls.map(view));
    if ((await views())[0]?.pools.default?.scheduler !== relay.url) throw new Error('the replica behind the relay does not schedule');
    const phaseMs = quick ? 2500 : 4000;
    const peaks: number[][] = [];
    const peak = () => {
      peaks.push(pods.map((p) => p.maxHeld));
      for (const p of pods) p.maxHeld = 0;
    };
    for (const p of pods) p.maxHeld = 0;
    const load = closedLoop(g.urls, phaseMs * 3);
    await new Promise((r) => setTimeout(r, phaseMs));
    peak();
    const cutAt = performance.now();
    await relay.cut();
    const [lostQuorumMs, successorMs, deadMs] = await Promise.all([
      until(cutAt, async () => (await view(g.adminUrls[2] as string))?.quorum === false),
      until(cutAt, async () => (await Promise.all(majority.map(view))).every((v) => typeof v?.pools.default?.scheduler === 'string' && v.pools.default.scheduler !== relay.url)),
      until(cutAt, async () => (await Promise.all(majority.map(view))).every((v) => v?.peers.find((p) => p.url === relay.url)?.state === 'dead')),
    ]);
    await new Promise((r) => setTimeout(r, Math.max(0, phaseMs - (performance.now() - cutAt))));
    peak();
    const healedAt = performance.now();
    await relay.heal();
    const rejoinedMs = await until(healedAt, async () => agreed((await views()).filter((v): v is ClusterView => v !== undefined)) && (await views()).every((v) => v?.peers.every((p) => p.state === 'alive')));
    await load.done;
    peak();
    return {
      wait,
      answers: load.answers.length,
      statuses: byStatus(load.answers),
      lostQuorumMs,
      successorMs,
      deadMs,
      rejoinedMs,
      slots: 2,
      peaks: { before: Math.max(...peaks[0]!), cut: Math.max(...peaks[1]!), healed: Math.max(...peaks[2]!) },
      before: phase(load.answers, cutAt, -Infinity, 0),
      cut: phase(load.answers, cutAt, 0, healedAt - cutAt),
      healed: phase(load.answers, cutAt, healedAt - cutAt, Infinity),
    };
  } finally {
    await g.stop();
    await relay.cut();
  }
}

const ms = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));
const row = (label: string, s: Summary) => [label, String(s.n), ms(s.p50), ms(s.p95), ms(s.max)];

export const failover: Scenario = {
  name: 'failover',
  title: 'one queue across replicas: what a remote grant adds, losing the scheduler replica (SIGKILL), and cutting it off (partition)',
  async prepare(options, log) {
    return {
      estimateS: options.quick ? 70 : 140,
      plan: 'grant cost with 2 replicas, then SIGKILL of the scheduler of 3, then the scheduler of 3 cut off and healed, under closed-loop load; each loss with the default take-over wait and with none',
      async run() {
        // Grant cost: an upstream that answers at once (an emulated pod's timer would blur a fraction of a millisecond).
        const dir = benchTmp('upstream');
        mkdirSync(dir, { recursive: true });
        const upstream = startProcess(process.execPath, [join(repoRoot, 'dist', 'bench', 'lib', 'trivial-upstream.js')], { logFile: join(dir, 'upstream.log') });
        const fast = [`http://127.0.0.1:${(await upstream.waitFor(/listening on (\d+)/, 10_000))[1]}`];
        const burst = await Promise.all([0, 1, 2, 3].map((i) => startPod({ name: `pod-${i}`, slots: 2, serviceMs: 100 })));
        try {
          const costs = [];
          for (const prefetch of [1, 0]) {
            const cost = await grantCost(fast, options.quick, prefetch);
            log(`grant cost, prefetchGrants ${prefetch}: p50 local ${ms(cost.local.p50)} ms, remote ${ms(cost.remote.p50)} ms`);
            costs.push(cost);
          }
          const waits: TakeoverWait[] = ['default', 0];
          const kills = [];
          const cuts = [];
          for (const wait of waits) {
            const kill = await sigkill(burst, options.quick, wait);
            log(`sigkill, takeoverWaitMs ${wait}: ${kill.answers} answers ${JSON.stringify(kill.statuses)}, new scheduler agreed after ${ms(kill.agreedMs)} ms, peaks ${JSON.stringify(kill.peaks)}`);
            kills.push(kill);
          }
          for (const wait of waits) {
            const cut = await partition(burst, options.quick, wait);
            log(`partition, takeoverWaitMs ${wait}: ${cut.answers} answers ${JSON.stringify(cut.statuses)}, peaks ${JSON.stringify(cut.peaks)}`);
            cuts.push(cut);
          }
          const waitLabel = (wait: TakeoverWait) => (wait === 'default' ? '1000 (default)' : String(wait));
          const costTable = {
            header: ['cluster.prefetchGrants', 'path', 'requests', 'p50 ms', 'p95 ms', 'max ms'],
            rows: costs.flatMap((c) => [
              [String(c.prefetchGrants), ...row('through the scheduler replica (local grant)', c.local)],
              [String(c.prefetchGrants), ...row(`through the other replica (remote grant; ${c.claimed} of ${c.sent} on a grant in advance)`, c.remote)],
              [String(c.prefetchGrants), 'remote - local at p50', '', ms(c.remote.p50 - c.local.p50), '', ''],
            ]),
          };
          const killTable = {
            header: ['cluster.takeoverWaitMs', 'answers (ms from the kill)', 'requests', 'p50 ms', 'p95 ms', 'max ms', 'most requests a pod held (2 slots)'],
            rows: kills.flatMap((k) => [
              [waitLabel(k.wait), ...row('before', k.before), String(k.peaks.before)],
              [waitLabel(k.wait), ...row('0 to 2.5 s after', k.around), String(k.peaks.after)],
              [waitLabel(k.wait), ...row('later', k.after), ''],
            ]),
          };
          const cutTable = {
            header: ['cluster.takeoverWaitMs', 'answers (sent)', 'requests', 'p50 ms', 'p95 ms', 'max ms', 'most requests a pod held (2 slots)'],
            rows: cuts.flatMap((c) => [
              [waitLabel(c.wait), ...row('before the cut', c.before), String(c.peaks.before)],
              [waitLabel(c.wait), ...row('while cut off', c.cut), String(c.peaks.cut)],
              [waitLabel(c.wait), ...row('after healing', c.healed), String(c.peaks.healed)],
            ]),
          };
          const [kill, cut] = [kills[0]!, cuts[0]!];
          const md = [
            '# Failover: one queue across replicas',
            '',
            'Real gateway processes with the cluster on (static peers, heartbeatMs 250, deadAfterMs 2000) in front of emulated pods. One run on',
            'a 2-core machine shared with other work: compare within a table, not with other runs.',
            '',
            `Command: \`${benchCommand('failover', options)}\``,
            '',
            '## What a remote grant adds',
            '',
            'Two replicas, one upstream of 16 slots that answers at once (bench/lib/trivial-upstream.ts); sequential POST /model/parse over one keep-alive connection per replica, 200 per block',
            'through each replica, blocks interleaved (the first pair is warm-up); with grants in advance (the default), then without.',
            '',
            markdownTable(costTable),
            '',
            '## The scheduler replica SIGKILLed',
            '',
            `Three replicas, four pods of 2 slots and 100 ms; 12 closed-loop clients on the two replicas that do not schedule; the scheduler killed half-way;`,
            'twice: with the default take-over wait (the survivors grant nothing for 1 s, while the killed scheduler\'s requests may still run in the pods), then with none.',
            `Answers: ${kills.map((k) => `${k.answers}, by status ${JSON.stringify(k.statuses)}`).join('; ')}. Both survivors named the same new scheduler`,
            `${kills.map((k) => ms(k.agreedMs)).join(' and ')} ms after the kill. The peak after the kill counts from the kill to the end of the run.`,
            '',
            markdownTable(killTable),
            '',
            '## The scheduler replica cut off (alive), then healed',
            '',
            'Three replicas, the same pods; the scheduler\'s cluster links all pass through a relay (the others dial it there), which is cut',
            '(connections destroyed, new ones refused) and healed; the replicas\' client listeners stay reachable, and 12 closed-loop clients use all',
            `three throughout; twice, with the default take-over wait and with none. Answers: ${cuts.map((c) => `${c.answers}, by status ${JSON.stringify(c.statuses)}`).join('; ')}.`,
            `After the cut (default wait): the cut replica saw it had no quorum after ${ms(cut.lostQuorumMs)} ms, both others named a new scheduler after`,
            `${ms(cut.successorMs)} ms and called the cut one dead after ${ms(cut.deadMs)} ms; after healing, all three agreed on one scheduler with every peer`,
            `alive after ${ms(cut.rejoinedMs)} ms.`,
            '',
            markdownTable(cutTable),
          ].join('\n');
          process.stdout.write(`\n${md}\n`);
          const files = writeResults({ scenario: 'failover', outDir: options.outDir, json: { costs, kills, partitions: cuts }, markdown: md, charts: [] });
          log(`wrote ${files.join(', ')}`);
        } finally {
          await Promise.all([upstream.stop(), ...burst.map((p) => p.close())]);
        }
      },
    };
  },
};
