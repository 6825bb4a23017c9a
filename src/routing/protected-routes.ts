/**
 * Rasa routes that change or reveal state, refused on the public listener unless allowed. The
 * official chart starts Rasa with a JWT secret that defaults to a known constant, so anyone could mint
 * an admin token for them; they belong on the internal listener (in-cluster callers, the action
 * server, back office). `/model/parse` and `/model/predict` stay public: serving them is the NLU
 * service's job, and Rasa's own token still guards them.
 */
export function isProtectedRasaRoute(path: string): boolean {
  if (path === '/model/parse' || path === '/model/predict') return false;
  return path === '/model' || path.startsWith('/model/') || path.startsWith('/conversations/') || path === '/status' || path === '/domain';
}

/** Operator allowances: exact paths, or prefixes written with a trailing `*`. */
export class PublicAllowList {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];

  constructor(routes: readonly string[]) {
    for (const r of routes) {
      if (r.endsWith('*')) this.prefixes.push(r.slice(0, -1));
      else this.exact.add(r);
    }
  }

  allows(path: string): boolean {
    return this.exact.has(path) || this.prefixes.some((p) => path.startsWith(p));
  }
}
