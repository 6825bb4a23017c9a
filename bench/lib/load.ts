/**
 * Load generators. Open loop (the study's bursts): n requests, request i sent at i/n of the window,
 * each timed from its send to the end of its response body. Closed loop (the overhead scenario):
 * wrk, or autocannon when wrk is missing, at a fixed number of connections.
 *
 * How clients reach the target is a `Sender`:
 * - `perRequest`: one undici Pool per origin with enough keep-alive connections that no request
 *   waits for one; with several origins (gateway replicas, or pods for the Kubernetes round-robin
 *   baseline) request i goes to origin i mod k.
 * - `perConnection`: kube-proxy's behaviour with keep-alive clients: each new TCP connection lands on
 *   a random pod and stays there; a request reuses the most recently freed idle connection (Node's
 *   agent does LIFO) or opens a new one.
 *
 * Sustained open loops (cache, soak, autoscale): `arrivals` turns a rate (constant or varying over
 * time) into send times, Poisson or evenly spaced, and `openLoop` fires each request at its time
 * without waiting for earlier answers, from one timer that sends whatever is due.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { Client, Pool, type Dispatcher } from 'undici';
import { benchTmp, hasCommand, runAsync } from './procs.js';

export interface Reply {
  readonly status: number;
  readonly pod: string | undefined;
  /** The gateway's `x-gateway-cache` answer header (hit, miss, coalesced), when present. */
  readonly cache?: string;
  /** The start of the body of an answer of status 400 or more, for diagnosis. */
  readonly body?: string;
  readonly error?: string;
}

export interface Sender {
  readonly description: string;
  send(path: string, body: string): Promise<Reply>;
  /**
   * Instant requests (GET /version) before the first measured one, `concurrency` at a time, so that
   * connections exist and the proxy's hot path (queue included) is compiled, as in a running service.
   */
  warm(total: number, concurrency: number): Promise<void>;
  close(): Promise<void>;
}

const clientOptions = { pipelining: 1, keepAliveTimeout: 60_000, headersTimeout: 300_000, bodyTimeout: 300_000 };

export interface Call {
  readonly path: string;
  /** Default: POST with a body, else GET. */
  readonly method?: string;
  readonly headers?: Readonly<Record<string, string>>;
  /** A string is sent with content-length; a stream is sent chunked. Default content type: JSON. */
  readonly body?: string | Readable;
  readonly signal?: AbortSignal;
}

const firstHeader = (v: string | string[] | undefined) => (Array.isArray(v) ? v[0] : v);

/** One request on a dispatcher, read to the end of the body; never throws (errors are a status 0). */
export async function call(dispatcher: Dispatcher, c: Call): Promise<Reply> {
  try {
    const res = await dispatcher.request({
      path: c.path,
      method: (c.method ?? (c.body === undefined ? 'GET' : 'POST')) as Dispatcher.HttpMethod,
      headers: { ...(c.body === undefined ? {} : { 'content-type': 'application/json' }), ...c.headers },
      ...(c.body === undefined ? {} : { body: c.body }),
      ...(c.signal ? { signal: c.signal } : {}),
    });
    const text = await res.body.text();
    const cache = firstHeader(res.headers['x-gateway-cache']);
    return { status: res.statusCode, pod: firstHeader(res.headers['x-rasa-pod']), ...(cache ? { cache } : {}), ...(res.statusCode >= 400 ? { body: text.slice(0, 160) } : {}) };
  } catch (err) {
    return { status: 0, pod: undefined, error: (err as Error).message };
  }
}

function request(dispatcher: Dispatcher, path: string, body: string | undefined): Promise<Reply> {
  return call(dispatcher, body === undefined ? { path } : { path, body });
}

/** undici Pool options of every keep-alive client of the bench (long timeouts: queues may be long). */
export function keepAlivePool(origin: string, connections = 1024): Pool {
  return new Pool(origin, { ...clientOptions, connections });
}

export function perRequest(origins: readonly string[], connections = 1024): Sender {
  const pools = origins.map((o) => keepAlivePool(o, connections));
  let next = 0;
  return {
    description: origins.length === 1 ? 'one keep-alive pool' : `round-robin per request over ${origins.length} origins`,
    send(path, body) {
      const pool = pools[next++ % pools.length] as Pool;
      return request(pool, path, body);
    },
    async warm(total, concurrency) {
      let left = total;
      const worker = async () => {
        while (left-- > 0) await request(pools[left % pools.length] as Pool, '/version', undefined);
      };
      await Promise.all(Array.from({ length: Math.min(total, concurrency) }, worker));
    },
    async close() {
      await Promise.all(pools.map((p) => p.close()));
    },
  };
}

export function perConnection(origins: readonly string[], random: () => number): Sender {
  const idle: Client[] = [];
  const all: Client[] = [];
  const open = () => {
    const client = new Client(origins[Math.floor(random() * origins.length)] as string, clientOptions);
    all.push(client);
    return client;
  };
  const use = async (path: string, body: string | undefined) => {
    const client = idle.pop() ?? open();
    try {
      return await request(client, path, body);
    } finally {
      idle.push(client);
    }
  };
  return {
    description: 'random pod per keep-alive connection',
    send: (path, body) => use(path, body),
    async warm() {
      // kube-proxy's spreading starts from no connections; warming would only pre-pick pods.
    },
    async close() {
      await Promise.all(all.map((c) => c.close()));
    },
  };
}

export interface BurstSample {
  readonly i: number;
  /** When it was sent, ms after the burst's first scheduled send. */
  readonly sentMs: number;
  readonly latencyMs: number;
  readonly status: number;
  readonly pod: string | undefined;
  readonly error?: string;
}

export interface BurstOptions {
  readonly n: number;
  readonly windowMs: number;
  readonly path: string;
  readonly body: (i: number) => string;
}

/** The study's burst: request i sent at i/n of the window; resolves when every response has ended. */
export async function runBurst(sender: Sender, options: BurstOptions): Promise<BurstSample[]> {
  const t0 = performance.now() + 5;
  const bodies = Array.from({ length: options.n }, (_, i) => options.body(i));
  const one = (i: number) =>
    new Promise<BurstSample>((resolve) => {
      const at = t0 + (i * options.windowMs) / options.n;
      setTimeout(() => {
        const sent = performance.now();
        void sender.send(options.path, bodies[i] as string).then((reply) => {
          resolve({ i, sentMs: sent - t0, latencyMs: performance.now() - sent, status: reply.status, pod: reply.pod, ...(reply.error ? { error: reply.error } : {}) });
        });
      }, Math.max(0, at - performance.now()));
    });
  return Promise.all(Array.from({ length: options.n }, (_, i) => one(i)));
}

/** Requests per second at `tMs` after the start of a run. */
export type Rate = (tMs: number) => number;

/**
 * Send times (ms from the start, ascending) for `rate` over `durationMs`. Poisson: a homogeneous
 * process at the highest rate, thinned to rate(t) (exact for a varying rate); even: each gap is
 * 1/rate at the time of the previous send. `peak` bounds rate(t) (found by sampling when omitted).
 */
export function arrivals(rate: Rate, durationMs: number, kind: 'poisson' | 'even', random: () => number, peak?: number): number[] {
  const out: number[] = [];
  if (kind === 'even') {
    for (let t = 0; t < durationMs; ) {
      const r = rate(t);
      if (r > 0) out.push(t);
      t += r > 0 ? 1000 / r : 10;
    }
    return out;
  }
  let max = peak ?? 0;
  if (peak === undefined) for (let t = 0; t <= durationMs; t += 10) max = Math.max(max, rate(t));
  if (!(max > 0)) return out;
  for (let t = -Math.log(1 - random()) * (1000 / max); t < durationMs; t += -Math.log(1 - random()) * (1000 / max)) {
    if (random() * max < rate(t)) out.push(t);
  }
  return out;
}

export interface OpenLoopResult<T> {
  /** When each request was handed to `fire`, ms after the first scheduled send. */
  readonly sentMs: number[];
  /** How long each took until its promise settled (ms). */
  readonly latencyMs: number[];
  readonly results: T[];
}

/**
 * An open loop: request i is fired at `at[i]` ms (from one timer that sends everything due, so a
 * late timer never reorders sends) whether or not earlier requests were answered. Resolves when
 * every request settled. `fire` should not reject (a rejection is recorded as its result: undefined).
 * Once `signal` aborts (the target died), nothing more is sent: the requests not yet sent keep NaN
 * send times and undefined results, and the loop resolves when the ones sent have settled.
 */
export function openLoop<T>(at: readonly number[], fire: (i: number) => Promise<T>, signal?: AbortSignal): Promise<OpenLoopResult<T>> {
  const n = at.length;
  const sentMs = new Array<number>(n).fill(NaN);
  const latencyMs = new Array<number>(n).fill(NaN);
  const results = new Array<T>(n);
  if (n === 0 || signal?.aborted) return Promise.resolve({ sentMs, latencyMs, results });
  return new Promise((resolve) => {
    const t0 = performance.now() + 5;
    let next = 0;
    let settled = 0;
    let last = n;
    let timer: NodeJS.Timeout | undefined;
    const finished = () => settled === last && resolve({ sentMs, latencyMs, results });
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      last = next;
      finished();
    });
    const done = (i: number, sent: number, value: T) => {
      latencyMs[i] = performance.now() - sent;
      results[i] = value;
      settled++;
      finished();
    };
    const tick = () => {
      const now = performance.now();
      while (next < last && (at[next] as number) <= now - t0) {
        const i = next++;
        sentMs[i] = now - t0;
        fire(i).then(
          (v) => done(i, now, v),
          () => done(i, now, undefined as T),
        );
      }
      if (next < last) timer = setTimeout(tick, Math.max(0, t0 + (at[next] as number) - performance.now()));
    };
    timer = setTimeout(tick, Math.max(0, t0 + (at[0] as number) - performance.now()));
  });
}

export interface ClosedLoopResult {
  readonly tool: 'wrk' | 'autocannon';
  readonly rps: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly requests: number;
  /** Socket errors, timeouts and non-2xx answers. */
  readonly errors: number;
}

export interface ClosedLoopOptions {
  readonly url: string;
  readonly connections: number;
  readonly durationS: number;
  readonly body: string;
  readonly cpus?: string;
}

/** wrk when installed (a C client costs the shared core least), else autocannon from node_modules. */
export function closedLoopTool(): 'wrk' | 'autocannon' {
  return hasCommand('wrk') ? 'wrk' : 'autocannon';
}

export async function runClosedLoop(options: ClosedLoopOptions, autocannonCli: string): Promise<ClosedLoopResult> {
  const dir = benchTmp('load');
  mkdirSync(dir, { recursive: true });
  if (closedLoopTool() === 'wrk') {
    const script = join(dir, 'post.lua');
    writeFileSync(script, `wrk.method = "POST"\nwrk.body = '${options.body.replace(/'/g, "\\'")}'\nwrk.headers["Content-Type"] = "application/json"\n`);
    const args = ['-t1', `-c${options.connections}`, `-d${options.durationS}s`, '--latency', '-s', script, options.url];
    const { code, out } = await runAsync(hasCommand('wrk') as string, args, { logFile: join(dir, 'wrk.log'), ...(options.cpus ? { cpus: options.cpus } : {}) });
    if (code !== 0) throw new Error(`wrk failed (${code}): ${out.slice(-400)}`);
    return parseWrk(out);
  }
  const args = [autocannonCli, '-c', String(options.connections), '-d', String(options.durationS), '-m', 'POST', '-H', 'content-type=application/json', '-b', options.body, '-j', options.url];
  const { code, out } = await runAsync(process.execPath, args, { logFile: join(dir, 'autocannon.log'), ...(options.cpus ? { cpus: options.cpus } : {}) });
  if (code !== 0) throw new Error(`autocannon failed (${code}): ${out.slice(-400)}`);
  const json = JSON.parse(out.slice(out.indexOf('{'), out.lastIndexOf('}') + 1)) as {
    latency: { p50: number; p99: number };
    requests: { total: number };
    duration: number;
    errors: number;
    timeouts: number;
    non2xx: number;
  };
  return {
    tool: 'autocannon',
    rps: json.requests.total / json.duration,
    p50Ms: json.latency.p50,
    p99Ms: json.latency.p99,
    requests: json.requests.total,
    errors: json.errors + json.timeouts + json.non2xx,
  };
}

function wrkDuration(value: string, unit: string): number {
  const v = Number(value);
  return unit === 'us' ? v / 1000 : unit === 's' ? v * 1000 : unit === 'm' ? v * 60_000 : v;
}

export function parseWrk(out: string): ClosedLoopResult {
  const lat = (p: string) => {
    const m = new RegExp(`^\\s*${p}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(out);
    return m ? wrkDuration(m[1] as string, m[2] as string) : NaN;
  };
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1] ?? NaN);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? NaN);
  const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const socketErrors = socket ? socket.slice(1).reduce((s, v) => s + Number(v), 0) : 0;
  const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
  return { tool: 'wrk', rps, p50Ms: lat('50'), p99Ms: lat('99'), requests, errors: socketErrors + non2xx };
}
