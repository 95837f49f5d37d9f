// What a node agent remembers stays bounded however many sides it programs and removes (found by
// the soak, bench/soak.ts: an agent's heap grew by every side it ever had).
import * as assert from 'uvu/assert';
import * as E from 'fp-ts/lib/Either.js';
import { AppliedSides } from '../../node-agent/appliedSides.ts';
import { JOURNAL_KEPT, simulatedDataplane } from '../../node-agent/simulatedDataplane.ts';
import type { SideSpec } from '../../src/contracts/nodeCommands.ts';
import { suite } from '../lib/harness.ts';

const s = suite('node agent: bounded memory');

s('removed sides are remembered for a while, then forgotten; programmed ones always', () => {
  let now = 0;
  const a = new AppliedSides(60_000, () => now);
  for (let i = 0; i < 10; i++) a.set(`held-${i}`, { generation: 1, desired: 'present' });
  // A removal every 10 ms for 10 minutes: 60,000 sides come and go.
  for (let i = 0; i < 60_000; i++, now += 10) {
    a.set(`c-${i}`, { generation: 1, desired: 'present' });
    a.set(`c-${i}`, { generation: 1, desired: 'absent' });
  }
  assert.ok(a.size <= 10 + 6001, `holds ${a.size}`);
  assert.is(a.programmed, 10);
  assert.is(a.get('c-0'), undefined, 'an old tombstone is gone');
  assert.equal(a.get('c-59999'), { generation: 1, desired: 'absent' }, 'a recent one keeps a late "present" out');
  for (let i = 0; i < 10; i++) assert.ok(a.get(`held-${i}`));
});

s('a side programmed again after its removal is no tombstone any more', () => {
  let now = 0;
  const a = new AppliedSides(1000, () => now);
  a.set('x', { generation: 1, desired: 'absent' });
  a.set('x', { generation: 2, desired: 'present' });
  now += 5000;
  a.set('y', { generation: 1, desired: 'absent' });
  assert.equal(a.get('x'), { generation: 2, desired: 'present' });
  assert.is(a.programmed, 1);
  a.set('x', { generation: 2, desired: 'present', error: 'failed' });
  assert.is(a.programmed, 0, 'a side whose programming failed is not counted');
});

s('the simulated dataplane keeps the recent calls, not all of them', async () => {
  const dp = simulatedDataplane();
  const spec = (i: number) => ({ connectionId: `c-${i}`, side: 'client', generation: 1 }) as unknown as SideSpec;
  for (let i = 0; i < 3 * JOURNAL_KEPT; i++) {
    assert.ok(E.isRight(await dp.program(spec(i))()));
    assert.ok(E.isRight(await dp.remove(spec(i))()));
  }
  assert.ok(dp.journal.length >= JOURNAL_KEPT && dp.journal.length < 2 * JOURNAL_KEPT, `journal holds ${dp.journal.length}`);
  assert.equal(dp.journal[dp.journal.length - 1], { op: 'remove', key: `c-${3 * JOURNAL_KEPT - 1}/client`, generation: 1 });
  assert.is(dp.programmed.size, 0);
});

s.run();
