// The sealer against a real nats-server: seals cover every commit once, in one chain, also when
// two sealers race, and also across a restart; the seal stream cannot be deleted from or purged.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import { jetStreamSealStore } from '../../infra/nats/seals.ts';
import { subjectsFor } from '../../src/contracts/subjects.ts';
import { verifyStore } from '../../src/audit/audit.ts';
import { commitHash, GENESIS_HASH, sealHashOf } from '../../src/audit/hash.ts';
import { startSealer, type Sealer } from '../../src/audit/sealer.ts';
import { isInvalidSeal, type SealRecord, type SealStore } from '../../src/ports/sealStore.ts';
import type { Commit } from '../../src/contracts/envelope.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { suite } from '../lib/harness.ts';
import { runId, startTestNats, type TestNats } from '../lib/nats.ts';

const log = createLogger('test-sealer');
let domains = 0;

/** Appends `n` chained commits round-robin over `streams` streams, the way execute() chains them. */
const appendChained = async (store: EventStore, n: number, streams = 5, prefix = runId()) => {
  const tips = new Map<string, { revision: number | 'none'; version: number; hash: string }>();
  for (let i = 0; i < n; i++) {
    const stream = `node.${prefix}-${i % streams}`;
    const tip = tips.get(stream) ?? { revision: 'none' as const, version: 0, hash: GENESIS_HASH };
    const base = {
      commitId: `${prefix}-${i}`,
      stream,
      events: [{ id: `${prefix}-e${i}`, type: 'NodeUpdated', stream, version: tip.version + 1, time: new Date().toISOString(), correlationId: 'c', causationId: 'c', domain: 't', actor: 'tester', schema: 1, data: { type: 'NodeUpdated', i } as { type: string } }],
      prevHash: tip.hash,
    };
    const commit: Commit = { ...base, hash: commitHash(base) };
    const r = await store.append(commit, tip.revision)();
    if (E.isLeft(r)) throw new Error(`append ${i}: ${r.left.message}`);
    tips.set(stream, { revision: r.right.revision, version: tip.version + 1, hash: commit.hash! });
  }
};

const allSeals = async (seals: SealStore): Promise<SealRecord[]> => {
  const out: SealRecord[] = [];
  for await (const r of seals.readAll()) {
    if (isInvalidSeal(r)) throw new Error(`invalid seal ${r.sequence}: ${r.invalid}`);
    out.push(r);
  }
  return out;
};

/** The seals form one chain from genesis and list positions 1..last once each, in order. */
const assertChainCovers = (seals: readonly SealRecord[], last: number) => {
  let prev = GENESIS_HASH;
  const positions: number[] = [];
  for (const { seal } of seals) {
    assert.is(seal.prevSealHash, prev, `seal ${seal.from}..${seal.to} chains to the one before`);
    assert.is(sealHashOf(seal), seal.sealHash);
    positions.push(...seal.entries.map(([p]) => Number(p)));
    prev = seal.sealHash;
  }
  assert.equal(positions, Array.from({ length: last }, (_, i) => i + 1), 'every position once, in order');
};

const waitSealed = async (sealers: readonly Sealer[], last: number, ms = 15_000) => {
  const deadline = Date.now() + ms;
  while (sealers.some((s) => s.sealedUpTo() < BigInt(last))) {
    if (Date.now() > deadline) throw new Error(`not sealed up to ${last} within ${ms} ms: ${sealers.map((s) => s.sealedUpTo()).join(', ')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
};

const s = suite<{ nats?: TestNats }>('sealer', {});
s.before(async (ctx) => {
  ctx.nats = await startTestNats();
});
s.after(async (ctx) => {
  await ctx.nats?.stop();
});

const open = async (ctx: { nats?: TestNats }) => {
  const nc = await ctx.nats!.connect();
  const domain = `${runId()}-${++domains}`;
  return { nc, domain, store: await jetStreamEventStore(nc, domain), seals: await jetStreamSealStore(nc, domain) };
};

s('seals every commit once, by count and by time, and verify passes', async (ctx) => {
  const { store, seals } = await open(ctx);
  const sealer = await startSealer({ store, seals, log, maxEntries: 10, maxDelayMs: 100 });
  try {
    await appendChained(store, 35);
    await waitSealed([sealer], 35);
    const all = await allSeals(seals);
    assertChainCovers(all, 35);
    assert.ok(all.every((r) => r.seal.entries.length <= 10), 'no seal longer than maxEntries');
    const r = await verifyStore(store, seals);
    if (E.isLeft(r)) throw new Error(r.left);
    assert.ok(r.right.ok, JSON.stringify(r.right.findings));
    assert.is(r.right.counts.sealed, 35);
  } finally {
    await sealer.stop();
  }
});

s('two sealers racing: one chain, each commit sealed once, no seal stored twice', async (ctx) => {
  const { nc, domain, store, seals } = await open(ctx);
  // Two replicas: separate connections, stores and seal stores on the same domain.
  const nc2 = await ctx.nats!.connect();
  const store2 = await jetStreamEventStore(nc2, domain);
  const seals2 = await jetStreamSealStore(nc2, domain);
  const a = await startSealer({ store, seals, log, maxEntries: 7, maxDelayMs: 30 });
  // Different run lengths, so that the replicas' seals differ and one must lose and adopt.
  const b = await startSealer({ store: store2, seals: seals2, log, maxEntries: 11, maxDelayMs: 45 });
  try {
    await Promise.all([appendChained(store, 120, 6, `${runId()}a`), appendChained(store2, 120, 6, `${runId()}b`)]);
    await waitSealed([a, b], 240);
    const all = await allSeals(seals);
    assertChainCovers(all, 240);
    assert.is(a.appended.length + b.appended.length, all.length, 'every stored seal was appended by exactly one sealer');
    assert.ok(a.lost() + b.lost() > 0, 'the race was real: some appends lost to the other replica');
    const r = await verifyStore(store, seals);
    if (E.isLeft(r)) throw new Error(r.left);
    assert.ok(r.right.ok, JSON.stringify(r.right.findings));
  } finally {
    await a.stop();
    await b.stop();
  }
  assert.ok(nc !== nc2);
});

s('a restarted sealer continues the chain after the last seal', async (ctx) => {
  const { store, seals } = await open(ctx);
  const first = await startSealer({ store, seals, log, maxEntries: 10, maxDelayMs: 50 });
  await appendChained(store, 12, 3, `${runId()}x`);
  await waitSealed([first], 12);
  await first.stop();
  await appendChained(store, 9, 3, `${runId()}y`);
  const second = await startSealer({ store, seals, log, maxEntries: 10, maxDelayMs: 50 });
  try {
    await waitSealed([second], 21);
    assertChainCovers(await allSeals(seals), 21);
  } finally {
    await second.stop();
  }
});

s('the seal stream denies delete and purge', async (ctx) => {
  const { nc, domain, store, seals } = await open(ctx);
  const sealer = await startSealer({ store, seals, log, maxEntries: 5, maxDelayMs: 50 });
  await appendChained(store, 5);
  await waitSealed([sealer], 5);
  await sealer.stop();
  const jsm = await nc.jetstreamManager();
  const name = subjectsFor(domain).streams.seals;
  const info = await jsm.streams.info(name);
  assert.is(info.config.deny_delete, true);
  assert.is(info.config.deny_purge, true);
  const refused = async (op: () => Promise<unknown>) => {
    try {
      await op();
    } catch (e) {
      return (e as Error).message;
    }
    return 'accepted';
  };
  assert.match(await refused(() => jsm.streams.deleteMessage(name, 1)), /not permitted|denied/i);
  assert.match(await refused(() => jsm.streams.purge(name)), /not permitted|denied/i);
  assert.is((await jsm.streams.info(name)).state.messages, info.state.messages);
});

s.run();
