// The in-process log feed: a follower that starts behind reads the store up to the live position,
// then takes the pushed commits: in order, no gap, no duplicate, also with pushes during catch-up.
import * as assert from 'uvu/assert';
import { asPosition, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { createLogFeed } from '../../src/read/logFeed.ts';
import { suite } from '../lib/harness.ts';

const commit = (p: number): StoredCommit => ({ commitId: `c${p}`, stream: `s.${p}`, events: [], revision: p, position: asPosition(p) });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const s = suite('log feed');

s('a follower behind the live position catches up from the store, then follows live, exactly once each', async () => {
  const log = Array.from({ length: 50 }, (_, i) => commit(i + 1));
  let live = 0n;
  const store = {
    async *readAll(after: bigint, until?: bigint) {
      for (const c of log) {
        if (c.position <= after || (until !== undefined && c.position > until)) continue;
        await sleep(1); // slow reads: pushes arrive while catching up
        yield c;
      }
    },
  } as unknown as EventStore;
  const feed = createLogFeed(store, () => live);
  for (const c of log.slice(0, 30)) {
    live = c.position;
    feed.push(c);
  }
  const got: number[] = [];
  const following = feed.follow(10n, { onCommit: async (c) => void got.push(Number(c.position)) });
  // Pushed while the follower reads 11..30 from the store.
  for (const c of log.slice(30)) {
    live = c.position;
    feed.push(c);
    await sleep(2);
  }
  const sub = await following;
  await sub.caughtUp;
  while (got.length < 40) await sleep(5);
  await sub.stop();
  assert.equal(got, Array.from({ length: 40 }, (_, i) => i + 11));
});

s('a failing handler stops the follower and says where', async () => {
  const feed = createLogFeed({ async *readAll() {} } as unknown as EventStore, () => 0n);
  const errors: string[] = [];
  const sub = await feed.follow(0n, { onCommit: (c) => { if (c.position === 2n) throw new Error('boom'); }, onError: (e) => void errors.push(e.message) });
  feed.push(commit(1));
  feed.push(commit(2));
  feed.push(commit(3));
  await sleep(20);
  await sub.stop();
  assert.equal(errors, ['follower failed at position 2: boom']);
});
s.run();
