// Commands to node agents on nsm.<domain>.node.<node>.cmd: each one states the desired
// result for one side of one connection, so applying it twice, or late, is harmless.
import * as E from 'fp-ts/lib/Either.js';
import { MECHANISM_TYPES } from '../../aggregates/domain.ts';
import { parseIpv4 } from '../../aggregates/ip.ts';
import { cidr, id, name, netns } from './commands.ts';
import * as D from './decode.ts';

const ifname = D.string({ min: 1, max: 15, pattern: /^[A-Za-z0-9_-]+$/, patternHint: 'a Linux interface name' });
const mech = D.literal(...MECHANISM_TYPES);
const address = D.string({ min: 1, max: 45, pattern: /^[0-9a-fA-F.:]+$/, patternHint: 'an IP address' });
/** An interface address with its prefix length, e.g. "10.0.0.3/24" (ETHERNET payload): host bits set on purpose. */
const interfaceAddress = D.refine(D.string({ min: 1, max: 18 }), (s) => {
  const [addr, len, ...rest] = s.split('/');
  return rest.length === 0 && addr !== undefined && parseIpv4(addr) !== undefined && len !== undefined && /^\d{1,2}$/.test(len) && Number(len) <= 32
    ? undefined
    : `${JSON.stringify(s)} is not an IPv4 interface address like 10.0.0.3/24`;
});

export const sideSpec = D.object(
  {
    connectionId: id,
    generation: D.integer({ min: 0, max: 2 ** 31 }),
    side: D.literal('client', 'endpoint'),
    node: name,
    desired: D.literal('present', 'absent'),
    networkService: name,
    payload: D.literal('IP', 'ETHERNET'),
    interfaceName: ifname,
    mechanism: D.object({ local: D.literal('kernel') }, { remote: D.literal('vxlan', 'wireguard') }),
    addresses: D.array(interfaceAddress, { max: 16 }),
    routes: D.array(cidr, { max: 64 }),
    mtu: D.integer({ min: 0, max: 65535 }),
  },
  {
    netns,
    tunnel: D.object({
      id: D.integer({ min: 0, max: 2 ** 24 }),
      vni: D.integer({ min: 1, max: 2 ** 24 - 1 }),
      vxlanPort: D.integer({ min: 1, max: 65535 }),
      wireguardPort: D.integer({ min: 1, max: 65535 }),
    }),
    peer: D.object(
      { node: name },
      { underlayAddress: address, publicKeys: D.record(name, D.string({ min: 1, max: 256 }), { max: 8 }), mechanisms: D.array(mech, { max: 8 }) },
    ),
  },
);

export type SideSpec = typeof sideSpec extends D.Decoder<infer A> ? A : never;

const traceId = D.string({ min: 1, max: 200, pattern: /^[A-Za-z0-9_.:-]+$/, patternHint: 'an id' });
/** correlationId/causationId carry the workflow's ids through the agent into its report. */
export const nodeCommand = D.object({ id: D.string({ min: 1, max: 200 }), spec: sideSpec }, { correlationId: traceId, causationId: traceId });
export type NodeCommand = typeof nodeCommand extends D.Decoder<infer A> ? A : never;

export const decodeNodeCommand = (input: unknown): E.Either<D.DecodeError, NodeCommand> => nodeCommand(input, '');

/** Dedupe id of a node command: the same desired result for the same generation is one command. */
export const nodeCommandId = (s: Pick<SideSpec, 'connectionId' | 'generation' | 'side' | 'desired'>): string =>
  `${s.connectionId}:${s.generation}:${s.side}:${s.desired}`;
