/**
 * The overhead scenario's upstream: a tiny node:http server that reads the request and answers 200
 * with a Rasa-shaped body at once. Run as its own process (`node trivial-upstream.js`) so it can be
 * pinned beside the load generator, away from the proxy under test; prints "listening on PORT".
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const body = JSON.stringify([{ recipient_id: 'bench', text: 'ok' }]);
const server = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-rasa-pod': 'trivial' });
    res.end(body);
  });
});
server.keepAliveTimeout = 65_000;
server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  process.stdout.write(`listening on ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
