/**
 * Leader election over a `coordination.k8s.io/v1` Lease, so that of several gateway replicas exactly
 * one does a job that must not be done twice (writing pod-deletion-cost annotations; electing one
 * scheduler per pool next). It knows nothing of the job: callers read `isLeader` before each piece of
 * work and hear about changes through `onChange`.
 *
 * The rules are client-go's leaderelection package: the holder renews `renewTime` every renew
 * interval (default a third of the lease duration); another replica takes over only once the Lease
 * has stayed unchanged (same resourceVersion) for `leaseDurationSeconds` of *its own* clock, so no
 * two clocks are compared, or at once when the holder released it (empty holderIdentity, done by
 * `stop()`). Every write is a PUT carrying the resourceVersion read, so of two replicas racing for an
 * expired Lease exactly one wins (the other gets 409 Conflict). The holder counts as leader only
 * until its last successful renewal, measured from before it was sent, is older than the lease
 * duration, which is earlier than any other replica may take over.
 *
 * Needs RBAC get/create/update on `leases` (group `coordination.k8s.io`) in the Lease's namespace.
 * Errors (API server away, 5xx, 403) are logged and retried on the next round; nothing throws out.
 * The client library comes through ./client.js, loaded on the first round, so importing this costs
 * nothing until an election starts; the rounds are a util/periodic.ts loop (one round at a time).
 */
import { hostname } from 'node:os';
import type { CoordinationV1Api, KubeConfig, V1Lease } from '@kubernetes/client-node';
import {
  connector,
  consoleLogger,
  describeError,
  httpStatus,
  withTimeout,
  type DescribedError,
  type KubernetesConnection,
  type KubernetesLogger,
} from './client.js';
import { Periodic, settleWithin } from '../util/periodic.js';

export interface LeaseElectionOptions {
  /** The Lease's name (a DNS subdomain) and namespace. */
  readonly name: string;
  readonly namespace: string;
  readonly leaseDurationSeconds: number;
  /** This replica in `holderIdentity`; default: POD_NAME (downward API), else the hostname. */
  readonly identity?: string;
  /** How often the holder renews and the others look; default: a third of the lease duration, at least 100 ms. */
  readonly renewIntervalMs?: number;
  /** Credentials; default: `connector()`'s (KUBECONFIG, in-cluster, ~/.kube/config). */
  readonly kubeConfig?: KubeConfig;
  /** A connection shared with the caller's own API calls (takes precedence over `kubeConfig`). */
  readonly connect?: () => Promise<KubernetesConnection>;
  /** Labels of a Lease this replica creates. */
  readonly labels?: Readonly<Record<string, string>>;
  /** What the Lease is for, in log messages (`<purpose> lease request failed; retrying`). */
  readonly purpose?: string;
  readonly logger?: KubernetesLogger;
  /** Merged into every log line (e.g. the pool). */
  readonly logContext?: object;
  /** This replica became (true) or stopped being (false) the leader; also `false` on stop if it led. */
  readonly onChange?: (leader: boolean) => void;
  /** A round failed (already logged); for callers that show the last error. */
  readonly onError?: (error: DescribedError) => void;
  /** An API call that has not answered after this long counts as failed (the client sets no timeout). */
  readonly requestTimeoutMs?: number;
  /** Upper bound of `stop()` (waiting for what is in progress, then releasing the Lease). */
  readonly stopTimeoutMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** Monotonic clock (ms). */
  readonly now?: () => number;
}

export interface LeaseElectionStatus {
  readonly identity: string;
  /** `namespace/name`. */
  readonly lease: string;
  readonly leader: boolean;
  /** The holder as last read ('' when released or unknown). */
  readonly holder: string;
  readonly acquisitions: number;
  readonly errors: number;
  readonly lastError: string | undefined;
}

/** client-go's ratio: a holder renews three times per lease duration, so one lost renewal is survived. */
export function defaultRenewIntervalMs(leaseDurationSeconds: number): number {
  return Math.max(100, Math.floor((leaseDurationSeconds * 1000) / 3));
}

interface LeaseApi {
  readonly coordination: CoordinationV1Api;
  readonly microTime: (ms: number) => Date;
}

export class LeaseElection {
  readonly identity: string;
  readonly name: string;
  readonly namespace: string;
  readonly renewIntervalMs: number;
  private readonly leaseDurationSeconds: number;
  private readonly leaseDurationMs: number;
  private readonly purpose: string;
  private readonly logger: KubernetesLogger;
  readonly requestTimeoutMs: number;
  private readonly stopTimeoutMs: number;
  private readonly now: () => number;
  private readonly connect: () => Promise<KubernetesConnection>;
  private api: LeaseApi | undefined;
  private readonly loop: Periodic;
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
  private acquisitions = 0;
  private errors = 0;
  private lastError: string | undefined;

  constructor(private readonly options: LeaseElectionOptions) {
    const env = options.env ?? process.env;
    this.identity = options.identity ?? (env.POD_NAME || hostname());
    this.name = options.name;
    this.namespace = options.namespace;
    this.leaseDurationSeconds = options.leaseDurationSeconds;
    this.leaseDurationMs = options.leaseDurationSeconds * 1000;
    this.renewIntervalMs = options.renewIntervalMs ?? defaultRenewIntervalMs(options.leaseDurationSeconds);
    this.purpose = options.purpose ?? 'leader election';
    this.logger = options.logger ?? consoleLogger('lease election');
    this.requestTimeoutMs = options.requestTimeoutMs ?? Math.min(10_000, Math.max(500, this.leaseDurationMs / 2));
    this.stopTimeoutMs = options.stopTimeoutMs ?? 3000;
    this.now = options.now ?? (() => performance.now());
    this.connect = options.connect ?? connector(options.kubeConfig);
    this.loop = new Periodic(() => this.round(), this.renewIntervalMs);
  }

  get lease(): string {
    return `${this.namespace}/${this.name}`;
  }

  get isLeader(): boolean {
    return !this.stopped && this.heldByMe && this.now() < this.leaderUntil;
  }

  /** Starts the rounds (the first at once). Never throws; failures are logged and retried. */
  start(): void {
    if (!this.stopped) this.loop.start();
  }

  /**
   * Ends the rounds: waits (bounded) for one in progress, then, by default, releases the Lease if this
   * replica holds it, so another replica takes over at once instead of after the lease duration.
   * `release: false` leaves the Lease as it is (what a crash would do).
   */
  async stop(options: { release?: boolean; timeoutMs?: number } = {}): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const budget = options.timeoutMs ?? this.stopTimeoutMs;
    const deadline = this.now() + budget;
    await this.loop.stop(budget);
    if ((options.release ?? true) && this.api && this.heldByMe && this.ownLease) {
      await settleWithin(this.release(this.api, this.ownLease), Math.max(100, deadline - this.now()));
    }
    this.heldByMe = false;
    this.leaderUntil = -Infinity;
    this.noteLeadership(false);
  }

  status(): LeaseElectionStatus {
    return {
      identity: this.identity,
      lease: this.lease,
      leader: this.isLeader,
      holder: this.holder,
      acquisitions: this.acquisitions,
      errors: this.errors,
      lastError: this.lastError,
    };
  }

  private async round(): Promise<void> {
    try {
      await this.sync(await this.leaseApi());
    } catch (err) {
      const credentials = !this.api;
      this.failed(err, credentials ? `cannot load Kubernetes credentials for the ${this.purpose} lease; retrying` : `${this.purpose} lease request failed; retrying`);
    }
    if (!this.stopped) this.noteLeadership(this.isLeader);
  }

  private async leaseApi(): Promise<LeaseApi> {
    if (!this.api) {
      const { k8s, kubeConfig } = await this.connect();
      this.api = {
        coordination: kubeConfig.makeApiClient(k8s.CoordinationV1Api),
        // V1MicroTime serialises with six fractional digits, as the API server's MicroTime requires.
        microTime: (ms) => new k8s.V1MicroTime(ms),
      };
    }
    return this.api;
  }

  private failed(err: unknown, message: string): void {
    this.errors++;
    const described = describeError(err);
    this.lastError = described.error;
    this.logger.warn({ ...this.options.logContext, lease: this.lease, ...described }, message);
    this.options.onError?.(described);
  }

  /** One round: read the Lease, then create, renew, take over, or stand by. */
  private async sync(api: LeaseApi): Promise<void> {
    const sentAt = this.now();
    const ref = { name: this.name, namespace: this.namespace };
    let lease: V1Lease | undefined;
    try {
      lease = await withTimeout(api.coordination.readNamespacedLease(ref), this.requestTimeoutMs);
    } catch (err) {
      if (httpStatus(err) !== 404) throw err;
    }
    if (this.stopped) return;
    if (!lease) {
      const body: V1Lease = {
        apiVersion: 'coordination.k8s.io/v1',
        kind: 'Lease',
        metadata: { name: this.name, namespace: this.namespace, ...(this.options.labels ? { labels: { ...this.options.labels } } : {}) },
        spec: this.holderSpec(api, undefined),
      };
      try {
        this.won(await withTimeout(api.coordination.createNamespacedLease({ namespace: this.namespace, body }), this.requestTimeoutMs), sentAt, true);
      } catch (err) {
        if (httpStatus(err) !== 409) throw err;
        this.lostTo(''); // someone created it first: read it next round
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
    const durationMs = (lease.spec?.leaseDurationSeconds ?? this.leaseDurationSeconds) * 1000;
    const expired = holder === '' || this.now() - this.observedAt >= durationMs;
    if (!mine && !expired) {
      this.lostTo(holder);
      return;
    }
    const body: V1Lease = { ...lease, spec: this.holderSpec(api, mine ? lease : undefined, lease) };
    try {
      this.won(await withTimeout(api.coordination.replaceNamespacedLease({ ...ref, body }), this.requestTimeoutMs), sentAt, !mine);
    } catch (err) {
      if (httpStatus(err) !== 409) throw err;
      // Changed since read: another replica renewed or took it. If it was ours, the validity window
      // runs out by itself unless the next round renews it.
      if (!mine) this.lostTo(holder);
    }
  }

  /** The spec this replica writes: renewing `current` (its own) or taking over from `previous`. */
  private holderSpec(api: LeaseApi, current: V1Lease | undefined, previous?: V1Lease): NonNullable<V1Lease['spec']> {
    const now = api.microTime(Date.now());
    if (current) return { ...current.spec, holderIdentity: this.identity, leaseDurationSeconds: this.leaseDurationSeconds, renewTime: now };
    return {
      holderIdentity: this.identity,
      leaseDurationSeconds: this.leaseDurationSeconds,
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
    if (acquired) this.acquisitions++;
  }

  private lostTo(holder: string): void {
    this.heldByMe = false;
    this.ownLease = undefined;
    this.leaderUntil = -Infinity;
    if (holder) this.holder = holder;
  }

  private noteLeadership(leader: boolean): void {
    if (leader === this.wasLeader) return;
    this.wasLeader = leader;
    this.options.onChange?.(leader);
  }

  private async release(api: LeaseApi, lease: V1Lease): Promise<void> {
    const now = api.microTime(Date.now());
    const body: V1Lease = {
      ...lease,
      spec: { ...lease.spec, holderIdentity: '', leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
    };
    try {
      await withTimeout(api.coordination.replaceNamespacedLease({ name: this.name, namespace: this.namespace, body }), this.requestTimeoutMs);
      this.holder = '';
      this.logger.info?.({ ...this.options.logContext, identity: this.identity }, `${this.purpose} lease released`);
    } catch (err) {
      // 409: someone else wrote it since; nothing of ours to release.
      if (httpStatus(err) !== 409) this.logger.warn({ ...this.options.logContext, ...describeError(err) }, `releasing the ${this.purpose} lease failed`);
    }
  }
}
