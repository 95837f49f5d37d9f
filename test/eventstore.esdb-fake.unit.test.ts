// The EventStoreDB adapter WITHOUT an EventStoreDB server: its pure mapping, and the adapter
// itself driven through an in-memory FAKE of the client surface it uses (test/lib/fakeEsdb.ts).
// These tests show the adapter's own logic is right against the behaviour the fake models; they
// do not show that a real server behaves like the fake. That is what test/eventstore.esdb.test.ts
// does with NSM_ESDB_URL set, and it has not been run on the machines this was written on.
import * as E from 'fp-ts/lib/Either.js';
import { AccessDeniedError, END, START, UnavailableError, type AllStreamResolvedEvent } from '@eventstore/db-client';
import * as assert from 'uvu/assert';
import { esdbEventStore, type EsdbClient } from '../infra/eventstore/esdb.ts';
import {
  canonicalStream,
  CommitAssembler,
  commitEventId,
  decodeMetadata,
  decodeRecorded,
  esdbStreamName,
  resubscribeDelay,
  revisionToNumber,
  streamPrefix,
  toEsdbEvents,
  toExpectedRevision,
  toReadPosition,
  uuidV5,
  type DecodedEvent,
} from '../infra/eventstore/esdbMapping.ts';
import { createLogger } from '../infra/log.ts';
import type { Commit, StoredCommit } from '../src/contracts/envelope.ts';
import type { EventStore, StoreError } from '../src/ports/eventStore.ts';
import { conformanceSuite, makeCommit } from './eventstore.conformance.ts';
import { suite } from './lib/harness.ts';
import { FakeEsdb } from './lib/fakeEsdb.ts';

const quiet = createLogger('eventstore-esdb', {}, () => undefined);
const FAST = { attempts: 3, minMs: 1, maxMs: 5 };
let domains = 0;
const freshDomain = (): string => `fake${++domains}`;

const ok = <A>(r: E.Either<StoreError | string, A>, what: string): A => {
  if (E.isLeft(r)) throw new Error(`${what}: ${typeof r.left === 'string' ? r.left : `${r.left.kind}: ${r.left.message}`}`);
  return r.right;
};

const waitFor = async (what: string, cond: () => boolean, ms = 5000): Promise<void> => {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** Every event of `commit` as the adapter writes it and a $all read returns it, decoded back. */
const roundTrip = (domain: string, commit: Commit, firstRevision = 0n, firstPosition = 5000n): DecodedEvent[] =>
  toEsdbEvents(commit, 'append-1').map((e, i) => {
    const wire = JSON.parse(JSON.stringify({ data: e.data, metadata: e.metadata })) as { data: unknown; metadata: unknown };
    const position = firstPosition + BigInt(i) * 100n;
    const d = decodeRecorded(domain, {
      streamId: esdbStreamName(domain, commit.stream),
      id: e.id,
      type: e.type,
      revision: firstRevision + BigInt(i),
      data: wire.data,
      metadata: wire.metadata,
      position: { commit: position, prepare: position },
    });
    const decoded = ok(d, 'decodeRecorded');
    if (!decoded) throw new Error('our own event was skipped');
    return decoded;
  });

// ---------------------------------------------------------------------------------------------
const pure = suite('esdb mapping (pure functions, no server, no fake)');

pure('stream names: nsm.<domain>.<aggregate>.<id>, and a domain never sees another domain that shares its text', () => {
  assert.is(esdbStreamName('prod', 'connection.7f0c'), 'nsm.prod.connection.7f0c');
  assert.is(canonicalStream('prod', 'nsm.prod.connection.7f0c'), 'connection.7f0c');
  assert.is(streamPrefix('prod'), 'nsm.prod.');
  // "a" and "a-b" are both valid domains; with "-" as the separator one would see the other.
  assert.is(canonicalStream('a', esdbStreamName('a-b', 'connection.1')), undefined);
  assert.is(canonicalStream('a-b', esdbStreamName('a', 'connection.1')), undefined);
  assert.is(canonicalStream('a', 'nsm.a.'), undefined, 'the bare prefix is no stream');
  assert.is(canonicalStream('a', '$$nsm.a.connection.1'), undefined, 'the metadata stream is not ours');
  assert.throws(() => esdbStreamName('Bad.Domain', 'connection.1'), /invalid domain/);
});

pure('event ids: RFC 4122 version 5 (checked against Python uuid.uuid5), one per commit and index', () => {
  // uuid.uuid5(uuid.NAMESPACE_DNS, 'python.org') in CPython's documentation and runtime.
  assert.is(uuidV5('6ba7b810-9dad-11d1-80b4-00c04fd430c8', 'python.org'), '886313e1-3b8a-5372-9b90-0c9aee199e5d');
  // Values printed by python3: uuid.uuid5(uuid.UUID('eb9ecbc8-6852-4334-b231-1efd49b37f11'), name).
  assert.is(commitEventId('cmd-1', 0), 'decde551-407c-5c92-9aae-6a530e530f06');
  assert.is(commitEventId('cmd-1', 1), 'f1466d69-8c36-5b13-bed6-2d4475d2368e');
  assert.is(commitEventId('événement', 2), 'fdfe804a-afbc-51f3-a935-38d08ca4bbf5');
  assert.is(commitEventId('cmd-1', 0), commitEventId('cmd-1', 0), 'deterministic');
  assert.is.not(commitEventId('cmd-1', 0), commitEventId('cmd-2', 0));
});

pure('a commit maps to one JSON event per envelope and back, every envelope field intact', () => {
  const commit = makeCommit('connection.abc', 5, 3);
  const events = toEsdbEvents(commit, 'append-1');
  assert.equal(events.map((e) => e.id), commit.events.map((_, i) => commitEventId(commit.commitId, i)));
  assert.equal(events.map((e) => e.type), commit.events.map((e) => e.type));
  assert.ok(events.every((e) => e.contentType === 'application/json'));
  const meta = events[1]!.metadata as Record<string, unknown>;
  assert.is(meta.commitId, commit.commitId);
  assert.is(meta.commitIndex, 1);
  assert.is(meta.commitSize, 5);
  assert.is(meta.$correlationId, commit.events[1]!.correlationId, "ESDB's own correlation key is set too");

  const decoded = roundTrip('prod', commit);
  assert.equal(decoded.map((d) => d.envelope), commit.events);
  assert.ok(decoded.every((d) => d.stream === 'connection.abc'));
});

pure('metadata: unknown keys are ignored, a missing or bad field is named', () => {
  const commit = makeCommit('node.n1', 2);
  const meta: Record<string, unknown> = { ...(toEsdbEvents(commit, 'x')[1]!.metadata as Record<string, unknown>), addedByANewerWriter: true };
  assert.ok(E.isRight(decodeMetadata(meta, 'metadata')));
  const { actor: _actor, ...noActor } = meta;
  const missing = decodeMetadata(noActor, 'metadata');
  assert.ok(E.isLeft(missing) && missing.left.path === 'metadata.actor' && /required/.test(missing.left.message));
  const beyond = decodeMetadata({ ...meta, commitIndex: 2 }, 'metadata');
  assert.ok(E.isLeft(beyond) && beyond.left.path === 'metadata.commitIndex');
  assert.ok(E.isLeft(decodeMetadata(new Uint8Array([1, 2]), 'metadata')), 'binary metadata is not ours');
});

pure('decodeRecorded: skips system events and other domains, refuses what nsm did not write', () => {
  const base = { id: '00000000-0000-4000-8000-000000000000', revision: 0n, data: {}, metadata: {}, position: { commit: 10n, prepare: 10n } };
  assert.equal(decodeRecorded('prod', { ...base, streamId: '$stats-1', type: '$statsCollected' }), E.right(undefined));
  assert.equal(decodeRecorded('prod', { ...base, streamId: 'nsm.prod.connection.1', type: '$metadata' }), E.right(undefined));
  assert.equal(decodeRecorded('prod', { ...base, streamId: 'nsm.staging.connection.1', type: 'Foo' }), E.right(undefined));
  const foreign = decodeRecorded('prod', { ...base, streamId: 'nsm.prod.connection.1', type: 'Foo' });
  assert.ok(E.isLeft(foreign) && /not written by nsm/.test(foreign.left), String(E.isLeft(foreign) && foreign.left));
  const [good] = toEsdbEvents(makeCommit('connection.1'), 'x');
  const noPosition = decodeRecorded('prod', { ...base, position: undefined, streamId: 'nsm.prod.connection.1', type: good!.type, data: good!.data, metadata: good!.metadata });
  assert.ok(E.isLeft(noPosition) && /22\.10/.test(noPosition.left), 'a server without positions on stream reads is named');
  const fromResolved = decodeRecorded('prod', { ...base, position: undefined, streamId: 'nsm.prod.connection.1', type: good!.type, data: good!.data, metadata: good!.metadata }, 77n);
  assert.ok(E.isRight(fromResolved) && fromResolved.right?.position === 77n, "falls back to the ResolvedEvent's commit position");
});

pure('expected versions, revisions and positions: number <-> bigint, never a bigint in JSON', () => {
  assert.equal(toExpectedRevision('any'), E.right('any'));
  assert.equal(toExpectedRevision('none'), E.right('no_stream'));
  assert.equal(toExpectedRevision(0), E.right(0n));
  assert.equal(toExpectedRevision(41), E.right(41n));
  assert.ok(E.isLeft(toExpectedRevision(-1)));
  assert.ok(E.isLeft(toExpectedRevision(1.5)));
  assert.equal(revisionToNumber(0n), E.right(0));
  assert.equal(revisionToNumber(BigInt(Number.MAX_SAFE_INTEGER)), E.right(Number.MAX_SAFE_INTEGER));
  assert.ok(E.isLeft(revisionToNumber(BigInt(Number.MAX_SAFE_INTEGER) + 1n)));
  assert.ok(E.isLeft(revisionToNumber(-1n)));
  assert.is(toReadPosition(0n), START);
  assert.equal(toReadPosition(12345n), { commit: 12345n, prepare: 12345n });
  const rev = ok(revisionToNumber(7n), 'revision');
  assert.is(JSON.stringify({ revision: rev }), '{"revision":7}', 'the revision handed out is a plain number');
});

pure('CommitAssembler: regroups events read in log order into whole commits', () => {
  const a = makeCommit('connection.a', 3);
  const b = makeCommit('endpoint.b', 1);
  const ea = roundTrip('prod', a, 0n, 1000n);
  const eb = roundTrip('prod', b, 4n, 2000n);
  const asm = new CommitAssembler();
  const out: StoredCommit[] = [];
  for (const d of [...ea, ...eb]) {
    const r = ok(asm.push(d), 'push');
    if (r) out.push(r);
  }
  assert.equal(out, [
    { ...a, revision: 2, position: 1200n },
    { ...b, revision: 4, position: 2000n },
  ]);
  assert.is(asm.open, false);

  const midway = new CommitAssembler();
  const r = midway.push(ea[1]!);
  assert.ok(E.isLeft(r) && /starts at event index 1/.test(r.left));
  const interleaved = new CommitAssembler();
  ok(interleaved.push(ea[0]!), 'first');
  assert.is(interleaved.open, true);
  const wrong = interleaved.push(eb[0]!);
  assert.ok(E.isLeft(wrong) && /after 1 of 3 events/.test(wrong.left));
  interleaved.reset();
  assert.is(interleaved.open, false);
  assert.ok(E.isRight(interleaved.push(eb[0]!)), 'after reset a commit starts afresh');
});

pure('resubscribe backoff doubles from min and is capped at max', () => {
  const o = { minMs: 100, maxMs: 1000 };
  assert.equal([1, 2, 3, 4, 5, 50, 5000].map((n) => resubscribeDelay(n, o)), [100, 200, 400, 800, 1000, 1000, 1000]);
});

pure.run();

// ---------------------------------------------------------------------------------------------
// The port's whole conformance suite, on the adapter over the FAKE client. Another domain whose
// name shares this one's text writes into the same fake log, and the "server" adds system events.
conformanceSuite('esdb adapter over an in-memory FAKE client (no EventStoreDB server)', async () => {
  const fake = new FakeEsdb();
  fake.systemNoiseEvery = 3;
  const domain = freshDomain();
  const neighbour = esdbEventStore(fake, `${domain}-x`, { log: quiet });
  ok(await neighbour.append(makeCommit('connection.neighbour', 2), 'none')(), 'neighbour append');
  const store = esdbEventStore(fake, domain, { log: quiet, resubscribe: FAST });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await neighbour.close();
    },
  };
});

// ---------------------------------------------------------------------------------------------
interface Ctx {
  fake: FakeEsdb;
  domain: string;
  store: EventStore;
}
const adapter = suite<Ctx>('esdb adapter over the FAKE client: what the conformance suite does not cover', {} as Ctx);

adapter.before.each((ctx) => {
  ctx.fake = new FakeEsdb();
  ctx.domain = freshDomain();
  ctx.store = esdbEventStore(ctx.fake, ctx.domain, { log: quiet, resubscribe: FAST, appendAttempts: 3 });
});
adapter.after.each(async (ctx) => {
  await ctx.store.close();
});

const append = async (store: EventStore, c: Commit, expected: Parameters<EventStore['append']>[1]) => ok(await store.append(c, expected)(), `append ${c.commitId}`);

adapter('a command retried at the stream\'s new revision is a duplicate, not a second write', async ({ fake, domain, store }) => {
  const stream = 'connection.retry';
  const first = makeCommit(stream, 2);
  const r1 = await append(store, first, 'none');
  // A redelivered command: decided again on the state that already holds its commit, so the
  // same commit id with new event contents, at the stream's current revision.
  const again: Commit = { ...makeCommit(stream, 1, 3), commitId: first.commitId };
  const r2 = await append(store, again, r1.revision);
  assert.equal(r2, { revision: r1.revision, position: r1.position, duplicate: true });
  assert.is(fake.streamLength(esdbStreamName(domain, stream)), 2, 'nothing was written');
});

adapter('two concurrent appends of the same commit: one writes, the other is told it is a duplicate', async ({ fake, domain, store }) => {
  const c = makeCommit('connection.race', 2);
  const [a, b] = await Promise.all([store.append(c, 'none')(), store.append(c, 'none')()]);
  const results = [ok(a, 'a'), ok(b, 'b')];
  assert.equal(results.map((r) => r.duplicate).sort(), [false, true]);
  assert.is(results[0]!.position, results[1]!.position);
  assert.is(fake.streamLength(esdbStreamName(domain, 'connection.race')), 2);
});

for (const [what, size] of [['more', 3], ['fewer', 1]] as const) {
  adapter(`racing an earlier append of the same commit id with ${what} events: reported as the stored commit, never half-matched`, async ({ fake, domain, store }) => {
    const stream = `connection.redecided-${what}`;
    const name = esdbStreamName(domain, stream);
    const first = makeCommit(stream, 2);
    // Another replica's append of the same command lands between our dedupe check and our append.
    let theirs: { revision: bigint; position: bigint } | undefined;
    fake.beforeAppend = () => {
      const [, last] = fake.writeRaw(name, toEsdbEvents(first, 'another-replica'));
      theirs = { revision: last!.revision, position: last!.position.commit };
    };
    // A command decided again on other state: same commit id, other events.
    const again: Commit = { ...makeCommit(stream, size), commitId: first.commitId };
    const r = await store.append(again, 'none')();
    // more: ESDB refuses (ids partly match) and the recheck finds the commit; fewer: ESDB
    // acknowledges the matching prefix as idempotent and the read-back finds where it ends.
    assert.equal(r, E.right({ revision: Number(theirs!.revision), position: theirs!.position, duplicate: true }));
    assert.is(fake.streamLength(name), 2, 'nothing of ours was written');
  });
}

adapter('an append whose response was lost is retried with the same ids and stored once', async ({ fake, domain, store }) => {
  fake.appendFaults.push({ error: new UnavailableError(), afterStore: true });
  const c = makeCommit('connection.lost', 3);
  const r = await append(store, c, 'none');
  assert.is(r.duplicate, false, 'this call did write it');
  assert.is(fake.streamLength(esdbStreamName(domain, 'connection.lost')), 3);
  assert.equal(ok(await store.readStream('connection.lost')(), 'read').commits, [{ ...c, revision: r.revision, position: r.position }]);
});

adapter('an append failing in transit is retried, then reported unavailable', async ({ fake, store }) => {
  fake.appendFaults.push({ error: new UnavailableError() });
  ok(await store.append(makeCommit('connection.flaky'), 'none')(), 'one failure is retried');
  fake.appendFaults.push(...[1, 2, 3].map(() => ({ error: new UnavailableError() })));
  const r = await store.append(makeCommit('connection.down'), 'none')();
  assert.ok(E.isLeft(r) && r.left.kind === 'unavailable', 'gives up after appendAttempts');
  const conflict = await store.append(makeCommit('connection.flaky'), 'none')();
  assert.ok(E.isLeft(conflict) && conflict.left.message === 'stream connection.flaky is not at revision none (it is at 0)', E.isLeft(conflict) ? conflict.left.message : 'appended');
  const bad = await store.append(makeCommit('connection.x'), -3)();
  assert.ok(E.isLeft(bad) && bad.left.kind === 'wrong-expected-version' && /not a stream revision/.test(bad.left.message));
});

adapter('revisions are ESDB stream revisions as numbers: 0 for the first event, the last event of each commit', async ({ store }) => {
  const r1 = await append(store, makeCommit('node.n1', 3), 'none');
  assert.is(r1.revision, 2);
  const r2 = await append(store, makeCommit('node.n1', 1, 4), r1.revision);
  assert.is(r2.revision, 3);
  assert.is(typeof r2.revision, 'number');
  const read = ok(await store.readStream('node.n1')(), 'read');
  assert.equal(read.commits.map((c) => c.revision), [2, 3]);
  assert.is(read.revision, 3);
});

for (const inclusive of [false, true]) {
  const start = inclusive ? 'a server that also sends the event at the start position' : 'a server that starts strictly after it';
  adapter(`a dropped subscription resumes after the last delivered commit: no gap, no duplicate, no onError (${start})`, async ({ fake, store }) => {
    fake.subscriptionStartInclusive = inclusive;
    const written: StoredCommit[] = [];
    for (let i = 0; i < 4; i++) {
      const c = makeCommit(`connection.s${i}`, 3);
      written.push({ ...c, ...(await append(store, c, 'none')) } as StoredCommit);
    }
    // The first subscription drops after 5 events: inside the second commit.
    fake.subscriptionFaults.push({ error: new UnavailableError(), after: 5 });
    const got: StoredCommit[] = [];
    const errors: StoreError[] = [];
    const sub = await store.subscribeAll(0n, { onCommit: (c) => void got.push(c), onError: (e) => errors.push(e) });
    let caughtUp = false;
    void sub.caughtUp.then(() => (caughtUp = true));
    await waitFor('caughtUp (or an error)', () => caughtUp || errors.length > 0);
    assert.equal(errors, []);
    const more = makeCommit('connection.live', 2);
    const rm = await append(store, more, 'none');
    await waitFor('the live commit', () => got.length === 5);
    await sub.stop();
    assert.equal(errors, []);
    assert.equal(got.map((c) => c.commitId), [...written.map((c) => c.commitId), more.commitId]);
    assert.is(got[4]!.position, rm.position);
    const starts = fake.subscriptions.map((s) => s.fromPosition);
    assert.equal(starts, [START, { commit: got[0]!.position, prepare: got[0]!.position }], 'resubscribed from the first commit, the last one delivered whole');
    assert.is(fake.liveSubscriptions, 0, 'stop() closed the subscription');

    // readAll from a commit's position, on the same server.
    const after: StoredCommit[] = [];
    for await (const c of store.readAll(got[1]!.position)) after.push(c);
    assert.equal(after.map((c) => c.commitId), got.slice(2).map((c) => c.commitId));
  });
}

adapter('readAll(after, until) with an until between two commits stops before the later one', async ({ store }) => {
  const rs = [];
  for (let i = 0; i < 4; i++) rs.push(await append(store, makeCommit(`connection.u${i}`, 2), 'none'));
  const between = rs[2]!.position - 1n;
  assert.ok(between > rs[1]!.position, 'positions are log offsets with room between commits');
  const got: StoredCommit[] = [];
  for await (const c of store.readAll(rs[0]!.position, between)) got.push(c);
  assert.equal(got.map((c) => c.position), [rs[1]!.position]);
});

adapter('nothing is delivered once stop() is called, even with events already buffered', async ({ store }) => {
  for (let i = 0; i < 3; i++) await append(store, makeCommit(`connection.b${i}`), 'none');
  const got: string[] = [];
  let stopping: Promise<void> | undefined;
  // stop() from inside the handler, not awaited there (stop waits for the handler to return).
  const subscribing = store.subscribeAll(0n, {
    onCommit: (c) => {
      got.push(c.commitId);
      stopping ??= subscribing.then((s) => s.stop());
    },
  });
  await subscribing;
  await waitFor('stop() called', () => stopping !== undefined);
  await stopping;
  await new Promise((r) => setTimeout(r, 20));
  assert.is(got.length, 1);
});

adapter('a subscription that cannot be reopened reports through onError once, after the bounded attempts', async ({ fake, store }) => {
  await append(store, makeCommit('connection.one'), 'none');
  fake.subscriptionFaults.push(...Array.from({ length: 10 }, () => ({ error: new UnavailableError(), after: 0 })));
  const errors: StoreError[] = [];
  const sub = await store.subscribeAll(0n, { onCommit: () => undefined, onError: (e) => errors.push(e) });
  await waitFor('onError', () => errors.length > 0);
  await new Promise((r) => setTimeout(r, 30));
  await sub.stop();
  assert.is(errors.length, 1);
  assert.match(errors[0]!.message, /gave up after 3 attempts/);
  assert.is(fake.subscriptions.length, 4, 'the first subscription and 3 retries');
});

adapter('a subscription that keeps dropping but makes progress each time is never given up', async ({ fake, store }) => {
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const c = makeCommit(`connection.p${i}`);
    ids.push(c.commitId);
    await append(store, c, 'none');
  }
  // More drops than FAST.attempts (3), each after one delivered event.
  fake.subscriptionFaults.push(...Array.from({ length: 5 }, () => ({ error: new UnavailableError(), after: 1 })));
  const got: string[] = [];
  const errors: StoreError[] = [];
  const sub = await store.subscribeAll(0n, { onCommit: (c) => void got.push(c.commitId), onError: (e) => errors.push(e) });
  await waitFor('every commit (or an error)', () => got.length === 6 || errors.length > 0);
  await sub.stop();
  assert.equal(errors, []);
  assert.equal(got, ids);
  assert.is(fake.subscriptions.length, 6);
});

adapter('a stream that ends inside a commit is corrupt', async ({ fake, domain, store }) => {
  const c = makeCommit('connection.cut', 3);
  fake.writeRaw(esdbStreamName(domain, c.stream), toEsdbEvents(c, 'x').slice(0, 2));
  const r = await store.readStream(c.stream)();
  assert.ok(E.isLeft(r) && r.left.kind === 'corrupt' && /ends inside a commit/.test(r.left.message));
});

adapter('access denied is not retried', async ({ fake, store }) => {
  fake.subscriptionFaults.push({ error: new AccessDeniedError(), after: 0 });
  const errors: StoreError[] = [];
  const sub = await store.subscribeAll(0n, { onCommit: () => undefined, onError: (e) => errors.push(e) });
  await waitFor('onError', () => errors.length > 0);
  await sub.stop();
  assert.match(errors[0]!.message, /cannot subscribe/);
  assert.is(fake.subscriptions.length, 1);
});

adapter('events nsm did not write in a domain stream are reported corrupt, by read and by subscription', async ({ fake, domain, store }) => {
  await append(store, makeCommit('connection.ok'), 'none');
  fake.writeRaw(esdbStreamName(domain, 'connection.bad'), [{ type: 'SomethingElse', data: { x: 1 }, metadata: { by: 'someone' } }]);
  const read = await store.readStream('connection.bad')();
  assert.ok(E.isLeft(read) && read.left.kind === 'corrupt' && /not written by nsm/.test(read.left.message));
  const errors: StoreError[] = [];
  const got: StoredCommit[] = [];
  const sub = await store.subscribeAll(0n, { onCommit: (c) => void got.push(c), onError: (e) => errors.push(e) }).catch((e: Error) => e);
  // lastPosition itself meets the bad event first (it is the newest), so subscribing fails outright.
  assert.ok(sub instanceof Error && /not written by nsm/.test(sub.message), String(sub));
  const last = await store.lastPosition()();
  assert.ok(E.isLeft(last) && last.left.kind === 'corrupt');
});

adapter('a server without positions on stream reads is named, not misread', async ({ fake, store }) => {
  const c = makeCommit('connection.old');
  fake.positionsOnStreamReads = false;
  const r = await store.append(c, 'none')();
  assert.ok(E.isLeft(r) && r.left.kind === 'corrupt' && /22\.10/.test(r.left.message), E.isLeft(r) ? r.left.message : 'appended');
});

adapter('lastPosition and readAll see only this domain: a domain sharing its text is invisible', async ({ fake, domain, store }) => {
  const other = esdbEventStore(fake, `${domain}-other`, { log: quiet });
  const mine = await append(store, makeCommit('connection.mine', 2), 'none');
  await append(other, makeCommit('connection.theirs', 3), 'none');
  fake.writeRaw('$stats-x', [{ type: '$statsCollected', data: {} }]);
  assert.equal(ok(await store.lastPosition()(), 'last'), mine.position, 'newer events of others are skipped');
  const all: StoredCommit[] = [];
  for await (const c of store.readAll(0n)) all.push(c);
  assert.equal(all.map((c) => c.stream), ['connection.mine']);
  const filters = fake.subscriptions.map((s) => s.filter);
  assert.equal(filters.map((f) => ('prefixes' in f ? f.prefixes : f.regex)), [[`nsm.${domain}.`]], 'the prefix filter goes to the server');
  assert.ok(filters.every((f) => f.filterOn === 'streamName'));
  assert.is(ok(await other.lastPosition()(), 'other last') > mine.position, true);
  await other.close();
});

adapter('an empty domain: lastPosition 0n, readAll empty, subscribeAll caught up at once', async ({ fake, store }) => {
  fake.writeRaw('$stats-x', [{ type: '$statsCollected', data: {} }]);
  assert.is(ok(await store.lastPosition()(), 'last'), 0n);
  const all: StoredCommit[] = [];
  for await (const c of store.readAll(0n)) all.push(c);
  assert.equal(all, []);
  const sub = await store.subscribeAll(0n, { onCommit: () => undefined });
  await sub.caughtUp;
  await sub.stop();
});

adapter('close() stops live subscriptions; disposing the client is left to whoever created it', async ({ fake, store }) => {
  const sub = await store.subscribeAll(0n, { onCommit: () => undefined });
  await sub.caughtUp;
  assert.is(fake.liveSubscriptions, 1);
  await store.close();
  assert.is(fake.liveSubscriptions, 0);
  assert.is(fake.disposed, false, 'the store was given the client');
  const owning = esdbEventStore(fake, 'owner', { ownsClient: true, log: quiet });
  await owning.close();
  assert.is(fake.disposed, true);
});

adapter('the fake is an honest EsdbClient: it throws the client\'s own errors as the real one does', async ({ fake }) => {
  const client: EsdbClient = fake;
  const missing = client.readStream('nsm.x.none', { direction: 'forwards', fromRevision: START });
  const thrown = await (async () => {
    for await (const _ of missing) return undefined;
  })().catch((e: unknown) => e);
  assert.is((thrown as { type?: string }).type, 'stream-not-found', 'a missing stream throws while iterating');
  await client.appendToStream('s', toEsdbEvents(makeCommit('connection.f'), 'a'), { expectedRevision: 'no_stream' });
  const wev = await client.appendToStream('s', toEsdbEvents(makeCommit('connection.f'), 'a'), { expectedRevision: 'no_stream' }).catch((e: unknown) => e);
  assert.is((wev as { type?: string }).type, 'wrong-expected-version');
  const back: AllStreamResolvedEvent[] = [];
  for await (const r of client.readAll({ direction: 'backwards', fromPosition: END, maxCount: 1 })) back.push(r);
  assert.is(back[0]?.event?.streamId, 's');
});

adapter.run();
