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
 * The partition case (a replica cut off behind a relay, not dead) is exercised in
 * test/cluster-membership.test.ts; its timings follow from heartbeatMs/deadAfterMs (README).
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RasaPod } from '../../src/emulator/rasa-pod.js';
import { Pool } from 'undici';
import { startGateways, type Gateways } from '../lib/gateway.js';
import { startPod } from '../lib/pods.js';
import { repoRoot } from '../lib/paths.js';
import { benchTmp, startProcess } from '../lib/procs.js';
import { markdownTable, writeResults } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { summarize, type Summary } from '../lib/stats.js';

interface ClusterView {
  readonly pools: Record<string, { scheduler: string | null }>;
  readonly self: string | null;
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

async function sigkill(pods: readonly RasaPod[], quick: boolean) {
  const g = await startGateways({ endpoints: pods.map((p) => p.url), pool: { slotsPerEndpoint: 2, dispatch: 'greedy' }, replicas: 3, cluster: true });
  try {
    const s = await schedulerIndex(g, 'default');
    const killedUrl = (await view(g.adminUrls[s] as string))?.self;
    const survivors = g.urls.filter((_, i) => i !== s);
    const survivorAdmins = g.adminUrls.filter((_, i) => i !== s);
    const runMs = quick ? 5000 : 10_000;
    const killAtMs = runMs / 2;
    const start = performance.now();
    const answers: { status: number; ms: number; atMs: number }[] = [];
    const clients = Array.from({ length: 12 }, async (_, c) => {
      while (performance.now() - start < runMs) answers.push(await parse(survivors[c % survivors.length] as string, `client ${c}`));
    });
    await new Promise((r) => setTimeout(r, killAtMs));
    const killedAt = performance.now();
    g.procs[s]!.child.kill('SIGKILL');
    let agreedMs: number | undefined;
    while (agreedMs === undefined && performance.now() - killedAt < 15_000) {
      const views = await Promise.all(survivorAdmins.map(view));
      const names = new Set(views.map((v) => v?.pools.default?.scheduler));
      const only = [...names][0];
      if (names.size === 1 && typeof only === 'string' && only !== killedUrl) agreedMs = performance.now() - killedAt;
      await new Promise((r) => setTimeout(r, 10));
    }
    await Promise.all(clients);
    const rel = (a: { atMs: number }) => a.atMs - killedAt;
    const phase = (from: number, to: number) => summarize(answers.filter((a) => a.status === 200 && rel(a) >= from && rel(a) < to).map((a) => a.ms));
    const statuses: Record<string, number> = {};
    for (const a of answers) statuses[String(a.status)] = (statuses[String(a.status)] ?? 0) + 1;
    return {
      answers: answers.length,
      statuses,
      agreedMs,
      before: phase(-Infinity, 0),
      around: phase(0, 2500),
      after: phase(2500, Infinity),
    };
  } finally {
    await g.stop();
  }
}

const ms = (v: number | undefined) => (v === undefined ? '-' : v.toFixed(2));
const row = (label: string, s: Summary) => [label, String(s.n), ms(s.p50), ms(s.p95), ms(s.max)];

export const failover: Scenario = {
  name: 'failover',
  title: 'one queue across replicas: what a remote grant adds, and losing the scheduler replica (SIGKILL)',
  async prepare(options, log) {
    return {
      estimateS: options.quick ? 30 : 60,
      plan: 'grant cost with 2 replicas, then SIGKILL of the scheduler of 3 under closed-loop load',
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
          const kill = await sigkill(burst, options.quick);
          log(`sigkill: ${kill.answers} answers ${JSON.stringify(kill.statuses)}, new scheduler agreed after ${ms(kill.agreedMs)} ms`);
          const costTable = {
            header: ['cluster.prefetchGrants', 'path', 'requests', 'p50 ms', 'p95 ms', 'max ms'],
            rows: costs.flatMap((c) => [
              [String(c.prefetchGrants), ...row('through the scheduler replica (local grant)', c.local)],
              [String(c.prefetchGrants), ...row(`through the other replica (remote grant; ${c.claimed} of ${c.sent} on a grant in advance)`, c.remote)],
              [String(c.prefetchGrants), 'remote - local at p50', '', ms(c.remote.p50 - c.local.p50), '', ''],
            ]),
          };
          const killTable = {
            header: ['answers (ms from the kill)', 'requests', 'p50 ms', 'p95 ms', 'max ms'],
            rows: [row('before', kill.before), row('0 to 2.5 s after', kill.around), row('later', kill.after)],
          };
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
            `Three replicas, four pods of 2 slots and 100 ms; 12 closed-loop clients on the two replicas that do not schedule; the scheduler killed half-way.`,
            `Answers: ${kill.answers}, by status ${JSON.stringify(kill.statuses)}. Both survivors named the same new scheduler ${ms(kill.agreedMs)} ms after the kill`,
            '(until then each scheduled alone on its share of every pod).',
            '',
            markdownTable(killTable),
          ].join('\n');
          process.stdout.write(`\n${md}\n`);
          const files = writeResults({ scenario: 'failover', outDir: options.outDir, json: { costs, kill }, markdown: md, charts: [] });
          log(`wrote ${files.join(', ')}`);
        } finally {
          await Promise.all([upstream.stop(), ...burst.map((p) => p.close())]);
        }
      },
    };
  },
};
