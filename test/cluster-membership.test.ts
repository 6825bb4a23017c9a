/**
 * Cluster membership across real gateway processes over loopback TCP (static peers): the replicas
 * agree on one scheduler per pool; a SIGKILLed scheduler turns suspect then dead on the survivors,
 * which agree on a new one; restarted, it rejoins. A replica cut off behind a relay (the process
 * keeps running) reports no quorum and names no scheduler, while the two others elect without it.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { rendezvousWinner } from '../src/cluster/rendezvous.js';
import type { Started } from './helpers/process.js';
import { clusterView, freePort, Relay, startReplica, waitFor, type ClusterView, type ReplicaSpec } from './helpers/cluster.js';

const pools = ['nlu', 'dialog', 'chat', 'faq'];
const running = new Set<Started>();

after(() => {
  for (const r of running) r.child.kill('SIGKILL');
});

async function start(spec: ReplicaSpec): Promise<Started> {
  const started = await startReplica(spec);
  running.add(started);
  void started.exited.then(() => running.delete(started));
  return started;
}

/** The views of `replicas` once each says: quorum, every peer in `alive` alive, and all the same scheduler per pool among `alive`. */
async function agreement(replicas: readonly Started[], alive: readonly string[]): Promise<Record<string, string>> {
  return waitFor(`agreement among ${alive.join(', ')}`, async () => {
    const views = await Promise.all(replicas.map((r) => clusterView(r.adminUrl)));
    if (!views.every((v) => v.quorum && alive.every((url) => v.peers.some((p) => p.url === url && p.state === 'alive')))) return undefined;
    const first = views[0]!.pools;
    for (const pool of pools) {
      const s = first[pool]?.scheduler;
      if (!s || !alive.includes(s) || views.some((v) => v.pools[pool]?.scheduler !== s)) return undefined;
    }
    return Object.fromEntries(pools.map((p) => [p, first[p]!.scheduler!]));
  });
}

function stateOf(view: ClusterView, url: string): string | undefined {
  return view.peers.find((p) => p.url === url)?.state;
}

test('three replicas agree per pool; the killed scheduler turns suspect, then dead, and is replaced; restarted, it rejoins', async () => {
  const ports = [await freePort(), await freePort(), await freePort()];
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const specs = ports.map((port) => ({ host: '127.0.0.1', port, peers: urls, pools }));
  const replicas = await Promise.all(specs.map(start));

  const first = await agreement(replicas, urls);
  const selfs = await Promise.all(replicas.map(async (r) => (await clusterView(r.adminUrl)).self));
  assert.deepEqual(selfs, urls);
  // Each pool's scheduler is its rendezvous winner among the replicas, so pools spread over them.
  for (const pool of pools) assert.equal(first[pool], rendezvousWinner(pool, urls), pool);

  const victimUrl = first.dialog!;
  const victim = replicas[urls.indexOf(victimUrl)]!;
  const survivors = replicas.filter((r) => r !== victim);
  victim.child.kill('SIGKILL');
  await victim.exited;

  // Suspect at once (its sockets closed), dead after deadAfterMs: each survivor shows both, in order.
  await Promise.all(
    survivors.map(async (r) => {
      const seen: string[] = [];
      await waitFor('suspect then dead', async () => {
        const state = stateOf(await clusterView(r.adminUrl), victimUrl);
        if (state && seen.at(-1) !== state) seen.push(state);
        return state === 'dead' ? true : undefined;
      }, 15_000, 20);
      assert.deepEqual(seen.filter((s) => s !== 'alive'), ['suspect', 'dead'], `states seen: ${seen.join(' -> ')}`);
    }),
  );
  const survivorUrls = urls.filter((u) => u !== victimUrl);
  const second = await agreement(survivors, survivorUrls);
  assert.notEqual(second.dialog, victimUrl);
  for (const pool of pools) if (first[pool] !== victimUrl) assert.equal(second[pool], first[pool], `${pool} did not move: its scheduler lives`);

  const restarted = await start(specs[urls.indexOf(victimUrl)]!);
  const third = await agreement([...survivors, restarted], urls);
  assert.deepEqual(third, first, 'with the same live set, the same schedulers');
});

test('a replica cut off behind a relay loses quorum and names no scheduler; the others elect without it; healed, it rejoins', async () => {
  // The cut replica advertises its relay on 127.0.0.2, which sorts above 127.0.0.1, so the others dial it through the relay.
  const [a, b, cPort] = [await freePort(), await freePort(), await freePort('127.0.0.3')];
  const relay = await Relay.start('127.0.0.2', { host: '127.0.0.3', port: cPort });
  const urls = [`http://127.0.0.1:${a}`, `http://127.0.0.1:${b}`, relay.url];
  const replicas = await Promise.all([
    start({ host: '127.0.0.1', port: a, peers: urls, pools }),
    start({ host: '127.0.0.1', port: b, peers: urls, pools }),
    start({ host: '127.0.0.3', port: cPort, advertise: relay.url, peers: urls, pools }),
  ]);
  const cut = replicas[2]!;
  await agreement(replicas, urls);

  await relay.cut();
  await waitFor('the cut replica to report no quorum and no scheduler', async () => {
    const v = await clusterView(cut.adminUrl);
    return !v.quorum && pools.every((p) => v.pools[p]?.scheduler === null) ? true : undefined;
  });
  const majority = await waitFor('the majority to elect without the cut replica', async () => {
    const views = await Promise.all(replicas.slice(0, 2).map((r) => clusterView(r.adminUrl)));
    if (!views.every((v) => v.quorum && stateOf(v, relay.url) !== 'alive')) return undefined;
    const schedulers = pools.map((p) => views[0]!.pools[p]?.scheduler);
    if (schedulers.some((s) => !s || s === relay.url) || pools.some((p, i) => views[1]!.pools[p]?.scheduler !== schedulers[i])) return undefined;
    return schedulers;
  });
  assert.ok(majority.every((s) => s !== relay.url));

  await relay.heal();
  await agreement(replicas, urls);
  await relay.cut();
});
