// The whole mesh read model, folded from commits in batches (one immer produce per batch:
// per-event produce is slow on large states).
import { Immer, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope, StoredCommit } from '../src/contracts/envelope.ts';
import { applyConnections, emptyConnections, type ConnectionsModel } from './connections.ts';
import { applyNodes, emptyNodes, type NodesModel } from './nodes.ts';
import { applyPools, emptyPools, type PoolsModel } from './pools.ts';
import { applyPolicy, emptyPolicy } from './policy.ts';
import type { PolicyState } from '../aggregates/policy.ts';
import { applyRegistry, emptyRegistry, type RegistryModel } from './registry.ts';

export interface MeshModel {
  readonly registry: RegistryModel;
  readonly connections: ConnectionsModel;
  readonly nodes: NodesModel;
  readonly pools: PoolsModel;
  /** The authorization policy (aggregates/policy.ts). */
  readonly policy: PolicyState;
  /** Position of the last commit folded in. */
  readonly position: number;
}

export const emptyMesh: MeshModel = {
  registry: emptyRegistry,
  connections: emptyConnections,
  nodes: emptyNodes,
  pools: emptyPools,
  policy: emptyPolicy,
  position: 0,
};

// Read models are replaced wholesale and never handed to untrusted code: freezing buys nothing.
const immer = new Immer({ autoFreeze: false });

const foldInto = (m: Draft<MeshModel>, commits: readonly StoredCommit[]): void => {
  for (const c of commits) {
    const position = Number(c.position);
    if (position <= m.position) continue;
    for (const env of c.events as readonly EventEnvelope<DomainEvent>[]) {
      applyRegistry(m.registry, env);
      applyNodes(m.nodes, env);
      applyPools(m.pools, env);
      applyConnections(m.connections, env, position);
      applyPolicy(m, env);
    }
    m.position = position;
  }
};

/** A new model with the commits folded in; `model` is left as it was. */
export const applyCommits = (model: MeshModel, commits: readonly StoredCommit[]): MeshModel =>
  commits.length === 0 ? model : immer.produce(model, (m) => foldInto(m, commits));

/**
 * Folds the commits into `model` itself, in time proportional to the commits, not to the model:
 * immer's finalisation walks every key of a modified map, which made each small batch cost
 * O(connections) in the live view. For the one owner of a live model (src/meshView.ts); the
 * fold only sets and deletes fields of objects it created, never objects taken from events.
 */
export const applyCommitsInPlace = (model: Draft<MeshModel>, commits: readonly StoredCommit[]): void => foldInto(model, commits);

/** A fresh model that applyCommitsInPlace may mutate (emptyMesh itself is shared). */
export const newMutableMesh = (): Draft<MeshModel> => structuredClone(emptyMesh) as Draft<MeshModel>;
