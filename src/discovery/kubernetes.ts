/** Placeholder replaced by the EndpointSlice informer (issue 4). */
import type { KubernetesSource } from '../config.js';
import type { Discovery } from './types.js';

export class KubernetesDiscovery {
  static fromDefaultCredentials(_source: KubernetesSource, _pool: string): Discovery {
    throw new Error('Kubernetes discovery is not built yet');
  }
}
