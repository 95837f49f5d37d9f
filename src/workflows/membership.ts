// Reactions to what comes and goes: an endpoint expires, leaves or arrives; a node is lost or
// back; another domain of the federation is lost or back. Pure, like ./connection.ts: each
// returns the steps, the runner carries them out.
import { isTerminal, type ConnectionState, type HealCause } from '../../aggregates/connection/index.ts';
import type { EndpointEvent, EndpointState } from '../../aggregates/endpoint.ts';
import type { NodeEvent } from '../../aggregates/node.ts';
import type { PeerEvent } from '../../aggregates/peer.ts';
import { streamName, type EventEnvelope } from '../contracts/envelope.ts';
import { heal } from './connection.ts';
import { execute, federate, log, together, type Step, type WorkflowContext } from './steps.ts';

/** Connections not closed or failed that the predicate picks, by id. */
export const openConnections = (ctx: WorkflowContext, pred: (s: ConnectionState) => boolean): string[] =>
  Object.values(ctx.model.connections.byId)
    .filter((r) => !isTerminal(r.state.phase) && pred(r.state))
    .map((r) => r.id);

const healAll = (ids: readonly string[], cause: HealCause, env: EventEnvelope, exclude: readonly string[], ctx: WorkflowContext): Step[] =>
  ids.length === 0
    ? []
    : [
        log('info', 'healing connections', { cause, connections: ids.length, causeEvent: env.id, stream: env.stream }),
        ...together(
          ids.map((id) => heal(id, cause, env, exclude, ctx)),
          ctx.healConcurrency,
        ),
      ];

/** The connections' client node, or their endpoint's domain, is unreachable: they are down until it is back. */
const markDown = (ids: readonly string[], where: { node: string; domain?: string; at: string }, ctx: WorkflowContext): Step[] =>
  together(
    ids.map((id) => [execute(streamName('connection', id), `down-${id}`, { type: 'MarkConnectionDown', connectionId: id, ...where })]),
    ctx.healConcurrency,
  );

const resyncAll = (ids: readonly string[], ctx: WorkflowContext): Step[] =>
  ctx.federated ? together(ids.map((id) => [federate({ op: 'resync', connectionId: id })]), ctx.healConcurrency) : [];

/** Endpoints registered as svc@<floating>: their registration follows them into that registry. */
const forwardToFloating = (env: EventEnvelope<EndpointEvent>, ctx: WorkflowContext): Step[] => {
  if (!ctx.federated) return [];
  const ev = env.data;
  if (ev.type === 'EndpointRegistered' || ev.type === 'EndpointUpdated') {
    return (ev.spec.floating ?? []).map((domain) => federate({ op: 'forward-endpoint', domain, what: { op: 'register', spec: ev.spec } }));
  }
  if (ev.type === 'EndpointUnregistered' || ev.type === 'EndpointExpired') {
    const name = ev.name;
    // Its registration is gone from the read model: the stream still has its spec.
    return [
      {
        kind: 'load',
        stream: env.stream,
        then: (state) => ((state as EndpointState).spec?.floating ?? []).map((domain) => federate({ op: 'forward-endpoint', domain, what: { op: 'unregister', name } })),
      },
    ];
  }
  return [];
};

export const reactToEndpoint = (env: EventEnvelope<EndpointEvent>, ctx: WorkflowContext): Step[] => {
  const ev = env.data;
  const own = ((): Step[] => {
    switch (ev.type) {
      case 'EndpointExpired':
      case 'EndpointUnregistered': {
        const name = ev.name;
        const cause: HealCause = ev.type === 'EndpointExpired' ? 'endpoint-expired' : 'endpoint-unregistered';
        return healAll(openConnections(ctx, (s) => s.endpoint?.name === name), cause, env, [name], ctx);
      }
      case 'EndpointRegistered':
      case 'EndpointUpdated': {
        const services = ev.spec.networkServiceNames;
        return healAll(openConnections(ctx, (s) => s.phase === 'waiting' && services.includes(s.request?.networkService ?? '')), 'endpoint-available', env, [], ctx);
      }
      default:
        return [];
    }
  })();
  return [...own, ...forwardToFloating(env, ctx)];
};

export const reactToNode = (env: EventEnvelope<NodeEvent>, ctx: WorkflowContext): Step[] => {
  const ev = env.data;
  if (ev.type === 'NodeLost') {
    const node = ev.name;
    const at = ctx.now.toISOString();
    const down = openConnections(ctx, (s) => s.request?.clientNode === node && s.phase !== 'down');
    const endpoints = Object.values(ctx.model.registry.endpoints).filter((ep) => ep.node === node);
    return [
      log('warn', 'node lost', { node, lastSeen: ev.lastSeen, clientConnections: down.length }),
      ...markDown(down, { node, at }, ctx),
      ...endpoints.map((ep) => execute(streamName('endpoint', ep.name), `expire-${ep.name}`, { type: 'ExpireEndpoint', name: ep.name, cause: 'node-lost', at })),
    ];
  }
  if (ev.type === 'NodeRecovered') {
    const node = ev.name;
    const down = (s: ConnectionState) => s.phase === 'down' && s.request?.clientNode === node && !s.down?.domain;
    return [
      ...healAll(openConnections(ctx, (s) => down(s) && !s.remoteDomain), 'node-recovered', env, [], ctx),
      // Across domains the endpoint's domain holds the plan: ask it, and re-plan this side from its answer.
      ...resyncAll(openConnections(ctx, (s) => down(s) && s.remoteDomain !== undefined), ctx),
    ];
  }
  return [];
};

/** Another domain lost (its connections here go down) or back (they are brought up to date from there). */
export const reactToPeer = (env: EventEnvelope<PeerEvent>, ctx: WorkflowContext): Step[] => {
  const ev = env.data;
  switch (ev.type) {
    case 'PeerSeen':
    case 'PeerUpdated':
      return ctx.federated ? [federate({ op: 'peer-seen', facts: ev.facts })] : [];
    case 'PeerLost': {
      const affected = openConnections(ctx, (s) => s.remoteDomain === ev.domain && s.phase !== 'down');
      return [log('warn', 'peer domain lost', { domain: ev.domain, lastSeen: ev.lastSeen, connections: affected.length }), ...markDown(affected, { node: '', domain: ev.domain, at: ctx.now.toISOString() }, ctx)];
    }
    case 'PeerRecovered': {
      if (!ctx.federated) return [];
      const down = openConnections(ctx, (s) => s.remoteDomain === ev.domain && s.phase === 'down' && s.down?.domain === ev.domain);
      return [log('info', 'peer domain back', { domain: ev.domain, connections: down.length }), ...resyncAll(down, ctx)];
    }
    default:
      return [];
  }
};
