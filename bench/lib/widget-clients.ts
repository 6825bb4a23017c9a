/**
 * Chat-widget clients for the `widgets` scenario, run in a worker thread so that thousands of
 * socket.io clients do not share an event loop with the emulated pods they talk to (the pods' accept
 * queue then overflows and the harness, not the target, drops connections). Each client is a real
 * socket.io-client 4 (EIO=4, polling then the websocket upgrade, as rasa-webchat connects) with its
 * own keep-alive connection pool, as a browser tab has. Clients open at evenly spaced times, send
 * `session_request` and N `user_uttered` messages with think time, wait for each `bot_uttered`, and
 * disconnect at a common end time; the worker posts one record per client back.
 */
import { Agent } from 'node:http';
import { fileURLToPath } from 'node:url';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { io, type Socket } from 'socket.io-client';
import { sleep } from './procs.js';
import { seededRandom } from './stats.js';

export interface WidgetPlan {
  readonly clients: number;
  /** Conversations open evenly over this window. */
  readonly openMs: number;
  /** Every client disconnects at openMs + holdMs after the start. */
  readonly holdMs: number;
  readonly messages: number;
  /** Think time before each message, uniform in [min, max]. */
  readonly thinkMs: readonly [number, number];
  readonly replyTimeoutMs: number;
  readonly connectTimeoutMs: number;
}

export interface ClientRecord {
  connected: boolean;
  connectMs: number;
  upgraded: boolean;
  replies: number;
  /** Round trips (emit -> reply) of the messages whose reply came back. */
  rtts: number[];
  /** The transport at the end of the hold, or when the session ended. */
  finalTransport: string;
  /** socket.io-client's reason when the session ended before the hold did. */
  disconnect: string | undefined;
  connectError: string | undefined;
}

interface Job {
  readonly url: string;
  readonly plan: WidgetPlan;
  readonly tag: string;
  readonly seed: number;
  /** Date.now() of the first client's start (the threads' performance clocks differ). */
  readonly startAtEpochMs: number;
}

/** socket.io-client's error with what engine.io-client says caused it (an HTTP status, a socket error). */
function describe(err: Error & { description?: unknown }): string {
  const d = err.description as { message?: unknown; code?: unknown } | number | undefined;
  const cause = typeof d === 'number' ? `HTTP ${d}` : typeof d?.code === 'string' ? d.code : typeof d?.message === 'string' ? d.message : undefined;
  return cause === undefined ? err.message : `${err.message} (${cause})`;
}

/** One widget: connect, session_request, the messages with think time, hold until `endAt` (performance.now()). */
function widget(url: string, sessionId: string, plan: WidgetPlan, endAt: number, random: () => number): Promise<ClientRecord> {
  const r: ClientRecord = { connected: false, connectMs: NaN, upgraded: false, replies: 0, rtts: [], finalTransport: 'none', disconnect: undefined, connectError: undefined };
  const think = Array.from({ length: plan.messages }, () => plan.thinkMs[0] + random() * (plan.thinkMs[1] - plan.thinkMs[0]));
  const agent = new Agent({ keepAlive: true, maxSockets: 6 });
  return new Promise((resolve) => {
    const started = performance.now();
    const socket: Socket = io(url, { path: '/socket.io/', transports: ['polling', 'websocket'], upgrade: true, reconnection: false, forceNew: true, timeout: plan.connectTimeoutMs, agent: agent as never });
    const pending = new Map<string, number>();
    let waiter: (() => void) | undefined;
    let ended = false;
    const finish = () => {
      if (ended) return;
      ended = true;
      clearTimeout(endTimer);
      r.finalTransport = socket.io.engine?.transport?.name ?? 'none';
      socket.disconnect();
      agent.destroy();
      resolve(r);
    };
    const endTimer = setTimeout(finish, Math.max(0, endAt - performance.now()));
    socket.io.on('open', () => socket.io.engine.once('upgrade', () => (r.upgraded = true)));
    socket.on('connect_error', (err: Error & { description?: unknown }) => {
      r.connectError = describe(err);
      finish();
    });
    socket.on('disconnect', (reason: string) => {
      if (ended) return;
      r.disconnect = reason;
      r.finalTransport = socket.io.engine?.transport?.name ?? 'none';
      waiter?.();
    });
    socket.on('bot_uttered', (m: { text?: string }) => {
      const sent = pending.get(m.text ?? '');
      if (sent === undefined) return;
      pending.delete(m.text as string);
      r.replies++;
      r.rtts.push(performance.now() - sent);
      waiter?.();
    });
    const converse = async () => {
      for (let k = 0; k < plan.messages && !ended && socket.connected; k++) {
        await sleep(think[k] as number);
        if (ended || !socket.connected) break;
        const message = `${sessionId} m${k}`;
        pending.set(`echo: ${message}`, performance.now());
        socket.emit('user_uttered', { message, session_id: sessionId });
        await new Promise<void>((done) => {
          const timer = setTimeout(done, plan.replyTimeoutMs);
          waiter = () => {
            if (pending.size === 0 || !socket.connected) {
              clearTimeout(timer);
              done();
            }
          };
        });
        waiter = undefined;
      }
    };
    socket.once('connect', () => {
      r.connected = true;
      r.connectMs = performance.now() - started;
      socket.once('session_confirm', () => void converse());
      socket.emit('session_request', { session_id: sessionId });
    });
  });
}

async function runJob(job: Job): Promise<ClientRecord[]> {
  const random = seededRandom(job.seed);
  const t0 = performance.now() + (job.startAtEpochMs - Date.now());
  const endAt = t0 + job.plan.openMs + job.plan.holdMs;
  const records: Promise<ClientRecord>[] = [];
  for (let i = 0; i < job.plan.clients; i++) {
    const wait = t0 + (i * job.plan.openMs) / job.plan.clients - performance.now();
    if (wait > 1) await sleep(wait);
    records.push(widget(job.url, `${job.tag}-${i}`, job.plan, endAt, random));
  }
  return Promise.all(records);
}

/** Runs the plan's clients against `url` in a worker thread; resolves with one record per client. */
export function runWidgets(job: Job): Promise<ClientRecord[]> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(fileURLToPath(import.meta.url), { workerData: job });
    worker.once('message', (records: ClientRecord[]) => {
      resolve(records);
      void worker.terminate();
    });
    worker.once('error', reject);
    worker.once('exit', (code) => reject(new Error(`widget worker exited (code ${code}) without results`)));
  });
}

if (!isMainThread && parentPort) {
  const port = parentPort;
  void runJob(workerData as Job).then((records) => port.postMessage(records));
}
