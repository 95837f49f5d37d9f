// A sealer keeps only its most recent seals in memory (found by the soak, bench/soak.ts: the
// control plane's heap grew by every seal it had appended, a position and a hash per commit).
import * as assert from 'uvu/assert';
import { APPENDED_KEPT, startSealer } from '../../src/audit/sealer.ts';
import { asPosition, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { Seal } from '../../src/contracts/seal.ts';
import type { EventStore, SubscribeHandlers } from '../../src/ports/eventStore.ts';
import type { SealStore, SealTip } from '../../src/ports/sealStore.ts';
import { createLogger } from '../../infra/log.ts';
import { suite } from '../lib/harness.ts';

const s = suite('sealer: bounded memory');

s('after thousands of seals it holds the last APPENDED_KEPT, and every commit is sealed', async () => {
  let handlers: SubscribeHandlers | undefined;
  const store = { subscribeAll: async (_after: bigint, h: SubscribeHandlers) => ((handlers = h), { stop: async () => undefined, caughtUp: Promise.resolve() }) } as unknown as EventStore;
  const stored: Seal[] = [];
  const seals: SealStore = {
    last: async (): Promise<SealTip | undefined> => (stored.length ? { sequence: stored.length, seal: stored[stored.length - 1]! } : undefined),
    append: async (seal, after) => (after === stored.length ? (stored.push(seal), { kind: 'appended', sequence: stored.length, duplicate: false }) : { kind: 'conflict' }),
    readAll: async function* () {},
  };
  const sealer = await startSealer({ store, seals, log: createLogger('test', {}, undefined, 'silent'), maxEntries: 2, maxDelayMs: 10_000 });
  const commits = 2 * (APPENDED_KEPT * 5 + 3);
  for (let i = 1; i <= commits; i++) {
    const c = { commitId: `c${i}`, stream: `connection.x${i}`, events: [], revision: 1, position: asPosition(i) } as unknown as StoredCommit;
    await handlers!.onCommit(c);
  }
  await sealer.flush();
  await sealer.stop();
  assert.is(stored.length, commits / 2);
  assert.is(sealer.sealedUpTo(), BigInt(commits));
  assert.is(sealer.appended.length, APPENDED_KEPT);
  assert.is(sealer.appended[sealer.appended.length - 1], stored[stored.length - 1]);
});

s.run();
