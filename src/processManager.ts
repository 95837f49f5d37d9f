// The connection workflow across aggregates: after an endpoint is selected, allocate addresses
// and plan the path; after a plan, command the node agents; after close or failure, tear the
// dataplane down and release the addresses. Healing: when an endpoint expires or leaves, a
// node is lost or comes back, or a datapath breaks, the affected connections are healed.
// Every step is keyed by the causing event's id, so a redelivered event repeats nothing.
import * as E from 'fp-ts/lib/Either.js';
import { allocationOf, type AddressPoolState } from '../aggregates/addressPool.ts';
import { SIDES, isTerminal, type ConnectionEvent, type ConnectionState, type HealCause, type PathSegment, type RetiredPath } from '../aggregates/connection.ts';
import type { EndpointEvent } from '../aggregates/endpoint.ts';
import type { NodeEvent } from '../aggregates/node.ts';
import { TUNNEL_STREAM_ID, tunnelOf, tunnelParameters, type TunnelPoolState } from '../aggregates/tunnelPool.ts';
import type { Logger } from '../infra/log.ts';
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
}

const TUNNEL_STREAM = streamName('tunnel', TUNNEL_STREAM_ID);
export const DEFAULT_ESCALATE_WITHIN_MS = 60_000;

/** An infrastructure failure: the event must be redelivered and the step retried. */
export class RetryLater extends Error {}

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
  const metaFor = (env: EventEnvelope, step: string): CommandMeta => ({
    commandId: `${env.id}-${step}`,
    correlationId: env.correlationId,
    causationId: env.id,
    actor: 'control-plane',
    domain: deps.subjects.domain,
    now: deps.now,
  });

  const run = async (stream: string, command: unknown, meta: CommandMeta, hooks?: ExecHooks) => {
    const r = await execute(deps, stream, command, meta, hooks);
    if (E.isLeft(r) && r.left.kind !== 'domain') throw new RetryLater(execErrorMessage(r.left));
    return r;
  };

  const connectionState = async (id: string, minRevision: number): Promise<ConnectionState> => {
    const loaded = await deps.repo.load(streamName('connection', id), { minRevision });
    if (E.isLeft(loaded)) throw new RetryLater(loaded.left.message);
    return loaded.right.state as ConnectionState;
  };

  const send = async (s: ConnectionState, sides: readonly (typeof SIDES)[number][], desired: 'present' | 'absent', env: EventEnvelope) => {
    const nodes = deps.view.current.nodes.nodes;
    // Both sides at once: each command is durable on its own, and their order does not matter.
    await Promise.all(
      sides.map((side) => {
        const spec = sideSpecOf(s, side, nodes, desired);
        return spec ? deps.sendNodeCommand(spec.node, { id: nodeCommandId(spec), spec, correlationId: env.correlationId, causationId: env.id }) : undefined;
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
    const excludedPrefixes = [
      ...new Set([
        ...registration.excludedPrefixes,
        ...(model.nodes.nodes[s.request!.clientNode]?.localPrefixes ?? []),
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
      const t = await run(TUNNEL_STREAM, { type: 'AllocateTunnel', connectionId: id }, metaFor(env, 'allocate-tunnel'));
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
    const clientFacts = facts(s.request!.clientNode);
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
    await eachLimited(ids, deps.healConcurrency ?? 64, (id) => heal(id, cause, env, exclude));
  };

  const handleConnection = async (commit: StoredCommit) => {
    const id = commit.stream.slice('connection.'.length);
    for (const env of commit.events as readonly EventEnvelope<ConnectionEvent>[]) {
      const s = await connectionState(id, commit.revision);
      const ev = env.data;
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
    }
  };

  const handleNode = async (commit: StoredCommit) => {
    for (const env of commit.events as readonly EventEnvelope<NodeEvent>[]) {
      const ev = env.data;
      if (ev.type === 'NodeLost') {
        const node = ev.name;
        const at = deps.now().toISOString();
        const down = openConnections((s) => s.request?.clientNode === node && s.phase !== 'down');
        deps.log.warn('node lost', { node, lastSeen: ev.lastSeen, clientConnections: down.length });
        await eachLimited(down, deps.healConcurrency ?? 64, async (id) => {
          await run(streamName('connection', id), { type: 'MarkConnectionDown', connectionId: id, node, at }, metaFor(env, `down-${id}`));
        });
        const endpoints = Object.values(deps.view.current.registry.endpoints).filter((ep) => ep.node === node);
        for (const ep of endpoints) {
          await run(streamName('endpoint', ep.name), { type: 'ExpireEndpoint', name: ep.name, cause: 'node-lost', at }, metaFor(env, `expire-${ep.name}`));
        }
      } else if (ev.type === 'NodeRecovered') {
        const node = ev.name;
        await healAll(openConnections((s) => s.phase === 'down' && s.request?.clientNode === node), 'node-recovered', env, []);
      }
    }
  };

  /** Reacts to one stored commit. Throws RetryLater on infrastructure failure. */
  const handle = async (commit: StoredCommit): Promise<void> => {
    await deps.view.waitFor(Number(commit.position));
    if (commit.stream.startsWith('connection.')) return handleConnection(commit);
    if (commit.stream.startsWith('endpoint.')) return handleEndpoint(commit);
    if (commit.stream.startsWith('node.')) return handleNode(commit);
  };

  return { handle };
};

/** Streams whose commits the process manager reacts to. */
export const drivesProcessManager = (stream: string): boolean =>
  stream.startsWith('connection.') || stream.startsWith('endpoint.') || stream.startsWith('node.');
