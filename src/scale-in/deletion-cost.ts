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
 * view every few seconds. The election is src/kubernetes/lease-election.ts (client-go's rules; renewals
 * every min(intervalMs, leaseDuration/3)); this file only asks it `isLeader` before every patch.
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
 *
 * Why src/scale-in/ and not src/kubernetes/: this is a scale-in policy that reads the pool (src/pool/,
 * which imports discovery's types); src/kubernetes/ is the layer discovery itself stands on, so a pool
 * reader there would make the folders import each other in a circle.
 */
import type { CoreV1Api } from '@kubernetes/client-node';
import type { DeletionCostConfig } from '../config.js';
import { connector, consoleLogger, describeError, httpStatus, withTimeout, type DescribedError, type KubernetesLogger } from '../kubernetes/client.js';
import { defaultRenewIntervalMs, LeaseElection, type LeaseElectionOptions, type LeaseElectionStatus } from '../kubernetes/lease-election.js';
import type { Backend } from '../pool/backend.js';
import type { Pool } from '../pool/pool.js';
import { Periodic } from '../util/periodic.js';

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

const INT32_MAX = 2_147_483_647;
/** Pod names are DNS subdomains; anything else (a static endpoint's host:port) is not a pod. */
const POD_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export type DeletionCostLogger = KubernetesLogger;

/** `identity`, credentials, timeouts and the clock go to the Lease election as they are. */
export interface DeletionCostOptions
  extends Pick<LeaseElectionOptions, 'identity' | 'kubeConfig' | 'requestTimeoutMs' | 'stopTimeoutMs' | 'env' | 'now'> {
  readonly pool: Pool;
  /** Namespace of the pool's pods (the Service's namespace). */
  readonly namespace: string;
  readonly config: DeletionCostConfig;
  readonly logger?: DeletionCostLogger;
  readonly maxPatchesPerInterval?: number;
  /** Pod patches in flight at once. */
  readonly concurrency?: number;
}

export interface DeletionCostStatus extends Pick<LeaseElectionStatus, 'identity' | 'lease' | 'leader' | 'holder' | 'acquisitions'> {
  readonly passes: number;
  readonly patches: number;
  readonly patchErrors: number;
  readonly leaseErrors: number;
  readonly lastError: string | undefined;
  /** What this replica last wrote, by pod, while it holds the Lease. */
  readonly written: Readonly<Record<string, number>>;
}

interface PodApi {
  readonly core: CoreV1Api;
  /** `Content-Type: application/merge-patch+json`: 1.4.0 would otherwise send JSON Patch. */
  readonly mergePatch: Parameters<CoreV1Api['patchNamespacedPod']>[1];
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
  private readonly pool: Pool;
  private readonly namespace: string;
  private readonly config: DeletionCostConfig;
  private readonly logger: DeletionCostLogger;
  private readonly maxPatches: number;
  private readonly concurrency: number;
  private readonly stopTimeoutMs: number;
  private readonly now: () => number;
  private readonly connect: ReturnType<typeof connector>;
  private readonly election: LeaseElection;
  private api: PodApi | undefined;
  private readonly loop: Periodic;
  private started = false;
  private stopped = false;
  private readonly written = new Map<string, number>();
  /** Pods the API server said do not exist (404), not retried until then (ms): the slice catches up. */
  private readonly missing = new Map<string, number>();
  private passes = 0;
  private patches = 0;
  private patchErrors = 0;
  private lastError: string | undefined;

  constructor(options: DeletionCostOptions) {
    const env = options.env ?? process.env;
    this.pool = options.pool;
    this.namespace = options.namespace;
    this.config = options.config;
    this.leaseNamespace = options.config.leaseNamespace ?? (env.POD_NAMESPACE || options.namespace);
    this.logger = options.logger ?? consoleLogger('deletion cost');
    this.maxPatches = options.maxPatchesPerInterval ?? 50;
    this.concurrency = Math.max(1, options.concurrency ?? 4);
    this.stopTimeoutMs = options.stopTimeoutMs ?? 3000;
    this.now = options.now ?? (() => performance.now());
    // One connection for the Lease and the pod patches: the credentials are loaded once.
    this.connect = connector(options.kubeConfig);
    this.election = new LeaseElection({
      name: options.config.leaseName,
      namespace: this.leaseNamespace,
      leaseDurationSeconds: options.config.leaseDurationSeconds,
      // Look at the Lease at least once per write interval: after a release the next holder starts within one.
      renewIntervalMs: Math.min(options.config.intervalMs, defaultRenewIntervalMs(options.config.leaseDurationSeconds)),
      connect: this.connect,
      labels: { 'app.kubernetes.io/name': 'rasa-gateway' },
      purpose: 'pod-deletion-cost',
      logger: this.logger,
      logContext: { pool: this.pool.name },
      onChange: (leader) => this.leadershipChanged(leader),
      onError: (described) => (this.lastError = described.error),
      ...(options.requestTimeoutMs !== undefined ? { requestTimeoutMs: options.requestTimeoutMs } : {}),
      ...(options.identity !== undefined ? { identity: options.identity } : {}),
      env,
      now: this.now,
    });
    this.identity = this.election.identity;
    this.loop = new Periodic(() => this.pass(), options.config.intervalMs);
  }

  /** Starts the election and the write loop. Never throws; failures are logged and retried. */
  start(): void {
    if (this.started || this.stopped) return;
    this.started = true;
    this.logger.info?.(
      { pool: this.pool.name, identity: this.identity, lease: this.election.lease, intervalMs: this.config.intervalMs },
      'pod-deletion-cost writer started',
    );
    this.election.start();
    // The first pass comes as soon as the election is won (leadershipChanged), not after a period.
    this.loop.start(this.config.intervalMs);
  }

  /**
   * Ends the loop: waits (bounded) for a pass in progress, then, by default, releases the Lease if
   * this replica holds it, so another replica takes over at once instead of after the lease duration.
   */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const deadline = this.now() + this.stopTimeoutMs;
    await this.loop.stop(this.stopTimeoutMs);
    await this.election.stop({ ...options, timeoutMs: Math.max(100, deadline - this.now()) });
  }

  get isLeader(): boolean {
    return !this.stopped && this.election.isLeader;
  }

  status(): DeletionCostStatus {
    const lease = this.election.status();
    return {
      identity: this.identity,
      lease: lease.lease,
      leader: this.isLeader,
      holder: lease.holder,
      acquisitions: lease.acquisitions,
      passes: this.passes,
      patches: this.patches,
      patchErrors: this.patchErrors,
      leaseErrors: lease.errors,
      lastError: this.lastError,
      written: Object.fromEntries(this.written),
    };
  }

  /** A new holder writes every pod at once; one that stops leading forgets what it wrote. */
  private leadershipChanged(leader: boolean): void {
    if (this.stopped) return;
    const details = { pool: this.pool.name, identity: this.identity, lease: this.election.lease };
    if (leader) {
      this.logger.info?.(details, 'pod-deletion-cost lease acquired: this replica writes the annotations');
      this.loop.soon();
    } else {
      this.written.clear();
      this.logger.info?.({ ...details, holder: this.election.status().holder }, 'pod-deletion-cost lease lost or expired: this replica stops writing');
    }
  }

  private async pass(): Promise<void> {
    if (!this.isLeader) return;
    try {
      await this.writePass(await this.podApi());
    } catch (err) {
      // writePass catches per pod; this is a safety net.
      this.lastError = describeError(err).error;
      this.logger.warn({ pool: this.pool.name, ...describeError(err) }, 'pod-deletion-cost pass failed');
    }
  }

  private async podApi(): Promise<PodApi> {
    if (!this.api) {
      const { k8s, kubeConfig } = await this.connect();
      this.api = { core: kubeConfig.makeApiClient(k8s.CoreV1Api), mergePatch: k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch) };
    }
    return this.api;
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

  private async writePass(api: PodApi): Promise<void> {
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
    let firstError: DescribedError | undefined;
    let next = 0;
    const worker = async () => {
      while (next < batch.length) {
        const { pod, cost } = batch[next++]!;
        // Leadership can lapse mid-pass (a slow API server): stop writing at once.
        if (this.stopped || !this.isLeader) return;
        try {
          await withTimeout(
            api.core.patchNamespacedPod(
              { name: pod, namespace: this.namespace, body: { metadata: { annotations: { [POD_DELETION_COST]: String(cost) } } } },
              api.mergePatch,
            ),
            this.election.requestTimeoutMs,
          );
          this.written.set(pod, cost);
          this.patches++;
        } catch (err) {
          if (httpStatus(err) === 404) {
            // Deleted meanwhile (discovery will drop it), or a name that is no pod: do not hammer it.
            this.written.delete(pod);
            this.missing.set(pod, this.now() + Math.max(30_000, 10 * this.config.intervalMs));
            continue;
          }
          failed++;
          this.patchErrors++;
          firstError ??= describeError(err);
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
