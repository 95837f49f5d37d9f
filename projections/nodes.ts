// Nodes read model: which nodes have joined and what their dataplanes can do.
import { castDraft, type Draft } from 'immer';
import type { DomainEvent } from '../aggregates/index.ts';
import type { NodeSpec } from '../aggregates/node.ts';
import type { EventEnvelope } from '../src/contracts/envelope.ts';

export interface NodeRow extends NodeSpec {
  readonly joinedAt: string;
  readonly updatedAt: string;
  /** lost: no heartbeat within the timeout; its endpoints expired and its clients' connections are down. */
  readonly status: 'ready' | 'lost';
  readonly lostAt?: string;
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
      m.nodes[d.spec.name] = castDraft({
        ...d.spec,
        joinedAt: prev?.joinedAt ?? e.time,
        updatedAt: e.time,
        status: prev?.status ?? 'ready',
        ...(prev?.lostAt ? { lostAt: prev.lostAt } : {}),
      });
      break;
    }
    case 'NodeLeft':
      delete m.nodes[d.name];
      break;
    case 'NodeLost': {
      const row = m.nodes[d.name];
      if (row) {
        row.status = 'lost';
        row.lostAt = e.time;
      }
      break;
    }
    case 'NodeRecovered': {
      const row = m.nodes[d.name];
      if (row) {
        row.status = 'ready';
        delete row.lostAt;
      }
    }
  }
};
