/**
 * The overhead scenario's yardstick for the framework alone: fastify + @fastify/http-proxy with no
 * logic at all (no queue, no balancer, no metrics), proxying to one upstream. Run as its own process:
 * `node bare-proxy.js UPSTREAM`; prints "listening on URL". The gap between this row and the gateway
 * is what the gateway's own work costs.
 */
import Fastify from 'fastify';
import httpProxy from '@fastify/http-proxy';

const upstream = process.argv[2];
if (!upstream) {
  process.stderr.write('usage: bare-proxy.js UPSTREAM_URL\n');
  process.exit(2);
}
const app = Fastify({ logger: false });
await app.register(httpProxy, { upstream, http2: false, undici: { connections: 1024, pipelining: 1, keepAliveTimeout: 30_000 } as never });
const url = await app.listen({ host: '127.0.0.1', port: 0 });
process.stdout.write(`listening on ${url}\n`);
process.on('SIGTERM', () => process.exit(0));
