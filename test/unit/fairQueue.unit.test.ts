// The fair queue behind command handling and the process manager: bounded concurrency, one task
// at a time per key in queue order, and lanes served in turn, so that a lane with a backlog of a
// thousand does not make another lane's task wait behind it.
import * as assert from 'uvu/assert';
import { FairQueue } from '../../src/lib/fairQueue.ts';
import { suite } from '../lib/harness.ts';

const s = suite('fair queue');
const tick = () => new Promise<void>((r) => setImmediate(r));

s('never more than the limit at once, and every task runs', async () => {
  const q = new FairQueue(3);
  let running = 0;
  let peak = 0;
  let ran = 0;
  for (let i = 0; i < 50; i++) {
    void q.enqueue(`lane-${i % 4}`, `key-${i}`, async () => {
      running++;
      peak = Math.max(peak, running);
      await tick();
      running--;
      ran++;
    });
  }
  await q.drain();
  assert.is(ran, 50);
  assert.is(peak, 3);
});

s('tasks of one key run one at a time, in the order queued, across lanes', async () => {
  const q = new FairQueue(10);
  const seen: string[] = [];
  let inKey = 0;
  const task = (name: string) => async () => {
    inKey++;
    assert.is(inKey, 1, 'one at a time per key');
    await tick();
    seen.push(name);
    inKey--;
  };
  void q.enqueue('client', 'connection.x', task('request'));
  void q.enqueue('agent', 'connection.x', task('report'));
  void q.enqueue('operator', 'connection.x', task('close'));
  await q.drain();
  assert.equal(seen, ['request', 'report', 'close']);
});

s("a lane's backlog does not delay another lane's task", async () => {
  const q = new FairQueue(2);
  const started: string[] = [];
  for (let i = 0; i < 1000; i++) void q.enqueue('flood', `f-${i}`, async () => void started.push(`f-${i}`));
  const b = q.enqueue('bob', 'b-1', async () => void started.push('b-1'));
  await b;
  // Two were already running when bob came; served in turn, bob's is among the next two.
  assert.ok(started.indexOf('b-1') <= 3, `bob started at ${started.indexOf('b-1')}`);
  await q.drain();
  assert.is(started.length, 1001);
});

s('room() holds a feeder back until the backlog is below the mark', async () => {
  const q = new FairQueue(1);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  void q.enqueue('a', 'k0', () => gate);
  for (let i = 1; i <= 5; i++) void q.enqueue('a', `k${i}`, async () => undefined);
  assert.is(q.queued, 5);
  let roomy = false;
  const r = q.room(3).then(() => (roomy = true));
  await tick();
  assert.not.ok(roomy, 'five waiting, room below three not there yet');
  release();
  await r;
  assert.ok(q.queued < 3);
  await q.drain();
});

s.run();
