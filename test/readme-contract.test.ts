/**
 * The README's reference tables are a contract with operators and dashboards: every error code with
 * its status, every metric. These tests keep them and the code in step (as fastify tests its own
 * error catalog against its docs).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { errorCatalog } from '../src/errors.js';
import { GatewayMetrics } from '../src/metrics/metrics.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

/** The rows of the markdown table under `heading`, as arrays of cells. */
function tableUnder(heading: string): string[][] {
  const start = readme.indexOf(`\n${heading}\n`);
  assert.ok(start !== -1, `README has a "${heading}" section`);
  const rows: string[][] = [];
  let seen = false;
  for (const line of readme.slice(start + heading.length + 2).split('\n')) {
    if (line.startsWith('|')) {
      seen = true;
      rows.push(line.split('|').slice(1, -1).map((c) => c.trim()));
    } else if (seen) break;
  }
  return rows.slice(2); // header and separator
}

test('the README error-code table lists every catalog code with its status, and nothing else', () => {
  const documented = new Map<string, number>();
  for (const [statusCell, codeCell] of tableUnder('### Error codes')) {
    const statuses = (statusCell ?? '').split('/').map((s) => Number(s.trim()));
    const codes = [...(codeCell ?? '').matchAll(/`([A-Z_]+)`/g)].map((m) => m[1] as string);
    assert.equal(statuses.length, codes.length, `row ${codeCell}: one status per code`);
    codes.forEach((code, i) => documented.set(code, statuses[i] as number));
  }
  for (const [code, { status }] of Object.entries(errorCatalog)) {
    assert.equal(documented.get(code), status, `${code} is documented with status ${status}`);
  }
  for (const code of documented.keys()) assert.ok(code in errorCatalog, `${code} in the README is a catalog code`);
});

test('the README metrics table lists every metric the gateway exports, and nothing else', async () => {
  const documented = new Set(tableUnder('## Metrics').map(([name]) => (name ?? '').replaceAll('`', '')));
  const metrics = new GatewayMetrics({ defaultMetrics: false });
  const exported = new Set((await metrics.registry.getMetricsAsJSON()).map((m) => m.name));
  for (const name of exported) assert.ok(documented.has(name), `${name} is documented`);
  for (const name of documented) assert.ok(exported.has(name), `${name} in the README is exported`);
});
