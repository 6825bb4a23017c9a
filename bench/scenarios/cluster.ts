/**
 * `cluster` (issue 17): what the cluster link costs a grant. Two processes on loopback, each a cluster
 * member (src/cluster/); this one sends grant-sized requests, the other (bench/lib/cluster-scheduler.ts)
 * answers each at once. Measured: the request/reply round trip at low load (one at a time: p50, p95,
 * p99), and the pairs per second the scheduler side sustains with many outstanding, with the CPU
 * time it spent, as pairs per second of one core. Targets: round trip at most 0.5 ms at p50, and at
 * least 5,000 grants/s on one core. Everything in one run (the machine's cores are shared).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { createCluster, type Cluster, type ClusterMessage } from '../../src/cluster/cluster.js';
import { repoRoot } from '../lib/paths.js';
import { markdownTable, writeResults } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { summarize, type Summary } from '../lib/stats.js';
import { freePort } from '../lib/procs.js';

interface Result {
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

async function measure(quick: boolean, log: (line: string) => void): Promise<Result> {
  const [mine, theirs] = [await freePort(), await freePort()];
  const self = `http://127.0.0.1:${mine}`;
  const peer = `http://127.0.0.1:${theirs}`;
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

export const cluster: Scenario = {
  name: 'cluster',
  title: 'the cluster link: grant-like request/reply round trip and pairs/s on one core',
  async prepare(options, log) {
    return {
      estimateS: options.quick ? 6 : 15,
      plan: 'two processes on loopback: sequential round trips, then 256 outstanding',
      async run() {
        const r = await measure(options.quick, log);
        const ms = (v: number) => v.toFixed(3);
        const table = {
          header: ['measure', 'value', 'target'],
          rows: [
            ['round trip p50 (ms)', ms(r.roundTripMs.p50), '<= 0.5'],
            ['round trip p95 (ms)', ms(r.roundTripMs.p95), ''],
            ['round trip p99 (ms)', ms(r.roundTripMs.p99), ''],
            [`pairs/s (${r.throughput.window} outstanding)`, String(Math.round(r.throughput.pairsPerSecond)), ''],
            ['scheduler CPU (share of one core)', (r.throughput.schedulerCpuSeconds / r.throughput.seconds).toFixed(2), ''],
            ['pairs per core-second (scheduler side)', String(Math.round(r.throughput.pairsPerCoreSecond)), '>= 5000'],
          ],
        };
        const md = [
          '# Cluster link',
          '',
          'Two processes on loopback, each a cluster member (src/cluster/). This one sends grant-sized requests',
          '(`{ t, id, pool, key, deadlineMs }`), the other answers each at once with `{ t, id, pod }`: the link\'s',
          'cost, without the queue. Round trips one at a time (after 500 warm-up), then 256 requests outstanding',
          "for the throughput; the scheduler's CPU time comes from its own `process.cpuUsage()`. One run; the",
          'machine has 2 shared cores, so the pairs/s is bounded by both processes sharing them, and pairs per',
          "core-second (pairs / scheduler CPU seconds) is what one core sustains on the scheduler's side.",
          '',
          `Command: \`${benchCommand('cluster', options)}\``,
          '',
          markdownTable(table),
        ].join('\n');
        process.stdout.write(`\n${markdownTable(table)}\n`);
        const files = writeResults({ scenario: 'cluster', outDir: options.outDir, json: r, markdown: md, charts: [] });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
