// Decisions of the connection aggregate for connections that span two domains (federation,
// docs/federation.md). The connection has the same id in both domains' logs:
//
//   client's domain (a)                          endpoint's domain (b)
//   ConnectionRequested {domain: b}  --request-->  ConnectionRequested {remoteClient: a's node}
//                                                  EndpointSelected, PathPlanned (b allocates the
//                                                  addresses and the tunnel id)
//   EndpointSelected, PathPlanned    <--state---   (the plan, and whether b's side is programmed)
//   {remote: {domain b, generation}}
//   DataplaneProgrammed (client)     --report-->   DataplaneProgrammed (client), Established
//   Established                      <--state---   DataplaneProgrammed (endpoint)
//
// The endpoint's domain decides (selection, addresses, mechanism, heals); the client's domain
// mirrors its plan for its own side.
import * as E from 'fp-ts/lib/Either.js';
import { reject, type DomainError } from '../domain.ts';
import { quotaProblem } from '../limits.ts';
import { evaluatePolicy } from '../policy.ts';
import { selectEndpoint } from '../selection.ts';
import { formatRange, rangesOverlap } from '../tunnelPool.ts';
import { isTerminal, retire, unknownConnection, type ConnectionCommand, type ConnectionEvent, type ConnectionRequest, type ConnectionState, type FailureCode, type RegistryContext, type RemoteNode, type Side } from './types.ts';

const BOTH: readonly Side[] = ['client', 'endpoint'];

/** How a node or endpoint of another domain is named here: "<name>@<domain>", never a local name. */
export const remoteName = (name: string, domain: string): string => `${name}@${domain}`;

/** Sides programmed by this domain's agents: a side whose node is in another domain is not. */
export const localSides = (s: Pick<ConnectionState, 'request' | 'remoteDomain'>): Side[] =>
  BOTH.filter((side) => (side === 'client' ? !s.request?.remoteClient : !s.remoteDomain));


type Request = Extract<ConnectionCommand, { type: 'RequestConnection' }>;

/**
 * A request that crosses domains. Client side (request.domain): recorded; the process manager
 * asks the other domain. Endpoint side (request.remoteClient): selected here like a local one,
 * except that what cannot be served is a ConnectionFailed in this log (the other domain learns
 * it from there), not a rejection nobody would hear.
 */
export const decideRemoteRequest = (command: Request, state: ConnectionState): E.Either<DomainError, readonly ConnectionEvent[]> => {
  const { request, registry } = command;
  const remote = request.remoteClient;
  if (state.phase !== 'none') {
    if (state.request?.requestId === request.requestId) return E.right([]);
    return reject('conflict', `connection id "${request.connectionId}" is already in use`);
  }
  const requested: ConnectionEvent = { type: 'ConnectionRequested', ...request, payload: registry.service?.payload ?? request.payload };
  if (command.policy) {
    const decision = evaluatePolicy(command.policy.policy, { client: command.policy.client, labels: request.labels, service: request.networkService });
    if (!decision.allowed) return E.right([requested, { type: 'ConnectionDenied', rule: decision.rule, reason: decision.reason }]);
  }
  if (command.quota) {
    const hit = quotaProblem(command.quota.identity, command.quota.limits, command.quota.usage);
    if (hit) return E.right([requested, { type: 'ConnectionLimited', ...hit }]);
  }
  if (!remote) return E.right([requested]);
  const fail = (code: FailureCode, reason: string): E.Either<DomainError, readonly ConnectionEvent[]> =>
    E.right([requested, { type: 'ConnectionFailed', code, reason }]);
  if (command.refuse) return fail(command.refuse.code, command.refuse.reason);
  if (!registry.service) return fail('no-endpoint', `network service "${request.networkService}" is not registered in this domain`);
  const selection = selectWithHint(request, registry, registry.service.matches, request.endpointHint);
  if (selection.kind === 'none') return fail('no-endpoint', selection.reason);
  const ep = selection.endpoint;
  if (command.registryOnly) {
    if (!ep.domain) return fail('no-endpoint', `endpoint "${ep.name}" of this registry names no home domain`);
    return E.right([requested, { type: 'ConnectionRedirected', domain: ep.domain, endpoint: ep.name, via: command.registryOnly }]);
  }
  return E.right([requested, { type: 'EndpointSelected', endpoint: ep.name, endpointNode: ep.node, considered: selection.considered, excluded: [] }]);
};

/** The usual selection (load included), narrowed to the hinted endpoint when it is among the candidates. */
const selectWithHint = (
  request: Pick<ConnectionRequest, 'networkService' | 'labels' | 'clientNode'>,
  registry: RegistryContext,
  matches: NonNullable<RegistryContext['service']>['matches'],
  hint: string | undefined,
) => {
  const base = {
    service: request.networkService,
    matches,
    clientLabels: request.labels,
    clientNode: request.clientNode,
    exclude: [] as string[],
    ...(registry.loadOf ? { loadOf: registry.loadOf } : {}),
  };
  if (hint) {
    const hinted = selectEndpoint({ ...base, endpoints: registry.endpoints.filter((e) => e.name === hint) });
    if (hinted.kind === 'selected') return hinted;
  }
  return selectEndpoint({ ...base, endpoints: registry.endpoints });
};

/** Overlapping tunnel id ranges would let two tunnels on one node share a VNI or port: refused. */
export const tunnelRangeConflict = (own: { domain: string; range: { from: number; to: number } }, other: Pick<RemoteNode, 'domain' | 'tunnelIds'>): string | undefined =>
  other.tunnelIds && rangesOverlap(own.range, other.tunnelIds)
    ? `tunnel ids of domain ${other.domain} (${formatRange(other.tunnelIds)}) and domain ${own.domain} (${formatRange(own.range)}) overlap; give each domain a disjoint range (nsm up --tunnel-ids FROM-TO)`
    : undefined;

/** A side programmed: the event, and establishment (and the end of a heal) when both sides are. */
const programmed = (s: ConnectionState, side: Side, node: string, at: string): ConnectionEvent[] => {
  const events: ConnectionEvent[] = [{ type: 'DataplaneProgrammed', generation: s.generation, node, side }];
  if (BOTH.every((x) => x === side || s.programmed.includes(x))) {
    events.push({ type: 'ConnectionEstablished', generation: s.generation });
    if (s.healing) {
      events.push({
        type: 'ConnectionHealed',
        generation: s.generation,
        cause: s.healing.cause,
        ...(s.healing.oldEndpoint ? { oldEndpoint: s.healing.oldEndpoint } : {}),
        newEndpoint: s.endpoint!.name,
        startedAt: s.healing.startedAt,
        durationMs: Math.max(0, Date.parse(at) - Date.parse(s.healing.startedAt)),
      });
    }
  }
  return events;
};

type ApplyRemote = Extract<ConnectionCommand, { type: 'ApplyRemoteState' }>;

/**
 * Client side: the endpoint's domain says where the connection stands. A newer plan (the first
 * one, a heal there, or any plan once the link is back after the connection went down) becomes
 * this side's next generation; the endpoint side's progress is recorded; a terminal state there
 * ends it here. Older generations are stale and change nothing.
 */
export const decideRemoteState = (command: ApplyRemote, s: ConnectionState): E.Either<DomainError, readonly ConnectionEvent[]> => {
  if (s.phase === 'none') return unknownConnection(command.connectionId);
  if (s.remoteDomain !== command.from) return reject('invalid', `connection "${command.connectionId}" has no endpoint in domain ${command.from}`);
  if (isTerminal(s.phase)) return E.right([]);
  const r = command.state;
  const from = command.from;
  switch (r.phase) {
    case 'failed':
      return E.right([{ type: 'ConnectionFailed', code: r.code ?? 'no-endpoint', reason: `domain ${from}: ${r.reason ?? 'failed'}`, by: from }]);
    case 'closed':
      return E.right([{ type: 'ConnectionClosed', reason: `closed in domain ${from}${r.reason ? `: ${r.reason}` : ''}`, by: from }]);
    case 'waiting': {
      if (s.phase === 'waiting' || (s.plan?.remote && r.generation < s.plan.remote.generation)) return E.right([]);
      const replaces = retire(s, BOTH);
      return E.right([
        healing(s, 'remote', `${from}:${r.generation}:waiting`, false, command.at),
        { type: 'ConnectionWaiting', reason: `domain ${from}: ${r.reason ?? 'no endpoint'}`, since: command.at, ...(replaces ? { replaces } : {}) },
      ]);
    }
    case 'planned': {
      const plan = r.plan;
      if (!plan) return reject('invalid', 'a planned remote state carries its plan');
      const current = s.plan?.remote?.generation;
      if (current !== undefined && r.generation < current) return E.right([]);
      const endpointNode = remoteName(plan.node.name, from);
      if (current === r.generation && s.phase !== 'down' && s.phase !== 'waiting') {
        // The same plan: only the endpoint side's progress can be new.
        if (r.endpointProgrammed && s.phase === 'path-planned' && !s.programmed.includes('endpoint')) return E.right(programmed(s, 'endpoint', endpointNode, command.at));
        return E.right([]);
      }
      const request = s.request!;
      const endpoint = remoteName(plan.endpoint, from);
      const first = s.plan === undefined && (s.phase === 'requested' || s.phase === 'endpoint-selected');
      const generation = s.generation + 1;
      const events: ConnectionEvent[] = [];
      if (!first) {
        // Back from down: the endpoint's domain was unreachable (peer-recovered) or this side's own node was lost.
        const cause = s.phase === 'down' ? (s.down?.domain ? 'peer-recovered' : 'node-recovered') : 'remote';
        events.push(healing(s, cause, `${from}:${r.generation}:${generation}`, s.endpoint?.name === endpoint, command.at));
      }
      events.push(
        { type: 'EndpointSelected', endpoint, endpointNode, considered: 1, excluded: [] },
        {
          type: 'PathPlanned',
          generation,
          mechanism: plan.mechanism,
          context: plan.context,
          path: {
            index: 0,
            pathSegments: command.pathSegments ?? [
              { name: `client@${request.clientNode}`, id: request.connectionId },
              { name: endpoint, id: request.connectionId },
            ],
          },
          clientInterface: request.clientInterface,
          endpointInterface: plan.endpointInterface,
          ...(plan.tunnel ? { tunnel: plan.tunnel } : {}),
          remote: { domain: from, generation: r.generation, peer: plan.node },
        },
      );
      if (r.endpointProgrammed) events.push({ type: 'DataplaneProgrammed', generation, node: endpointNode, side: 'endpoint' });
      return E.right(events);
    }
  }
};

const healing = (s: ConnectionState, cause: 'remote' | 'peer-recovered' | 'node-recovered', causeId: string, inPlace: boolean, at: string): ConnectionEvent => ({
  type: 'ConnectionHealing',
  cause,
  causeId,
  ...(s.endpoint ? { oldEndpoint: s.endpoint.name } : {}),
  inPlace,
  startedAt: s.healing?.startedAt ?? at,
});

type Redirect = Extract<ConnectionCommand, { type: 'RedirectConnection' }>;

/** Client side: a registry-only domain named the endpoint's home domain (or found none). */
export const decideRedirect = (command: Redirect, s: ConnectionState): E.Either<DomainError, readonly ConnectionEvent[]> => {
  if (s.phase === 'none') return unknownConnection(command.connectionId);
  if (s.remoteDomain !== command.from) return reject('invalid', `connection "${command.connectionId}" was not sent to domain ${command.from}`);
  if (s.phase !== 'requested') return E.right([]);
  if (!command.domain) return E.right([{ type: 'ConnectionFailed', code: 'no-endpoint', reason: `registry ${command.from}: ${command.reason ?? 'no endpoint'}`, by: command.from }]);
  if (command.domain !== command.self) {
    return E.right([{ type: 'ConnectionRedirected', domain: command.domain, via: command.from, ...(command.endpoint ? { endpoint: command.endpoint } : {}) }]);
  }
  // The registry's endpoint is in this very domain: an ordinary local selection from here on.
  const request = s.request!;
  const redirected: ConnectionEvent = { type: 'ConnectionRedirected', domain: command.domain, via: command.from, local: true, ...(command.endpoint ? { endpoint: command.endpoint } : {}) };
  if (!command.registry.service) {
    return E.right([redirected, { type: 'ConnectionFailed', code: 'no-endpoint', reason: `network service "${request.networkService}" is not registered` }]);
  }
  const selection = selectWithHint(request, command.registry, command.registry.service.matches, command.endpoint);
  if (selection.kind === 'none') return E.right([redirected, { type: 'ConnectionFailed', code: 'no-endpoint', reason: selection.reason }]);
  return E.right([
    redirected,
    { type: 'EndpointSelected', endpoint: selection.endpoint.name, endpointNode: selection.endpoint.node, considered: selection.considered, excluded: [] },
  ]);
};
