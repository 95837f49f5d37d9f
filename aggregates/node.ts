// Node: a host whose agent programs the dataplane; joins with what its dataplane can do.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { jsonEqual, reject, type Aggregate, type MechanismType } from './domain.ts';

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
}

export type NodeCommand =
  | { readonly type: 'JoinNode'; readonly spec: NodeSpec }
  | { readonly type: 'LeaveNode'; readonly name: string };

export type NodeEvent =
  | { readonly type: 'NodeJoined'; readonly spec: NodeSpec }
  | { readonly type: 'NodeUpdated'; readonly spec: NodeSpec }
  | { readonly type: 'NodeLeft'; readonly name: string };

export interface NodeState {
  readonly joined: boolean;
  readonly spec?: NodeSpec;
}

export const node: Aggregate<NodeState, NodeCommand, NodeEvent> = {
  name: 'node',
  initialState: { joined: false },
  decide(command, state) {
    switch (command.type) {
      case 'JoinNode':
        if (!state.joined) return E.right([{ type: 'NodeJoined', spec: command.spec }]);
        if (jsonEqual(state.spec, command.spec)) return E.right([]);
        return E.right([{ type: 'NodeUpdated', spec: command.spec }]);
      case 'LeaveNode':
        if (!state.joined) return reject('not-found', `node "${command.name}" has not joined`);
        return E.right([{ type: 'NodeLeft', name: command.name }]);
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
      }
    }),
};
