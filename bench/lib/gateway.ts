/**
 * The gateway under test, as the product runs: `node dist/src/main.js --config FILE` child processes
 * with a generated YAML config, ports chosen by the OS (read back from the listening line), ready
 * once /readyz answers 200. A row's pool settings are plain data merged into the pool's config, so a
 * new setting (`slotsPerEndpoint: auto`, a new balancer) is one line in a scenario, and `check` asks
 * the built gateway whether it accepts a setting before the bench plans a row on it. `extras` adds
 * pools, routes and top-level keys for scenarios that need more than one pool behind `/`. `main` runs
 * another build (a baseline checkout's dist/src/main.js) with the same config. `cluster` joins the
 * replicas into one cluster (issue 17): each gets its own config with a free cluster port, all of
 * them as static peers, and the replicas count as started once every one has quorum and names the
 * same scheduler for every pool (admin `GET /debug/cluster`).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { gatewayMain } from './paths.js';
import { benchTmp, freePort, runSync, sleep, startProcess, waitHttpOk, type Proc } from './procs.js';

/** Pool keys of the gateway config (balancer, slotsPerEndpoint, queue, ...); endpoints are added. */
export type PoolSettings = Readonly<Record<string, unknown>>;

/** More of the config than one pool behind `/` (the soak and autoscale scenarios). */
export interface ConfigExtras {
  /** Pools beside `default`, each with its endpoints (ignored when its settings name `kubernetes`). */
  readonly pools?: Readonly<Record<string, { readonly endpoints: readonly string[]; readonly pool: PoolSettings }>>;
  /** The route table (default: every path to `default`). */
  readonly routes?: readonly Readonly<Record<string, unknown>>[];
  /** Top-level keys merged in: limits, publicRoutes, log, ... */
  readonly top?: Readonly<Record<string, unknown>>;
}

/** A pool with the bench's defaults (long queue and timeouts); `kubernetes:` settings replace the endpoint list. */
function poolConfig(endpoints: readonly string[], pool: PoolSettings): object {
  return {
    ...('kubernetes' in pool ? {} : { endpoints: [...endpoints] }),
    queue: { maxLength: 100_000, maxWaitMs: 300_000 },
    upstreamTimeoutMs: 300_000,
    ...pool,
  };
}

export function gatewayConfig(endpoints: readonly string[], pool: PoolSettings, extras: ConfigExtras = {}): object {
  const more = Object.entries(extras.pools ?? {}).map(([name, p]) => [name, poolConfig(p.endpoints, p.pool)] as const);
  return {
    listen: { host: '127.0.0.1', port: 0 },
    admin: { host: '127.0.0.1', port: 0 },
    log: { level: 'warn' },
    shutdown: { drainTimeoutMs: 1000 },
    pools: { default: poolConfig(endpoints, pool), ...Object.fromEntries(more) },
    routes: extras.routes ? extras.routes.map((r) => ({ ...r })) : [{ prefix: '/', pool: 'default' }],
    ...extras.top,
  };
}

function writeConfig(dir: string, endpoints: readonly string[], pool: PoolSettings, extras?: ConfigExtras, name = 'gateway.yaml'): string {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, name);
  writeFileSync(file, stringify(gatewayConfig(endpoints, pool, extras)));
  return file;
}

/** A cluster member's advertise URL on loopback. */
export function clusterUrl(port: number): string {
  return `http://127.0.0.1:${port}`;
}

/** The `cluster` section of each replica on loopback (one port each): listen on its own port, every replica a peer, and `others` too. */
function clusterSections(ports: readonly number[], layout: ClusterLayout): object[] {
  const host = (i: number) => layout.hosts?.[i] ?? '127.0.0.1';
  const urls = ports.map((port, i) => layout.advertise?.[i] ?? `http://${host(i)}:${port}`);
  return ports.map((port, i) => ({ listen: { host: host(i), port }, advertise: urls[i], peers: [...urls, ...(layout.others ?? [])], ...layout.settings }));
}

function withCluster(extras: ConfigExtras | undefined, cluster: object): ConfigExtras {
  return { ...extras, top: { ...extras?.top, cluster } };
}

/** Whether a gateway build (default: this one) accepts these pool settings, and `cluster` if asked; the message names the field when not. */
export function checkPoolSettings(pool: PoolSettings, options: { main?: string; cluster?: boolean } = {}): { ok: boolean; message: string } {
  const extras = options.cluster ? withCluster(undefined, clusterSections([9], {})[0] as object) : undefined;
  const file = writeConfig(benchTmp('check'), ['http://127.0.0.1:9'], pool, extras);
  const r = runSync(process.execPath, [options.main ?? gatewayMain, '--config', file, '--check'], 30_000);
  return { ok: r.ok, message: r.ok ? 'ok' : r.out.trim().split('\n').slice(-3).join(' ') };
}

export interface Gateways {
  readonly urls: readonly string[];
  readonly adminUrls: readonly string[];
  readonly procs: readonly Proc[];
  stop(): Promise<void>;
}

export interface GatewayOptions {
  readonly endpoints: readonly string[];
  readonly pool: PoolSettings;
  readonly replicas?: number;
  /** taskset core list for every replica (the overhead scenario keeps the proxy on its own core). */
  readonly cpus?: string;
  readonly extras?: ConfigExtras;
  /** Environment added to each replica's (KUBECONFIG for `kubernetes:` pools). */
  readonly env?: Readonly<Record<string, string>>;
  /** Node.js flags before the script (e.g. --inspect=127.0.0.1:0). */
  readonly nodeArgs?: readonly string[];
  /** The gateway's entry script (default: this build's dist/src/main.js). */
  readonly main?: string;
  /** Join the replicas into one cluster (static peers on free loopback ports, or as laid out). */
  readonly cluster?: boolean | ClusterLayout;
}

/** Where the replicas' cluster listeners are, and members that are no gateway (the `cluster` bench's own). */
export interface ClusterLayout {
  /** One cluster port per replica (default: free ports). */
  readonly ports?: readonly number[];
  /** Advertise URLs of other members, in every replica's static peers. */
  readonly others?: readonly string[];
  /** More keys of each replica's `cluster` section (e.g. `prefetchGrants`). */
  readonly settings?: PoolSettings;
  /** Per replica, where its cluster listener binds (default 127.0.0.1). */
  readonly hosts?: readonly (string | undefined)[];
  /** Per replica, how the others reach it (default http://host:port; e.g. a relay that can cut it off). */
  readonly advertise?: readonly (string | undefined)[];
}

export async function startGateways(options: GatewayOptions): Promise<Gateways> {
  const replicas = options.replicas ?? 1;
  const dir = benchTmp('gateway');
  const layout: ClusterLayout | undefined = options.cluster === true ? {} : options.cluster || undefined;
  const ports = layout ? (layout.ports ?? (await Promise.all(Array.from({ length: replicas }, () => freePort())))) : [];
  if (layout && ports.length !== replicas) throw new Error(`cluster layout has ${ports.length} ports for ${replicas} replicas`);
  const sections = layout ? clusterSections(ports, layout) : undefined;
  const files = Array.from({ length: replicas }, (_, i) =>
    sections
      ? writeConfig(dir, options.endpoints, options.pool, withCluster(options.extras, sections[i] as object), `gateway-${i}.yaml`)
      : writeConfig(dir, options.endpoints, options.pool, options.extras),
  );
  const procs = files.map((file, i) =>
    startProcess(process.execPath, [...(options.nodeArgs ?? []), options.main ?? gatewayMain, '--config', file], {
      logFile: join(dir, `gateway-${i}.log`),
      ...(options.cpus ? { cpus: options.cpus } : {}),
      ...(options.env ? { env: options.env } : {}),
    }),
  );
  const stop = async () => {
    await Promise.all(procs.map((p) => p.stop()));
  };
  try {
    const urls = await Promise.all(
      procs.map(async (p) => {
        const m = await p.waitFor(/listening on (http:\/\/[^\s]+) \(admin (http:\/\/[^\s)]+)\)/, 20_000);
        await waitHttpOk(`${m[2]}/readyz`, 20_000, p);
        return { url: m[1] as string, admin: m[2] as string };
      }),
    );
    const adminUrls = urls.map((u) => u.admin);
    if (sections) await clusterAgreed(adminUrls, 30_000);
    return { urls: urls.map((u) => u.url), adminUrls, procs, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

interface ClusterView {
  readonly quorum?: boolean;
  readonly pools?: Readonly<Record<string, { readonly scheduler?: string | null }>>;
}

/** Whether every replica has quorum and all name the same (non-null) scheduler for every pool any of them lists. */
export function agreed(views: readonly ClusterView[]): boolean {
  if (!views.every((v) => v.quorum === true)) return false;
  const pools = new Set(views.flatMap((v) => Object.keys(v.pools ?? {})));
  return [...pools].every((pool) => {
    const named = new Set(views.map((v) => v.pools?.[pool]?.scheduler ?? null));
    return named.size === 1 && !named.has(null);
  });
}

/** Polls every replica's `/debug/cluster` until they agree (see `agreed`); throws with their last views after `timeoutMs`. */
async function clusterAgreed(adminUrls: readonly string[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let views: unknown[] = [];
  while (Date.now() < deadline) {
    views = await Promise.all(adminUrls.map((u) => adminJson(u, '/debug/cluster')));
    if (agreed(views as ClusterView[])) return;
    await sleep(100);
  }
  throw new Error(`replicas did not agree on a scheduler with quorum within ${timeoutMs} ms: ${JSON.stringify(views)}`);
}

async function adminJson(adminUrl: string, path: string): Promise<unknown> {
  try {
    const res = await fetch(`${adminUrl}${path}`, { signal: AbortSignal.timeout(2000) });
    return await res.json();
  } catch (err) {
    return { error: (err as Error).message };
  }
}

/** The gateway's own view after a run (`/debug/pools`), kept in the JSON for diagnosis. */
export function debugPools(adminUrl: string): Promise<unknown> {
  return adminJson(adminUrl, '/debug/pools');
}

/** A replica's view of the cluster (`/debug/cluster`), kept in the JSON for cluster rows. */
export function debugCluster(adminUrl: string): Promise<unknown> {
  return adminJson(adminUrl, '/debug/cluster');
}
