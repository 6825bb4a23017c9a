/**
 * What every part of the gateway that talks to the Kubernetes API shares: where the credentials come
 * from, how an API error is told in one log line, and a bound on calls that never answer. Discovery
 * (reads EndpointSlices), the Lease election and the pod-deletion-cost writer all use it, so the three
 * cannot drift apart on which kubeconfig they pick or how much of a 2 kB error body ends up in the log.
 *
 * Only types come from @kubernetes/client-node at import time: the library takes about a second to
 * load and most runs (tests, the demo, static pools) never need it, so `connector()` loads it on
 * first use. Callers that already hold the library (discovery) pass their own `KubeConfig` in.
 */
import { existsSync } from 'node:fs';
import type { KubeConfig } from '@kubernetes/client-node';

export type KubernetesLibrary = typeof import('@kubernetes/client-node');

/** The library and the credentials to use it with. */
export interface KubernetesConnection {
  readonly k8s: KubernetesLibrary;
  readonly kubeConfig: KubeConfig;
}

/** Pino-compatible (fastify's `app.log.child(...)` fits); `consoleLogger` is the fallback. */
export interface KubernetesLogger {
  warn(details: object, message: string): void;
  info?(details: object, message: string): void;
}

export interface DescribedError {
  readonly status?: number;
  readonly code?: string;
  readonly error: string;
}

const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

export function consoleLogger(prefix: string): KubernetesLogger {
  return {
    warn: (details, message) => console.warn(`[${prefix}] ${message}`, details),
    info: (details, message) => console.info(`[${prefix}] ${message}`, details),
  };
}

/**
 * Credentials into `kc` (a fresh KubeConfig): `KUBECONFIG` when set; else the in-cluster service
 * account when running in a pod; else the default kubeconfig (~/.kube/config), as
 * `KubeConfig.loadFromDefault()` resolves it.
 */
export function loadDefaultKubeConfig(kc: KubeConfig, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  if (!env.KUBECONFIG && env.KUBERNETES_SERVICE_HOST && existsSync(SERVICE_ACCOUNT_TOKEN)) kc.loadFromCluster();
  else kc.loadFromDefault();
  return kc;
}

/**
 * Loads the library and the credentials (`kubeConfig`, else the defaults above) on first call and
 * shares them with every later one; after a failure the next call tries again, since a missing
 * kubeconfig or service-account token may appear later.
 */
export function connector(kubeConfig?: KubeConfig): () => Promise<KubernetesConnection> {
  let pending: Promise<KubernetesConnection> | undefined;
  return () => {
    if (!pending) {
      pending = import('@kubernetes/client-node').then((k8s) => ({ k8s, kubeConfig: kubeConfig ?? loadDefaultKubeConfig(new k8s.KubeConfig()) }));
      pending.catch(() => {
        pending = undefined;
      });
    }
    return pending;
  };
}

/** The HTTP status of a failed API call (client-node's ApiException puts it in `code`). */
export function httpStatus(err: unknown): number | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

/** Short, log-friendly description of a client error (ApiException messages carry whole bodies). */
export function describeError(err: unknown): DescribedError {
  const e = err as { code?: unknown; statusCode?: unknown; message?: unknown; body?: unknown } | undefined;
  const status = typeof e?.code === 'number' ? e.code : typeof e?.statusCode === 'number' ? e.statusCode : undefined;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  let message = typeof e?.message === 'string' ? e.message : String(err);
  const body = e?.body as { message?: unknown } | string | undefined;
  if (body && typeof body === 'object' && typeof body.message === 'string') message = body.message;
  // ApiException: "HTTP-Code: 401\nMessage: Unauthorized\nBody: ...\nHeaders: ..."
  const apiMessage = /^HTTP-Code: (\d+)\nMessage: (.*)$/m.exec(message);
  message = apiMessage ? `HTTP ${apiMessage[1]} ${apiMessage[2]}` : message.split('\n')[0]!;
  message = message.slice(0, 300);
  return { ...(status !== undefined ? { status } : {}), ...(code !== undefined ? { code } : {}), error: message };
}

/**
 * Races an API call against `ms`: the client sets no timeout and its calls cannot be aborted, so an
 * API server that accepts the connection and never answers would otherwise stall the caller for good.
 * The timer is unref'd: a pending timeout alone must not keep a stopped process alive.
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, message = `no answer within ${ms} ms`): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
    timer.unref();
  });
  promise.catch(() => undefined);
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
