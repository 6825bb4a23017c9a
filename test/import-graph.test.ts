/**
 * The layering of src/: no import circles between folders (pool/, admission/, affinity/, ...), top-level
 * modules counted as nodes of their own. Read from the TypeScript sources, type-only imports included:
 * a type import is still a dependency a reader has to follow.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { test } from 'node:test';

const SRC = join(process.cwd(), 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

/** `pool` for src/pool/backend.ts, `config.ts` for src/config.ts. */
function nodeOf(file: string): string {
  return relative(SRC, file).split(sep)[0] as string;
}

function folderGraph(): Map<string, Set<string>> {
  const graph = new Map<string, Set<string>>();
  for (const file of sources(SRC)) {
    const from = nodeOf(file);
    const edges = graph.get(from) ?? new Set<string>();
    graph.set(from, edges);
    for (const m of readFileSync(file, 'utf8').matchAll(/^(?:import|export)[^'"]*from\s+'(\.[^']+)'/gm)) {
      const target = resolve(dirname(file), (m[1] as string).replace(/\.js$/, '.ts'));
      const to = nodeOf(target);
      if (to !== from) edges.add(to);
    }
  }
  return graph;
}

/** Every cycle's members, by Tarjan's strongly connected components (components of one node are not cycles). */
function cycles(graph: Map<string, Set<string>>): string[][] {
  let index = 0;
  const indexOf = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    indexOf.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!indexOf.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, indexOf.get(w)!));
    }
    if (low.get(v) === indexOf.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) out.push(component.sort());
    }
  };
  for (const v of graph.keys()) if (!indexOf.has(v)) visit(v);
  return out;
}

test('no import circles between the folders of src/', () => {
  const graph = folderGraph();
  assert.ok(graph.has('pool') && graph.has('admission') && graph.has('affinity'), 'the graph was read');
  const found = cycles(graph).map((c) => `${c.join(' <-> ')} (${c.map((n) => `${n} -> ${[...graph.get(n)!].filter((t) => c.includes(t)).join(',')}`).join('; ')})`);
  assert.deepEqual(found, []);
});

test('the cycle finder finds a circle (self-test)', () => {
  const graph = new Map([
    ['pool', new Set(['admission'])],
    ['admission', new Set(['pool', 'util'])],
    ['util', new Set<string>()],
  ]);
  assert.deepEqual(cycles(graph), [['admission', 'pool']]);
});

test('admission sits above pool and balancer; pool needs neither', () => {
  const graph = folderGraph();
  for (const lower of ['admission', 'balancer', 'affinity', 'proxy']) assert.ok(!graph.get('pool')!.has(lower), `pool imports ${lower}`);
  assert.ok(graph.get('admission')!.has('pool'));
});
