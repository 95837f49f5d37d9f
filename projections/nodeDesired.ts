// What each node should have programmed, derived from connection state: used by the process
// manager to command agents and by agents to reconcile after a restart.
import { isTerminal, nodeOfSide, type ConnectionState, type RemoteNode, type Side } from '../aggregates/connection/index.ts';
import { localSides } from '../aggregates/connection/index.ts';
import type { DnsContext } from '../aggregates/domain.ts';
import type { SideSpec } from '../src/contracts/nodeCommands.ts';
import type { ConnectionsModel } from './connections.ts';
import type { NodeRow } from './nodes.ts';

/** The client's DNS, every config's servers and search domains in order (a namespace has one resolv.conf). */
const dnsOf = (dns: DnsContext): { dns?: { servers: string[]; searchDomains: string[] } } => {
  const servers = [...new Set(dns.configs.flatMap((c) => c.dnsServerIps))];
  return servers.length === 0 ? {} : { dns: { servers, searchDomains: [...new Set(dns.configs.flatMap((c) => c.searchDomains))] } };
};

/** The spec for one side of a planned connection, or undefined when nothing was planned yet. */
export const sideSpecOf = (
  s: ConnectionState,
  side: Side,
  nodes: Readonly<Record<string, NodeRow>>,
  desired: 'present' | 'absent',
): SideSpec | undefined => {
  const node = nodeOfSide(s, side);
  if (!s.plan || !s.request || !node || !s.endpoint) return undefined;
  const { ipContext, mtu } = s.plan.context;
  const peerNode = side === 'client' ? s.endpoint.node : s.request.clientNode;
  // Across domains the peer is a node of the other domain, described by that domain.
  const remotePeer: RemoteNode | undefined = side === 'client' ? s.plan.remote?.peer : s.request.remoteClient;
  const peer = remotePeer ? { underlayAddress: remotePeer.address, publicKeys: remotePeer.publicKeys, mechanisms: remotePeer.mechanisms } : nodes[peerNode];
  return {
    connectionId: s.request.connectionId,
    generation: s.generation,
    side,
    node,
    desired,
    networkService: s.request.networkService,
    payload: s.request.payload,
    interfaceName: side === 'client' ? s.plan.clientInterface : s.plan.endpointInterface,
    mechanism: { ...s.plan.mechanism },
    addresses: [...(side === 'client' ? ipContext.srcIpAddrs : ipContext.dstIpAddrs)],
    remoteAddresses: [...(side === 'client' ? ipContext.dstIpAddrs : ipContext.srcIpAddrs)],
    routes: (side === 'client' ? ipContext.srcRoutes : ipContext.dstRoutes).map((r) => r.prefix),
    mtu,
    ...(side === 'client' && s.request.clientNetns ? { netns: s.request.clientNetns } : {}),
    ...(side === 'client' ? dnsOf(s.plan.context.dnsContext) : {}),
    ...(side === 'endpoint' && s.plan.endpointNetns ? { netns: s.plan.endpointNetns } : {}),
    ...(s.plan.tunnel ? { tunnel: { ...s.plan.tunnel } } : {}),
    // Signed segments travel with the command so the agent can check them before acting.
    ...(s.plan.path.pathSegments.some((p) => p.token) ? { path: { index: s.plan.path.index, pathSegments: s.plan.path.pathSegments.map((p) => ({ ...p })) } } : {}),
    ...(peerNode !== node
      ? {
          peer: {
            node: peerNode,
            ...(peer?.underlayAddress ? { underlayAddress: peer.underlayAddress } : {}),
            publicKeys: { ...(peer?.publicKeys ?? {}) },
            mechanisms: [...(peer?.mechanisms ?? [])],
          },
        }
      : {}),
  };
};

/** Sides that should be up: planned or established, not failed or closed. */
export const isDesiredPresent = (s: ConnectionState): boolean => !isTerminal(s.phase) && s.plan !== undefined;

export const desiredForNode = (
  model: ConnectionsModel,
  nodes: Readonly<Record<string, NodeRow>>,
  node: string,
): SideSpec[] =>
  Object.values(model.byId).flatMap((row) =>
    isDesiredPresent(row.state)
      ? localSides(row.state).filter((side) => nodeOfSide(row.state, side) === node).flatMap((side) => {
          const spec = sideSpecOf(row.state, side, nodes, 'present');
          return spec ? [spec] : [];
        })
      : [],
  );
