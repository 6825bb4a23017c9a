/** Discovery from a fixed list of URLs: for running outside a cluster, the demo and tests. */
import type { Discovery, EndpointInfo, EndpointListener } from './types.js';

export function staticEndpoint(url: string): EndpointInfo {
  const origin = new URL(url).origin;
  return { key: origin, origin, pod: new URL(url).host, ready: true, serving: true, terminating: false };
}

export class StaticDiscovery implements Discovery {
  readonly description: string;
  private readonly endpoints: readonly EndpointInfo[];

  constructor(urls: readonly string[]) {
    this.endpoints = urls.map(staticEndpoint);
    this.description = `static(${urls.length})`;
  }

  async start(onUpdate: EndpointListener): Promise<void> {
    onUpdate(this.endpoints);
  }

  stop(): void {}
}
