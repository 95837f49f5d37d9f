// Commands to node agents on nsm.<domain>.node.<node>.cmd: each one states the desired
// result for one side of one connection, so applying it twice, or late, is harmless.
import * as E from 'fp-ts/lib/Either.js';
import { address, cidr, dnsName, id, interfaceAddress, interfaceName, mechanism, name, netns, pathToken, traceId, tunnelParameters } from './commands.ts';
import * as D from './decode.ts';


export const sideSpec = D.object(
  {
    connectionId: id,
    generation: D.integer({ min: 0, max: 2 ** 31 }),
    side: D.literal('client', 'endpoint'),
    node: name,
    desired: D.literal('present', 'absent'),
    networkService: name,
    payload: D.literal('IP', 'ETHERNET'),
    interfaceName,
    mechanism: D.object({ local: D.literal('kernel') }, { remote: D.literal('vxlan', 'wireguard') }),
    addresses: D.array(interfaceAddress, { max: 16 }),
    /** The other side's addresses: what a liveness probe pings. */
    remoteAddresses: D.array(interfaceAddress, { max: 16 }),
    routes: D.array(cidr, { max: 64 }),
    mtu: D.integer({ min: 0, max: 65535 }),
  },
  {
    netns,
    /** Client side: the name servers and search domains its namespace gets (resolv.conf) while connected. */
    dns: D.object({ servers: D.array(address, { min: 1, max: 3 }), searchDomains: D.array(dnsName, { max: 6 }) }),
    tunnel: tunnelParameters,
    peer: D.object(
      // A node of another domain is "<node>@<domain>" (federation).
      { node: D.string({ min: 1, max: 96, pattern: /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}(@[a-z0-9][a-z0-9-]{0,31})?$/, patternHint: 'a node name, or node@domain' }) },
      { underlayAddress: address, publicKeys: D.record(name, D.string({ min: 1, max: 256 }), { max: 8 }), mechanisms: D.array(mechanism, { max: 8 }) },
    ),
    /** The connection's signed path (authenticated meshes): the agent verifies it before acting. */
    path: D.object({
      index: D.integer({ min: 0, max: 16 }),
      pathSegments: D.array(
        D.object({ name: D.string({ min: 1, max: 128 }), id: D.string({ min: 0, max: 64 }) }, { token: pathToken, expires: D.string({ min: 1, max: 40 }) }),
        { max: 8 },
      ),
    }),
  },
);

export type SideSpec = typeof sideSpec extends D.Decoder<infer A> ? A : never;

/** correlationId/causationId carry the workflow's ids through the agent into its report. */
export const nodeCommand = D.object({ id: D.string({ min: 1, max: 200 }), spec: sideSpec }, { correlationId: traceId, causationId: traceId });
export type NodeCommand = typeof nodeCommand extends D.Decoder<infer A> ? A : never;

export const decodeNodeCommand = (input: unknown): E.Either<D.DecodeError, NodeCommand> => nodeCommand(input, '');

/** Dedupe id of a node command: the same desired result for the same generation is one command. */
export const nodeCommandId = (s: Pick<SideSpec, 'connectionId' | 'generation' | 'side' | 'desired'>): string =>
  `${s.connectionId}:${s.generation}:${s.side}:${s.desired}`;
