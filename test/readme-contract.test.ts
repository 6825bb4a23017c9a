/**
 * The README's reference tables are a contract with operators and dashboards: every error code with
 * its status, every metric, every config key with its default. These tests keep them and the code in
 * step (as fastify tests its own error catalog against its docs).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import type { TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { parse as parseYaml } from 'yaml';
import { validateConfig } from '../src/config.js';
import { gatewaySchema, poolSchema } from '../src/config-schema.js';
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

/** The schema of a documented key such as `pools.<name>.queue.maxLength` or `routes[].path`. */
function schemaAt(key: string): TSchema | undefined {
  let schema: TSchema | undefined = gatewaySchema;
  for (const part of key.split('.')) {
    if (part === '<name>') {
      schema = Object.values((schema?.patternProperties ?? {}) as Record<string, TSchema>)[0];
      continue;
    }
    const [, name, list] = /^(\w+)(\[\])?$/.exec(part) ?? [];
    schema = name ? (schema?.properties as Record<string, TSchema> | undefined)?.[name] : undefined;
    if (list) schema = schema?.items as TSchema | undefined;
  }
  return schema;
}

/**
 * Rows of the configuration table as key paths with the default the README states: the key cell's
 * backticked keys (`.x` is a sibling of the key before), paired in order with the default cell's
 * backticked values; anything else in the cell (off, none, prose) states no default.
 */
function documentedConfigKeys(): { key: string; stated: string | undefined }[] {
  const keys: { key: string; stated: string | undefined }[] = [];
  for (const [keyCell, defaultCell] of tableUnder('## Configuration')) {
    let previous = '';
    const paths = [...(keyCell ?? '').matchAll(/`([^`]+)`/g)].map((m) => (previous = m[1]!.startsWith('.') ? previous.replace(/\.[^.]+$/, '') + m[1] : m[1]!));
    const defaults = [...(defaultCell ?? '').matchAll(/`([^`]+)`/g)].map((m) => m[1]);
    assert.ok(defaults.length === 0 || defaults.length >= paths.length, `row ${keyCell}: one default per key, or none`);
    paths.forEach((key, i) => keys.push({ key, stated: defaults[i] }));
  }
  return keys;
}

test('the README configuration table documents every top-level and pool key with the schema\'s default, and nothing else', () => {
  const documented = documentedConfigKeys();
  for (const { key, stated } of documented) {
    const schema = schemaAt(key);
    assert.ok(schema, `${key} in the README is a config key`);
    if (stated === undefined) continue;
    const effective = Value.Default(schema, undefined);
    assert.notEqual(effective, undefined, `${key}: the README states a default (${stated}) the schema does not have`);
    assert.deepEqual(parseYaml(stated), effective, `${key}: the README's default is the schema's`);
  }
  const paths = documented.map(({ key }) => key);
  const covered = (prefix: string) => paths.some((p) => p === prefix || p.startsWith(`${prefix}.`) || p.startsWith(`${prefix}[]`));
  for (const key of Object.keys(gatewaySchema.properties)) assert.ok(covered(key), `${key} is documented`);
  for (const key of Object.keys(poolSchema.properties)) assert.ok(covered(`pools.<name>.${key}`), `pools.<name>.${key} is documented`);
});

test('the README configuration example is a valid config', () => {
  const section = readme.slice(readme.indexOf('\n## Configuration\n'));
  const example = /```yaml\n([\s\S]*?)```/.exec(section)?.[1];
  assert.ok(example, 'the Configuration section opens with a YAML example');
  const config = validateConfig(parseYaml(example));
  assert.deepEqual(Object.keys(config.pools), ['nlu', 'dialog']);
});

test('every key in the config schema carries its meaning (description)', () => {
  const missing: string[] = [];
  const visit = (schema: TSchema, path: string): void => {
    for (const [key, inner] of Object.entries((schema.properties ?? {}) as Record<string, TSchema>)) {
      if (typeof inner.description !== 'string' || inner.description.length === 0) missing.push(`${path}${key}`);
      visit(inner, `${path}${key}.`);
      if (inner.items) visit(inner.items as TSchema, `${path}${key}[].`);
    }
    for (const inner of Object.values((schema.patternProperties ?? {}) as Record<string, TSchema>)) visit(inner, `${path}<name>.`);
    for (const variant of (schema.anyOf ?? []) as TSchema[]) visit(variant, path);
  };
  visit(gatewaySchema, '');
  assert.deepEqual(missing, []);
});
