// What crosses between the two domains of a connection, built from and read into the domain
// model: the endpoint domain's state of a connection (interdomain.state) and a node's facts.
// Pure: the process manager sends what these build, the handlers decode what they read.
import type { ConnectionState, RemoteNode } from '../../aggregates/connection/index.ts';
import type { RemoteState } from '../../aggregates/connection/index.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import type { NodeRow } from '../../projections/nodes.ts';
import type { CommandBody } from '../contracts/commands.ts';

export type NodeFactsBody = CommandBody<'interdomain.request'>['client'];
export type StateBody = Omit<CommandBody<'interdomain.state'>, 'connectionId'>;

/** A local node as another domain needs it: where to reach it (its external address if any), keys, what it can do. */
export const nodeFactsOf = (n: NodeRow | undefined, name: string, tunnelIds?: TunnelIdRange): NodeFactsBody => ({
  name,
  mechanisms: n ? [...n.mechanisms] : ['kernel'],
  mtu: n?.mtu ?? 1500,
  ...(n?.externalAddress ?? n?.underlayAddress ? { address: (n?.externalAddress ?? n?.underlayAddress)! } : {}),
  publicKeys: { ...(n?.publicKeys ?? {}) },
  ...(n?.localPrefixes && n.localPrefixes.length > 0 ? { localPrefixes: [...n.localPrefixes] } : {}),
  ...(tunnelIds ? { tunnelIds: { ...tunnelIds } } : {}),
});

/**
 * Endpoint side: where the connection stands here, for the client's domain. undefined while
 * there is nothing to tell (requested, selected, not yet planned).
 */
export const remoteStateOf = (s: ConnectionState, nodes: Readonly<Record<string, NodeRow>>): StateBody | undefined => {
  const generation = s.generation;
  switch (s.phase) {
    case 'failed':
      return { generation, phase: 'failed', endpointProgrammed: false, reason: s.failure?.reason ?? 'failed', ...(s.failure ? { code: s.failure.code } : {}) };
    case 'closed':
      return { generation, phase: 'closed', endpointProgrammed: false, reason: s.closeReason ?? 'closed' };
    case 'waiting':
      return { generation, phase: 'waiting', endpointProgrammed: false, reason: 'no endpoint matches (waiting for one to register)' };
    default: {
      if (!s.plan || !s.endpoint) return undefined;
      const { mechanism, context, endpointInterface, tunnel } = s.plan;
      return {
        generation,
        phase: 'planned',
        endpointProgrammed: s.programmed.includes('endpoint'),
        plan: {
          endpoint: s.endpoint.name,
          node: nodeFactsOf(nodes[s.endpoint.node], s.endpoint.node),
          mechanism: { ...mechanism },
          context: structuredClone(context) as unknown as NonNullable<StateBody['plan']>['context'],
          endpointInterface,
          ...(tunnel ? { tunnel: { ...tunnel } } : {}),
        },
      };
    }
  }
};

/** The state a domain sent, as the connection aggregate takes it: its node named in its domain. */
export const remoteStateFrom = (body: StateBody, from: string): RemoteState => ({
  generation: body.generation,
  phase: body.phase,
  endpointProgrammed: body.endpointProgrammed,
  ...(body.plan ? { plan: { ...body.plan, node: remoteNodeFrom(body.plan.node, from) } } : {}),
  ...(body.reason !== undefined ? { reason: body.reason } : {}),
  ...(body.code ? { code: body.code } : {}),
});

export const remoteNodeFrom = (body: NodeFactsBody, domain: string): RemoteNode => ({ ...body, publicKeys: body.publicKeys ?? {}, domain });
