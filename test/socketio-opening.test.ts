/** An opening socket.io session counts on its pod exactly once, and stops counting exactly once. */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { countOpening, openingUpgraded } from '../src/affinity/socketio-opening.js';
import { Backend } from '../src/pool/backend.js';

const pod = () => new Backend({ key: 'http://10.0.0.1:5005', origin: 'http://10.0.0.1:5005', pod: 'p', ready: true, serving: true, terminating: false }, 2, 10, 0);

test('a handshake counts on its pod until its upgrade, once, whatever is called twice', () => {
  const b = pod();
  const settle = countOpening(b);
  assert.equal(b.sockets, 1, 'counts from the moment it is routed');
  settle('sid-upgrade');
  settle('sid-upgrade');
  assert.equal(b.sockets, 1, 'the open packet keeps it counting');
  openingUpgraded('sid-upgrade');
  openingUpgraded('sid-upgrade');
  assert.equal(b.sockets, 0, 'the upgrade ends it, once');
});

test('a failed handshake, or one whose client left, stops counting at once; a duplicate sid never counts twice', () => {
  const b = pod();
  const failed = countOpening(b);
  failed(undefined);
  failed('late');
  assert.equal(b.sockets, 0);
  const first = countOpening(b);
  const second = countOpening(b);
  first('same-sid');
  second('same-sid');
  assert.equal(b.sockets, 1, 'one session, one count');
  openingUpgraded('same-sid');
  assert.equal(b.sockets, 0);
});
