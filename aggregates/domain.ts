// Types shared by the aggregates. Field names follow the original NSM API where one exists.
import * as E from 'fp-ts/lib/Either.js';

export type Labels = Readonly<Record<string, string>>;
export type Payload = 'IP' | 'ETHERNET';

/** Names become NATS subject tokens and Linux-friendly identifiers, so they are restricted. */
export const NAME_PATTERN = /^[A-Za-z0-9]([A-Za-z0-9_-]{0,62})$/;
export const NAME_HINT = 'use 1-63 letters, digits, "-" or "_", starting with a letter or digit';

export interface Destination {
  readonly destinationSelector: Labels;
  readonly weight?: number;
}
export interface Match {
  readonly sourceSelector: Labels;
  readonly routes: readonly Destination[];
  readonly fallthrough: boolean;
}

export type LocalMechanism = 'kernel';
export type RemoteMechanism = 'vxlan' | 'wireguard';
export type MechanismType = LocalMechanism | RemoteMechanism;
export const LOCAL_MECHANISMS: readonly LocalMechanism[] = ['kernel'];
export const REMOTE_MECHANISMS: readonly RemoteMechanism[] = ['wireguard', 'vxlan'];
export const MECHANISM_TYPES: readonly MechanismType[] = ['kernel', 'vxlan', 'wireguard'];

export interface Route {
  readonly prefix: string;
}
export interface IpContext {
  /** Client-side addresses (CIDR). */
  readonly srcIpAddrs: readonly string[];
  /** Endpoint-side addresses (CIDR). */
  readonly dstIpAddrs: readonly string[];
  /** Routes installed on the client side. */
  readonly srcRoutes: readonly Route[];
  /** Routes installed on the endpoint side. */
  readonly dstRoutes: readonly Route[];
  readonly excludedPrefixes: readonly string[];
}

/**
 * DNS a service or an endpoint offers its clients (the original's dnsContext): name servers,
 * each an address or "endpoint" (the selected endpoint's own address on each connection, every
 * family), and search domains.
 */
export interface OfferedDns {
  readonly servers: readonly string[];
  readonly searchDomains: readonly string[];
}

/** The server that stands for the endpoint's own address on each connection. */
export const DNS_AT_ENDPOINT = 'endpoint';

export interface DnsConfig {
  readonly dnsServerIps: readonly string[];
  readonly searchDomains: readonly string[];
}
export interface DnsContext {
  readonly configs: readonly DnsConfig[];
}
export interface EthernetContext {
  readonly srcMac?: string;
  readonly dstMac?: string;
  readonly vlanTag?: number;
}
/** The original API's ConnectionContext. */
export interface ConnectionContext {
  readonly ipContext: IpContext;
  readonly dnsContext: DnsContext;
  readonly ethernetContext: EthernetContext;
  readonly mtu: number;
}

export type DomainErrorCode =
  | 'invalid'
  | 'not-found'
  | 'conflict'
  | 'wrong-state'
  | 'pool-exhausted'
  | 'unsupported';

export interface DomainError {
  readonly code: DomainErrorCode;
  readonly message: string;
}
export const domainError = (code: DomainErrorCode, message: string): DomainError => ({ code, message });
export const reject = (code: DomainErrorCode, message: string): E.Either<DomainError, never> =>
  E.left(domainError(code, message));

/** Shape every aggregate module exports. */
export interface Aggregate<S, C, Ev> {
  readonly name: string;
  readonly initialState: S;
  decide(command: C, state: S): E.Either<DomainError, readonly Ev[]>;
  evolve(state: S, event: Ev): S;
}

export const isSubset = (superset: Labels, subset: Labels): boolean =>
  Object.entries(subset).every(([k, v]) => superset[k] === v);

export const sameLabels = (a: Labels, b: Labels): boolean =>
  Object.keys(a).length === Object.keys(b).length && isSubset(a, b);

/** Structural equality for plain JSON values (used to detect no-op re-registrations). */
export const jsonEqual = (a: unknown, b: unknown): boolean => {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => jsonEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
};
