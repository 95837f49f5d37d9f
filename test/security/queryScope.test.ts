// Query errors are typed: the HTTP status follows the error's code, never its words; the guard's
// scope answers with codes; and the client's history filter narrows both answer shapes (one
// domain's rows, and `{ events, domains }` across domains) to the connection's own stream, and
// withholds any shape it does not know.
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { createLogger } from '../../infra/log.ts';
import { emptyMesh, type MeshModel } from '../../projections/mesh.ts';
import { QUERY_ERROR_CODES, queryError, type QueryError } from '../../src/contracts/replies.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { startHttpApi, statusOf } from '../../src/runtime/http.ts';
import { runQuery, type QueryContext } from '../../src/read/queries.ts';
import { clientHistoryFilter, createGuard } from '../../src/security/guard.ts';
import { registryOf } from '../../src/security/identities.ts';
import { createUserKey, signerFromSeed } from '../../src/security/keys.ts';
import { suite } from '../lib/harness.ts';

type Ctx = { servers: Server[] };
const s = suite<Ctx>('typed query errors and the client history filter', { servers: [] });
s.after(async (ctx) => {
  for (const srv of ctx.servers) await new Promise((r) => srv.close(r));
});

const log = createLogger('query-scope-test', {}, () => undefined);
const ctxOf = (model: MeshModel = emptyMesh): QueryContext => ({ model, store: {} as EventStore, heartbeats: new Map() });

s('each code has its status; the words of the message do not matter', async (ctx) => {
  assert.equal(QUERY_ERROR_CODES.map((c) => [c, statusOf(c)]), [['forbidden', 403], ['not-found', 404], ['invalid', 400], ['unavailable', 503], ['too-large', 413]]);
  // A scope that answers with messages made to mislead a text match.
  const answers: Record<string, QueryError> = {
    'not-found-says-forbidden': queryError('not-found', 'forbidden: this text starts like a refusal'),
    'forbidden-says-missing': queryError('forbidden', 'connection "x" does not exist; nothing has happened'),
    'invalid-says-both': queryError('invalid', 'forbidden: does not exist'),
    'unavailable-says-invalid': queryError('unavailable', 'invalid query parameters'),
  };
  const srv = await startHttpApi(0, '127.0.0.1', () => ctxOf(), log, {
    authenticate: async (h) => E.right(h?.slice(7) ?? ''),
    scope: (actor) => E.left(answers[actor]!),
  });
  ctx.servers.push(srv);
  const base = `http://127.0.0.1:${(srv.address() as AddressInfo).port}`;
  for (const [actor, e] of Object.entries(answers)) {
    const r = await fetch(`${base}/api/v1/status`, { headers: { authorization: `Bearer ${actor}` } });
    assert.is(r.status, statusOf(e.code), actor);
    assert.equal(await r.json(), { error: e.message });
  }
});

s('the query layer answers with codes', async () => {
  const code = async (q: string, params: unknown) => {
    const r = await runQuery(ctxOf(), q, params);
    return E.isLeft(r) ? r.left.code : 'ok';
  };
  assert.is(await code('connection', { id: 'nope' }), 'not-found');
  assert.is(await code('connection', { id: 'forbidden' }), 'not-found', 'an id that reads "forbidden" is still not found');
  assert.is(await code('connection', { id: 'a b' }), 'invalid');
  assert.is(await code('connections', { state: 'does not exist' }), 'invalid');
  assert.is(await code('connections', { limit: 0 }), 'invalid');
  assert.is(await code('status', { at: 'nothing has happened' }), 'invalid');
  assert.is(await code('peers', {}), 'not-found', 'no federation: no peers');
  assert.is(await code('history', { id: 'x', allDomains: true }), 'invalid', 'allDomains outside a federation');
  assert.is(await code('no-such-query', {}), 'invalid');
  assert.is(await code('runtime', {}), 'invalid', 'only a control plane answers it');
  assert.is(await code('status', {}), 'ok');
  // The store fails: unavailable, whatever it says.
  const failing: QueryContext = { ...ctxOf(), store: { readStream: () => async () => E.left({ kind: 'unavailable', message: 'forbidden: does not exist' }) } as unknown as EventStore };
  const h = await runQuery(failing, 'history', { id: 'c1' });
  assert.equal(h, E.left(queryError('unavailable', 'event store: forbidden: does not exist')));
});

const key = () => {
  const k = createUserKey();
  return { publicKey: k.publicKey, signer: signerFromSeed(k.seed) };
};
const cpKey = key();
const registry = (() => {
  const r = registryOf('d', [
    { name: 'control-plane', role: 'control-plane', actor: 'control-plane', publicKey: cpKey.publicKey },
    { name: 'alice', role: 'client', actor: 'alice', publicKey: key().publicKey },
    { name: 'n1', role: 'agent', actor: 'agent:n1', publicKey: key().publicKey },
    { name: 'operator', role: 'operator', actor: 'operator', publicKey: key().publicKey },
  ]);
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
})();
const guard = createGuard({ registry, signer: cpKey.signer });
const model = { ...emptyMesh, connections: { ...emptyMesh.connections, byId: { c1: { actor: 'alice' }, c2: { actor: 'bob' } } } } as unknown as MeshModel;

s("the guard's refusals carry codes: forbidden, or not-found for someone else's connection", () => {
  const codeOf = (actor: string, q: string, params: unknown) => {
    const r = guard.scopeQuery(actor, q, params, model);
    return E.isLeft(r) ? r.left.code : 'ok';
  };
  assert.is(codeOf('mallory', 'status', {}), 'forbidden');
  assert.is(codeOf('alice', 'nodes', {}), 'forbidden');
  assert.is(codeOf('alice', 'connections', { actor: 'bob' }), 'forbidden');
  assert.is(codeOf('alice', 'connection', { id: 'c2' }), 'not-found', "bob's connection looks like none at all");
  assert.is(codeOf('alice', 'history', { id: 'c2' }), 'forbidden');
  assert.is(codeOf('agent:n1', 'node-desired', { node: 'n2' }), 'forbidden');
  assert.is(codeOf('alice', 'connection', { id: 'c1' }), 'ok');
  assert.is(codeOf('operator', 'nodes', {}), 'ok');
});

s("a client's history: its connection's stream only, in both shapes; an unknown shape is withheld", () => {
  const scope = guard.scopeQuery('alice', 'history', { id: 'c1', allDomains: true }, model);
  if (E.isLeft(scope)) throw new Error(scope.left.message);
  const filter = scope.right.filter!;
  assert.ok(filter, 'a client history answer is filtered');
  const row = (stream: string, domain?: string) => ({ ...(domain ? { domain } : {}), stream, position: '1', commitId: 'x', event: { type: 'T' } });
  // One domain: a list of rows.
  assert.equal(filter([row('connection.c1'), row('node.c1'), row('pool.ep'), row('endpoint.c1')]), E.right([row('connection.c1')]));
  // Across domains: { events, domains }. A node and an endpoint named like the connection, and
  // the pools, in this domain and the peer's, stay out; a domain left with nothing says so.
  const federated = {
    events: [row('connection.c1', 'a'), row('node.c1', 'a'), row('connection.c1', 'b'), row('pool.ep1', 'b'), row('endpoint.c1', 'c')],
    domains: { a: 'ok', b: 'ok', c: 'ok', d: 'no answer within 2000 ms' },
  };
  assert.equal(filter(federated), E.right({ events: [row('connection.c1', 'a'), row('connection.c1', 'b')], domains: { a: 'ok', b: 'ok', c: 'no events', d: 'no answer within 2000 ms' } }));
  // Shapes it does not know are withheld, not passed on.
  for (const unknown of [{ events: [row('node.c1', 'a')], domains: {}, extra: 'x' }, { rows: [row('node.c1')] }, { events: 'x', domains: {} }, { events: [], domains: { a: 1 } }, 'text', 42, null, undefined]) {
    const r = filter(unknown);
    assert.ok(E.isLeft(r) && r.left.code === 'forbidden', `withheld: ${JSON.stringify(unknown)} -> ${JSON.stringify(r)}`);
  }
  assert.equal(clientHistoryFilter('c1')([{ stream: 'connection.c10' }, { stream: 'connection.c1' }, null, 'x']), E.right([{ stream: 'connection.c1' }]));
});

s.run();
