/**
 * Test harness: real emulated Rasa pods and a real gateway on loopback ephemeral ports. Everything a
 * test starts is registered for `stopAll`, so a failing test still frees its ports.
 */
import { validateConfig, type GatewayConfig } from '../../src/config.js';
import { startRasaPod, type RasaPod, type RasaPodOptions } from '../../src/emulator/rasa-pod.js';
import { Gateway, type GatewayDeps } from '../../src/gateway.js';

export interface Running {
  gateway: Gateway;
  publicUrl: string;
  adminUrl: string;
}

export class Harness {
  readonly pods: RasaPod[] = [];
  readonly gateways: Gateway[] = [];

  async pod(options: Partial<RasaPodOptions> & { name?: string } = {}): Promise<RasaPod> {
    const pod = await startRasaPod({ name: options.name ?? `pod-${this.pods.length}`, slots: 1, serviceTimeMs: 20, ...options });
    this.pods.push(pod);
    return pod;
  }

  async podSet(count: number, options: Partial<RasaPodOptions> = {}): Promise<RasaPod[]> {
    const out: RasaPod[] = [];
    for (let i = 0; i < count; i++) out.push(await this.pod({ ...options, name: `${options.name ?? 'pod'}-${i}` }));
    return out;
  }

  /** Starts a gateway; `doc` is a config document as YAML would give it, listeners default to ephemeral ports. */
  async gateway(doc: Record<string, unknown>, deps: GatewayDeps = {}): Promise<Running> {
    const config: GatewayConfig = validateConfig({
      listen: { host: '127.0.0.1', port: 0 },
      admin: { host: '127.0.0.1', port: 0 },
      log: { level: 'silent' },
      ...doc,
    });
    const gateway = await Gateway.create(config, { defaultMetrics: false, ...deps });
    this.gateways.push(gateway);
    const { publicUrl, adminUrl } = await gateway.start();
    return { gateway, publicUrl, adminUrl };
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.gateways.splice(0).map((g) => g.shutdown(0)));
    await Promise.all(this.pods.splice(0).map((p) => p.close()));
  }
}

export interface JsonResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export async function post<T = unknown>(url: string, body: unknown, init: RequestInit = {}): Promise<JsonResponse<T>> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(init.headers as Record<string, string> | undefined) },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    ...(init.signal ? { signal: init.signal } : {}),
  });
  return read<T>(res);
}

export async function get<T = unknown>(url: string, init: RequestInit = {}): Promise<JsonResponse<T>> {
  return read<T>(await fetch(url, init));
}

async function read<T>(res: Response): Promise<JsonResponse<T>> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, headers: res.headers, body: body as T, text };
}

/** Polls `check` until it returns a truthy value; fails with `what` after `timeoutMs`. */
export async function waitFor<T>(what: string, check: () => T | Promise<T>, timeoutMs = 10_000): Promise<NonNullable<T>> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value) return value as NonNullable<T>;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface PoolView {
  name: string;
  queueLength: number;
  inflight: number;
  endpoints: { url: string; pod: string; state: string; inflight: number; slots: number | string; sessions: number }[];
}

export async function debugPools(adminUrl: string): Promise<PoolView[]> {
  const res = await get<{ pools: PoolView[] }>(`${adminUrl}/debug/pools`);
  return res.body.pools;
}

/** Waits until every pool's in-flight count and queue are back to zero (no leaked slot or waiter). */
export async function settled(adminUrl: string): Promise<PoolView[]> {
  return waitFor('in-flight and queue back to zero', async () => {
    const pools = await debugPools(adminUrl);
    return pools.every((p) => p.inflight === 0 && p.queueLength === 0 && p.endpoints.every((e) => e.inflight === 0)) ? pools : undefined;
  });
}

/** Sum of one metric's samples matching every given label, from a Prometheus text scrape. */
export function metricValue(scrape: string, name: string, labels: Record<string, string> = {}): number | undefined {
  let found: number | undefined;
  for (const line of scrape.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([^}]*)\})? (.+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = Object.fromEntries([...(m[3] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    if (Object.entries(labels).every(([k, v]) => got[k] === v)) found = (found ?? 0) + Number(m[4]);
  }
  return found;
}
