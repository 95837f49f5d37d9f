// The connection workflow, as pure reactions: after an endpoint is selected, allocate addresses
// (and a tunnel id across nodes) and plan the path; after a plan, command the node agents; after
// a close or a failure, tear the sides down and give the addresses back; after a heal, retire
// what the old path left. Across domains, one side mirrors what the other decides (steps of
// the federation). Every step is named after its causing event, so a redelivered event repeats
// nothing.
import { allocationOf, type AddressPoolState, type Allocation } from '../../aggregates/addressPool.ts';
import { familyOf } from '../../aggregates/ip.ts';
import { SIDES, isTerminal, type ConnectionEvent, type FailureCode, type ConnectionState, type HealCause, type RetiredPath, type Side } from '../../aggregates/connection/index.ts';
import { localSides } from '../../aggregates/connection/index.ts';
import { TUNNEL_STREAM_ID, tunnelOf, tunnelParameters, type TunnelPoolState } from '../../aggregates/tunnelPool.ts';
import { sideSpecOf } from '../../projections/nodeDesired.ts';
import { streamName, type EventEnvelope } from '../contracts/envelope.ts';
import { interfaceNameFor } from '../contracts/interfaceNames.ts';
import { nodeCommandId } from '../contracts/nodeCommands.ts';
import { registryContext } from '../command/routes.ts';
import { execute, federate, type Step, type WorkflowContext } from './steps.ts';

const TUNNEL_STREAM = streamName('tunnel', TUNNEL_STREAM_ID);
const connectionStream = (id: string) => streamName('connection', id);

/** Node commands for the connection's local sides, as desired now (both at once: their order does not matter). */
export const sendSides = (s: ConnectionState, sides: readonly Side[], desired: 'present' | 'absent', env: EventEnvelope, ctx: WorkflowContext): Step[] => {
  // A side whose node is in another domain is that domain's to program.
  const local = localSides(s);
  const commands = sides.flatMap((side): Step[] => {
    if (!local.includes(side)) return [];
    const spec = sideSpecOf(s, side, ctx.model.nodes.nodes, desired);
    return spec ? [{ kind: 'node-command', node: spec.node, command: { id: nodeCommandId(spec), spec, correlationId: env.correlationId, causationId: env.id } }] : [];
  });
  return commands.length > 1 ? [{ kind: 'together', limit: commands.length, groups: commands.map((c) => [c]) }] : commands;
};

/** Tears down the sides a heal left behind, as they were planned. */
const retire = (s: ConnectionState, r: RetiredPath, env: EventEnvelope, ctx: WorkflowContext): Step[] =>
  sendSides({ ...s, endpoint: r.endpoint, plan: r.plan, generation: r.generation }, r.sides, 'absent', env, ctx);

const releasePool = (endpointName: string, id: string, step: string): Step => ({
  kind: 'load',
  stream: streamName('pool', endpointName),
  then: (pool) => (allocationOf(pool as AddressPoolState, id) ? [execute(streamName('pool', endpointName), step, { type: 'ReleaseAddresses', pool: endpointName, connectionId: id })] : []),
});

/** The addresses and the tunnel id of a connection that has ended. */
export const release = (s: ConnectionState): Step[] => {
  if (!s.request) return [];
  const id = s.request.connectionId;
  return [
    ...(s.endpoint ? [releasePool(s.endpoint.name, id, 'release')] : []),
    { kind: 'load', stream: TUNNEL_STREAM, then: (tunnels) => (tunnelOf(tunnels as TunnelPoolState, id) !== undefined ? [execute(TUNNEL_STREAM, 'release-tunnel', { type: 'ReleaseTunnel', connectionId: id })] : []) },
  ];
};

const fail = (id: string, code: FailureCode, reason: string): Step => execute(connectionStream(id), 'fail', { type: 'FailConnection', connectionId: id, code, reason });

/** Asks the connection aggregate to heal; it decides in place, elsewhere, waiting, or nothing. */
export const heal = (id: string, cause: HealCause, env: EventEnvelope, exclude: readonly string[], ctx: WorkflowContext): Step[] => {
  const service = ctx.model.connections.byId[id]?.state.request?.networkService;
  if (!service) return [];
  return [
    execute(
      connectionStream(id),
      `heal-${id}`,
      {
        // Built when decided: endpoint loads change with every decision.
        build: ({ model, loadOf }) => ({
          type: 'HealConnection',
          connectionId: id,
          cause,
          causeId: env.id,
          at: ctx.now.toISOString(),
          exclude,
          escalateWithinMs: ctx.escalateWithinMs,
          registry: registryContext(model, service, loadOf),
        }),
      },
      { selection: true },
    ),
  ];
};

/** Allocate, then plan; a connection closed or failed meanwhile gives its addresses back at once. */
export const planPath = (id: string, s: ConnectionState, env: EventEnvelope, ctx: WorkflowContext): Step[] => {
  const model = ctx.model;
  const ep = s.endpoint!;
  const registration = model.registry.endpoints[ep.name];
  if (!registration) {
    // Gone between selection and planning (an endpoint restarting, say): choose again without it,
    // or wait for one, as a heal does. Failing here made a request fail during a rolling restart
    // although other endpoints served the service (found by the soak: 6 in 36,000).
    return heal(id, 'endpoint-unregistered', env, [ep.name], ctx);
  }
  const request = s.request!;
  // Configured exclusions plus what either node already routes: such an address would be shadowed.
  const remoteClient = request.remoteClient;
  const excludedPrefixes = [
    ...new Set([
      ...registration.excludedPrefixes,
      ...(remoteClient ? (remoteClient.localPrefixes ?? []) : (model.nodes.nodes[request.clientNode]?.localPrefixes ?? [])),
      ...(model.nodes.nodes[ep.node]?.localPrefixes ?? []),
    ]),
  ];
  const facts = (node: string) => {
    const n = model.nodes.nodes[node];
    return n ? { mechanisms: n.mechanisms, mtu: n.mtu, ...(n.underlayAddress ? { underlayAddress: n.underlayAddress } : {}) } : undefined;
  };
  // A client in another domain: what that domain told us of its node.
  const clientFacts = remoteClient ? { mechanisms: remoteClient.mechanisms, mtu: remoteClient.mtu, ...(remoteClient.address ? { underlayAddress: remoteClient.address } : {}) } : facts(request.clientNode);
  const endpointFacts = facts(ep.node);
  // The families the service carries, of those the endpoint offers (the registry checked they meet).
  const families = model.registry.services[request.networkService]?.ipFamilies;
  const prefixes = registration.prefixes.filter((p) => {
    const f = familyOf(p);
    return f !== undefined && (!families || families.includes(f));
  });
  if (prefixes.length === 0) {
    return [fail(id, 'address', `endpoint "${ep.name}" hands out ${registration.prefixes.join(' and ')}, and network service "${request.networkService}" carries ${families?.join(' and ')} only`)];
  }
  // The endpoint's DNS first: it knows its own names; the service's after.
  const dns = [registration.dns, model.registry.services[request.networkService]?.dns].filter((d) => d !== undefined);
  const plan = (allocation: Allocation, tunnel?: ReturnType<typeof tunnelParameters>): Step => {
    const pairs = allocation.pairs.map(({ prefix, src, dst }) => ({ prefix, src, dst }));
    const pathSegments = ctx.planSegments?.({ state: s, endpoint: ep, src: pairs.map((p) => p.src), dst: pairs.map((p) => p.dst), now: ctx.now });
    return execute(
      connectionStream(id),
      'plan',
      {
        type: 'PlanPath',
        connectionId: id,
        endpoint: ep.name,
        allocation: { pairs, excludedPrefixes },
        ...(tunnel ? { tunnel } : {}),
        ...(registration.netns ? { endpointNetns: registration.netns } : {}),
        ...(clientFacts ? { clientNodeFacts: clientFacts } : {}),
        ...(endpointFacts ? { endpointNodeFacts: endpointFacts } : {}),
        ...(pathSegments ? { pathSegments } : {}),
        endpointInterface: interfaceNameFor('nse', id),
        ...(dns.length > 0 ? { dns } : {}),
      },
      // Closed or failed while we allocated: give the addresses back now.
      { then: (after) => (isTerminal((after as ConnectionState).phase) ? release(after as ConnectionState) : []) },
    );
  };
  return [
    execute(streamName('pool', ep.name), 'allocate', { type: 'AllocateAddresses', pool: ep.name, prefixes, excludedPrefixes, connectionId: id }, {
      onRejected: (e) => [fail(id, 'address', e.message)],
      then: (pool) => {
        const allocation = allocationOf(pool as AddressPoolState, id)!;
        if (request.clientNode === ep.node) return [plan(allocation)];
        return [
          execute(TUNNEL_STREAM, 'allocate-tunnel', { type: 'AllocateTunnel', connectionId: id, ...(ctx.tunnelIds ? { range: ctx.tunnelIds } : {}) }, {
            onRejected: (e) => [fail(id, 'address', e.message)],
            then: (tunnels) => [plan(allocation, tunnelParameters(tunnelOf(tunnels as TunnelPoolState, id)!))],
          }),
        ];
      },
    }),
  ];
};

/** Steps across domains, or the connection's failure when this domain is not federated. */
const federated = (id: string, ctx: WorkflowContext, steps: () => Step[]): Step[] =>
  ctx.federated ? steps() : [fail(id, 'no-endpoint', `domain ${ctx.domain} is not federated: it cannot reach another domain (docs/federation.md)`)];

/**
 * Client side of a connection whose endpoint is in another domain (docs/federation.md): that
 * domain selects and plans, this side mirrors its plan. undefined when the ordinary step applies.
 */
const clientSide = (id: string, s: ConnectionState, env: EventEnvelope<ConnectionEvent>, ctx: WorkflowContext): Step[] | undefined => {
  if (!s.remoteDomain) return undefined;
  const ev = env.data;
  // Reports to the endpoint's domain are its business only while this domain can send them.
  const tell = (steps: () => Step[]) => (ctx.federated ? steps() : []);
  switch (ev.type) {
    case 'ConnectionRequested':
    case 'ConnectionRedirected':
      return s.phase === 'requested' ? federated(id, ctx, () => [federate({ op: 'request', state: s })]) : [];
    case 'EndpointSelected':
      return [];
    case 'DataplaneProgrammed':
      return ev.side === 'client' && s.generation === ev.generation ? tell(() => [federate({ op: 'report', state: s, result: 'programmed' })]) : [];
    case 'DatapathDown':
      return s.generation === ev.generation ? tell(() => [federate({ op: 'report', state: s, result: 'broken', error: ev.error })]) : [];
    case 'DataplaneFailed':
      return s.generation === ev.generation ? tell(() => [federate({ op: 'report', state: s, result: 'failed', error: ev.error })]) : [];
    case 'ConnectionWaiting':
      return ev.replaces ? retire(s, ev.replaces, env, ctx) : [];
    case 'ConnectionClosed':
    case 'ConnectionFailed':
      return [...sendSides(s, SIDES, 'absent', env, ctx), ...(ev.by !== s.remoteDomain ? tell(() => [federate({ op: 'close', state: s })]) : [])];
    default:
      return undefined;
  }
};

/**
 * Endpoint side of a connection asked for by another domain: planned here like a local one (the
 * usual steps come first); the client's domain then hears of each step.
 */
const tellClientDomain = (s: ConnectionState, env: EventEnvelope<ConnectionEvent>, ctx: WorkflowContext): Step[] => {
  if (!s.request?.remoteClient || !ctx.federated) return [];
  const ev = env.data;
  switch (ev.type) {
    case 'ConnectionRedirected':
      return [federate({ op: 'redirect', state: s, event: ev })];
    case 'PathPlanned':
      return s.phase === 'path-planned' && s.generation === ev.generation ? [federate({ op: 'state', state: s })] : [];
    case 'DataplaneProgrammed':
      return ev.side === 'endpoint' && s.generation === ev.generation ? [federate({ op: 'state', state: s })] : [];
    case 'ConnectionWaiting':
    case 'ConnectionDenied':
    case 'ConnectionLimited':
      return [federate({ op: 'state', state: s })];
    case 'ConnectionClosed':
    case 'ConnectionFailed':
      return ev.by !== s.request.remoteClient.domain ? [federate({ op: 'state', state: s })] : [];
    default:
      return [];
  }
};

/** What one event of a connection leads to, given the connection's state once its commit is applied. */
export const reactToConnection = (env: EventEnvelope<ConnectionEvent>, s: ConnectionState, ctx: WorkflowContext): Step[] => {
  const id = env.stream.slice('connection.'.length);
  const mirrored = clientSide(id, s, env, ctx);
  if (mirrored) return mirrored;
  const ev = env.data;
  const own = ((): Step[] => {
    switch (ev.type) {
      case 'EndpointSelected':
        return [
          ...(ev.replaces ? retire(s, ev.replaces, env, ctx) : []),
          ...(ev.replaces && ev.replaces.endpoint.name !== ev.endpoint ? [releasePool(ev.replaces.endpoint.name, id, 'release-old')] : []),
          ...(s.phase === 'endpoint-selected' && s.endpoint?.name === ev.endpoint ? planPath(id, s, env, ctx) : []),
        ];
      case 'PathPlanned':
        return s.phase === 'path-planned' && s.generation === ev.generation ? sendSides(s, SIDES, 'present', env, ctx) : [];
      case 'ConnectionWaiting':
        return ev.replaces ? [...retire(s, ev.replaces, env, ctx), releasePool(ev.replaces.endpoint.name, id, 'release-old')] : [];
      case 'DatapathDown':
        return s.phase === 'established' && s.generation === ev.generation ? heal(id, 'datapath', env, [], ctx) : [];
      case 'DataplaneFailed':
        // The aggregate failed the connection unless it was healing or programming the endpoint's side failed.
        return !isTerminal(s.phase) && (s.healing || ev.side === 'endpoint') && s.generation === ev.generation ? heal(id, 'dataplane', env, [], ctx) : [];
      case 'ConnectionClosed':
      case 'ConnectionFailed':
        return [...sendSides(s, SIDES, 'absent', env, ctx), ...release(s)];
      default:
        return [];
    }
  })();
  return [...own, ...tellClientDomain(s, env, ctx)];
};
