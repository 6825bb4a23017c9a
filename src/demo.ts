/**
 * `npm run demo`: four emulated Rasa pods (three normal, one weak) behind the gateway, with a built-in
 * config and nothing to install. Ports: GATEWAY_PORT (8080) and ADMIN_PORT (9090), or free ones if
 * those are taken.
 */
import { validateConfig } from './config.js';
import { startRasaPod, type RasaPod } from './emulator/rasa-pod.js';
import { Gateway } from './gateway.js';

const jitter = (ms: number) => () => ms * (0.85 + Math.random() * 0.3);

async function main(): Promise<void> {
  const pods: RasaPod[] = [];
  for (const [i, ms] of [300, 300, 300, 900].entries()) {
    pods.push(await startRasaPod({ name: i === 3 ? `rasa-weak-${i}` : `rasa-${i}`, slots: 2, serviceTimeMs: jitter(ms) }));
  }
  const endpoints = pods.map((p) => ({ url: p.url, name: p.name }));
  const port = Number(process.env.GATEWAY_PORT ?? 8080);
  const adminPort = Number(process.env.ADMIN_PORT ?? 9090);
  const build = (p: number, a: number) =>
    validateConfig({
      listen: { host: '127.0.0.1', port: p },
      admin: { host: '127.0.0.1', port: a },
      log: { level: 'warn' },
      shutdown: { drainTimeoutMs: 5000 },
      // One pool: NLU parses and dialog turns share the pods' slots, as they share a Rasa pod's CPU.
      pools: {
        rasa: { endpoints, balancer: 'least-outstanding', slotsPerEndpoint: 2, affinity: 'rasa', queue: { maxLength: 1000, maxWaitMs: 30000 } },
      },
      publicRoutes: ['/conversations/*'],
      routes: [{ prefix: '/', pool: 'rasa' }],
    });
  let gateway = await Gateway.create(build(port, adminPort));
  let urls;
  try {
    urls = await gateway.start();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
    await gateway.shutdown(0);
    process.stdout.write(`ports ${port}/${adminPort} are taken; using free ports instead\n`);
    gateway = await Gateway.create(build(0, 0));
    urls = await gateway.start();
  }
  const { publicUrl, adminUrl } = urls;
  process.stdout.write(
    [
      '',
      'rasa-gateway demo: 4 emulated Rasa pods (3 at ~300 ms, 1 weak at ~900 ms, 2 slots each)',
      ...pods.map((p) => `  pod ${p.name.padEnd(12)} ${p.url}`),
      '',
      `  gateway   ${publicUrl}`,
      `  status    ${adminUrl}/`,
      `  metrics   ${adminUrl}/metrics`,
      `  pools     ${adminUrl}/debug/pools`,
      '',
      'Try:',
      `  curl -s ${publicUrl}/webhooks/rest/webhook -H 'content-type: application/json' -d '{"sender":"alice","message":"hello"}'`,
      `  curl -s ${publicUrl}/model/parse -H 'content-type: application/json' -d '{"text":"hello"}'`,
      `  curl -s ${publicUrl}/conversations/alice/tracker`,
      `  for i in $(seq 50); do curl -s -o /dev/null ${publicUrl}/model/parse -d '{"text":"hi"}' -H 'content-type: application/json' & done; curl -s ${adminUrl}/debug/pools`,
      '',
      'Open the status page and run the loop above a few times: the weak pod gets about a third of a',
      "normal pod's share, because every freed slot takes the head of the central queue.",
      '',
      'Ctrl-C to stop.',
      '',
    ].join('\n'),
  );
  const stop = () => {
    gateway.shutdown(2000).finally(async () => {
      await Promise.all(pods.map((p) => p.close()));
      process.exit(0);
    });
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((err: unknown) => {
  process.stderr.write(`demo failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
