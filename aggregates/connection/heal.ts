// Healing decisions: a connection whose endpoint, node or datapath failed is repaired in place
// when the rules still allow its endpoint, moved to another one, or left waiting for one.
import * as E from 'fp-ts/lib/Either.js';
import type { DomainError } from '../domain.ts';
import { matchEndpoints, selectEndpoint } from '../selection.ts';
import { isTerminal, retire, SIDES, unknownConnection, type ConnectionCommand, type ConnectionEvent, type ConnectionRequest, type ConnectionState, type RegistryContext } from './types.ts';

/** Candidates for a (re)selection: the connection's own rules, minus the excluded endpoints. */
export const select = (request: ConnectionRequest, registry: RegistryContext, exclude: readonly string[]) =>
  registry.service
    ? selectEndpoint({
        service: request.networkService,
        matches: registry.service.matches,
        clientLabels: request.labels,
        clientNode: request.clientNode,
        endpoints: registry.endpoints,
        exclude,
        ...(registry.loadOf ? { loadOf: registry.loadOf } : {}),
      })
    : ({ kind: 'none', reason: `network service "${request.networkService}" is no longer registered` } as const);

export const decideHeal = (command: Extract<ConnectionCommand, { type: 'HealConnection' }>, state: ConnectionState): E.Either<DomainError, readonly ConnectionEvent[]> => {
  if (state.phase === 'none') return unknownConnection(command.connectionId);
  if (isTerminal(state.phase) || state.healCauses.includes(command.causeId)) return E.right([]);
  // Federation, client side: the endpoint's domain does every reselection and every plan; a heal
  // asked for here changes nothing. (When the client's own node comes back, the process manager
  // asks the endpoint's domain where the connection stands, and its answer re-plans this side:
  // decideRemoteState from 'down'.)
  if (state.remoteDomain) return E.right([]);
  // A lost client node cannot take a new path; the node's return heals it.
  if (state.phase === 'down' && command.cause !== 'node-recovered') return E.right([]);
  if (state.phase !== 'down' && command.cause === 'node-recovered') return E.right([]);
  // Only a waiting connection has anything to gain from a newly registered endpoint.
  if (command.cause === 'endpoint-available' && state.phase !== 'waiting') return E.right([]);
  const request = state.request!;
  const current = state.endpoint;
  // A datapath that fails again soon after an in-place repair is not going to be fixed in place.
  const escalate =
    (command.cause === 'datapath' &&
      state.lastHeal?.cause === 'datapath' &&
      state.lastHeal.inPlace &&
      Date.parse(command.at) - Date.parse(state.lastHeal.at) < command.escalateWithinMs) ||
    command.cause === 'dataplane';
  const exclude = [...new Set([...command.exclude, ...(escalate && current ? [current.name] : [])])];
  // A repair (datapath, the client's node back) keeps the endpoint when the rules still allow it.
  const keepCurrent =
    current !== undefined &&
    (command.cause === 'datapath' || command.cause === 'node-recovered') &&
    allows(request, command.registry, exclude, current.name);
  const selection = keepCurrent
    ? ({ kind: 'selected', endpoint: current!, considered: 1 } as const)
    : select(request, command.registry, exclude);
  const healing: ConnectionEvent = {
    type: 'ConnectionHealing',
    cause: command.cause,
    causeId: command.causeId,
    ...(current ? { oldEndpoint: current.name } : {}),
    inPlace: selection.kind === 'selected' && current !== undefined && selection.endpoint.name === current.name,
    startedAt: state.healing?.startedAt ?? command.at,
  };
  if (selection.kind === 'none') {
    if (state.phase === 'waiting') return E.right([]);
    const replaces = retire(state, SIDES);
    return E.right([healing, { type: 'ConnectionWaiting', reason: selection.reason, since: command.at, ...(replaces ? { replaces } : {}) }]);
  }
  const moved = current === undefined || selection.endpoint.name !== current.name;
  const replaces = retire(state, moved ? ['endpoint'] : []);
  return E.right([
    healing,
    {
      type: 'EndpointSelected',
      endpoint: selection.endpoint.name,
      endpointNode: selection.endpoint.node,
      considered: selection.considered,
      excluded: exclude,
      ...(replaces ? { replaces } : {}),
    },
  ]);
};

/** True when `name` is registered for the service and allowed by the connection's matching rules. */
const allows = (request: ConnectionRequest, reg: RegistryContext, exclude: readonly string[], name: string): boolean => {
  if (!reg.service || exclude.includes(name)) return false;
  return matchEndpoints(reg.service.matches, request.labels, reg.endpoints).some((ep) => ep.name === name);
};

