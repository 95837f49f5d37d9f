// Node: a host whose agent programs the dataplane; joins with what its dataplane can do.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { reject, type Aggregate, type MechanismType } from './domain.ts';
import { hearing, losing, recovering } from './membership.ts';

export interface NodeSpec {
  readonly name: string;
  readonly mechanisms: readonly MechanismType[];
  readonly dataplane: 'simulated' | 'linux';
  /** Address other nodes reach this one at (tunnel underlay); optional for single-node meshes. */
  readonly underlayAddress?: string;
  readonly mtu: number;
  /** Public keys only; private keys never leave the node. */
  readonly publicKeys: Readonly<Record<string, string>>;
  /** Prefixes the node already routes (its own networks): never handed out as connection addresses. */
  readonly localPrefixes?: readonly string[];
  /** Federation: where nodes of other domains reach this one when it is behind NAT (default: underlayAddress). */
  readonly externalAddress?: string;
}

export type NodeCommand =
  | { readonly type: 'JoinNode'; readonly spec: NodeSpec }
  | { readonly type: 'LeaveNode'; readonly name: string }
  /** From the leader's detector: no heartbeat since `lastSeen`. */
  | { readonly type: 'LoseNode'; readonly name: string; readonly lastSeen: string; readonly timeoutMs: number }
  /** A lost node is heard from again. */
  | { readonly type: 'RecoverNode'; readonly name: string };

export type NodeEvent =
  | { readonly type: 'NodeJoined'; readonly spec: NodeSpec }
  | { readonly type: 'NodeUpdated'; readonly spec: NodeSpec }
  | { readonly type: 'NodeLeft'; readonly name: string }
  | { readonly type: 'NodeLost'; readonly name: string; readonly lastSeen: string; readonly timeoutMs: number }
  | { readonly type: 'NodeRecovered'; readonly name: string };

export interface NodeState {
  readonly joined: boolean;
  readonly lost: boolean;
  readonly spec?: NodeSpec;
}

export const node: Aggregate<NodeState, NodeCommand, NodeEvent> = {
  name: 'node',
  initialState: { joined: false, lost: false },
  decide(command, state) {
    switch (command.type) {
      case 'JoinNode': {
        const h = hearing({ known: state.joined, lost: state.lost, facts: state.spec }, command.spec);
        if (h.first) return E.right([{ type: 'NodeJoined', spec: command.spec }]);
        return E.right([...(h.back ? [{ type: 'NodeRecovered', name: command.spec.name } as const] : []), ...(h.changed ? [{ type: 'NodeUpdated', spec: command.spec } as const] : [])]);
      }
      case 'LeaveNode':
        if (!state.joined) return reject('not-found', `node "${command.name}" has not joined`);
        return E.right([{ type: 'NodeLeft', name: command.name }]);
      case 'LoseNode':
        if (!losing({ known: state.joined, lost: state.lost })) return E.right([]);
        return E.right([{ type: 'NodeLost', name: command.name, lastSeen: command.lastSeen, timeoutMs: command.timeoutMs }]);
      case 'RecoverNode':
        if (!recovering({ known: state.joined, lost: state.lost })) return E.right([]);
        return E.right([{ type: 'NodeRecovered', name: command.name }]);
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'NodeJoined':
        case 'NodeUpdated':
          s.joined = true;
          s.spec = castDraft(event.spec);
          break;
        case 'NodeLeft':
          s.joined = false;
          s.lost = false;
          break;
        case 'NodeLost':
          s.lost = true;
          break;
        case 'NodeRecovered':
          s.lost = false;
      }
    }),
};
