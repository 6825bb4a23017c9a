/**
 * A discrete-event simulation of a pool in front of emulated pods, on a virtual clock: the real Pool,
 * admission, central queue, dispatcher and adaptive limiter, with pods modelled as the study describes them (K
 * parallel slots, a service time, FIFO inside beyond K). Deterministic, so tests can assert latencies.
 */
import { Ticket } from '../../src/admission/ticket.js';
import type { Timers } from '../../src/admission/central-queue.js';
import type { GatewayError } from '../../src/errors.js';
import { AdaptiveLimits } from '../../src/admission/adaptive-slots.js';
import { Admission, type DispatchMode } from '../../src/admission/admission.js';
import type { LimiterOptions } from '../../src/load/concurrency-limit.js';
import type { Backend } from '../../src/pool/backend.js';
import { Pool } from '../../src/pool/pool.js';
import { endpoint, seeded } from './tickets.js';

interface Event {
  at: number;
  seq: number;
  fn: () => void;
  cancelled: boolean;
}

export class VirtualClock implements Timers {
  now = 0;
  private events: Event[] = [];
  private seq = 0;

  set(fn: () => void, ms: number): NodeJS.Timeout {
    const ev: Event = { at: this.now + Math.max(0, ms), seq: ++this.seq, fn, cancelled: false };
    let i = this.events.length;
    this.events.push(ev);
    while (i > 0 && (this.events[i - 1] as Event).at > ev.at) {
      this.events[i] = this.events[i - 1] as Event;
      i--;
    }
    this.events[i] = ev;
    return ev as unknown as NodeJS.Timeout;
  }

  clear(timer: NodeJS.Timeout): void {
    (timer as unknown as Event).cancelled = true;
  }

  /** Runs events in time order up to `untilMs` (all of them by default); the clock ends at `untilMs` if finite. */
  run(untilMs = Infinity): void {
    for (;;) {
      const ev = this.events[0];
      if (!ev || ev.at > untilMs) break;
      this.events.shift();
      if (ev.cancelled) continue;
      this.now = ev.at;
      ev.fn();
    }
    if (untilMs !== Infinity && untilMs > this.now) this.now = untilMs;
  }

  get pending(): number {
    return this.events.filter((e) => !e.cancelled).length;
  }
}

/** A pod: `slots` requests at once, each taking `serviceMs`, the rest FIFO inside; `hung` never answers. */
export class SimPod {
  running = 0;
  maxRunning = 0;
  served = 0;
  hung = false;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly clock: VirtualClock,
    public slots: number,
    public serviceMs: number,
    /** Each service time drawn from this (default: exactly `serviceMs`), as real pods vary. */
    private readonly draw: (serviceMs: number) => number = (ms) => ms,
  ) {}

  submit(done: () => void): void {
    if (this.running < this.slots) this.start(done);
    else this.waiting.push(done);
  }

  private start(done: () => void): void {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    if (this.hung) return;
    this.clock.set(() => {
      this.running--;
      this.served++;
      const next = this.waiting.shift();
      if (next) this.start(next);
      done();
    }, this.draw(this.serviceMs));
  }
}

export class SimRequest extends Ticket {
  arrivalMs = 0;
  doneMs = -1;
  pod: number | undefined;
  error: GatewayError | undefined;
  /** Called once answered (closed-loop clients send their next request here). */
  onDone: (() => void) | undefined;

  constructor(private readonly sim: Sim) {
    super();
  }

  get latencyMs(): number {
    return this.doneMs - this.arrivalMs;
  }

  override onGranted(backend: Backend): void {
    const index = this.sim.indexOf(backend);
    this.pod = index;
    this.sim.pods[index]!.submit(() => {
      this.doneMs = this.sim.clock.now;
      this.sim.admission.release(this, 'ok', this.sim.clock.now - this.grantedAtMs);
      this.onDone?.();
    });
  }

  override onRejected(error: GatewayError): void {
    this.error = error;
  }
}

export interface SimOptions {
  readonly pods: readonly { slots: number; serviceMs: number }[];
  /** Static slots per pod, or `auto` (learned). */
  readonly slots: number | 'auto';
  readonly dispatch?: DispatchMode;
  readonly limiter?: Partial<LimiterOptions>;
  readonly maxWaitMs?: number;
  readonly balancer?: 'least-outstanding' | 'round-robin';
  /** Service-time noise: each request takes serviceMs x (1 ± share) + [0, extraMs), uniform, seeded. */
  readonly noise?: { readonly share: number; readonly extraMs: number; readonly seed: number };
}

export class Sim {
  readonly clock = new VirtualClock();
  readonly pool: Pool;
  readonly admission: Admission;
  readonly pods: SimPod[];
  readonly limits: AdaptiveLimits | undefined;
  private readonly index = new Map<string, number>();

  constructor(options: SimOptions) {
    this.clock.now = 1000;
    const auto = options.slots === 'auto';
    const minSlots = options.limiter?.minSlots ?? 1;
    const dispatch = options.dispatch ?? (auto ? 'earliest-completion' : 'greedy');
    this.pool = new Pool({ name: 'sim', slotsPerEndpoint: auto ? minSlots : (options.slots as number), adaptive: auto, now: () => this.clock.now });
    this.admission = new Admission(this.pool, {
      balancer: options.balancer ?? 'least-outstanding',
      dispatch,
      queue: { maxLength: 100_000, maxWaitMs: options.maxWaitMs ?? 600_000 },
      random: seeded(7),
      timers: this.clock,
    });
    const noise = options.noise;
    const random = noise ? seeded(noise.seed) : undefined;
    const draw = noise && random ? (ms: number) => ms * (1 + noise.share * (2 * random() - 1)) + noise.extraMs * random() : undefined;
    this.pods = options.pods.map((p) => new SimPod(this.clock, p.slots, p.serviceMs, draw));
    const endpoints = options.pods.map((_, i) => endpoint(i + 1));
    endpoints.forEach((e, i) => this.index.set(e.key, i));
    if (auto || dispatch === 'earliest-completion') {
      this.limits = new AdaptiveLimits(this.admission, { minSlots, maxSlots: options.limiter?.maxSlots ?? 16, ...options.limiter, adjust: auto });
    }
    this.pool.update(endpoints);
  }

  indexOf(backend: Backend): number {
    return this.index.get(backend.key) as number;
  }

  get backends(): Backend[] {
    return [...this.pool.backends];
  }

  /** Each pod's current limit, in pod order. */
  get slots(): number[] {
    return this.backends.map((b) => b.limit);
  }

  /** Sends one request at `atMs` (absolute virtual time). */
  send(atMs: number, into: SimRequest[] = []): SimRequest[] {
    const r = new SimRequest(this);
    this.clock.set(() => {
      r.arrivalMs = this.clock.now;
      this.admission.admit(r);
    }, atMs - this.clock.now);
    into.push(r);
    return into;
  }

  /** The study's burst: n requests, request i at start + i x window / n; runs until all are answered. */
  burst(n: number, windowMs = 1000, startMs = this.clock.now): SimRequest[] {
    const out: SimRequest[] = [];
    for (let i = 0; i < n; i++) this.send(startMs + (i * windowMs) / n, out);
    this.clock.run();
    return out;
  }

  /** Keeps `clients` requests outstanding (each client sends again when answered) for `durationMs`. */
  closedLoop(clients: number, durationMs: number): SimRequest[] {
    const end = this.clock.now + durationMs;
    const out: SimRequest[] = [];
    const client = () => {
      if (this.clock.now >= end) return;
      const r = new SimRequest(this);
      r.arrivalMs = this.clock.now;
      out.push(r);
      r.onDone = client;
      this.admission.admit(r);
    };
    for (let i = 0; i < clients; i++) client();
    this.clock.run(end);
    return out;
  }

  /** Lets every outstanding request finish. */
  drain(): void {
    this.clock.run();
  }
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}
