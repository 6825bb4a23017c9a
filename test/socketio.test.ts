import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, test } from 'node:test';
import { io, type Socket } from 'socket.io-client';
import type { RasaPod } from '../src/emulator/rasa-pod.js';
import { get, Harness, waitFor } from './helpers/harness.js';

const h = new Harness();
after(() => h.stopAll());

const stickyPool = (pods: RasaPod[]) => ({ publicRoutes: ['/conversations/*'], pools: { dialog: { endpoints: pods.map((p) => p.url), affinity: 'rasa' } } });

type Transports = ('polling' | 'websocket')[];

/** A chat widget's session: connect, session_request, N user messages, collect the bot replies. */
async function chat(url: string, transports: Transports, upgrade: boolean, sessionId: string, messages: number) {
  const socket: Socket = io(url, { path: '/socket.io/', transports, upgrade, reconnection: false, forceNew: true, timeout: 5000 });
  const errors: string[] = [];
  socket.on('connect_error', (err) => errors.push(err.message));
  const replies: { text: string; pod: string }[] = [];
  socket.on('bot_uttered', (m: { text: string; pod: string }) => replies.push(m));
  try {
    await waitFor('socket connected', () => socket.connected || errors.length > 0);
    assert.deepEqual(errors, []);
    const confirmed = new Promise<string>((resolve) => socket.once('session_confirm', resolve));
    socket.emit('session_request', { session_id: sessionId });
    assert.equal(await confirmed, sessionId);
    if (upgrade) await waitFor('upgraded to websocket', () => socket.io.engine.transport.name === 'websocket');
    for (let i = 0; i < messages; i++) {
      socket.emit('user_uttered', { message: `msg ${i}`, session_id: sessionId });
      await waitFor(`reply ${i}`, () => replies.length > i);
    }
    return { replies, transport: socket.io.engine.transport.name, errors };
  } finally {
    socket.disconnect();
  }
}

for (const [mode, transports, upgrade] of [
  ['long-polling only', ['polling'], false],
  ['polling then upgrade to websocket', ['polling', 'websocket'], true],
  ['websocket only', ['websocket'], false],
] as [string, Transports, boolean][]) {
  test(`socket.io through the gateway, ${mode}: no "Invalid session", every reply from one pod`, async () => {
    const pods = await h.podSet(3, { name: `sio-${transports.join('-')}`, serviceTimeMs: 5 });
    const gw = await h.gateway(stickyPool(pods));
    for (let s = 0; s < 4; s++) {
      const result = await chat(gw.publicUrl, transports, upgrade, `widget-${s}`, 5);
      assert.equal(result.replies.length, 5);
      assert.equal(new Set(result.replies.map((r) => r.pod)).size, 1, 'every reply came from one pod');
      assert.equal(result.transport, upgrade || transports[0] === 'websocket' ? 'websocket' : 'polling');
      const holders = pods.filter((p) => p.trackers.has(`widget-${s}`));
      assert.equal(holders.length, 1);
      assert.equal(holders[0]!.trackers.get(`widget-${s}`)!.filter((e) => e.event === 'user').length, 5);
    }
  });
}

test('an engine.io session opened through one replica continues through another', async () => {
  const pods = await h.podSet(4, { name: 'sio-replicas', serviceTimeMs: 5 });
  const a = await h.gateway(stickyPool(pods));
  const b = await h.gateway(stickyPool(pods));
  for (let i = 0; i < 8; i++) {
    const open = await get(`${a.publicUrl}/socket.io/?EIO=4&transport=polling&t=${i}`);
    assert.equal(open.status, 200);
    const packet = JSON.parse(open.text.slice(1)) as { sid: string };
    assert.match(packet.sid, /^[0-9a-f]{8}\./, 'the sid carries the pod token');
    const pod = open.headers.get('x-rasa-pod');
    // Socket.io CONNECT through replica B, then the poll that reads its answer through replica A.
    const connect = await fetch(`${b.publicUrl}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(packet.sid)}`, {
      method: 'POST',
      body: '40',
      headers: { 'content-type': 'text/plain;charset=UTF-8' },
    });
    assert.equal(connect.status, 200, await connect.clone().text());
    assert.equal(connect.headers.get('x-rasa-pod'), pod);
    const poll = await get(`${a.publicUrl}/socket.io/?EIO=4&transport=polling&sid=${encodeURIComponent(packet.sid)}`);
    assert.equal(poll.status, 200);
    assert.match(poll.text, /^40\{"sid":/, 'the pod that opened the session answered the CONNECT');
    assert.equal(poll.headers.get('x-rasa-pod'), pod);
  }
});

test('a sid the gateway cannot place gets engine.io\'s own 400 "Session ID unknown", with the catalog code beside it', async () => {
  const pods = await h.podSet(2, { name: 'sio-unknown' });
  const gw = await h.gateway(stickyPool(pods));
  const res = await get<{ code: number; message: string; error: { code: string } }>(`${gw.publicUrl}/socket.io/?EIO=4&transport=polling&sid=not-ours`);
  assert.equal(res.status, 400);
  assert.equal(res.body.code, 1, 'engine.io clients read code 1 and open a new session');
  assert.equal(res.body.message, 'Session ID unknown');
  assert.equal(res.body.error.code, 'SESSION_UNKNOWN');
  assert.equal(pods[0]!.counts.size + pods[1]!.counts.size, 0, 'nothing reached a pod');
});

test('a REST call on a socket conversation reaches the pod that holds the socket', async () => {
  const pods = await h.podSet(4, { name: 'sio-rest', serviceTimeMs: 2 });
  const gw = await h.gateway(stickyPool(pods));
  for (const [i, transports] of ([['polling'], ['websocket'], ['polling'], ['websocket']] as Transports[]).entries()) {
    const sessionId = `socket-conv-${i}`;
    const socket: Socket = io(gw.publicUrl, { path: '/socket.io/', transports, upgrade: false, reconnection: false, forceNew: true });
    try {
      const confirmed = new Promise<string>((resolve) => socket.once('session_confirm', resolve));
      socket.emit('session_request', { session_id: sessionId });
      await confirmed;
      const reply = new Promise<{ pod: string }>((resolve) => socket.once('bot_uttered', resolve));
      socket.emit('user_uttered', { message: 'hi', session_id: sessionId });
      const socketPod = (await reply).pod;
      const res = await fetch(`${gw.publicUrl}/conversations/${sessionId}/trigger_intent?output_channel=latest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'greet' }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('x-rasa-pod'), socketPod, `${transports[0]}: the REST call followed the socket`);
    } finally {
      socket.disconnect();
    }
  }
});

/** Opens `n` socket.io clients at once and waits until every one connected (or failed). */
async function openAll(url: string, n: number, transports: Transports): Promise<Socket[]> {
  const sockets = Array.from({ length: n }, () => io(url, { path: '/socket.io/', transports, upgrade: false, reconnection: false, forceNew: true }));
  const failed: string[] = [];
  for (const s of sockets) s.on('connect_error', (err) => failed.push(err.message));
  await waitFor(`${n} sockets connected`, () => sockets.every((s) => s.connected) || failed.length > 0, 20_000);
  assert.deepEqual(failed, []);
  return sockets;
}

test('issue 16: a burst of handshakes spreads over the pods (an opened session counts on its pod before it upgrades)', async () => {
  const pods = await h.podSet(3, { name: 'sio-burst', serviceTimeMs: 5 });
  const gw = await h.gateway(stickyPool(pods));
  // Polling clients opened together: none has upgraded or named its conversation when the next handshakes are routed.
  const sockets = await openAll(gw.publicUrl, 30, ['polling']);
  try {
    const perPod = pods.map((p) => p.io.engine.clientsCount);
    assert.equal(perPod.reduce((a, b) => a + b, 0), 30);
    assert.ok(Math.max(...perPod) <= 12, `sessions per pod ${perPod.join(' / ')}: every handshake went to the pod with the fewest sockets as counted before the burst`);
  } finally {
    for (const s of sockets) s.disconnect();
  }
});

test('issue 16: the public listener queues a burst of widget connections (backlog above Node\'s 511) and every client connects', async () => {
  const pods = await h.podSet(2, { name: 'sio-backlog', serviceTimeMs: 5 });
  const gw = await h.gateway(stickyPool(pods));
  const port = new URL(gw.publicUrl).port;
  const ss = spawnSync('ss', ['-Hltn', `sport = :${port}`], { encoding: 'utf8' });
  assert.equal(ss.status, 0, `ss (iproute2, which .ci/run installs) must report the listener: ${ss.stderr}`);
  // For a listening socket ss reports the accept queue's length (Recv-Q) and its limit, the backlog (Send-Q).
  const backlog = Number(ss.stdout.trim().split(/\s+/)[2]);
  assert.ok(backlog >= 2048 || backlog === Number(readFileSync('/proc/sys/net/core/somaxconn', 'utf8')), `listen backlog ${backlog}`);
  const sockets = await openAll(gw.publicUrl, 300, ['polling', 'websocket']);
  for (const s of sockets) s.disconnect();
});
