// A log written by v0.1 (test/fixtures/logs/schema1.jsonl: no hash chain, PathPlanned of schema
// 1) replays with the current code into exactly the model a fresh run of the same scenario
// builds today, field by field, except for what no run can repeat (times, command ids, positions).
import { schemaOf } from '../../src/contracts/upcast.ts';
import { fileURLToPath } from 'node:url';
import * as assert from 'uvu/assert';
import { verifyExportFile } from '../../src/audit/audit.ts';
import { openExport } from '../../src/audit/exportFile.ts';
import { foldLog } from '../../src/read/replay.ts';
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import { SCENARIO_CONNECTIONS, SCENARIO_NODES, runAuditScenario } from '../lib/auditScenario.ts';
import { suite } from '../lib/harness.ts';
import { startTestMesh, type TestMesh } from '../lib/mesh.ts';

const FIXTURE = fileURLToPath(new URL('../fixtures/logs/schema1.jsonl', import.meta.url));

/** Times, command ids and log positions differ from run to run; sides report in any order. */
const UNREPEATABLE = new Set([
  'registeredAt', 'updatedAt', 'refreshedAt', 'expirationTime', 'requestedAt', 'establishedAt', 'closedAt', 'joinedAt', 'position', 'requestId',
  // A requester's usage counts requests in the second (Unix time) of its last one.
  'second',
  // Decisions recorded in the old log, which today's code makes differently: since v0.2 interface
  // names carry a hash of the connection id (ids sharing a prefix collided), and cross-node plans
  // carry a tunnel id (VNI, WireGuard port) allocated from the domain's tunnel pool. Replay keeps
  // what was decided then, as it must; the fresh run has today's decisions.
  'clientInterface', 'endpointInterface', 'tunnel',
]);
const normalize = (v: unknown, key = ''): unknown => {
  if (Array.isArray(v)) {
    const items = v.map((x) => normalize(x));
    return key === 'programmed' || key === 'removed' ? [...items].sort() : items;
  }
  if (v && typeof v === 'object') {
    return Object.fromEntries(Object.entries(v).filter(([k]) => !UNREPEATABLE.has(k)).map(([k, x]) => [k, normalize(x, k)]));
  }
  return v;
};

const s = suite<{ mesh?: TestMesh; fixture?: MeshModel; fresh?: MeshModel; freshCommits?: StoredCommit[] }>('old-shape fixture log replays as the current shape', {});

s.before(async (ctx) => {
  const f = await openExport(FIXTURE);
  ctx.fixture = (await foldLog(f.commits())).model;
  ctx.mesh = await startTestMesh({ nodes: SCENARIO_NODES, domain: 'fixture' });
  const last = await runAuditScenario(ctx.mesh);
  const commits: StoredCommit[] = [];
  for await (const c of ctx.mesh.cp!.store.readAll(0n, last)) commits.push(c);
  ctx.freshCommits = commits;
  ctx.fresh = (await foldLog((async function* () {
    yield* commits;
  })())).model;
});
s.after(async (ctx) => {
  await ctx.mesh?.stop();
});

s('the fixture really is the old shape: unchained, PathPlanned of schema 1 without dnsContext', async () => {
  const f = await openExport(FIXTURE);
  let planned = 0;
  for await (const c of f.commits()) {
    assert.is(c.hash, undefined, `commit at ${c.position} has no hash`);
    for (const e of c.events) {
      if (e.type !== 'PathPlanned') continue;
      planned++;
      assert.is(e.schema, 1);
      assert.not.ok('dnsContext' in (e.data as unknown as { context: object }).context);
    }
  }
  assert.is(planned, 3);
  const report = await verifyExportFile(FIXTURE);
  assert.ok(report.ok, JSON.stringify(report.findings));
  assert.is(report.counts.unchained, report.counts.commits);
});

s('a fresh run stores the current shape: chained, PathPlanned of schema 2 with the new context', (ctx) => {
  const planned = ctx.freshCommits!.flatMap((c) => c.events).filter((e) => e.type === 'PathPlanned');
  assert.is(planned.length, 3);
  for (const e of planned) {
    assert.is(e.schema, 2);
    const context = (e.data as unknown as { context: Record<string, unknown> }).context;
    assert.equal(context.dnsContext, { configs: [] });
    assert.equal(context.ethernetContext, {});
  }
  assert.ok(ctx.freshCommits!.every((c) => typeof c.hash === 'string' && typeof c.prevHash === 'string'));
  // Every event at its type's current schema: pools and endpoints moved to 2 with IPv6 (a pair
  // per family, a prefix per family); the rest are still at 1.
  const events = ctx.freshCommits!.flatMap((c) => c.events);
  assert.equal(events.filter((e) => e.schema !== schemaOf(e.type)).map((e) => `${e.type} ${e.schema}`), []);
  assert.ok(events.some((e) => e.type === 'AddressesAllocated' && e.schema === 2 && Array.isArray((e.data as unknown as { pairs: unknown }).pairs)));
  assert.ok(events.filter((e) => !['PathPlanned', 'AddressesAllocated', 'AddressesReleased', 'EndpointRegistered', 'EndpointUpdated'].includes(e.type)).every((e) => e.schema === 1));
});

s('replaying the fixture gives the state of the fresh run, field by field', (ctx) => {
  const old = ctx.fixture!;
  const fresh = ctx.fresh!;
  assert.equal(Object.keys(old.connections.byId).sort(), [...SCENARIO_CONNECTIONS].sort());
  for (const id of SCENARIO_CONNECTIONS) {
    assert.equal(normalize(old.connections.byId[id]), normalize(fresh.connections.byId[id]), `connection ${id}`);
    assert.equal(old.connections.byId[id]!.state.plan?.context.dnsContext, { configs: [] }, `${id} upcast dnsContext`);
    assert.equal(old.connections.byId[id]!.state.plan?.context.ethernetContext, {}, `${id} upcast ethernetContext`);
  }
  assert.equal(normalize(old.registry), normalize(fresh.registry), 'services and endpoints');
  assert.equal(normalize(old.nodes), normalize(fresh.nodes), 'nodes');
  assert.equal(old.pools, fresh.pools, 'address pools');
  assert.equal(old.connections.activeByEndpoint, fresh.connections.activeByEndpoint, 'endpoint load');
  assert.equal(normalize(old), normalize(fresh), 'the whole model');
  // The story itself, so that two equally wrong models cannot pass.
  const [c1, c2, c3] = SCENARIO_CONNECTIONS.map((id) => old.connections.byId[id]!.state);
  assert.is(c1!.phase, 'established');
  assert.is(c1!.endpoint?.name, 'ep-a');
  assert.is(c2!.phase, 'closed');
  assert.is(c3!.endpoint?.name, 'ep-b');
  assert.equal(c3!.plan?.mechanism, { local: 'kernel', remote: 'wireguard' });
});

s.run();
