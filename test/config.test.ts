import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError, loadConfig, validateConfig } from '../src/config.js';
import { runToExit, writeConfig } from './helpers/process.js';

function fails(doc: unknown, field: RegExp, detail?: RegExp): void {
  assert.throws(
    () => validateConfig(doc),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError, String(err));
      assert.match(err.field, field);
      if (detail) assert.match(err.message, detail);
      return true;
    },
  );
}

const ok = { pools: { nlu: { endpoints: ['http://10.0.0.5:5005'] } } };

test('a minimal config gets the documented defaults', () => {
  const c = validateConfig(ok);
  assert.deepEqual(c.listen, { host: '0.0.0.0', port: 8080 });
  assert.deepEqual(c.admin, { host: '0.0.0.0', port: 9090 });
  const pool = c.pools.nlu!;
  assert.equal(pool.balancer, 'least-outstanding');
  assert.equal(pool.slotsPerEndpoint, 2);
  assert.deepEqual(pool.queue, { maxLength: 1000, maxWaitMs: 30000, holdWithoutPods: false });
  assert.equal(pool.upstreamTimeoutMs, 60000);
  assert.deepEqual(c.routes, [{ prefix: '/', pool: 'nlu' }]);
  assert.ok(Object.isFrozen(c.pools.nlu));
});

test('static endpoints may carry a pod name and zone', () => {
  const c = validateConfig({ pools: { a: { endpoints: ['http://10.0.0.1:5005', { url: 'http://10.0.0.2:5005', name: 'rasa-1', zone: 'eu-1a' }] } } });
  assert.deepEqual(c.pools.a!.endpoints, [{ url: 'http://10.0.0.1:5005' }, { url: 'http://10.0.0.2:5005', name: 'rasa-1', zone: 'eu-1a' }]);
  fails({ pools: { a: { endpoints: [{ url: 'http://x:1', nme: 'typo' }] } } }, /^pools\.a\.endpoints\[0\]\.nme$/);
});

test('`unlimited` slots mean no queue', () => {
  assert.equal(validateConfig({ pools: { a: { endpoints: [], slotsPerEndpoint: 'unlimited' } } }).pools.a!.slotsPerEndpoint, Infinity);
});

test('each invalid field is named with what is allowed', () => {
  fails({ pools: { nlu: { endpoints: ['http://x:1'], balancer: 'fastest' } } }, /^pools\.nlu\.balancer$/, /round-robin, random, least-outstanding, p2c, peak-ewma/);
  fails({ pools: { nlu: { endpoints: ['http://x:1'], slotsPerEndpoint: 0 } } }, /^pools\.nlu\.slotsPerEndpoint$/, /unlimited/);
  fails({ pools: { nlu: { endpoints: ['ftp://x'] } } }, /^pools\.nlu\.endpoints\[0\]$/, /http/);
  fails({ pools: { nlu: { endpoints: ['http://x:1/path'] } } }, /^pools\.nlu\.endpoints\[0\]$/, /origin/);
  fails({ pools: { nlu: { endpoints: ['http://x:1'], queue: { maxLength: -1 } } } }, /^pools\.nlu\.queue\.maxLength$/);
  fails({ pools: { nlu: {} } }, /^pools\.nlu$/, /endpoints.*kubernetes/);
  fails({ pools: { nlu: { endpoints: [], kubernetes: { service: 'x' } } } }, /^pools\.nlu$/);
  fails({ pools: { nlu: { kubernetes: { service: 'rasa', port: -3 } } } }, /^pools\.nlu\.kubernetes\.port$/);
  fails({ ...ok, routes: [{ prefix: '/', pool: 'missing' }] }, /^routes\[0\]\.pool$/, /nlu/);
  fails({ ...ok, routes: [{ prefix: 'model', pool: 'nlu' }] }, /^routes\[0\]\.prefix$/, /start with \//);
  fails({ ...ok, routes: [{ path: '/a', prefix: '/', pool: 'nlu' }] }, /^routes\[0\]$/);
  fails({ ...ok, listen: { port: 70000 } }, /^listen\.port$/, /0 to 65535/);
  fails({ ...ok, lsten: {} }, /^lsten$/, /unknown key/);
  fails({ pools: {} }, /^pools$/);
  fails({ pools: { a: { endpoints: [] }, b: { endpoints: [] } } }, /^routes$/);
});

test('the quick form builds one pool on / from flags', () => {
  const { config } = loadConfig(['--upstream', 'http://127.0.0.1:5005', '--upstream', 'http://127.0.0.1:5006', '--balancer', 'p2c', '--slots', '3', '--port', '8181', '--admin-port', '9191']);
  assert.equal(config!.listen.port, 8181);
  assert.equal(config!.admin.port, 9191);
  assert.deepEqual(config!.pools.default!.endpoints, [{ url: 'http://127.0.0.1:5005' }, { url: 'http://127.0.0.1:5006' }]);
  assert.equal(config!.pools.default!.balancer, 'p2c');
  assert.equal(config!.pools.default!.slotsPerEndpoint, 3);
  assert.throws(() => loadConfig(['--upstream', 'http://a:1', '--port', 'x']), /--port/);
  assert.throws(() => loadConfig(['--bogus']), /argv/);
});

test('the process exits non-zero with a message naming the field', async () => {
  const file = writeConfig('pools:\n  nlu:\n    endpoints: [http://127.0.0.1:5005]\n    balancer: fastest\n');
  const res = await runToExit(['--config', file]);
  assert.notEqual(res.code, 0);
  assert.match(res.stderr, /pools\.nlu\.balancer/);
  assert.match(res.stderr, /least-outstanding/);
  const notYaml = await runToExit(['--config', writeConfig('pools: [unclosed')]);
  assert.notEqual(notYaml.code, 0);
  assert.match(notYaml.stderr, /not valid YAML/);
  const missing = await runToExit(['--config', '/nonexistent/gateway.yaml']);
  assert.notEqual(missing.code, 0);
  assert.match(missing.stderr, /cannot read/);
});

test('--help documents every flag and --check prints the validated config', async () => {
  const help = await runToExit(['--help']);
  assert.equal(help.code, 0);
  for (const flag of ['--config', '--upstream', '--balancer', '--slots', '--port', '--admin-port']) assert.match(help.stdout, new RegExp(flag));
  const check = await runToExit(['--config', writeConfig('pools:\n  nlu:\n    endpoints: [http://127.0.0.1:5005]\n    slotsPerEndpoint: unlimited\n'), '--check']);
  assert.equal(check.code, 0);
  assert.equal(JSON.parse(check.stdout).pools.nlu.slotsPerEndpoint, 'unlimited');
});

test('secrets named by tokenEnv / jwtSecretEnv come from the environment loadConfig is given, not the process one', () => {
  const file = writeConfig('pools:\n  nlu:\n    endpoints: [http://10.0.0.5:5005]\n    rasaAuth: { tokenEnv: GW_TEST_ONLY_TOKEN, jwtSecretEnv: GW_TEST_ONLY_JWT }\n');
  assert.equal(process.env.GW_TEST_ONLY_TOKEN, undefined);
  const { config } = loadConfig(['--config', file], { GW_TEST_ONLY_TOKEN: 'from-env', GW_TEST_ONLY_JWT: 'jwt-from-env' });
  assert.equal(config?.pools.nlu?.rasaAuth.token, 'from-env');
  assert.equal(config?.pools.nlu?.rasaAuth.jwtSecret, 'jwt-from-env');
  assert.throws(() => loadConfig(['--config', file], {}), (err: unknown) => err instanceof ConfigError && /GW_TEST_ONLY_TOKEN/.test(err.message));
});
