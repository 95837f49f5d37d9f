// The whole mesh read model, folded from commits in batches (one immer produce per batch:
// per-event produce is slow on large states).
import { Immer } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope, StoredCommit } from '../src/contracts/envelope.ts';
import { upcastEvent } from '../src/contracts/upcast.ts';
import { applyConnections, emptyConnections, type ConnectionsModel } from './connections.ts';
import { applyNodes, emptyNodes, type NodesModel } from './nodes.ts';
import { applyPools, emptyPools, type PoolsModel } from './pools.ts';
import { applyRegistry, emptyRegistry, type RegistryModel } from './registry.ts';

export interface MeshModel {
  readonly registry: RegistryModel;
  readonly connections: ConnectionsModel;
  readonly nodes: NodesModel;
  readonly pools: PoolsModel;
  /** Position of the last commit folded in. */
  readonly position: number;
}

/**
 * Version of the read model's shape and of the folds that build it. Bump it whenever a change
 * to projections/ would fold the same log into a different model: snapshots of another version
 * are not loaded, the model is folded again from the log.
 */
export const MESH_PROJECTION_VERSION = 2;

export const emptyMesh: MeshModel = {
  registry: emptyRegistry,
  connections: emptyConnections,
  nodes: emptyNodes,
  pools: emptyPools,
  position: 0,
};

// Read models are replaced wholesale and never handed to untrusted code: freezing buys nothing.
const immer = new Immer({ autoFreeze: false });

export const applyCommits = (model: MeshModel, commits: readonly StoredCommit[]): MeshModel =>
  commits.length === 0
    ? model
    : immer.produce(model, (m) => {
        for (const c of commits) {
          const position = Number(c.position);
          if (position <= m.position) continue;
          for (const stored of c.events as readonly EventEnvelope<DomainEvent>[]) {
            const env = upcastEvent(stored);
            applyRegistry(m.registry, env);
            applyNodes(m.nodes, env);
            applyPools(m.pools, env);
            applyConnections(m.connections, env, position);
          }
          m.position = position;
        }
      });
