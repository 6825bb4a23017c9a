/**
 * The vote rules of cluster scheduling (src/scheduling/cluster-scheduler.ts), model-checked: a
 * property test (fast-check, seeded) runs three replicas' real ClusterSchedulers in one process, on
 * mocked timers, joined by an in-memory cluster whose links deliver in order and lose what is in
 * flight when cut. Each step does what production does, in any order: a client request arrives at
 * any replica or ends, one message is delivered, a link is cut or comes back, a replica's election
 * names any replica (or none: views of who schedules differ freely), a peer cut off turns dead,
 * time passes. After every step, no pod runs more requests than its slots, counting every
 * replica's requests: whatever the replicas believe, two of them never use one share. At the end,
 * with every link back, one scheduler named everywhere and every request over, every replica's
 * counts are zero. The take-over wait is set beyond the run: a request granted before its
 * scheduler was lost unanswered, or run by a peer turned dead, may outlive any finite wait here
 * (the README states that limit).
 */
import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import fc from 'fast-check';
import type { Cluster, ClusterMessage, PeerState } from '../src/cluster/cluster.js';
import type { GatewayError } from '../src/errors.js';
import type { Backend } from '../src/pool/backend.js';
import { attachClusterScheduling, ClusterScheduler } from '../src/scheduling/cluster-scheduler.js';
import { LocalScheduler } from '../src/scheduling/local-scheduler.js';
import { ScheduledTicket } from '../src/scheduling/scheduler.js';
import { admissionFor, endpoint, seeded } from './helpers/tickets.js';

const REPLICAS = ['http://r0:9095', 'http://r1:9095', 'http://r2:9095'];
const PODS = 3;
const SLOTS = 2;
const POOL = 'rasa';
/** Longer than any run, and within what a timer takes (2^31 - 1 ms): waiters never time out, waits never end. */
const FOREVER_MS = 2_000_000_000;

type Handler = (from: string, message: ClusterMessage) => void;

/** The links and views of the whole simulated cluster. */
class Network {
  readonly linked = new Set<string>();
  /** Messages in flight per directed link `from>to`, in order. */
  readonly queues = new Map<string, ClusterMessage[]>();
  readonly members = new Map<string, FakeCluster>();

  static pair(a: string, b: string): string {
    return a < b ? `${a}|${b}` : `${b}|${a}`;
  }

  isLinked(a: string, b: string): boolean {
    return this.linked.has(Network.pair(a, b));
  }

  cut(a: string, b: string): void {
    if (!this.linked.delete(Network.pair(a, b))) return;
    this.queues.delete(`${a}>${b}`);
    this.queues.delete(`${b}>${a}`);
    this.members.get(a)!.setState(b, 'suspect');
    this.members.get(b)!.setState(a, 'suspect');
  }

  heal(a: string, b: string): void {
    if (this.isLinked(a, b)) return;
    this.linked.add(Network.pair(a, b));
    this.members.get(a)!.setState(b, 'alive');
    this.members.get(b)!.setState(a, 'alive');
  }

  /** Delivers the oldest message on the `index`-th non-empty directed link; false when none is in flight. */
  deliver(index: number): boolean {
    const busy = [...this.queues.entries()].filter(([, q]) => q.length > 0);
    if (busy.length === 0) return false;
    const [key, queue] = busy[index % busy.length]!;
    const [from, to] = key.split('>') as [string, string];
    this.members.get(to)!.receive(from, queue.shift()!);
    return true;
  }
}

class FakeCluster implements Cluster {
  private readonly handlers = new Map<string, Handler>();
  private readonly states = new Map<string, PeerState>();
  private readonly schedulerListeners: ((pool: string, scheduler: string | null) => void)[] = [];
  private readonly stateListeners: ((url: string, state: PeerState) => void)[] = [];
  private elected: string | null = null;

  constructor(
    readonly self: string,
    private readonly net: Network,
  ) {
    for (const url of REPLICAS) if (url !== self) this.states.set(url, 'suspect');
  }

  peers(): readonly { readonly url: string; readonly state: PeerState }[] {
    return [{ url: this.self, state: 'alive' }, ...[...this.states].map(([url, state]) => ({ url, state }))];
  }

  hasQuorum(): boolean {
    return this.elected !== null;
  }

  linked(peer: string): boolean {
    return this.net.isLinked(this.self, peer);
  }

  inContact(peer: string): boolean {
    return this.linked(peer) && this.states.get(peer) === 'alive';
  }

  schedulerOf(): string | null {
    return this.elected;
  }

  elect(scheduler: string | null): void {
    this.elected = scheduler;
    for (const listener of this.schedulerListeners) listener(POOL, scheduler);
  }

  setState(peer: string, state: PeerState): void {
    if (this.states.get(peer) === state) return;
    this.states.set(peer, state);
    for (const listener of this.stateListeners) listener(peer, state);
  }

  stateOf(peer: string): PeerState | undefined {
    return this.states.get(peer);
  }

  onSchedulerChange(listener: (pool: string, scheduler: string | null) => void): void {
    this.schedulerListeners.push(listener);
  }

  onPeerState(listener: (url: string, state: PeerState) => void): void {
    this.stateListeners.push(listener);
  }

  onPeerRestart(): void {}

  send(peer: string, message: ClusterMessage): boolean {
    if (peer === this.self) throw new Error(`${this.self} sent ${message.t} to itself`);
    if (!this.linked(peer)) return false;
    const key = `${this.self}>${peer}`;
    const queue = this.net.queues.get(key) ?? [];
    queue.push(structuredClone(message));
    this.net.queues.set(key, queue);
    return true;
  }

  on(type: string, handler: Handler): void {
    this.handlers.set(type, handler);
  }

  receive(from: string, message: ClusterMessage): void {
    this.handlers.get(message.t)?.(from, message);
  }

  async start(): Promise<void> {}
  async stop(): Promise<void> {}
}

/** A client's request, as the proxy drives one: granted, then its lease released and the request finished. */
class SimTicket extends ScheduledTicket {
  failed: GatewayError | undefined;

  constructor(readonly replica: Replica) {
    super();
  }

  override onGranted(_backend: Backend): void {}

  override onRejected(error: GatewayError): void {
    this.failed = error;
  }

  override onTurn(): void {
    this.replica.scheduler.admitAgain(this);
  }
}

interface Replica {
  readonly url: string;
  readonly cluster: FakeCluster;
  readonly scheduler: ClusterScheduler;
  readonly admission: ReturnType<typeof admissionFor>;
}

type Op =
  | { kind: 'admit'; replica: number }
  | { kind: 'end'; index: number }
  | { kind: 'deliver'; index: number; count: number }
  | { kind: 'cut'; a: number; b: number }
  | { kind: 'heal'; a: number; b: number }
  | { kind: 'elect'; replica: number; scheduler: number | null }
  | { kind: 'dead'; replica: number; peer: number }
  | { kind: 'tick'; ms: number };

const replicaIndex = fc.nat({ max: REPLICAS.length - 1 });
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('admit' as const), replica: replicaIndex }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('end' as const), index: fc.nat() }) },
  { weight: 12, arbitrary: fc.record({ kind: fc.constant('deliver' as const), index: fc.nat(), count: fc.integer({ min: 1, max: 6 }) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('cut' as const), a: replicaIndex, b: replicaIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('heal' as const), a: replicaIndex, b: replicaIndex }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('elect' as const), replica: replicaIndex, scheduler: fc.option(replicaIndex, { nil: null, freq: 4 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dead' as const), replica: replicaIndex, peer: replicaIndex }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('tick' as const), ms: fc.constantFrom(10, 60, 120, 300) }) },
);

function simulate(ops: readonly Op[], prefetchGrants: number): void {
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
  const stops: (() => void)[] = [];
  try {
    let now = 0;
    const net = new Network();
    const replicas: Replica[] = REPLICAS.map((url) => {
      const cluster = new FakeCluster(url, net);
      net.members.set(url, cluster);
      const admission = admissionFor({ name: POOL, balancer: 'least-outstanding', slotsPerEndpoint: SLOTS, dispatch: 'greedy', queue: { maxLength: 10_000, maxWaitMs: FOREVER_MS }, now: () => now, random: seeded(REPLICAS.indexOf(url) + 1) });
      admission.pool.update(Array.from({ length: PODS }, (_, i) => endpoint(i + 1)));
      const scheduler = new ClusterScheduler(POOL, cluster, new LocalScheduler(admission, undefined), admission, undefined, { prefetchGrants, settleMs: FOREVER_MS });
      stops.push(attachClusterScheduling(cluster, new Map([[POOL, scheduler]]), 250));
      return { url, cluster, scheduler, admission };
    });
    // Joined to start with: every link up, one scheduler named everywhere, the votes with it.
    for (const a of REPLICAS) for (const b of REPLICAS) if (a < b) net.heal(a, b);
    for (const r of replicas) r.cluster.elect(REPLICAS[0]!);
    for (let k = 0; k < 1000 && net.deliver(0); k++);
    const tickets: SimTicket[] = [];
    const running = (pod: string) => tickets.filter((t) => t.state === 'granted' && t.backend?.key === pod).length;
    const check = (step: string) => {
      for (let i = 1; i <= PODS; i++) {
        const pod = endpoint(i).key;
        const n = running(pod);
        assert.ok(n <= SLOTS, `${step}: ${n} requests run on ${pod} with ${SLOTS} slots`);
      }
    };
    const end = (t: SimTicket) => {
      if (t.state === 'granted') t.lease!.release('ok', 5);
      t.replica.scheduler.finish(t);
      tickets.splice(tickets.indexOf(t), 1);
    };
    const elapse = (ms: number) => {
      now += ms;
      mock.timers.tick(ms);
    };

    for (const [i, o] of ops.entries()) {
      switch (o.kind) {
        case 'admit': {
          const t = new SimTicket(replicas[o.replica]!);
          tickets.push(t);
          t.replica.scheduler.admit(t);
          break;
        }
        case 'end': {
          const t = tickets[o.index % Math.max(1, tickets.length)];
          if (t) end(t);
          break;
        }
        case 'deliver':
          for (let k = 0; k < o.count && net.deliver(o.index + k); k++);
          break;
        case 'cut':
          if (o.a !== o.b) net.cut(REPLICAS[o.a]!, REPLICAS[o.b]!);
          break;
        case 'heal':
          if (o.a !== o.b) net.heal(REPLICAS[o.a]!, REPLICAS[o.b]!);
          break;
        case 'elect':
          replicas[o.replica]!.cluster.elect(o.scheduler === null ? null : REPLICAS[o.scheduler]!);
          break;
        case 'dead': {
          // Only a peer this replica has not heard from, link down, turns dead (membership.ts).
          const [self, peer] = [replicas[o.replica]!, REPLICAS[o.peer]!];
          if (self.url !== peer && !self.cluster.linked(peer)) self.cluster.setState(peer, 'dead');
          break;
        }
        case 'tick':
          elapse(o.ms);
          break;
      }
      for (const t of tickets.filter((t) => t.failed)) tickets.splice(tickets.indexOf(t), 1);
      check(`step ${i} (${JSON.stringify(o)})`);
    }

    // Everything heals and agrees; every request ends; nothing stays counted anywhere.
    for (const a of REPLICAS) for (const b of REPLICAS) if (a < b) net.heal(a, b);
    for (const r of replicas) r.cluster.elect(REPLICAS[0]!);
    const settle = () => {
      for (let k = 0; k < 10_000 && net.deliver(0); k++);
      for (let k = 0; k < 20; k++) {
        elapse(100);
        for (let j = 0; j < 10_000 && net.deliver(0); j++);
      }
    };
    settle();
    check('healed and agreed');
    for (const t of [...tickets]) end(t);
    settle();
    for (const r of replicas) {
      const inflight = [...r.admission.pool.backends].reduce((n, b) => n + b.inflight, 0);
      const views = { inflight, queued: r.admission.queue.length, vote: r.scheduler.votesView, advance: r.scheduler.grantsInAdvance };
      const lent = r.scheduler.grantsInAdvance.lent;
      assert.equal(inflight - lent, 0, `${r.url}: counts left after every request ended: ${JSON.stringify(views)}`);
      assert.equal(r.admission.queue.length, 0, `${r.url}: waiters left: ${JSON.stringify(views)}`);
    }
  } finally {
    for (const stop of stops) stop();
    mock.timers.reset();
  }
}

for (const prefetchGrants of [0, 1]) {
  test(`votes: no pod runs more than its slots, whatever the links and the elections do, and nothing stays counted (prefetchGrants ${prefetchGrants})`, () => {
    fc.assert(
      fc.property(fc.array(op, { minLength: 50, maxLength: 300 }), (ops) => simulate(ops, prefetchGrants)),
      { seed: 17, numRuns: 1000 },
    );
  });
}
