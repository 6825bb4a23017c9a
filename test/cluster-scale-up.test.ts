/**
 * Stickiness across replicas after a Rasa scale-up (issue 17): three real gateway processes with the
 * cluster on discover their pods from the project's list+watch API server. Conversations start while
 * one pod exists; two more join; the next turns of those conversations, sent through the replicas that
 * never saw them, still reach the pod that holds their trackers (the scheduler's sticky table is on
 * every replica), while new conversations spread over the new pods.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startRasaPod, type RasaPod } from '../src/emulator/rasa-pod.js';
import { clusterView, freePort, replicaConfigHead, waitFor } from './helpers/cluster.js';
import { FakeApiServer, podSlice } from './helpers/fake-apiserver.js';
import { debugPools, post } from './helpers/harness.js';
import { startGateway, writeConfig, type Started } from './helpers/process.js';

const cleanup: (() => Promise<void> | void)[] = [];
after(async () => {
  for (const c of cleanup.reverse()) await c();
});

function kubeconfigFor(fake: FakeApiServer): string {
  const file = join(mkdtempSync(join(tmpdir(), 'kubeconfig-')), 'config');
  writeFileSync(file, fake.kubeconfigYaml());
  return file;
}

test('after a scale-up, every conversation keeps its pod through replicas that never saw it', async () => {
  const fake = await FakeApiServer.start();
  cleanup.push(() => fake.close());
  const pods: RasaPod[] = [];
  for (const name of ['first', 'second', 'third']) {
    const pod = await startRasaPod({ name, slots: 4, serviceTimeMs: 5 });
    pods.push(pod);
    cleanup.push(() => pod.close());
  }
  fake.apply(podSlice(pods[0]!));

  // The replicas are child processes: they read the fake API server's credentials from KUBECONFIG.
  process.env.KUBECONFIG = kubeconfigFor(fake);
  const ports = await Promise.all([0, 1, 2].map(() => freePort()));
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const replicas: Started[] = [];
  for (let i = 0; i < 3; i++) {
    const file = writeConfig(
      [
        ...replicaConfigHead({ host: '127.0.0.1', port: ports[i] as number, advertise: urls[i] as string, peers: urls }),
        'pools:',
        '  rasa:',
        '    kubernetes: { namespace: rasa, service: rasa, port: http }',
        '    slotsPerEndpoint: 4',
        '    affinity: rasa',
        '    slowStartMs: 0',
      ].join('\n'),
    );
    const started = await startGateway(['--config', file]);
    replicas.push(started);
    cleanup.push(() => void started.child.kill('SIGKILL'));
  }
  await waitFor('one scheduler, agreed', async () => {
    const views = await Promise.all(replicas.map((r) => clusterView(r.adminUrl)));
    const s = new Set(views.map((v) => (v.quorum ? v.pools.rasa?.scheduler : undefined)));
    return s.size === 1 && !s.has(undefined) && !s.has(null) ? true : undefined;
  });
  const everyReplicaSees = (n: number) =>
    waitFor(`every replica sees ${n} pods`, async () => {
      const views = await Promise.all(replicas.map((r) => debugPools(r.adminUrl)));
      return views.every((v) => v[0]!.endpoints.filter((e) => e.state === 'ready').length === n) ? true : undefined;
    });
  await everyReplicaSees(1);

  // Conversations begin through replica 0 only, while one pod exists.
  const senders = Array.from({ length: 12 }, (_, i) => `early-${i}`);
  for (const sender of senders) {
    const res = await post(`${replicas[0]!.publicUrl}/webhooks/rest/webhook`, { sender, message: 'hello' });
    assert.equal(res.headers.get('x-rasa-pod'), 'first');
  }

  // Rasa scales up.
  fake.apply(podSlice(pods[1]!));
  fake.apply(podSlice(pods[2]!));
  await everyReplicaSees(3);

  // Their next turns through replicas 1 and 2, which never served them: still on the first pod.
  for (const [i, sender] of senders.entries()) {
    const res = await post(`${replicas[1 + (i % 2)]!.publicUrl}/webhooks/rest/webhook`, { sender, message: 'and again' });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('x-rasa-pod'), 'first', `${sender} stayed where its tracker is`);
  }
  for (const sender of senders) assert.equal(pods[0]!.trackers.get(sender)?.filter((e) => e.event === 'user').length, 2, sender);

  // New conversations use the new pods too.
  const fresh = await Promise.all(Array.from({ length: 24 }, (_, i) => post(`${replicas[i % 3]!.publicUrl}/webhooks/rest/webhook`, { sender: `late-${i}`, message: 'hi' })));
  const used = new Set(fresh.map((r) => r.headers.get('x-rasa-pod')));
  assert.ok(used.has('second') || used.has('third'), `new conversations reached ${[...used].join(', ')}`);
});
