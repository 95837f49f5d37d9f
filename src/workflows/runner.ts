// The one part of the workflows that does I/O: for each stored commit it loads what a reaction
// needs (the connection's state at that commit), asks the pure reactions (./connection.ts,
// ./membership.ts) for steps, and carries them out: decisions and appends through execute,
// node commands through JetStream, interdomain commands through the federation. A domain
// refusal is an answer (the step's onRejected decides what follows); anything the store or the
// bus fails at is thrown as RetryLater, and the whole reaction is tried again (every step is
// named after its causing event, so what was done is not done twice).
import * as E from 'fp-ts/lib/Either.js';
import type { ConnectionEvent, ConnectionState, PathSegment } from '../../aggregates/connection/index.ts';
import type { EndpointEvent } from '../../aggregates/endpoint.ts';
import type { NodeEvent } from '../../aggregates/node.ts';
import type { PeerEvent } from '../../aggregates/peer.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import { errorText, type Logger } from '../ports/logger.ts';
import type { EventEnvelope, StoredCommit } from '../contracts/envelope.ts';
import type { NodeCommand } from '../contracts/nodeCommands.ts';
import { executeStep, RetryLater, type CommandMeta, type ExecDeps, type ExecHooks } from '../command/execute.ts';
import type { FederationSteps } from './steps.ts';
import type { LoadOf } from '../command/routes.ts';
import type { MeshView } from '../read/meshView.ts';
import { reactToConnection } from './connection.ts';
import { reactToEndpoint, reactToNode, reactToPeer } from './membership.ts';
import type { FederationCall, Step, WorkflowContext } from './steps.ts';

export interface WorkflowRunnerDeps extends ExecDeps {
  readonly view: MeshView;
  readonly domain: string;
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
  readonly planSegments?: (o: { state: ConnectionState; endpoint: { name: string; node: string }; src: readonly string[]; dst: readonly string[]; now: Date }) => readonly PathSegment[] | undefined;
  /** Federation (docs/federation.md): what crosses to other domains. Absent: this domain is not federated. */
  readonly federation?: FederationSteps;
  /** This domain's tunnel ids (federated domains take disjoint ranges). */
  readonly tunnelIds?: TunnelIdRange;
}

export const DEFAULT_ESCALATE_WITHIN_MS = 60_000;

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

export const createWorkflowRunner = (deps: WorkflowRunnerDeps) => {
  const loadOf: LoadOf = deps.loadOf ?? ((ep) => deps.view.current.connections.activeByEndpoint[ep] ?? 0);
  const context = (): WorkflowContext => ({
    domain: deps.domain,
    model: deps.view.current,
    now: deps.now(),
    escalateWithinMs: deps.escalateWithinMs ?? DEFAULT_ESCALATE_WITHIN_MS,
    healConcurrency: deps.healConcurrency ?? 64,
    federated: deps.federation !== undefined,
    ...(deps.tunnelIds ? { tunnelIds: deps.tunnelIds } : {}),
    ...(deps.planSegments ? { planSegments: deps.planSegments } : {}),
  });
  const metaFor = (env: EventEnvelope, step: string): CommandMeta => ({
    commandId: `${env.id}-${step}`,
    correlationId: env.correlationId,
    causationId: env.id,
    actor: 'control-plane',
    domain: deps.domain,
    now: deps.now,
    // The step is done for whoever caused it: a requester's setups take turns with others' on a shared pool.
    lane: env.actor,
  });
  const load = async (stream: string, minRevision?: number): Promise<unknown> => {
    const loaded = await deps.repo.load(stream, minRevision !== undefined ? { minRevision } : {});
    if (E.isLeft(loaded)) throw new RetryLater(loaded.left.message);
    return loaded.right.state;
  };

  const federate = (call: FederationCall, env: EventEnvelope): Promise<void> => {
    const f = deps.federation;
    if (!f) return Promise.resolve();
    switch (call.op) {
      case 'request':
        return f.request(call.state, env);
      case 'state':
        return f.state(call.state, env);
      case 'report':
        return f.report(call.state, call.result, env, call.error);
      case 'close':
        return f.close(call.state, env);
      case 'redirect':
        return f.redirect(call.state, call.event, env);
      case 'forward-endpoint':
        return f.forwardEndpoint(call.domain, call.what, env);
      case 'resync':
        return f.resync(call.connectionId, env);
      case 'peer-seen':
        return f.peerSeen(call.facts);
    }
  };

  const run = async (steps: readonly Step[], env: EventEnvelope): Promise<void> => {
    for (const step of steps) {
      switch (step.kind) {
        case 'execute': {
          const c = step.command;
          const command = 'build' in c ? () => c.build({ model: deps.view.current, loadOf }) : c;
          const r = await executeStep(deps, step.stream, command, metaFor(env, step.step), step.selection ? deps.selectionHooks : undefined);
          if (E.isLeft(r)) {
            if (step.onRejected && r.left.kind === 'domain') await run(step.onRejected(r.left.error), env);
            break;
          }
          // A selection counts as load until the view has folded it.
          if (step.selection) {
            if (r.right.position !== undefined) await deps.view.waitFor(Number(r.right.position)).catch(() => undefined);
            r.right.settle?.();
          }
          if (step.then) await run(step.then(r.right.state), env);
          break;
        }
        case 'node-command':
          // A publish that fails (NATS away, JetStream not answering) is infrastructure: retried.
          await deps.sendNodeCommand(step.node, step.command).catch((e: unknown) => {
            throw new RetryLater(`node command for ${step.node}: ${errorText(e)}`);
          });
          break;
        case 'load':
          await run(step.then(await load(step.stream)), env);
          break;
        case 'federate':
          await federate(step.call, env);
          break;
        case 'together':
          await eachLimited(step.groups, step.limit, (group) => run(group, env));
          break;
        case 'log':
          deps.log[step.level](step.msg, step.fields);
          break;
      }
    }
  };

  /** Reacts to one stored commit. Throws RetryLater on infrastructure failure. */
  const handle = async (commit: StoredCommit): Promise<void> => {
    await deps.view.waitFor(Number(commit.position)).catch((e: unknown) => {
      throw new RetryLater(`the read model has not reached position ${commit.position}: ${errorText(e)}`);
    });
    const kind = commit.stream.slice(0, commit.stream.indexOf('.'));
    for (const env of commit.events) {
      switch (kind) {
        case 'connection': {
          // The state as of this commit, so later events of the stream do not change the decision.
          const s = (await load(commit.stream, commit.revision)) as ConnectionState;
          await run(reactToConnection(env as EventEnvelope<ConnectionEvent>, s, context()), env);
          break;
        }
        case 'endpoint':
          await run(reactToEndpoint(env as EventEnvelope<EndpointEvent>, context()), env);
          break;
        case 'node':
          await run(reactToNode(env as EventEnvelope<NodeEvent>, context()), env);
          break;
        case 'peer':
          await run(reactToPeer(env as EventEnvelope<PeerEvent>, context()), env);
          break;
      }
    }
  };

  return { handle };
};

/** Streams whose commits the workflows react to. */
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

