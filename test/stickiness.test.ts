import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { RasaPod } from '../src/emulator/rasa-pod.js';
import { debugPools, get, Harness, metricValue, post } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

const sticky = (pods: RasaPod[], extra: Record<string, unknown> = {}) => ({
  publicRoutes: ['/conversations/*'],
  pools: { dialog: { endpoints: pods.map((p) => p.url), slotsPerEndpoint: 2, affinity: 'rasa', ...extra } },
});

function podsHolding(pods: RasaPod[], sender: string): string[] {
  return pods.filter((p) => p.trackers.has(sender)).map((p) => p.name);
}

async function say(url: string, sender: string, message: string): Promise<string> {
  const res = await post<{ text: string }[]>(`${url}/webhooks/rest/webhook`, { sender, message });
  assert.equal(res.status, 200, res.text);
  return res.headers.get('x-rasa-pod') as string;
}

test('every turn of a conversation lands on one pod, in order, across many senders', async () => {
  const pods = await h.podSet(4, { name: 'conv', slots: 2, serviceTimeMs: 5 });
  const gw = await h.gateway(sticky(pods));
  const senders = Array.from({ length: 40 }, (_, i) => `user-${i}`);
  await Promise.all(
    senders.map(async (sender) => {
      for (let turn = 0; turn < 5; turn++) await say(gw.publicUrl, sender, `turn ${turn}`);
    }),
  );
  for (const sender of senders) {
    const holders = podsHolding(pods, sender);
    assert.equal(holders.length, 1, `${sender} split across ${holders.join(', ')}`);
    const events = pods.find((p) => p.name === holders[0])!.trackers.get(sender)!;
    assert.deepEqual(
      events.filter((e) => e.event === 'user').map((e) => e.text),
      ['turn 0', 'turn 1', 'turn 2', 'turn 3', 'turn 4'],
    );
  }
  const used = pods.filter((p) => p.trackers.size > 0).length;
  assert.ok(used >= 3, `rendezvous spreads conversations (used ${used} of 4 pods)`);
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_sticky_sessions', { pool: 'dialog' }), 40);
  const view = await debugPools(gw.adminUrl);
  assert.equal(view[0]!.endpoints.reduce((n, e) => n + e.sessions, 0), 40);
});

test('concurrent messages of one sender reach the pod one at a time', async () => {
  const pods = await h.podSet(2, { name: 'order', slots: 4, serviceTimeMs: 30 });
  const gw = await h.gateway(sticky(pods));
  const replies: string[] = [];
  await Promise.all(
    Array.from({ length: 6 }, async (_, i) => {
      const res = await post<{ text: string }[]>(`${gw.publicUrl}/webhooks/rest/webhook`, { sender: 'eager', message: `m${i}` });
      replies.push(res.body[0]!.text.replace('echo: ', ''));
    }),
  );
  const holder = pods.find((p) => p.trackers.has('eager'))!;
  assert.equal(holder.maxConcurrentPerConversation, 1, 'never two turns of one conversation at once');
  const seen = holder.trackers.get('eager')!.filter((e) => e.event === 'user').map((e) => e.text);
  assert.deepEqual(seen, replies, 'the pod processed the turns in the order they were answered, one after another');
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.ok((metricValue(scrape, 'gateway_conversation_waits_total', { pool: 'dialog' }) ?? 0) >= 1);
});

test('the conversations API follows the same conversation, ids with slashes included', async () => {
  const pods = await h.podSet(3, { name: 'api', serviceTimeMs: 5 });
  const gw = await h.gateway(sticky(pods));
  for (const id of ['alice', 'team/room/42']) {
    const pod = await say(gw.publicUrl, id, 'hello');
    const enc = id.split('/').map(encodeURIComponent).join('/');
    const added = await post(`${gw.publicUrl}/conversations/${enc}/messages`, { text: 'more', sender: 'user' });
    assert.equal(added.status, 200);
    assert.equal(added.headers.get('x-rasa-pod'), pod);
    const tracker = await get<{ events: { text: string }[] }>(`${gw.publicUrl}/conversations/${enc}/tracker`);
    assert.equal(tracker.headers.get('x-rasa-pod'), pod);
    assert.deepEqual(tracker.body.events.map((e) => e.text), ['hello', 'echo: hello', 'more']);
    assert.deepEqual(podsHolding(pods, id), [pod]);
  }
});

test('a webhook body that is not JSON is still proxied, unkeyed and counted', async () => {
  const pods = await h.podSet(2, { name: 'badjson', serviceTimeMs: 5 });
  const gw = await h.gateway(sticky(pods));
  const res = await post(`${gw.publicUrl}/webhooks/rest/webhook`, '{not json');
  assert.equal(res.status, 200, 'the emulated pod answers as Rasa would for sender "default"');
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_affinity_unkeyed_total', { pool: 'dialog', reason: 'invalid_json' }), 1);
  const homes = new Set<string>();
  for (let i = 0; i < 6; i++) {
    const noSender = await post(`${gw.publicUrl}/webhooks/rest/webhook`, { message: `hi ${i}` });
    assert.equal(noSender.status, 200);
    homes.add(noSender.headers.get('x-rasa-pod') as string);
  }
  assert.equal(homes.size, 1, 'a missing sender is the conversation "default", as in Rasa: one pod');
});

test('two gateway replicas agree on every sender\'s pod with no shared state', async () => {
  const pods = await h.podSet(5, { name: 'replica', serviceTimeMs: 2 });
  const a = await h.gateway(sticky(pods));
  const b = await h.gateway(sticky(pods));
  for (let i = 0; i < 60; i++) {
    const sender = `r-${i}`;
    const first = await say(i % 2 ? a.publicUrl : b.publicUrl, sender, 'one');
    const second = await say(i % 2 ? b.publicUrl : a.publicUrl, sender, 'two');
    assert.equal(second, first, `${sender} went to ${first} then ${second}`);
  }
});

test('removing a pod moves only its conversations; adding one moves none on this replica', async () => {
  const pods = await h.podSet(4, { name: 'scale', serviceTimeMs: 2 });
  const gw = await h.gateway(sticky(pods));
  const pool = gw.gateway.pools.get('dialog')!.pool;
  const info = (p: RasaPod) => ({ key: p.url, origin: p.url, pod: p.name, ready: true, serving: true, terminating: false });
  const senders = Array.from({ length: 80 }, (_, i) => `s-${i}`);
  const before = new Map<string, string>();
  for (const s of senders) before.set(s, await say(gw.publicUrl, s, 'hi'));

  const extra = await h.pod({ name: 'scale-new', serviceTimeMs: 2 });
  pool.update([...pods, extra].map(info));
  for (const s of senders) assert.equal(await say(gw.publicUrl, s, 'again'), before.get(s), `${s} moved after a scale-up`);

  const removed = pods[1]!;
  pool.update([pods[0]!, pods[2]!, pods[3]!, extra].map(info));
  let moved = 0;
  for (const s of senders) {
    const now = await say(gw.publicUrl, s, 'after removal');
    if (before.get(s) === removed.name) {
      assert.notEqual(now, removed.name);
      moved++;
    } else {
      assert.equal(now, before.get(s), `${s} moved although its pod stayed`);
    }
  }
  assert.ok(moved > 0);
  const scrape = (await get(`${gw.adminUrl}/metrics`)).text;
  assert.equal(metricValue(scrape, 'gateway_sticky_moves_total', { pool: 'dialog', reason: 'removed' }), moved);
});

test('a draining pod keeps its conversations but gets no new ones', async () => {
  const pods = await h.podSet(3, { name: 'drainconv', serviceTimeMs: 2 });
  const gw = await h.gateway(sticky(pods));
  const pool = gw.gateway.pools.get('dialog')!.pool;
  const senders = Array.from({ length: 30 }, (_, i) => `d-${i}`);
  const home = new Map<string, string>();
  for (const s of senders) home.set(s, await say(gw.publicUrl, s, 'hi'));
  const draining = pods[0]!;
  pool.update(pods.map((p) => ({ key: p.url, origin: p.url, pod: p.name, ready: p !== draining, serving: true, terminating: p === draining })));
  for (const s of senders) assert.equal(await say(gw.publicUrl, s, 'still here'), home.get(s));
  for (let i = 0; i < 20; i++) assert.notEqual(await say(gw.publicUrl, `new-${i}`, 'hi'), draining.name);
});

test('a sticky request waits for a slot on its own pod instead of overflowing to another', async () => {
  const pods = await h.podSet(2, { name: 'ownslot', slots: 4, serviceTimeMs: 40 });
  const gw = await h.gateway(sticky(pods, { slotsPerEndpoint: 1, ordering: 'none' }));
  const results = await Promise.all(Array.from({ length: 5 }, (_, i) => say(gw.publicUrl, 'busy-sender', `m${i}`)));
  assert.equal(new Set(results).size, 1, 'all on one pod');
  const holder = pods.find((p) => p.name === results[0])!;
  assert.equal(holder.maxRunning, 1, 'one slot: the pod never ran two at once');
});
