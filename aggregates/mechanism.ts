// Mechanism negotiation: the client's preferences against what both nodes can do.
import * as E from 'fp-ts/lib/Either.js';
import {
  LOCAL_MECHANISMS,
  REMOTE_MECHANISMS,
  type LocalMechanism,
  type MechanismType,
  type Payload,
  type RemoteMechanism,
} from './domain.ts';

export interface NegotiatedMechanism {
  /** How each workload is attached on its own node. */
  readonly local: LocalMechanism;
  /** How the two nodes are joined; absent when client and endpoint share a node. */
  readonly remote?: RemoteMechanism;
}

/** Per-packet overhead of each tunnel over an IPv4 underlay (WireGuard: its IPv6 worst case, always). */
export const TUNNEL_OVERHEAD: Readonly<Record<RemoteMechanism, number>> = { vxlan: 50, wireguard: 80 };
/** Over an IPv6 underlay: its header is 20 bytes longer (VXLAN 40 + 8 + 8 + 14). */
export const TUNNEL_OVERHEAD_IPV6: Readonly<Record<RemoteMechanism, number>> = { vxlan: 70, wireguard: 80 };

const isLocal = (m: MechanismType): m is LocalMechanism => (LOCAL_MECHANISMS as readonly string[]).includes(m);
const isRemote = (m: MechanismType): m is RemoteMechanism => (REMOTE_MECHANISMS as readonly string[]).includes(m);

export const negotiateMechanism = (input: {
  readonly preferences: readonly MechanismType[];
  readonly payload: Payload;
  readonly clientNode: string;
  readonly clientCapabilities: readonly MechanismType[];
  readonly endpointNode: string;
  readonly endpointCapabilities: readonly MechanismType[];
}): E.Either<string, NegotiatedMechanism> => {
  const prefs = input.preferences.length > 0 ? input.preferences : [...LOCAL_MECHANISMS, ...REMOTE_MECHANISMS];
  const localPrefs = prefs.filter(isLocal);
  const local = (localPrefs.length > 0 ? localPrefs : LOCAL_MECHANISMS).find(
    (m) => input.clientCapabilities.includes(m) && input.endpointCapabilities.includes(m),
  );
  if (!local) {
    return E.left(
      `no local mechanism fits: client asked for ${localPrefs.join(', ') || 'any'}, node ${input.clientNode} offers ${input.clientCapabilities.join(', ') || 'nothing'}, node ${input.endpointNode} offers ${input.endpointCapabilities.join(', ') || 'nothing'}`,
    );
  }
  if (input.clientNode === input.endpointNode) return E.right({ local });
  const remotePrefs = prefs.filter(isRemote);
  const wanted = remotePrefs.length > 0 ? remotePrefs : REMOTE_MECHANISMS;
  // An L2 (ETHERNET) service needs a tunnel that carries frames; WireGuard carries only IP.
  const usable = input.payload === 'ETHERNET' ? wanted.filter((m) => m === 'vxlan') : wanted;
  const remote = usable.find((m) => input.clientCapabilities.includes(m) && input.endpointCapabilities.includes(m));
  if (!remote) {
    return E.left(
      `no mechanism joins node ${input.clientNode} (${input.clientCapabilities.join(', ') || 'nothing'}) and node ${input.endpointNode} (${input.endpointCapabilities.join(', ') || 'nothing'}) for ${input.payload} payload; client asked for ${wanted.join(', ')}`,
    );
  }
  return E.right({ local, remote });
};
