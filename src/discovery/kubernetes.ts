/**
 * Kubernetes discovery: a pool's endpoints from the EndpointSlices of one Service
 * (`kubernetes.io/service-name=<service>`), watched with @kubernetes/client-node's list+watch informer.
 * It exists so the gateway sees pods come, drain and go within a second of the API server knowing,
 * with the conditions the Service's own proxies use (rules in slices.ts), instead of trusting a
 * Service VIP that balances per connection and knows nothing of conversations or free slots.
 *
 * Every change delivers the merged snapshot of ALL slices of the Service (the pool diffs it). Events
 * of one burst (a relist, a chunk of watch lines) are coalesced into one snapshot per event-loop turn.
 *
 * Two rules carry the robustness:
 * - The 1.4 informer stops for good after any `error` event (a failed list, a failed or refused
 *   watch). We restart it with exponential backoff and jitter (250 ms doubling to 30 s by default).
 *   A restart resumes the watch from the last resourceVersion, so nothing missed is lost; a 410 Gone
 *   (too old resourceVersion, as an HTTP status or as an ERROR event on the stream) makes the informer
 *   relist by itself, and a relist replaces the whole snapshot.
 * - Never empty a pool because the API server is away: errors never touch the snapshot; the last one
 *   stays until a successful list or watch event replaces it. Only the API server saying a Service has
 *   no endpoints empties the pool.
 *
 * `start()` resolves once the first list was applied (the gateway's /readyz waits for it); until then
 * it keeps retrying in the background. `stop()` ends the watch, timers and retries.
 *
 * Needs RBAC get/list/watch on `endpointslices` (group `discovery.k8s.io`) in the Service's namespace.
 * Credentials, error descriptions and the list timeout come from src/kubernetes/client.ts, shared with
 * the Lease election and the deletion-cost writer so they all pick the same kubeconfig. This folder
 * only reads the API; what writes to it lives elsewhere (src/scale-in/).
 */
import {
  DiscoveryV1Api,
  KubeConfig,
  ListWatch,
  Watch,
  type V1EndpointSlice,
  type V1EndpointSliceList,
} from '@kubernetes/client-node';
import type { KubernetesSource } from '../config.js';
import { consoleLogger, describeError, loadDefaultKubeConfig, withTimeout, type KubernetesLogger } from '../kubernetes/client.js';
import { endpointsOfSlice, mergeEndpoints, type EndpointSliceLike } from './slices.js';
import type { Discovery, EndpointInfo, EndpointListener } from './types.js';

export type DiscoveryLogger = KubernetesLogger;

export interface KubernetesDiscoveryOptions {
  readonly logger?: DiscoveryLogger;
  /** Restart delays after failures: `initialMs` doubling up to `maxMs`, each with jitter (50-100 %). */
  readonly backoff?: { readonly initialMs?: number; readonly maxMs?: number };
  /** A list that has not answered after this long counts as failed (the client sets no timeout). */
  readonly listTimeoutMs?: number;
  readonly random?: () => number;
}

/**
 * The client's Watch with three fixes the informer needs:
 * - a watch whose connection completes after `stop()` is aborted at once (the informer only aborts
 *   watches it already holds, so one being connected would stay open and keep the process alive);
 * - an ERROR event other than 410 ends the watch as an error, so it restarts with backoff instead of
 *   being re-opened in a tight loop from the same resourceVersion;
 * - a watch the server closes at once without any event counts as an error for the same reason.
 */
class GuardedWatch extends Watch {
  constructor(config: KubeConfig, private readonly isStopped: () => boolean) {
    super(config);
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: any, watchObj?: any) => void,
    done: (err: any) => void,
  ): Promise<AbortController> {
    const openedAt = Date.now();
    let events = 0;
    let errorEvent: { code?: number; message?: string; reason?: string } | undefined;
    const controller = await super.watch(
      path,
      queryParams,
      (phase, obj, raw) => {
        events++;
        if (phase === 'ERROR' && obj?.code !== 410) errorEvent = obj ?? {};
        callback(phase, obj, raw);
      },
      (err) => {
        if (!err && errorEvent) {
          err = Object.assign(new Error(`watch ended with an error event: ${errorEvent.reason ?? ''} ${errorEvent.message ?? ''}`.trim()), {
            statusCode: errorEvent.code,
          });
        } else if (!err && events === 0 && Date.now() - openedAt < 1000 && !this.isStopped()) {
          err = new Error('watch closed by the server at once, without any event');
        }
        done(err);
      },
    );
    if (this.isStopped()) controller.abort();
    return controller;
  }
}

export class KubernetesDiscovery implements Discovery {
  readonly description: string;
  private readonly api: DiscoveryV1Api;
  private readonly informer: ListWatch<V1EndpointSlice>;
  private readonly logger: DiscoveryLogger;
  private readonly initialBackoffMs: number;
  private readonly maxBackoffMs: number;
  private readonly listTimeoutMs: number;
  private readonly random: () => number;
  /** The Service's slices by name: the state every snapshot is computed from. */
  private readonly slices = new Map<string, EndpointSliceLike>();
  /** Parsed endpoints per slice object: a change re-parses only the slices that changed. */
  private readonly parsed = new WeakMap<EndpointSliceLike, readonly EndpointInfo[]>();
  private onUpdate: EndpointListener | undefined;
  private resolveFirst: (() => void) | undefined;
  private started = false;
  private stopped = false;
  private listed = false;
  private delivered = false;
  private flushHandle: NodeJS.Immediate | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  /** Consecutive failures since the last success; drives the backoff. */
  private failures = 0;
  private errorCount = 0;

  static fromDefaultCredentials(source: KubernetesSource, pool: string, options: KubernetesDiscoveryOptions = {}): KubernetesDiscovery {
    return new KubernetesDiscovery(loadDefaultKubeConfig(new KubeConfig()), source, pool, options);
  }

  constructor(
    kubeConfig: KubeConfig,
    readonly source: KubernetesSource,
    readonly pool: string,
    options: KubernetesDiscoveryOptions = {},
  ) {
    this.description = `kubernetes ${source.namespace}/${source.service}:${source.port}`;
    this.logger = options.logger ?? consoleLogger('kubernetes discovery');
    this.initialBackoffMs = options.backoff?.initialMs ?? 250;
    this.maxBackoffMs = options.backoff?.maxMs ?? 30_000;
    this.listTimeoutMs = options.listTimeoutMs ?? 30_000;
    this.random = options.random ?? Math.random;
    this.api = kubeConfig.makeApiClient(DiscoveryV1Api);
    const labelSelector = `kubernetes.io/service-name=${source.service}`;
    const path = `/apis/discovery.k8s.io/v1/namespaces/${encodeURIComponent(source.namespace)}/endpointslices`;
    // What makeInformer(kc, path, listFn, labelSelector) builds in 1.4.0, with the guarded Watch.
    this.informer = new ListWatch<V1EndpointSlice>(
      path,
      new GuardedWatch(kubeConfig, () => this.stopped),
      () => this.list(labelSelector),
      false,
      labelSelector,
    );
    this.informer.on('add', (s) => this.upsert(s));
    this.informer.on('update', (s) => this.upsert(s));
    this.informer.on('delete', (s) => this.remove(s));
    this.informer.on('error', (err) => this.failed(err));
  }

  start(onUpdate: EndpointListener): Promise<void> {
    if (this.started) return Promise.reject(new Error(`${this.description}: already started`));
    this.started = true;
    this.onUpdate = onUpdate;
    // Never settles if stop() comes before the first list: nothing waits on a stopped discovery.
    const first = new Promise<void>((resolve) => {
      this.resolveFirst = resolve;
    });
    this.run();
    return first;
  }

  stop(): void {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    if (this.flushHandle) clearImmediate(this.flushHandle);
    this.retryTimer = this.flushHandle = undefined;
    void this.informer.stop();
  }

  /** (Re)starts the informer: a watch from the last resourceVersion, or a list first if there is none. */
  private run(): void {
    if (this.stopped) return;
    const errorsBefore = this.errorCount;
    this.informer.start().then(
      () => {
        // Resolved without an error: the watch is connected.
        if (this.errorCount === errorsBefore) this.succeeded();
      },
      (err: unknown) => this.failed(err),
    );
  }

  private async list(labelSelector: string): Promise<V1EndpointSliceList> {
    if (this.stopped) throw new Error('discovery stopped');
    const list = await withTimeout(
      this.api.listNamespacedEndpointSlice({ namespace: this.source.namespace, labelSelector }),
      this.listTimeoutMs,
      `list did not answer within ${this.listTimeoutMs} ms`,
    );
    // Rejecting here also keeps the informer from opening a watch after stop().
    if (this.stopped) throw new Error('discovery stopped');
    // A list is the whole truth: replace, so slices deleted while we were not watching go away. The
    // informer then replays it as add/update/delete events, which change nothing further here.
    this.slices.clear();
    for (const slice of list.items ?? []) {
      const name = slice.metadata?.name;
      if (name) this.slices.set(name, slice);
    }
    this.listed = true;
    this.succeeded();
    this.schedule();
    return list;
  }

  private upsert(slice: V1EndpointSlice): void {
    const name = slice.metadata?.name;
    if (this.stopped || !name) return;
    this.slices.set(name, slice);
    this.schedule();
  }

  private remove(slice: V1EndpointSlice): void {
    const name = slice.metadata?.name;
    if (this.stopped || !name) return;
    if (this.slices.delete(name)) this.schedule();
  }

  /** Coalesces a burst of events into one snapshot, delivered on the next turn of the event loop. */
  private schedule(): void {
    if (this.flushHandle || this.stopped || !this.listed) return;
    this.flushHandle = setImmediate(() => {
      this.flushHandle = undefined;
      if (!this.stopped) this.flush();
    });
  }

  private flush(): void {
    const lists: (readonly EndpointInfo[])[] = [];
    for (const slice of this.slices.values()) {
      let endpoints = this.parsed.get(slice);
      if (!endpoints) {
        endpoints = endpointsOfSlice(slice, this.source.port);
        this.parsed.set(slice, endpoints);
      }
      lists.push(endpoints);
    }
    const snapshot = mergeEndpoints(lists);
    try {
      this.onUpdate?.(snapshot);
    } catch (err) {
      this.logger.warn({ pool: this.pool, ...describeError(err) }, 'applying the endpoint snapshot failed');
    }
    if (!this.delivered) {
      this.delivered = true;
      this.logger.info?.({ pool: this.pool, discovery: this.description, slices: this.slices.size, endpoints: snapshot.length }, 'endpoint slices listed');
      this.resolveFirst?.();
    }
  }

  private succeeded(): void {
    if (this.failures > 0 && !this.stopped) {
      this.logger.info?.({ pool: this.pool, discovery: this.description, failures: this.failures }, 'endpoint slice watch re-established');
    }
    this.failures = 0;
  }

  /** The informer has stopped (or failed to start): restart it later. The snapshot stays as it is. */
  private failed(err: unknown): void {
    this.errorCount++;
    if (this.stopped || this.retryTimer) return;
    const ceiling = Math.min(this.maxBackoffMs, this.initialBackoffMs * 2 ** Math.min(this.failures, 30));
    const delayMs = Math.round(ceiling / 2 + (this.random() * ceiling) / 2);
    this.failures++;
    this.logger.warn(
      {
        pool: this.pool,
        discovery: this.description,
        ...describeError(err),
        failures: this.failures,
        retryInMs: delayMs,
        listed: this.listed,
      },
      this.listed
        ? 'endpoint slice watch failed; keeping the last known endpoints and restarting'
        : 'endpoint slice list failed; the pool stays unready, retrying',
    );
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.run();
    }, delayMs);
  }
}
