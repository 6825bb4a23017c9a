/** Chooses a pool's discovery source from its config. */
import type { PoolConfig } from '../config.js';
import { StaticDiscovery } from './static.js';
import type { Discovery } from './types.js';

export interface DiscoveryLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
}

export type DiscoveryFactory = (pool: PoolConfig, log?: DiscoveryLogger) => Promise<Discovery>;

export const defaultDiscoveryFactory: DiscoveryFactory = async (pool, log) => {
  if (pool.endpoints) return new StaticDiscovery(pool.endpoints);
  if (pool.kubernetes) {
    // Loaded only when used: the Kubernetes client is heavy and most tests and demos never need it.
    const { KubernetesDiscovery } = await import('./kubernetes.js');
    return KubernetesDiscovery.fromDefaultCredentials(pool.kubernetes, pool.name, log ? { logger: log } : {});
  }
  throw new Error(`pool ${pool.name} has no endpoint source`);
};
