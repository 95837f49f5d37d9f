// The connection aggregate's decisions: request and selection, plan, dataplane reports,
// refresh, expiry, failure and close; heals (./heal.ts) and both sides of a connection across
// domains (./crossDomain.ts) are decided in their own modules.
import * as E from 'fp-ts/lib/Either.js';
import type { AllocatedPair } from '../addressPool.ts';
import { DNS_AT_ENDPOINT, reject, type DnsContext, type DomainError, type IpContext, type OfferedDns, type Payload } from '../domain.ts';
import { quotaProblem } from '../limits.ts';
import { negotiateMechanism, TUNNEL_OVERHEAD, TUNNEL_OVERHEAD_IPV6 } from '../mechanism.ts';
import { familyOf } from '../ip.ts';
import { evaluatePolicy } from '../policy.ts';
import { decideRedirect, decideRemoteRequest, decideRemoteState } from './crossDomain.ts';
import { decideHeal, select } from './heal.ts';
import { isTerminal, nodeOfSide, SIDES, unknownConnection, type ConnectionCommand, type ConnectionEvent, type ConnectionState } from './types.ts';

/**
 * One pair per family. IP payload: each side gets a host address (/32, /128) and a route to the
 * other's (routed point to point). ETHERNET payload: both addresses carry the pool's prefix
 * length, so the two sides share a subnet on one L2 segment and find each other by ARP or
 * neighbour discovery.
 */
const ipContextFor = (payload: Payload, pairs: readonly AllocatedPair[], excludedPrefixes: readonly string[]): IpContext => {
  if (payload === 'ETHERNET') {
    const withLen = (cidr: string, prefix: string) => `${cidr.split('/')[0]}/${prefix.split('/')[1]}`;
    return { srcIpAddrs: pairs.map((p) => withLen(p.src, p.prefix)), dstIpAddrs: pairs.map((p) => withLen(p.dst, p.prefix)), srcRoutes: [], dstRoutes: [], excludedPrefixes };
  }
  return {
    srcIpAddrs: pairs.map((p) => p.src),
    dstIpAddrs: pairs.map((p) => p.dst),
    srcRoutes: pairs.map((p) => ({ prefix: p.dst })),
    dstRoutes: pairs.map((p) => ({ prefix: p.src })),
    excludedPrefixes,
  };
};

/**
 * The client's DNS for this connection: a config per offer (endpoint's, then service's), with
 * "endpoint" standing for the endpoint's own address of each family the connection carries (the
 * one server the connection surely routes to).
 */
const dnsContextFor = (offers: readonly OfferedDns[] | undefined, pairs: readonly AllocatedPair[]): DnsContext => {
  const own = pairs.map((p) => p.dst.split('/')[0]!);
  return {
    configs: (offers ?? []).map((dns) => ({
      dnsServerIps: [...new Set(dns.servers.flatMap((s) => (s === DNS_AT_ENDPOINT ? own : [s])))],
      searchDomains: [...dns.searchDomains],
    })),
  };
};

export const decide = (command: ConnectionCommand, state: ConnectionState): E.Either<DomainError, readonly ConnectionEvent[]> => {
    switch (command.type) {
      case 'RequestConnection': {
        const { request, registry } = command;
        if (request.remoteClient) return decideRemoteRequest(command, state);
        if (state.phase !== 'none') {
          if (state.request?.requestId === request.requestId) return E.right([]);
          return reject('conflict', `connection id "${request.connectionId}" is already in use`);
        }
        if (request.domain) return decideRemoteRequest(command, state);
        if (!registry.service) {
          return reject('not-found', `network service "${request.networkService}" is not registered`);
        }
        const requested: ConnectionEvent = { type: 'ConnectionRequested', ...request, payload: registry.service.payload };
        if (command.policy) {
          const decision = evaluatePolicy(command.policy.policy, { client: command.policy.client, labels: request.labels, service: request.networkService });
          if (!decision.allowed) return E.right([requested, { type: 'ConnectionDenied', rule: decision.rule, reason: decision.reason }]);
        }
        if (command.quota) {
          const hit = quotaProblem(command.quota.identity, command.quota.limits, command.quota.usage);
          if (hit) return E.right([requested, { type: 'ConnectionLimited', ...hit }]);
        }
        const selection = select(request, registry, state.excluded);
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
        if (mechanism.right.remote && !command.tunnel) {
          return reject('invalid', `connection "${command.connectionId}" crosses nodes and needs a tunnel id`);
        }
        const remote = mechanism.right.remote;
        const underlays = [command.clientNodeFacts, command.endpointNodeFacts].map((f) => (f.underlayAddress ? familyOf(f.underlayAddress) : undefined));
        if (remote && underlays[0] && underlays[1] && underlays[0] !== underlays[1]) {
          return E.right([
            {
              type: 'ConnectionFailed',
              code: 'no-mechanism',
              reason: `node ${request.clientNode} is reached over ${underlays[0]} (${command.clientNodeFacts.underlayAddress}) and node ${endpointNode} over ${underlays[1]} (${command.endpointNodeFacts.underlayAddress}): a ${remote} tunnel needs one family on both`,
            },
          ]);
        }
        const overhead = remote ? (underlays.includes('IPv6') ? TUNNEL_OVERHEAD_IPV6 : TUNNEL_OVERHEAD)[remote] : 0;
        const { excludedPrefixes } = command.allocation;
        return E.right([
          {
            type: 'PathPlanned',
            generation: state.generation + 1,
            mechanism: mechanism.right,
            context: {
              ipContext: ipContextFor(request.payload, command.allocation.pairs, excludedPrefixes),
              dnsContext: dnsContextFor(command.dns, command.allocation.pairs),
              ethernetContext: {},
              mtu: Math.min(command.clientNodeFacts.mtu, command.endpointNodeFacts.mtu) - overhead,
            },
            path: {
              index: 0,
              pathSegments: command.pathSegments ?? [
                { name: `client@${request.clientNode}`, id: request.connectionId },
                { name: command.endpoint, id: request.connectionId },
              ],
            },
            clientInterface: request.clientInterface,
            endpointInterface: command.endpointInterface,
            ...(command.endpointNetns ? { endpointNetns: command.endpointNetns } : {}),
            ...(mechanism.right.remote && command.tunnel ? { tunnel: command.tunnel } : {}),
          },
        ]);
      }
      case 'ReportDataplane': {
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (command.generation !== state.generation) return E.right([]);
        const expectedNode = nodeOfSide(state, command.side);
        if (expectedNode !== command.node) {
          // A report about a path the connection has since left (a heal moved it): stale, not an attack.
          if (state.plan === undefined) return E.right([]);
          return reject('invalid', `node "${command.node}" reported the ${command.side} side, which belongs to node "${expectedNode}"`);
        }
        const { generation, node, side } = command;
        switch (command.result) {
          case 'programmed': {
            if (state.phase !== 'path-planned' || state.programmed.includes(side)) return E.right([]);
            const events: ConnectionEvent[] = [{ type: 'DataplaneProgrammed', generation, node, side, ...(command.token ? { token: command.token } : {}) }];
            if (SIDES.every((s) => s === side || state.programmed.includes(s))) {
              events.push({ type: 'ConnectionEstablished', generation });
              if (state.healing) {
                events.push({
                  type: 'ConnectionHealed',
                  generation,
                  cause: state.healing.cause,
                  ...(state.healing.oldEndpoint ? { oldEndpoint: state.healing.oldEndpoint } : {}),
                  newEndpoint: state.endpoint!.name,
                  startedAt: state.healing.startedAt,
                  durationMs: Math.max(0, Date.parse(command.at) - Date.parse(state.healing.startedAt)),
                });
              }
            }
            return E.right(events);
          }
          case 'failed': {
            if (state.phase !== 'path-planned' && state.phase !== 'established') return E.right([]);
            const error = command.error ?? 'unknown error';
            const failed: ConnectionEvent = { type: 'DataplaneFailed', generation, node, side, error };
            // While healing, or when programming the endpoint's side failed (its namespace gone
            // with a killed endpoint whose registration has not lapsed yet, say), the process
            // manager moves the connection to another endpoint instead. The client's own side, or
            // a side the agent refused (path tokens: no other endpoint would change them), fails it.
            if (state.healing || (side === 'endpoint' && !command.refused)) return E.right([failed]);
            return E.right([failed, { type: 'ConnectionFailed', code: 'dataplane', reason: `dataplane on node ${node} (${side} side): ${error}` }]);
          }
          case 'broken':
            if (state.phase !== 'established') return E.right([]);
            return E.right([{ type: 'DatapathDown', generation, node, side, error: command.error ?? 'liveness probe failed' }]);
          case 'removed':
            if (!isTerminal(state.phase) || state.removed.includes(side)) return E.right([]);
            return E.right([{ type: 'DataplaneRemoved', generation, node, side }]);
        }
      }
      // falls through: unreachable, every result returns
      case 'HealConnection':
        return decideHeal(command, state);
      case 'ApplyRemoteState':
        return decideRemoteState(command, state);
      case 'RedirectConnection':
        return decideRedirect(command, state);
      case 'MarkConnectionDown':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase) || state.phase === 'down') return E.right([]);
        // Client side across domains: the endpoint's domain is unreachable.
        if (command.domain) {
          if (state.remoteDomain !== command.domain) return E.right([]);
          return E.right([{ type: 'ConnectionDown', node: state.endpoint?.node ?? `@${command.domain}`, since: command.at, domain: command.domain }]);
        }
        if (state.request?.clientNode !== command.node) return E.right([]);
        return E.right([{ type: 'ConnectionDown', node: command.node, since: command.at }]);
      case 'RefreshConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase)) return reject('wrong-state', `connection "${command.connectionId}" is ${state.phase}; request a new one`);
        {
          // Tokens renewed for a plan that has since been replaced are dropped: the new plan has its own.
          const path = command.path && state.plan && command.path.generation === state.generation ? command.path : undefined;
          if (state.expirationTime === command.expirationTime && !path) return E.right([]);
          return E.right([{ type: 'ConnectionRefreshed', expirationTime: command.expirationTime, ...(path ? { path } : {}) }]);
        }
      case 'ExpireConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase) || !state.expirationTime || Date.parse(state.expirationTime) > Date.parse(command.at)) return E.right([]);
        return E.right([
          { type: 'ConnectionExpired', expirationTime: state.expirationTime },
          { type: 'ConnectionClosed', reason: `expired: the client did not refresh it before ${state.expirationTime}` },
        ]);
      case 'FailConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (isTerminal(state.phase)) return E.right([]);
        return E.right([{ type: 'ConnectionFailed', code: command.code, reason: command.reason }]);
      case 'CloseConnection':
        if (state.phase === 'none') return unknownConnection(command.connectionId);
        if (state.phase === 'closed') return E.right([]);
        return E.right([{ type: 'ConnectionClosed', reason: command.reason, ...(command.by ? { by: command.by } : {}) }]);
    }
  };
