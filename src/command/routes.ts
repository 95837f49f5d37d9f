// From a decoded wire command to the aggregate stream and the aggregate command, with the
// context the decision needs (registry, loads, time) read from the control plane's view.
import type { RegistryContext } from '../../aggregates/connection/index.ts';
import { interfaceNameFor } from '../contracts/interfaceNames.ts';
import { remoteName, tunnelRangeConflict } from '../../aggregates/connection/index.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import type { Family } from '../../aggregates/ip.ts';
import { domainOfPeerActor } from '../contracts/subjects.ts';
import { LIMITS_STREAM_ID, type Limits, type Usage } from '../../aggregates/limits.ts';
import type { AnyAggregateCommand } from '../../aggregates/index.ts';
import { POLICY_STREAM_ID, type Policy } from '../../aggregates/policy.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import { endpointsOfService, labelsFor } from '../../projections/registry.ts';
import type { Candidate } from '../../aggregates/selection.ts';
import { endpointPrefixes, splitServiceRef, type CommandBody, type CommandKind, type CommandMessage, type CommandMessageOf } from '../contracts/commands.ts';
import { streamName } from '../contracts/envelope.ts';
import { remoteNodeFrom, remoteStateFrom } from './remoteState.ts';

export interface Routed {
  readonly stream: string;
  readonly command: AnyAggregateCommand;
}

export const DEFAULT_ENDPOINT_PREFIX = '169.254.0.0/16';

/** The families of those of the services that carry only some (the endpoint's prefixes must fit them). */
const serviceFamiliesOf = (model: MeshModel, services: readonly string[]): Record<string, readonly Family[]> =>
  Object.fromEntries(services.flatMap((s) => {
    const families = model.registry.services[s]?.ipFamilies;
    return families ? [[s, families]] : [];
  }));
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

/** What a route builds the aggregate command from: the message, the read model, the time, loads, and the context. */
interface RouteInputs<K extends CommandKind> {
  readonly msg: CommandMessageOf<K>;
  readonly model: MeshModel;
  readonly now: Date;
  readonly loadOf: LoadOf;
  readonly ctx: RouteContext;
}

/** One wire command: the aggregate stream it acts on (known before anything is read) and the aggregate command it becomes. */
interface Route<K extends CommandKind> {
  readonly stream: (body: CommandBody<K>) => string;
  readonly command: (o: RouteInputs<K>) => AnyAggregateCommand;
}

type ReportBody = Pick<CommandBody<'connection.report'>, 'connectionId' | 'side' | 'generation' | 'result' | 'error'> & { readonly refused?: boolean };

const reportDataplane = (b: ReportBody, node: string, now: Date): AnyAggregateCommand => ({
  type: 'ReportDataplane',
  connectionId: b.connectionId,
  node,
  side: b.side,
  generation: b.generation,
  result: b.result,
  ...(b.error ? { error: b.error } : {}),
  ...(b.refused ? { refused: true } : {}),
  at: now.toISOString(),
});

const quotaOf = (ctx: RouteContext, actor: string) => {
  const q = ctx.quota?.(actor);
  return q ? { quota: q } : {};
};

const serviceStream = (b: { name: string }) => streamName('service', b.name);
const endpointStream = (b: { name: string }) => streamName('endpoint', b.name);
const nodeStream = (b: { name: string }) => streamName('node', b.name);
const connectionStream = (b: { connectionId: string }) => streamName('connection', b.connectionId);

/** Every command kind, its stream and its aggregate command: the one table both come from. */
const ROUTES: { readonly [K in CommandKind]: Route<K> } = {
  'service.register': {
    stream: serviceStream,
    command: ({ msg: { body: b } }) => ({
      type: 'RegisterNetworkService',
      spec: {
        name: b.name,
        payload: b.payload ?? 'IP',
        matches: b.matches ?? [],
        ...(b.ipFamilies ? { ipFamilies: b.ipFamilies } : {}),
        ...(b.dns ? { dns: { servers: b.dns.servers, searchDomains: b.dns.searchDomains ?? [] } } : {}),
      },
    }),
  },
  'service.unregister': { stream: serviceStream, command: ({ msg: { body: b } }) => ({ type: 'UnregisterNetworkService', name: b.name }) },
  'endpoint.register': {
    stream: endpointStream,
    command: ({ msg: { body: b }, model, now, ctx }) => {
      // "svc@floating": the endpoint provides svc here and is also registered in that floating registry.
      const refs = b.networkServiceNames.map(splitServiceRef);
      const networkServiceNames = [...new Set(refs.map((r) => r.service))];
      const floating = [...new Set(refs.flatMap((r) => (r.domain && r.domain !== ctx.federation?.self ? [r.domain] : [])))];
      return {
        type: 'RegisterEndpoint',
        spec: {
          name: b.name,
          networkServiceNames,
          networkServiceLabels: b.networkServiceLabels ?? {},
          node: b.node,
          prefixes: endpointPrefixes(b) ?? [DEFAULT_ENDPOINT_PREFIX],
          excludedPrefixes: b.excludedPrefixes ?? [],
          ...(b.netns ? { netns: b.netns } : {}),
          ...(b.dns ? { dns: { servers: b.dns.servers, searchDomains: b.dns.searchDomains ?? [] } } : {}),
          ...(floating.length > 0 ? { floating } : {}),
        },
        // No expiration asked for: a static registration, kept until unregistered.
        ...(b.expirationSeconds ? { expirationTime: expiresAt(now, b.expirationSeconds) } : {}),
        registeredServices: networkServiceNames.filter((s) => model.registry.services[s] !== undefined),
        serviceFamilies: serviceFamiliesOf(model, networkServiceNames),
      };
    },
  },
  'endpoint.unregister': { stream: endpointStream, command: ({ msg: { body: b } }) => ({ type: 'UnregisterEndpoint', name: b.name }) },
  'node.join': {
    stream: nodeStream,
    command: ({ msg: { body: b } }) => ({
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
    }),
  },
  'node.leave': { stream: nodeStream, command: ({ msg: { body: b } }) => ({ type: 'LeaveNode', name: b.name }) },
  'connection.request': {
    stream: connectionStream,
    command: ({ msg, model, now, loadOf, ctx }) => {
      const b = msg.body;
      const ref = splitServiceRef(b.networkService);
      // "svc@<another domain>": the endpoint is chosen there; this domain plans the client side.
      const remoteDomain = ref.domain !== undefined && ref.domain !== ctx.federation?.self ? ref.domain : undefined;
      const service = model.registry.services[ref.service];
      return {
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
      };
    },
  },
  'connection.refresh': {
    stream: connectionStream,
    command: ({ msg: { body: b }, now }) => ({ type: 'RefreshConnection', connectionId: b.connectionId, expirationTime: expiresAt(now, b.expirationSeconds) }),
  },
  'connection.close': {
    stream: connectionStream,
    command: ({ msg }) => ({ type: 'CloseConnection', connectionId: msg.body.connectionId, reason: msg.body.reason ?? `closed by ${msg.actor}` }),
  },
  'connection.report': { stream: connectionStream, command: ({ msg: { body: b }, now }) => reportDataplane(b, b.node, now) },
  'policy.set': { stream: () => POLICY_STREAM, command: ({ msg: { body: b } }) => ({ type: 'SetPolicy', policy: b.policy }) },
  'policy.add': {
    stream: () => POLICY_STREAM,
    command: ({ msg: { body: b } }) => ({ type: 'AddPolicyRule', rule: b.rule, ...(b.position !== undefined ? { position: b.position } : {}) }),
  },
  'policy.remove': { stream: () => POLICY_STREAM, command: ({ msg: { body: b } }) => ({ type: 'RemovePolicyRule', name: b.name }) },
  'limits.set': {
    stream: () => LIMITS_STREAM,
    command: ({ msg: { body: b } }) => ({ type: 'SetLimits', scope: b.role ? { role: b.role } : { identity: b.identity! }, ...(b.limits ? { limits: b.limits } : {}) }),
  },
  'workflow.retry': {
    stream: (b) => streamName('workflow', b.position),
    command: ({ msg: { body: b }, now }) => ({ type: 'RetryStep', position: b.position, at: now.toISOString() }),
  },
  // Federation: commands from peer domains' control planes (docs/federation.md).
  'interdomain.request': {
    stream: connectionStream,
    command: ({ msg, model, loadOf, ctx }) => {
      const b = msg.body;
      const from = peerOf(msg);
      const client = remoteNodeFrom(b.client, from);
      const conflict = ctx.federation && !ctx.federation.registryOnly ? tunnelRangeConflict({ domain: ctx.federation.self, range: ctx.federation.tunnelIds }, client) : undefined;
      return {
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
      };
    },
  },
  'interdomain.state': {
    stream: connectionStream,
    command: ({ msg, now }) => ({ type: 'ApplyRemoteState', connectionId: msg.body.connectionId, from: peerOf(msg), at: now.toISOString(), state: remoteStateFrom(msg.body, peerOf(msg)) }),
  },
  // Checked by the aggregate against the connection's client node: one domain cannot report for another's.
  'interdomain.report': { stream: connectionStream, command: ({ msg, now }) => reportDataplane({ ...msg.body, side: 'client' }, remoteName(msg.body.node, peerOf(msg)), now) },
  'interdomain.close': {
    stream: connectionStream,
    command: ({ msg }) => {
      const from = peerOf(msg);
      return { type: 'CloseConnection', connectionId: msg.body.connectionId, reason: `closed in domain ${from}${msg.body.reason ? `: ${msg.body.reason}` : ''}`, by: from };
    },
  },
  'interdomain.redirect': {
    stream: connectionStream,
    command: ({ msg, model, now, loadOf, ctx }) => {
      const b = msg.body;
      const service = model.connections.byId[b.connectionId]?.state.request?.networkService;
      return {
        type: 'RedirectConnection',
        connectionId: b.connectionId,
        from: peerOf(msg),
        ...(b.domain ? { domain: b.domain } : {}),
        ...(b.endpoint ? { endpoint: b.endpoint } : {}),
        ...(b.reason ? { reason: b.reason } : {}),
        at: now.toISOString(),
        self: ctx.federation?.self ?? '',
        registry: service ? registryContext(model, service, loadOf) : { endpoints: [] },
      };
    },
  },
  'interdomain.endpoint': {
    stream: endpointStream,
    command: ({ msg, model }) => {
      const b = msg.body;
      const from = peerOf(msg);
      if (b.op === 'unregister') return { type: 'UnregisterEndpoint', name: b.name, domain: from };
      const services = b.networkServiceNames ?? [];
      return {
        type: 'RegisterEndpoint',
        spec: {
          name: b.name,
          networkServiceNames: services,
          networkServiceLabels: b.networkServiceLabels ?? {},
          // Its node is in its home domain: a name no local node has.
          node: remoteName(b.node ?? 'unknown', from),
          prefixes: endpointPrefixes(b) ?? [DEFAULT_ENDPOINT_PREFIX],
          excludedPrefixes: b.excludedPrefixes ?? [],
          domain: from,
        },
        registeredServices: services.filter((s) => model.registry.services[s] !== undefined),
        serviceFamilies: serviceFamiliesOf(model, services),
      };
    },
  },
};

/** The stream a command acts on, without building the command (which may read the registry). */
export const streamOf = <K extends CommandKind>(msg: CommandMessage<K>): string => {
  const r: Route<K> = ROUTES[msg.kind];
  return r.stream(msg.body);
};

/** The aggregate stream and command for a wire command, from the control plane's view now. */
export const route = <K extends CommandKind>(msg: CommandMessage<K>, model: MeshModel, now: Date, loadOf: LoadOf = (ep) => model.connections.activeByEndpoint[ep] ?? 0, ctx: RouteContext = {}): Routed => {
  const r: Route<K> = ROUTES[msg.kind];
  return { stream: r.stream(msg.body), command: r.command({ msg, model, now, loadOf, ctx }) };
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

