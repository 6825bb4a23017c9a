/**
 * `rasa-gateway plan` as operators run it (the real entry point, a child process), and the desired-pods
 * signal end to end: a real gateway process in front of emulated Rasa pods exports
 * `gateway_pool_desired_pods` that rises above the pods it has under load, `/debug/capacity` reports
 * what it measured, and `plan --from` plans from that.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { podsForLatency, type PodProfile } from '../src/capacity/queue-model.js';
import type { CapacityReport } from '../src/capacity/report.js';
import { fromMoments } from '../src/capacity/service-time.js';
import { STUDY_MEASURED } from '../src/capacity/study.js';
import { get, Harness, metricValue, post, waitFor } from './helpers/harness.js';
import { runToExit, startGateway, writeConfig } from './helpers/process.js';

const h = new Harness();
after(() => h.stopAll());

/** The cells of the markdown table that follows `heading` in `text`. */
function tableAfter(text: string, heading: RegExp): string[][] {
  const lines = text.split('\n');
  const start = lines.findIndex((l) => heading.test(l));
  assert.ok(start >= 0, `output has ${heading}`);
  const rows: string[][] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.startsWith('|')) rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
    else if (rows.length > 0) break;
  }
  return rows.slice(2);
}

test('plan with the study profile prints the study table shape beside its numbers, and the pods each rate needs', async () => {
  const r = await runToExit(['plan', '--service-ms', '500', '--slots', '2', '--rates', '1,10,50,100', '--p95-ms', '1000']);
  assert.equal(r.code, 0, r.stderr);
  const latency = tableAfter(r.stdout, /^Expected p95 latency/);
  assert.deepEqual(latency.map((row) => row[0]), ['1', '2', '4', '10'], 'rows: 1, 2, 4, 10 pods');
  for (const [i, pods] of [1, 2, 4, 10].entries()) {
    [1, 10, 50, 100].forEach((rate, j) => {
      const [sustained, burst, study] = (latency[i]![j + 1] ?? '').split(' / ');
      const [lo, hi] = STUDY_MEASURED[pods]![rate]!;
      assert.equal(study, `${lo}-${hi}`, `${pods} pods at ${rate} req/s carries the study's range`);
      // 2 slots x 0.5 s: 4 req/s per pod; at or beyond that, sustained arrivals never settle.
      assert.equal(sustained === 'overload', rate >= 4 * pods, `${pods} pods at ${rate} req/s: ${sustained}`);
      assert.ok(Number(burst) >= 0.5, 'a burst answer takes at least the service time');
    });
  }
  const needs = tableAfter(r.stdout, /^Pods needed for p95 latency under 1\.00 s/);
  const profile: PodProfile = { service: fromMoments(500, 0), slots: 2 };
  assert.deepEqual(
    needs.map((row) => [row[0], row[2]]),
    [1, 10, 50, 100].map((rate) => [`${rate} req/s`, String(podsForLatency(rate, profile, 1000))]),
  );
  for (const row of needs) assert.ok(Number(row[3]) <= 1, `expected p95 ${row[3]} s is within the target`);
});

test('plan --json carries the same plan; bad arguments exit 2 with the usage', async () => {
  const r = await runToExit(['plan', '--service-ms', '300', '--cv', '0.5', '--slots', '1', '--rates', '2,4', '--pods', '1,2', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const { plans } = JSON.parse(r.stdout) as { plans: { cells: { pods: number; ratePerS: number; sustainedP95Ms: number | null }[][]; needs: { podsForP95: number }[] }[] };
  assert.equal(plans.length, 1);
  const cells = plans[0]!.cells;
  assert.deepEqual(cells.map((row) => row.map((c) => [c.pods, c.ratePerS])), [[[1, 2], [1, 4]], [[2, 2], [2, 4]]]);
  // One 1-slot pod of 300 ms serves 3.3 req/s: 4 req/s overloads it (no finite p95: null), two pods do not.
  assert.equal(cells[0]![1]!.sustainedP95Ms, null);
  assert.equal(typeof cells[1]![1]!.sustainedP95Ms, 'number');
  assert.ok(cells[1]![1]!.sustainedP95Ms! > cells[1]![0]!.sustainedP95Ms!, 'more traffic, longer p95');
  for (const bad of [['--slots', '0'], ['--rates', '1,x'], ['--bogus'], ['--pool', 'nlu']]) {
    const e = await runToExit(['plan', ...bad]);
    assert.equal(e.code, 2, `${bad.join(' ')}: ${e.stderr}`);
    assert.match(e.stderr, /Usage: rasa-gateway plan/);
  }
});

test('a real gateway exports gateway_pool_desired_pods that rises under load, and plan --from reads its measured profile', { timeout: 60_000 }, async () => {
  const pods = await h.podSet(2, { slots: 1, serviceTimeMs: 200 });
  const file = writeConfig(
    [
      'listen: { host: 127.0.0.1, port: 0 }',
      'admin: { host: 127.0.0.1, port: 0 }',
      'log: { level: warn }',
      'pools:',
      '  nlu:',
      `    endpoints: [${pods.map((p) => p.url).join(', ')}]`,
      '    slotsPerEndpoint: 1',
      '    capacity: { targetQueueWaitMs: 100, horizonMs: 60000, windowMs: 5000 }',
      '',
    ].join('\n'),
  );
  const gw = await startGateway(['--config', file]);
  try {
    const desired = async () => metricValue(await (await fetch(`${gw.adminUrl}/metrics`)).text(), 'gateway_pool_desired_pods', { pool: 'nlu' });
    assert.equal(await desired(), 0, 'idle: no traffic measured, no pods asked for');
    // 30 parses a second on two 1-slot pods of 200 ms (10 a second between them) for two seconds.
    const sent: Promise<unknown>[] = [];
    for (let i = 0; i < 60; i++) {
      sent.push(post(`${gw.publicUrl}/model/parse`, { text: `q${i}` }));
      await new Promise((resolve) => setTimeout(resolve, 33));
    }
    const peak = await waitFor('desired pods above the 2 pods the pool has', async () => {
      const d = await desired();
      return d !== undefined && d > 2 ? d : undefined;
    });
    assert.ok(peak > 2);
    const report = (await get<CapacityReport>(`${gw.adminUrl}/debug/capacity`)).body;
    const nlu = report.pools.find((p) => p.pool === 'nlu');
    assert.ok(nlu, '/debug/capacity reports the pool');
    assert.equal(nlu.currentPods, 2);
    assert.equal(nlu.slots, 1);
    assert.ok(nlu.ratePerS > 0);
    assert.ok(nlu.serviceMs !== null && nlu.serviceMs >= 200, `service time ${nlu.serviceMs} ms is at least the pods' 200 ms`);
    assert.deepEqual(nlu.classes.map((c) => c.name), ['model'], 'parses are the model route class');
    assert.ok(nlu.desiredPods !== null && nlu.desiredReplicas === Math.ceil(nlu.desiredPods - 1e-9));

    const plan = await runToExit(['plan', '--from', gw.adminUrl, '--pool', 'nlu', '--p95-ms', '1000']);
    assert.equal(plan.code, 0, plan.stderr);
    assert.match(plan.stdout, new RegExp(`pool nlu at ${gw.adminUrl.replace(/[.]/g, '\\.')}`));
    assert.match(plan.stdout, /1 slots x \d+ ms/, 'the measured profile: 1 slot per pod, its service time');
    assert.ok(tableAfter(plan.stdout, /^Pods needed/).length >= 1);
    await Promise.all(sent);
    const missing = await runToExit(['plan', '--from', gw.adminUrl, '--pool', 'dialog']);
    assert.equal(missing.code, 2);
    assert.match(missing.stderr, /no pool dialog/);
  } finally {
    gw.child.kill('SIGKILL');
  }
});
