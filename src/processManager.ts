// The connection workflow across aggregates: after an endpoint is selected, allocate addresses
// and plan the path; after a plan, command the node agents; after close or failure, tear the
// dataplane down and release the addresses. Healing: when an endpoint expires or leaves, a
// node is lost or comes back, or a datapath breaks, the affected connections are healed.
// Every step is keyed by the causing event's id, so a redelivered event repeats nothing.
import * as E from 'fp-ts/lib/Either.js';
import { allocationOf, type AddressPoolState } from '../aggregates/addressPool.ts';
import { SIDES, isTerminal, type ConnectionEvent, type ConnectionState, type HealCause, type PathSegment, type RetiredPath } from '../aggregates/connection.ts';
import { localSides } from '../aggregates/crossDomain.ts';
import type { EndpointEvent, EndpointState } from '../aggregates/endpoint.ts';
import type { NodeEvent } from '../aggregates/node.ts';
import type { PeerEvent } from '../aggregates/peer.ts';
import { TUNNEL_STREAM_ID, tunnelOf, tunnelParameters, type TunnelIdRange, type TunnelPoolState } from '../aggregates/tunnelPool.ts';
import type { FederationSteps } from './federation/steps.ts';
import { errorText, type Logger } from '../infra/log.ts';
import type { Subjects } from '../infra/nats/subjects.ts';
import { sideSpecOf } from '../projections/nodeDesired.ts';
import type { EventEnvelope, StoredCommit } from './contracts/envelope.ts';
import { streamName } from './contracts/envelope.ts';
import { nodeCommandId, type NodeCommand } from './contracts/nodeCommands.ts';
import { execErrorMessage, execute, type CommandMeta, type ExecDeps, type ExecError, type ExecHooks } from './execute.ts';
import { registryContext, type LoadOf } from './handlers.ts';
import type { MeshView } from './meshView.ts';

export interface ProcessManagerDeps extends ExecDeps {
  readonly view: MeshView;
  readonly subjects: Subjects;
  readonly log: Logger;
  readonly now: () => Date;
  /** Publishes a node command durably (JetStream, msgID = command id). */
  readonly sendNodeCommand: (node: string, cmd: NodeCommand) => Promise<void>;
  /** Endpoint load for reselection, counting selections not yet folded into the view. */
  readonly loadOf?: LoadOf;
  readonly selectionHooks?: ExecHooks;
  /** A second datapath failure within this long of an in-place repair moves the connection. */
  readonly escalateWithinMs?: number;
  /** Connections healed at once when an endpoint or node fails. */
  readonly healConcurrency?: number;
  /** Signs the path of a plan (src/security/guard.ts); undefined or returning undefined: unsigned. */
  readonly planSegments?: (o: { state: ConnectionState; endpoint: { name: string; node: string }; src: string; dst: string; now: Date }) => readonly PathSegment[] | undefined;
  /** Federation (docs/federation.md): what crosses to other domains. Absent: this domain is not federated. */
  readonly federation?: FederationSteps;
  /** This domain's tunnel ids (federated domains take disjoint ranges). */
  readonly tunnelIds?: TunnelIdRange;
}

const TUNNEL_STREAM = streamName('tunnel', TUNNEL_STREAM_ID);
export const DEFAULT_ESCALATE_WITHIN_MS = 60_000;

/** An infrastructure failure: the event must be redelivered and the step retried. */
export class RetryLater extends Error {}

/** One step of a workflow: a domain refusal is an answer (returned), anything else is retried later (thrown). */
export const executeStep = async (deps: ExecDeps, stream: string, command: unknown, meta: CommandMeta, hooks?: ExecHooks) => {
  const r = await execute(deps, stream, command, meta, hooks);
  if (E.isLeft(r) && r.left.kind !== 'domain') throw new RetryLater(execErrorMessage(r.left));
  return r;
};

/** Runs `task` over `items` with at most `limit` in flight; the first failure is rethrown at the end. */
const eachLimited = async <T>(items: readonly T[], limit: number, task: (t: T) => Promise<void>): Promise<void> => {
  let next = 0;
  let failure: unknown;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++]!;
      try {
        await task(item);
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure !== undefined) throw failure;
};

export const createProcessManager = (deps: ProcessManagerDeps) => {
  const loadOf: LoadOf = deps.loadOf ?? ((ep) => deps.view.current.connections.activeByEndpoint[ep] ?? 0);
  const escalateWithinMs = deps.escalateWithinMs ?? DEFAULT_ESCALATE_WITHIN_MS;
  const healConcurrency = deps.healConcurrency ?? 64;
  const metaFor = (env: EventEnvelope, step: string): CommandMeta => ({
    commandId: `${env.id}-${step}`,
    correlationId: env.correlationId,
    causationId: env.id,
    actor: 'control-plane',
    domain: deps.subjects.domain,
    now: deps.now,
    // The step is done for whoever caused it: a requester's setups take turns with others' on a shared pool.
    lane: env.actor,
  });

  const run = (stream: string, command: unknown, meta: CommandMeta, hooks?: ExecHooks) => executeStep(deps, stream, command, meta, hooks);

  const connectionState = async (id: string, minRevision: number): Promise<ConnectionState> => {
    const loaded = await deps.repo.load(streamName('connection', id), { minRevision });
    if (E.isLeft(loaded)) throw new RetryLater(loaded.left.message);
    return loaded.right.state as ConnectionState;
  };

  const send = async (s: ConnectionState, sides: readonly (typeof SIDES)[number][], desired: 'present' | 'absent', env: EventEnvelope) => {
    const nodes = deps.view.current.nodes.nodes;
    // A side whose node is in another domain is that domain's to program. Both local sides at
    // once: each command is durable on its own, and their order does not matter.
    const local = localSides(s);
    await Promise.all(
      sides
        .filter((x) => local.includes(x))
        .map((side) => {
          const spec = sideSpecOf(s, side, nodes, desired);
          // A publish that fails (NATS away, JetStream not answering) is infrastructure: retried.
          return spec
            ? deps.sendNodeCommand(spec.node, { id: nodeCommandId(spec), spec, correlationId: env.correlationId, causationId: env.id }).catch((e: unknown) => {
                throw new RetryLater(`node command for ${spec.node}: ${errorText(e)}`);
              })
            : undefined;
        }),
    );
  };

  /** Tears down the sides a heal left behind, as they were planned. */
  const retire = (s: ConnectionState, r: RetiredPath, env: EventEnvelope) =>
    send({ ...s, endpoint: r.endpoint, plan: r.plan, generation: r.generation }, r.sides, 'absent', env);

  const releasePool = async (endpointName: string, id: string, env: EventEnvelope, step: string) => {
    const pool = await deps.repo.load(streamName('pool', endpointName));
    if (E.isLeft(pool)) throw new RetryLater(pool.left.message);
    if (!allocationOf(pool.right.state as AddressPoolState, id)) return;
    await run(streamName('pool', endpointName), { type: 'ReleaseAddresses', pool: endpointName, connectionId: id }, metaFor(env, step));
  };

  const release = async (s: ConnectionState, env: EventEnvelope) => {
    if (!s.request) return;
    const id = s.request.connectionId;
    if (s.endpoint) await releasePool(s.endpoint.name, id, env, 'release');
    const tunnels = await deps.repo.load(TUNNEL_STREAM);
    if (E.isLeft(tunnels)) throw new RetryLater(tunnels.left.message);
    if (tunnelOf(tunnels.right.state as TunnelPoolState, id) !== undefined) {
      await run(TUNNEL_STREAM, { type: 'ReleaseTunnel', connectionId: id }, metaFor(env, 'release-tunnel'));
    }
  };

  const fail = (id: string, env: EventEnvelope, code: string, reason: string) =>
    run(streamName('connection', id), { type: 'FailConnection', connectionId: id, code, reason }, metaFor(env, 'fail'));

  const planPath = async (id: string, s: ConnectionState, env: EventEnvelope) => {
    const model = deps.view.current;
    const ep = s.endpoint!;
    const registration = model.registry.endpoints[ep.name];
    if (!registration) {
      // Gone between selection and planning: a heal is under way, or the connection fails.
      if (s.healing) return heal(id, 'endpoint-unregistered', env, [ep.name]);
      await fail(id, env, 'no-endpoint', `endpoint "${ep.name}" was unregistered before the path was planned`);
      return;
    }
    // Configured exclusions plus what either node already routes: such an address would be shadowed.
    const remoteClient = s.request!.remoteClient;
    const excludedPrefixes = [
      ...new Set([
        ...registration.excludedPrefixes,
        ...(remoteClient ? (remoteClient.localPrefixes ?? []) : (model.nodes.nodes[s.request!.clientNode]?.localPrefixes ?? [])),
        ...(model.nodes.nodes[ep.node]?.localPrefixes ?? []),
      ]),
    ];
    const alloc = await run(
      streamName('pool', ep.name),
      { type: 'AllocateAddresses', pool: ep.name, prefix: registration.prefix, excludedPrefixes, connectionId: id },
      metaFor(env, 'allocate'),
    );
    if (E.isLeft(alloc)) {
      await fail(id, env, 'address', execErrorMessage(alloc.left as ExecError));
      return;
    }
    const allocation = allocationOf(alloc.right.state as AddressPoolState, id)!;
    let tunnel;
    if (s.request!.clientNode !== ep.node) {
      const t = await run(TUNNEL_STREAM, { type: 'AllocateTunnel', connectionId: id, ...(deps.tunnelIds ? { range: deps.tunnelIds } : {}) }, metaFor(env, 'allocate-tunnel'));
      if (E.isLeft(t)) {
        await fail(id, env, 'address', execErrorMessage(t.left as ExecError));
        return;
      }
      tunnel = tunnelParameters(tunnelOf(t.right.state as TunnelPoolState, id)!);
    }
    const facts = (node: string) => {
      const n = model.nodes.nodes[node];
      return n ? { mechanisms: n.mechanisms, mtu: n.mtu } : undefined;
    };
    // A client in another domain: what that domain told us of its node.
    const clientFacts = remoteClient ? { mechanisms: remoteClient.mechanisms, mtu: remoteClient.mtu } : facts(s.request!.clientNode);
    const endpointFacts = facts(ep.node);
    const pathSegments = deps.planSegments?.({ state: s, endpoint: ep, src: allocation.src, dst: allocation.dst, now: deps.now() });
    const planned = await run(
      streamName('connection', id),
      {
        type: 'PlanPath',
        connectionId: id,
        endpoint: ep.name,
        allocation: { src: allocation.src, dst: allocation.dst, prefix: registration.prefix, excludedPrefixes },
        ...(tunnel ? { tunnel } : {}),
        ...(registration.netns ? { endpointNetns: registration.netns } : {}),
        ...(clientFacts ? { clientNodeFacts: clientFacts } : {}),
        ...(endpointFacts ? { endpointNodeFacts: endpointFacts } : {}),
        ...(pathSegments ? { pathSegments } : {}),
      },
      metaFor(env, 'plan'),
    );
    // Closed or failed while we allocated: give the addresses back now.
    if (E.isRight(planned) && isTerminal((planned.right.state as ConnectionState).phase)) await release(planned.right.state as ConnectionState, env);
  };

  /** Asks the connection aggregate to heal; it decides in place, elsewhere, waiting, or nothing. */
  const heal = async (id: string, cause: HealCause, env: EventEnvelope, exclude: readonly string[]) => {
    const row = deps.view.current.connections.byId[id];
    const service = row?.state.request?.networkService;
    if (!service) return;
    const r = await run(
      streamName('connection', id),
      () => ({
        type: 'HealConnection',
        connectionId: id,
        cause,
        causeId: env.id,
        at: deps.now().toISOString(),
        exclude,
        escalateWithinMs,
        registry: registryContext(deps.view.current, service, loadOf),
      }),
      metaFor(env, `heal-${id}`),
      deps.selectionHooks,
    );
    // The selection is folded into the view before the hook's count is dropped.
    if (E.isRight(r)) {
      if (r.right.position !== undefined) await deps.view.waitFor(Number(r.right.position)).catch(() => undefined);
      r.right.settle?.();
    }
  };

  const openConnections = (pred: (s: ConnectionState) => boolean): string[] =>
    Object.values(deps.view.current.connections.byId)
      .filter((r) => !isTerminal(r.state.phase) && pred(r.state))
      .map((r) => r.id);

  const healAll = async (ids: readonly string[], cause: HealCause, env: EventEnvelope, exclude: readonly string[]) => {
    if (ids.length === 0) return;
    deps.log.info('healing connections', { cause, connections: ids.length, causeEvent: env.id, stream: env.stream });
    await eachLimited(ids, healConcurrency, (id) => heal(id, cause, env, exclude));
  };

  /** The federation's steps, or a failure of the connection when this domain is not federated. */
  const federation = async (id: string, env: EventEnvelope): Promise<FederationSteps | undefined> => {
    if (deps.federation) return deps.federation;
    await fail(id, env, 'no-endpoint', `domain ${deps.subjects.domain} is not federated: it cannot reach another domain (docs/federation.md)`);
    return undefined;
  };

  /**
   * Client side of a connection whose endpoint is in another domain (docs/federation.md): that
   * domain selects and plans, this side mirrors its plan. False when the ordinary step applies.
   */
  const clientSideStep = async (id: string, s: ConnectionState, env: EventEnvelope<ConnectionEvent>): Promise<boolean> => {
    const ev = env.data;
    if (s.remoteDomain) {
      switch (ev.type) {
        case 'ConnectionRequested':
        case 'ConnectionRedirected':
          if (s.phase === 'requested') await (await federation(id, env))?.request(s, env);
          return true;
        case 'EndpointSelected':
          return true;
        case 'DataplaneProgrammed':
          if (ev.side === 'client' && s.generation === ev.generation) await deps.federation?.report(s, 'programmed', env);
          return true;
        case 'DatapathDown':
          if (s.generation === ev.generation) await deps.federation?.report(s, 'broken', env, ev.error);
          return true;
        case 'DataplaneFailed':
          if (s.generation === ev.generation) await deps.federation?.report(s, 'failed', env, ev.error);
          return true;
        case 'ConnectionWaiting':
          if (ev.replaces) await retire(s, ev.replaces, env);
          return true;
        case 'ConnectionClosed':
        case 'ConnectionFailed':
          await send(s, SIDES, 'absent', env);
          if (ev.by !== s.remoteDomain) await deps.federation?.close(s, env);
          return true;
        default:
          return false;
      }
    }
    return false;
  };

  /**
   * Endpoint side of a connection asked for by another domain: planned here like a local one (the
   * usual steps run first); the client's domain then hears of each step.
   */
  const tellClientDomain = async (s: ConnectionState, env: EventEnvelope<ConnectionEvent>) => {
    const ev = env.data;
    switch (ev.type) {
      case 'ConnectionRedirected':
        return deps.federation?.redirect(s, ev, env);
      case 'PathPlanned':
        if (s.phase === 'path-planned' && s.generation === ev.generation) await deps.federation?.state(s, env);
        return;
      case 'DataplaneProgrammed':
        if (ev.side === 'endpoint' && s.generation === ev.generation) await deps.federation?.state(s, env);
        return;
      case 'ConnectionWaiting':
      case 'ConnectionDenied':
      case 'ConnectionLimited':
        return deps.federation?.state(s, env);
      case 'ConnectionClosed':
      case 'ConnectionFailed':
        if (ev.by !== s.request?.remoteClient?.domain) await deps.federation?.state(s, env);
        return;
      default:
        return;
    }
  };

  const handleConnection = async (commit: StoredCommit) => {
    const id = commit.stream.slice('connection.'.length);
    for (const env of commit.events as readonly EventEnvelope<ConnectionEvent>[]) {
      const s = await connectionState(id, commit.revision);
      const ev = env.data;
      if (await clientSideStep(id, s, env)) continue;
      switch (ev.type) {
        case 'EndpointSelected':
          if (ev.replaces) {
            await retire(s, ev.replaces, env);
            if (ev.replaces.endpoint.name !== ev.endpoint) await releasePool(ev.replaces.endpoint.name, id, env, 'release-old');
          }
          if (s.phase === 'endpoint-selected' && s.endpoint?.name === ev.endpoint) await planPath(id, s, env);
          break;
        case 'PathPlanned':
          if (s.phase === 'path-planned' && s.generation === ev.generation) await send(s, SIDES, 'present', env);
          break;
        case 'ConnectionWaiting':
          if (ev.replaces) {
            await retire(s, ev.replaces, env);
            await releasePool(ev.replaces.endpoint.name, id, env, 'release-old');
          }
          break;
        case 'DatapathDown':
          if (s.phase === 'established' && s.generation === ev.generation) await heal(id, 'datapath', env, []);
          break;
        case 'DataplaneFailed':
          if (s.healing && s.generation === ev.generation) await heal(id, 'dataplane', env, []);
          break;
        case 'ConnectionClosed':
        case 'ConnectionFailed':
          await send(s, SIDES, 'absent', env);
          await release(s, env);
          break;
        default:
          break;
      }
      if (s.request?.remoteClient) await tellClientDomain(s, env);
    }
  };

  const handleEndpoint = async (commit: StoredCommit) => {
    for (const env of commit.events as readonly EventEnvelope<EndpointEvent>[]) {
      const ev = env.data;
      switch (ev.type) {
        case 'EndpointExpired':
        case 'EndpointUnregistered': {
          const name = ev.name;
          const cause: HealCause = ev.type === 'EndpointExpired' ? 'endpoint-expired' : 'endpoint-unregistered';
          await healAll(openConnections((s) => s.endpoint?.name === name), cause, env, [name]);
          break;
        }
        case 'EndpointRegistered':
        case 'EndpointUpdated': {
          const services = ev.spec.networkServiceNames;
          const waiting = openConnections((s) => s.phase === 'waiting' && services.includes(s.request?.networkService ?? ''));
          await healAll(waiting, 'endpoint-available', env, []);
          break;
        }
        default:
          break;
      }
      await forwardToFloating(commit, env);
    }
  };

  /** Endpoints registered as svc@<floating>: their registration follows them into that registry. */
  const forwardToFloating = async (commit: StoredCommit, env: EventEnvelope<EndpointEvent>) => {
    if (!deps.federation) return;
    const ev = env.data;
    if (ev.type === 'EndpointRegistered' || ev.type === 'EndpointUpdated') {
      for (const domain of ev.spec.floating ?? []) await deps.federation.forwardEndpoint(domain, { op: 'register', spec: ev.spec }, env);
    } else if (ev.type === 'EndpointUnregistered' || ev.type === 'EndpointExpired') {
      const loaded = await deps.repo.load(commit.stream, { minRevision: commit.revision });
      if (E.isLeft(loaded)) throw new RetryLater(loaded.left.message);
      const spec = (loaded.right.state as EndpointState).spec;
      for (const domain of spec?.floating ?? []) await deps.federation.forwardEndpoint(domain, { op: 'unregister', name: ev.name }, env);
    }
  };

  /** Another domain lost (its connections here go down) or back (they are brought up to date from there). */
  const handlePeer = async (commit: StoredCommit) => {
    for (const env of commit.events as readonly EventEnvelope<PeerEvent>[]) {
      const ev = env.data;
      if (ev.type === 'PeerSeen' || ev.type === 'PeerUpdated') {
        await deps.federation?.peerSeen(ev.facts);
      } else if (ev.type === 'PeerLost') {
        const domain = ev.domain;
        const at = deps.now().toISOString();
        const affected = openConnections((s) => s.remoteDomain === domain && s.phase !== 'down');
        deps.log.warn('peer domain lost', { domain, lastSeen: ev.lastSeen, connections: affected.length });
        await markDown(affected, { node: '', domain, at }, env);
      } else if (ev.type === 'PeerRecovered' && deps.federation) {
        const fed = deps.federation;
        const down = openConnections((s) => s.remoteDomain === ev.domain && s.phase === 'down' && s.down?.domain === ev.domain);
        deps.log.info('peer domain back', { domain: ev.domain, connections: down.length });
        await eachLimited(down, healConcurrency, (id) => fed.resync(id, env));
      }
    }
  };

  /** The connections' client node, or their endpoint's domain, is unreachable: they are down until it is back. */
  const markDown = (ids: readonly string[], where: { node: string; domain?: string; at: string }, env: EventEnvelope) =>
    eachLimited(ids, healConcurrency, async (id) => {
      await run(streamName('connection', id), { type: 'MarkConnectionDown', connectionId: id, ...where }, metaFor(env, `down-${id}`));
    });

  const handleNode = async (commit: StoredCommit) => {
    for (const env of commit.events as readonly EventEnvelope<NodeEvent>[]) {
      const ev = env.data;
      if (ev.type === 'NodeLost') {
        const node = ev.name;
        const at = deps.now().toISOString();
        const down = openConnections((s) => s.request?.clientNode === node && s.phase !== 'down');
        deps.log.warn('node lost', { node, lastSeen: ev.lastSeen, clientConnections: down.length });
        await markDown(down, { node, at }, env);
        const endpoints = Object.values(deps.view.current.registry.endpoints).filter((ep) => ep.node === node);
        for (const ep of endpoints) {
          await run(streamName('endpoint', ep.name), { type: 'ExpireEndpoint', name: ep.name, cause: 'node-lost', at }, metaFor(env, `expire-${ep.name}`));
        }
      } else if (ev.type === 'NodeRecovered') {
        const node = ev.name;
        const down = (s: ConnectionState) => s.phase === 'down' && s.request?.clientNode === node && !s.down?.domain;
        await healAll(openConnections((s) => down(s) && !s.remoteDomain), 'node-recovered', env, []);
        // Across domains the endpoint's domain holds the plan: ask it, and re-plan this side from its answer.
        const fed = deps.federation;
        if (fed) await eachLimited(openConnections((s) => down(s) && s.remoteDomain !== undefined), healConcurrency, (id) => fed.resync(id, env));
      }
    }
  };

  /** Reacts to one stored commit. Throws RetryLater on infrastructure failure. */
  const handle = async (commit: StoredCommit): Promise<void> => {
    await deps.view.waitFor(Number(commit.position)).catch((e: unknown) => {
      throw new RetryLater(`the read model has not reached position ${commit.position}: ${errorText(e)}`);
    });
    if (commit.stream.startsWith('connection.')) return handleConnection(commit);
    if (commit.stream.startsWith('endpoint.')) return handleEndpoint(commit);
    if (commit.stream.startsWith('node.')) return handleNode(commit);
    if (commit.stream.startsWith('peer.')) return handlePeer(commit);
  };

  return { handle };
};

/** Streams whose commits the process manager reacts to. */
export const drivesProcessManager = (stream: string): boolean =>
  stream.startsWith('connection.') || stream.startsWith('endpoint.') || stream.startsWith('node.') || stream.startsWith('peer.');

/**
 * A local request refused outright (over a limit, or denied by the policy) leaves nothing to do:
 * no addresses, no sides, no other domain to tell. A flood of them must not queue up workflow steps.
 */
export const refusedOutright = (commit: StoredCommit): boolean => {
  const [first, second, ...rest] = commit.events as readonly EventEnvelope<ConnectionEvent>[];
  if (rest.length > 0 || first?.data.type !== 'ConnectionRequested' || (second?.data.type !== 'ConnectionLimited' && second?.data.type !== 'ConnectionDenied')) return false;
  return first.data.remoteClient === undefined && first.data.domain === undefined;
};
