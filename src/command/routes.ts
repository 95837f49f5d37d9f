// From a decoded wire command to the aggregate stream and the aggregate command, with the
// context the decision needs (registry, loads, time) read from the control plane's view.
import type { AddressPoolCommand } from '../../aggregates/addressPool.ts';
import { type ConnectionCommand, type RegistryContext } from '../../aggregates/connection/index.ts';
import { interfaceNameFor } from '../contracts/interfaceNames.ts';
import { remoteName, tunnelRangeConflict } from '../../aggregates/connection/index.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import { domainOfPeerActor } from '../contracts/subjects.ts';
import type { EndpointCommand } from '../../aggregates/endpoint.ts';
import type { NetworkServiceCommand } from '../../aggregates/networkService.ts';
import type { NodeCommand } from '../../aggregates/node.ts';
import type { WorkflowCommand } from '../../aggregates/workflow.ts';
import { LIMITS_STREAM_ID, type Limits, type LimitsCommand, type Usage } from '../../aggregates/limits.ts';
import { POLICY_STREAM_ID, type Policy, type PolicyCommand } from '../../aggregates/policy.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import { endpointsOfService, labelsFor } from '../../projections/registry.ts';
import type { Candidate } from '../../aggregates/selection.ts';
import { splitServiceRef, type CommandKind, type CommandMessage } from '../contracts/commands.ts';
import { streamName } from '../contracts/envelope.ts';
import { remoteNodeFrom, remoteStateFrom } from './remoteState.ts';

export type AnyAggregateCommand = NetworkServiceCommand | EndpointCommand | NodeCommand | ConnectionCommand | AddressPoolCommand | PolicyCommand | WorkflowCommand | LimitsCommand;

export interface Routed {
  readonly stream: string;
  readonly command: AnyAggregateCommand;
}

export const DEFAULT_ENDPOINT_PREFIX = '169.254.0.0/16';
export const DEFAULT_MTU = 1500;

/** Endpoint load as the control plane sees it: folded connections plus selections not yet folded. */
export type LoadOf = (endpoint: string) => number;

/** What the control plane knows beyond the read model: the authorization policy in force. */
export interface RouteContext {
  readonly policy?: Policy;
  /** Federation: this domain's name, tunnel ids, and whether it is a registry only. */
  readonly federation?: FederationRoute;
  /** A requester's limits and what it holds now; undefined: no limit applies to it. */
  readonly quota?: (actor: string) => { readonly identity: string; readonly limits: Limits; readonly usage: Usage } | undefined;
}

export interface FederationRoute {
  readonly self: string;
  readonly tunnelIds: TunnelIdRange;
  readonly registryOnly: boolean;
}

/** The peer domain an interdomain command comes from (its actor is "peer:<domain>"). */
const peerOf = (msg: CommandMessage): string => domainOfPeerActor(msg.actor) ?? msg.actor;

const POLICY_STREAM = streamName('policy', POLICY_STREAM_ID);
const LIMITS_STREAM = streamName('limits', LIMITS_STREAM_ID);

const expiresAt = (now: Date, seconds: number) => new Date(now.getTime() + seconds * 1000).toISOString();

type ReportBody = CommandMessage<'connection.report'>['body'];

const reportDataplane = (b: ReportBody, node: string, now: Date): Routed => ({
  stream: streamName('connection', b.connectionId),
  command: {
    type: 'ReportDataplane',
    connectionId: b.connectionId,
    node,
    side: b.side,
    generation: b.generation,
    result: b.result,
    ...(b.error ? { error: b.error } : {}),
    at: now.toISOString(),
  },
});

const quotaOf = (ctx: RouteContext, actor: string) => {
  const q = ctx.quota?.(actor);
  return q ? { quota: q } : {};
};

export const route = (msg: CommandMessage, model: MeshModel, now: Date, loadOf: LoadOf = (ep) => model.connections.activeByEndpoint[ep] ?? 0, ctx: RouteContext = {}): Routed => {
  switch (msg.kind as CommandKind) {
    case 'service.register': {
      const b = (msg as CommandMessage<'service.register'>).body;
      return {
        stream: streamName('service', b.name),
        command: { type: 'RegisterNetworkService', spec: { name: b.name, payload: b.payload ?? 'IP', matches: b.matches ?? [] } },
      };
    }
    case 'service.unregister': {
      const b = (msg as CommandMessage<'service.unregister'>).body;
      return { stream: streamName('service', b.name), command: { type: 'UnregisterNetworkService', name: b.name } };
    }
    case 'endpoint.register': {
      const b = (msg as CommandMessage<'endpoint.register'>).body;
      // "svc@floating": the endpoint provides svc here and is also registered in that floating registry.
      const refs = b.networkServiceNames.map(splitServiceRef);
      const networkServiceNames = [...new Set(refs.map((r) => r.service))];
      const floating = [...new Set(refs.flatMap((r) => (r.domain && r.domain !== ctx.federation?.self ? [r.domain] : [])))];
      return {
        stream: streamName('endpoint', b.name),
        command: {
          type: 'RegisterEndpoint',
          spec: {
            name: b.name,
            networkServiceNames,
            networkServiceLabels: b.networkServiceLabels ?? {},
            node: b.node,
            prefix: b.prefix ?? DEFAULT_ENDPOINT_PREFIX,
            excludedPrefixes: b.excludedPrefixes ?? [],
            ...(b.netns ? { netns: b.netns } : {}),
            ...(floating.length > 0 ? { floating } : {}),
          },
          // No expiration asked for: a static registration, kept until unregistered.
          ...(b.expirationSeconds ? { expirationTime: expiresAt(now, b.expirationSeconds) } : {}),
          registeredServices: networkServiceNames.filter((s) => model.registry.services[s] !== undefined),
        },
      };
    }
    case 'endpoint.unregister': {
      const b = (msg as CommandMessage<'endpoint.unregister'>).body;
      return { stream: streamName('endpoint', b.name), command: { type: 'UnregisterEndpoint', name: b.name } };
    }
    case 'node.join': {
      const b = (msg as CommandMessage<'node.join'>).body;
      return {
        stream: streamName('node', b.name),
        command: {
          type: 'JoinNode',
          spec: {
            name: b.name,
            mechanisms: b.mechanisms,
            dataplane: b.dataplane,
            ...(b.underlayAddress ? { underlayAddress: b.underlayAddress } : {}),
            mtu: b.mtu ?? DEFAULT_MTU,
            publicKeys: b.publicKeys ?? {},
            ...(b.localPrefixes && b.localPrefixes.length > 0 ? { localPrefixes: b.localPrefixes } : {}),
            ...(b.externalAddress ? { externalAddress: b.externalAddress } : {}),
          },
        },
      };
    }
    case 'node.leave': {
      const b = (msg as CommandMessage<'node.leave'>).body;
      return { stream: streamName('node', b.name), command: { type: 'LeaveNode', name: b.name } };
    }
    case 'connection.request': {
      const b = (msg as CommandMessage<'connection.request'>).body;
      const ref = splitServiceRef(b.networkService);
      // "svc@<another domain>": the endpoint is chosen there; this domain plans the client side.
      const remoteDomain = ref.domain !== undefined && ref.domain !== ctx.federation?.self ? ref.domain : undefined;
      const service = model.registry.services[ref.service];
      return {
        stream: streamName('connection', b.connectionId),
        command: {
          type: 'RequestConnection',
          request: {
            connectionId: b.connectionId,
            networkService: ref.service,
            ...(remoteDomain ? { domain: remoteDomain } : {}),
            payload: service?.payload ?? 'IP',
            labels: b.labels ?? {},
            clientNode: b.clientNode,
            ...(b.clientNetns ? { clientNetns: b.clientNetns } : {}),
            clientInterface: b.clientInterface ?? interfaceNameFor('nsm', b.connectionId),
            mechanismPreferences: b.mechanismPreferences ?? [],
            requestId: msg.id,
            ...(b.expirationSeconds ? { expirationTime: expiresAt(now, b.expirationSeconds) } : {}),
          },
          registry: remoteDomain ? { endpoints: [] } : registryContext(model, ref.service, loadOf),
          ...(ctx.policy ? { policy: { policy: ctx.policy, client: msg.actor } } : {}),
          ...quotaOf(ctx, msg.actor),
        },
      };
    }
    case 'interdomain.request': {
      const b = (msg as CommandMessage<'interdomain.request'>).body;
      const from = peerOf(msg);
      const client = remoteNodeFrom(b.client, from);
      const conflict = ctx.federation && !ctx.federation.registryOnly ? tunnelRangeConflict({ domain: ctx.federation.self, range: ctx.federation.tunnelIds }, client) : undefined;
      return {
        stream: streamName('connection', b.connectionId),
        command: {
          type: 'RequestConnection',
          request: {
            connectionId: b.connectionId,
            networkService: b.networkService,
            payload: model.registry.services[b.networkService]?.payload ?? 'IP',
            labels: b.labels ?? {},
            // A name no local node has: nothing of the client side is planned or programmed here.
            clientNode: remoteName(b.client.name, from),
            clientInterface: b.clientInterface,
            mechanismPreferences: b.mechanismPreferences ?? [],
            requestId: msg.id,
            remoteClient: client,
            ...(b.endpointHint ? { endpointHint: b.endpointHint } : {}),
          },
          registry: registryContext(model, b.networkService, loadOf),
          ...(ctx.policy ? { policy: { policy: ctx.policy, client: msg.actor } } : {}),
          ...quotaOf(ctx, msg.actor),
          ...(ctx.federation?.registryOnly ? { registryOnly: ctx.federation.self } : {}),
          ...(conflict ? { refuse: { code: 'address' as const, reason: conflict } } : {}),
        },
      };
    }
    case 'interdomain.state': {
      const b = (msg as CommandMessage<'interdomain.state'>).body;
      const from = peerOf(msg);
      return {
        stream: streamName('connection', b.connectionId),
        command: {
          type: 'ApplyRemoteState',
          connectionId: b.connectionId,
          from,
          at: now.toISOString(),
          state: remoteStateFrom(b, from),
        },
      };
    }
    case 'interdomain.report': {
      const b = (msg as CommandMessage<'interdomain.report'>).body;
      // Checked by the aggregate against the connection's client node: one domain cannot report for another's.
      return reportDataplane({ ...b, side: 'client' }, remoteName(b.node, peerOf(msg)), now);
    }
    case 'interdomain.close': {
      const b = (msg as CommandMessage<'interdomain.close'>).body;
      const from = peerOf(msg);
      return {
        stream: streamName('connection', b.connectionId),
        command: { type: 'CloseConnection', connectionId: b.connectionId, reason: `closed in domain ${from}${b.reason ? `: ${b.reason}` : ''}`, by: from },
      };
    }
    case 'interdomain.redirect': {
      const b = (msg as CommandMessage<'interdomain.redirect'>).body;
      const service = model.connections.byId[b.connectionId]?.state.request?.networkService;
      return {
        stream: streamName('connection', b.connectionId),
        command: {
          type: 'RedirectConnection',
          connectionId: b.connectionId,
          from: peerOf(msg),
          ...(b.domain ? { domain: b.domain } : {}),
          ...(b.endpoint ? { endpoint: b.endpoint } : {}),
          ...(b.reason ? { reason: b.reason } : {}),
          at: now.toISOString(),
          self: ctx.federation?.self ?? '',
          registry: service ? registryContext(model, service, loadOf) : { endpoints: [] },
        },
      };
    }
    case 'interdomain.endpoint': {
      const b = (msg as CommandMessage<'interdomain.endpoint'>).body;
      const from = peerOf(msg);
      if (b.op === 'unregister') return { stream: streamName('endpoint', b.name), command: { type: 'UnregisterEndpoint', name: b.name, domain: from } };
      const services = b.networkServiceNames ?? [];
      return {
        stream: streamName('endpoint', b.name),
        command: {
          type: 'RegisterEndpoint',
          spec: {
            name: b.name,
            networkServiceNames: services,
            networkServiceLabels: b.networkServiceLabels ?? {},
            // Its node is in its home domain: a name no local node has.
            node: remoteName(b.node ?? 'unknown', from),
            prefix: b.prefix ?? DEFAULT_ENDPOINT_PREFIX,
            excludedPrefixes: b.excludedPrefixes ?? [],
            domain: from,
          },
          registeredServices: services.filter((s) => model.registry.services[s] !== undefined),
        },
      };
    }
    case 'connection.close': {
      const b = (msg as CommandMessage<'connection.close'>).body;
      return {
        stream: streamName('connection', b.connectionId),
        command: { type: 'CloseConnection', connectionId: b.connectionId, reason: b.reason ?? `closed by ${msg.actor}` },
      };
    }
    case 'connection.report': {
      const b = (msg as CommandMessage<'connection.report'>).body;
      return reportDataplane(b, b.node, now);
    }
    case 'policy.set':
      return { stream: POLICY_STREAM, command: { type: 'SetPolicy', policy: (msg as CommandMessage<'policy.set'>).body.policy } };
    case 'policy.add': {
      const b = (msg as CommandMessage<'policy.add'>).body;
      return { stream: POLICY_STREAM, command: { type: 'AddPolicyRule', rule: b.rule, ...(b.position !== undefined ? { position: b.position } : {}) } };
    }
    case 'policy.remove':
      return { stream: POLICY_STREAM, command: { type: 'RemovePolicyRule', name: (msg as CommandMessage<'policy.remove'>).body.name } };
    case 'limits.set': {
      const b = (msg as CommandMessage<'limits.set'>).body;
      return { stream: LIMITS_STREAM, command: { type: 'SetLimits', scope: b.role ? { role: b.role } : { identity: b.identity! }, ...(b.limits ? { limits: b.limits } : {}) } };
    }
    case 'workflow.retry': {
      const position = (msg as CommandMessage<'workflow.retry'>).body.position;
      return { stream: streamName('workflow', position), command: { type: 'RetryStep', position, at: now.toISOString() } };
    }
    case 'connection.refresh': {
      const b = (msg as CommandMessage<'connection.refresh'>).body;
      return {
        stream: streamName('connection', b.connectionId),
        command: { type: 'RefreshConnection', connectionId: b.connectionId, expirationTime: expiresAt(now, b.expirationSeconds) },
      };
    }
  }
};

/** Selection candidates per service, rebuilt only when the registry changes (its revision). */
const candidateCache = new WeakMap<object, Map<string, { revision: number; endpoints: Candidate[] }>>();

const candidatesOf = (model: MeshModel, service: string): Candidate[] => {
  const reg = model.registry;
  const byService = candidateCache.get(reg) ?? new Map<string, { revision: number; endpoints: Candidate[] }>();
  candidateCache.set(reg, byService);
  const hit = byService.get(service);
  if (hit && hit.revision === reg.revision) return hit.endpoints;
  const endpoints = endpointsOfService(reg, service).map((ep) => ({ name: ep.name, node: ep.node, labels: labelsFor(ep, service), ...(ep.domain ? { domain: ep.domain } : {}) }));
  byService.set(service, { revision: reg.revision, endpoints });
  return endpoints;
};

/**
 * What a (re)selection needs from the registry: the service's rules, its endpoints and their
 * load. The candidate list is shared between decisions (10,000 endpoints are not copied for every
 * request); loads are asked for only where the selection needs them.
 */
export const registryContext = (model: MeshModel, service: string, loadOf: LoadOf): RegistryContext => {
  const row = model.registry.services[service];
  return {
    ...(row ? { service: { payload: row.payload, matches: row.matches } } : {}),
    endpoints: candidatesOf(model, service),
    loadOf,
  };
};

/** The stream a command acts on, without building the command (which may read the registry). */
export const streamOf = (msg: CommandMessage): string => {
  const b = msg.body as Record<string, unknown>;
  switch (msg.kind as CommandKind) {
    case 'service.register':
    case 'service.unregister':
      return streamName('service', b.name as string);
    case 'endpoint.register':
    case 'endpoint.unregister':
    case 'interdomain.endpoint':
      return streamName('endpoint', b.name as string);
    case 'node.join':
    case 'node.leave':
      return streamName('node', b.name as string);
    case 'policy.set':
    case 'policy.add':
    case 'policy.remove':
      return POLICY_STREAM;
    case 'workflow.retry':
      return streamName('workflow', b.position as string);
    case 'limits.set':
      return LIMITS_STREAM;
    default:
      return streamName('connection', b.connectionId as string);
  }
};
