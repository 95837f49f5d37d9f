// The two ways of folding the mesh model agree: the immer path (live increments, structural
// sharing, frozen results) and the in-place builder (bulk folds on a private copy).
import * as TE from 'fp-ts/lib/TaskEither.js';
import * as assert from 'uvu/assert';
import { applyCommits, emptyMesh, meshBuilder, type MeshModel } from '../../projections/mesh.ts';
import { asPosition, type Commit, type StoredCommit } from '../../src/contracts/envelope.ts';
import type { EventStore } from '../../src/ports/eventStore.ts';
import { MeshView } from '../../src/read/meshView.ts';
import { suite } from '../lib/harness.ts';
import { writeLifecycleLog } from '../lib/lifecycleLog.ts';

/** A log of 60 connection lifecycles over 8 endpoints, as the store would hand it out. */
const buildLog = async (): Promise<StoredCommit[]> => {
  const commits: StoredCommit[] = [];
  const store = {
    append: (c: Commit) => {
      commits.push({ ...c, revision: commits.length + 1, position: asPosition(commits.length + 1) });
      return TE.right({ revision: commits.length, position: BigInt(commits.length), duplicate: false });
    },
  } as unknown as EventStore;
  await writeLifecycleLog({ store, connections: 60, endpoints: 8, prefix: 'mb' });
  return commits;
};

const inBatches = (log: readonly StoredCommit[], size: number, from: MeshModel = emptyMesh): MeshModel => {
  let m = from;
  for (let i = 0; i < log.length; i += size) m = applyCommits(m, log.slice(i, i + size));
  return m;
};

const s = suite('mesh model: immer path and in-place builder');

s('the builder and the immer path fold a log into the same model', async () => {
  const log = await buildLog();
  const viaImmer = inBatches(log, 7);
  const b = meshBuilder();
  for (let i = 0; i < log.length; i += 100) b.apply(log.slice(i, i + 100));
  const viaBuilder = b.finish();
  assert.is(viaBuilder.position, log.length);
  assert.is(Object.keys(viaBuilder.connections.byId).length, 60);
  assert.equal(viaBuilder, viaImmer);
});

s('the builder copies its starting model and cannot be used after finish()', async () => {
  const log = await buildLog();
  const half = inBatches(log.slice(0, 200), 50);
  assert.ok(Object.isFrozen(half.connections.byId), 'the immer path freezes its results');
  const snapshot = JSON.stringify(half);
  const b = meshBuilder(half);
  b.apply(log.slice(200));
  const full = b.finish();
  assert.is(JSON.stringify(half), snapshot, 'the starting model is untouched');
  assert.equal(full, inBatches(log, 50));
  assert.throws(() => b.apply(log.slice(0, 1)), /already finished/);
  // A model from the builder is not frozen; the immer path folds on it all the same.
  const more = applyCommits(full, []);
  assert.is(more, full);
});

s('a MeshView in bulk mode ends with the same model, and hands checkpoints to listeners', async () => {
  const log = await buildLog();
  const view = new MeshView(100);
  const seen: number[] = [];
  view.onChange((m) => seen.push(m.position));
  for (const c of log.slice(0, 350)) view.bulk(c);
  assert.equal(seen, [100, 200, 300], 'a checkpoint every 100 commits');
  for (const c of log.slice(350)) view.push(c);
  view.flush();
  assert.equal(view.current, inBatches(log, 64));
  assert.is(view.folded, log.length);
  await view.waitFor(log.length, 10);
});

s.run();
