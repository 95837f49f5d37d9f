// The import rules that keep the shape of the code (ARCHITECTURE.md), checked over the import
// graph of the product's files: which folder may import which, and no cycle between files or
// between folders. `npm run check:imports` prints every problem; the test suite runs it too
// (test/architecture.unit.test.ts).
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

export type Graph = ReadonlyMap<string, readonly string[]>;

const PRODUCT = ['aggregates', 'projections', 'src', 'infra', 'node-agent'];

const walk = (root: string, dir: string): string[] =>
  readdirSync(join(root, dir)).flatMap((name) => {
    const rel = join(dir, name);
    if (statSync(join(root, rel)).isDirectory()) return walk(root, rel);
    return name.endsWith('.ts') ? [rel] : [];
  });

const SPEC = /(?:^|\n)\s*(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g;

/** file -> the product files and packages it imports ("pkg:nats", "pkg:node:fs"). Type-only imports count: they shape the design too. */
export const importGraph = (root: string): Map<string, string[]> => {
  const g = new Map<string, string[]>();
  for (const top of PRODUCT) {
    for (const file of walk(root, top)) {
      const text = readFileSync(join(root, file), 'utf8');
      const deps: string[] = [];
      for (const m of text.matchAll(SPEC)) {
        const spec = m[1] ?? m[2]!;
        deps.push(spec.startsWith('.') ? normalize(join(dirname(file), spec)) : `pkg:${spec}`);
      }
      g.set(file, [...new Set(deps)]);
    }
  }
  return g;
};

/** The folder a file counts in: src/<part> for src, the top-level folder otherwise. */
export const folderOf = (file: string): string => {
  const parts = file.split('/');
  return parts[0] === 'src' && parts.length > 2 ? `src/${parts[1]}` : parts[0]!;
};

interface Rule {
  readonly from: (file: string) => boolean;
  /** What the file may import among the product's folders (packages are checked by `forbidPackages`). */
  readonly allow?: readonly string[];
  readonly forbidPackages?: RegExp;
  readonly why: string;
}

const under = (...prefixes: string[]) => (f: string) => prefixes.some((p) => f.startsWith(`${p}/`));
/** The workflows' one I/O part: the runners. The rest are pure reactions. */
const WORKFLOW_RUNNERS = ['src/workflows/runner.ts', 'src/workflows/stepRunner.ts'];

export const RULES: readonly Rule[] = [
  { from: under('src/lib'), allow: ['src/lib'], forbidPackages: /^nats$/, why: 'src/lib holds small helpers that know nothing of the mesh' },
  { from: under('aggregates'), allow: ['aggregates'], forbidPackages: /^(nats|node:(fs|net|child_process|http|os))$/, why: 'aggregates decide: pure, importing nothing outside themselves' },
  { from: under('projections'), allow: ['aggregates', 'projections', 'src/contracts'], forbidPackages: /^(nats|node:)/, why: 'projections fold: pure, over aggregates and the wire contracts' },
  { from: under('src/contracts'), allow: ['src/contracts', 'aggregates'], forbidPackages: /^(nats|node:(fs|net|child_process|http|os))$/, why: 'contracts are the wire: at the bottom' },
  { from: under('src/ports'), allow: ['src/ports', 'src/contracts', 'aggregates'], forbidPackages: /^(nats|node:)/, why: 'ports are interfaces: at the bottom' },
  { from: under('infra'), allow: ['infra', 'src/contracts', 'src/ports', 'src/lib'], why: 'infra holds adapters: they implement ports and speak contracts (and use the mesh-agnostic helpers of src/lib), nothing else of src' },
  {
    from: (f) => f.startsWith('src/workflows/') && !WORKFLOW_RUNNERS.includes(f),
    allow: ['src/workflows', 'src/contracts', 'src/ports', 'src/command', 'src/lib', 'aggregates', 'projections'],
    forbidPackages: /^(nats|node:)/,
    why: 'workflow reactions are pure: the runner is the one part that does I/O',
  },
  {
    from: under('src/dashboard'),
    allow: ['src/dashboard', 'src/read', 'src/contracts', 'aggregates', 'projections'],
    forbidPackages: /^(nats|node:|fp-ts)/,
    why: 'the dashboard page runs in a browser: no Node module, no NATS; it reads the answers of src/read (types only)',
  },
  { from: under('node-agent'), allow: ['node-agent', 'src/client', 'src/contracts', 'src/ports', 'src/security', 'src/lib', 'infra', 'aggregates', 'projections'], why: 'the node agent talks to the mesh through the SDK and the contracts' },
];

export interface Problem {
  readonly kind: 'rule' | 'file-cycle' | 'folder-cycle';
  readonly message: string;
}

const allowedFor = (file: string, target: string, rule: Rule): boolean =>
  !rule.allow || rule.allow.some((a) => target === a || target.startsWith(`${a}/`)) || !PRODUCT.some((p) => target.startsWith(`${p}/`));

/** Cycles in a directed graph, each once, as the path that closes it (Tarjan's components, then one path per component). */
export const cycles = (g: Graph): string[][] => {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const strong = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      const self = (g.get(v) ?? []).includes(v);
      if (comp.length > 1 || self) out.push(pathThrough(g, new Set(comp), v));
    }
  };
  for (const v of [...g.keys()].sort()) if (!idx.has(v)) strong(v);
  return out;
};

/** One cycle inside a strongly connected component, from `start` back to it. */
const pathThrough = (g: Graph, comp: ReadonlySet<string>, start: string): string[] => {
  const prev = new Map<string, string>();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of g.get(v) ?? []) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const path = [v];
        for (let x = v; x !== start; ) path.unshift((x = prev.get(x)!));
        return [...path, start];
      }
      if (!seen.has(w)) {
        seen.add(w);
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start, start];
};

export const folderGraph = (g: Graph): Map<string, string[]> => {
  const fg = new Map<string, Set<string>>();
  for (const [file, deps] of g) {
    const from = folderOf(file);
    const set = fg.get(from) ?? new Set<string>();
    fg.set(from, set);
    for (const d of deps) if (g.has(d) && folderOf(d) !== from) set.add(folderOf(d));
  }
  return new Map([...fg].map(([k, v]) => [k, [...v].sort()]));
};

export const checkArchitecture = (g: Graph): Problem[] => {
  const problems: Problem[] = [];
  for (const [file, deps] of g) {
    for (const rule of RULES.filter((r) => r.from(file))) {
      for (const d of deps) {
        if (d.startsWith('pkg:')) {
          if (rule.forbidPackages?.test(d.slice(4))) problems.push({ kind: 'rule', message: `${file} imports ${d.slice(4)}: ${rule.why}` });
        } else if (!allowedFor(file, d, rule)) problems.push({ kind: 'rule', message: `${file} imports ${d}: ${rule.why}` });
      }
    }
  }
  const fileGraph = new Map([...g].map(([k, v]) => [k, v.filter((d) => g.has(d))]));
  for (const c of cycles(fileGraph)) problems.push({ kind: 'file-cycle', message: `import cycle: ${c.join(' -> ')}` });
  for (const c of cycles(folderGraph(g))) problems.push({ kind: 'folder-cycle', message: `folders import each other: ${c.join(' -> ')}` });
  return problems;
};

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = join(dirname(new URL(import.meta.url).pathname), '..');
  const problems = checkArchitecture(importGraph(root));
  for (const p of problems) process.stdout.write(`${p.kind}: ${p.message}\n`);
  process.stdout.write(`${problems.length} problem${problems.length === 1 ? '' : 's'} in ${relative(process.cwd(), root) || '.'}\n`);
  process.exitCode = problems.length > 0 ? 1 : 0;
}
