// The connection workflow across aggregates: after an endpoint is selected, allocate addresses
// and plan the path; after a plan, command the node agents; after close or failure, tear the
// dataplane down and release the addresses. Every step is keyed by the causing event's id, so a
// redelivered event repeats nothing.
import * as E from 'fp-ts/lib/Either.js';
import type { AddressPoolState } from '../aggregates/addressPool.ts';
import { SIDES, isTerminal, type ConnectionEvent, type ConnectionState } from '../aggregates/connection.ts';
import type { Logger } from '../infra/log.ts';
import type { Subjects } from '../infra/nats/subjects.ts';
import { sideSpecOf } from '../projections/nodeDesired.ts';
import type { EventEnvelope, StoredCommit } from './contracts/envelope.ts';
import { streamName } from './contracts/envelope.ts';
import { nodeCommandId, type NodeCommand } from './contracts/nodeCommands.ts';
import { execErrorMessage, execute, type CommandMeta, type ExecDeps, type ExecError } from './execute.ts';
import type { MeshView } from './meshView.ts';

export interface ProcessManagerDeps extends ExecDeps {
  readonly view: MeshView;
  readonly subjects: Subjects;
  readonly log: Logger;
  readonly now: () => Date;
  /** Publishes a node command durably (JetStream, msgID = command id). */
  readonly sendNodeCommand: (node: string, cmd: NodeCommand) => Promise<void>;
}

/** An infrastructure failure: the event must be redelivered and the step retried. */
export class RetryLater extends Error {}

export const createProcessManager = (deps: ProcessManagerDeps) => {
  const metaFor = (env: EventEnvelope, step: string): CommandMeta => ({
    commandId: `${env.id}-${step}`,
    correlationId: env.correlationId,
    causationId: env.id,
    actor: 'control-plane',
    domain: deps.subjects.domain,
    now: deps.now,
  });

  const run = async (stream: string, command: unknown, meta: CommandMeta) => {
    const r = await execute(deps, stream, command, meta);
    if (E.isLeft(r) && r.left.kind !== 'domain') throw new RetryLater(execErrorMessage(r.left));
    return r;
  };

  const connectionState = async (id: string, minRevision: number): Promise<ConnectionState> => {
    const loaded = await deps.repo.load(streamName('connection', id), { minRevision });
    if (E.isLeft(loaded)) throw new RetryLater(loaded.left.message);
    return loaded.right.state as ConnectionState;
  };

  const sendSides = async (s: ConnectionState, desired: 'present' | 'absent', env: EventEnvelope) => {
    const nodes = deps.view.current.nodes.nodes;
    for (const side of SIDES) {
      const spec = sideSpecOf(s, side, nodes, desired);
      if (spec) await deps.sendNodeCommand(spec.node, { id: nodeCommandId(spec), spec, correlationId: env.correlationId, causationId: env.id });
    }
  };

  const release = async (s: ConnectionState, env: EventEnvelope) => {
    if (!s.endpoint || !s.request) return;
    const pool = await deps.repo.load(streamName('pool', s.endpoint.name));
    if (E.isLeft(pool)) throw new RetryLater(pool.left.message);
    if (!(pool.right.state as AddressPoolState).allocations[s.request.connectionId]) return;
    await run(streamName('pool', s.endpoint.name), { type: 'ReleaseAddresses', pool: s.endpoint.name, connectionId: s.request.connectionId }, metaFor(env, 'release'));
  };

  const fail = (id: string, env: EventEnvelope, code: string, reason: string) =>
    run(streamName('connection', id), { type: 'FailConnection', connectionId: id, code, reason }, metaFor(env, 'fail'));

  const planPath = async (id: string, s: ConnectionState, env: EventEnvelope) => {
    const model = deps.view.current;
    const ep = s.endpoint!;
    const registration = model.registry.endpoints[ep.name];
    if (!registration) {
      await fail(id, env, 'no-endpoint', `endpoint "${ep.name}" was unregistered before the path was planned`);
      return;
    }
    const alloc = await run(
      streamName('pool', ep.name),
      { type: 'AllocateAddresses', pool: ep.name, prefix: registration.prefix, excludedPrefixes: registration.excludedPrefixes, connectionId: id },
      metaFor(env, 'allocate'),
    );
    if (E.isLeft(alloc)) {
      await fail(id, env, 'address', execErrorMessage(alloc.left as ExecError));
      return;
    }
    const allocation = (alloc.right.state as AddressPoolState).allocations[id]!;
    const facts = (node: string) => {
      const n = model.nodes.nodes[node];
      return n ? { mechanisms: n.mechanisms, mtu: n.mtu } : undefined;
    };
    const clientFacts = facts(s.request!.clientNode);
    const endpointFacts = facts(ep.node);
    const planned = await run(
      streamName('connection', id),
      {
        type: 'PlanPath',
        connectionId: id,
        endpoint: ep.name,
        allocation: { src: allocation.src, dst: allocation.dst, excludedPrefixes: registration.excludedPrefixes },
        ...(clientFacts ? { clientNodeFacts: clientFacts } : {}),
        ...(endpointFacts ? { endpointNodeFacts: endpointFacts } : {}),
      },
      metaFor(env, 'plan'),
    );
    // Closed or failed while we allocated: give the addresses back now.
    if (E.isRight(planned) && isTerminal((planned.right.state as ConnectionState).phase)) await release(planned.right.state as ConnectionState, env);
  };

  /** Reacts to one stored connection commit. Throws RetryLater on infrastructure failure. */
  const handle = async (commit: StoredCommit): Promise<void> => {
    await deps.view.waitFor(Number(commit.position));
    const id = commit.stream.slice('connection.'.length);
    for (const env of commit.events as readonly EventEnvelope<ConnectionEvent>[]) {
      const s = await connectionState(id, commit.revision);
      switch (env.data.type) {
        case 'EndpointSelected':
          if (s.phase === 'endpoint-selected' && s.endpoint?.name === env.data.endpoint) await planPath(id, s, env);
          break;
        case 'PathPlanned':
          if (s.phase === 'path-planned' && s.generation === env.data.generation) await sendSides(s, 'present', env);
          break;
        case 'ConnectionClosed':
        case 'ConnectionFailed':
          await sendSides(s, 'absent', env);
          await release(s, env);
          break;
        default:
          break;
      }
    }
  };

  return { handle };
};
