/**
 * The proxy's side of the parse cache: decide, then answer from the cache, join an identical
 * request in flight, or lead a new one; a bypass goes down the normal proxy path.
 */
import { GatewayError } from '../errors.js';
import type { Answer } from '../cache/parse-cache.js';
import { guard, type RequestContext } from './request-context.js';

const EMPTY = Buffer.alloc(0);

function header(ctx: RequestContext, name: string): string | undefined {
  const v = ctx.request.headers[name];
  return typeof v === 'string' ? v : undefined;
}

function answer(ctx: RequestContext, a: Answer, result: 'hit' | 'miss' | 'coalesced'): void {
  if (ctx.closed) return;
  ctx.reply.code(a.status).header('content-type', a.contentType).header('x-gateway-cache', result).send(a.body);
}

/** Resolves false when the request must bypass the cache (then the caller proxies it as usual). */
export async function serveFromParseCache(ctx: RequestContext): Promise<boolean> {
  const { cache, metrics } = ctx.runtime;
  if (!cache) return false;
  const req = {
    url: ctx.request.url,
    cacheControl: header(ctx, 'cache-control'),
    authorization: header(ctx, 'authorization'),
    contentType: header(ctx, 'content-type'),
    body: ctx.body ?? EMPTY,
    deadlineMs: ctx.deadlineMs,
  };
  const decision = await cache.decide(req);
  if (ctx.closed) return true; // the client left while its credentials were checked
  if ('bypass' in decision) {
    metrics.cache('bypass');
    return false;
  }
  const hit = cache.lookup(decision.key);
  if (hit) {
    metrics.cache('hit');
    answer(ctx, hit, 'hit');
    return true;
  }
  const flight = cache.fetch(decision.key, req);
  const result = flight.leader ? 'miss' : 'coalesced';
  metrics.cache(result);
  flight.answer.then(
    (a) => guard(ctx, 'cache', (c) => answer(c, a, result)),
    (err: unknown) => ctx.fail(err instanceof GatewayError ? err : new GatewayError('UPSTREAM_FAILED')),
  );
  return true;
}
