// A small but complete mesh history with fixed names and ids, used to record the old-shape
// fixture log (test/fixtures/logs/schema1.jsonl) and to replay the same story with the current
// code: two nodes, one service with a match rule, two endpoints, three connections (one
// cross-node over a tunnel), one of them closed.
import * as E from 'fp-ts/lib/Either.js';
import type { MeshClient } from '../../src/client/index.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { must, type TestMesh } from './mesh.ts';

export const SCENARIO_NODES = ['node-a', 'node-b'];
export const SCENARIO_ACTOR = 'auditor@fixture';
export const SCENARIO_CONNECTIONS = ['fixture-conn-1', 'fixture-conn-2', 'fixture-conn-3'];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits until nothing new has been appended for `quietMs`: the process manager and agents are done. */
export const waitForQuietLog = async (store: EventStore, quietMs = 400, timeoutMs = 20_000): Promise<bigint> => {
  const deadline = Date.now() + timeoutMs;
  let last = -1n;
  let since = Date.now();
  for (;;) {
    const r = await store.lastPosition()();
    if (E.isLeft(r)) throw new Error(`lastPosition: ${r.left.message}`);
    if (r.right !== last) {
      last = r.right;
      since = Date.now();
    } else if (Date.now() - since >= quietMs) return last;
    if (Date.now() > deadline) throw new Error(`the log did not settle within ${timeoutMs} ms (at ${last})`);
    await sleep(50);
  }
};

const established = async (c: MeshClient, id: string) => {
  const s = must(await c.waitForConnection(id, 20_000), `wait for ${id}`);
  if (s.state !== 'established') throw new Error(`${id} ${s.state}: ${s.reason ?? ''}`);
};

/** Runs the story on a mesh started with SCENARIO_NODES; returns the last log position. */
export const runAuditScenario = async (mesh: TestMesh): Promise<bigint> => {
  const store = mesh.cp!.store;
  await waitForQuietLog(store);
  const c = await mesh.client(SCENARIO_ACTOR);
  must(
    await c.send('service.register', {
      name: 'secure-intranet',
      matches: [{ sourceSelector: { tier: 'gold' }, routes: [{ destinationSelector: { class: 'premium' } }], fallthrough: true }],
    }),
    'register service',
  );
  must(await c.send('endpoint.register', { name: 'ep-a', networkServiceNames: ['secure-intranet'], networkServiceLabels: { 'secure-intranet': { labels: { class: 'standard' } } }, node: 'node-a', prefix: '10.10.0.0/24', expirationSeconds: 3600 }), 'register ep-a');
  must(await c.send('endpoint.register', { name: 'ep-b', networkServiceNames: ['secure-intranet'], networkServiceLabels: { 'secure-intranet': { labels: { class: 'premium' } } }, node: 'node-b', prefix: '10.20.0.0/24', expirationSeconds: 3600 }), 'register ep-b');
  const [c1, c2, c3] = SCENARIO_CONNECTIONS as [string, string, string];
  must(await c.send('connection.request', { connectionId: c1, networkService: 'secure-intranet', clientNode: 'node-a' }), 'request 1');
  await established(c, c1);
  must(await c.send('connection.request', { connectionId: c2, networkService: 'secure-intranet', clientNode: 'node-b', labels: { app: 'db' } }), 'request 2');
  await established(c, c2);
  // Cross-node: the gold tier goes to the premium endpoint on the other node.
  must(await c.send('connection.request', { connectionId: c3, networkService: 'secure-intranet', clientNode: 'node-a', labels: { tier: 'gold' } }), 'request 3');
  await established(c, c3);
  await waitForQuietLog(store);
  must(await c.send('connection.close', { connectionId: c2, reason: 'fixture: done with it' }), 'close 2');
  return waitForQuietLog(store, 600);
};
