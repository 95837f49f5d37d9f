// The EventStore conformance suite on the JetStream adapter, plus what only JetStream has:
// an append-only stream the server itself refuses to delete from or purge, and the subject layout.
import * as E from 'fp-ts/lib/Either.js';
import type { NatsConnection } from 'nats';
import * as assert from 'uvu/assert';
import { jetStreamEventStore } from '../infra/eventstore/jetstream.ts';
import { subjectsFor } from '../src/contracts/subjects.ts';
import { conformanceSuite, makeCommit } from './eventstore.conformance.ts';
import { suite } from './lib/harness.ts';
import { runId, startTestNats, type TestNats } from './lib/nats.ts';

// One nats-server for the whole file, started lazily by whichever suite needs it first and
// stopped by the last suite's after hook (suites run one after another, in registration order).
let nats: Promise<TestNats> | undefined;
const server = (): Promise<TestNats> => (nats ??= startTestNats());
const stopServer = async (): Promise<void> => {
  const n = nats;
  nats = undefined;
  if (n) await (await n).stop();
};

let domains = 0;
const freshDomain = (): string => `${runId()}-${++domains}`;

conformanceSuite('jetstream', async () => {
  const t = await server();
  const nc = await t.connect();
  const store = await jetStreamEventStore(nc, freshDomain());
  return {
    store,
    cleanup: async () => {
      await store.close();
      await nc.close();
    },
  };
});

interface Ctx {
  nc?: NatsConnection;
}

const js = suite<Ctx>('jetstream event stream', {});

js.before(async (ctx) => {
  ctx.nc = await (await server()).connect();
});

js.after(async (ctx) => {
  try {
    await ctx.nc?.close();
  } finally {
    await stopServer();
  }
});

// Each test gets its own domain, hence its own events stream.
const ready = (ctx: Ctx) => {
  if (!ctx.nc) throw new Error('before hook did not run');
  const domain = freshDomain();
  return { nc: ctx.nc, domain, subjects: subjectsFor(domain) };
};

js('the events stream is created with deny_delete and deny_purge', async (ctx) => {
  const { nc, domain, subjects } = ready(ctx);
  await jetStreamEventStore(nc, domain);
  const info = await (await nc.jetstreamManager()).streams.info(subjects.streams.events);
  assert.is(info.config.deny_delete, true, 'deny_delete');
  assert.is(info.config.deny_purge, true, 'deny_purge');
  assert.equal(info.config.subjects, [`nsm.${domain}.evt.>`]);
});

js('the server refuses to delete a message or purge the events stream', async (ctx) => {
  const { nc, domain, subjects } = ready(ctx);
  const store = await jetStreamEventStore(nc, domain);
  const stream = `connection.${runId()}`;
  const r = await store.append(makeCommit(stream, 2), 'none')();
  if (E.isLeft(r)) throw new Error(`append failed: ${r.left.message}`);
  const jsm = await nc.jetstreamManager();
  const name = subjects.streams.events;
  const before = (await jsm.streams.info(name)).state;

  const refused = async (what: string, op: () => Promise<unknown>): Promise<string> => {
    try {
      await op();
    } catch (e) {
      return (e as Error).message;
    }
    assert.unreachable(`${what} was accepted`);
    return '';
  };
  const del = await refused('delete', () => jsm.streams.deleteMessage(name, Number(r.right.position)));
  const erase = await refused('secure erase', () => jsm.streams.deleteMessage(name, Number(r.right.position), true));
  const purge = await refused('purge', () => jsm.streams.purge(name));
  const purgeSubject = await refused('purge by subject', () => jsm.streams.purge(name, { filter: subjects.event(stream) }));
  for (const m of [del, erase, purge, purgeSubject]) assert.match(m, /not permitted|denied/i);

  const after = (await jsm.streams.info(name)).state;
  assert.is(after.messages, before.messages, 'no message removed');
  assert.is(after.first_seq, before.first_seq);
  assert.is(after.last_seq, before.last_seq);
  const read = await store.readStream(stream)();
  assert.ok(E.isRight(read) && read.right.commits.length === 1, 'the commit is still readable');
  await store.close();
});

js('one message per commit on nsm.<domain>.evt.<aggregate>.<id>', async (ctx) => {
  const { nc, domain, subjects } = ready(ctx);
  const store = await jetStreamEventStore(nc, domain);
  const id = `${runId()}-x`;
  const commit = makeCommit(`endpoint.${id}`, 3);
  const r = await store.append(commit, 'none')();
  if (E.isLeft(r)) throw new Error(`append failed: ${r.left.message}`);
  const jsm = await nc.jetstreamManager();
  const m = await jsm.streams.getMessage(subjects.streams.events, { seq: Number(r.right.position) });
  assert.is(m.subject, `nsm.${domain}.evt.endpoint.${id}`);
  assert.is(m.header?.get('Nats-Msg-Id'), commit.commitId, 'the commitId is the message id (dedupe key)');
  assert.equal(JSON.parse(new TextDecoder().decode(m.data)), commit, 'the message body is the whole commit');
  const info = await jsm.streams.info(subjects.streams.events);
  assert.is(info.state.messages, 1, 'three events, one message');
  await store.close();
});

js.run();
