/** EndpointSlice parsing and merging (src/discovery/slices.ts) on realistic slices as the API server returns them. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  endpointsFromSlices,
  endpointsOfSlice,
  mergeEndpoints,
  resolvePort,
  type EndpointSliceLike,
} from '../src/discovery/slices.js';
import type { EndpointInfo } from '../src/discovery/types.js';

/** A slice of the Rasa chart's Service: ports `http` (5005) and `http-nginx` (80). */
function rasaSlice(name: string, endpoints: EndpointSliceLike['endpoints'], ports?: EndpointSliceLike['ports']): EndpointSliceLike {
  return {
    metadata: { name, namespace: 'rasa', resourceVersion: '4711' },
    addressType: 'IPv4',
    ports: ports !== undefined ? ports : [
      { name: 'http', port: 5005, protocol: 'TCP' },
      { name: 'http-nginx', port: 80, protocol: 'TCP' },
    ],
    endpoints,
  };
}

function ep(ip: string, pod: string, conditions?: { ready?: boolean; serving?: boolean; terminating?: boolean } | null, zone?: string) {
  return {
    addresses: [ip],
    ...(conditions !== undefined ? { conditions } : {}),
    targetRef: { kind: 'Pod', namespace: 'rasa', name: pod, uid: `uid-${pod}` },
    nodeName: 'node-a',
    ...(zone ? { zone } : {}),
  };
}

const byKey = (list: readonly EndpointInfo[]) => new Map(list.map((e) => [e.key, e]));

test('a named port resolves per slice to its endpoint port, one endpoint per address', () => {
  const slice = rasaSlice('rasa-abc12', [
    ep('10.244.1.17', 'rasa-7d9f8-x2k4p', { ready: true, serving: true, terminating: false }, 'eu-west-1a'),
    ep('10.244.2.31', 'rasa-7d9f8-q8m2z', { ready: true, serving: true, terminating: false }, 'eu-west-1b'),
  ]);
  assert.equal(resolvePort(slice, 'http'), 5005);
  assert.equal(resolvePort(slice, 'http-nginx'), 80);
  assert.equal(resolvePort(slice, 'grpc'), undefined);
  assert.deepEqual(endpointsOfSlice(slice, 'http'), [
    { key: 'http://10.244.1.17:5005', origin: 'http://10.244.1.17:5005', pod: 'rasa-7d9f8-x2k4p', zone: 'eu-west-1a', ready: true, serving: true, terminating: false },
    { key: 'http://10.244.2.31:5005', origin: 'http://10.244.2.31:5005', pod: 'rasa-7d9f8-q8m2z', zone: 'eu-west-1b', ready: true, serving: true, terminating: false },
  ]);
  // Port 80 gets the origin URL would give it (no :80), so keys match static endpoints.
  assert.equal(endpointsOfSlice(slice, 'http-nginx')[0]!.origin, 'http://10.244.1.17');
  // A port the slice does not have: the slice contributes nothing.
  assert.deepEqual(endpointsOfSlice(slice, 'grpc'), []);
});

test('slices of one service may carry different numbers for the named port', () => {
  const old = rasaSlice('rasa-old01', [ep('10.244.1.17', 'rasa-old-1', { ready: true })], [{ name: 'http', port: 5005, protocol: 'TCP' }]);
  const next = rasaSlice('rasa-new01', [ep('10.244.3.9', 'rasa-new-1', { ready: true })], [{ name: 'http', port: 5055, protocol: 'TCP' }]);
  assert.deepEqual(
    endpointsFromSlices([old, next], 'http').map((e) => e.origin),
    ['http://10.244.1.17:5005', 'http://10.244.3.9:5055'],
  );
});

test('a numeric port is the endpoint port: it matches that number or an all-ports entry, nothing else', () => {
  const slice = rasaSlice('rasa-abc12', [ep('10.244.1.17', 'rasa-0', { ready: true })]);
  assert.equal(resolvePort(slice, 5005), 5005);
  assert.equal(resolvePort(slice, 6000), undefined);
  assert.deepEqual(endpointsOfSlice(slice, 5005).map((e) => e.origin), ['http://10.244.1.17:5005']);
  assert.deepEqual(endpointsOfSlice(slice, 6000), []);
  const allPorts = rasaSlice('headless-x', [ep('10.244.1.17', 'rasa-0', { ready: true })], [{ name: '', protocol: 'TCP' }]);
  assert.deepEqual(endpointsOfSlice(allPorts, 6000).map((e) => e.origin), ['http://10.244.1.17:6000']);
  // No ports at all: nothing to connect to.
  assert.deepEqual(endpointsOfSlice(rasaSlice('none', [ep('10.244.1.17', 'rasa-0')], null), 5005), []);
  // A UDP port of that name is not ours.
  assert.equal(resolvePort(rasaSlice('udp', [], [{ name: 'http', port: 5005, protocol: 'UDP' }]), 'http'), undefined);
});

test('conditions: ready; serving and terminating (draining); neither', () => {
  const slice = rasaSlice('rasa-abc12', [
    ep('10.244.1.10', 'ready', { ready: true, serving: true, terminating: false }),
    ep('10.244.1.11', 'draining', { ready: false, serving: true, terminating: true }),
    ep('10.244.1.12', 'gone', { ready: false, serving: false, terminating: true }),
    ep('10.244.1.13', 'starting', { ready: false, serving: false, terminating: false }),
  ]);
  const got = endpointsOfSlice(slice, 'http').map((e) => [e.pod, e.ready, e.serving, e.terminating]);
  assert.deepEqual(got, [
    ['ready', true, true, false],
    ['draining', false, true, true],
    ['gone', false, false, true],
    ['starting', false, false, false],
  ]);
});

test('nil conditions: ready means true, serving defers to ready, terminating means false', () => {
  const slice = rasaSlice('rasa-abc12', [
    ep('10.244.1.20', 'no-conditions'),
    ep('10.244.1.21', 'null-conditions', null),
    ep('10.244.1.22', 'empty-conditions', {}),
    ep('10.244.1.23', 'only-not-ready', { ready: false }),
    ep('10.244.1.24', 'only-terminating', { terminating: true }),
  ]);
  const got = endpointsOfSlice(slice, 'http').map((e) => [e.pod, e.ready, e.serving, e.terminating]);
  assert.deepEqual(got, [
    ['no-conditions', true, true, false],
    ['null-conditions', true, true, false],
    ['empty-conditions', true, true, false],
    ['only-not-ready', false, false, false],
    ['only-terminating', true, true, true],
  ]);
});

test('multiple slices merge into one snapshot; an address in two slices counts once, the ready entry wins', () => {
  const a = rasaSlice('rasa-aaaaa', [
    ep('10.244.1.17', 'rasa-0', { ready: true, serving: true, terminating: false }),
    ep('10.244.1.18', 'rasa-1', { ready: false, serving: true, terminating: true }),
    ep('10.244.1.19', 'rasa-2', { ready: false, serving: false, terminating: true }),
  ]);
  const b = rasaSlice('rasa-bbbbb', [
    // Moved here by the controller while still listed in slice a: stale-not-ready here, ready there.
    ep('10.244.1.17', 'rasa-0', { ready: false, serving: false, terminating: false }),
    // rasa-1 is ready in this slice: the ready entry wins over the draining one.
    ep('10.244.1.18', 'rasa-1', { ready: true, serving: true, terminating: false }),
    // rasa-2 serving here: serving beats neither.
    ep('10.244.1.19', 'rasa-2', { ready: false, serving: true, terminating: true }),
    ep('10.244.2.40', 'rasa-3', { ready: true, serving: true, terminating: false }),
  ]);
  for (const order of [[a, b], [b, a]]) {
    const merged = endpointsFromSlices(order, 'http');
    assert.equal(merged.length, 4);
    const m = byKey(merged);
    assert.equal(m.get('http://10.244.1.17:5005')!.ready, true);
    assert.equal(m.get('http://10.244.1.18:5005')!.ready, true);
    assert.deepEqual(
      [m.get('http://10.244.1.19:5005')!.serving, m.get('http://10.244.1.19:5005')!.terminating],
      [true, true],
    );
    assert.equal(m.get('http://10.244.2.40:5005')!.pod, 'rasa-3');
  }
  // mergeEndpoints keeps the first of equals.
  const first = { key: 'k', origin: 'k', pod: 'first', ready: true, serving: true, terminating: false };
  const second = { ...first, pod: 'second' };
  assert.equal(mergeEndpoints([[first], [second]])[0]!.pod, 'first');
});

test('IPv6 slices give bracketed, normalised origins; FQDN slices and malformed addresses are skipped', () => {
  const v6: EndpointSliceLike = {
    metadata: { name: 'rasa-v6' },
    addressType: 'IPv6',
    ports: [{ name: 'http', port: 5005, protocol: 'TCP' }],
    endpoints: [
      { addresses: ['fd00:10:244:1::17'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'rasa-0' } },
      { addresses: ['FD00:10:244:0001:0000:0000:0000:0018'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'rasa-1' } },
      { addresses: ['10.244.1.17'], conditions: { ready: true } },
    ],
  };
  assert.deepEqual(endpointsOfSlice(v6, 'http').map((e) => e.origin), ['http://[fd00:10:244:1::17]:5005', 'http://[fd00:10:244:1::18]:5005']);
  const fqdn: EndpointSliceLike = {
    metadata: { name: 'rasa-fqdn' },
    addressType: 'FQDN',
    ports: [{ name: 'http', port: 5005, protocol: 'TCP' }],
    endpoints: [{ addresses: ['rasa-0.rasa.rasa.svc.cluster.local'], conditions: { ready: true } }],
  };
  assert.deepEqual(endpointsOfSlice(fqdn, 'http'), []);
  const bad = rasaSlice('rasa-bad', [{ addresses: ['10.244.1.300', 'not-an-ip', '10.244.1.5'], conditions: { ready: true } }]);
  assert.deepEqual(endpointsOfSlice(bad, 'http').map((e) => e.origin), ['http://10.244.1.5:5005']);
  // Mixed families of one dual-stack Service merge.
  const v4 = rasaSlice('rasa-v4', [ep('10.244.1.17', 'rasa-0', { ready: true })]);
  assert.equal(endpointsFromSlices([v4, v6, fqdn], 'http').length, 3);
});

test('targetRef gives the pod, zone the zone; both optional; several addresses of one endpoint share them', () => {
  const slice = rasaSlice('rasa-abc12', [
    { addresses: ['10.244.1.50', '10.244.1.51'], conditions: { ready: true }, targetRef: { kind: 'Pod', name: 'rasa-5' }, zone: 'zone-c' },
    { addresses: ['10.244.1.52'], conditions: { ready: true }, targetRef: null, zone: null },
  ]);
  const got = endpointsOfSlice(slice, 'http');
  assert.deepEqual(got.map((e) => [e.origin, e.pod, e.zone]), [
    ['http://10.244.1.50:5005', 'rasa-5', 'zone-c'],
    ['http://10.244.1.51:5005', 'rasa-5', 'zone-c'],
    ['http://10.244.1.52:5005', undefined, undefined],
  ]);
  assert.equal('pod' in got[2]!, false);
});

test('a slice without endpoints (null, as the API server writes it) contributes nothing', () => {
  assert.deepEqual(endpointsOfSlice(rasaSlice('rasa-empty', null), 'http'), []);
  assert.deepEqual(endpointsFromSlices([], 'http'), []);
});

test('1,000 endpoints across 10 slices merge to 1,000 entries', () => {
  const slices = Array.from({ length: 10 }, (_, s) =>
    rasaSlice(`rasa-${s}`, Array.from({ length: 100 }, (_, i) => ep(`10.${s}.${Math.floor(i / 50)}.${i % 50 + 1}`, `rasa-${s}-${i}`, { ready: true }))),
  );
  // Plus the first slice again, as if it had been copied into an 11th during a controller update.
  const merged = endpointsFromSlices([...slices, { ...slices[0]!, metadata: { name: 'rasa-copy' } }], 'http');
  assert.equal(merged.length, 1000);
  assert.equal(new Set(merged.map((e) => e.key)).size, 1000);
});
