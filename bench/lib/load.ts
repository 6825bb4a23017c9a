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
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Client, Pool, type Dispatcher } from 'undici';
import { benchTmp, hasCommand, runAsync } from './procs.js';

export interface Reply {
  readonly status: number;
  readonly pod: string | undefined;
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

async function request(dispatcher: Dispatcher, path: string, body: string | undefined): Promise<Reply> {
  try {
    const res = await dispatcher.request({
      path,
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body }),
    });
    await res.body.text();
    const pod = res.headers['x-rasa-pod'];
    return { status: res.statusCode, pod: Array.isArray(pod) ? pod[0] : pod };
  } catch (err) {
    return { status: 0, pod: undefined, error: (err as Error).message };
  }
}

export function perRequest(origins: readonly string[], connections = 1024): Sender {
  const pools = origins.map((o) => new Pool(o, { ...clientOptions, connections }));
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
