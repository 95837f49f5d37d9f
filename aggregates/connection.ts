// Connection: one client's connection to a network service, from request to close.
// requested -> endpoint-selected -> path-planned -> (dataplane programmed on each side) ->
// established; failed (with a reason) and closed are terminal for this lifecycle.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce, type Draft } from 'immer';
import { reject, type Aggregate, type ConnectionContext, type Labels, type Match, type MechanismType, type Payload } from './domain.ts';
import { negotiateMechanism, TUNNEL_OVERHEAD, type NegotiatedMechanism } from './mechanism.ts';
import { selectEndpoint, type Candidate } from './selection.ts';

export type Side = 'client' | 'endpoint';
export const SIDES: readonly Side[] = ['client', 'endpoint'];

export type ConnectionPhase = 'none' | 'requested' | 'endpoint-selected' | 'path-planned' | 'established' | 'failed' | 'closed';

export interface ConnectionRequest {
  readonly connectionId: string;
  readonly networkService: string;
  readonly payload: Payload;
  readonly labels: Labels;
  readonly clientNode: string;
  /** Network namespace of the workload (path or name); absent for a simulated client. */
  readonly clientNetns?: string;
  readonly clientInterface: string;
  readonly mechanismPreferences: readonly MechanismType[];
  /** Id of the command that asked for it: a retry of the same command is a no-op. */
  readonly requestId: string;
}

export interface PathSegment {
  readonly name: string;
  readonly id: string;
}

export interface ConnectionPlan {
  readonly mechanism: NegotiatedMechanism;
  readonly context: ConnectionContext;
  readonly path: { readonly index: number; readonly pathSegments: readonly PathSegment[] };
  readonly clientInterface: string;
  readonly endpointInterface: string;
}

export interface NodeFacts {
  readonly mechanisms: readonly MechanismType[];
  readonly mtu: number;
}

export type FailureCode = 'no-endpoint' | 'no-mechanism' | 'node-unknown' | 'address' | 'dataplane';

export type ConnectionCommand =
  | {
      readonly type: 'RequestConnection';
      readonly request: ConnectionRequest;
      /** Registry context read by the command handler; `service` absent means unknown service. */
      readonly registry: {
        readonly service?: { readonly payload: Payload; readonly matches: readonly Match[] };
        readonly endpoints: readonly Candidate[];
      };
    }
  | {
      readonly type: 'PlanPath';
      readonly connectionId: string;
      readonly endpoint: string;
      readonly allocation: { readonly src: string; readonly dst: string; readonly excludedPrefixes: readonly string[] };
      /** Absent when the node has not joined (or has left). */
      readonly clientNodeFacts?: NodeFacts;
      readonly endpointNodeFacts?: NodeFacts;
    }
  | {
      readonly type: 'ReportDataplane';
      readonly connectionId: string;
      readonly node: string;
      readonly side: Side;
      readonly generation: number;
      readonly result: 'programmed' | 'removed' | 'failed';
      readonly error?: string;
    }
  | { readonly type: 'FailConnection'; readonly connectionId: string; readonly code: FailureCode; readonly reason: string }
  | { readonly type: 'CloseConnection'; readonly connectionId: string; readonly reason: string };

export type ConnectionEvent =
  | ({ readonly type: 'ConnectionRequested' } & ConnectionRequest)
  | { readonly type: 'EndpointSelected'; readonly endpoint: string; readonly endpointNode: string; readonly considered: number; readonly excluded: readonly string[] }
  | ({ readonly type: 'PathPlanned'; readonly generation: number } & ConnectionPlan)
  | { readonly type: 'DataplaneProgrammed'; readonly generation: number; readonly node: string; readonly side: Side }
  | { readonly type: 'DataplaneFailed'; readonly generation: number; readonly node: string; readonly side: Side; readonly error: string }
  | { readonly type: 'ConnectionEstablished'; readonly generation: number }
  | { readonly type: 'ConnectionFailed'; readonly code: FailureCode; readonly reason: string }
  | { readonly type: 'ConnectionClosed'; readonly reason: string }
  | { readonly type: 'DataplaneRemoved'; readonly generation: number; readonly node: string; readonly side: Side };

export interface ConnectionState {
  readonly phase: ConnectionPhase;
  readonly request?: ConnectionRequest;
  readonly endpoint?: { readonly name: string; readonly node: string };
  readonly excluded: readonly string[];
  /** Bumped by every PathPlanned; dataplane reports for older generations are stale. */
  readonly generation: number;
  readonly plan?: ConnectionPlan;
  readonly programmed: readonly Side[];
  readonly removed: readonly Side[];
  readonly failure?: { readonly code: FailureCode; readonly reason: string };
  readonly closeReason?: string;
}

export const isTerminal = (phase: ConnectionPhase): boolean => phase === 'closed' || phase === 'failed';

/** Linux interface names are at most 15 bytes: a 3-letter role prefix and 12 characters of the id. */
export const interfaceNameFor = (role: 'nsm' | 'nse', connectionId: string): string =>
  role + connectionId.replace(/[^A-Za-z0-9]/g, '').slice(0, 12).toLowerCase();

export const nodeOfSide = (s: ConnectionState, side: Side): string | undefined =>
  side === 'client' ? s.request?.clientNode : s.endpoint?.node;

const unknownConnection = (id: string) => reject('not-found', `connection "${id}" does not exist`);

/** The state transition as an immer recipe, shared with the connections projection. */
export const evolveDraft = (s: Draft<ConnectionState>, event: ConnectionEvent): void => {
  switch (event.type) {
    case 'ConnectionRequested': {
      const { type: _t, ...request } = event;
      s.phase = 'requested';
      s.request = castDraft(request);
      break;
    }
    case 'EndpointSelected':
      s.phase = 'endpoint-selected';
      s.endpoint = { name: event.endpoint, node: event.endpointNode };
      break;
    case 'PathPlanned': {
      const { type: _t, generation, ...plan } = event;
      s.phase = 'path-planned';
      s.generation = generation;
      s.plan = castDraft(plan);
      s.programmed = [];
      s.removed = [];
      break;
    }
    case 'DataplaneProgrammed':
      s.programmed.push(event.side);
      break;
    case 'ConnectionEstablished':
      s.phase = 'established';
      break;
    case 'DataplaneFailed':
      break;
    case 'ConnectionFailed':
      s.phase = 'failed';
      s.failure = { code: event.code, reason: event.reason };
      break;
    case 'ConnectionClosed':
      s.phase = 'closed';
      s.closeReason = event.reason;
      break;
    case 'DataplaneRemoved':
      s.removed.push(event.side);
  }
};

export const connection: Aggregate<ConnectionState, ConnectionCommand, ConnectionEvent> = {
  name: 'connection',
  initialState: { phase: 'none', excluded: [], generation: 0, programmed: [], removed: [] },
  decide(command, state) {
    switch (command.type) {
      case 'RequestConnection': {
        const { request, registry } = command;
        if (state.phase !== 'none') {
          if (state.request?.requestId === request.requestId) return E.right([]);
          return reject('conflict', `connection id "${request.connectionId}" is already in use`);
        }
        if (!registry.service) {
          return reject('not-found', `network service "${request.networkService}" is not registered`);
        }
        const requested: ConnectionEvent = { type: 'ConnectionRequested', ...request, payload: registry.service.payload };
        const selection = selectEndpoint({
          service: request.networkService,
          matches: registry.service.matches,
          clientLabels: request.labels,
          clientNode: request.clientNode,
          endpoints: registry.endpoints,
          exclude: state.excluded,
        });
        if (selection.kind === 'none') {
          return E.right([requested, { type: 'ConnectionFailed', code: 'no-endpoint', reason: selection.reason }]);
        }
        return E.right([
          requested,
          {
            type: 'EndpointSelected',
            endpoint: selection.endpoint.name,
            endpointNode: selection.endpoint.node,
            considered: selection.considered,
            excluded: [...state.excluded],
          },
        ]);
      }
      case 'PlanPath': {
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (state.phase !== 'endpoint-selected' || state.endpoint?.name !== command.endpoint) return E.right([]);
        const request = state.request!;
        const endpointNode = state.endpoint.node;
        if (!command.clientNodeFacts || !command.endpointNodeFacts) {
          const missing = !command.clientNodeFacts ? request.clientNode : endpointNode;
          return E.right([{ type: 'ConnectionFailed', code: 'node-unknown', reason: `node "${missing}" has not joined the mesh` }]);
        }
        const mechanism = negotiateMechanism({
          preferences: request.mechanismPreferences,
          payload: request.payload,
          clientNode: request.clientNode,
          clientCapabilities: command.clientNodeFacts.mechanisms,
          endpointNode,
          endpointCapabilities: command.endpointNodeFacts.mechanisms,
        });
        if (E.isLeft(mechanism)) {
          return E.right([{ type: 'ConnectionFailed', code: 'no-mechanism', reason: mechanism.left }]);
        }
        const overhead = mechanism.right.remote ? TUNNEL_OVERHEAD[mechanism.right.remote] : 0;
        const { src, dst, excludedPrefixes } = command.allocation;
        return E.right([
          {
            type: 'PathPlanned',
            generation: state.generation + 1,
            mechanism: mechanism.right,
            context: {
              ipContext: {
                srcIpAddrs: [src],
                dstIpAddrs: [dst],
                srcRoutes: [{ prefix: dst }],
                dstRoutes: [{ prefix: src }],
                excludedPrefixes,
              },
              dnsContext: { configs: [] },
              ethernetContext: {},
              mtu: Math.min(command.clientNodeFacts.mtu, command.endpointNodeFacts.mtu) - overhead,
            },
            path: {
              index: 0,
              pathSegments: [
                { name: `client@${request.clientNode}`, id: request.connectionId },
                { name: command.endpoint, id: request.connectionId },
              ],
            },
            clientInterface: request.clientInterface,
            endpointInterface: interfaceNameFor('nse', request.connectionId),
          },
        ]);
      }
      case 'ReportDataplane': {
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (command.generation !== state.generation) return E.right([]);
        const expectedNode = nodeOfSide(state, command.side);
        if (expectedNode !== command.node) {
          return reject('invalid', `node "${command.node}" reported the ${command.side} side, which belongs to node "${expectedNode}"`);
        }
        const { generation, node, side } = command;
        switch (command.result) {
          case 'programmed': {
            if (state.phase !== 'path-planned' || state.programmed.includes(side)) return E.right([]);
            const events: ConnectionEvent[] = [{ type: 'DataplaneProgrammed', generation, node, side }];
            if (SIDES.every((s) => s === side || state.programmed.includes(s))) {
              events.push({ type: 'ConnectionEstablished', generation });
            }
            return E.right(events);
          }
          case 'failed': {
            if (state.phase !== 'path-planned' && state.phase !== 'established') return E.right([]);
            const error = command.error ?? 'unknown error';
            return E.right([
              { type: 'DataplaneFailed', generation, node, side, error },
              { type: 'ConnectionFailed', code: 'dataplane', reason: `dataplane on node ${node} (${side} side): ${error}` },
            ]);
          }
          case 'removed':
            if (!isTerminal(state.phase) || state.removed.includes(side)) return E.right([]);
            return E.right([{ type: 'DataplaneRemoved', generation, node, side }]);
        }
      }
      // falls through: unreachable, every result returns
      case 'FailConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase)) return E.right([]);
        return E.right([{ type: 'ConnectionFailed', code: command.code, reason: command.reason }]);
      case 'CloseConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (state.phase === 'closed') return E.right([]);
        return E.right([{ type: 'ConnectionClosed', reason: command.reason }]);
    }
  },
  evolve: (state, event) => produce(state, (draft) => evolveDraft(draft, event)),
};
