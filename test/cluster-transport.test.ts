/**
 * The cluster transport on real loopback TCP: the frame parser fuzzed (random bytes never throw out,
 * valid frames round-trip however the stream is split), messages in order at volume, reconnect after
 * a peer restarts (announced as a restart), a handler that throws (counted, the link carries on), and
 * garbage on the cluster port (the link is dropped and counted, the cluster keeps working).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { StringDecoder } from 'node:string_decoder';
import { test } from 'node:test';
import fc from 'fast-check';
import client from 'prom-client';
import { createCluster, type Cluster, type ClusterMessage } from '../src/cluster/cluster.js';
import { encodeFrame, FrameDecoder } from '../src/cluster/frame.js';
import { ClusterMetrics } from '../src/metrics/cluster-metrics.js';
import { freePort, waitFor } from './helpers/cluster.js';

test('the frame parser: random bytes, split anywhere, never throw out of push', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 8 }), (chunks) => {
      const decoder = new FrameDecoder(256);
      const text = new StringDecoder('utf8');
      for (const chunk of chunks) decoder.push(text.write(Buffer.from(chunk)), () => undefined);
    }),
    { numRuns: 2000 },
  );
});

test('the frame parser: valid frames round-trip in order, whatever the split points', () => {
  const message = fc.record({ t: fc.string({ minLength: 1, maxLength: 64 }), body: fc.dictionary(fc.string(), fc.jsonValue()) });
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 10 }), (messages, cuts) => {
      const bytes = Buffer.from(messages.map((m) => encodeFrame(m as ClusterMessage)).join(''));
      const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
      const decoder = new FrameDecoder();
      const text = new StringDecoder('utf8');
      const out: unknown[] = [];
      let from = 0;
      for (const point of [...points, bytes.length]) {
        assert.equal(decoder.push(text.write(bytes.subarray(from, point)), (m) => out.push(m)), undefined);
        from = point;
      }
      assert.deepEqual(out, messages.map((m) => JSON.parse(JSON.stringify(m))));
    }),
    { numRuns: 500 },
  );
});

test('the frame parser refuses what is not a typed JSON object, and everything after it', () => {
  for (const bad of ['nope\n', '[1]\n', '{"x":1}\n', '{"t":""}\n', `{"t":"${'x'.repeat(65)}"}\n`, 'null\n']) {
    const decoder = new FrameDecoder();
    const seen: unknown[] = [];
    assert.ok(decoder.push(bad, (m) => seen.push(m)), JSON.stringify(bad));
    assert.ok(decoder.push('{"t":"ok"}\n', (m) => seen.push(m)));
    assert.deepEqual(seen, []);
  }
  const decoder = new FrameDecoder(16);
  assert.ok(decoder.push('{"t":"a","pad":"' + 'x'.repeat(20), () => undefined), 'an endless line is refused before its newline');
});

interface Member {
  cluster: Cluster;
  metrics: ClusterMetrics;
  registry: client.Registry;
}

async function member(port: number, peers: readonly string[], pools: readonly string[] = ['p']): Promise<Member> {
  const registry = new client.Registry();
  const metrics = new ClusterMetrics(registry);
  const cluster = await createCluster(
    { listen: { host: '127.0.0.1', port }, advertise: `http://127.0.0.1:${port}`, peers, heartbeatMs: 50, deadAfterMs: 1000 },
    { metrics },
  );
  await cluster.start(pools);
  return { cluster, metrics, registry };
}

async function pair(): Promise<{ a: Member; b: Member; urls: string[]; ports: number[] }> {
  const ports = [await freePort(), await freePort()];
  const urls = ports.map((p) => `http://127.0.0.1:${p}`);
  const [a, b] = await Promise.all(ports.map((p) => member(p, urls)));
  await linked(a!.cluster, urls[1]!);
  await linked(b!.cluster, urls[0]!);
  return { a: a!, b: b!, urls, ports };
}

function linked(cluster: Cluster, peer: string): Promise<true> {
  return waitFor(`a link to ${peer}`, () => (cluster.peers().some((p) => p.url === peer && p.state === 'alive') && cluster.hasQuorum() ? true : undefined));
}

async function counter(registry: client.Registry, name: string, labels: Record<string, string>): Promise<number> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x)).reduce((s, v) => s + v.value, 0);
}

test('messages arrive once each and in order, both ways over the one link; sys.* types are reserved', async () => {
  const { a, b, urls } = await pair();
  try {
    const atB: number[] = [];
    const atA: number[] = [];
    b.cluster.on('test.seq', (from, m) => {
      assert.equal(from, urls[0]);
      atB.push(m.n as number);
      if ((m.n as number) % 10 === 0) b.cluster.send(from, { t: 'test.back', n: m.n });
    });
    a.cluster.on('test.back', (_from, m) => atA.push(m.n as number));
    const n = 20_000;
    for (let i = 0; i < n; i++) assert.equal(a.cluster.send(urls[1]!, { t: 'test.seq', n: i, pad: 'grant-sized payload' }), true);
    await waitFor('every message', () => (atB.length === n && atA.length === n / 10 ? true : undefined));
    assert.deepEqual(atB, Array.from({ length: n }, (_, i) => i));
    assert.deepEqual(atA, Array.from({ length: n / 10 }, (_, i) => i * 10));
    assert.equal(await counter(a.registry, 'gateway_cluster_messages_total', { type: 'test.seq', direction: 'out' }), n);
    assert.equal(await counter(b.registry, 'gateway_cluster_messages_total', { type: 'test.seq', direction: 'in' }), n);
    // To itself: delivered locally, in order.
    const own: number[] = [];
    a.cluster.on('test.self', (from, m) => {
      assert.equal(from, urls[0]);
      own.push(m.n as number);
    });
    for (let i = 0; i < 3; i++) assert.equal(a.cluster.send(urls[0]!, { t: 'test.self', n: i }), true);
    await waitFor('local delivery', () => (own.length === 3 ? true : undefined));
    assert.deepEqual(own, [0, 1, 2]);
    assert.throws(() => a.cluster.send(urls[1]!, { t: 'sys.hb' }), /reserved/);
    assert.throws(() => a.cluster.on('sys.hello', () => undefined), /reserved/);
  } finally {
    await Promise.all([a.cluster.stop(), b.cluster.stop()]);
  }
});

test('a peer that restarts is redialled and announced as restarted; send is false while its link is down', async () => {
  const { a, b, urls, ports } = await pair();
  // a sorts lower when its port does; make `dialer` the one that dials.
  const [dialer, acceptor, acceptorPort, acceptorUrl, dialerUrl] = urls[0]! < urls[1]! ? [a, b, ports[1]!, urls[1]!, urls[0]!] : [b, a, ports[0]!, urls[0]!, urls[1]!];
  let restartedB: Member | undefined;
  try {
    const restarts: string[] = [];
    dialer.cluster.onPeerRestart((url) => restarts.push(url));
    await acceptor.cluster.stop();
    await waitFor('the link to drop', () => (dialer.cluster.send(acceptorUrl, { t: 'test.x' }) ? undefined : true));
    assert.equal(dialer.cluster.peers().find((p) => p.url === acceptorUrl)?.state, 'suspect');
    restartedB = await member(acceptorPort, urls);
    const got: string[] = [];
    restartedB.cluster.on('test.hello', (from) => got.push(from));
    await linked(dialer.cluster, acceptorUrl);
    assert.deepEqual(restarts, [acceptorUrl]);
    assert.equal(dialer.cluster.send(acceptorUrl, { t: 'test.hello' }), true);
    await waitFor('a message over the new link', () => (got.length === 1 ? true : undefined));
    assert.deepEqual(got, [dialerUrl]);
  } finally {
    await Promise.all([dialer.cluster.stop(), acceptor.cluster.stop(), restartedB?.cluster.stop()]);
  }
});

test('a handler that throws is counted and logged; the link and the later messages carry on', async () => {
  const { a, b, urls } = await pair();
  try {
    const seen: number[] = [];
    b.cluster.on('test.boom', (_from, m) => {
      if (m.n === 1) throw new Error('handler bug');
      seen.push(m.n as number);
    });
    for (const n of [0, 1, 2]) a.cluster.send(urls[1]!, { t: 'test.boom', n });
    a.cluster.send(urls[1]!, { t: 'test.nobody' });
    await waitFor('the messages after the throw', () => (seen.length === 2 ? true : undefined));
    assert.deepEqual(seen, [0, 2]);
    assert.equal(await counter(b.registry, 'gateway_cluster_handler_errors_total', { type: 'test.boom' }), 1);
    await waitFor('the unknown type counted', async () => ((await counter(b.registry, 'gateway_cluster_messages_total', { type: 'unknown', direction: 'in' })) === 1 ? true : undefined));
    assert.equal(a.cluster.peers().find((p) => p.url === urls[1])?.state, 'alive');
  } finally {
    await Promise.all([a.cluster.stop(), b.cluster.stop()]);
  }
});

test('garbage on the cluster port drops that connection and is counted; the cluster keeps working', async () => {
  const { a, b, urls, ports } = await pair();
  try {
    for (const garbage of ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', '{"t":"sys.hello","v":1,"from":"http://evil:1","to":"http://elsewhere:1","id":"x"}\n', '\u0000\u00ff{{{\n']) {
      const socket = connect(ports[1]!, '127.0.0.1');
      socket.on('error', () => undefined);
      socket.write(garbage);
      await new Promise((resolve) => socket.once('close', resolve));
    }
    await waitFor('link errors counted', async () => ((await counter(b.registry, 'gateway_cluster_link_errors_total', {})) >= 3 ? true : undefined));
    const got: number[] = [];
    b.cluster.on('test.after', (_f, m) => got.push(m.n as number));
    assert.equal(a.cluster.send(urls[1]!, { t: 'test.after', n: 7 }), true);
    await waitFor('a message after the garbage', () => (got.length === 1 ? true : undefined));
  } finally {
    await Promise.all([a.cluster.stop(), b.cluster.stop()]);
  }
});
