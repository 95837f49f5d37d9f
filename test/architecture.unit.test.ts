// The shape of the code, checked: which folder may import which (ARCHITECTURE.md), and no
// import cycle between files or between folders (scripts/architecture.ts).
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { checkArchitecture, cycles, folderOf, importGraph } from '../scripts/architecture.ts';
import { suite } from './lib/harness.ts';

const ROOT = join(fileURLToPath(new URL('.', import.meta.url)), '..');
const s = suite('architecture');

s('the product follows the import rules and has no cycle', () => {
  const g = importGraph(ROOT);
  assert.ok(g.size > 100, `read ${g.size} files`);
  assert.equal(checkArchitecture(g), []);
});

s('the check finds a cycle between files, and between folders, when one is there', () => {
  const g = new Map(importGraph(ROOT));
  // A contract that imports the runtime: a rule broken, a folder cycle, and (through the control
  // plane, which imports the contracts) a file cycle.
  g.set('src/contracts/commands.ts', [...g.get('src/contracts/commands.ts')!, 'src/runtime/controlPlane.ts']);
  const problems = checkArchitecture(g).map((p) => `${p.kind}: ${p.message}`);
  assert.ok(problems.some((p) => p.startsWith('rule: src/contracts/commands.ts imports src/runtime/controlPlane.ts: contracts are the wire')), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('file-cycle: import cycle:') && p.includes('src/contracts/commands.ts')), problems.join('\n'));
  assert.ok(problems.some((p) => p.startsWith('folder-cycle:') && p.includes('src/contracts') && p.includes('src/runtime')), problems.join('\n'));
});

s('cycles are found once each, with the path that closes them', () => {
  const g = new Map([
    ['a', ['b']],
    ['b', ['c']],
    ['c', ['a', 'd']],
    ['d', []],
    ['e', ['e']],
  ]);
  assert.equal(cycles(g), [['a', 'b', 'c', 'a'], ['e', 'e']]);
  assert.equal(cycles(new Map([['x', ['y']], ['y', []]])), []);
  assert.equal([folderOf('src/runtime/http.ts'), folderOf('aggregates/connection/types.ts'), folderOf('infra/log.ts')], ['src/runtime', 'aggregates', 'infra']);
});

s.run();
