/**
 * The far side of the `cluster` bench, in its own process so it has its own core: a cluster member
 * that answers every `adm.bench.grant` with an `adm.bench.granted` carrying the same id (what a
 * scheduler does for a grant it can give at once, minus the queue), and `adm.bench.cpu` with its
 * process CPU time. Usage: node cluster-scheduler.js <port> <peer url>; prints "ready" when listening.
 */
import { createCluster } from '../../src/cluster/cluster.js';

const [portText, peer] = process.argv.slice(2);
const port = Number(portText);
const self = `http://127.0.0.1:${port}`;
const cluster = await createCluster({ listen: { host: '127.0.0.1', port }, advertise: self, peers: [self, peer!], heartbeatMs: 250, deadAfterMs: 2000 });
cluster.on('adm.bench.grant', (from, m) => {
  cluster.send(from, { t: 'adm.bench.granted', id: m.id, pod: 'http://10.0.0.5:5005' });
});
cluster.on('adm.bench.cpu', (from, m) => {
  const { user, system } = process.cpuUsage();
  cluster.send(from, { t: 'adm.bench.cpu', id: m.id, cpuMs: (user + system) / 1000 });
});
await cluster.start(['bench']);
process.stdout.write('ready\n');
process.on('SIGTERM', () => void cluster.stop().then(() => process.exit(0)));
