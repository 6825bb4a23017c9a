/**
 * The live status page on the admin listener (never on the public one):
 *
 *   GET /                the page (self-contained HTML, see page.ts)
 *   GET /status.json     one snapshot: pools, pods, rates, percentiles and the sparkline history
 *   GET /status/events   server-sent events: one snapshot per second
 *
 * Why server-sent events rather than polling: one sample feeds every open page the moment it is
 * taken, a page receives each history point once (the first event carries the ring, later ones only
 * the new point), EventSource reconnects by itself, and an open stream tells the sampler someone is
 * watching, so sampling runs exactly while needed. status.json stays for curl and scripts.
 *
 * Nothing here changes state: GET (and HEAD) only; other methods get 405. Sampling starts on the first
 * request to any of these routes and stops a while after the last (see sampler.ts), so an unwatched
 * gateway pays nothing.
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerResponse } from 'node:http';
import type { GatewayMetrics } from '../../metrics/metrics.js';
import type { PoolRuntime } from '../../proxy/pool-runtime.js';
import { statusPageCsp, statusPageHtml } from './page.js';
import { StatusSampler, type StatusSamplerOptions } from './sampler.js';

export interface StatusOptions {
  readonly pools: ReadonlyMap<string, PoolRuntime>;
  readonly metrics: GatewayMetrics;
  /** Sampler tuning (interval, history, window, idle timeout); defaults suit the page. */
  readonly sampler?: Omit<StatusSamplerOptions, 'pools' | 'registry'>;
  /** Open event streams allowed at once (each is one socket on the admin listener). */
  readonly maxStreams?: number;
}

const readOnlyHeaders = {
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
};

export async function statusRoutes(app: FastifyInstance, options: StatusOptions): Promise<void> {
  const sampler = new StatusSampler({ ...options.sampler, pools: options.pools, registry: options.metrics.registry });
  const streams = new Set<ServerResponse>();
  const maxStreams = options.maxStreams ?? 64;

  app.get('/', async (_request, reply) => {
    void sampler.touch(); // the page will ask for data within a second; have a sample ready
    return reply
      .headers({ ...readOnlyHeaders, 'content-type': 'text/html; charset=utf-8', 'content-security-policy': statusPageCsp, 'x-frame-options': 'DENY' })
      .send(statusPageHtml);
  });

  app.get('/status.json', async (_request, reply) => {
    await sampler.touch();
    return reply.headers(readOnlyHeaders).send(sampler.snapshot());
  });

  app.get('/status/events', (request, reply) => {
    if (streams.size >= maxStreams) {
      void reply.code(503).headers(readOnlyHeaders).send({ error: { code: 'TOO_MANY_STREAMS', message: 'too many open status streams' } });
      return;
    }
    const headers = { ...readOnlyHeaders, 'content-type': 'text/event-stream; charset=utf-8', 'x-accel-buffering': 'no' };
    if (request.method === 'HEAD') {
      void reply.headers(headers).send();
      return;
    }
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { ...headers, connection: 'keep-alive' });
    res.write('retry: 2000\n\n');
    streams.add(res);
    // Each point of history goes out once; a reconnect starts over with the whole ring.
    let since: number | undefined;
    let blocked = false;
    res.on('drain', () => {
      blocked = false;
    });
    const unsubscribe = sampler.subscribe(() => {
      if (blocked || res.writableEnded) return; // a slow reader skips snapshots instead of buffering them
      const snapshot = sampler.snapshot(since);
      since = snapshot.seq;
      blocked = !res.write(`data: ${JSON.stringify(snapshot)}\n\n`);
    });
    const done = () => {
      unsubscribe();
      streams.delete(res);
    };
    res.on('close', done); // the client went away, or preClose ended the stream
  });

  const notAllowed = async (_request: unknown, reply: FastifyReply) =>
    reply
      .code(405)
      .header('allow', 'GET, HEAD')
      .send({ error: { code: 'METHOD_NOT_ALLOWED', message: 'the status page is read-only: GET only' } });
  for (const url of ['/', '/status.json', '/status/events']) {
    app.route({ method: ['POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'], url, handler: notAllowed });
  }

  // Open streams would keep the admin listener from closing; end them and stop sampling.
  app.addHook('preClose', (done) => {
    sampler.stop();
    for (const res of streams) res.end();
    streams.clear();
    done();
  });
}
