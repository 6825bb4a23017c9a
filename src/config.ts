/**
 * Configuration: a YAML file (`--config FILE` or GATEWAY_CONFIG) or the quick flags, validated once at
 * start into a frozen object. Every error names the field path and what is allowed, because the person
 * reading it is an operator staring at a CrashLoopBackOff.
 *
 * Each key's type, default and meaning is declared once, in src/config-schema.ts. Here a document is
 * checked against that schema (the first failure becomes a ConfigError naming its path), and the few
 * rules a schema cannot state are small functions: exactly one endpoint source, defaults that depend on
 * other keys (`dispatch`, `ejection.maxMs`), `slotsPerEndpoint` -> Infinity / adaptive bounds, secrets
 * read from the environment, routes naming pools that exist.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { type TSchema } from '@sinclair/typebox';
import { Value, ValueErrorType, type ValueError } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { hostname } from 'node:os';
import {
  type clusterSchema,
  type capacitySchema,
  ejectionSchema,
  gatewaySchema,
  balancerNames,
  poolSchema,
  type BalancerName,
  type deletionCostSchema,
  type DispatchMode,
  type JwtAlgorithm,
  type GatewayDocument,
  type healthCheckSchema,
  type kubernetesSchema,
  type limitsSchema,
  type listenSchema,
  type PoolDocument,
  type retrySchema,
  type RouteDocument,
  type Section,
  type staticEndpointSchema,
} from './config-schema.js';

export type { BalancerName, DispatchMode, JwtAlgorithm } from './config-schema.js';
/** A pool's central queue (`queue`), as admission applies it. */
export interface QueueLimits {
  /** Most requests waiting at once (general and pinned together); over it: 503 QUEUE_FULL at once. */
  readonly maxLength: number;
  /** Longest wait for a slot; past it: 503 QUEUE_TIMEOUT. */
  readonly maxWaitMs: number;
  /** With no pod taking work, hold requests for the first one (scale from zero) instead of 503 NO_ENDPOINTS at once. */
  readonly holdWithoutPods?: boolean;
}

export type ListenConfig = Section<ReturnType<typeof listenSchema>>;
export type KubernetesSource = Section<typeof kubernetesSchema>;
export type AffinityMode = 'none' | 'rasa';
/** A pool's NLU parse cache (`cache`). */
export interface CacheConfig {
  readonly maxEntries: number;
  readonly maxBytes: number;
  readonly ttlMs: number;
  readonly modelPollMs: number;
}

/** How the gateway authenticates to Rasa and checks callers of credentialed routes (`rasaAuth`). */
export interface RasaAuth {
  readonly token?: string;
  readonly jwtSecret?: string;
  readonly jwtAlgorithm: JwtAlgorithm;
}
/** A static endpoint: its origin, and optionally the pod name and zone shown in /debug and the status page. */
export type StaticEndpointConfig = Section<typeof staticEndpointSchema>;
export type RetryConfig = Section<typeof retrySchema>;
export type EjectionConfig = Section<typeof ejectionSchema>;
export type HealthCheckConfig = Section<typeof healthCheckSchema>;
export type OrderingMode = 'webhooks' | 'all' | 'none';
/** Pod-deletion-cost writer (src/scale-in/deletion-cost.ts); `kubernetes:` pools only. */
export type DeletionCostConfig = Section<typeof deletionCostSchema>;
export type LimitsConfig = Section<typeof limitsSchema>;
/** Capacity planning per pool (src/capacity/): the wait target, backlog horizon and measuring window. */
export type CapacityConfig = Section<typeof capacitySchema>;

/** Replica-to-replica membership and transport (src/cluster/); advertise resolved, URLs normalised. */
export interface ClusterConfig {
  readonly listen: ListenConfig;
  /** This replica's advertise URL (`http://host:port`): its identity in the cluster. */
  readonly advertise: string;
  /** Static membership, self included (this or `kubernetes`). */
  readonly peers?: readonly string[];
  /** Membership from the gateway's own headless Service; one Lease per pool elects its scheduler. */
  readonly kubernetes?: { readonly namespace: string; readonly service: string; readonly port: string | number; readonly leaseDurationSeconds: number };
  readonly heartbeatMs: number;
  readonly deadAfterMs: number;
  /** Per pool, grants a replica holds in advance from a remote scheduler (0: none). */
  readonly prefetchGrants?: number;
  /** After the scheduler is lost without handing over, how long the replica taking over grants nothing. */
  readonly takeoverWaitMs?: number;
}

export interface PoolConfig {
  readonly name: string;
  readonly endpoints?: readonly StaticEndpointConfig[];
  readonly kubernetes?: KubernetesSource;
  readonly balancer: BalancerName;
  /** Infinity for `unlimited`; with `auto`, the slots a pod starts with (`minSlots`). */
  readonly slotsPerEndpoint: number;
  /** `slotsPerEndpoint: auto`: each pod's slots are learned from its latency within these bounds. */
  readonly adaptiveSlots: { readonly minSlots: number; readonly maxSlots: number } | undefined;
  /** Free slots go to the first waiter (`greedy`) or each waiter to the slot that finishes it first. */
  readonly dispatch: DispatchMode;
  readonly queue: QueueLimits;
  readonly upstreamTimeoutMs: number;
  readonly affinity: AffinityMode;
  readonly sessions: { readonly maxEntries: number; readonly idleTtlMs: number };
  /** One request in flight per conversation: on webhook routes (default), on every keyed route, or off. */
  readonly ordering: OrderingMode;
  /** Largest request body; bodies are read before a slot is taken (replayable, keyed, slow clients hold nothing). */
  readonly bodyLimitBytes: number;
  readonly retry: RetryConfig;
  readonly ejection: EjectionConfig;
  readonly healthCheck: HealthCheckConfig | undefined;
  /** A pod that joins ramps its slots up over this window (0: off). */
  readonly slowStartMs: number;
  /** NLU parse cache and coalescing for `POST /model/parse` (off when absent). */
  readonly cache: CacheConfig | undefined;
  /** How Rasa authenticates callers: lets the gateway verify them itself (cache) and call /status. */
  readonly rasaAuth: RasaAuth;
  /** Keep `controller.kubernetes.io/pod-deletion-cost` on the pods near their live conversations. */
  readonly deletionCost: DeletionCostConfig;
  /** What the desired pod count aims at, and over what window it measures. */
  readonly capacity: CapacityConfig;
}

export interface RouteConfig {
  readonly path?: string;
  readonly prefix?: string;
  readonly pool: string;
  readonly methods?: readonly string[];
  /** Queue wait + upstream, end to end. */
  readonly deadlineMs?: number;
  /** Overrides the pool's `bodyLimitBytes` (e.g. larger for /model/train). */
  readonly bodyLimitBytes?: number;
}

export interface GatewayConfig {
  readonly listen: ListenConfig;
  readonly admin: ListenConfig;
  /** In-cluster listener that also serves the Rasa routes refused on the public one. */
  readonly internal: ListenConfig | undefined;
  /** Protected Rasa routes the operator allows on the public listener (exact, or prefix ending in *). */
  readonly publicRoutes: readonly string[];
  readonly limits: LimitsConfig;
  readonly shutdown: { readonly drainTimeoutMs: number };
  readonly log: { readonly level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
  readonly pools: Readonly<Record<string, PoolConfig>>;
  readonly routes: readonly RouteConfig[];
  /** Replicas sharing one queue per pool; absent: this replica works alone. */
  readonly cluster?: ClusterConfig;
}

export class ConfigError extends Error {
  constructor(readonly field: string, detail: string) {
    super(`config error at ${field || '(root)'}: ${detail}`);
  }
}

type Obj = Record<string, unknown>;

function describe(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

function isObj(value: unknown): value is Obj {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

/** What a schema allows, as the rest of "must ...": its own `must`, else said from its type. */
function allowed(schema: TSchema): string {
  if (typeof schema.must === 'string') return schema.must;
  if (Array.isArray(schema.anyOf)) {
    const variants = schema.anyOf as TSchema[];
    const literals = variants.filter((v) => v.const !== undefined).map((v) => String(v.const));
    if (literals.length === variants.length) return `be one of ${literals.join(', ')}`;
    const parts = [...variants.filter((v) => v.const === undefined).map((v) => allowed(v).replace(/^be /, '')), ...literals.map((l) => `\`${l}\``)];
    return `be ${parts.slice(0, -1).join(', ')} or ${parts.at(-1)}`;
  }
  switch (schema.type) {
    case 'integer':
      return `be an integer from ${schema.minimum} to ${schema.maximum}`;
    case 'string':
      return 'be a non-empty string';
    case 'boolean':
      return 'be true or false';
    case 'array':
      return 'be a list';
    default:
      return 'be a mapping';
  }
}

/** A JSON pointer (`/pools/nlu/endpoints/0`) as a field path (`pools.nlu.endpoints[0]`), reading `doc` to tell list indexes from keys. */
function fieldPath(pointer: string, doc: unknown): string {
  let path = '';
  let at = doc;
  for (const raw of pointer.split('/').slice(1)) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (Array.isArray(at)) {
      path = join(path, Number(key));
      at = at[Number(key)];
    } else {
      path = join(path, key);
      at = isObj(at) ? at[key] : undefined;
    }
  }
  return path;
}

/** The first way `value` fails `schema`; a mapping or list failing a union is judged by the variant of its own kind. */
function firstError(schema: TSchema, value: unknown, pointer = ''): { pointer: string; error: ValueError } | undefined {
  const error = Value.Errors(schema, value).First();
  if (!error) return undefined;
  if (error.type === ValueErrorType.Union && error.value !== null && typeof error.value === 'object') {
    const kind = Array.isArray(error.value) ? 'array' : 'object';
    const variant = (error.schema.anyOf as TSchema[]).find((v) => v.type === kind);
    if (variant) return firstError(variant, error.value, pointer + error.path);
  }
  return { pointer: pointer + error.path, error };
}

/** Throws the document's first schema failure as a ConfigError naming its field and what is allowed there. */
function check(schema: TSchema, doc: unknown): void {
  const found = firstError(schema, doc);
  if (!found) return;
  const { error } = found;
  const field = fieldPath(found.pointer, doc);
  if (error.type === ValueErrorType.ObjectAdditionalProperties) {
    const keyMust = error.schema.keyMust;
    throw new ConfigError(field, typeof keyMust === 'string' ? keyMust : `unknown key; allowed here: ${Object.keys(error.schema.properties as Obj).join(', ')}`);
  }
  throw new ConfigError(field, `must ${allowed(error.schema)} (got ${describe(error.value)})`);
}

/**
 * Rules JSON Schema could state only as a `oneOf`, whose failure names neither alternative: checked
 * first, on the document as given, so the operator learns the shape before the details.
 */
function exactlyOneSource(doc: unknown): void {
  if (!isObj(doc)) return;
  if (isObj(doc.pools)) {
    for (const [name, p] of Object.entries(doc.pools)) {
      if (isObj(p) && (p.endpoints === undefined) === (p.kubernetes === undefined)) {
        throw new ConfigError(join('pools', name), 'needs exactly one endpoint source: `endpoints: [http://host:port, ...]` or `kubernetes: { namespace, service, port }`');
      }
    }
  }
  if (Array.isArray(doc.routes)) {
    doc.routes.forEach((r: unknown, i) => {
      if (isObj(r) && (r.path === undefined) === (r.prefix === undefined)) {
        throw new ConfigError(join('routes', i), 'needs exactly one of `path` (exact match) or `prefix`');
      }
    });
  }
}

/** Route methods are matched in upper case; `get` is accepted as `GET`. */
function upperCaseMethods(doc: unknown): unknown {
  if (isObj(doc) && Array.isArray(doc.routes)) {
    for (const r of doc.routes as unknown[]) {
      if (isObj(r) && Array.isArray(r.methods)) r.methods = r.methods.map((m: unknown) => (typeof m === 'string' ? m.toUpperCase() : m));
    }
  }
  return doc;
}

function upstreamUrl(text: string, path: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(path, `must be an absolute http:// or https:// URL such as http://10.0.0.5:5005 (got ${describe(text)})`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigError(path, `must use http:// or https:// (got ${describe(text)})`);
  }
  if (url.pathname !== '/' || url.search) {
    throw new ConfigError(path, `must be an origin without a path or query, e.g. ${url.origin} (got ${describe(text)})`);
  }
  return url.origin;
}

function staticEndpoint(e: NonNullable<PoolDocument['endpoints']>[number], path: string): StaticEndpointConfig {
  if (typeof e === 'string') return { url: upstreamUrl(e, path) };
  return {
    url: upstreamUrl(e.url, join(path, 'url')),
    ...(e.name !== undefined ? { name: e.name } : {}),
    ...(e.zone !== undefined ? { zone: e.zone } : {}),
  };
}

/** `maxMs` defaults to the schema's value or `baseMs`, whichever is larger, and may not be below `baseMs`. */
function ejection(e: PoolDocument['ejection'], given: unknown, path: string): EjectionConfig {
  if (!isObj(given) || given.maxMs === undefined) return { ...e, maxMs: Math.max(e.baseMs, e.maxMs) };
  if (e.maxMs < e.baseMs) {
    throw new ConfigError(join(path, 'maxMs'), `must be an integer from ${e.baseMs} to ${ejectionSchema.properties.maxMs.maximum} (got ${e.maxMs})`);
  }
  return e;
}

/** Secrets come from the environment (`tokenEnv`, `jwtSecretEnv`) or, for tests, inline. */
function rasaAuth(a: PoolDocument['rasaAuth'], path: string, env: NodeJS.ProcessEnv): RasaAuth {
  const secret = (inline: string | undefined, envKey: 'tokenEnv' | 'jwtSecretEnv'): string | undefined => {
    if (inline !== undefined) return inline;
    const name = a[envKey];
    if (name === undefined) return undefined;
    const v = env[name];
    if (!v) throw new ConfigError(join(path, envKey), `names the environment variable ${name}, which is not set`);
    return v;
  };
  const token = secret(a.token, 'tokenEnv');
  const jwtSecret = secret(a.jwtSecret, 'jwtSecretEnv');
  return {
    ...(token !== undefined ? { token } : {}),
    ...(jwtSecret !== undefined ? { jwtSecret } : {}),
    jwtAlgorithm: a.jwtAlgorithm,
  };
}

/** `slotsPerEndpoint`: Infinity for `unlimited`; with `auto`, the learned slots' bounds, and `minSlots` to start with. */
function slots(p: PoolDocument, given: Obj, path: string): { slots: number; adaptiveSlots: PoolConfig['adaptiveSlots'] } {
  const s = p.slotsPerEndpoint;
  if (s !== 'auto') {
    for (const key of ['minSlots', 'maxSlots'] as const) {
      if (given[key] !== undefined) throw new ConfigError(join(path, key), `only applies with \`slotsPerEndpoint: auto\` (slotsPerEndpoint is ${describe(s)})`);
    }
    return { slots: s === 'unlimited' ? Infinity : s, adaptiveSlots: undefined };
  }
  if (p.maxSlots < p.minSlots) {
    throw new ConfigError(join(path, 'maxSlots'), `must be at least minSlots (${p.minSlots}); got ${p.maxSlots}${given.maxSlots === undefined ? ' (the default)' : ''}`);
  }
  return { slots: p.minSlots, adaptiveSlots: { minSlots: p.minSlots, maxSlots: p.maxSlots } };
}

function pool(name: string, p: PoolDocument, given: Obj, path: string, env: NodeJS.ProcessEnv): PoolConfig {
  const endpoints = p.endpoints?.map((e, i) => staticEndpoint(e, join(join(path, 'endpoints'), i)));
  const { slots: slotsPerEndpoint, adaptiveSlots } = slots(p, given, path);
  const dispatch = given.dispatch === undefined && slotsPerEndpoint === Infinity ? 'greedy' : p.dispatch;
  if (dispatch === 'earliest-completion' && slotsPerEndpoint === Infinity) {
    throw new ConfigError(join(path, 'dispatch'), 'earliest-completion holds requests back for faster pods, which needs slots: use a number or `auto` for slotsPerEndpoint (it is unlimited)');
  }
  if (p.deletionCost.enabled && !p.kubernetes) {
    throw new ConfigError(join(join(path, 'deletionCost'), 'enabled'), 'needs `kubernetes:` discovery (the annotation is written on the pods an EndpointSlice names); remove deletionCost or set enabled: false');
  }
  return {
    name,
    ...(endpoints ? { endpoints } : {}),
    ...(p.kubernetes ? { kubernetes: p.kubernetes } : {}),
    balancer: p.balancer,
    slotsPerEndpoint,
    adaptiveSlots,
    dispatch,
    queue: { maxLength: p.queue.maxLength, maxWaitMs: p.queue.maxWaitMs, holdWithoutPods: p.queue.noPods === 'wait' },
    upstreamTimeoutMs: p.upstreamTimeoutMs,
    affinity: p.affinity,
    ordering: p.ordering,
    bodyLimitBytes: p.bodyLimitBytes,
    retry: p.retry,
    ejection: ejection(p.ejection, given.ejection, join(path, 'ejection')),
    healthCheck: p.healthCheck,
    slowStartMs: p.slowStartMs,
    cache: p.cache,
    rasaAuth: rasaAuth(p.rasaAuth, join(path, 'rasaAuth'), env),
    deletionCost: p.deletionCost,
    capacity: p.capacity,
    sessions: p.sessions,
  };
}

/** A replica's URL as peers dial it: `http://host:port`, nothing else. */
function peerUrl(text: string, path: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(path, `must be a URL such as http://10.1.2.3:9095 (got ${describe(text)})`);
  }
  if (url.protocol !== 'http:' || url.pathname !== '/' || url.search || url.username || url.hash) {
    throw new ConfigError(path, `must be http://host:port with nothing after the port (got ${describe(text)})`);
  }
  return url.origin;
}

/** One membership source; advertise defaults to POD_IP (else the hostname) and the listen port; a static list names this replica. */
function cluster(c: Section<typeof clusterSchema>, env: NodeJS.ProcessEnv): ClusterConfig {
  if ((c.peers === undefined) === (c.kubernetes === undefined)) {
    throw new ConfigError('cluster', 'needs exactly one membership source: `peers: [http://host:port, ...]` (self included) or `kubernetes: { namespace, service, port }`');
  }
  if (c.listen.port === 0) throw new ConfigError('cluster.listen.port', 'must be a fixed port from 1 to 65535: peers dial it (got 0)');
  if (c.deadAfterMs < 4 * c.heartbeatMs) {
    throw new ConfigError('cluster.deadAfterMs', `must be at least 4 x heartbeatMs (${4 * c.heartbeatMs}), so that a live peer is never declared dead between two heartbeats (got ${c.deadAfterMs})`);
  }
  const host = env.POD_IP ? (env.POD_IP.includes(':') ? `[${env.POD_IP}]` : env.POD_IP) : hostname();
  const advertise = peerUrl(c.advertise ?? `http://${host}:${c.listen.port}`, 'cluster.advertise');
  const peers = c.peers?.map((p, i) => peerUrl(p, `cluster.peers[${i}]`));
  if (peers && !peers.includes(advertise)) {
    throw new ConfigError(c.advertise === undefined ? 'cluster.peers' : 'cluster.advertise', `this replica (${advertise}${c.advertise === undefined ? ', from POD_IP or the hostname' : ''}) must be one of cluster.peers (${peers.join(', ')}); list every replica, self included, or set cluster.advertise`);
  }
  const k = c.kubernetes;
  return {
    listen: c.listen,
    advertise,
    ...(peers ? { peers: [...new Set(peers)] } : {}),
    ...(k ? { kubernetes: { namespace: k.namespace ?? (env.POD_NAMESPACE || 'default'), service: k.service, port: k.port, leaseDurationSeconds: k.leaseDurationSeconds } } : {}),
    heartbeatMs: c.heartbeatMs,
    deadAfterMs: c.deadAfterMs,
    prefetchGrants: c.prefetchGrants,
    takeoverWaitMs: c.takeoverWaitMs ?? c.deadAfterMs / 2,
  };
}

function route(r: RouteDocument, path: string, pools: Record<string, PoolConfig>): RouteConfig {
  if (!pools[r.pool]) {
    throw new ConfigError(join(path, 'pool'), `names no pool; defined pools: ${Object.keys(pools).join(', ') || 'none'}`);
  }
  const matchKey = r.path !== undefined ? 'path' : 'prefix';
  return {
    [matchKey]: r[matchKey],
    pool: r.pool,
    ...(r.methods ? { methods: r.methods } : {}),
    ...(r.deadlineMs !== undefined ? { deadlineMs: r.deadlineMs } : {}),
    ...(r.bodyLimitBytes !== undefined ? { bodyLimitBytes: r.bodyLimitBytes } : {}),
  } as RouteConfig;
}

/** A section written with no value (`healthCheck:` in YAML, so null) is the section with its defaults. */
function emptySections(schema: TSchema, doc: unknown): unknown {
  if (!isObj(doc)) return doc;
  const properties = (schema.properties ?? {}) as Record<string, TSchema>;
  const eachNamed = Object.values((schema.patternProperties ?? {}) as Record<string, TSchema>)[0];
  for (const [key, value] of Object.entries(doc)) {
    const inner = properties[key] ?? eachNamed;
    if (value === null && inner === properties[key] && inner?.type === 'object' && inner.properties) doc[key] = {};
    else if (inner) emptySections(inner, value);
  }
  return doc;
}

/** Fills in the schema's defaults; TypeBox descends into a mapping of names only when its values have a default, so pools are filled one by one. */
function withDefaults(doc: unknown): unknown {
  const filled = Value.Default(gatewaySchema, doc);
  if (isObj(filled) && isObj(filled.pools)) {
    for (const [name, p] of Object.entries(filled.pools)) filled.pools[name] = Value.Default(poolSchema, p);
  }
  return filled;
}

/** Validates a parsed config document (YAML or JSON) and returns the frozen config; `env` supplies `*Env` secrets. */
export function validateConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const given = Value.Clone(doc ?? {}) as unknown; // as written: tells an operator's choice from a default
  exactlyOneSource(given);
  const filled = withDefaults(emptySections(gatewaySchema, upperCaseMethods(Value.Clone(given))));
  check(gatewaySchema, filled);
  const d = filled as GatewayDocument;
  const givenPools = (given as Obj).pools as Record<string, Obj>;
  const pools: Record<string, PoolConfig> = {};
  for (const [name, p] of Object.entries(d.pools)) pools[name] = pool(name, p, givenPools[name] as Obj, join('pools', name), env);
  if (Object.keys(pools).length === 0) throw new ConfigError('pools', 'must define at least one pool');
  let routes: RouteConfig[];
  if (d.routes === undefined) {
    if (Object.keys(pools).length !== 1) throw new ConfigError('routes', 'is required when there is more than one pool');
    routes = [{ prefix: '/', pool: Object.keys(pools)[0] as string }];
  } else {
    routes = d.routes.map((r, i) => route(r, join('routes', i), pools));
  }
  const config: GatewayConfig = {
    listen: d.listen,
    admin: d.admin,
    internal: d.internal,
    publicRoutes: d.publicRoutes,
    limits: d.limits,
    shutdown: d.shutdown,
    log: d.log,
    pools,
    routes,
    ...(d.cluster ? { cluster: cluster(d.cluster, env) } : {}),
  };
  return deepFreeze(config);
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export const usage = `Usage: rasa-gateway [--config FILE] [options]
       rasa-gateway plan [options]   capacity planning: pods needed per arrival rate (plan --help)

A Kubernetes-aware gateway for Rasa: per-request balancing through a central queue per pool.

  --config FILE        YAML config file (also GATEWAY_CONFIG). Flags below override its listen ports.
  --upstream URL       Quick form without a file: an upstream pod (repeatable); one pool "default" on /.
  --balancer NAME      Quick form: ${balancerNames.join(' | ')} (default least-outstanding).
  --slots N            Quick form: slots per pod, a number, "auto" (learned per pod) or "unlimited" (default 2).
  --port N             Public listener port (default 8080).
  --admin-port N       Admin listener port: /metrics /healthz /readyz /debug/pools (default 9090).
  --host ADDR          Bind address of both listeners (default 0.0.0.0).
  --log-level LEVEL    fatal | error | warn | info | debug | trace | silent (default info).
  --check              Validate the config, print it as JSON and exit.
  -h, --help           This help.
`;

export interface CliResult {
  readonly config?: GatewayConfig;
  readonly help?: boolean;
  readonly check?: boolean;
}

/** Builds the config from argv and the environment. Throws ConfigError on any invalid input. */
export function loadConfig(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): CliResult {
  let values;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      options: {
        config: { type: 'string' },
        upstream: { type: 'string', multiple: true },
        balancer: { type: 'string' },
        slots: { type: 'string' },
        port: { type: 'string' },
        'admin-port': { type: 'string' },
        host: { type: 'string' },
        'log-level': { type: 'string' },
        check: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new ConfigError('argv', `${(err as Error).message}; see --help`);
  }
  if (values.help) return { help: true };
  const file = values.config ?? env.GATEWAY_CONFIG;
  let doc: Obj;
  if (file) {
    if (values.upstream) throw new ConfigError('--upstream', 'cannot be combined with a config file; list endpoints in the file instead');
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new ConfigError('--config', `cannot read ${file}: ${(err as Error).message}`);
    }
    try {
      doc = (parseYaml(text) ?? {}) as Obj;
    } catch (err) {
      throw new ConfigError('--config', `${file} is not valid YAML: ${(err as Error).message}`);
    }
    if (typeof doc !== 'object' || Array.isArray(doc)) throw new ConfigError('--config', `${file} must hold a YAML mapping`);
  } else if (values.upstream) {
    const slots = values.slots === undefined ? undefined : values.slots === 'unlimited' || values.slots === 'auto' ? values.slots : Number(values.slots);
    doc = {
      pools: {
        default: {
          endpoints: values.upstream,
          ...(values.balancer ? { balancer: values.balancer } : {}),
          ...(slots !== undefined ? { slotsPerEndpoint: slots } : {}),
        },
      },
    };
  } else {
    throw new ConfigError('--config', 'no configuration: pass --config FILE, set GATEWAY_CONFIG, or give --upstream URL (see --help)');
  }
  const port = (flag: string, v: string | undefined) => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0 || n > 65535) throw new ConfigError(flag, `must be a port number from 0 to 65535 (got ${JSON.stringify(v)})`);
    return n;
  };
  const publicPort = port('--port', values.port);
  const adminPort = port('--admin-port', values['admin-port']);
  if (publicPort !== undefined || values.host) doc.listen = { ...(doc.listen as Obj), ...(publicPort !== undefined ? { port: publicPort } : {}), ...(values.host ? { host: values.host } : {}) };
  if (adminPort !== undefined || values.host) doc.admin = { ...(doc.admin as Obj), ...(adminPort !== undefined ? { port: adminPort } : {}), ...(values.host ? { host: values.host } : {}) };
  if (values['log-level']) doc.log = { ...(doc.log as Obj), level: values['log-level'] };
  if (file && (values.balancer || values.slots)) {
    throw new ConfigError(values.balancer ? '--balancer' : '--slots', 'belongs to the quick form (--upstream); set it per pool in the config file');
  }
  return { config: validateConfig(doc, env), check: values.check ?? false };
}
