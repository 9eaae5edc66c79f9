/**
 * The import graph of the sources: no circles (type imports included), and the layers point one
 * way only: converters <- inference <- server <- cli, and converters <- zoo <- server.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { test } from 'node:test';
import { ROOT } from './helpers.js';

const FOLDERS = ['converters', 'inference', 'zoo', 'server', 'cli', 'bench', 'tools', 'test'];
const IMPORT = /^\s*(?:import|export)\s+(?:[^'";]*?from\s+)?['"](\.{1,2}\/[^'"]+)['"]/gm;

function sources(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(join(ROOT, dir), { withFileTypes: true })) {
    const path = join(dir, e.name);
    if (e.isDirectory() && e.name !== 'fixtures') out.push(...sources(path));
    else if (e.isFile() && e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

/** Each source file (relative to the root) and the source files it imports. */
function importGraph(): Map<string, string[]> {
  const files = FOLDERS.flatMap((f) => {
    try {
      return sources(f);
    } catch {
      return [];
    }
  });
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(ROOT, file), 'utf8');
    const deps = [...text.matchAll(IMPORT)].map((m) => normalize(join(dirname(file), m[1]!)).replace(/\.js$/, '.ts'));
    graph.set(file, deps);
  }
  return graph;
}

/** The strongly connected components with more than one file (Tarjan, iteratively). */
function circles(graph: Map<string, string[]>): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work: { v: string; i: number }[] = [{ v: root, i: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const deps = (graph.get(top.v) ?? []).filter((d) => graph.has(d));
      if (top.i < deps.length) {
        const w = deps[top.i++]!;
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push({ v: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(top.v, Math.min(low.get(top.v)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent.v, Math.min(low.get(parent.v)!, low.get(top.v)!));
      if (low.get(top.v) === index.get(top.v)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== top.v);
        if (component.length > 1) found.push(component.sort());
      }
    }
  }
  return found;
}

test('imports: no circle anywhere in the sources', () => {
  const graph = importGraph();
  assert.ok(graph.size > 100, `read ${graph.size} files`);
  assert.deepEqual(circles(graph), []);
});

test('imports: a circle is found (the check can fail)', () => {
  const graph = new Map([
    ['a.ts', ['b.ts']],
    ['b.ts', ['c.ts']],
    ['c.ts', ['a.ts']],
    ['d.ts', ['a.ts']],
  ]);
  assert.deepEqual(circles(graph), [['a.ts', 'b.ts', 'c.ts']]);
});

test('imports: the layers point one way (converters <- inference, zoo <- server <- cli)', () => {
  const below: Record<string, string[]> = {
    converters: ['inference', 'zoo', 'server', 'cli', 'bench', 'test'],
    inference: ['zoo', 'server', 'cli', 'bench', 'test'],
    zoo: ['inference', 'server', 'cli', 'bench', 'test'],
    server: ['cli', 'bench', 'test'],
    cli: ['bench', 'test'],
  };
  const wrong: string[] = [];
  for (const [file, deps] of importGraph()) {
    const layer = file.split('/')[0]!;
    for (const dep of deps) {
      const target = relative('.', dep).split('/')[0]!;
      if (below[layer]?.includes(target)) wrong.push(`${file} -> ${dep}`);
    }
  }
  assert.deepEqual(wrong, []);
});
