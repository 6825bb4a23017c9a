import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { get, Harness, post, waitFor } from './helpers/harness.js';
import { startGateway, writeConfig } from './helpers/process.js';

const h = new Harness();
after(() => h.stopAll());

test('SIGTERM fails readiness, lets queued and in-flight requests finish, then exits 0', async () => {
  const pod = await h.pod({ name: 'drain', slots: 1, serviceTimeMs: 250 });
  const file = writeConfig(
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'log: { level: warn }',
      'shutdown: { drainTimeoutMs: 10000 }',
      'pools:',
      '  nlu:',
      `    endpoints: [${pod.url}]`,
      '    slotsPerEndpoint: 1',
      '',
    ].join('\n'),
  );
  const gw = await startGateway(['--config', file]);
  try {
    assert.equal((await get(`${gw.adminUrl}/readyz`)).status, 200);
    const requests = Array.from({ length: 4 }, (_, i) => post(`${gw.publicUrl}/model/parse`, { text: `q${i}` }));
    await waitFor('three requests queued', async () => {
      const pools = (await get<{ pools: { queueLength: number }[] }>(`${gw.adminUrl}/debug/pools`)).body.pools;
      return pools[0]!.queueLength === 3;
    });
    gw.child.kill('SIGTERM');
    await waitFor('readiness fails while draining', async () => (await get(`${gw.adminUrl}/readyz`)).status === 503);
    const results = await Promise.all(requests);
    assert.deepEqual(results.map((r) => r.status), [200, 200, 200, 200], 'every accepted request was served');
    const exit = await gw.exited;
    assert.equal(exit.code, 0, gw.output());
    assert.equal(pod.handled, 4);
  } finally {
    gw.child.kill('SIGKILL');
  }
});
