/**
 * Scale-in that spares conversations: keeps each pod's `controller.kubernetes.io/pod-deletion-cost`
 * annotation near the work the pod holds, so that when an autoscaler lowers the replica count the
 * ReplicaSet controller deletes the pod whose loss hurts least. Without it the ReplicaSet picks by its
 * own rules (unready first, then most recently created, ...) and may delete the pod holding fifty
 * live conversations while an idle one stays. Off by default (`deletionCost.enabled`); needs RBAC
 * `patch` on pods in the pool's namespace and get/create/update on `coordination.k8s.io` leases.
 *
 * Cost of a pod = its sticky conversations (the affinity table's live entries) + its requests in
 * flight, clamped to int32 (what the annotation allows). Lower cost is deleted first; equal costs
 * fall back to the controller's usual order.
 *
 * One writer at a time: every replica of the gateway runs this, but only the holder of a Lease
 * (`leaseName` in `leaseNamespace`; by default the gateway's own namespace, POD_NAMESPACE, where the
 * chart grants the lease rules, else the pool's) writes, so replicas do not overwrite each other's
 * view every few seconds. The Lease follows client-go's leader election: the holder renews `renewTime` every
 * min(intervalMs, leaseDuration/3); another replica takes over only once the Lease has stayed
 * unchanged (same resourceVersion) for `leaseDurationSeconds` of *its own* clock, or at once when the
 * holder released it (empty holderIdentity, done on graceful stop). Every write is a PUT carrying the
 * resourceVersion read, so of two replicas racing for an expired Lease exactly one wins (the other
 * gets 409 Conflict). The holder stops writing when its last successful renewal, measured from before
 * it was sent, is older than the lease duration, which is earlier than any other replica may take over.
 * Pools of one replica share a Lease when they name the same one: the replica holding it writes all
 * of them (its identity is the same for each).
 *
 * Rate limit: the holder recomputes every `intervalMs` and PATCHes (JSON merge patch of the one
 * annotation) only the pods whose cost moved by at least `minChange` since it last wrote them, or fell
 * to 0; at most `maxPatchesPerInterval` (50) per pass, largest change first, the rest on the next pass.
 * A new holder writes every pod once, since it cannot know what the previous one wrote.
 *
 * What the cost means, honestly: conversations are assigned by rendezvous hashing, so all replicas
 * agree on which pod holds a conversation, but each replica only counts the conversations it has seen
 * (its own LRU table). With a load balancer spreading clients over N gateway replicas, the holder sees
 * about 1/N of each pod's conversations and of its in-flight requests, which is a fair sample of the
 * *relative* load between pods (what the ReplicaSet compares) but not an absolute count. A pod the
 * holder never routed to gets 0. Good enough to spare the busiest pods; not an exact tally.
 *
 * Never on the request path: it reads counters the pool keeps anyway, from a timer. Errors (API
 * server away, 5xx, 403 without RBAC) are logged and retried on the next tick; nothing throws out of
 * it. The Kubernetes client is loaded on first use, as for discovery.
 */
import { hostname } from 'node:os';
import type { CoordinationV1Api, CoreV1Api, KubeConfig, V1Lease } from '@kubernetes/client-node';
import type { DeletionCostConfig } from '../config.js';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

const INT32_MAX = 2_147_483_647;
/** Pod names are DNS subdomains; anything else (a static endpoint's host:port) is not a pod. */
const POD_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** Timers may fire a little early against performance.now(). */
const TIMER_SLACK_MS = 5;

/** Pino-compatible (fastify's `app.log.child(...)` fits); console is the fallback. */
export interface DeletionCostLogger {
  warn(details: object, message: string): void;
  info?(details: object, message: string): void;
}

export interface DeletionCostOptions {
  readonly pool: Pool;
  /** Namespace of the pool's pods (the Service's namespace). */
  readonly namespace: string;
  readonly config: DeletionCostConfig;
  /** Credentials; default: as discovery loads them (KUBECONFIG, in-cluster, ~/.kube/config). */
  readonly kubeConfig?: KubeConfig;
  /** This replica in the Lease; default: POD_NAME (downward API), else the hostname. */
  readonly identity?: string;
  readonly logger?: DeletionCostLogger;
  readonly maxPatchesPerInterval?: number;
  /** Pod patches in flight at once. */
  readonly concurrency?: number;
  /** An API call that has not answered after this long counts as failed (the client sets no timeout). */
  readonly requestTimeoutMs?: number;
  /** Upper bound of `stop()` (waiting for a tick in progress, then releasing the Lease). */
  readonly stopTimeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Monotonic clock (ms). */
  readonly now?: () => number;
}

export interface DeletionCostStatus {
  readonly identity: string;
  readonly lease: string;
  readonly leader: boolean;
  /** The holder as last read ('' when released or unknown). */
  readonly holder: string;
  readonly acquisitions: number;
  readonly passes: number;
  readonly patches: number;
  readonly patchErrors: number;
  readonly leaseErrors: number;
  readonly lastError: string | undefined;
  /** What this replica last wrote, by pod, while it holds the Lease. */
  readonly written: Readonly<Record<string, number>>;
}

interface Clients {
  readonly core: CoreV1Api;
  readonly coordination: CoordinationV1Api;
  readonly microTime: (ms: number) => Date;
  /** `Content-Type: application/merge-patch+json`: 1.4.0 would otherwise send JSON Patch. */
  readonly mergePatch: Parameters<CoreV1Api['patchNamespacedPod']>[1];
  readonly describe: (err: unknown) => { status?: number; code?: string; error: string };
}

const consoleLogger: DeletionCostLogger = {
  warn: (details, message) => console.warn(`[deletion cost] ${message}`, details),
  info: (details, message) => console.info(`[deletion cost] ${message}`, details),
};

function statusOf(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

function fallbackDescribe(err: unknown): { error: string } {
  return { error: (err instanceof Error ? err.message : String(err)).split('\n')[0]!.slice(0, 300) };
}

/** Whether the backend names a real pod (EndpointSlice targetRef), not just its address. */
function podName(b: Backend): string | undefined {
  if (!b.pod || b.pod.length > 253 || !POD_NAME.test(b.pod)) return undefined;
  try {
    if (b.pod === new URL(b.origin).host) return undefined;
  } catch {
    return undefined;
  }
  return b.pod;
}

export class DeletionCostWriter {
  readonly identity: string;
  readonly leaseNamespace: string;
  private readonly leaseName: string;
  private readonly pool: Pool;
  private readonly namespace: string;
  private readonly config: DeletionCostConfig;
  private readonly logger: DeletionCostLogger;
  private readonly maxPatches: number;
  private readonly concurrency: number;
  private readonly requestTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly periodMs: number;
  private readonly leaseDurationMs: number;
  private readonly now: () => number;
  private clientsPromise: Promise<Clients> | undefined;
  private loaded: Clients | undefined;
  private timer: NodeJS.Timeout | undefined;
  private current: Promise<void> | undefined;
  private started = false;
  private stopped = false;
  /** The Lease as this replica last wrote it (its resourceVersion makes the next write conditional). */
  private ownLease: V1Lease | undefined;
  /** Whether the last read or write showed this replica as the holder. */
  private heldByMe = false;
  /** Leadership is valid until then: last successful renewal (taken before sending) + lease duration. */
  private leaderUntil = -Infinity;
  private wasLeader = false;
  /** The other holder's record as last seen, and when this replica first saw it (its own clock). */
  private observedVersion: string | undefined;
  private observedAt = 0;
  private holder = '';
  private lastPassAt = -Infinity;
  private readonly written = new Map<string, number>();
  /** Pods the API server said do not exist (404), not retried until then (ms): the slice catches up. */
  private readonly missing = new Map<string, number>();
  private acquisitions = 0;
  private passes = 0;
  private patches = 0;
  private patchErrors = 0;
  private leaseErrors = 0;
  private lastError: string | undefined;

  constructor(private readonly options: DeletionCostOptions) {
    const env = options.env ?? process.env;
    this.pool = options.pool;
    this.namespace = options.namespace;
    this.config = options.config;
    this.identity = options.identity ?? (env.POD_NAME || hostname());
    this.leaseName = options.config.leaseName;
    this.leaseNamespace = options.config.leaseNamespace ?? (env.POD_NAMESPACE || options.namespace);
    this.logger = options.logger ?? consoleLogger;
    this.maxPatches = options.maxPatchesPerInterval ?? 50;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.leaseDurationMs = options.config.leaseDurationSeconds * 1000;
    this.periodMs = Math.min(options.config.intervalMs, Math.max(100, Math.floor(this.leaseDurationMs / 3)));
    this.requestTimeoutMs = options.requestTimeoutMs ?? Math.min(10_000, Math.max(500, this.leaseDurationMs / 2));
    this.stopTimeoutMs = options.stopTimeoutMs ?? 3000;
    this.now = options.now ?? (() => performance.now());
  }

  /** Starts the loop (first tick at once). Never throws; failures are logged and retried. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.logger.info?.(
      { pool: this.pool.name, identity: this.identity, lease: `${this.leaseNamespace}/${this.leaseName}`, intervalMs: this.config.intervalMs },
      'pod-deletion-cost writer started',
    );
    this.schedule(0);
  }

  /**
   * Ends the loop: waits (bounded) for a tick in progress, then, by default, releases the Lease if
   * this replica holds it, so another replica takes over at once instead of after the lease duration.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    const deadline = this.now() + this.stopTimeoutMs;
    if (this.current) await this.within(this.current.catch(() => undefined), this.stopTimeoutMs);
    if ((options.release ?? true) && this.loaded && this.heldByMe && this.ownLease) {
      const remaining = Math.max(100, deadline - this.now());
      await this.within(this.release(this.loaded, this.ownLease), remaining);
    }
    this.heldByMe = false;
    this.leaderUntil = -Infinity;
  }

  get isLeader(): boolean {
    return !this.stopped && this.heldByMe && this.now() < this.leaderUntil;
  }

  status(): DeletionCostStatus {
    return {
      identity: this.identity,
      lease: `${this.leaseNamespace}/${this.leaseName}`,
      leader: this.isLeader,
      holder: this.holder,
      acquisitions: this.acquisitions,
      passes: this.passes,
      patches: this.patches,
      patchErrors: this.patchErrors,
      leaseErrors: this.leaseErrors,
      lastError: this.lastError,
      written: Object.fromEntries(this.written),
    };
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      const tick = this.tick();
      this.current = tick;
      void tick.finally(() => {
        if (this.current === tick) this.current = undefined;
        this.schedule(this.periodMs);
      });
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    let clients: Clients;
    try {
      clients = await this.clients();
    } catch (err) {
      this.leaseErrors++;
      this.lastError = fallbackDescribe(err).error;
      this.logger.warn({ pool: this.pool.name, ...fallbackDescribe(err) }, 'pod-deletion-cost writer cannot load Kubernetes credentials; retrying');
      return;
    }
    try {
      await this.syncLease(clients);
    } catch (err) {
      this.leaseErrors++;
      const described = clients.describe(err);
      this.lastError = described.error;
      this.logger.warn({ pool: this.pool.name, lease: `${this.leaseNamespace}/${this.leaseName}`, ...described }, 'pod-deletion-cost lease request failed; retrying');
    }
    this.noteLeadership();
    if (this.stopped || !this.isLeader) return;
    if (this.now() - this.lastPassAt < this.config.intervalMs - TIMER_SLACK_MS) return;
    this.lastPassAt = this.now();
    try {
      await this.writePass(clients);
    } catch (err) {
      // writePass catches per pod; this is a safety net.
      this.lastError = clients.describe(err).error;
      this.logger.warn({ pool: this.pool.name, ...clients.describe(err) }, 'pod-deletion-cost pass failed');
    }
  }

  private clients(): Promise<Clients> {
    if (!this.clientsPromise) {
      this.clientsPromise = (async () => {
        const [k8s, kube] = await Promise.all([import('@kubernetes/client-node'), import('./kubernetes.js')]);
        const kc = this.options.kubeConfig ?? kube.loadDefaultKubeConfig();
        const clients: Clients = {
          core: kc.makeApiClient(k8s.CoreV1Api),
          coordination: kc.makeApiClient(k8s.CoordinationV1Api),
          // V1MicroTime serialises with six fractional digits, as the API server's MicroTime requires.
          microTime: (ms) => new k8s.V1MicroTime(ms),
          mergePatch: k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
          describe: kube.describeError,
        };
        this.loaded = clients;
        return clients;
      })();
      this.clientsPromise.catch(() => {
        this.clientsPromise = undefined;
      });
    }
    return this.clientsPromise;
  }

  /** Races an API call against the request timeout (the call itself cannot be aborted). */
  private call<T>(promise: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${this.requestTimeoutMs} ms`)), this.requestTimeoutMs);
    });
    promise.catch(() => undefined);
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  private async within(promise: Promise<unknown>, ms: number): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([promise.then(() => undefined, () => undefined), new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))]);
    clearTimeout(timer);
  }

  /** One round of leader election: read the Lease, then create, renew, take over, or stand by. */
  private async syncLease(clients: Clients): Promise<void> {
    const sentAt = this.now();
    const ref = { name: this.leaseName, namespace: this.leaseNamespace };
    let lease: V1Lease | undefined;
    try {
      lease = await this.call(clients.coordination.readNamespacedLease(ref));
    } catch (err) {
      if (statusOf(err) !== 404) throw err;
    }
    if (this.stopped) return;
    if (!lease) {
      const body: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.leaseName, namespace: this.leaseNamespace, labels: { 'app.kubernetes.io/name': 'rasa-gateway' } },
        spec: this.holderSpec(clients, undefined),
      };
      try {
        this.won(await this.call(clients.coordination.createNamespacedLease({ namespace: this.leaseNamespace, body })), sentAt, true);
      } catch (err) {
        if (statusOf(err) !== 409) throw err;
        this.lostTo(''); // someone created it first: read it next tick
      }
      return;
    }
    const holder = lease.spec?.holderIdentity ?? '';
    const version = lease.metadata?.resourceVersion;
    if (version !== this.observedVersion) {
      this.observedVersion = version;
      this.observedAt = this.now();
    }
    this.holder = holder;
    const mine = holder === this.identity;
    const durationMs = (lease.spec?.leaseDurationSeconds ?? this.config.leaseDurationSeconds) * 1000;
    const expired = holder === '' || this.now() - this.observedAt >= durationMs;
    if (!mine && !expired) {
      this.lostTo(holder);
      return;
    }
    const body: V1Lease = { ...lease, spec: this.holderSpec(clients, mine ? lease : undefined, lease) };
    try {
      this.won(await this.call(clients.coordination.replaceNamespacedLease({ ...ref, body })), sentAt, !mine);
    } catch (err) {
      if (statusOf(err) !== 409) throw err;
      // Changed since read: another replica renewed or took it. If it was ours, the validity window
      // runs out by itself unless the next round renews it.
      if (!mine) this.lostTo(holder);
    }
  }

  /** The spec this replica writes: renewing `current` (its own) or taking over from `previous`. */
  private holderSpec(clients: Clients, current: V1Lease | undefined, previous?: V1Lease): NonNullable<V1Lease['spec']> {
    const now = clients.microTime(Date.now());
    if (current) return { ...current.spec, holderIdentity: this.identity, leaseDurationSeconds: this.config.leaseDurationSeconds, renewTime: now };
    return {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.config.leaseDurationSeconds,
      acquireTime: now,
      renewTime: now,
      leaseTransitions: previous ? (previous.spec?.leaseTransitions ?? 0) + 1 : 0,
    };
  }

  private won(lease: V1Lease, sentAt: number, acquired: boolean): void {
    this.ownLease = lease;
    this.heldByMe = true;
    this.holder = this.identity;
    this.observedVersion = lease.metadata?.resourceVersion;
    this.observedAt = this.now();
    this.leaderUntil = sentAt + this.leaseDurationMs;
    if (acquired) {
      this.acquisitions++;
      this.lastPassAt = -Infinity;
    }
  }

  private lostTo(holder: string): void {
    this.heldByMe = false;
    this.ownLease = undefined;
    this.leaderUntil = -Infinity;
    if (holder) this.holder = holder;
  }

  /** Logs leadership changes; a replica that stops leading forgets what it wrote. */
  private noteLeadership(): void {
    const leader = this.isLeader;
    if (leader === this.wasLeader) return;
    this.wasLeader = leader;
    const details = { pool: this.pool.name, identity: this.identity, lease: `${this.leaseNamespace}/${this.leaseName}` };
    if (leader) {
      this.lastPassAt = -Infinity;
      this.logger.info?.(details, 'pod-deletion-cost lease acquired: this replica writes the annotations');
    } else {
      this.written.clear();
      this.logger.info?.({ ...details, holder: this.holder }, 'pod-deletion-cost lease lost or expired: this replica stops writing');
    }
  }

  private async release(clients: Clients, lease: V1Lease): Promise<void> {
    const now = clients.microTime(Date.now());
    const body: V1Lease = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
    };
    try {
      await this.call(clients.coordination.replaceNamespacedLease({ name: this.leaseName, namespace: this.leaseNamespace, body }));
      this.logger.info?.({ pool: this.pool.name, identity: this.identity }, 'pod-deletion-cost lease released');
    } catch (err) {
      // 409: someone else wrote it since; nothing of ours to release.
      if (statusOf(err) !== 409) this.logger.warn({ pool: this.pool.name, ...clients.describe(err) }, 'releasing the pod-deletion-cost lease failed');
    }
  }

  /** Costs now, by pod name (pods not draining, with a real name). */
  costs(): Map<string, number> {
    const costs = new Map<string, number>();
    for (const b of this.pool.backends) {
      if (b.state === 'draining' || b.state === 'gone') continue;
      const pod = podName(b);
      if (!pod) continue;
      costs.set(pod, (costs.get(pod) ?? 0) + Math.max(0, b.sessions) + Math.max(0, b.inflight));
    }
    return costs;
  }

  private async writePass(clients: Clients): Promise<void> {
    this.passes++;
    const costs = this.costs();
    for (const pod of [...this.written.keys()]) if (!costs.has(pod)) this.written.delete(pod);
    const now = this.now();
    for (const [pod, until] of [...this.missing]) if (!costs.has(pod) || now >= until) this.missing.delete(pod);
    const due: { pod: string; cost: number; change: number }[] = [];
    for (const [pod, raw] of costs) {
      if (this.missing.has(pod)) continue;
      const cost = Math.min(INT32_MAX, raw);
      const last = this.written.get(pod);
      if (last === undefined) due.push({ pod, cost, change: Infinity });
      else if (cost !== last && (Math.abs(cost - last) >= this.config.minChange || cost === 0)) due.push({ pod, cost, change: Math.abs(cost - last) });
    }
    if (due.length === 0) return;
    due.sort((a, b) => b.change - a.change);
    const batch = due.slice(0, this.maxPatches);
    let failed = 0;
    let firstError: { status?: number; code?: string; error: string } | undefined;
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const { pod, cost } = batch[next++]!;
        // Leadership can lapse mid-pass (a slow API server): stop writing at once.
        if (this.stopped || !this.isLeader) return;
        try {
          await this.call(
            clients.core.patchNamespacedPod(
              { name: pod, namespace: this.namespace, body: { metadata: { annotations: { [POD_DELETION_COST]: String(cost) } } } },
              clients.mergePatch,
            ),
          );
          this.written.set(pod, cost);
          this.patches++;
        } catch (err) {
          if (statusOf(err) === 404) {
            // Deleted meanwhile (discovery will drop it), or a name that is no pod: do not hammer it.
            this.written.delete(pod);
            this.missing.set(pod, this.now() + Math.max(30_000, 10 * this.config.intervalMs));
            continue;
          }
          failed++;
          this.patchErrors++;
          firstError ??= clients.describe(err);
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(this.concurrency, batch.length) }, worker));
    if (firstError) {
      this.lastError = firstError.error;
      this.logger.warn({ pool: this.pool.name, failed, of: batch.length, ...firstError }, 'pod-deletion-cost patches failed; retrying next interval');
    }
    if (due.length > batch.length) {
      this.logger.info?.({ pool: this.pool.name, written: batch.length, deferred: due.length - batch.length }, 'pod-deletion-cost: more pods changed than one pass writes; the rest follow');
    }
  }
}
