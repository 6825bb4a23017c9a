/**
 * Where the replica set comes from: a static list (`cluster.peers`), or the EndpointSlices of the
 * gateway's own headless Service (`cluster.kubernetes`), watched with the pools' discovery code
 * (src/discovery/kubernetes.ts: list+watch, restart with backoff, last list kept while the API
 * server is away). Every address in the slices is a peer, whatever its conditions: the chart's
 * cluster Service publishes not-ready addresses, because a replica's readiness (its Rasa pools have
 * pods) says nothing about its membership, and a draining replica still finishes requests that hold
 * remote grants. A replica leaves the set when its pod leaves the slices.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { ClusterConfig } from '../config.js';
import type { KubernetesLogger } from '../kubernetes/client.js';

export interface PeerSource {
  readonly description: string;
  /** Calls `onPeers` with each new set (advertise URLs); resolves once the first was delivered. */
  start(onPeers: (peers: readonly string[]) => void): Promise<void>;
  stop(): void;
}

export function staticPeers(peers: readonly string[]): PeerSource {
  return {
    description: `static(${peers.length})`,
    async start(onPeers) {
      onPeers(peers);
    },
    stop() {},
  };
}

export async function kubernetesPeers(source: NonNullable<ClusterConfig['kubernetes']>, logger: KubernetesLogger, kubeConfig?: KubeConfig): Promise<PeerSource> {
  // Loaded only when used: the Kubernetes client takes about a second to import.
  const [{ KubernetesDiscovery }, { loadDefaultKubeConfig }, k8s] = await Promise.all([
    import('../discovery/kubernetes.js'),
    import('../kubernetes/client.js'),
    import('@kubernetes/client-node'),
  ]);
  const discovery = new KubernetesDiscovery(kubeConfig ?? loadDefaultKubeConfig(new k8s.KubeConfig()), source, 'cluster', { logger });
  return {
    description: discovery.description,
    start: (onPeers) => discovery.start((endpoints) => onPeers(endpoints.map((e) => e.origin))),
    stop: () => discovery.stop(),
  };
}
