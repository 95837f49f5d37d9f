// The process manager's steps that cross to another domain: each sends one durable interdomain
// command (./send.ts) whose id is derived from the event that caused it, so a step retried
// after a crash or a link cut is stored once on the other side.
import * as E from 'fp-ts/lib/Either.js';
import type { ConnectionState, PathSegment } from '../../aggregates/connection/index.ts';
import type { AnyAggregateCommand } from '../../aggregates/index.ts';
import type { RemoteEndpointPlan } from '../../aggregates/connection/index.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import type { Logger } from '../ports/logger.ts';
import { stableId } from '../contracts/ids.ts';
import type { CommandBody } from '../contracts/commands.ts';
import { streamName, type EventEnvelope } from '../contracts/envelope.ts';
import type { MeshView } from '../read/meshView.ts';
import { RetryLater } from '../command/execute.ts';
import { nodeFactsOf, remoteStateFrom, remoteStateOf, type StateBody } from '../command/remoteState.ts';
import type { InterdomainSender } from './federationSend.ts';
import type { FederationSteps } from '../workflows/steps.ts';


export interface FederationStepDeps {
  readonly self: string;
  readonly tunnelIds: TunnelIdRange;
  readonly view: MeshView;
  readonly log: Logger;
  readonly now: () => Date;
  readonly send: InterdomainSender;
  /** A query to another domain's control plane (request/reply across the leafnode link). */
  readonly ask: (domain: string, name: string, params: unknown) => Promise<E.Either<string, unknown>>;
  /** Decides and appends a command here; throws RetryLater on infrastructure trouble. */
  readonly apply: (stream: string, command: AnyAggregateCommand, commandId: string, env: EventEnvelope) => Promise<void>;
  readonly ensureRemoteSource: (domain: string) => Promise<void>;
  /** Signed segments for this side's plan from a remote one; absent or undefined: unsigned (insecure mesh). */
  readonly remotePlanSegments?: (o: { state: ConnectionState; from: string; plan: RemoteEndpointPlan; now: Date }) => readonly PathSegment[] | undefined;
}

const trace = (env: EventEnvelope, step: string) => ({ id: stableId(`${env.id}:${step}`), correlationId: env.correlationId, causationId: env.id });

export const createFederationSteps = (deps: FederationStepDeps): FederationSteps => {
  const nodes = () => deps.view.current.nodes.nodes;
  return {
    request: async (s, env) => {
      const r = s.request!;
      const to = s.remoteDomain!;
      const node = nodes()[r.clientNode];
      if (!node) {
        await deps.apply(streamName('connection', r.connectionId), { type: 'FailConnection', connectionId: r.connectionId, code: 'node-unknown', reason: `node "${r.clientNode}" has not joined the mesh` }, stableId(`${env.id}:node-unknown`), env);
        return;
      }
      const body: CommandBody<'interdomain.request'> = {
        connectionId: r.connectionId,
        networkService: r.networkService,
        clientInterface: r.clientInterface,
        client: nodeFactsOf(node, r.clientNode, deps.tunnelIds),
        labels: { ...r.labels },
        mechanismPreferences: [...r.mechanismPreferences],
        ...(s.redirectEndpoint ? { endpointHint: s.redirectEndpoint } : {}),
      };
      // One id per connection and target: the same request re-sent is the same request.
      await deps.send(to, 'request', body, { id: stableId(`fed-request:${r.connectionId}:${to}`), correlationId: env.correlationId, causationId: env.id });
    },
    state: async (s, env) => {
      const body = remoteStateOf(s, nodes());
      const to = s.request?.remoteClient?.domain;
      if (!body || !to) return;
      await deps.send(to, 'state', { connectionId: s.request!.connectionId, ...body }, trace(env, 'state'));
    },
    report: async (s, result, env, error) => {
      const remote = s.plan?.remote;
      if (!remote) return;
      const node = s.request!.clientNode;
      await deps.send(remote.domain, 'report', { connectionId: s.request!.connectionId, node, generation: remote.generation, result, ...(error ? { error: error.slice(0, 1024) } : {}) }, trace(env, `report-${result}`));
    },
    close: async (s, env) => {
      const to = s.remoteDomain;
      if (!to) return;
      const reason = s.closeReason ?? s.failure?.reason ?? 'closed';
      await deps.send(to, 'close', { connectionId: s.request!.connectionId, reason: reason.slice(0, 512) }, trace(env, 'close'));
    },
    redirect: async (s, ev, env) => {
      const to = s.request?.remoteClient?.domain;
      if (!to) return;
      await deps.send(to, 'redirect', { connectionId: s.request!.connectionId, domain: ev.domain, ...(ev.endpoint ? { endpoint: ev.endpoint } : {}) }, trace(env, 'redirect'));
    },
    forwardEndpoint: async (domain, what, env) => {
      const body: CommandBody<'interdomain.endpoint'> =
        what.op === 'unregister'
          ? { op: 'unregister', name: what.name }
          : {
              op: 'register',
              name: what.spec.name,
              networkServiceNames: [...what.spec.networkServiceNames],
              networkServiceLabels: structuredClone(what.spec.networkServiceLabels) as CommandBody<'interdomain.endpoint'>['networkServiceLabels'] & object,
              node: what.spec.node,
              // One prefix in the older form, which peers of earlier versions read too.
              ...(what.spec.prefixes.length === 1 ? { prefix: what.spec.prefixes[0]! } : { prefixes: [...what.spec.prefixes] }),
              excludedPrefixes: [...what.spec.excludedPrefixes],
            };
      await deps.send(domain, 'endpoint', body, trace(env, `endpoint-${domain}`));
    },
    resync: async (connectionId, env) => {
      const s = deps.view.current.connections.byId[connectionId]?.state;
      // Without a plan yet, the request (or the answer to it) is still on its way: it will arrive.
      if (!s?.remoteDomain || !s.plan?.remote) return;
      const from = s.remoteDomain;
      const r = await deps.ask(from, 'connection-state', { connectionId });
      if (E.isLeft(r)) throw new RetryLater(`domain ${from} did not say where connection ${connectionId} stands: ${r.left}`);
      const body = r.right as StateBody | null;
      const stream = streamName('connection', connectionId);
      const id = stableId(`resync:${connectionId}:${env.id}`);
      if (!body) {
        await deps.apply(stream, { type: 'FailConnection', connectionId, code: 'no-endpoint', reason: `domain ${from} no longer knows this connection` }, id, env);
        return;
      }
      const state = remoteStateFrom(body, from);
      const pathSegments = state.plan ? deps.remotePlanSegments?.({ state: s, from, plan: state.plan, now: deps.now() }) : undefined;
      await deps.apply(stream, { type: 'ApplyRemoteState', connectionId, from, state, at: deps.now().toISOString(), ...(pathSegments ? { pathSegments } : {}) }, id, env);
    },
    peerSeen: (facts) => deps.ensureRemoteSource(facts.domain),
  };
};
