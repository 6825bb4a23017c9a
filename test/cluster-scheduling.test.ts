/**
 * One central queue across gateway replicas (issue 17), checked from outside: three real gateway
 * processes with the cluster on (static peers) in front of emulated Rasa pods that record their peak
 * concurrency; clients spread over the replicas. No pod runs more than its slots; every turn of a
 * conversation reaches one pod through any replica, one at a time cluster-wide; with the scheduler
 * replica SIGKILLed mid-burst, every request sent to the survivors is answered 200.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type { RasaPod } from '../src/emulator/rasa-pod.js';
import { clusterView, freePort, Relay, replicaConfigHead, waitFor } from './helpers/cluster.js';
import { Harness, metricValue, post } from './helpers/harness.js';
import { startGateway, writeConfig, type Started } from './helpers/process.js';

const h = new Harness();
const replicas: Started[] = [];
after(async () => {
  for (const r of replicas) r.child.kill('SIGKILL');
  await h.stopAll();
});

interface Replica {
  readonly url: string;
  readonly started: Started;
}

interface Member {
  readonly host: string;
  readonly port: number;
  /** How the others reach it (a relay in front of it, for a partition); default http://host:port. */
  readonly advertise?: string;
}

async function startCluster(pods: readonly RasaPod[], count: number, slots: number, given?: readonly Member[]): Promise<Replica[]> {
  const members: readonly Member[] = given ?? (await Promise.all(Array.from({ length: count }, async () => ({ host: '127.0.0.1', port: await freePort() }))));
  const urls = members.map((m) => m.advertise ?? `http://${m.host}:${m.port}`);
  const out: Replica[] = [];
  for (let i = 0; i < members.length; i++) {
    const file = writeConfig(
      [
        ...replicaConfigHead({ ...members[i]!, advertise: urls[i] as string, peers: urls }),
        'pools:',
        '  rasa:',
        `    endpoints: [${pods.map((p) => p.url).join(', ')}]`,
        `    slotsPerEndpoint: ${slots}`,
        '    affinity: rasa',
        '    slowStartMs: 0',
        '    queue: { maxLength: 10000, maxWaitMs: 60000 }',
      ].join('\n'),
    );
    const started = await startGateway(['--config', file]);
    replicas.push(started);
    out.push({ url: urls[i] as string, started });
  }
  await waitFor('the replicas agree on the scheduler', async () => {
    const views = await Promise.all(out.map((r) => clusterView(r.started.adminUrl).catch(() => undefined)));
    const schedulers = new Set(views.map((v) => (v?.quorum && v.peers.every((p) => p.state === 'alive') ? v.pools.rasa?.scheduler : undefined)));
    return schedulers.size === 1 && !schedulers.has(undefined) && !schedulers.has(null) ? true : undefined;
  });
  return out;
}

let pods: RasaPod[] = [];
let cluster: Replica[] = [];

before(async () => {
  pods = await h.podSet(4, { name: 'cq', slots: 2, serviceTimeMs: 120 });
  cluster = await startCluster(pods, 3, 2);
});

test('three replicas share one queue: no pod ever runs more than its slots, every request answered', async () => {
  // Every replica's vote is with the elected scheduler, which holds the other two.
  await waitFor('every vote with the scheduler', async () => {
    const views = await Promise.all(cluster.map((r) => clusterView(r.started.adminUrl)));
    const scheduler = views[0]!.pools.rasa!.scheduler;
    const holder = views.find((v) => v.self === scheduler);
    const others = cluster.map((r) => r.url).filter((u) => u !== scheduler).sort();
    const together = views.every((v) => v.pools.rasa?.vote?.at === scheduler) && JSON.stringify([...(holder?.pools.rasa?.vote?.held ?? [])].sort()) === JSON.stringify(others);
    return together ? true : undefined;
  });
  for (const p of pods) p.maxHeld = 0;
  const results = await Promise.all(
    Array.from({ length: 90 }, (_, i) => post(`${cluster[i % 3]!.started.publicUrl}/model/parse`, { text: `burst ${i}` })),
  );
  assert.deepEqual(
    results.map((r) => r.status),
    results.map(() => 200),
  );
  for (const p of pods) assert.ok(p.maxHeld <= 2, `${p.name} held ${p.maxHeld} requests at once with 2 slots`);
  assert.ok(pods.every((p) => p.maxHeld === 2), `every pod was used to its slots: ${pods.map((p) => p.maxHeld).join(',')}`);
  // Each replica reports its own clients' requests once: the cluster-wide sums are zero again.
  for (const r of cluster) {
    const scrape = await (await fetch(`${r.started.adminUrl}/metrics`)).text();
    assert.equal(metricValue(scrape, 'gateway_inflight_requests', { pool: 'rasa' }), 0);
    assert.equal(metricValue(scrape, 'gateway_queue_length', { pool: 'rasa' }), 0);
  }
});

test('a conversation stays on one pod and runs one turn at a time, whichever replica each turn comes through', async () => {
  for (const p of pods) p.maxConcurrentPerConversation = 0;
  const senders = Array.from({ length: 12 }, (_, i) => `user-${i}`);
  // Every turn at once, each through another replica than the last.
  const turns = senders.flatMap((sender, s) =>
    [0, 1, 2].map((turn) => ({ sender, at: cluster[(s + turn) % 3]!, body: { sender, message: `turn ${turn}` } })),
  );
  const answers = await Promise.all(turns.map(async (t) => ({ sender: t.sender, res: await post(`${t.at.started.publicUrl}/webhooks/rest/webhook`, t.body) })));
  const podsOf = new Map<string, Set<string>>();
  for (const { sender, res } of answers) {
    assert.equal(res.status, 200, res.text);
    const set = podsOf.get(sender) ?? new Set<string>();
    set.add(res.headers.get('x-rasa-pod') ?? '?');
    podsOf.set(sender, set);
  }
  for (const [sender, set] of podsOf) assert.equal(set.size, 1, `${sender} reached ${[...set].join(', ')}`);
  for (const p of pods) assert.ok(p.maxConcurrentPerConversation <= 1, `${p.name} ran ${p.maxConcurrentPerConversation} turns of one conversation at once`);
  // Its tracker on that pod holds every turn, in one place.
  for (const sender of senders) {
    const home = pods.find((p) => p.name === [...podsOf.get(sender)!][0])!;
    assert.equal(home.trackers.get(sender)?.filter((e) => e.event === 'user').length, 3, sender);
  }
});

test('clients that leave while their request waits at the scheduler or runs: every slot and count is given back', async () => {
  const view = await clusterView(cluster[0]!.started.adminUrl);
  const scheduler = view.pools.rasa!.scheduler as string;
  const others = cluster.filter((r) => r.url !== scheduler);
  // 60 requests on 8 slots of 120 ms: most wait at the scheduler; every client gives up after 150 ms.
  const abandoned = await Promise.all(
    Array.from({ length: 60 }, (_, i) =>
      fetch(`${others[i % others.length]!.started.publicUrl}/model/parse`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ text: `leave ${i}` }),
        signal: AbortSignal.timeout(150),
      }).then(
        async (r) => (await r.arrayBuffer(), 'answered'),
        () => 'left',
      ),
    ),
  );
  assert.ok(abandoned.filter((a) => a === 'left').length > 0, 'some clients left before their answer');
  await backAtRest();
  // Nothing leaked: the full slots serve the next burst, and no pod runs more than its slots.
  for (const p of pods) p.maxHeld = 0;
  const next = await Promise.all(Array.from({ length: 40 }, (_, i) => post(`${cluster[i % 3]!.started.publicUrl}/model/parse`, { text: `after leaving ${i}` })));
  assert.ok(next.every((r) => r.status === 200));
  for (const p of pods) assert.ok(p.maxHeld <= 2, `${p.name} held ${p.maxHeld}`);
});

/**
 * Every replica's counts back at zero; the scheduler holds no slot but those it lent in advance (at
 * most one per peer with the default `prefetchGrants: 1`), each held unused by a peer.
 */
async function backAtRest(replicas: readonly Replica[] = cluster): Promise<void> {
  await waitFor('every replica and the scheduler back at zero', async () => {
    let lent = 0;
    let inHand = 0;
    let schedulerInflight = 0;
    for (const r of replicas) {
      const scrape = await (await fetch(`${r.started.adminUrl}/metrics`)).text();
      if (metricValue(scrape, 'gateway_inflight_requests', { pool: 'rasa' }) !== 0) return undefined;
      if (metricValue(scrape, 'gateway_queue_length', { pool: 'rasa' }) !== 0) return undefined;
      const pools = (await (await fetch(`${r.started.adminUrl}/debug/pools`)).json()) as { pools: { inflight: number; queueLength: number }[] };
      const view = await clusterView(r.started.adminUrl);
      const advance = view.pools.rasa!.grantsInAdvance!;
      if (pools.pools[0]!.queueLength !== 0) return undefined;
      if (view.pools.rasa!.scheduler === r.url) {
        schedulerInflight = pools.pools[0]!.inflight;
        lent += advance.lent;
      } else {
        if (pools.pools[0]!.inflight !== 0 || advance.lent !== 0) return undefined;
        inHand += advance.inHand;
      }
    }
    return schedulerInflight === lent && lent === inHand && lent <= replicas.length - 1 ? true : undefined;
  });
}

test('grants in advance: a request through a replica that does not schedule starts on a slot lent before it came; a burst takes them back, nothing leaks', async () => {
  const scheduler = (await clusterView(cluster[0]!.started.adminUrl)).pools.rasa!.scheduler as string;
  const peer = cluster.find((r) => r.url !== scheduler)!;
  const advance = async () => (await clusterView(peer.started.adminUrl)).pools.rasa!.grantsInAdvance!;
  await waitFor('the peer holds a grant in advance', async () => ((await advance()).inHand === 1 ? true : undefined));
  const before = await advance();
  const sequential = [];
  for (let i = 0; i < 5; i++) sequential.push(await post(`${peer.started.publicUrl}/model/parse`, { text: `in advance ${i}` }));
  assert.ok(sequential.every((r) => r.status === 200));
  assert.ok((await advance()).claimed > before.claimed, 'a request started on the grant held in advance');
  // Conversations never use one: their pod and turn are the scheduler's to decide.
  const claimedBefore = (await advance()).claimed;
  const turn = await post(`${peer.started.publicUrl}/webhooks/rest/webhook`, { sender: 'advance-user', message: 'hi' });
  assert.equal(turn.status, 200);
  assert.equal((await advance()).claimed, claimedBefore);
  // A burst bigger than the slots: whatever was lent comes back to the queue, every slot serves and none is exceeded.
  for (const p of pods) p.maxHeld = 0;
  const burst = await Promise.all(Array.from({ length: 60 }, (_, i) => post(`${cluster[i % 3]!.started.publicUrl}/model/parse`, { text: `advance burst ${i}` })));
  assert.deepEqual(
    burst.map((r) => r.status),
    burst.map(() => 200),
  );
  for (const p of pods) assert.ok(p.maxHeld <= 2, `${p.name} held ${p.maxHeld} requests at once with 2 slots`);
  assert.ok(pods.every((p) => p.maxHeld === 2), `every pod was used to its slots: ${pods.map((p) => p.maxHeld).join(',')}`);
  await backAtRest();
});

test('the scheduler replica SIGKILLed mid-burst: every request sent to the survivors is answered 200', async () => {
  const view = await clusterView(cluster[0]!.started.adminUrl);
  const schedulerUrl = view.pools.rasa!.scheduler as string;
  const victim = cluster.find((r) => r.url === schedulerUrl)!;
  const survivors = cluster.filter((r) => r !== victim);
  const sent = Array.from({ length: 80 }, (_, i) => post(`${survivors[i % survivors.length]!.started.publicUrl}/model/parse`, { text: `failover ${i}` }));
  await new Promise((r) => setTimeout(r, 150));
  victim.started.child.kill('SIGKILL');
  const results = await Promise.all(sent);
  assert.deepEqual(
    results.map((r) => r.status),
    results.map(() => 200),
    results.filter((r) => r.status !== 200).map((r) => r.text).join('\n'),
  );
  // The survivors agree on a new scheduler, and it schedules: another burst goes through.
  await waitFor('a new scheduler', async () => {
    const views = await Promise.all(survivors.map((r) => clusterView(r.started.adminUrl)));
    const s = new Set(views.map((v) => v.pools.rasa?.scheduler));
    return s.size === 1 && !s.has(null) && !s.has(schedulerUrl) ? true : undefined;
  });
  const after = await Promise.all(Array.from({ length: 30 }, (_, i) => post(`${survivors[i % 2]!.started.publicUrl}/model/parse`, { text: `after ${i}` })));
  assert.ok(after.every((r) => r.status === 200));
});

test('a replica cut off from its peers (not dead): both sides keep serving, and no pod runs more than its slots', async () => {
  const partPods = await h.podSet(3, { name: 'part', slots: 2, serviceTimeMs: 100 });
  // The cut replica advertises a relay on 127.0.0.2 (sorting above 127.0.0.1, so the others dial it through the relay).
  const [a, b, c] = [await freePort(), await freePort(), await freePort('127.0.0.3')];
  const relay = await Relay.start('127.0.0.2', { host: '127.0.0.3', port: c });
  const members: Member[] = [
    { host: '127.0.0.1', port: a },
    { host: '127.0.0.1', port: b },
    { host: '127.0.0.3', port: c, advertise: relay.url },
  ];
  const three = await startCluster(partPods, 3, 2, members);
  /** 45 requests over the three replicas; `meanwhile` runs once they are all sent and running. */
  const burst = async (label: string, meanwhile?: () => Promise<void>) => {
    for (const p of partPods) p.maxHeld = 0;
    const sent = Array.from({ length: 45 }, (_, i) => post(`${three[i % 3]!.started.publicUrl}/model/parse`, { text: `${label} ${i}` }));
    if (meanwhile) {
      await waitFor('requests running', async () => (partPods.some((p) => p.maxHeld > 0) ? true : undefined));
      await meanwhile();
    }
    const answers = await Promise.all(sent);
    assert.deepEqual(
      answers.map((r) => r.status),
      answers.map(() => 200),
      `${label}: ${[...new Set(answers.filter((r) => r.status !== 200).map((r) => r.text))].join(' | ')}`,
    );
    for (const p of partPods) assert.ok(p.maxHeld <= 2, `${label}: ${p.name} held ${p.maxHeld} requests at once with 2 slots`);
  };
  const together = () =>
    waitFor('all three together again', async () => {
      const views = await Promise.all(three.map((r) => clusterView(r.started.adminUrl)));
      return views.every((v) => v.quorum && v.peers.every((p) => p.state === 'alive')) ? true : undefined;
    });
  const cutOff = () => waitFor('the cut replica without quorum', async () => ((await clusterView(three[2]!.started.adminUrl)).quorum ? undefined : true));
  await burst('joined');

  // A short cut, healed before the others call it dead: whatever was lent to it in advance is free
  // again once it is back (it gave its grants in hand up when it lost the scheduler).
  await relay.cut();
  await cutOff();
  await relay.heal();
  await together();
  await backAtRest(three);
  await burst('briefly cut, healed');

  await relay.cut();
  await cutOff();
  // While the others still call it suspect, and once they call it dead: its share stays free for it.
  await burst('cut, suspect');
  await waitFor('the majority calls it dead', async () => {
    const v = await clusterView(three[0]!.started.adminUrl);
    return v.peers.find((p) => p.url === relay.url)?.state === 'dead' ? true : undefined;
  });
  await burst('cut, dead to the others');

  await relay.heal();
  await together();
  await burst('healed');
  await backAtRest(three);

  // Cut and healed while requests run on every replica: the scheduler's regime was granting on
  // every share when its links closed, and while the links come back one by one two replicas may
  // each believe they schedule; votes keep each share in one place.
  await burst('cut while busy', async () => {
    await relay.cut();
    await cutOff();
  });
  await waitFor('the majority calls it dead', async () => {
    const v = await clusterView(three[0]!.started.adminUrl);
    return v.peers.find((p) => p.url === relay.url)?.state === 'dead' ? true : undefined;
  });
  await burst('healed while busy', async () => {
    await relay.heal();
    await together();
  });
  await backAtRest(three);
  await relay.cut(); // closes its listener, so the test process can exit
});
