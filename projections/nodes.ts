// Nodes read model: which nodes have joined and what their dataplanes can do.
import { castDraft, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { NodeSpec } from '../aggregates/node.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface NodeRow extends NodeSpec {
  readonly joinedAt: string;
  readonly updatedAt: string;
}

export interface NodesModel {
  readonly nodes: Readonly<Record<string, NodeRow>>;
}

export const emptyNodes: NodesModel = { nodes: {} };

export const applyNodes = (m: Draft<NodesModel>, e: EventEnvelope<DomainEvent>): void => {
  const d = e.data;
  switch (d.type) {
    case 'NodeJoined':
    case 'NodeUpdated': {
      const prev = m.nodes[d.spec.name];
      m.nodes[d.spec.name] = castDraft({ ...d.spec, joinedAt: prev?.joinedAt ?? e.time, updatedAt: e.time });
      break;
    }
    case 'NodeLeft':
      delete m.nodes[d.name];
  }
};
