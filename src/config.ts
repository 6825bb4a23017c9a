/**
 * Configuration: a YAML file (`--config FILE` or GATEWAY_CONFIG) or the quick flags, validated once at
 * start into a frozen object. Every error names the field path and what is allowed, because the person
 * reading it is an operator staring at a CrashLoopBackOff.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { balancerNames } from './balancer/registry.js';
import type { CacheConfig } from './cache/parse-cache.js';
import type { RasaAuth } from './cache/rasa-auth.js';
import type { BalancerName } from './balancer/types.js';
import type { DispatchMode } from './pool/pool.js';

export interface ListenConfig {
  readonly host: string;
  readonly port: number;
}

export interface KubernetesSource {
  readonly namespace: string;
  readonly service: string;
  /** Port name (e.g. `http`) or number. */
  readonly port: string | number;
}

export type AffinityMode = 'none' | 'rasa';
export type { CacheConfig } from './cache/parse-cache.js';
export type { RasaAuth } from './cache/rasa-auth.js';

/** A static endpoint: its origin, and optionally the pod name and zone shown in /debug and the status page. */
export interface StaticEndpointConfig {
  readonly url: string;
  readonly name?: string;
  readonly zone?: string;
}

export interface RetryConfig {
  /** Retries allowed as a share of recent requests (Envoy/linkerd retry budgets). */
  readonly budgetPercent: number;
  /** Retries always allowed per second, so a quiet pool can still retry. */
  readonly minPerSecond: number;
}

export interface EjectionConfig {
  /** Consecutive failures (connect errors, resets, timeouts, 5xx) that eject a pod; 0: never. */
  readonly consecutiveFailures: number;
  readonly baseMs: number;
  readonly maxMs: number;
  /** Never eject more than this share of the pool at once. */
  readonly maxPercent: number;
}

export interface HealthCheckConfig {
  readonly path: string;
  readonly intervalMs: number;
  readonly timeoutMs: number;
  readonly unhealthyThreshold: number;
  readonly healthyThreshold: number;
}
export type OrderingMode = 'webhooks' | 'all' | 'none';

/** Pod-deletion-cost writer (src/scale-in/deletion-cost.ts); `kubernetes:` pools only. */
export interface DeletionCostConfig {
  readonly enabled: boolean;
  /** How often the lease holder recomputes and writes the annotations. */
  readonly intervalMs: number;
  readonly leaseName: string;
  /** Namespace of the Lease; absent: POD_NAMESPACE (the gateway's own), else the pool's namespace. */
  readonly leaseNamespace?: string;
  readonly leaseDurationSeconds: number;
  /** Rewrite a pod's annotation only when its cost moved by at least this much (or fell to 0). */
  readonly minChange: number;
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
  readonly queue: { readonly maxLength: number; readonly maxWaitMs: number };
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

export interface LimitsConfig {
  /** Slow clients: complete headers within this (408 otherwise, no slot held). */
  readonly headersTimeoutMs: number;
  /** Slow clients: the whole request, body included, within this. */
  readonly requestTimeoutMs: number;
  readonly maxHeaderBytes: number;
  readonly maxHeadersCount: number;
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

function object(value: unknown, path: string, allowed: readonly string[]): Obj {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(path, `must be a mapping (got ${describe(value)})`);
  }
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      throw new ConfigError(join(path, key), `unknown key; allowed here: ${allowed.join(', ')}`);
    }
  }
  return value as Obj;
}

function join(path: string, key: string | number): string {
  return typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;
}

function integer(value: unknown, path: string, min: number, max: number, fallback?: number): number {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(path, `must be an integer from ${min} to ${max} (got ${describe(value)})`);
  }
  return value;
}

function string(value: unknown, path: string, fallback?: string): string {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || value.length === 0) {
    throw new ConfigError(path, `must be a non-empty string (got ${describe(value)})`);
  }
  return value;
}

function oneOf<T extends string>(value: unknown, path: string, allowed: readonly T[], fallback?: T): T {
  if (value === undefined && fallback !== undefined) return fallback;
  if (typeof value !== 'string' || !allowed.includes(value as T)) {
    throw new ConfigError(path, `must be one of ${allowed.join(', ')} (got ${describe(value)})`);
  }
  return value as T;
}

function listen(value: unknown, path: string, defaultPort: number): ListenConfig {
  const o = object(value ?? {}, path, ['host', 'port']);
  return { host: string(o.host, join(path, 'host'), '0.0.0.0'), port: integer(o.port, join(path, 'port'), 0, 65535, defaultPort) };
}

function upstreamUrl(value: unknown, path: string): string {
  const text = string(value, path);
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

function retryConfig(value: unknown, path: string): RetryConfig {
  const o = object(value ?? {}, path, ['budgetPercent', 'minPerSecond']);
  return {
    budgetPercent: integer(o.budgetPercent, join(path, 'budgetPercent'), 0, 100, 20),
    minPerSecond: integer(o.minPerSecond, join(path, 'minPerSecond'), 0, 10_000, 3),
  };
}

function ejectionConfig(value: unknown, path: string): EjectionConfig {
  const o = object(value ?? {}, path, ['consecutiveFailures', 'baseMs', 'maxMs', 'maxPercent']);
  const baseMs = integer(o.baseMs, join(path, 'baseMs'), 100, 3_600_000, 10_000);
  return {
    consecutiveFailures: integer(o.consecutiveFailures, join(path, 'consecutiveFailures'), 0, 1000, 5),
    baseMs,
    maxMs: integer(o.maxMs, join(path, 'maxMs'), baseMs, 24 * 3_600_000, Math.max(baseMs, 300_000)),
    maxPercent: integer(o.maxPercent, join(path, 'maxPercent'), 0, 100, 50),
  };
}

function healthCheckConfig(value: unknown, path: string): HealthCheckConfig {
  const o = object(value ?? {}, path, ['path', 'intervalMs', 'timeoutMs', 'unhealthyThreshold', 'healthyThreshold']);
  const probePath = string(o.path, join(path, 'path'), '/');
  if (!probePath.startsWith('/')) throw new ConfigError(join(path, 'path'), `must start with / (got ${describe(probePath)})`);
  return {
    path: probePath,
    intervalMs: integer(o.intervalMs, join(path, 'intervalMs'), 100, 3_600_000, 5000),
    timeoutMs: integer(o.timeoutMs, join(path, 'timeoutMs'), 10, 600_000, 2000),
    unhealthyThreshold: integer(o.unhealthyThreshold, join(path, 'unhealthyThreshold'), 1, 100, 3),
    healthyThreshold: integer(o.healthyThreshold, join(path, 'healthyThreshold'), 1, 100, 2),
  };
}

function cacheConfig(value: unknown, path: string): CacheConfig {
  const o = object(value ?? {}, path, ['maxEntries', 'maxBytes', 'ttlMs', 'modelPollMs']);
  return {
    maxEntries: integer(o.maxEntries, join(path, 'maxEntries'), 1, 100_000_000, 10_000),
    maxBytes: integer(o.maxBytes, join(path, 'maxBytes'), 1024, 64 * 1024 * 1024 * 1024, 64 * 1024 * 1024),
    ttlMs: integer(o.ttlMs, join(path, 'ttlMs'), 1000, 30 * 24 * 3_600_000, 600_000),
    modelPollMs: integer(o.modelPollMs, join(path, 'modelPollMs'), 100, 3_600_000, 10_000),
  };
}

/** Secrets come from the environment (`tokenEnv`, `jwtSecretEnv`) or, for tests, inline. */
function rasaAuthConfig(value: unknown, path: string, env: NodeJS.ProcessEnv): RasaAuth {
  const o = object(value ?? {}, path, ['token', 'tokenEnv', 'jwtSecret', 'jwtSecretEnv', 'jwtAlgorithm']);
  const secret = (inline: string, envKey: string): string | undefined => {
    if (o[inline] !== undefined) return string(o[inline], join(path, inline));
    if (o[envKey] === undefined) return undefined;
    const name = string(o[envKey], join(path, envKey));
    const v = env[name];
    if (!v) throw new ConfigError(join(path, envKey), `names the environment variable ${name}, which is not set`);
    return v;
  };
  const token = secret('token', 'tokenEnv');
  const jwtSecret = secret('jwtSecret', 'jwtSecretEnv');
  return {
    ...(token !== undefined ? { token } : {}),
    ...(jwtSecret !== undefined ? { jwtSecret } : {}),
    jwtAlgorithm: oneOf(o.jwtAlgorithm, join(path, 'jwtAlgorithm'), ['HS256', 'HS384', 'HS512'] as const, 'HS256'),
  };
}

function staticEndpoint(value: unknown, path: string): StaticEndpointConfig {
  if (typeof value === 'string') return { url: upstreamUrl(value, path) };
  const o = object(value, path, ['url', 'name', 'zone']);
  return {
    url: upstreamUrl(o.url, join(path, 'url')),
    ...(o.name !== undefined ? { name: string(o.name, join(path, 'name')) } : {}),
    ...(o.zone !== undefined ? { zone: string(o.zone, join(path, 'zone')) } : {}),
  };
}

/** Lease names are DNS subdomains, namespaces DNS labels. */
const dnsSubdomain = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function deletionCostConfig(value: unknown, path: string, kubernetes: boolean): DeletionCostConfig {
  const o = object(value ?? {}, path, ['enabled', 'intervalMs', 'leaseName', 'leaseNamespace', 'leaseDurationSeconds', 'minChange']);
  if (o.enabled !== undefined && typeof o.enabled !== 'boolean') throw new ConfigError(join(path, 'enabled'), `must be true or false (got ${describe(o.enabled)})`);
  const enabled = o.enabled === true;
  if (enabled && !kubernetes) {
    throw new ConfigError(join(path, 'enabled'), 'needs `kubernetes:` discovery (the annotation is written on the pods an EndpointSlice names); remove deletionCost or set enabled: false');
  }
  const leaseName = string(o.leaseName, join(path, 'leaseName'), 'rasa-gateway-deletion-cost');
  if (leaseName.length > 253 || !dnsSubdomain.test(leaseName)) {
    throw new ConfigError(join(path, 'leaseName'), `must be a DNS subdomain name: lowercase letters, digits, - and . (got ${describe(leaseName)})`);
  }
  let leaseNamespace: string | undefined;
  if (o.leaseNamespace !== undefined) {
    leaseNamespace = string(o.leaseNamespace, join(path, 'leaseNamespace'));
    if (leaseNamespace.length > 63 || !dnsLabel.test(leaseNamespace)) {
      throw new ConfigError(join(path, 'leaseNamespace'), `must be a namespace name: lowercase letters, digits and - (got ${describe(leaseNamespace)})`);
    }
  }
  return {
    enabled,
    intervalMs: integer(o.intervalMs, join(path, 'intervalMs'), 100, 3_600_000, 10_000),
    leaseName,
    ...(leaseNamespace !== undefined ? { leaseNamespace } : {}),
    leaseDurationSeconds: integer(o.leaseDurationSeconds, join(path, 'leaseDurationSeconds'), 1, 3600, 30),
    minChange: integer(o.minChange, join(path, 'minChange'), 1, 1_000_000, 1),
  };
}

/** `slotsPerEndpoint: auto`: the bounds of each pod's learned slots. */
function adaptiveSlotsConfig(o: Obj, path: string): { minSlots: number; maxSlots: number } {
  const minSlots = integer(o.minSlots, join(path, 'minSlots'), 1, 10_000, 1);
  const maxSlots = integer(o.maxSlots, join(path, 'maxSlots'), 1, 10_000, 16);
  if (maxSlots < minSlots) {
    throw new ConfigError(join(path, 'maxSlots'), `must be at least minSlots (${minSlots}); got ${maxSlots}${o.maxSlots === undefined ? ' (the default)' : ''}`);
  }
  return { minSlots, maxSlots };
}

const poolKeys = ['endpoints', 'kubernetes', 'balancer', 'slotsPerEndpoint', 'minSlots', 'maxSlots', 'dispatch', 'queue', 'upstreamTimeoutMs', 'affinity', 'sessions', 'ordering', 'bodyLimitBytes', 'retry', 'ejection', 'healthCheck', 'slowStartMs', 'cache', 'rasaAuth', 'deletionCost'];

function pool(name: string, value: unknown, path: string, env: NodeJS.ProcessEnv): PoolConfig {
  const o = object(value, path, poolKeys);
  if ((o.endpoints === undefined) === (o.kubernetes === undefined)) {
    throw new ConfigError(path, 'needs exactly one endpoint source: `endpoints: [http://host:port, ...]` or `kubernetes: { namespace, service, port }`');
  }
  let endpoints: StaticEndpointConfig[] | undefined;
  if (o.endpoints !== undefined) {
    if (!Array.isArray(o.endpoints)) throw new ConfigError(join(path, 'endpoints'), 'must be a list of URLs or { url, name, zone }');
    endpoints = o.endpoints.map((e, i) => staticEndpoint(e, join(join(path, 'endpoints'), i)));
  }
  let kubernetes: KubernetesSource | undefined;
  if (o.kubernetes !== undefined) {
    const kp = join(path, 'kubernetes');
    const k = object(o.kubernetes, kp, ['namespace', 'service', 'port']);
    const port = k.port;
    if (!(typeof port === 'string' && port.length > 0) && !(typeof port === 'number' && Number.isInteger(port) && port > 0 && port < 65536)) {
      throw new ConfigError(join(kp, 'port'), `must be a port name such as http or a number from 1 to 65535 (got ${describe(port)})`);
    }
    kubernetes = { namespace: string(k.namespace, join(kp, 'namespace'), 'default'), service: string(k.service, join(kp, 'service')), port };
  }
  const slotsPath = join(path, 'slotsPerEndpoint');
  const adaptiveSlots = o.slotsPerEndpoint === 'auto' ? adaptiveSlotsConfig(o, path) : undefined;
  const slots = adaptiveSlots ? adaptiveSlots.minSlots : o.slotsPerEndpoint === 'unlimited' ? Infinity : o.slotsPerEndpoint === undefined ? 2 : o.slotsPerEndpoint;
  if (slots !== Infinity && (typeof slots !== 'number' || !Number.isInteger(slots) || slots < 1 || slots > 100_000)) {
    throw new ConfigError(slotsPath, `must be an integer from 1 to 100000, \`auto\` or \`unlimited\` (got ${describe(o.slotsPerEndpoint)})`);
  }
  for (const key of ['minSlots', 'maxSlots'] as const) {
    if (!adaptiveSlots && o[key] !== undefined) {
      throw new ConfigError(join(path, key), `only applies with \`slotsPerEndpoint: auto\` (slotsPerEndpoint is ${describe(o.slotsPerEndpoint ?? 2)})`);
    }
  }
  const dispatch = oneOf(o.dispatch, join(path, 'dispatch'), ['greedy', 'earliest-completion'] as const, slots === Infinity ? 'greedy' : 'earliest-completion');
  if (dispatch === 'earliest-completion' && slots === Infinity) {
    throw new ConfigError(join(path, 'dispatch'), 'earliest-completion holds requests back for faster pods, which needs slots: use a number or `auto` for slotsPerEndpoint (it is unlimited)');
  }
  const qp = join(path, 'queue');
  const q = object(o.queue ?? {}, qp, ['maxLength', 'maxWaitMs']);
  const sp = join(path, 'sessions');
  const s = object(o.sessions ?? {}, sp, ['maxEntries', 'idleTtlMs']);
  return {
    name,
    ...(endpoints ? { endpoints } : {}),
    ...(kubernetes ? { kubernetes } : {}),
    balancer: oneOf(o.balancer, join(path, 'balancer'), balancerNames, 'least-outstanding'),
    slotsPerEndpoint: slots as number,
    adaptiveSlots,
    dispatch,
    queue: {
      maxLength: integer(q.maxLength, join(qp, 'maxLength'), 0, 10_000_000, 1000),
      maxWaitMs: integer(q.maxWaitMs, join(qp, 'maxWaitMs'), 1, 3_600_000, 30_000),
    },
    upstreamTimeoutMs: integer(o.upstreamTimeoutMs, join(path, 'upstreamTimeoutMs'), 1, 3_600_000, 60_000),
    affinity: oneOf(o.affinity, join(path, 'affinity'), ['none', 'rasa'] as const, 'none'),
    ordering: oneOf(o.ordering, join(path, 'ordering'), ['webhooks', 'all', 'none'] as const, 'webhooks'),
    bodyLimitBytes: integer(o.bodyLimitBytes, join(path, 'bodyLimitBytes'), 1024, 1024 * 1024 * 1024, 1024 * 1024),
    retry: retryConfig(o.retry, join(path, 'retry')),
    ejection: ejectionConfig(o.ejection, join(path, 'ejection')),
    healthCheck: o.healthCheck === undefined ? undefined : healthCheckConfig(o.healthCheck, join(path, 'healthCheck')),
    slowStartMs: integer(o.slowStartMs, join(path, 'slowStartMs'), 0, 3_600_000, 30_000),
    cache: o.cache === undefined ? undefined : cacheConfig(o.cache, join(path, 'cache')),
    rasaAuth: rasaAuthConfig(o.rasaAuth, join(path, 'rasaAuth'), env),
    deletionCost: deletionCostConfig(o.deletionCost, join(path, 'deletionCost'), kubernetes !== undefined),
    sessions: {
      maxEntries: integer(s.maxEntries, join(sp, 'maxEntries'), 1, 100_000_000, 100_000),
      idleTtlMs: integer(s.idleTtlMs, join(sp, 'idleTtlMs'), 1000, 7 * 24 * 3_600_000, 3_600_000),
    },
  };
}

const methods = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'];

function route(value: unknown, path: string, pools: Record<string, PoolConfig>): RouteConfig {
  const o = object(value, path, ['path', 'prefix', 'pool', 'methods', 'deadlineMs', 'bodyLimitBytes']);
  if ((o.path === undefined) === (o.prefix === undefined)) {
    throw new ConfigError(path, 'needs exactly one of `path` (exact match) or `prefix`');
  }
  const matchKey = o.path !== undefined ? 'path' : 'prefix';
  const match = string(o[matchKey], join(path, matchKey));
  if (!match.startsWith('/')) throw new ConfigError(join(path, matchKey), `must start with / (got ${describe(match)})`);
  const poolName = string(o.pool, join(path, 'pool'));
  if (!pools[poolName]) {
    throw new ConfigError(join(path, 'pool'), `names no pool; defined pools: ${Object.keys(pools).join(', ') || 'none'}`);
  }
  let routeMethods: string[] | undefined;
  if (o.methods !== undefined) {
    if (!Array.isArray(o.methods)) throw new ConfigError(join(path, 'methods'), `must be a list of ${methods.join(', ')}`);
    routeMethods = o.methods.map((m, i) => oneOf(typeof m === 'string' ? m.toUpperCase() : m, join(join(path, 'methods'), i), methods));
  }
  return {
    [matchKey]: match,
    pool: poolName,
    ...(routeMethods ? { methods: routeMethods } : {}),
    ...(o.deadlineMs !== undefined ? { deadlineMs: integer(o.deadlineMs, join(path, 'deadlineMs'), 1, 3_600_000) } : {}),
    ...(o.bodyLimitBytes !== undefined ? { bodyLimitBytes: integer(o.bodyLimitBytes, join(path, 'bodyLimitBytes'), 0, 1024 * 1024 * 1024) } : {}),
  } as RouteConfig;
}

/** Validates a parsed config document (YAML or JSON) and returns the frozen config; `env` supplies `*Env` secrets. */
export function validateConfig(doc: unknown, env: NodeJS.ProcessEnv = process.env): GatewayConfig {
  const o = object(doc ?? {}, '', ['listen', 'admin', 'internal', 'publicRoutes', 'limits', 'shutdown', 'log', 'pools', 'routes']);
  const lim = object(o.limits ?? {}, 'limits', ['headersTimeoutMs', 'requestTimeoutMs', 'maxHeaderBytes', 'maxHeadersCount']);
  if (o.publicRoutes !== undefined && !Array.isArray(o.publicRoutes)) throw new ConfigError('publicRoutes', 'must be a list of paths such as /conversations/* or /status');
  const publicRoutes = ((o.publicRoutes as unknown[] | undefined) ?? []).map((r, i) => {
    const route = string(r, join('publicRoutes', i));
    if (!route.startsWith('/')) throw new ConfigError(join('publicRoutes', i), `must start with / (got ${describe(route)})`);
    return route;
  });
  const sd = object(o.shutdown ?? {}, 'shutdown', ['drainTimeoutMs']);
  const lg = object(o.log ?? {}, 'log', ['level']);
  const poolsDoc = object(o.pools, 'pools', Object.keys((o.pools as Obj | undefined) ?? {}));
  const pools: Record<string, PoolConfig> = {};
  for (const [name, value] of Object.entries(poolsDoc)) {
    if (!/^[a-z0-9]([-a-z0-9_]*[a-z0-9])?$/i.test(name)) {
      throw new ConfigError(join('pools', name), 'pool names use letters, digits, - and _ (they become metric labels)');
    }
    pools[name] = pool(name, value, join('pools', name), env);
  }
  if (Object.keys(pools).length === 0) throw new ConfigError('pools', 'must define at least one pool');
  let routes: RouteConfig[];
  if (o.routes === undefined) {
    if (Object.keys(pools).length !== 1) throw new ConfigError('routes', 'is required when there is more than one pool');
    routes = [{ prefix: '/', pool: Object.keys(pools)[0] as string }];
  } else {
    if (!Array.isArray(o.routes) || o.routes.length === 0) throw new ConfigError('routes', 'must be a non-empty list of { path | prefix, pool }');
    routes = o.routes.map((r, i) => route(r, join('routes', i), pools));
  }
  const config: GatewayConfig = {
    listen: listen(o.listen, 'listen', 8080),
    admin: listen(o.admin, 'admin', 9090),
    internal: o.internal === undefined ? undefined : listen(o.internal, 'internal', 8081),
    publicRoutes,
    limits: {
      headersTimeoutMs: integer(lim.headersTimeoutMs, 'limits.headersTimeoutMs', 100, 600_000, 10_000),
      requestTimeoutMs: integer(lim.requestTimeoutMs, 'limits.requestTimeoutMs', 100, 3_600_000, 60_000),
      maxHeaderBytes: integer(lim.maxHeaderBytes, 'limits.maxHeaderBytes', 1024, 1024 * 1024, 16 * 1024),
      maxHeadersCount: integer(lim.maxHeadersCount, 'limits.maxHeadersCount', 10, 10_000, 100),
    },
    shutdown: { drainTimeoutMs: integer(sd.drainTimeoutMs, 'shutdown.drainTimeoutMs', 0, 3_600_000, 30_000) },
    log: { level: oneOf(lg.level, 'log.level', ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const, 'info') },
    pools,
    routes,
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
