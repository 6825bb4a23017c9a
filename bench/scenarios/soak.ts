/**
 * `soak` (issue 8 item 8 and its acceptance "RSS returns to its baseline after 100k requests of mixed
 * good and bad traffic"): one gateway process under a steady open loop of mixed traffic for a few
 * minutes (default 2 min at 1,000 req/s; `--quick` 30 s), with its RSS (/proc/<pid>/status VmRSS),
 * V8 heap, event-loop lag and pool gauges sampled every second from /proc and its own /metrics.
 *
 * Traffic, by share of requests: good parses and webhooks (2,000 conversations, sticky), and bad
 * input: oversized bodies (declared and chunked: 413), malformed JSON (a webhook: proxied unkeyed,
 * the pod answers; a parse: the pod's 400), unknown routes (404), protected Rasa routes (403),
 * clients that send half a body and vanish, and clients that give up while queued for a slow pool
 * (2 slots x 100 ms, offered 3.5x what it serves). Pods are emulated in this process: fast and wide
 * (64 slots x 2 ms) for the good traffic.
 *
 * Fuzzed share (7 % of requests, drawn from a seeded PRNG, bench/lib/fuzz.ts): hostile raw-socket
 * requests, each on its own connection and destroyed after 2 s at the latest: garbage request lines,
 * bad percent-encoding, absolute-form / `*` targets, `Expect: 100-continue`, huge and duplicated
 * headers, invalid UTF-8 bodies, deeply nested JSON within the body limit, webhook `sender`s of every
 * JSON type, garbage `Authorization: Bearer` JWTs (`bnVsbA.e30.x` among them), forged socket.io sids,
 * websocket upgrades with bad keys, HTTP/1.0 and `Connection: close`, abandoned uploads. So that JWTs
 * reach the verifier, the parse pool runs with `cache` and `rasaAuth: { jwtSecret, token }` (good
 * parses carry no credentials: they bypass the cache and reach a pod as before). Reported: their
 * answers by status class and how each connection ended (clean close by the server, reset, 2 s
 * timeout); gateway crashes (the child exiting during the run: recorded with its stderr tail, nothing
 * restarted, the run stops sending and reports); `gateway_internal_errors_total` summed by stage at
 * the end (the last scrape before a crash; 0 when the gateway exports no such series).
 *
 * Phases: idle, warm-up (JIT, connections, the sticky table filled), idle until every pod is idle;
 * baseline = RSS and heap after a forced full GC; the soak; until every pod is idle again (a pod,
 * like Rasa, finishes requests whose clients left), then a forced idle period; final = the same
 * after a full GC. The full
 * GC is asked for through the inspector (the gateway runs with `--inspect=127.0.0.1:0`, loopback only;
 * `HeapProfiler.collectGarbage`), so "heap used" compares live objects, not garbage V8 has not yet
 * collected. V8 keeps memory it got from the OS for reuse, so RSS may stay above its baseline with no
 * leak: the heap after GC is the leak signal, RSS the operator's view.
 */
import { readFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { WebSocket } from 'undici';
import { fuzzKinds, type FuzzTarget } from '../lib/fuzz.js';
import { debugPools, startGateways, type Gateways, type PoolSettings } from '../lib/gateway.js';
import { arrivals, call, keepAlivePool, openLoop, type Reply } from '../lib/load.js';
import { timeSeries } from '../lib/plot.js';
import { shape, startCluster, type Cluster } from '../lib/pods.js';
import { cpuSeconds, periodic, procStatusBytes, sleep, tail } from '../lib/procs.js';
import { clock, Progress } from '../lib/progress.js';
import { rawExchange, rawOutcome, type RawEnd } from '../lib/raw-http.js';
import { fixed, machine, markdownTable, writeResults, type Align, type Table } from '../lib/report.js';
import { benchCommand, type Scenario } from '../lib/scenario.js';
import { scrape, type Scrape } from '../lib/scrape.js';
import { seededRandom, summarize } from '../lib/stats.js';

const RATE = 1000;
const CONVERSATIONS = 2000;
const BODY_LIMIT = 64 * 1024;
const MiB = 2 ** 20;

const fast = { slots: 64, serviceMs: 2 };
const nlu = shape('nlu', [{ count: 2, ...fast, tag: 'nlu' }]);
const dialog = shape('dialog', [{ count: 2, ...fast, tag: 'dialog' }]);
const slow = shape('slow', [{ count: 1, slots: 2, serviceMs: 100, tag: 'slow' }]);

const fastPool: PoolSettings = { slotsPerEndpoint: 64, bodyLimitBytes: BODY_LIMIT, queue: { maxLength: 1000, maxWaitMs: 30_000 }, upstreamTimeoutMs: 60_000 };
const TOKEN = 'soak-token';
const JWT_SECRET = 'soak-jwt-secret';
/** The parse pool: the cache on and Rasa's credentials known, so Bearer JWTs reach the gateway's verifier. */
const parsePool: PoolSettings = { ...fastPool, cache: { maxEntries: 10_000, ttlMs: 600_000, modelPollMs: 1000 }, rasaAuth: { jwtSecret: JWT_SECRET, token: TOKEN } };

/** What a class of traffic sends, what it should get, and its share of requests. */
interface TrafficClass {
  readonly id: string;
  readonly label: string;
  readonly share: number;
  /** Acceptable outcomes: HTTP statuses, or 'left' (the client itself went away first), or fuzzed outcomes. */
  readonly expect: readonly (number | string)[];
  send(i: number, ctx: SendContext): Promise<Result>;
}

interface SendContext {
  readonly pool: ReturnType<typeof keepAlivePool>;
  readonly host: string;
  readonly port: number;
  readonly random: () => number;
  readonly fuzz: FuzzState;
}

/** The fuzzed share's own PRNG, its target, and what each kind got: outcomes and connection ends. */
interface FuzzState {
  readonly random: () => number;
  target: FuzzTarget;
  readonly outcomes: Map<string, Map<string, number>>;
  readonly ends: Map<string, Map<RawEnd, number>>;
}

function bump<K>(byKind: Map<string, Map<K, number>>, kind: string, key: K): void {
  const m = byKind.get(kind) ?? new Map<K, number>();
  byKind.set(kind, m);
  m.set(key, (m.get(key) ?? 0) + 1);
}

/** An HTTP status, 'left', a fuzzed answer's status class ('4xx') or connection end ('closed'), or an error. */
type Outcome = number | string;

interface Result {
  readonly outcome: Outcome;
  /** The start of an error answer's body, kept for unexpected answers. */
  readonly body?: string;
}

const words = ['hi', 'yes', 'no', 'I want to change my order', 'where is my parcel?', 'thanks', 'talk to a human', 'bye'];
const oversized = 'x'.repeat(100 * 1024);

function outcome(r: Reply): Result {
  return { outcome: r.status > 0 ? r.status : `error: ${r.error ?? 'unknown'}`, ...(r.body !== undefined ? { body: r.body } : {}) };
}

/** Headers and half a body on a fresh connection, then the client vanishes (a phone losing signal). */
async function halfBodyThenVanish(ctx: SendContext, i: number): Promise<Result> {
  const body = JSON.stringify({ sender: `conv-${i % CONVERSATIONS}`, message: 'this message never arrives in full' });
  const head = `POST /webhooks/rest/webhook HTTP/1.1\r\nHost: ${ctx.host}:${ctx.port}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
  const r = await rawExchange(ctx.host, ctx.port, { steps: [head + body.slice(0, body.length >> 1)], abandonAfterMs: 5 + ctx.random() * 45 });
  return { outcome: r.status ?? (r.end === 'abandoned' ? 'left' : `error: ${r.end}`) };
}

/** One hostile request of a kind drawn from the fuzz PRNG; tallied by kind, answered as its status class. */
async function fuzzed(ctx: SendContext): Promise<Result> {
  const { fuzz } = ctx;
  const kind = fuzzKinds[Math.floor(fuzz.random() * fuzzKinds.length)] as (typeof fuzzKinds)[number];
  const c = kind.make(fuzz.random, fuzz.target);
  const r = await rawExchange(ctx.host, ctx.port, c.request);
  const o = rawOutcome(r);
  bump(fuzz.outcomes, kind.id, o);
  bump(fuzz.ends, kind.id, r.end);
  return { outcome: o as Outcome, body: `${kind.id} (${c.variant}): ${JSON.stringify(r.head.split('\r\n')[0] ?? '')}` };
}

const classes: readonly TrafficClass[] = [
  {
    id: 'parse',
    label: 'POST /model/parse (good)',
    share: 0.36,
    expect: [200],
    send: async (i, ctx) => outcome(await call(ctx.pool, { path: '/model/parse', body: JSON.stringify({ text: words[i % words.length], message_id: `m-${i}` }) })),
  },
  {
    id: 'webhook',
    label: 'POST /webhooks/rest/webhook (good, 2,000 conversations)',
    share: 0.29,
    expect: [200],
    send: async (i, ctx) => outcome(await call(ctx.pool, { path: '/webhooks/rest/webhook', body: JSON.stringify({ sender: `conv-${i % CONVERSATIONS}`, message: words[i % words.length] }) })),
  },
  {
    id: 'oversized',
    label: 'webhook with a 100 KiB body, content-length (limit 64 KiB)',
    share: 0.015,
    expect: [413],
    send: async (_i, ctx) => outcome(await call(ctx.pool, { path: '/webhooks/rest/webhook', body: oversized })),
  },
  {
    id: 'oversized-chunked',
    label: 'webhook with a 100 KiB chunked body (limit 64 KiB)',
    share: 0.015,
    expect: [413],
    send: async (_i, ctx) =>
      outcome(await call(ctx.pool, { path: '/webhooks/rest/webhook', body: Readable.from(Array.from({ length: 8 }, () => Buffer.from(oversized.slice(0, 12_800)))) })),
  },
  {
    id: 'malformed-webhook',
    label: 'webhook with malformed JSON (proxied unkeyed; the pod answers)',
    share: 0.025,
    expect: [200],
    send: async (i, ctx) => outcome(await call(ctx.pool, { path: '/webhooks/rest/webhook', body: `{"sender": "conv-${i % CONVERSATIONS}", "message": ` })),
  },
  {
    id: 'malformed-parse',
    label: "parse with malformed JSON (the pod's 400)",
    share: 0.025,
    expect: [400],
    send: async (_i, ctx) => outcome(await call(ctx.pool, { path: '/model/parse', body: '{"text": "hi", ' })),
  },
  {
    id: 'unknown',
    label: 'unknown route (404 NO_ROUTE)',
    share: 0.05,
    expect: [404],
    send: async (i, ctx) => outcome(await call(ctx.pool, { path: `/no/such/route/${i % 100}` })),
  },
  {
    id: 'protected',
    label: 'protected Rasa routes: GET /status, GET /conversations/x/tracker, PUT /model (403)',
    share: 0.05,
    expect: [403],
    send: async (i, ctx) => {
      const k = i % 3;
      const c = k === 0 ? { path: '/status' } : k === 1 ? { path: `/conversations/conv-${i % CONVERSATIONS}/tracker` } : { path: '/model', method: 'PUT', body: '{"model_file": "models/x.tar.gz"}' };
      return outcome(await call(ctx.pool, c));
    },
  },
  {
    id: 'half-body',
    label: 'half a webhook body, then the client vanishes (raw socket)',
    share: 0.02,
    expect: ['left'],
    send: (i, ctx) => halfBodyThenVanish(ctx, i),
  },
  {
    id: 'leave-queued',
    label: 'POST /model/predict to a slow pool, client gives up after 10-300 ms',
    share: 0.08,
    expect: [200, 'left'],
    send: async (_i, ctx) => {
      const r = await call(ctx.pool, { path: '/model/predict', body: '{"text": "hi"}', signal: AbortSignal.timeout(Math.round(10 + ctx.random() * 290)) });
      return r.status === 0 && /abort|timeout/i.test(r.error ?? '') ? { outcome: 'left' } : outcome(r);
    },
  },
  {
    id: 'fuzz',
    label: `fuzzed hostile requests, raw socket, ${fuzzKinds.length} kinds (table below); by status class or how the connection ended`,
    share: 0.07,
    // A hostile request should get a 4xx, be proxied as a request (2xx; 101 for the one valid
    // websocket key), or see the connection closed cleanly; 'left': an abandoned upload went first.
    expect: ['1xx', '2xx', '4xx', 'closed', 'left'],
    send: (_i, ctx) => fuzzed(ctx),
  },
];

/** Which class request i belongs to: a fixed, shuffled pattern of 1,000 slots by share. */
function classPattern(random: () => number): TrafficClass[] {
  const pattern: TrafficClass[] = [];
  for (const c of classes) for (let k = 0; k < Math.round(c.share * 1000); k++) pattern.push(c);
  for (let i = pattern.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [pattern[i], pattern[j]] = [pattern[j] as TrafficClass, pattern[i] as TrafficClass];
  }
  return pattern;
}

/** A full GC in the gateway through its inspector (HeapProfiler.collectGarbage). */
async function forceGc(wsUrl: string): Promise<void> {
  const ws = new WebSocket(wsUrl);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('inspector: no answer to collectGarbage within 10 s')), 10_000);
    ws.addEventListener('open', () => ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' })));
    ws.addEventListener('message', (e) => {
      if ((JSON.parse(String(e.data)) as { id?: number }).id === 1) {
        clearTimeout(timer);
        resolve();
      }
    });
    ws.addEventListener('error', () => {
      clearTimeout(timer);
      reject(new Error(`inspector ${wsUrl}: connection failed`));
    });
  });
  ws.close();
}

type Phase = 'idle' | 'warm-up' | 'settle' | 'soak' | 'pods drain' | 'idle after';

interface Sample {
  readonly t: number;
  readonly phase: Phase;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
  readonly externalMiB: number;
  readonly lagP99Ms: number;
  readonly lagMaxMs: number;
  readonly inflight: number;
  readonly queued: number;
  /** Answers per second (gateway_requests_total delta). */
  readonly answeredPerS: number;
  readonly cpuPercent: number;
  readonly handles: number;
  readonly stickySessions: number;
  /** Requests waiting inside the slow pod (beyond its 2 slots), read from the emulator. */
  readonly slowPodQueued: number;
}

interface Snapshot {
  readonly at: string;
  readonly rssMiB: number;
  readonly heapUsedMiB: number;
  readonly heapTotalMiB: number;
  readonly externalMiB: number;
  readonly handles: number;
  readonly inflight: number;
  readonly queued: number;
  readonly endpointInflight: number;
  readonly stickySessions: number;
}

function mib(bytes: number): number {
  return bytes / MiB;
}

async function snapshot(at: string, gw: Gateways): Promise<Snapshot> {
  const s = await scrape(gw.adminUrls[0] as string);
  return {
    at,
    rssMiB: mib(procStatusBytes(gw.procs[0]?.pid as number, 'VmRSS')),
    heapUsedMiB: mib(s.value('nodejs_heap_size_used_bytes')),
    heapTotalMiB: mib(s.value('nodejs_heap_size_total_bytes')),
    externalMiB: mib(s.value('nodejs_external_memory_bytes')),
    handles: s.value('nodejs_active_handles_total'),
    inflight: s.sum('gateway_inflight_requests'),
    queued: s.sum('gateway_queue_length'),
    endpointInflight: s.sum('gateway_endpoint_inflight_requests'),
    stickySessions: s.sum('gateway_sticky_sessions'),
  };
}

const codeCounts = (s: Scrape) => s.sumBy('gateway_requests_total', 'code');

/** The pod token the gateway puts in socket.io sids (from one polling handshake), so forged sids can name a real pod. */
async function socketIoPodToken(origin: string): Promise<string | undefined> {
  try {
    const res = await fetch(`${origin}/socket.io/?EIO=4&transport=polling`, { signal: AbortSignal.timeout(2000) });
    return /"sid":"([0-9a-f]{8})\./.exec(await res.text())?.[1];
  } catch {
    return undefined;
  }
}

/** Warnings and errors in the gateway's log (pino JSON lines, level >= 40), by message. */
function logProblems(file: string): Record<string, number> {
  const out: Record<string, number> = {};
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out;
  }
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const entry = JSON.parse(line) as { level?: number; msg?: string; err?: { message?: string } };
      if ((entry.level ?? 0) >= 40) {
        const key = `${entry.level === 40 ? 'warn' : 'error'}: ${entry.msg ?? ''}${entry.err?.message ? ` (${entry.err.message})` : ''}`.slice(0, 200);
        out[key] = (out[key] ?? 0) + 1;
      }
    } catch {
      // not a log line
    }
  }
  return out;
}

export const soak: Scenario = {
  name: 'soak',
  title: 'Soak: mixed good and bad traffic for minutes; RSS, heap, event-loop lag and gauges over time',
  async prepare(options, log) {
    const soakS = options.quick ? 30 : 120;
    const warmS = options.quick ? 5 : 10;
    const idleS = options.quick ? 10 : 20;
    const rate = RATE;
    const phases: { phase: Phase; seconds: number }[] = [
      { phase: 'idle', seconds: 3 },
      { phase: 'warm-up', seconds: warmS },
      { phase: 'settle', seconds: 5 }, // then until every pod is idle
      { phase: 'soak', seconds: soakS },
      // The slow pod still runs work whose clients left (see the slow-pool check): until it is idle.
      { phase: 'pods drain', seconds: soakS * 0.4 },
      { phase: 'idle after', seconds: idleS },
    ];
    const estimateS = phases.reduce((s, p) => s + p.seconds, 0) + 8;
    return {
      estimateS,
      plan: `${rate} req/s of mixed traffic for ${soakS} s (${rate * soakS} requests) after a ${warmS} s warm-up, then until the pods are idle and ${idleS} s more; sampled every second`,
      async run() {
        const progress = new Progress('soak', phases.length, estimateS);
        const clusters: Cluster[] = [];
        for (const s of [nlu, dialog, slow]) clusters.push(await startCluster(s));
        const [nluPods, dialogPods, slowPods] = clusters as [Cluster, Cluster, Cluster];
        const gw = await startGateways({
          endpoints: nluPods.urls,
          pool: parsePool,
          nodeArgs: ['--inspect=127.0.0.1:0'],
          extras: {
            pools: {
              dialog: { endpoints: dialogPods.urls, pool: { ...fastPool, affinity: 'rasa' } },
              slow: { endpoints: slowPods.urls, pool: { slotsPerEndpoint: 2, queue: { maxLength: 1000, maxWaitMs: 30_000 }, upstreamTimeoutMs: 60_000 } },
            },
            routes: [
              { path: '/model/parse', pool: 'default' },
              { path: '/model/predict', pool: 'slow' },
              { path: '/model', pool: 'default' },
              { path: '/status', pool: 'default' },
              { prefix: '/webhooks/', pool: 'dialog' },
              { prefix: '/conversations/', pool: 'dialog' },
              { prefix: '/socket.io/', pool: 'dialog' },
            ],
          },
        });
        const proc = gw.procs[0];
        if (!proc) throw new Error('no gateway process');
        const inspector = (await proc.waitFor(/Debugger listening on (ws:\/\/\S+)/, 10_000))[1] as string;
        const origin = new URL(gw.urls[0] as string);
        const random = seededRandom(8);
        const fuzz: FuzzState = {
          random: seededRandom(10),
          target: { authority: origin.host, token: TOKEN, jwtSecret: JWT_SECRET, podToken: await socketIoPodToken(origin.origin), bodyLimit: BODY_LIMIT },
          outcomes: new Map(),
          ends: new Map(),
        };
        const ctx: SendContext = { pool: keepAlivePool(origin.origin, 256), host: origin.hostname, port: Number(origin.port), random, fuzz };
        // A crash: the gateway exiting before the bench stops it. Recorded, never restarted; the load stops.
        let stopping = false;
        let crash: { atS: number; phase: Phase; code: number | null; signal: string | null } | undefined;
        const down = new AbortController();
        void proc.exited.then((code) => {
          if (stopping) return;
          crash = { atS: (performance.now() - started) / 1000, phase, code, signal: proc.child.signalCode };
          down.abort();
          progress.log(`the gateway exited during ${phase} (code ${code}, signal ${proc.child.signalCode}); stopping the load`);
        });
        const unlessCrashed = (p: Promise<unknown>) => Promise.race([p, proc.exited]);
        const pattern = classPattern(seededRandom(9));
        const total = (id: string) => [...(outcomes.get(id)?.values() ?? [])].reduce((a, b) => a + b, 0);
        const samples: Sample[] = [];
        const snapshots: Snapshot[] = [];
        const outcomes = new Map<string, Map<string, number>>();
        const goodLatency = new Map<string, number[]>();
        /** [seconds since start, ms late] per send: when the load generator itself stalled. */
        const lateness: [number, number][] = [];
        const unexpectedExamples: { class: string; outcome: string; phase: Phase; sentS: number; latencyMs: number; body?: string }[] = [];
        let phase: Phase = 'idle';
        const started = performance.now();
        let lastAnswered = NaN;
        let lastCpu = cpuSeconds(proc.pid);
        let lastAt = performance.now();
        let sampleErrors = 0;
        let lastScrape: Scrape | undefined;
        const sampler = periodic(1000, async () => {
          try {
            const s = await scrape(gw.adminUrls[0] as string);
            lastScrape = s;
            const now = performance.now();
            const cpu = cpuSeconds(proc.pid);
            const answered = s.sum('gateway_requests_total');
            samples.push({
              t: (now - started) / 1000,
              phase,
              rssMiB: mib(procStatusBytes(proc.pid, 'VmRSS')),
              heapUsedMiB: mib(s.value('nodejs_heap_size_used_bytes')),
              heapTotalMiB: mib(s.value('nodejs_heap_size_total_bytes')),
              externalMiB: mib(s.value('nodejs_external_memory_bytes')),
              lagP99Ms: s.value('nodejs_eventloop_lag_p99_seconds') * 1000,
              lagMaxMs: s.value('nodejs_eventloop_lag_max_seconds') * 1000,
              inflight: s.sum('gateway_inflight_requests'),
              queued: s.sum('gateway_queue_length'),
              answeredPerS: Number.isNaN(lastAnswered) ? 0 : (answered - lastAnswered) / ((now - lastAt) / 1000),
              cpuPercent: ((cpu - lastCpu) / ((now - lastAt) / 1000)) * 100,
              handles: s.value('nodejs_active_handles_total'),
              stickySessions: s.sum('gateway_sticky_sessions'),
              slowPodQueued: slowPods.pods.reduce((n, p) => n + p.queued, 0),
            });
            lastAnswered = answered;
            lastCpu = cpu;
            lastAt = now;
          } catch {
            sampleErrors++;
          }
        });
        let offset = 0;
        const load = async (seconds: number) => {
          const at = arrivals(() => rate, seconds * 1000, 'even', random);
          const first = offset;
          offset += at.length;
          const loopStarted = performance.now();
          const loop = await openLoop(at, (k) => {
            const i = first + k;
            const c = pattern[i % pattern.length] as TrafficClass;
            return c
              .send(i, ctx)
              .catch((err: unknown): Result => ({ outcome: `error: ${(err as Error).message}` }))
              .then((res) => ({ c, o: res.outcome, body: res.body }));
          }, down.signal);
          loop.results.forEach((r, k) => {
            if (!r) return;
            if (!r.c.expect.map(String).includes(String(r.o)) && unexpectedExamples.length < 20) {
              const body = r.body;
              unexpectedExamples.push({ class: r.c.id, outcome: String(r.o), phase, sentS: (loopStarted + (loop.sentMs[k] as number) - started) / 1000, latencyMs: loop.latencyMs[k] as number, ...(body ? { body } : {}) });
            }
            const byOutcome = outcomes.get(r.c.id) ?? new Map<string, number>();
            outcomes.set(r.c.id, byOutcome);
            const key = String(r.o);
            byOutcome.set(key, (byOutcome.get(key) ?? 0) + 1);
            if (phase === 'soak' && r.o === 200 && (r.c.id === 'parse' || r.c.id === 'webhook')) {
              const list = goodLatency.get(r.c.id) ?? [];
              goodLatency.set(r.c.id, list);
              list.push(loop.latencyMs[k] as number);
            }
          });
          const sent = at.flatMap((t, k) => (Number.isFinite(loop.sentMs[k]) ? [{ sentMs: loop.sentMs[k] as number, lateMs: (loop.sentMs[k] as number) - t }] : []));
          for (const x of sent) lateness.push([(loopStarted + x.sentMs - started) / 1000, x.lateMs]);
          const late = sent.map((x) => x.lateMs);
          return { sent: sent.length, lateMaxMs: Math.max(...late), lateP99Ms: summarize(late).p99 };
        };
        const loads: Record<string, { sent: number; lateMaxMs: number; lateP99Ms: number }> = {};
        let drainS = NaN;
        let before: Scrape | undefined;
        let after: Scrape | undefined;
        const runPhase = async (p: (typeof phases)[number]) => {
          if (p.phase === 'pods drain') {
            const t = performance.now();
            for (const c of clusters) if (!(await c.idle(300_000))) progress.log('pods still busy after 300 s');
            drainS = (performance.now() - t) / 1000;
          } else if (p.phase === 'idle' || p.phase === 'settle' || p.phase === 'idle after') {
            await unlessCrashed(sleep(p.seconds * 1000));
            if (crash) return;
            if (p.phase === 'idle') snapshots.push(await snapshot('cold start (before any traffic)', gw));
            if (p.phase === 'settle') {
              // The slow pod may still run warm-up work whose clients left: the baseline waits for it.
              for (const c of clusters) await c.idle(300_000);
              snapshots.push(await snapshot('after the warm-up, before GC', gw));
              await forceGc(inspector);
              await sleep(1000);
              snapshots.push(await snapshot('baseline: after the warm-up, idle, full GC', gw));
            }
            if (p.phase === 'idle after') {
              snapshots.push(await snapshot(`after the soak and ${p.seconds} s idle, before GC`, gw));
              await forceGc(inspector);
              await sleep(1000);
              snapshots.push(await snapshot('final: after the soak, idle, full GC', gw));
            }
          } else {
            if (p.phase === 'soak') before = await scrape(gw.adminUrls[0] as string);
            loads[p.phase] = await load(p.seconds);
            if (p.phase === 'soak') {
              after = await scrape(gw.adminUrls[0] as string);
              snapshots.push(await snapshot('end of the soak (every answer received)', gw));
            }
          }
        };
        try {
          for (const p of phases) {
            if (crash) break;
            progress.begin(`${p.phase}: ${p.seconds} s${p.phase === 'soak' || p.phase === 'warm-up' ? ` at ${rate} req/s` : ''}`, p.seconds);
            phase = p.phase;
            try {
              await runPhase(p);
            } catch (err) {
              // A scrape or the inspector failing because the gateway just died is the crash, not a harness fault.
              await Promise.race([proc.exited, sleep(2000)]);
              if (!crash) throw err;
            }
          }
        } finally {
          await sampler.stop();
          await ctx.pool.close();
        }
        const end = crash ? lastScrape : await scrape(gw.adminUrls[0] as string).catch(() => lastScrape);
        const slowPod = slowPods.pods[0];
        const slowAccounting = {
          sent: total('leave-queued'),
          answered200: outcomes.get('leave-queued')?.get('200') ?? 0,
          podRan: slowPod?.handled ?? 0,
          podMaxQueued: Math.max(0, ...samples.map((x) => x.slowPodQueued)),
          podMaxRunning: slowPod?.maxRunning ?? 0,
          drainS,
        };
        const debug = crash ? { error: 'the gateway crashed' } : await debugPools(gw.adminUrls[0] as string);
        stopping = true;
        await gw.stop();
        for (const c of clusters) await c.close();
        progress.finish();
        const problems = logProblems(proc.logFile);
        const crashTail = crash ? tail(proc.stderrTail(), 4000) : undefined;
        const internalErrors = { byStage: end?.sumBy('gateway_internal_errors_total', 'stage') ?? {}, exported: (end?.select('gateway_internal_errors_total').length ?? 0) > 0, fromLastScrapeBeforeCrash: crash !== undefined };
        const internalTotal = Object.values(internalErrors.byStage).reduce((a, b) => a + b, 0);

        // --- tables
        const expectedOf = (c: TrafficClass, key: string) => c.expect.map(String).includes(key);
        const classTable: Table = {
          header: ['traffic', 'share', 'requests', 'expected', 'got', 'unexpected'],
          rows: classes.map((c) => {
            const got = [...(outcomes.get(c.id)?.entries() ?? [])].sort((a, b) => b[1] - a[1]);
            const bad = got.filter(([k]) => !expectedOf(c, k)).reduce((s, [, n]) => s + n, 0);
            return [c.label, `${(c.share * 100).toFixed(1)} %`, String(total(c.id)), c.expect.join(' or '), got.map(([k, n]) => `${k}: ${n}`).join(', '), String(bad)];
          }),
          align: ['l', 'r', 'r', 'l', 'l', 'r'],
        };
        const baseline = snapshots.find((s) => s.at.startsWith('baseline'));
        const final = snapshots.find((s) => s.at.startsWith('final'));
        const soakSamples = samples.filter((s) => s.phase === 'soak');
        const peakRss = Math.max(...soakSamples.map((s) => s.rssMiB));
        const peakHeap = Math.max(...soakSamples.map((s) => s.heapUsedMiB));
        const snapTable: Table = {
          header: ['moment', 'RSS MiB', 'heap used MiB', 'heap total MiB', 'external MiB', 'handles', 'in flight', 'queued', 'per-pod in flight', 'sticky sessions'],
          rows: snapshots.map((s) => [s.at, fixed(s.rssMiB, 1), fixed(s.heapUsedMiB, 1), fixed(s.heapTotalMiB, 1), fixed(s.externalMiB, 1), fixed(s.handles), fixed(s.inflight), fixed(s.queued), fixed(s.endpointInflight), fixed(s.stickySessions)]),
          align: ['l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
        };
        const every = options.quick ? 5 : 10;
        const overTime: Table = {
          header: ['t s', 'phase', 'answers/s', 'gateway CPU %', 'RSS MiB', 'heap used MiB', 'lag p99 ms (max)', 'lag max ms (max)', 'in flight + queued (max)', 'handles', 'queued inside the slow pod (max)', 'sends late ms (max)'],
          rows: chunk(samples, every).map((w) => {
            const last = w[w.length - 1] as Sample;
            const mean = (f: (s: Sample) => number) => w.reduce((s, x) => s + f(x), 0) / w.length;
            const max = (f: (s: Sample) => number) => Math.max(...w.map(f));
            return [
              `${Math.round((w[0] as Sample).t)}-${Math.round(last.t)}`,
              [...new Set(w.map((s) => s.phase))].join(' / '),
              fixed(mean((s) => s.answeredPerS)),
              fixed(mean((s) => s.cpuPercent)),
              fixed(last.rssMiB, 1),
              fixed(last.heapUsedMiB, 1),
              fixed(max((s) => s.lagP99Ms), 1),
              fixed(max((s) => s.lagMaxMs), 1),
              fixed(max((s) => s.inflight + s.queued)),
              fixed(last.handles),
              fixed(max((s) => s.slowPodQueued)),
              fixed(lateness.filter(([t]) => t > (w[0] as Sample).t - 1 && t <= last.t).reduce((m, [, l]) => Math.max(m, l), 0)),
            ];
          }),
          align: ['r', 'l', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r', 'r'],
        };
        const soakRequests = loads.soak?.sent ?? 0;
        const allRequests = soakRequests + (loads['warm-up']?.sent ?? 0);
        const rssDelta = (final?.rssMiB ?? NaN) - (baseline?.rssMiB ?? NaN);
        const heapDelta = (final?.heapUsedMiB ?? NaN) - (baseline?.heapUsedMiB ?? NaN);
        const rssTolerance = Math.max(10, 0.1 * (baseline?.rssMiB ?? 0));
        const lagP99 = soakSamples.map((s) => s.lagP99Ms).sort((a, b) => a - b);
        const unexpected = classes.reduce((s, c) => s + [...(outcomes.get(c.id)?.entries() ?? [])].filter(([k]) => !expectedOf(c, k)).reduce((a, [, n]) => a + n, 0), 0);
        const checks = {
          requests: { soak: soakRequests, total: allRequests, atLeast100k: allRequests >= 100_000 },
          rss: { baselineMiB: baseline?.rssMiB, finalMiB: final?.rssMiB, peakMiB: peakRss, deltaMiB: rssDelta, toleranceMiB: rssTolerance, returned: rssDelta <= rssTolerance },
          heap: { baselineMiB: baseline?.heapUsedMiB, finalMiB: final?.heapUsedMiB, peakMiB: peakHeap, deltaMiB: heapDelta, returned: heapDelta <= 5 },
          gauges: { inflight: final?.inflight, queued: final?.queued, endpointInflight: final?.endpointInflight, zero: final?.inflight === 0 && final?.queued === 0 && final?.endpointInflight === 0 },
          lag: { soakP99OfP99Ms: lagP99[Math.ceil(0.99 * lagP99.length) - 1], soakMedianP99Ms: lagP99[Math.floor(lagP99.length / 2)], soakMaxMs: Math.max(...soakSamples.map((s) => s.lagMaxMs)) },
          unexpectedOutcomes: unexpected,
          unexpectedExamples,
          slowPool: slowAccounting,
          loadGenerator: loads,
          sampleErrors,
          crashes: crash ? [{ ...crash, stderrTail: crashTail }] : [],
          internalErrors: { ...internalErrors, total: internalTotal },
        };
        // After a crash there is no final snapshot: a check against it is not a yes or a no.
        const backTo = (ok: boolean) => (final === undefined ? '-' : ok ? 'yes' : 'no');
        const crashDetail = crash
          ? `exited during ${crash.phase} at ${fixed(crash.atS, 1)} s (code ${crash.code}, signal ${crash.signal}); nothing restarted, the load stopped; stderr: ${JSON.stringify(errorLine(crashTail ?? ''))}`
          : 'none: the process ran until the bench stopped it';
        const checkTable: Table = {
          header: ['check', 'result', 'detail'],
          rows: [
            ['gateway process crashes (must be 0)', crash ? 'no: 1' : 'yes: 0', crashDetail],
            [
              'internal errors by stage (gateway_internal_errors_total)',
              internalTotal === 0 ? 'yes: 0' : `no: ${internalTotal}`,
              `${internalErrors.exported ? Object.entries(internalErrors.byStage).map(([k, v]) => `${k}: ${v}`).join(', ') : 'no series exported (0)'}${crash ? ', from the last scrape before the crash' : ', at the end'}`,
            ],
            ['requests (warm-up + soak) >= 100k', checks.requests.atLeast100k ? 'yes' : 'no', `${allRequests} sent (${soakRequests} in the soak)`],
            ['RSS back to baseline (within max(10 MiB, 10 %))', backTo(checks.rss.returned), `baseline ${fixed(baseline?.rssMiB, 1)} MiB, peak ${fixed(peakRss, 1)}, final ${fixed(final?.rssMiB, 1)} (${rssDelta >= 0 ? '+' : ''}${fixed(rssDelta, 1)})`],
            ['heap used back to baseline (within 5 MiB, after full GC)', backTo(checks.heap.returned), `baseline ${fixed(baseline?.heapUsedMiB, 1)} MiB, peak ${fixed(peakHeap, 1)}, final ${fixed(final?.heapUsedMiB, 1)} (${heapDelta >= 0 ? '+' : ''}${fixed(heapDelta, 1)})`],
            ['in-flight and queue gauges back to zero', backTo(checks.gauges.zero), `in flight ${final?.inflight}, queued ${final?.queued}, per-pod in flight ${final?.endpointInflight}`],
            ['every answer as expected', unexpected === 0 ? 'yes' : 'no', `${unexpected} unexpected`],
            [
              'slow pool: requests the pod ran vs its gateway slots',
              '-',
              `${slowAccounting.sent} sent, ${slowAccounting.answered200} answered 200, the pod ran ${slowAccounting.podRan}; up to ${slowAccounting.podMaxQueued} waited inside the pod (2 gateway slots); it was idle ${fixed(drainS, 1)} s after the soak`,
            ],
            ['event-loop lag during the soak', '-', `p99 per second: median ${fixed(checks.lag.soakMedianP99Ms, 1)} ms, worst ${fixed(checks.lag.soakP99OfP99Ms, 1)} ms; max ${fixed(checks.lag.soakMaxMs, 1)} ms (the monitor's 10 ms resolution is included)`],
            ['load generator on time', '-', `soak sends late by p99 ${fixed(loads.soak?.lateP99Ms, 1)} ms, max ${fixed(loads.soak?.lateMaxMs, 1)} ms`],
          ],
          align: ['l', 'l', 'l'],
        };
        const fuzzEnds: readonly [RawEnd, string][] = [['server-close', 'clean close by the gateway'], ['reset', 'reset'], ['timeout', 'no end in 2 s'], ['abandoned', 'client left'], ['refused', 'refused'], ['complete', 'answered, client closed']];
        const fuzzClasses = ['1xx', '2xx', '3xx', '4xx', '5xx'];
        const fuzzTable: Table = {
          header: ['hostile kind (warm-up and soak)', 'requests', ...fuzzClasses, 'no answer', ...fuzzEnds.map(([, label]) => label)],
          rows: fuzzKinds.map((k) => {
            const got = fuzz.outcomes.get(k.id) ?? new Map<string, number>();
            const ends = fuzz.ends.get(k.id) ?? new Map<RawEnd, number>();
            const n = [...got.values()].reduce((a, b) => a + b, 0);
            const answered = fuzzClasses.map((c) => got.get(c) ?? 0);
            return [k.label, String(n), ...answered.map(String), String(n - answered.reduce((a, b) => a + b, 0)), ...fuzzEnds.map(([e]) => String(ends.get(e) ?? 0))];
          }),
          align: ['l', ...Array<Align>(fuzzClasses.length + fuzzEnds.length + 2).fill('r')],
        };
        const codes = before && after ? Object.fromEntries(Object.entries(codeCounts(after)).map(([k, v]) => [k, v - (codeCounts(before as Scrape)[k] ?? 0)])) : {};
        const goodTable: Table = {
          header: ['good traffic in the soak', 'answers', 'p50 ms', 'p95 ms', 'p99 ms', 'max ms'],
          rows: [...goodLatency.entries()].map(([id, l]) => {
            const s = summarize(l);
            return [id, String(s.n), fixed(s.p50, 1), fixed(s.p95, 1), fixed(s.p99, 1), fixed(s.max, 1)];
          }),
        };
        const command = benchCommand('soak', options);
        const problemLines = Object.entries(problems).map(([k, n]) => `- ${n} x ${k}`);
        const md = [
          '# Soak: mixed good and bad traffic',
          '',
          `Command: \`${command}\``,
          '',
          `One gateway process (\`node --inspect=127.0.0.1:0 dist/src/main.js\`), ${rate} req/s open loop (evenly spaced) through one keep-alive`,
          `client pool, ${warmS} s warm-up, ${soakS} s soak, then until every pod is idle (${fixed(drainS, 1)} s) and ${idleS} s more. Pools: \`default\` (parse) and \`dialog\` (webhooks, \`affinity: rasa\`),`,
          `each 2 emulated pods x 64 slots x 2 ms, body limit 64 KiB; \`slow\` (predict) 1 pod x 2 slots x 100 ms. \`default\` runs with \`cache\` and`,
          `\`rasaAuth: { jwtSecret, token }\` (good parses carry no credentials and bypass the cache), \`/socket.io/\` goes to \`dialog\`. ${(classes.find((c) => c.id === 'fuzz')?.share ?? 0) * 100} % of requests are fuzzed hostile`,
          'raw-socket requests from a seeded PRNG (kinds in the table below), each connection destroyed after 2 s at the latest. Sampled every second: RSS from',
          '/proc/<pid>/status (VmRSS), the rest from the gateway\'s /metrics (prom-client defaults: `nodejs_heap_size_used_bytes`,',
          '`nodejs_eventloop_lag_p99_seconds` and `_max_seconds`, over the second since the previous scrape; `gateway_inflight_requests`,',
          '`gateway_queue_length`). Baseline and final: after a full GC forced through the inspector (that GC shows as a lag spike',
          'in the settle and idle-after windows; it is the bench\'s doing, not the gateway\'s).',
          '',
          '## Checks (issue 8)',
          '',
          markdownTable(checkTable),
          '',
          ...(crashTail !== undefined ? ['The gateway\'s stderr before it exited (tail):', '', '```', crashTail, '```', ''] : []),
          slowPoolReading(slowAccounting),
          '',
          '## Traffic and answers (warm-up and soak)',
          '',
          markdownTable(classTable),
          '',
          ...(crash ? ['The gateway crashed: requests already handed to the client pool or in flight then failed (refused, reset) and count as unexpected above; nothing was sent after the exit was seen.', ''] : []),
          `Fuzzed requests by kind: the final status class of the answer (interim 100s not counted), and how each connection ended (raw sockets, 2 s limit; the PRNG is seeded, so every run sends the same sequence${crash ? '; after the crash, nothing more was sent' : ''}):`,
          '',
          markdownTable(fuzzTable),
          '',
          ...(unexpectedExamples.length > 0
            ? [
                'Unexpected answers (first 20): ' + unexpectedExamples.map((u) => `${u.class} got ${u.outcome} (${u.phase}, sent at ${fixed(u.sentS, 1)} s, after ${fixed(u.latencyMs)} ms${u.body ? `, body ${u.body}` : ''})`).join('; '),
                '',
              ]
            : []),
          `Gateway answers in the soak by status (\`gateway_requests_total\`, 499 = client left first): ${Object.entries(codes).map(([k, v]) => `${k}: ${v}`).join(', ')}`,
          '',
          markdownTable(goodTable),
          '',
          '## Memory and gauges at each moment',
          '',
          markdownTable(snapTable),
          '',
          `## Over time (${every} s windows)`,
          '',
          markdownTable(overTime),
          '',
          problemLines.length > 0 ? `Gateway log, warnings and errors:\n\n${problemLines.join('\n')}` : 'Gateway log: no warnings or errors.',
          '',
          '![soak over time](soak.png)',
        ].join('\n');
        process.stdout.write(`\n${markdownTable(checkTable)}\n${crashTail !== undefined ? `\ngateway stderr before it exited:\n${crashTail}\n` : ''}\n${markdownTable(classTable)}\n\n${markdownTable(fuzzTable)}\n\n${markdownTable(snapTable)}\n\n${markdownTable(overTime)}\n${problemLines.join('\n')}\n`);
        const spans: { from: number; to: number; label: string }[] = [];
        for (const s of samples) {
          const last = spans[spans.length - 1];
          if (last && last.label === s.phase) last.to = s.t;
          else spans.push({ from: last ? last.to : 0, to: s.t, label: s.phase });
        }
        const series = (f: (s: Sample) => number) => samples.map((s) => [s.t, f(s)] as const);
        const chart = timeSeries({
          name: 'soak',
          title: `Soak: ${rate} req/s of mixed good and bad traffic through one gateway process`,
          subtitle: `${allRequests} requests; baseline RSS ${fixed(baseline?.rssMiB, 1)} MiB -> final ${fixed(final?.rssMiB, 1)} MiB; heap used after full GC ${fixed(baseline?.heapUsedMiB, 1)} -> ${fixed(final?.heapUsedMiB, 1)} MiB; ${clock(soakS)} soak`,
          xLabel: 'seconds since the gateway started',
          spans,
          panels: [
            {
              title: 'Memory',
              yLabel: 'MiB',
              logY: false,
              series: [
                { name: 'RSS (VmRSS)', points: series((s) => s.rssMiB), color: '#d62728' },
                { name: 'V8 heap total', points: series((s) => s.heapTotalMiB), color: '#ff7f0e', dashed: true },
                { name: 'V8 heap used', points: series((s) => s.heapUsedMiB), color: '#1f77b4' },
                { name: 'external (buffers)', points: series((s) => s.externalMiB), color: '#7f7f7f' },
              ],
            },
            {
              title: 'Event-loop lag (per second; includes the monitor\'s 10 ms resolution)',
              yLabel: 'ms',
              logY: false,
              series: [
                { name: 'p99', points: series((s) => s.lagP99Ms), color: '#2ca02c' },
                { name: 'max', points: series((s) => s.lagMaxMs), color: '#9467bd' },
              ],
            },
            {
              title: 'Throughput and CPU',
              yLabel: 'per second | %',
              logY: false,
              series: [
                { name: 'answers/s / 10', points: series((s) => s.answeredPerS / 10), color: '#1f77b4' },
                { name: 'gateway CPU % (of one core)', points: series((s) => s.cpuPercent), color: '#ff7f0e' },
              ],
            },
            {
              title: 'Requests held: by the gateway (slots + queue), inside the slow pod, and open handles',
              yLabel: 'count',
              logY: false,
              series: [
                { name: 'gateway in flight + queued', points: series((s) => s.inflight + s.queued), color: '#d62728' },
                { name: 'waiting inside the slow pod', points: series((s) => s.slowPodQueued), color: '#8c564b', dashed: true },
                { name: 'gateway active handles (sockets, timers)', points: series((s) => s.handles), color: '#7f7f7f' },
              ],
            },
          ],
        });
        const files = writeResults({
          scenario: 'soak',
          outDir: options.outDir,
          json: {
            scenario: 'soak',
            command,
            generatedAt: new Date().toISOString(),
            machine: machine(),
            plan: {
              rate,
              warmS,
              soakS,
              idleS,
              classes: classes.map((c) => ({ id: c.id, label: c.label, share: c.share, expect: c.expect })),
              fuzzKinds: fuzzKinds.map((k) => ({ id: k.id, label: k.label })),
              pools: { fast: { ...fast, pods: 2 }, slow: slow.pods, parseCache: parsePool.cache, parseAuth: ['jwtSecret', 'token'] },
            },
            checks,
            fuzz: Object.fromEntries(fuzzKinds.map((k) => [k.id, { outcomes: Object.fromEntries(fuzz.outcomes.get(k.id) ?? []), ends: Object.fromEntries(fuzz.ends.get(k.id) ?? []) }])),
            outcomes: Object.fromEntries([...outcomes.entries()].map(([k, v]) => [k, Object.fromEntries(v)])),
            gatewayCodesInSoak: codes,
            snapshots,
            gatewayLogProblems: problems,
            samples,
            gatewayDebugPools: debug,
          },
          markdown: md,
          charts: [chart],
        });
        log(`wrote ${files.join(', ')}`);
      },
    };
  },
};

/**
 * What the slow pool says about requests whose clients leave after the request reached the pod: the
 * pod (like Rasa) finishes them. Either the gateway keeps the slot until the pod answers (the pod
 * never runs more than its slots), or it gives the slot back at once and the pod piles up work.
 */
function slowPoolReading(a: { sent: number; answered200: number; podRan: number; podMaxQueued: number; drainS: number }): string {
  const head = `Slow pool: ${a.sent} requests sent, ${a.answered200} still wanted when answered, the pod ran ${a.podRan}`;
  if (a.podMaxQueued === 0) {
    return `${head} and never held more than its 2 slots: a request whose client left keeps its gateway slot until the pod answers, so the gateway never sends a pod more than its slots.`;
  }
  return [
    `${head}, with up to ${a.podMaxQueued} waiting inside it while the gateway reported 2 in flight: the gateway gave a slot back as soon as`,
    `its client left, while the pod (like Rasa) finished the request. The pod needed ${fixed(a.drainS, 1)} s after the soak to work through that backlog, and`,
    "the gateway's heap, RSS and open handles during the soak follow it (pending upstream requests) and come back once it drained.",
  ].join('\n');
}

/** A crash's error message: the first `...Error: ...` line of its stderr, else the last line. */
function errorLine(text: string): string {
  const lines = text.split('\n').map((l) => l.trim()).filter((l) => l !== '');
  return lines.find((l) => /^(\w+Error|Error)\b|Error: /.test(l)) ?? lines[lines.length - 1] ?? '';
}

/** Consecutive groups of `n`. */
function chunk<T>(items: readonly T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}
