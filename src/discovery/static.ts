/** Discovery from a fixed list of URLs: for running outside a cluster, the demo and tests. */
import type { StaticEndpointConfig } from '../config.js';
import type { Discovery, EndpointInfo, EndpointListener } from './types.js';

export function staticEndpoint(endpoint: StaticEndpointConfig): EndpointInfo {
  const url = new URL(endpoint.url);
  return {
    key: url.origin,
    origin: url.origin,
    pod: endpoint.name ?? url.host,
    ...(endpoint.zone ? { zone: endpoint.zone } : {}),
    ready: true,
    serving: true,
    terminating: false,
  };
}

export class StaticDiscovery implements Discovery {
  readonly description: string;
  private readonly endpoints: readonly EndpointInfo[];

  constructor(endpoints: readonly StaticEndpointConfig[]) {
    this.endpoints = endpoints.map(staticEndpoint);
    this.description = `static(${endpoints.length})`;
  }

  async start(onUpdate: EndpointListener): Promise<void> {
    onUpdate(this.endpoints);
  }

  stop(): void {}
}
