// From a decoded wire command to the aggregate stream and the aggregate command, with the
// context the decision needs (registry, loads, time) read from the control plane's view.
import type { AddressPoolCommand } from '../aggregates/addressPool.ts';
import { interfaceNameFor, type ConnectionCommand, type RegistryContext } from '../aggregates/connection.ts';
import type { EndpointCommand } from '../aggregates/endpoint.ts';
import type { NetworkServiceCommand } from '../aggregates/networkService.ts';
import type { NodeCommand } from '../aggregates/node.ts';
import { POLICY_STREAM_ID, type Policy, type PolicyCommand } from '../aggregates/policy.ts';
import type { MeshModel } from '../projections/mesh.ts';
import { endpointsOfService, labelsFor } from '../projections/registry.ts';
import type { Candidate } from '../aggregates/selection.ts';
import type { CommandKind, CommandMessage } from './contracts/commands.ts';
import { streamName } from './contracts/envelope.ts';

export type AnyAggregateCommand = NetworkServiceCommand | EndpointCommand | NodeCommand | ConnectionCommand | AddressPoolCommand | PolicyCommand;

export interface Routed {
  readonly stream: string;
  readonly command: AnyAggregateCommand;
}

export const DEFAULT_ENDPOINT_PREFIX = '169.254.0.0/16';
export const DEFAULT_EXPIRATION_SECONDS = 60;
export const DEFAULT_MTU = 1500;

/** Endpoint load as the control plane sees it: folded connections plus selections not yet folded. */
export type LoadOf = (endpoint: string) => number;

/** What the control plane knows beyond the read model: the authorization policy in force. */
export interface RouteContext {
  readonly policy?: Policy;
}

export const POLICY_STREAM = streamName('policy', POLICY_STREAM_ID);

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
      return {
        stream: streamName('endpoint', b.name),
        command: {
          type: 'RegisterEndpoint',
          spec: {
            name: b.name,
            networkServiceNames: b.networkServiceNames,
            networkServiceLabels: b.networkServiceLabels ?? {},
            node: b.node,
            prefix: b.prefix ?? DEFAULT_ENDPOINT_PREFIX,
            excludedPrefixes: b.excludedPrefixes ?? [],
            ...(b.netns ? { netns: b.netns } : {}),
          },
          // No expiration asked for: a static registration, kept until unregistered.
          ...(b.expirationSeconds ? { expirationTime: new Date(now.getTime() + b.expirationSeconds * 1000).toISOString() } : {}),
          registeredServices: b.networkServiceNames.filter((s) => model.registry.services[s] !== undefined),
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
      const service = model.registry.services[b.networkService];
      return {
        stream: streamName('connection', b.connectionId),
        command: {
          type: 'RequestConnection',
          request: {
            connectionId: b.connectionId,
            networkService: b.networkService,
            payload: service?.payload ?? 'IP',
            labels: b.labels ?? {},
            clientNode: b.clientNode,
            ...(b.clientNetns ? { clientNetns: b.clientNetns } : {}),
            clientInterface: b.clientInterface ?? interfaceNameFor('nsm', b.connectionId),
            mechanismPreferences: b.mechanismPreferences ?? [],
            requestId: msg.id,
            ...(b.expirationSeconds ? { expirationTime: new Date(now.getTime() + b.expirationSeconds * 1000).toISOString() } : {}),
          },
          registry: registryContext(model, b.networkService, loadOf),
          ...(ctx.policy ? { policy: { policy: ctx.policy, client: msg.actor } } : {}),
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
      return {
        stream: streamName('connection', b.connectionId),
        command: {
          type: 'ReportDataplane',
          connectionId: b.connectionId,
          node: b.node,
          side: b.side,
          generation: b.generation,
          result: b.result,
          ...(b.error ? { error: b.error } : {}),
          at: now.toISOString(),
        },
      };
    }
    case 'policy.set':
      return { stream: POLICY_STREAM, command: { type: 'SetPolicy', policy: (msg as CommandMessage<'policy.set'>).body.policy } };
    case 'policy.add': {
      const b = (msg as CommandMessage<'policy.add'>).body;
      return { stream: POLICY_STREAM, command: { type: 'AddPolicyRule', rule: b.rule, ...(b.position !== undefined ? { position: b.position } : {}) } };
    }
    case 'policy.remove':
      return { stream: POLICY_STREAM, command: { type: 'RemovePolicyRule', name: (msg as CommandMessage<'policy.remove'>).body.name } };
    case 'connection.refresh': {
      const b = (msg as CommandMessage<'connection.refresh'>).body;
      return {
        stream: streamName('connection', b.connectionId),
        command: { type: 'RefreshConnection', connectionId: b.connectionId, expirationTime: new Date(now.getTime() + b.expirationSeconds * 1000).toISOString() },
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
  const endpoints = endpointsOfService(reg, service).map((ep) => ({ name: ep.name, node: ep.node, labels: labelsFor(ep, service) }));
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
      return streamName('endpoint', b.name as string);
    case 'node.join':
    case 'node.leave':
      return streamName('node', b.name as string);
    case 'policy.set':
    case 'policy.add':
    case 'policy.remove':
      return POLICY_STREAM;
    default:
      return streamName('connection', b.connectionId as string);
  }
};
