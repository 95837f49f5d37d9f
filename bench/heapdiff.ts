// What grew between two heap snapshots of one process (the soak writes them with
// --heap-snapshots: <process>.warm.heapsnapshot and <process>.end.heapsnapshot): objects counted
// and sized by constructor (or by kind for strings, arrays, closures...), largest growth first.
// Usage: npx tsx bench/heapdiff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--top 25]
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: [string[], ...unknown[]] } };
  nodes: number[];
  strings: string[];
}

const tally = (file: string): Map<string, { count: number; bytes: number }> => {
  const s = JSON.parse(readFileSync(file, 'utf8')) as Snapshot;
  const f = s.snapshot.meta.node_fields;
  const width = f.length;
  const [iType, iName, iSize] = [f.indexOf('type'), f.indexOf('name'), f.indexOf('self_size')];
  const types = s.snapshot.meta.node_types[0];
  const out = new Map<string, { count: number; bytes: number }>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!]!;
    const name = type === 'object' || type === 'native' ? s.strings[s.nodes[i + iName]!]! : `(${type})`;
    const e = out.get(name) ?? { count: 0, bytes: 0 };
    e.count++;
    e.bytes += s.nodes[i + iSize]!;
    out.set(name, e);
  }
  return out;
};

const { values: o, positionals: [before, after] } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
if (!before || !after) throw new Error('usage: npx tsx bench/heapdiff.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--top N]');
const a = tally(before);
const b = tally(after);
const rows = [...new Set([...a.keys(), ...b.keys()])]
  .map((k) => ({ k, dCount: (b.get(k)?.count ?? 0) - (a.get(k)?.count ?? 0), dBytes: (b.get(k)?.bytes ?? 0) - (a.get(k)?.bytes ?? 0), count: b.get(k)?.count ?? 0 }))
  .sort((x, y) => y.dBytes - x.dBytes)
  .slice(0, Number(o.top));
const total = (m: Map<string, { bytes: number }>) => [...m.values()].reduce((s, e) => s + e.bytes, 0);
process.stdout.write(`self sizes: ${(total(a) / 2 ** 20).toFixed(2)} MiB -> ${(total(b) / 2 ** 20).toFixed(2)} MiB\n`);
process.stdout.write(`${'constructor or kind'.padEnd(48)} ${'objects'.padStart(9)} ${'+objects'.padStart(9)} ${'+KiB'.padStart(9)}\n`);
for (const r of rows) process.stdout.write(`${r.k.slice(0, 48).padEnd(48)} ${String(r.count).padStart(9)} ${String(r.dCount).padStart(9)} ${(r.dBytes / 1024).toFixed(1).padStart(9)}\n`);
