// The EventStore conformance suite on the EventStoreDB adapter against a REAL server, when
// NSM_ESDB_URL points at one (e.g. esdb://127.0.0.1:2113?tls=false for a server started with
// --insecure; see docs/eventstoredb.md). Each run uses a fresh domain, so a server can be reused;
// the streams are left behind.
//
// Without NSM_ESDB_URL the file registers one skipped test and prints why. No EventStoreDB server
// can run on the machines this project is developed on (no container engine, no Debian package):
// the adapter's logic is tested there against a fake client (eventstore.esdb-fake.unit.test.ts).
import { EventStoreDBClient, FORWARDS, START, type ResolvedEvent } from '@eventstore/db-client';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { connectEsdbEventStore } from '../infra/eventstore/esdb.ts';
import { commitEventId, esdbStreamName } from '../infra/eventstore/esdbMapping.ts';
import { createLogger } from '../infra/log.ts';
import { conformanceSuite, makeCommit } from './eventstore.conformance.ts';
import { suite } from './lib/harness.ts';
import { runId } from './lib/nats.ts';

const url = process.env.NSM_ESDB_URL?.trim();
let domains = 0;
const freshDomain = (): string => `${runId()}-${++domains}`;
const log = createLogger('eventstore-esdb');

if (!url) {
  const why = 'NSM_ESDB_URL is not set, so there is no EventStoreDB server to run the conformance suite against (docs/eventstoredb.md says how to start one)';
  suite('esdb conformance against a real EventStoreDB server').skip(`skipped: ${why}`);
  process.stderr.write(`\n  SKIP  test/eventstore.esdb.test.ts: ${why}\n\n`);
} else {
  conformanceSuite(`esdb (real server at ${url})`, async () => {
    const store = connectEsdbEventStore(url, freshDomain(), { log });
    // Fail here, loudly, when the server is not there, rather than in every test.
    const probe = await store.lastPosition()();
    if (E.isLeft(probe)) {
      await store.close();
      throw new Error(`EventStoreDB at ${url} is not usable: ${probe.left.message}`);
    }
    return { store, cleanup: () => store.close() };
  });

  const layout = suite<{ client?: EventStoreDBClient }>('esdb layout on a real server', {});
  layout.before((ctx) => {
    ctx.client = EventStoreDBClient.connectionString(url);
  });
  layout.after(async (ctx) => {
    await ctx.client?.dispose();
  });

  layout('one ESDB stream per aggregate stream, one event per envelope, ids and grouping as documented', async (ctx) => {
    const domain = freshDomain();
    const store = connectEsdbEventStore(url, domain, { log });
    try {
      const commit = makeCommit(`endpoint.${runId()}`, 3);
      const r = await store.append(commit, 'none')();
      if (E.isLeft(r)) throw new Error(`append failed: ${r.left.message}`);
      const raw: ResolvedEvent[] = [];
      for await (const e of ctx.client!.readStream(esdbStreamName(domain, commit.stream), { direction: FORWARDS, fromRevision: START })) raw.push(e);
      assert.is(raw.length, 3, 'three events in the stream');
      assert.equal(raw.map((e) => e.event?.id), commit.events.map((_, i) => commitEventId(commit.commitId, i)));
      assert.equal(raw.map((e) => e.event?.type), commit.events.map((e) => e.type));
      assert.equal(raw.map((e) => (e.event?.metadata as { commitIndex?: number }).commitIndex), [0, 1, 2]);
      assert.is(raw[2]!.event!.revision, BigInt(r.right.revision), 'the revision handed out is the last event\'s stream revision');
      assert.is(raw[2]!.event!.position?.commit, r.right.position, 'the position handed out is the last event\'s commit position');
    } finally {
      await store.close();
    }
  });

  layout.run();
}
