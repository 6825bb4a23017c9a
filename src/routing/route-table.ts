/**
 * Maps a request path to its route: exact paths by hash lookup, then prefixes longest first (the
 * config holds a handful, so the scan is short and allocation-free).
 */
import type { RouteConfig } from '../config.js';

export interface Route {
  readonly config: RouteConfig;
  readonly pool: string;
  readonly methods: ReadonlySet<string> | undefined;
  readonly deadlineMs: number | undefined;
}

export class RouteTable {
  private readonly exact = new Map<string, Route>();
  private readonly prefixes: { prefix: string; route: Route }[] = [];

  constructor(routes: readonly RouteConfig[]) {
    for (const config of routes) {
      const route: Route = {
        config,
        pool: config.pool,
        methods: config.methods ? new Set(config.methods) : undefined,
        deadlineMs: config.deadlineMs,
      };
      if (config.path !== undefined) {
        if (!this.exact.has(config.path)) this.exact.set(config.path, route);
      } else if (config.prefix !== undefined) {
        this.prefixes.push({ prefix: config.prefix, route });
      }
    }
    // Longest prefix wins; the sort is stable, so among equals the first in the config wins.
    this.prefixes.sort((a, b) => b.prefix.length - a.prefix.length);
  }

  /** `path` without the query string. */
  match(path: string): Route | undefined {
    const exact = this.exact.get(path);
    if (exact) return exact;
    for (const { prefix, route } of this.prefixes) {
      if (path.startsWith(prefix)) return route;
    }
    return undefined;
  }
}

/** The path part of a request target, without allocating when there is no query. */
export function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}
