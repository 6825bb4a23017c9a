/**
 * `npm run bench:sticky`: what conversation stickiness costs on the webhook route. One gateway process
 * pinned to core 1 in front of a trivial upstream, autocannon on 32 connections POSTing
 * `/webhooks/rest/webhook` with 5,000 distinct senders; runs alternate between a plain pool and the
 * same pool with `affinity: rasa`, so machine noise hits both alike. Prints requests/s per run, the
 * medians and their ratio.
 */
import autocannon from 'autocannon';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const REPEATS = Number(process.env.REPEATS ?? 5);
const SECONDS = Number(process.env.SECONDS ?? 6);

async function upstream(): Promise<number> {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json', 'content-length': 2 }).end('[]'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  server.unref();
  return (server.address() as { port: number }).port;
}

async function gateway(upstreamPort: number, sticky: boolean): Promise<{ child: ChildProcess; url: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'sticky-bench-'));
  const file = join(dir, 'gateway.yaml');
  writeFileSync(
    file,
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'log: { level: warn }',
      'pools:',
      '  p:',
      `    endpoints: [http://127.0.0.1:${upstreamPort}]`,
      '    slotsPerEndpoint: 256',
      ...(sticky ? ['    affinity: rasa'] : []),
      '',
    ].join('\n'),
  );
  const child = spawn('taskset', ['-c', '1', process.execPath, 'dist/src/main.js', '--config', file], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => child.stdout!.on('data', (d: Buffer) => {
    const m = /listening on (\S+)/.exec(String(d));
    if (m) resolve(m[1]!);
  }));
  return { child, url };
}

async function load(url: string): Promise<number> {
  let i = 0;
  const result = await autocannon({
    url,
    connections: 32,
    duration: SECONDS,
    requests: [
      {
        method: 'POST',
        path: '/webhooks/rest/webhook',
        headers: { 'content-type': 'application/json' },
        setupRequest: (req: object) => ({ ...req, body: JSON.stringify({ sender: `user-${i++ % 5000}`, message: 'hello' }) }),
      },
    ],
  } as autocannon.Options);
  return result.requests.average;
}

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]!;

async function main(): Promise<void> {
  const port = await upstream();
  const runs: Record<'plain' | 'sticky', number[]> = { plain: [], sticky: [] };
  for (let r = 0; r < REPEATS; r++) {
    for (const kind of ['plain', 'sticky'] as const) {
      const gw = await gateway(port, kind === 'sticky');
      await load(gw.url); // warm-up: JIT, keep-alive connections, the sticky table filled
      const rps = await load(gw.url);
      runs[kind].push(rps);
      gw.child.kill('SIGKILL');
      process.stdout.write(`run ${r + 1}/${REPEATS} ${kind.padEnd(6)} ${rps.toFixed(0)} req/s\n`);
    }
  }
  const plain = median(runs.plain);
  const sticky = median(runs.sticky);
  process.stdout.write(`\n| pool | median req/s |\n|---|---:|\n| plain | ${plain.toFixed(0)} |\n| affinity: rasa | ${sticky.toFixed(0)} |\n\nsticky / plain: ${(sticky / plain).toFixed(3)}x\n`);
  process.exit(0);
}

void main();
