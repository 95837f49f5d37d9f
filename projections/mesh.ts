// The whole mesh read model, folded from commits in batches (one immer produce per batch:
// per-event produce is slow on large states).
import { Immer, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { EventEnvelope, StoredCommit } from '../src/contracts/envelope.ts';
import { upcastEvent } from '../src/contracts/upcast.ts';
import { applyConnections, emptyConnections, type ConnectionsModel } from './connections.ts';
import { applyNodes, emptyNodes, type NodesModel } from './nodes.ts';
import { applyPeers, emptyPeers, type PeersModel } from './peers.ts';
import { applyPools, emptyPools, type PoolsModel } from './pools.ts';
import { applyPolicy, emptyPolicy } from './policy.ts';
import type { PolicyState } from '../aggregates/policy.ts';
import { applyRegistry, emptyRegistry, type RegistryModel } from './registry.ts';
import { applyWorkflow, emptyWorkflow, type WorkflowModel } from './workflow.ts';
import { applyLimits, emptyLimits } from './limits.ts';
import type { LimitsConfig } from '../aggregates/limits.ts';

export interface MeshModel {
  readonly registry: RegistryModel;
  readonly connections: ConnectionsModel;
  readonly nodes: NodesModel;
  readonly pools: PoolsModel;
  /** The authorization policy (aggregates/policy.ts). */
  readonly policy: PolicyState;
  /** Other domains of the federation (aggregates/peer.ts). */
  readonly peers: PeersModel;
  /** Workflow steps the process manager gave up on (aggregates/workflow.ts). */
  readonly workflow: WorkflowModel;
  /** Per-role and per-identity limits (aggregates/limits.ts). */
  readonly limits: LimitsConfig;
  /** Position of the last commit folded in. */
  readonly position: number;
}

/**
 * Version of the read model's shape and of the folds that build it. Bump it whenever a change
 * to projections/ would fold the same log into a different model: snapshots of another version
 * are not loaded, the model is folded again from the log.
 */
// 4: two branches each moved to 3 (peers; registry revisions), and connection counts came after
// without a bump: no snapshot written before 4 is taken for any of these shapes.
// 5: failed workflow steps; limits and usage per requester.
// 6: connections that ended leave the model after the most recent 1,000 (projections/connections.ts).
// 7: IPv6 and dual stack: pools hold a list of pairs per connection, endpoints a list of prefixes.
export const MESH_PROJECTION_VERSION = 7;

export const emptyMesh: MeshModel = {
  registry: emptyRegistry,
  connections: emptyConnections,
  nodes: emptyNodes,
  pools: emptyPools,
  policy: emptyPolicy,
  peers: emptyPeers,
  workflow: emptyWorkflow,
  limits: emptyLimits,
  position: 0,
};

/** Folds commits into a model being built: the one recipe behind both ways of folding below. */
const foldInto = (m: Draft<MeshModel>, commits: readonly StoredCommit[]): void => {
  for (const c of commits) {
    const position = Number(c.position);
    if (position <= m.position) continue;
    for (const stored of c.events as readonly EventEnvelope<DomainEvent>[]) {
      const env = upcastEvent(stored);
      applyRegistry(m.registry, env);
      applyNodes(m.nodes, env);
      applyPools(m.pools, env);
      applyConnections(m.connections, env, position);
      applyPolicy(m, env);
      applyPeers(m.peers, env);
      applyWorkflow(m.workflow, env);
      applyLimits(m, env);
    }
    m.position = position;
  }
};

// Frozen, so that a model handed out by applyCommits cannot be changed behind its owner's back.
const immer = new Immer({ autoFreeze: true });

/**
 * A new model with the commits folded in (structural sharing; the input is untouched): the pure
 * fold for specs and one-off reads. The live view folds in place (applyCommitsInPlace), because
 * a produce on a large model costs in proportion to the maps it touches.
 */
export const applyCommits = (model: MeshModel, commits: readonly StoredCommit[]): MeshModel =>
  commits.length === 0 ? model : immer.produce(model, (m) => foldInto(m, commits));

export interface MeshBuilder {
  apply(commits: readonly StoredCommit[]): void;
  readonly position: number;
  /** The model built; the builder cannot be used after this. */
  finish(): MeshModel;
}

/**
 * Folds many commits into a private copy of `from`, in place, with no immer: for bulk folds
 * (replay, rebuild) whose intermediate models nobody sees. Per produce, immer visits
 * every key of a collection it changed, which makes a fold from scratch quadratic in the number
 * of connections. Pure from the outside: `from` is copied, and the result is handed over once.
 */
export const meshBuilder = (from: MeshModel = emptyMesh): MeshBuilder => {
  let m: Draft<MeshModel> | undefined = structuredClone(from) as Draft<MeshModel>;
  const open = () => m ?? (() => {
    throw new Error('mesh builder already finished');
  })();
  return {
    apply: (commits) => foldInto(open(), commits),
    get position() {
      return open().position;
    },
    finish: () => {
      const done = open() as MeshModel;
      m = undefined;
      return done;
    },
  };
};

/**
 * Folds the commits into `model` itself, in time proportional to the commits, not to the model:
 * even frozen, immer visits every key of a map it modifies, so each small batch cost
 * O(connections) in the live view. For the one owner of a live model (src/read/meshView.ts); the
 * fold only sets and deletes fields of objects it created, never objects taken from events
 * (those may be frozen by other folds of the same commits).
 */
export const applyCommitsInPlace = (model: Draft<MeshModel>, commits: readonly StoredCommit[]): void => foldInto(model, commits);
