/**
 * A loopback stand-in for kube-apiserver that speaks the real list+watch protocol for
 * `/apis/discovery.k8s.io/v1/namespaces/{ns}/endpointslices`, so tests drive @kubernetes/client-node's
 * informer unchanged. What it reproduces, because clients depend on it:
 * - LIST answers an `EndpointSliceList` whose `metadata.resourceVersion` is the store's current one;
 *   items sorted by name, without kind/apiVersion, like the real server.
 * - resourceVersions increase globally with every write (create, update, delete).
 * - `?watch=true&resourceVersion=N`: HTTP 200, headers flushed at once (clients wait for them), then
 *   one JSON event per line: the retained events after N, then live ones. Without a resourceVersion
 *   (or "0") it starts with synthetic ADDED events for the current objects. `BOOKMARK` events only
 *   with `allowWatchBookmarks=true`; `timeoutSeconds` ends the watch cleanly.
 * - A watch from a resourceVersion older than the retained history gets HTTP 200 with one ERROR event
 *   (Status 410 Expired) and is closed, as the real server does.
 * - Label selectors (`kubernetes.io/service-name=X`, equality and inequality, existence): an object
 *   whose labels stop matching is sent as DELETED to that watch, one that starts matching as ADDED.
 * - `Authorization: Bearer <token>` is checked; anything else gets a 401 Status.
 * It accepts loopback addresses in slices, which a real API server rejects, so traffic can flow to
 * emulated pods. Test controls: apply/delete, dropConnections, failWatches, failNext, stop/restart on the same
 * port, compactHistory, counters.
 *
 * Pods and Leases, for the pod-deletion-cost writer (src/scale-in/deletion-cost.ts) and the Lease election (src/kubernetes/lease-election.ts):
 * - `PATCH /api/v1/namespaces/{ns}/pods/{name}` with `application/merge-patch+json` or
 *   `application/strategic-merge-patch+json` (identical for `metadata.annotations`): RFC 7386 merge, null
 *   deletes; annotation values must be strings (400 otherwise) and `controller.kubernetes.io/pod-deletion-cost`
 *   an int32 in decimal (422 otherwise), as the real validation says; a JSON Patch that is not a list is a
 *   400, any other content type a 415; an unknown pod a 404. Pods exist once `addPod` created them.
 * - `coordination.k8s.io/v1` Leases: GET (404 NotFound), POST (409 AlreadyExists), PUT with optimistic
 *   concurrency (a `metadata.resourceVersion` other than the stored one: 409 Conflict; none: 422);
 *   labels are kept as written.
 *   `acquireTime`/`renewTime` must be MicroTime (RFC 3339 with exactly six fractional digits), as the
 *   real server parses them (400 otherwise).
 * - Extra bearer tokens (`acceptToken`) tell clients apart: every pod patch and lease write records the
 *   token it came with.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface SliceEndpointSpec {
  readonly ip: string;
  readonly pod?: string;
  readonly zone?: string;
  readonly ready?: boolean;
  readonly serving?: boolean;
  readonly terminating?: boolean;
}

export interface SliceSpec {
  readonly name: string;
  readonly service: string;
  readonly namespace?: string;
  readonly addressType?: 'IPv4' | 'IPv6' | 'FQDN';
  readonly ports?: readonly { readonly name?: string; readonly port?: number; readonly protocol?: string }[];
  readonly endpoints: readonly SliceEndpointSpec[];
}

/** One ready pod on loopback as its own slice of `service` (each emulated pod listens on its own port). */
export function podSlice(pod: { readonly name: string; readonly url: string }, service = 'rasa'): SliceObject {
  return makeSlice({
    name: `${service}-${pod.name}`,
    service,
    ports: [{ name: 'http', port: Number(new URL(pod.url).port), protocol: 'TCP' }],
    endpoints: [{ ip: '127.0.0.1', pod: pod.name }],
  });
}

/** An EndpointSlice as the EndpointSlice controller writes one (all three conditions set). */
export function makeSlice(spec: SliceSpec): SliceObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: spec.name,
      namespace: spec.namespace ?? 'rasa',
      labels: { 'kubernetes.io/service-name': spec.service, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' },
    },
    addressType: spec.addressType ?? 'IPv4',
    ports: (spec.ports ?? [{ name: 'http', port: 5005, protocol: 'TCP' }]).map((p) => ({ ...p })),
    endpoints: spec.endpoints.map((e) => {
      const ready = e.ready ?? true;
      return {
        addresses: [e.ip],
        conditions: { ready, serving: e.serving ?? ready, terminating: e.terminating ?? false },
        ...(e.pod ? { targetRef: { kind: 'Pod', namespace: spec.namespace ?? 'rasa', name: e.pod, uid: `uid-${e.pod}` } } : {}),
        ...(e.zone ? { zone: e.zone } : {}),
        nodeName: 'node-1',
      };
    }),
  };
}

export interface SliceObject {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    resourceVersion?: string;
    uid?: string;
    creationTimestamp?: string;
    generation?: number;
    [key: string]: unknown;
  };
  [key: string]: unknown;
}

interface StoredEvent {
  readonly rv: number;
  readonly namespace: string;
  readonly type: 'ADDED' | 'MODIFIED' | 'DELETED';
  /** The object after the change (for DELETED: as deleted, carrying the deletion's resourceVersion). */
  readonly object: SliceObject;
  /** The object before the change, to turn selector transitions into ADDED/DELETED per watch. */
  readonly previous: SliceObject | undefined;
}

interface Watcher {
  readonly res: ServerResponse;
  readonly namespace: string;
  readonly selector: Selector;
  bookmarkTimer?: NodeJS.Timeout;
  timeoutTimer?: NodeJS.Timeout;
}

type Requirement = { key: string; op: '=' | '!=' | 'exists' | '!exists'; value?: string };
type Selector = readonly Requirement[];

function parseSelector(text: string | null): Selector {
  if (!text) return [];
  return text.split(',').map((part) => {
    const p = part.trim();
    let m = /^([^!=]+)!=(.*)$/.exec(p);
    if (m) return { key: m[1]!.trim(), op: '!=' as const, value: m[2]!.trim() };
    m = /^([^!=]+)==?(.*)$/.exec(p);
    if (m) return { key: m[1]!.trim(), op: '=' as const, value: m[2]!.trim() };
    if (p.startsWith('!')) return { key: p.slice(1).trim(), op: '!exists' as const };
    return { key: p, op: 'exists' as const };
  });
}

function matches(selector: Selector, obj: SliceObject | undefined): boolean {
  if (!obj) return false;
  const labels = obj.metadata.labels ?? {};
  return selector.every((r) => {
    const v = labels[r.key];
    switch (r.op) {
      case '=':
        return v === r.value;
      case '!=':
        return v !== r.value;
      case 'exists':
        return v !== undefined;
      case '!exists':
        return v === undefined;
    }
  });
}

function status(code: number, reason: string, message: string) {
  return { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code };
}

const clone = <T>(v: T): T => structuredClone(v);

export interface PodPatchRecord {
  readonly namespace: string;
  readonly name: string;
  readonly token: string;
  readonly contentType: string;
  /** The annotations of the patch body (not of the pod after it). */
  readonly annotations: Record<string, string | null>;
}

export interface LeaseWriteRecord {
  readonly op: 'create' | 'update';
  readonly namespace: string;
  readonly name: string;
  readonly token: string;
  readonly holder: string | undefined;
  readonly resourceVersion: string;
  /** Server time (Date.now()) the write was applied. */
  readonly at: number;
}

type StoredObject = Record<string, any> & { metadata: Record<string, any> };

/** Where failNext applies: a method and a path (without the query). */
export type RequestMatcher = (method: string, path: string) => boolean;

const MICRO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}(Z|[+-]\d{2}:\d{2})$/;
export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

/** RFC 7386 JSON merge patch. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== 'object' || Array.isArray(patch)) return clone(patch);
  const out: Record<string, unknown> = target !== null && typeof target === 'object' && !Array.isArray(target) ? { ...(target as Record<string, unknown>) } : {};
  for (const [k, v] of Object.entries(patch as Record<string, unknown>)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

export interface FakeApiServerOptions {
  readonly token?: string;
  /** Default namespace of applied slices. */
  readonly namespace?: string;
  readonly bookmarkIntervalMs?: number;
  /** Events kept for watches that resume; older resourceVersions get 410. */
  readonly maxHistory?: number;
}

export class FakeApiServer {
  token: string;
  readonly namespace: string;
  port = 0;
  /** Requests by kind, cumulative across restarts. */
  readonly counters = { lists: 0, watches: 0, expired: 0, unauthorized: 0, failed: 0, bookmarks: 0, podPatches: 0, leaseReads: 0, leaseWrites: 0, leaseConflicts: 0 };
  /** Accepted pod patches, in order. */
  readonly podPatches: PodPatchRecord[] = [];
  /** Accepted lease creates and updates, in order. */
  readonly leaseWrites: LeaseWriteRecord[] = [];
  /** Lease GETs by the bearer token they carried. */
  readonly leaseReadsByToken = new Map<string, number>();
  private readonly tokens = new Set<string>();
  private readonly pods = new Map<string, StoredObject>();
  private readonly leases = new Map<string, StoredObject>();
  /** Rejected requests by the bearer token they carried ('' for none). */
  readonly rejectedTokens = new Map<string, number>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly watchers = new Set<Watcher>();
  private readonly objects = new Map<string, SliceObject>();
  private history: StoredEvent[] = [];
  private rv = 1000;
  /** Watches from a resourceVersion below this get 410 (their events were forgotten). */
  private horizon = 1000;
  private failures: { remaining: number; status: number; match?: RequestMatcher } = { remaining: 0, status: 500 };
  private uid = 0;
  private readonly bookmarkIntervalMs: number;
  private readonly maxHistory: number;

  private constructor(options: FakeApiServerOptions) {
    this.token = options.token ?? 'test-token';
    this.namespace = options.namespace ?? 'rasa';
    this.bookmarkIntervalMs = options.bookmarkIntervalMs ?? 1000;
    this.maxHistory = options.maxHistory ?? 100_000;
  }

  static async start(options: FakeApiServerOptions = {}): Promise<FakeApiServer> {
    const fake = new FakeApiServer(options);
    await fake.listen();
    return fake;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get resourceVersion(): number {
    return this.rv;
  }

  get openWatches(): number {
    return this.watchers.size;
  }

  get running(): boolean {
    return this.server !== undefined;
  }

  /** A kubeconfig for this server (plain HTTP needs `skipTLSVerify` in client-node). */
  kubeConfig(token: string = this.token): KubeConfig {
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: 'fake', server: this.url, skipTLSVerify: true }],
      users: [{ name: 'fake', token }],
      contexts: [{ name: 'fake', cluster: 'fake', user: 'fake', namespace: this.namespace }],
      currentContext: 'fake',
    });
    return kc;
  }

  /** The same credentials as a kubeconfig file's text, for child processes (KUBECONFIG). */
  kubeconfigYaml(namespace: string = this.namespace): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      `clusters: [{ name: fake, cluster: { server: "${this.url}", insecure-skip-tls-verify: true } }]`,
      `users: [{ name: fake, user: { token: "${this.token}" } }]`,
      `contexts: [{ name: fake, context: { cluster: fake, user: fake, namespace: ${namespace} } }]`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  /** Creates or replaces a slice (works while stopped too: the store outlives the listener). */
  apply(slice: SliceObject): SliceObject {
    const namespace = slice.metadata.namespace ?? this.namespace;
    const key = `${namespace}/${slice.metadata.name}`;
    const previous = this.objects.get(key);
    const rv = ++this.rv;
    const object = clone(slice);
    object.metadata = {
      ...object.metadata,
      namespace,
      resourceVersion: String(rv),
      uid: previous?.metadata.uid ?? `slice-uid-${++this.uid}`,
      creationTimestamp: previous?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      generation: (previous?.metadata.generation ?? 0) + 1,
    };
    this.objects.set(key, object);
    this.record({ rv, namespace, type: previous ? 'MODIFIED' : 'ADDED', object, previous });
    return clone(object);
  }

  delete(name: string, namespace: string = this.namespace): boolean {
    const key = `${namespace}/${name}`;
    const previous = this.objects.get(key);
    if (!previous) return false;
    this.objects.delete(key);
    const rv = ++this.rv;
    const object = clone(previous);
    object.metadata.resourceVersion = String(rv);
    this.record({ rv, namespace, type: 'DELETED', object, previous });
    return true;
  }

  get(name: string, namespace: string = this.namespace): SliceObject | undefined {
    const o = this.objects.get(`${namespace}/${name}`);
    return o ? clone(o) : undefined;
  }

  /** Destroys every open watch connection (as a load balancer or an API server restart would). */
  dropConnections(): number {
    const n = this.watchers.size;
    for (const w of [...this.watchers]) w.res.socket?.destroy();
    return n;
  }

  /**
   * Ends every open watch with an ERROR event carrying a Status of `code`, as the real server does
   * when its watch cache expires a watcher (410 Expired) or fails internally (500), then closes it.
   */
  failWatches(code = 410): number {
    const n = this.watchers.size;
    const reason = code === 410 ? 'Expired' : 'InternalError';
    const { metadata: _m, ...object } = status(code, reason, code === 410 ? 'resource version too old' : 'Internal error occurred: injected');
    for (const w of [...this.watchers]) {
      w.res.write(`${JSON.stringify({ type: 'ERROR', object })}\n`);
      if (code === 410) this.counters.expired++;
      this.endWatch(w);
    }
    return n;
  }

  /** The next `n` requests (lists or watches; only those `match` accepts, if given) get `status` with a Status body. */
  failNext(n: number, statusCode = 500, match?: RequestMatcher): void {
    this.failures = { remaining: n, status: statusCode, ...(match ? { match } : {}) };
  }

  /** Accepts another bearer token besides `token` (its requests are recorded with it). */
  acceptToken(token: string): void {
    this.tokens.add(token);
  }

  /** Creates a running pod (for PATCH). */
  addPod(name: string, namespace: string = this.namespace): void {
    this.pods.set(`${namespace}/${name}`, {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace, uid: `pod-uid-${++this.uid}`, resourceVersion: String(++this.rv), labels: { app: 'rasa' } },
      spec: { containers: [{ name: 'rasa', image: 'rasa/rasa:3.6.21' }] },
      status: { phase: 'Running' },
    });
  }

  /** A pod's annotations (undefined: no such pod). */
  podAnnotations(name: string, namespace: string = this.namespace): Record<string, string> | undefined {
    const pod = this.pods.get(`${namespace}/${name}`);
    return pod ? { ...(pod.metadata.annotations ?? {}) } : undefined;
  }

  /** A pod's deletion cost as written (undefined: not set, or no such pod). */
  deletionCost(name: string, namespace: string = this.namespace): string | undefined {
    return this.podAnnotations(name, namespace)?.[POD_DELETION_COST];
  }

  lease(name: string, namespace: string = this.namespace): StoredObject | undefined {
    const lease = this.leases.get(`${namespace}/${name}`);
    return lease ? clone(lease) : undefined;
  }

  /** Forgets all events so far: a watch resuming from before now gets 410 Expired. */
  compactHistory(): void {
    this.history = [];
    this.horizon = this.rv;
  }

  /** Outage: closes the listener and every connection. The store is kept. */
  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    for (const w of [...this.watchers]) {
      clearInterval(w.bookmarkTimer);
      clearTimeout(w.timeoutTimer);
    }
    this.watchers.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
    await closed;
  }

  /** Back after an outage, on the same port. */
  async restart(): Promise<void> {
    if (this.server) return;
    await this.listen();
  }

  /** Final teardown. */
  async close(): Promise<void> {
    await this.stop();
  }

  private async listen(): Promise<void> {
    const server = createServer((req, res) => this.handle(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private record(event: StoredEvent): void {
    this.history.push(event);
    if (this.history.length > this.maxHistory) {
      const dropped = this.history.splice(0, this.history.length - this.maxHistory);
      this.horizon = dropped[dropped.length - 1]!.rv;
    }
    for (const w of this.watchers) this.send(w, event);
  }

  /** Writes the event as this watch sees it through its namespace and label selector. */
  private send(w: Watcher, e: StoredEvent): void {
    if (e.namespace !== w.namespace) return;
    const was = matches(w.selector, e.previous);
    const is = e.type !== 'DELETED' && matches(w.selector, e.object);
    let type: StoredEvent['type'] | undefined;
    if (e.type === 'DELETED') type = was ? 'DELETED' : undefined;
    else if (is) type = was ? 'MODIFIED' : 'ADDED';
    else if (was) type = 'DELETED';
    if (type) w.res.write(`${JSON.stringify({ type, object: e.object })}\n`);
  }

  private endWatch(w: Watcher): void {
    clearInterval(w.bookmarkTimer);
    clearTimeout(w.timeoutTimer);
    this.watchers.delete(w);
    if (!w.res.writableEnded) w.res.end();
  }

  private json(res: ServerResponse, code: number, body: unknown): void {
    const text = JSON.stringify(body);
    res.writeHead(code, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://fake');
    const presented = /^Bearer (.*)$/.exec(req.headers.authorization ?? '')?.[1] ?? '';
    if (presented !== this.token && !this.tokens.has(presented)) {
      this.counters.unauthorized++;
      this.rejectedTokens.set(presented, (this.rejectedTokens.get(presented) ?? 0) + 1);
      this.json(res, 401, status(401, 'Unauthorized', 'Unauthorized'));
      return;
    }
    if (this.failures.remaining > 0 && (!this.failures.match || this.failures.match(req.method ?? 'GET', url.pathname))) {
      this.failures.remaining--;
      this.counters.failed++;
      const code = this.failures.status;
      this.json(res, code, status(code, code === 503 ? 'ServiceUnavailable' : 'InternalError', 'injected failure'));
      return;
    }
    const pod = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)$/.exec(url.pathname);
    const lease = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/]+))?$/.exec(url.pathname);
    if (pod || lease) {
      this.readBody(req).then(
        (body) => {
          if (pod) this.handlePod(req, res, decodeURIComponent(pod[1]!), decodeURIComponent(pod[2]!), body, presented);
          else this.handleLease(req, res, decodeURIComponent(lease![1]!), lease![2] === undefined ? undefined : decodeURIComponent(lease![2]), body, presented);
        },
        () => res.destroy(),
      );
      return;
    }
    const m = /^\/apis\/discovery\.k8s\.io\/v1\/namespaces\/([^/]+)\/endpointslices$/.exec(url.pathname);
    if (!m || req.method !== 'GET') {
      this.json(res, 404, status(404, 'NotFound', 'the server could not find the requested resource'));
      return;
    }
    const namespace = decodeURIComponent(m[1]!);
    const selector = parseSelector(url.searchParams.get('labelSelector'));
    const watch = url.searchParams.get('watch');
    if (watch === 'true' || watch === '1') this.watch(res, url, namespace, selector);
    else this.list(res, namespace, selector);
  }

  private readBody(req: IncomingMessage): Promise<string> {
    return new Promise((resolve, reject) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
      req.on('error', reject);
    });
  }

  private parseJson(res: ServerResponse, text: string): { ok: true; value: any } | { ok: false } {
    try {
      return { ok: true, value: JSON.parse(text) };
    } catch (err) {
      this.json(res, 400, status(400, 'BadRequest', `error decoding body: ${(err as Error).message}`));
      return { ok: false };
    }
  }

  private handlePod(req: IncomingMessage, res: ServerResponse, namespace: string, name: string, text: string, token: string): void {
    if (req.method !== 'PATCH') {
      this.json(res, 405, status(405, 'MethodNotAllowed', `the fake serves only PATCH on pods (got ${req.method})`));
      return;
    }
    const contentType = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    const body = this.parseJson(res, text);
    if (!body.ok) return;
    if (contentType === 'application/json-patch+json') {
      if (!Array.isArray(body.value)) {
        this.json(res, 400, status(400, 'BadRequest', 'json: cannot unmarshal object into Go value of type jsonpatch.Patch'));
      } else {
        this.json(res, 415, status(415, 'UnsupportedMediaType', 'the fake does not apply JSON Patch'));
      }
      return;
    }
    if (contentType !== 'application/merge-patch+json' && contentType !== 'application/strategic-merge-patch+json') {
      this.json(res, 415, status(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got ${contentType})`));
      return;
    }
    const key = `${namespace}/${name}`;
    const pod = this.pods.get(key);
    if (!pod) {
      this.json(res, 404, { ...status(404, 'NotFound', `pods "${name}" not found`), details: { name, kind: 'pods' } });
      return;
    }
    const annotations = (body.value?.metadata?.annotations ?? {}) as Record<string, unknown>;
    for (const [k, v] of Object.entries(annotations)) {
      if (v !== null && typeof v !== 'string') {
        this.json(res, 400, status(400, 'BadRequest', `json: cannot unmarshal ${typeof v} into Go struct field ObjectMeta.metadata.annotations of type string (${k})`));
        return;
      }
    }
    const cost = annotations[POD_DELETION_COST];
    if (typeof cost === 'string' && (!/^[-+]?\d+$/.test(cost) || Number(cost) < -2147483648 || Number(cost) > 2147483647)) {
      this.json(res, 422, status(422, 'Invalid', `Pod "${name}" is invalid: metadata.annotations[${POD_DELETION_COST}]: Invalid value: "${cost}": must be a 32bit integer`));
      return;
    }
    const next = mergePatch(pod, body.value) as StoredObject;
    next.metadata = { ...next.metadata, name, namespace, uid: pod.metadata.uid, resourceVersion: String(++this.rv) };
    this.pods.set(key, next);
    this.counters.podPatches++;
    this.podPatches.push({ namespace, name, token, contentType, annotations: clone(annotations) as Record<string, string | null> });
    this.json(res, 200, next);
  }

  private handleLease(req: IncomingMessage, res: ServerResponse, namespace: string, name: string | undefined, text: string, token: string): void {
    const notFound = (n: string) => this.json(res, 404, { ...status(404, 'NotFound', `leases.coordination.k8s.io "${n}" not found`), details: { name: n, group: 'coordination.k8s.io', kind: 'leases' } });
    if (req.method === 'GET' && name !== undefined) {
      this.counters.leaseReads++;
      this.leaseReadsByToken.set(token, (this.leaseReadsByToken.get(token) ?? 0) + 1);
      const lease = this.leases.get(`${namespace}/${name}`);
      if (lease) this.json(res, 200, lease);
      else notFound(name);
      return;
    }
    const create = req.method === 'POST' && name === undefined;
    const update = req.method === 'PUT' && name !== undefined;
    if (!create && !update) {
      this.json(res, 405, status(405, 'MethodNotAllowed', `the fake serves GET, POST and PUT on leases (got ${req.method})`));
      return;
    }
    const body = this.parseJson(res, text);
    if (!body.ok) return;
    const lease = body.value as StoredObject;
    const leaseName: unknown = lease?.metadata?.name;
    if (typeof leaseName !== 'string' || !leaseName || (update && leaseName !== name)) {
      this.json(res, 400, status(400, 'BadRequest', `the name of the object (${String(leaseName)}) does not match the name on the URL (${String(name)})`));
      return;
    }
    for (const field of ['acquireTime', 'renewTime'] as const) {
      const v: unknown = lease.spec?.[field];
      if (v !== undefined && v !== null && (typeof v !== 'string' || !MICRO_TIME.test(v))) {
        this.json(res, 400, status(400, 'BadRequest', `parsing time ${JSON.stringify(v)} as "2006-01-02T15:04:05.000000Z07:00": cannot parse (spec.${field})`));
        return;
      }
    }
    const key = `${namespace}/${leaseName}`;
    const stored = this.leases.get(key);
    if (create && stored) {
      this.counters.leaseConflicts++;
      this.json(res, 409, { ...status(409, 'AlreadyExists', `leases.coordination.k8s.io "${leaseName}" already exists`), details: { name: leaseName, group: 'coordination.k8s.io', kind: 'leases' } });
      return;
    }
    if (update) {
      if (!stored) {
        notFound(leaseName);
        return;
      }
      const rv: unknown = lease.metadata.resourceVersion;
      if (rv === undefined || rv === '') {
        this.json(res, 422, status(422, 'Invalid', `Lease.coordination.k8s.io "${leaseName}" is invalid: metadata.resourceVersion: Invalid value: 0x0: must be specified for an update`));
        return;
      }
      if (rv !== stored.metadata.resourceVersion) {
        this.counters.leaseConflicts++;
        this.json(res, 409, {
          ...status(409, 'Conflict', `Operation cannot be fulfilled on leases.coordination.k8s.io "${leaseName}": the object has been modified; please apply your changes to the latest version and try again`),
          details: { name: leaseName, group: 'coordination.k8s.io', kind: 'leases' },
        });
        return;
      }
    }
    const rv = String(++this.rv);
    const object: StoredObject = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: {
        name: leaseName,
        namespace,
        uid: stored?.metadata.uid ?? `lease-uid-${++this.uid}`,
        resourceVersion: rv,
        creationTimestamp: stored?.metadata.creationTimestamp ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        ...(lease.metadata.labels ? { labels: clone(lease.metadata.labels) } : {}),
      },
      spec: clone(lease.spec ?? {}),
    };
    this.leases.set(key, object);
    this.counters.leaseWrites++;
    this.leaseWrites.push({ op: create ? 'create' : 'update', namespace, name: leaseName, token, holder: object.spec.holderIdentity || undefined, resourceVersion: rv, at: Date.now() });
    this.json(res, create ? 201 : 200, object);
  }

  private list(res: ServerResponse, namespace: string, selector: Selector): void {
    this.counters.lists++;
    const items = [...this.objects.values()]
      .filter((o) => o.metadata.namespace === namespace && matches(selector, o))
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1))
      .map((o) => {
        const { apiVersion: _a, kind: _k, ...rest } = o;
        return rest;
      });
    this.json(res, 200, {
      kind: 'EndpointSliceList',
      apiVersion: 'discovery.k8s.io/v1',
      metadata: { resourceVersion: String(this.rv) },
      items,
    });
  }

  private watch(res: ServerResponse, url: URL, namespace: string, selector: Selector): void {
    this.counters.watches++;
    res.writeHead(200, { 'content-type': 'application/json', 'cache-control': 'no-cache, private' });
    res.flushHeaders();
    const rvText = url.searchParams.get('resourceVersion') ?? '';
    const w: Watcher = { res, namespace, selector };
    if (rvText === '' || rvText === '0') {
      for (const o of this.objects.values()) {
        if (o.metadata.namespace === namespace && matches(selector, o)) res.write(`${JSON.stringify({ type: 'ADDED', object: o })}\n`);
      }
    } else {
      const from = Number(rvText);
      if (!Number.isInteger(from) || from < this.horizon) {
        this.counters.expired++;
        const message = Number.isInteger(from) ? `too old resource version: ${from} (${this.horizon})` : `invalid resource version: ${rvText}`;
        const { metadata: _m, ...expired } = status(410, 'Expired', message);
        res.end(`${JSON.stringify({ type: 'ERROR', object: expired })}\n`);
        return;
      }
      for (const e of this.history) if (e.rv > from) this.send(w, e);
    }
    this.watchers.add(w);
    if (url.searchParams.get('allowWatchBookmarks') === 'true') {
      w.bookmarkTimer = setInterval(() => {
        this.counters.bookmarks++;
        res.write(
          `${JSON.stringify({ type: 'BOOKMARK', object: { kind: 'EndpointSlice', apiVersion: 'discovery.k8s.io/v1', metadata: { resourceVersion: String(this.rv) } } })}\n`,
        );
      }, this.bookmarkIntervalMs);
    }
    const timeout = Number(url.searchParams.get('timeoutSeconds') ?? '');
    if (timeout > 0) w.timeoutTimer = setTimeout(() => this.endWatch(w), timeout * 1000);
    const gone = () => {
      clearInterval(w.bookmarkTimer);
      clearTimeout(w.timeoutTimer);
      this.watchers.delete(w);
    };
    res.on('close', gone);
  }
}
