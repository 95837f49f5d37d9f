// The EventStore port's contract, run against every adapter (see eventstore.*.test.ts).
// Not a test file itself (no .test.ts suffix): each adapter's test file calls conformanceSuite().
//
// Tests share one store per suite but each uses fresh random stream names, so they do not
// see each other's streams. Tests run one after another, so a test that takes
// lastPosition() first owns everything appended to the log after it.
import { randomUUID } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { commitHash, GENESIS_HASH } from '../src/audit/hash.ts';
import type { Commit, EventEnvelope, StoredCommit } from '../src/contracts/envelope.ts';
import type { AppendResult, EventStore, ExpectedVersion, StoreError, StreamRead } from '../src/ports/eventStore.ts';
import { suite } from './lib/harness.ts';

export interface StoreUnderTest {
  readonly store: EventStore;
  cleanup(): Promise<void>;
}

interface Ctx {
  sut?: StoreUnderTest;
}

const rid = (): string => randomUUID();
const freshStream = (aggregate = 'conformance'): string => `${aggregate}.${rid()}`;

/** A commit of `count` events with every envelope field set to something checkable. */
export const makeCommit = (stream: string, count = 1, firstVersion = 1): Commit => {
  const commitId = rid();
  const correlationId = rid();
  const events: EventEnvelope[] = Array.from({ length: count }, (_, i) => ({
    id: rid(),
    type: i % 2 === 0 ? 'ThingHappened' : 'OtherThingHappened',
    stream,
    version: firstVersion + i,
    time: new Date(Date.UTC(2024, 0, 1, 0, 0, i)).toISOString(),
    correlationId,
    causationId: i === 0 ? correlationId : `${commitId}/${i - 1}`,
    domain: 'conformance',
    actor: 'tester@example',
    schema: 1 + (i % 3),
    data: {
      type: i % 2 === 0 ? 'ThingHappened' : 'OtherThingHappened',
      index: i,
      label: `événement ${i} ✓`,
      nested: { list: [1, 'two', { three: 3 }], empty: {}, nothing: null, flag: i % 2 === 0 },
    } as { readonly type: string },
  }));
  return { commitId, stream, events };
};

const within = async <T>(ms: number, what: string, p: Promise<T>): Promise<T> => {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
};

const waitFor = async (what: string, cond: () => boolean, ms = 15_000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
};

const show = (e: StoreError): string => `${e.kind}: ${e.message}`;

const appendOk = async (store: EventStore, commit: Commit, expected: ExpectedVersion): Promise<AppendResult> => {
  const r = await store.append(commit, expected)();
  if (E.isLeft(r)) throw new Error(`append of ${commit.stream} at ${String(expected)} failed: ${show(r.left)}`);
  return r.right;
};

const readOk = async (store: EventStore, stream: string): Promise<StreamRead> => {
  const r = await store.readStream(stream)();
  if (E.isLeft(r)) throw new Error(`readStream(${stream}) failed: ${show(r.left)}`);
  return r.right;
};

const lastOk = async (store: EventStore): Promise<bigint> => {
  const r = await store.lastPosition()();
  if (E.isLeft(r)) throw new Error(`lastPosition failed: ${show(r.left)}`);
  return r.right;
};

const collect = async (it: AsyncIterable<StoredCommit>, what: string): Promise<StoredCommit[]> =>
  within(20_000, what, (async () => {
    const out: StoredCommit[] = [];
    for await (const c of it) out.push(c);
    return out;
  })());

const stored = (c: Commit, r: AppendResult): StoredCommit => ({ ...c, revision: r.revision, position: r.position });

const assertIncreasing = (positions: readonly bigint[], what: string): void => {
  for (let i = 1; i < positions.length; i++) {
    const prev = positions[i - 1]!;
    const cur = positions[i]!;
    assert.ok(cur > prev, `${what}: position ${cur} at index ${i} does not follow ${prev}`);
  }
};

/** bigint-safe rendering for assertion messages (JSON.stringify throws on bigint). */
const ids = (cs: readonly StoredCommit[]): string[] => cs.map((c) => c.commitId);

export function conformanceSuite(name: string, factory: () => Promise<StoreUnderTest>): void {
  const s = suite<Ctx>(`${name} conformance`, {});
  const store = (ctx: Ctx): EventStore => {
    if (!ctx.sut) throw new Error('store not created (before hook failed)');
    return ctx.sut.store;
  };

  s.before(async (ctx) => {
    ctx.sut = await factory();
  });
  s.after(async (ctx) => {
    const sut = ctx.sut;
    ctx.sut = undefined;
    await sut?.cleanup();
  });

  s('append with expected none, read back, append at the returned revision, stale revision is refused', async (ctx) => {
    const st = store(ctx);
    const stream = freshStream();
    const c1 = makeCommit(stream, 1, 1);
    const r1 = await appendOk(st, c1, 'none');
    assert.is(r1.duplicate, false, 'first append is not a duplicate');

    const read1 = await readOk(st, stream);
    assert.is(read1.revision, r1.revision, 'readStream revision is the append revision');
    assert.equal(read1.commits, [stored(c1, r1)]);

    const c2 = makeCommit(stream, 2, 2);
    const r2 = await appendOk(st, c2, r1.revision);
    assert.is(r2.duplicate, false);
    assert.is.not(r2.revision, r1.revision, 'revision moves on');
    assert.ok(r2.position > r1.position, 'position moves on');
    const before = await lastOk(st);

    const c3 = makeCommit(stream, 3, 2);
    const stale = await st.append(c3, r1.revision)();
    if (E.isRight(stale)) assert.unreachable('append at a stale revision succeeded');
    else {
      assert.is(stale.left.kind, 'wrong-expected-version');
      if (stale.left.kind === 'wrong-expected-version') {
        assert.is(stale.left.stream, stream);
        assert.is(stale.left.expected, r1.revision);
      }
    }
    const again = await st.append(makeCommit(stream, 1, 1), 'none')();
    assert.ok(E.isLeft(again) && again.left.kind === 'wrong-expected-version', "'none' on an existing stream is refused");

    const read2 = await readOk(st, stream);
    assert.equal(read2.commits, [stored(c1, r1), stored(c2, r2)], 'refused appends stored nothing');
    assert.is(read2.revision, r2.revision);
    assert.is(await lastOk(st), before, 'refused appends added nothing to the log');
  });

  s('20 concurrent appends at the same revision: exactly one wins', async (ctx) => {
    const st = store(ctx);
    const stream = freshStream();
    const first = makeCommit(stream, 1, 1);
    const r0 = await appendOk(st, first, 'none');

    const racers = Array.from({ length: 20 }, () => makeCommit(stream, 2, 2));
    const results = await Promise.all(racers.map((c) => st.append(c, r0.revision)()));
    const winners = results.flatMap((r, i) => (E.isRight(r) ? [{ commit: racers[i]!, result: r.right }] : []));
    const losers = results.filter(E.isLeft);
    assert.is(winners.length, 1, 'exactly one append wins');
    assert.is(losers.length, 19);
    for (const l of losers) assert.is(l.left.kind, 'wrong-expected-version', show(l.left));

    const read = await readOk(st, stream);
    const w = winners[0]!;
    assert.equal(ids(read.commits), [first.commitId, w.commit.commitId], 'the stream holds exactly one new commit, the winner');
    assert.equal(read.commits[1], stored(w.commit, w.result));
    assert.is(read.revision, w.result.revision);
  });

  s("20 concurrent appends with expected 'none' on a new stream: exactly one wins", async (ctx) => {
    const st = store(ctx);
    const stream = freshStream();
    const racers = Array.from({ length: 20 }, () => makeCommit(stream, 1, 1));
    const results = await Promise.all(racers.map((c) => st.append(c, 'none')()));
    const won = results.map((r, i) => (E.isRight(r) ? i : -1)).filter((i) => i >= 0);
    assert.is(won.length, 1, 'exactly one append wins');
    for (const r of results) if (E.isLeft(r)) assert.is(r.left.kind, 'wrong-expected-version', show(r.left));
    const read = await readOk(st, stream);
    assert.equal(ids(read.commits), [racers[won[0]!]!.commitId]);
  });

  s('a retried append of the same commit is stored once and reported as a duplicate', async (ctx) => {
    const st = store(ctx);
    const stream = freshStream();
    const c = makeCommit(stream, 3, 1);
    const r1 = await appendOk(st, c, 'none');
    const r2 = await appendOk(st, c, 'none');
    assert.is(r1.duplicate, false);
    assert.is(r2.duplicate, true, 'the retry is reported as a duplicate');
    assert.is(r2.revision, r1.revision, 'same revision');
    assert.is(r2.position, r1.position, 'same position');
    assert.is(await lastOk(st), r1.position, 'nothing new in the log');
    const read = await readOk(st, stream);
    assert.equal(read.commits, [stored(c, r1)], 'one commit in the stream');

    // Same again on a stream that already has history, at a numeric revision.
    const c2 = makeCommit(stream, 2, 4);
    const r3 = await appendOk(st, c2, r1.revision);
    const r4 = await appendOk(st, c2, r1.revision);
    assert.is(r4.duplicate, true);
    assert.is(r4.revision, r3.revision);
    assert.is(r4.position, r3.position);
    assert.equal(ids((await readOk(st, stream)).commits), [c.commitId, c2.commitId]);
  });

  s('a commit of several events is stored and read back whole, in order, every field intact', async (ctx) => {
    const st = store(ctx);
    const before = await lastOk(st);
    const stream = freshStream('connection');
    const c = makeCommit(stream, 7, 1);
    const r = await appendOk(st, c, 'none');

    const read = await readOk(st, stream);
    assert.is(read.commits.length, 1);
    const got = read.commits[0]!;
    assert.equal(got, stored(c, r), 'readStream returns the commit exactly as appended');
    assert.equal(got.events.map((e) => e.version), [1, 2, 3, 4, 5, 6, 7], 'events in order');

    const all = await collect(st.readAll(before), 'readAll of one multi-event commit');
    assert.equal(all, [stored(c, r)], 'readAll returns the same single commit, not single events');

    // A refused multi-event commit leaves none of its events behind.
    const refused = await st.append(makeCommit(stream, 4, 8), 'none')();
    assert.ok(E.isLeft(refused));
    assert.equal(ids((await readOk(st, stream)).commits), [c.commitId]);
  });

  s("readStream of a missing stream is empty with revision 'none'", async (ctx) => {
    const read = await readOk(store(ctx), freshStream());
    assert.equal(read.commits, []);
    assert.is(read.revision, 'none');
  });

  s('readAll(after, until): strictly after, in position order, until inclusive', async (ctx) => {
    const st = store(ctx);
    const before = await lastOk(st);
    const streams = [freshStream('a'), freshStream('b'), freshStream('c')];
    const revs = new Map<string, ExpectedVersion>();
    const written: StoredCommit[] = [];
    for (let i = 0; i < 9; i++) {
      const stream = streams[i % 3]!;
      const c = makeCommit(stream, 1 + (i % 2), Math.floor(i / 3) * 2 + 1);
      const r = await appendOk(st, c, revs.get(stream) ?? 'none');
      revs.set(stream, r.revision);
      written.push(stored(c, r));
    }
    const pos = written.map((c) => c.position);
    assertIncreasing(pos, 'append positions');
    const p = (i: number): bigint => pos[i]!;

    const all = await collect(st.readAll(before), 'readAll(before)');
    assert.equal(all, written, 'everything after `before`, in order, whole commits');
    assertIncreasing(all.map((c) => c.position), 'readAll positions');

    assert.equal(ids(await collect(st.readAll(p(1), p(4)), 'readAll(p1, p4)')), ids(written.slice(2, 5)), 'after exclusive, until inclusive');
    assert.equal(ids(await collect(st.readAll(before, p(0)), 'readAll(before, p0)')), ids(written.slice(0, 1)));
    assert.equal(ids(await collect(st.readAll(p(5)), 'readAll(p5)')), ids(written.slice(6)), 'default until is the end');
    assert.equal(await collect(st.readAll(p(8)), 'readAll(last)'), [], 'nothing after the last position');
    assert.equal(await collect(st.readAll(p(3), p(3)), 'readAll(p3, p3)'), [], 'empty range');
    assert.equal(
      ids(await collect(st.readAll(p(6), p(8) + 1_000_000n), 'readAll(p6, beyond the end)')),
      ids(written.slice(7)),
      'an until beyond the end stops at the end',
    );
    const fromStart = await collect(st.readAll(0n), 'readAll(0)');
    assert.equal(ids(fromStart.slice(-9)), ids(written), 'readAll(0n) reads from the beginning');
    assertIncreasing(fromStart.map((c) => c.position), 'readAll(0n) positions');
  });

  s('subscribeAll: catches up, then live, no gap, no duplicate, in order, one commit at a time', async (ctx) => {
    const st = store(ctx);
    const before = await lastOk(st);
    const streams = [freshStream('sub'), freshStream('sub'), freshStream('sub')];
    const revs = new Map<string, ExpectedVersion>();
    const appendNext = async (i: number): Promise<StoredCommit> => {
      const stream = streams[i % streams.length]!;
      const c = makeCommit(stream, 1 + (i % 3));
      const r = await appendOk(st, c, revs.get(stream) ?? 'none');
      revs.set(stream, r.revision);
      return stored(c, r);
    };

    const existing: StoredCommit[] = [];
    for (let i = 0; i < 25; i++) existing.push(await appendNext(i));

    // Appends racing with the catch-up: started before subscribeAll is even called.
    const racing = (async () => {
      const out: StoredCommit[] = [];
      for (let i = 25; i < 60; i++) {
        out.push(await appendNext(i));
        if (i % 5 === 0) await new Promise((r) => setImmediate(r));
      }
      return out;
    })();

    const received: StoredCommit[] = [];
    let inFlight = 0;
    let maxInFlight = 0;
    const errors: StoreError[] = [];
    const sub = await st.subscribeAll(before, {
      onCommit: async (c) => {
        inFlight++;
        maxInFlight = Math.max(maxInFlight, inFlight);
        // Yield so that a store that does not wait for the handler would overlap calls.
        if (received.length % 4 === 0) await new Promise((r) => setTimeout(r, 1));
        received.push(c);
        inFlight--;
      },
      onError: (e) => errors.push(e),
    });
    try {
      await within(20_000, 'caughtUp', sub.caughtUp);
      assert.ok(received.length >= existing.length, `caughtUp resolved after ${received.length} of ${existing.length} existing commits`);
      assert.equal(ids(received.slice(0, existing.length)), ids(existing), 'the existing commits come first, in order');

      const raced = await within(30_000, 'racing appends', racing);
      const live: StoredCommit[] = [];
      for (let i = 60; i < 70; i++) live.push(await appendNext(i));
      const expected = [...existing, ...raced, ...live];

      await waitFor(`${expected.length} commits (have ${received.length})`, () => received.length >= expected.length);
      await new Promise((r) => setTimeout(r, 100)); // room for a stray duplicate to show up
      assert.equal(errors.map(show), [], 'no subscription errors');
      assert.is(received.length, expected.length, 'no duplicate deliveries');
      assert.is(new Set(ids(received)).size, received.length, 'every commitId once');
      assert.equal(new Set(ids(received)), new Set(ids(expected)), 'no gap: every appended commit delivered');
      assertIncreasing(received.map((c) => c.position), 'delivered positions');
      assert.equal(received, expected, 'delivered commits equal the appended ones, in append order');
      assert.ok(received.every((c) => c.position > before), 'nothing at or before `after`');
      assert.is(maxInFlight, 1, 'handler calls never overlap');
    } finally {
      await sub.stop();
      await racing.catch(() => undefined);
    }

    const n = received.length;
    await appendNext(70);
    await new Promise((r) => setTimeout(r, 200));
    assert.is(received.length, n, 'nothing delivered after stop()');
  });

  s('subscribeAll at the end of the log: caughtUp resolves at once, then live commits arrive', async (ctx) => {
    const st = store(ctx);
    const stream = freshStream('sub');
    await appendOk(st, makeCommit(stream), 'none');
    const end = await lastOk(st);
    const received: StoredCommit[] = [];
    const sub = await st.subscribeAll(end, { onCommit: (c) => void received.push(c) });
    try {
      await within(5_000, 'caughtUp with nothing to catch up', sub.caughtUp);
      assert.equal(received, []);
      const c = makeCommit(freshStream('sub'), 2);
      const r = await appendOk(st, c, 'none');
      await waitFor('the live commit', () => received.length >= 1);
      assert.equal(received, [stored(c, r)]);
    } finally {
      await sub.stop();
    }
  });

  s('subscribeAll: a handler that throws ends the subscription through onError', async (ctx) => {
    const st = store(ctx);
    const before = await lastOk(st);
    const stream = freshStream('sub');
    const r1 = await appendOk(st, makeCommit(stream), 'none');
    await appendOk(st, makeCommit(stream), r1.revision);
    let calls = 0;
    const errors: StoreError[] = [];
    const sub = await st.subscribeAll(before, {
      onCommit: () => {
        calls++;
        throw new Error('handler refused');
      },
      onError: (e) => errors.push(e),
    });
    try {
      await waitFor('onError', () => errors.length > 0, 10_000);
      await new Promise((r) => setTimeout(r, 100));
      assert.is(calls, 1, 'no commit delivered after the failing one');
      assert.is(errors.length, 1);
      assert.match(errors[0]!.message, /handler refused/);
    } finally {
      await sub.stop();
    }
  });

  s('commit-level fields (prevHash, hash) round-trip through append, readStream, readAll and subscribeAll', async (ctx) => {
    const st = store(ctx);
    const before = await lastOk(st);
    const stream = freshStream('connection');
    const chained = (c: Commit, prevHash: string): Commit => {
      const withPrev = { ...c, prevHash };
      return { ...withPrev, hash: commitHash(withPrev) };
    };
    const c1 = chained(makeCommit(stream, 2, 1), GENESIS_HASH);
    const r1 = await appendOk(st, c1, 'none');
    const c2 = chained(makeCommit(stream, 1, 3), c1.hash!);
    const r2 = await appendOk(st, c2, r1.revision);
    const expected = [stored(c1, r1), stored(c2, r2)];

    const read = await readOk(st, stream);
    assert.equal(read.commits, expected, 'readStream keeps prevHash and hash');
    assert.is(read.commits[1]!.prevHash, read.commits[0]!.hash, 'the link survives the store');
    for (const c of read.commits) assert.is(commitHash(c), c.hash, 'the hash still matches the content read back');
    assert.equal(await collect(st.readAll(before), 'readAll of chained commits'), expected, 'readAll keeps them');
    const received: StoredCommit[] = [];
    const sub = await st.subscribeAll(before, { onCommit: (c) => void received.push(c) });
    try {
      await waitFor('both chained commits', () => received.length >= 2);
      assert.equal(received, expected, 'subscribeAll keeps them');
    } finally {
      await sub.stop();
    }
  });

  s('lastPosition is the position of the last append', async (ctx) => {
    const st = store(ctx);
    const stream = freshStream();
    const r1 = await appendOk(st, makeCommit(stream, 2), 'none');
    assert.is(await lastOk(st), r1.position);
    const r2 = await appendOk(st, makeCommit(freshStream(), 1), 'none');
    const r3 = await appendOk(st, makeCommit(stream, 3), r1.revision);
    assert.ok(r3.position > r2.position);
    assert.is(await lastOk(st), r3.position);
  });

  s.run();
}
