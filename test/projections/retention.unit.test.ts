// Connections that ended leave the read model after the most recent RETAINED_ENDED: a mesh that
// churns connections for a day must not hold every connection it ever had (found by the soak,
// bench/soak.ts: the control plane's heap grew by every closed connection's row).
import * as assert from 'uvu/assert';
import type { DomainEvent } from '../../aggregates/index.ts';
import { listConnections, RETAINED_ENDED } from '../../projections/connections.ts';
import { applyCommitsInPlace, emptyMesh, meshBuilder, applyCommits, type MeshModel } from '../../projections/mesh.ts';
import type { StoredCommit } from '../../src/contracts/envelope.ts';
import { commitLog } from '../lib/commitLog.ts';
import { suite } from '../lib/harness.ts';

const log = () => commitLog('alice');

const requested = (id: string): DomainEvent =>
  ({ type: 'ConnectionRequested', connectionId: id, networkService: 's', payload: 'IP', labels: {}, clientNode: 'n1', clientInterface: 'nsm0', mechanismPreferences: [], requestId: `r-${id}` }) as unknown as DomainEvent;
const closed = { type: 'ConnectionClosed', reason: 'done' } as unknown as DomainEvent;
const failed = { type: 'ConnectionFailed', code: 'no-endpoint', reason: 'none' } as unknown as DomainEvent;
const removed = { type: 'DataplaneRemoved', generation: 1, node: 'n1', side: 'client' } as unknown as DomainEvent;

/** `held` connections that stay, then `churned` that are asked for and end (every third fails). */
const churn = (held: number, churned: number) => {
  const c = log();
  const commits: StoredCommit[] = [];
  for (let i = 0; i < held; i++) commits.push(c(`connection.held-${i}`, [requested(`held-${i}`)]));
  for (let i = 0; i < churned; i++) {
    commits.push(c(`connection.c-${i}`, [requested(`c-${i}`)]));
    commits.push(c(`connection.c-${i}`, [i % 3 === 2 ? failed : closed]));
  }
  return { commits, more: c };
};

const s = suite('projections: connections that ended are retained, then dropped');

s('only the most recent RETAINED_ENDED ended connections stay; held ones always do', () => {
  const { commits } = churn(50, RETAINED_ENDED * 3 + 17);
  const b = meshBuilder();
  b.apply(commits);
  const m = b.finish();
  assert.is(m.connections.count, 50 + RETAINED_ENDED);
  assert.is(Object.keys(m.connections.byId).length, 50 + RETAINED_ENDED);
  for (let i = 0; i < 50; i++) assert.ok(m.connections.byId[`held-${i}`], `held-${i} stays`);
  const last = RETAINED_ENDED * 3 + 16;
  assert.is(m.connections.byId[`c-${last}`]?.state.phase, last % 3 === 2 ? 'failed' : 'closed', 'the most recent ended one is there');
  assert.is(m.connections.byId['c-0'], undefined, 'the oldest is gone');
  assert.is(m.connections.byId[`c-${last - RETAINED_ENDED}`], undefined);
  assert.ok(m.connections.byId[`c-${last - RETAINED_ENDED + 1}`]);
  // The bookkeeping stays bounded too.
  assert.ok(m.connections.ended.length - m.connections.endedFrom === RETAINED_ENDED);
  assert.ok(m.connections.ended.length <= 2 * RETAINED_ENDED + 1024 + 1, `ended holds ${m.connections.ended.length}`);
  // Listed by default: the held ones and the failed ones still retained (closed ones only with includeClosed).
  assert.is(listConnections(m.connections).length, 50 + listConnections(m.connections, { state: 'failed' }).length);
});

s('a late event of a dropped connection does not bring its row back', () => {
  const { commits, more } = churn(0, RETAINED_ENDED + 5);
  const b = meshBuilder();
  b.apply(commits);
  b.apply([more('connection.c-0', [removed])]);
  const m = b.finish();
  assert.is(m.connections.byId['c-0'], undefined);
  assert.is(m.connections.count, RETAINED_ENDED);
});

s('the live view (in place), the pure fold and the builder agree', () => {
  const { commits } = churn(10, RETAINED_ENDED + 300);
  const pure = applyCommits(emptyMesh, commits);
  const live = structuredClone(emptyMesh) as MeshModel;
  for (let i = 0; i < commits.length; i += 97) applyCommitsInPlace(live as never, commits.slice(i, i + 97));
  const b = meshBuilder();
  b.apply(commits);
  const built = b.finish();
  assert.equal(Object.keys(live.connections.byId).sort(), Object.keys(pure.connections.byId).sort());
  assert.equal(Object.keys(built.connections.byId).sort(), Object.keys(pure.connections.byId).sort());
  assert.is(live.connections.count, pure.connections.count);
  assert.equal(live.connections.byActor, pure.connections.byActor);
});

s.run();
