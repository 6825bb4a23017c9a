/**
 * `overhead` (issue 6 item 3): what the proxy itself costs. (1) A trivial upstream (node:http, answers
 * at once) reached directly and through the gateway, nginx and HAProxy at a fixed number of
 * connections (wrk, or autocannon when wrk is missing): requests/s, p50/p99, latency added over
 * direct, and the proxy's CPU time per request read from /proc. With two or more cores the proxy
 * runs pinned to core 1 and the load generator with the upstream to core 0, so they do not take turns
 * on one core. (2) Pick cost in-process: admit + release cycles on the gateway's Pool with 10, 100
 * and 1,000 endpoints, for every balancer, with free slots and with a standing queue.
 */
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Admission } from '../../src/admission/admission.js';
import { Ticket } from '../../src/admission/ticket.js';
import type { BalancerName } from '../../src/balancer/types.js';
import { Pool } from '../../src/pool/pool.js';
import { closedLoopTool, runClosedLoop, type ClosedLoopResult } from '../lib/load.js';
import { autocannonCli } from '../lib/paths.js';
import { findTool, type Tool } from '../lib/peers.js';
import { hbarChart } from '../lib/plot.js';
import { benchTmp, coreCount, cpuSeconds, startProcess } from '../lib/procs.js';
import { Progress } from '../lib/progress.js';
import { fixed, machine, markdownTable, ratio, writeResults, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { median } from '../lib/stats.js';
import { gatewayBalancers, row, startProxy, toolOf, type Proxy, type ProxySpec, type Row } from '../lib/targets.js';

const CONNECTIONS = 64;
const BODY = JSON.stringify({ sender: 'bench', message: 'hello, what can you do for me?' });

interface ThroughputRow {
  readonly id: string;
  readonly label: string;
  /** The peer binary it needs, if any. */
  readonly tool?: Tool;
  /** Starts the proxy in front of the upstream; undefined: clients talk to the upstream directly. */
  readonly start?: (upstream: string, cpus: string | undefined) => Promise<Proxy>;
}

const via = (r: Row): Pick<ThroughputRow, 'start' | 'tool'> => {
  const tool = toolOf(r.target);
  return { ...(tool ? { tool } : {}), start: (upstream, cpus) => startProxy(r.target as ProxySpec, [upstream], cpus) };
};

const here = dirname(fileURLToPath(import.meta.url));

/** fastify + @fastify/http-proxy without any logic, as a child process (bare-proxy.ts). */
async function startBareProxy(upstream: string, cpus: string | undefined): Promise<Proxy> {
  const dir = benchTmp('bare-proxy');
  mkdirSync(dir, { recursive: true });
  const proc = startProcess(process.execPath, [join(here, '..', 'lib', 'bare-proxy.js'), upstream], { logFile: join(dir, 'bare.log'), ...(cpus ? { cpus } : {}) });
  try {
    const url = (await proc.waitFor(/listening on (http:\/\/\S+)/, 15_000))[1] as string;
    return { urls: [url], adminUrls: [], pids: [proc.pid], stop: () => proc.stop() };
  } catch (err) {
    await proc.stop();
    throw err;
  }
}

const throughputRows: ThroughputRow[] = [
  { id: 'direct', label: 'direct (no proxy)' },
  { id: 'fastify-bare', label: 'fastify + @fastify/http-proxy, no logic', start: startBareProxy },
  { id: 'gateway-no-queue', label: 'gateway least-outstanding, no queue', ...via(row.gateway('least-outstanding', 'unlimited')) },
  { id: 'gateway-slots', label: 'gateway least-outstanding, slots 256', ...via(row.gateway('least-outstanding', 256)) },
  { id: 'nginx', label: 'nginx least_conn', ...via(row.nginx()) },
  { id: 'haproxy', label: 'haproxy leastconn', ...via(row.haproxy()) },
];

interface Measured {
  readonly id: string;
  readonly label: string;
  status: 'ok' | 'n/a' | 'failed';
  note?: string;
  readonly runs: (ClosedLoopResult & { cpuUsPerRequest: number })[];
  rps?: number;
  p50Ms?: number;
  p99Ms?: number;
  cpuUsPerRequest?: number;
}

type PickMode = 'free slots' | 'no queue' | 'queued';
const pickModes: readonly PickMode[] = ['free slots', 'no queue', 'queued'];

class BenchTicket extends Ticket {
  constructor(private readonly granted: BenchTicket[]) {
    super();
  }
  override onGranted(): void {
    this.granted.push(this);
  }
  override onRejected(): void {
    throw new Error('pick-cost ticket rejected');
  }
}

/** Nanoseconds per admit + release cycle, holding the pool at a steady state described by `mode`. */
function pickCost(balancer: BalancerName, endpoints: number, mode: PickMode, cycles: number): number {
  const slots = mode === 'no queue' ? Infinity : 2;
  const pool = new Admission(new Pool({ name: 'bench', slotsPerEndpoint: slots }), { balancer, queue: { maxLength: 1e9, maxWaitMs: 600_000 } });
  pool.pool.update(Array.from({ length: endpoints }, (_, i) => ({ key: `http://127.0.0.1:${20_000 + i}`, origin: `http://127.0.0.1:${20_000 + i}`, ready: true, serving: true, terminating: false })));
  const granted: BenchTicket[] = [];
  let head = 0;
  const standing = mode === 'queued' ? endpoints * 2 + 64 : endpoints;
  for (let i = 0; i < standing; i++) pool.admit(new BenchTicket(granted));
  const cycle = () => {
    pool.admit(new BenchTicket(granted));
    pool.release(granted[head++] as BenchTicket, 'ok', 1);
    if (head > 65_536) {
      granted.splice(0, head);
      head = 0;
    }
  };
  for (let i = 0; i < Math.min(cycles, 20_000); i++) cycle();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < cycles; i++) cycle();
  const ns = Number(process.hrtime.bigint() - t0) / cycles;
  // Each release grants a queued ticket, which joins `granted`: this drains the queue too.
  while (head < granted.length) pool.release(granted[head++] as BenchTicket, 'ok');
  return ns;
}

export const overhead: Scenario = {
  name: 'overhead',
  title: 'Proxy overhead: direct vs gateway vs nginx vs HAProxy, and pick cost with 10-1000 endpoints',
  async prepare(options, log) {
    const durationS = options.quick ? 4 : 10;
    const warmS = options.quick ? 1 : 2;
    const repeats = options.repeats ?? (options.quick ? 1 : 3);
    const pickRuns = options.quick ? 3 : 5;
    const pickCycles = options.quick ? 20_000 : 100_000;
    const endpointCounts = [10, 100, 1000];
    const wrk = findTool('wrk', { install: options.install, log });
    if (!wrk.ok) log(`load generator: autocannon (${wrk.note})`);
    const unavailable = new Map<string, string>();
    for (const r of throughputRows) {
      const status = r.tool ? findTool(r.tool, { install: options.install, log }) : undefined;
      if (status && !status.ok) unavailable.set(r.id, status.note);
    }
    const pinned = coreCount() >= 2;
    const runnable = throughputRows.filter((r) => !unavailable.has(r.id));
    const estimateS = runnable.length * (1 + warmS + repeats * (durationS + 0.3)) + 8 + (options.quick ? 3 : 20);
    return {
      estimateS,
      plan: `${throughputRows.length} targets x ${repeats} x ${durationS} s at ${CONNECTIONS} connections (${closedLoopTool()}${pinned ? ', proxy on core 1, load + upstream on core 0' : ', unpinned'}); pick cost ${gatewayBalancers.length} balancers x ${endpointCounts.join('/')} endpoints x ${pickModes.length} states`,
      async run() {
        const steps = runnable.length * repeats + gatewayBalancers.length;
        const progress = new Progress('overhead', steps, estimateS);
        const loadCpus = pinned ? '0' : undefined;
        const proxyCpus = pinned ? '1' : undefined;
        const dir = benchTmp('upstream');
        mkdirSync(dir, { recursive: true });
        const upstream = startProcess(process.execPath, [join(here, '..', 'lib', 'trivial-upstream.js')], { logFile: join(dir, 'upstream.log'), ...(loadCpus ? { cpus: loadCpus } : {}) });
        const port = (await upstream.waitFor(/listening on (\d+)/, 10_000))[1] as string;
        const upstreamUrl = `http://127.0.0.1:${port}`;
        const measured: Measured[] = [];
        try {
          for (const r of throughputRows) {
            const m: Measured = { id: r.id, label: r.label, status: 'ok', runs: [] };
            measured.push(m);
            const missing = unavailable.get(r.id);
            if (missing) {
              Object.assign(m, { status: 'n/a', note: missing });
              progress.log(`${r.label}: n/a (${missing})`);
              continue;
            }
            let proxy;
            try {
              proxy = r.start ? await r.start(upstreamUrl, proxyCpus) : undefined;
            } catch (err) {
              Object.assign(m, { status: 'failed', note: (err as Error).message });
              progress.log(`${r.label}: failed to start (${(err as Error).message})`);
              continue;
            }
            try {
              const url = `${proxy?.urls[0] ?? upstreamUrl}/webhooks/rest/webhook`;
              const load = (d: number) => runClosedLoop({ url, connections: CONNECTIONS, durationS: d, body: BODY, ...(loadCpus ? { cpus: loadCpus } : {}) }, autocannonCli);
              await load(warmS);
              for (let rep = 0; rep < repeats; rep++) {
                progress.begin(`${r.label} | ${durationS} s at ${CONNECTIONS} connections${repeats > 1 ? ` | repeat ${rep + 1}/${repeats}` : ''}`, durationS + 0.3 + (rep === 0 ? 1 + warmS : 0));
                const pids = proxy?.pids ?? [upstream.pid];
                const cpu0 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
                const res = await load(durationS);
                const cpu1 = pids.reduce((s, p) => s + cpuSeconds(p), 0);
                m.runs.push({ ...res, cpuUsPerRequest: ((cpu1 - cpu0) / res.requests) * 1e6 });
              }
            } catch (err) {
              Object.assign(m, { status: 'failed', note: (err as Error).message });
              progress.log(`${r.label}: failed (${(err as Error).message})`);
            } finally {
              await proxy?.stop();
            }
            if (m.runs.length > 0) {
              m.rps = median(m.runs.map((x) => x.rps));
              m.p50Ms = median(m.runs.map((x) => x.p50Ms));
              m.p99Ms = median(m.runs.map((x) => x.p99Ms));
              m.cpuUsPerRequest = median(m.runs.map((x) => x.cpuUsPerRequest));
              const errors = m.runs.reduce((s, x) => s + x.errors, 0);
              if (errors > 0) m.note = `${errors} errors (socket errors or non-2xx)`;
            }
          }
        } finally {
          await upstream.stop();
        }
        const pick: { balancer: string; mode: PickMode; endpoints: number; nsPerCycle: number; runs: number[] }[] = [];
        for (const b of gatewayBalancers) {
          progress.begin(`pick cost | ${b}`, (options.quick ? 3 : 20) / gatewayBalancers.length);
          for (const mode of pickModes) {
            for (const e of endpointCounts) {
              const runs = Array.from({ length: pickRuns }, () => pickCost(b, e, mode, pickCycles));
              pick.push({ balancer: b, mode, endpoints: e, nsPerCycle: median(runs), runs });
            }
          }
        }
        progress.finish();

        const direct = measured.find((m) => m.id === 'direct');
        const nginx = measured.find((m) => m.id === 'nginx');
        const tp: Table = {
          header: ['target', 'requests/s', 'p50 ms', 'p99 ms', 'added p50 ms', 'added p99 ms', 'proxy CPU us/req', 'rps vs nginx', 'CPU vs nginx'],
          rows: measured.map((m) =>
            m.status !== 'ok'
              ? [m.label, m.status, '', '', '', '', '', '', '']
              : [
                  `${m.label}${m.note ? ' *' : ''}`,
                  fixed(m.rps),
                  fixed(m.p50Ms, 2),
                  fixed(m.p99Ms, 2),
                  m.id === 'direct' ? '-' : fixed((m.p50Ms ?? NaN) - (direct?.p50Ms ?? NaN), 2),
                  m.id === 'direct' ? '-' : fixed((m.p99Ms ?? NaN) - (direct?.p99Ms ?? NaN), 2),
                  m.id === 'direct' ? '-' : fixed(m.cpuUsPerRequest, 1),
                  m.id === 'direct' ? '-' : ratio(m.rps, nginx?.rps),
                  m.id === 'direct' ? '-' : ratio(m.cpuUsPerRequest, nginx?.cpuUsPerRequest),
                ],
          ),
        };
        const pt: Table = {
          header: ['balancer', ...pickModes.flatMap((mode) => endpointCounts.map((e) => `${mode} ${e}`))],
          rows: gatewayBalancers.map((b) => [b, ...pickModes.flatMap((mode) => endpointCounts.map((e) => fixed(pick.find((p) => p.balancer === b && p.mode === mode && p.endpoints === e)?.nsPerCycle, 0)))]),
        };
        const gw = measured.find((m) => m.id === 'gateway-no-queue');
        const bare = measured.find((m) => m.id === 'fastify-bare');
        const headline =
          gw?.rps && nginx?.rps
            ? `gateway/nginx requests/s: ${(gw.rps / nginx.rps).toFixed(2)}x (gateway/bare fastify proxy: ${ratio(gw.rps, bare?.rps)}); proxy CPU per request: gateway ${fixed(gw.cpuUsPerRequest, 1)} us, bare fastify ${fixed(bare?.cpuUsPerRequest, 1)} us, nginx ${fixed(nginx.cpuUsPerRequest, 1)} us`
            : 'gateway/nginx ratio: n/a (a row is missing)';
        const notes = measured.filter((m) => m.note).map((m) => `- ${m.label}: ${m.status === 'ok' ? `* ${m.note}` : `${m.status} (${m.note})`}`);
        const tool = measured.flatMap((m) => m.runs)[0]?.tool ?? closedLoopTool();
        const md = [
          '# Proxy overhead',
          '',
          `Trivial upstream (node:http, answers at once); ${tool}, 1 thread, ${CONNECTIONS} keep-alive connections, POST with a small JSON`,
          `body, ${durationS} s per run after a ${warmS} s warm-up, median of ${repeats} run(s). nginx: 1 worker, HAProxy: 1 thread, gateway: 1`,
          `process. ${pinned ? 'The proxy is pinned to core 1; load generator and upstream share core 0, so a cheap proxy is capped by core 0 (see the direct row): compare CPU per request.' : 'Unpinned (one core).'}`,
          '"proxy CPU us/req": user + system CPU of the proxy processes during the run, per request answered.',
          '',
          `Command: \`${benchCommand('overhead', options)}\``,
          '',
          `**${headline}**`,
          '',
          markdownTable(tp),
          '',
          ...notes,
          '',
          '## Pick cost',
          '',
          'Nanoseconds per admit + release on the gateway\'s `Pool` (in-process, no I/O), median of runs. "free slots": 2 slots per',
          'endpoint, one request per endpoint in flight, so each admit picks among free slots; "no queue": `unlimited`;',
          '"queued": every slot busy and 64 waiting, so each admit queues (with its timeout timer) and each release hands the slot',
          'to the head of the queue.',
          '',
          markdownTable(pt),
          '',
          '![throughput](overhead-throughput.png)',
          '',
          '![pick cost](overhead-pick.png)',
        ].join('\n');
        process.stdout.write(`\n${headline}\n${markdownTable(tp)}\n\nPick cost (ns per admit + release):\n${markdownTable(pt)}\n`);
        const ok = measured.filter((m) => m.status === 'ok');
        const charts = [
          hbarChart({
            name: 'overhead-throughput',
            title: `Proxy overhead: requests/s at ${CONNECTIONS} connections (trivial upstream)`,
            subtitle: `${tool}; proxy pinned to its own core: ${pinned ? 'yes' : 'no'}; bar label: thousands of requests/s`,
            categories: ok.map((m) => m.label),
            series: [{ name: 'thousand requests/s', values: ok.map((m) => (m.rps ?? NaN) / 1000), color: '#4292c6' }],
            xLabel: 'thousand requests per second',
          }),
          hbarChart({
            name: 'overhead-pick',
            title: 'Pick cost: admit + release on the gateway Pool',
            subtitle: 'nanoseconds per cycle, in-process',
            categories: gatewayBalancers.flatMap((b) => pickModes.map((mode) => `${b}, ${mode}`)),
            series: endpointCounts.map((e, k) => ({
              name: `${e} endpoints`,
              values: gatewayBalancers.flatMap((b) => pickModes.map((mode) => pick.find((p) => p.balancer === b && p.mode === mode && p.endpoints === e)?.nsPerCycle)),
              color: ['#9ecae1', '#4292c6', '#08306b'][k] as string,
            })),
            xLabel: 'nanoseconds per admit + release',
          }),
        ];
        const files = writeResults({
          scenario: 'overhead',
          outDir: options.outDir,
          json: {
            scenario: 'overhead',
            generatedAt: new Date().toISOString(),
            machine: machine(),
            plan: { connections: CONNECTIONS, durationS, warmS, repeats, pinned, tool, body: BODY, pickRuns, pickCycles },
            throughput: measured,
            pickCost: pick,
          },
          markdown: md,
          charts,
        });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};
