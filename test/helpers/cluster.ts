/** Shared pieces of the cluster tests: free ports, waiting for a condition, gateway replicas with a cluster section, a cuttable TCP relay. */
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { startGateway, writeConfig, type Started } from './process.js';

export async function freePort(host = '127.0.0.1'): Promise<number> {
  // Below Linux's ephemeral range (32768-60999): a port the OS hands out for listen(0) may be taken
  // by an outgoing connection before the gateway that was given it binds it (EADDRINUSE, seen).
  for (let tries = 0; tries < 50; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (await bindable(host, port)) return port;
  }
  const server = createServer();
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, host, resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function bindable(host: string, port: number): Promise<boolean> {
  const server = createServer();
  const ok = await new Promise<boolean>((resolve) => server.once('error', () => resolve(false)).listen(port, host, () => resolve(true)));
  if (ok) await new Promise<void>((resolve) => server.close(() => resolve()));
  return ok;
}

/** Polls `probe` until it returns a value other than undefined; fails with `what` and the last value seen after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 15_000, everyMs = 25): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export interface ClusterView {
  self: string | null;
  quorum: boolean;
  peers: { url: string; state: string }[];
  pools: Record<string, { scheduler: string | null; vote?: { at: string; held: string[] }; grantsInAdvance?: { lent: number; inHand: number; claimed: number; returned: number } }>;
}

export async function clusterView(adminUrl: string): Promise<ClusterView> {
  const res = await fetch(`${adminUrl}/debug/cluster`);
  if (res.status !== 200) throw new Error(`/debug/cluster answered ${res.status}`);
  return (await res.json()) as ClusterView;
}

export interface ReplicaSpec {
  /** Where the cluster listener binds. */
  readonly host: string;
  readonly port: number;
  /** Defaults to http://host:port. */
  readonly advertise?: string;
  readonly peers: readonly string[];
  readonly pools: readonly string[];
}

/** The config lines every cluster replica of a test shares: ephemeral listeners, quiet logs, a quick drain, the cluster section. */
export function replicaConfigHead(spec: Omit<ReplicaSpec, 'pools'>): string[] {
  return [
    'listen: { host: 127.0.0.1, port: 0 }',
    'admin: { host: 127.0.0.1, port: 0 }',
    'log: { level: warn }',
    'shutdown: { drainTimeoutMs: 100 }',
    'cluster:',
    `  listen: { host: ${spec.host}, port: ${spec.port} }`,
    `  advertise: ${spec.advertise ?? `http://${spec.host}:${spec.port}`}`,
    `  peers: [${spec.peers.join(', ')}]`,
  ];
}

/** A real gateway process whose pools point at a closed port (the cluster does not need pods). */
export function startReplica(spec: ReplicaSpec): Promise<Started> {
  const pools = spec.pools.map((name) => `  ${name}:\n    endpoints: [http://127.0.0.1:9]\n`).join('');
  const routes = spec.pools.map((name, i) => `  - { ${i === 0 ? 'prefix: /' : `path: /${name}`}, pool: ${name} }\n`).join('');
  const file = writeConfig([...replicaConfigHead(spec), 'pools:', pools + 'routes:', routes].join('\n'));
  return startGateway(['--config', file]);
}

/** A TCP relay in front of `target` that the test can cut (every piped connection destroyed, new ones refused) and heal. */
export class Relay {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  private constructor(
    readonly host: string,
    readonly port: number,
    private readonly target: { host: string; port: number },
  ) {}

  static async start(host: string, target: { host: string; port: number }): Promise<Relay> {
    const relay = new Relay(host, await freePort(host), target);
    await relay.heal();
    return relay;
  }

  get url(): string {
    return `http://${this.host}:${this.port}`;
  }

  async heal(): Promise<void> {
    if (this.server) return;
    const server = createServer((client) => {
      const upstream = connect(this.target);
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {
          client.destroy();
          upstream.destroy();
        });
      }
      client.pipe(upstream);
      upstream.pipe(client);
    });
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(this.port, this.host, resolve));
    this.server = server;
  }

  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const s of this.sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
