/**
 * A table row is data: what sits between the clients and the pods. Scenarios list rows; this module
 * starts one for a cluster and hands back how clients send to it. Kinds:
 * - `ideal`: no process, the schedule is simulated (ideal.ts) from the same arrivals and service times;
 * - `kube`: no proxy, the Kubernetes-like baseline spread by the client itself (round-robin per
 *   request as a per-request L4/L7 Service would, or random per keep-alive connection as kube-proxy);
 * - `gateway`: this project, N replicas, with pool settings merged into its config, optionally joined
 *   into one cluster, optionally another build of it (`main`: a baseline checkout, see baseline.ts);
 * - `nginx`, `haproxy`: the peers.
 */
import type { Cluster } from './pods.js';
import { startGateways, type PoolSettings } from './gateway.js';
import type { PodModel, Schedule } from './ideal.js';
import { perConnection, perRequest, type Sender } from './load.js';
import { startHaproxy, startNginx, type Tool } from './peers.js';
import { seededRandom } from './stats.js';

export type TargetSpec =
  | { readonly kind: 'ideal'; readonly schedule: 'greedy' | 'earliest-completion' }
  | { readonly kind: 'kube'; readonly spread: 'round-robin' | 'random-connection' }
  | { readonly kind: 'gateway'; readonly pool: PoolSettings; readonly replicas?: number; readonly cluster?: boolean; readonly main?: string }
  | { readonly kind: 'nginx'; readonly method: 'least_conn' | 'round-robin' }
  | { readonly kind: 'haproxy'; readonly balance: 'leastconn' | 'roundrobin'; readonly maxconn?: number };

export interface Row {
  readonly id: string;
  readonly label: string;
  readonly target: TargetSpec;
  /** Rows with the same group share a colour family in plots and a block in tables. */
  readonly group: 'ideal' | 'kube' | 'gateway' | 'peer';
  /** Measured after the short priming every row gets, even if it learns slots (what a fresh gateway does). */
  readonly cold?: boolean;
  /** This row reruns row `baselineOf` on the baseline build (`--baseline`, see baseline.ts). */
  readonly baselineOf?: string;
}

export type Slots = number | 'unlimited' | 'auto';

function slotsText(slots: Slots): string {
  return slots === 'unlimited' ? 'no queue' : slots === 'auto' ? 'slots auto' : `slots ${slots}`;
}

/** Row constructors shared by the scenarios. */
export const row = {
  idealGreedy: (): Row => ({ id: 'ideal', label: 'ideal: central FIFO, greedy (DES)', target: { kind: 'ideal', schedule: 'greedy' }, group: 'ideal' }),
  idealEarliest: (): Row => ({
    id: 'ideal-ec',
    label: 'ideal: earliest completion (DES)',
    target: { kind: 'ideal', schedule: 'earliest-completion' },
    group: 'ideal',
  }),
  kubeRoundRobin: (): Row => ({ id: 'kube-rr', label: 'k8s-like: round-robin per request', target: { kind: 'kube', spread: 'round-robin' }, group: 'kube' }),
  kubeRandomConnection: (): Row => ({
    id: 'kube-conn',
    label: 'k8s-like: random per keep-alive connection',
    target: { kind: 'kube', spread: 'random-connection' },
    group: 'kube',
  }),
  /**
   * Extra pool settings (e.g. `{ dispatch: 'earliest-completion' }`) name themselves in the id and label;
   * `cluster` (the replicas joined into one cluster) adds `-cluster` and ", cluster".
   */
  gateway: (balancer: string, slots: Slots, extra: { replicas?: number; pool?: PoolSettings; cluster?: boolean } = {}): Row => {
    const replicas = extra.replicas ?? 1;
    const settings = Object.entries(extra.pool ?? {});
    return {
      id: `gw-${balancer}-${slots}${settings.map(([, v]) => `-${String(v)}`).join('')}${replicas > 1 ? `-x${replicas}` : ''}${extra.cluster ? '-cluster' : ''}`,
      label: `gateway${replicas > 1 ? ` x${replicas}` : ''}${extra.cluster ? ' cluster' : ''} ${balancer}, ${slotsText(slots)}${settings.map(([k, v]) => `, ${k} ${String(v)}`).join('')}`,
      // Numbered slots mean the speed-blind central queue (HAProxy's maxconn + queue) unless a row asks
      // for another dispatch: the gateway's default for them is earliest-completion.
      target: {
        kind: 'gateway',
        pool: { balancer, slotsPerEndpoint: slots, ...(typeof slots === 'number' ? { dispatch: 'greedy' } : {}), ...extra.pool },
        replicas,
        ...(extra.cluster ? { cluster: true } : {}),
      },
      group: 'gateway',
    };
  },
  /** The same row, measured cold: the first seconds of a gateway that learns its slots. */
  cold: (r: Row): Row => ({ ...r, id: `${r.id}-cold`, label: `${r.label}, cold`, cold: true }),
  nginx: (): Row => ({ id: 'nginx-least-conn', label: 'nginx least_conn (no queue)', target: { kind: 'nginx', method: 'least_conn' }, group: 'peer' }),
  haproxy: (maxconn?: number): Row => ({
    id: `haproxy-leastconn${maxconn ? `-${maxconn}` : ''}`,
    label: `haproxy leastconn${maxconn ? `, maxconn ${maxconn} + queue` : ' (no queue)'}`,
    target: { kind: 'haproxy', balance: 'leastconn', ...(maxconn ? { maxconn } : {}) },
    group: 'peer',
  }),
};

/** Every balancer the gateway ships, for "each balancer" rows. */
export const gatewayBalancers = ['round-robin', 'random', 'least-outstanding', 'p2c', 'peak-ewma'] as const;

/** Whether a gateway row uses settings beyond a balancer and a fixed slot count, or another build (which may not have them). */
export function needsCheck(spec: TargetSpec): boolean {
  if (spec.kind !== 'gateway') return false;
  const { balancer: _b, slotsPerEndpoint, ...rest } = spec.pool;
  return slotsPerEndpoint === 'auto' || Object.keys(rest).length > 0 || spec.cluster === true || spec.main !== undefined;
}

export function toolOf(spec: TargetSpec): Tool | undefined {
  return spec.kind === 'nginx' || spec.kind === 'haproxy' ? spec.kind : undefined;
}

/** The simulated schedule closest to what a row does, to estimate how long its runs take. */
export function scheduleLike(spec: TargetSpec): Schedule {
  switch (spec.kind) {
    case 'ideal':
      return spec.schedule;
    case 'kube':
      return 'round-robin';
    case 'nginx':
      return spec.method === 'least_conn' ? 'least-outstanding' : 'round-robin';
    case 'haproxy':
      return spec.maxconn ? 'greedy' : 'least-outstanding';
    case 'gateway': {
      if (spec.pool.slotsPerEndpoint !== 'unlimited') return 'greedy';
      return spec.pool.balancer === 'round-robin' || spec.pool.balancer === 'random' ? 'round-robin' : 'least-outstanding';
    }
  }
}

/** The pods as a row's schedule sees them: a static slot limit below a pod's own caps its concurrency. */
export function podsLike<P extends PodModel>(spec: TargetSpec, pods: readonly P[]): P[] {
  const limit = spec.kind === 'gateway' ? spec.pool.slotsPerEndpoint : spec.kind === 'haproxy' ? spec.maxconn : undefined;
  return typeof limit === 'number' ? pods.map((p) => ({ ...p, slots: Math.min(p.slots, limit) })) : [...pods];
}

/** Seconds it takes to start a row's processes, for estimates. */
export function startCostS(spec: TargetSpec): number {
  if (spec.kind === 'gateway') return 0.6 + 0.15 * (spec.replicas ?? 1) + (spec.cluster ? 1 : 0);
  if (spec.kind === 'nginx' || spec.kind === 'haproxy') return 0.15;
  return 0;
}

export type ProxySpec = Extract<TargetSpec, { kind: 'gateway' | 'nginx' | 'haproxy' }>;

/** A started proxy (gateway replicas, nginx or HAProxy) in front of some endpoints. */
export interface Proxy {
  readonly urls: readonly string[];
  /** Gateway admin URLs, for /debug/pools after a run. */
  readonly adminUrls: readonly string[];
  /** Top-level process ids, for CPU accounting. */
  readonly pids: readonly number[];
  stop(): Promise<void>;
}

/** Starts a proxy row's processes; `cpus` pins them (taskset core list). */
export async function startProxy(spec: ProxySpec, endpoints: readonly string[], cpus?: string): Promise<Proxy> {
  const pin = cpus ? { cpus } : {};
  if (spec.kind === 'gateway') {
    const g = await startGateways({
      endpoints,
      pool: spec.pool,
      replicas: spec.replicas ?? 1,
      ...pin,
      ...(spec.cluster ? { cluster: true } : {}),
      ...(spec.main ? { main: spec.main } : {}),
    });
    return { urls: g.urls, adminUrls: g.adminUrls, pids: g.procs.map((p) => p.pid), stop: () => g.stop() };
  }
  const peer =
    spec.kind === 'nginx'
      ? await startNginx({ endpoints, method: spec.method, ...pin })
      : await startHaproxy({ endpoints, balance: spec.balance, ...(spec.maxconn ? { maxconn: spec.maxconn } : {}), ...pin });
  return { urls: [peer.url], adminUrls: [], pids: [peer.proc.pid], stop: () => peer.stop() };
}

export interface Running {
  readonly sender: Sender;
  /** Gateway admin URLs, for /debug/pools after a run. */
  readonly adminUrls: readonly string[];
  stop(): Promise<void>;
}

/** Starts what a measured row needs in front of the cluster; `seed` varies random spreading per repeat. */
export async function startTarget(spec: TargetSpec, cluster: Cluster, seed: number): Promise<Running> {
  if (spec.kind === 'ideal') throw new Error('ideal rows are simulated, not started');
  if (spec.kind === 'kube') {
    const sender = spec.spread === 'round-robin' ? perRequest(cluster.urls) : perConnection(cluster.urls, seededRandom(seed));
    return { sender, adminUrls: [], stop: () => sender.close() };
  }
  const proxy = await startProxy(spec, cluster.urls);
  const sender = perRequest(proxy.urls);
  return {
    sender,
    adminUrls: proxy.adminUrls,
    stop: async () => {
      await sender.close();
      await proxy.stop();
    },
  };
}
