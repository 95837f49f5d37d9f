// Path tokens: every connection's path carries one signed token per segment, JWT-shaped
// (base64url header.payload.signature, alg EdDSA over ed25519 nkeys):
//
//   0  the client      signs its request         (audience: the control plane)
//   1  the control plane signs the plan          (audience: the agents of both nodes)
//   2  the client node's agent signs when it programs the client side   (audience: the control plane)
//   3  the endpoint node's agent signs, for the endpoint, when it programs the endpoint side
//
// Each token names its issuer (public key and actor), the connection, the generation, its index
// and segment name, an expiry, and the hash of the token it was issued under (segment 1 under 0;
// 2 and 3 under 1, being issued in parallel), so a chain cannot be re-ordered or spliced from
// another connection. Tokens are signed assertions, not secrets. No clock in here: `now` comes in.
//
// Verification is jose's (./jwt.ts: header, signature, required claims, audience, expiry), plus
// the mesh's checks on time: no token issued in the future (beyond the clock skew), and a client's
// token valid for no longer from now than a connection may last.
import { createHash } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import type { PathSegment } from '../../aggregates/connection/index.ts';
import { keyProblem, ROLES, type IdentityRegistry, type Role } from './identities.ts';
import { issuedInTheFuture, seconds, signJwt, unverifiedClaims, validTooLong, verifyJwt } from './jwt.ts';
import { publicKeyObject, type Signer } from './keys.ts';

/** A hop of a connection's path (aggregates/connection/types.ts), the token it carries signed here. */
export type { PathSegment };

/** What the control plane's token binds: the plan it authorizes. */
export interface PlanBinding {
  readonly clientNode: string;
  readonly endpoint: string;
  readonly endpointNode: string;
  /**
   * Client and endpoint addresses, without prefix length; a dual-stack side's two addresses
   * comma-separated ("10.0.0.3,fd00::3"), so a single-family token reads as before.
   */
  readonly src: string;
  readonly dst: string;
}

export interface PathClaims {
  readonly typ: 'nsm-path';
  /** Issuer's nkey public key. */
  readonly iss: string;
  /** Issuer's actor. */
  readonly sub: string;
  readonly aud: readonly string[];
  /** Seconds since the epoch. */
  readonly iat: number;
  readonly exp: number;
  /** Connection id. */
  readonly cid: string;
  /** Generation of the plan (0 for the client's request). */
  readonly gen: number;
  readonly idx: number;
  readonly seg: string;
  /** base64url SHA-256 of the token this one was issued under. */
  readonly prev?: string;
  /** Network service (client and control plane tokens). */
  readonly svc?: string;
  readonly plan?: PlanBinding;
}

export const CLIENT_SEGMENT = 0;
export const CONTROL_PLANE_SEGMENT = 1;
export const CLIENT_SIDE_SEGMENT = 2;
export const ENDPOINT_SIDE_SEGMENT = 3;
export const segmentOfSide = (side: 'client' | 'endpoint'): number => (side === 'client' ? CLIENT_SIDE_SEGMENT : ENDPOINT_SIDE_SEGMENT);

/**
 * Longest a client's token may be valid for from now: a connection may ask for an expiration of
 * up to 365 days (src/contracts/commands.ts), and the SDK signs for that long; a day more for skew.
 */
export const MAX_CLIENT_TOKEN_SECONDS = 366 * 86400;

export const tokenHash = (token: string): string => createHash('sha256').update(token).digest('base64url');

export const signToken = (claims: Omit<PathClaims, 'typ' | 'iss'>, signer: Signer): string => {
  return signJwt({ ...claims, typ: 'nsm-path', iss: signer.publicKey }, signer);
};

const isClaims = (v: unknown): v is PathClaims => {
  const c = v as Record<string, unknown>;
  return (
    typeof c === 'object' && c !== null && c.typ === 'nsm-path' && typeof c.iss === 'string' && typeof c.sub === 'string' &&
    Array.isArray(c.aud) && c.aud.every((a) => typeof a === 'string') && Number.isInteger(c.iat) && Number.isInteger(c.exp) &&
    typeof c.cid === 'string' && Number.isInteger(c.gen) && Number.isInteger(c.idx) && typeof c.seg === 'string' &&
    (c.prev === undefined || typeof c.prev === 'string') && (c.svc === undefined || typeof c.svc === 'string')
  );
};

/** The claims, without checking the signature: for display, or before looking up the issuer. */
export const readClaims = (token: string): E.Either<string, PathClaims> => {
  const c = unverifiedClaims(token);
  if (E.isLeft(c)) return E.left(c.left === 'not-a-token' ? 'not a token' : c.left === 'not-eddsa' ? 'not an EdDSA JWT' : 'its payload is not JSON');
  return isClaims(c.right) ? E.right(c.right) : E.left('its claims are not those of a path token');
};

/** A token whose signature verifies; `expired`: at `now` (the caller decides whether that matters). */
export interface VerifiedToken {
  readonly claims: PathClaims;
  readonly expired: boolean;
}

/**
 * Claims of a token whose signature verifies against the key it names (jose), and which the
 * registry lists with one of `roles`. Time is the caller's to judge: expiry is reported, not
 * refused (an agent still removes an expired connection's side), and `issuedInTheFuture` is
 * checked where a token is accepted for acting.
 */
export const verifyToken = async (
  token: string,
  registry: IdentityRegistry,
  roles: readonly Role[],
  now: Date,
  audience?: string,
  /** Removal: a token of a since revoked identity, or of a since retired key, still names what to take down. */
  o: { forRemoval?: boolean } = {},
): Promise<E.Either<string, VerifiedToken>> => {
  const claims = readClaims(token);
  if (E.isLeft(claims)) return claims;
  const c = claims.right;
  const issuer = registry.byKey(c.iss);
  const key = publicKeyObject(c.iss);
  if (!issuer || !key) return E.left(`signed by an unknown key ${c.iss.slice(0, 12)}...`);
  const v = await verifyJwt(token, key, { now, requiredClaims: ['typ', 'iss', 'sub', 'aud'], ...(audience !== undefined ? { audience } : {}) });
  if (E.isLeft(v)) {
    const f = v.left;
    if (f.kind === 'signature') return E.left(`signature does not verify (forged or altered; issuer claims to be ${issuer.actor})`);
    if (f.kind === 'claim' && f.claim === 'aud') return E.left(`is not addressed to ${audience}`);
    return E.left(`not a valid token: ${f.message}`);
  }
  // The payload jose verified is the one read above; its shape was checked there.
  if (issuer.actor !== c.sub) return E.left(`issued by ${issuer.actor}, but claims to be ${c.sub}`);
  const keyRefused = o.forRemoval ? undefined : keyProblem(registry, c.iss, c.iat);
  if (keyRefused) return E.left(keyRefused);
  if (!roles.includes(issuer.role)) return E.left(`issued by ${issuer.actor} (${issuer.role}), where a ${roles.join(' or ')} token belongs`);
  return E.right({ claims: c, expired: v.right.expired });
};

const expiredAt = (c: Pick<PathClaims, 'exp'>): string => `expired at ${new Date(c.exp * 1000).toISOString()}`;
const expiresText = (exp: number): string => `expires ${new Date(exp * 1000).toISOString()}`;

export const segmentOf = (token: string, claims: Pick<PathClaims, 'seg' | 'cid' | 'exp'>): PathSegment => ({
  name: claims.seg,
  id: claims.cid,
  token,
  expires: new Date(claims.exp * 1000).toISOString(),
});

/** Segment 0: the client asks for a connection to a service. */
export const clientSegment = (o: { signer: Signer; actor: string; connectionId: string; service?: string; now: Date; lifetimeSeconds: number }): PathSegment => {
  const claims = {
    sub: o.actor,
    aud: ['control-plane'],
    iat: seconds(o.now),
    exp: seconds(o.now) + o.lifetimeSeconds,
    cid: o.connectionId,
    gen: 0,
    idx: CLIENT_SEGMENT,
    seg: o.actor,
    ...(o.service !== undefined ? { svc: o.service } : {}),
  };
  return segmentOf(signToken(claims, o.signer), claims);
};

/** The control plane's check of a client's request token. */
export const verifyClientToken = async (
  token: string,
  o: { registry: IdentityRegistry; actor: string; connectionId: string; service?: string; now: Date },
): Promise<E.Either<string, PathClaims>> => {
  const v = await verifyToken(token, o.registry, ['client', 'operator'], o.now, 'control-plane');
  if (E.isLeft(v)) return E.left(/^is /.test(v.left) ? `client path token ${v.left}` : `client path token: ${v.left}`);
  const c = v.right.claims;
  const problem =
    c.sub !== o.actor ? `is ${c.sub}'s, not ${o.actor}'s`
    : c.idx !== CLIENT_SEGMENT ? `has index ${c.idx}, not ${CLIENT_SEGMENT}`
    : c.cid !== o.connectionId ? `is for connection ${c.cid}`
    : o.service !== undefined && c.svc !== o.service ? `is for service ${c.svc ?? '(none)'}, not ${o.service}`
    : v.right.expired ? expiredAt(c)
    : issuedInTheFuture(c.iat, o.now) ?? validTooLong(c.exp, o.now, MAX_CLIENT_TOKEN_SECONDS, '366 days');
  return problem ? E.left(`client path token ${problem}`) : E.right(c);
};

/** Segments 0-3 of a plan: the client's, the control plane's, and what each agent will sign. */
export const planSegments = (o: {
  signer: Signer;
  client: PathSegment;
  connectionId: string;
  generation: number;
  service: string;
  plan: PlanBinding;
  now: Date;
  expires: Date;
}): PathSegment[] => {
  const agents = [...new Set([`agent:${o.plan.clientNode}`, `agent:${o.plan.endpointNode}`])];
  const claims = {
    sub: 'control-plane',
    aud: agents,
    iat: seconds(o.now),
    exp: seconds(o.expires),
    cid: o.connectionId,
    gen: o.generation,
    idx: CONTROL_PLANE_SEGMENT,
    seg: 'control-plane',
    prev: tokenHash(o.client.token ?? ''),
    svc: o.service,
    plan: o.plan,
  };
  const expires = new Date(claims.exp * 1000).toISOString();
  return [
    o.client,
    segmentOf(signToken(claims, o.signer), claims),
    { name: `agent:${o.plan.clientNode}`, id: o.connectionId, expires },
    { name: o.plan.endpoint, id: o.connectionId, expires },
  ];
};

/** The segment an agent signs once it has programmed its side. */
export const agentToken = (o: { signer: Signer; actor: string; segments: readonly PathSegment[]; side: 'client' | 'endpoint'; connectionId: string; generation: number; now: Date }): string => {
  const idx = segmentOfSide(o.side);
  const cp = o.segments[CONTROL_PLANE_SEGMENT]!;
  const cpClaims = readClaims(cp.token ?? '');
  return signToken(
    {
      sub: o.actor,
      aud: ['control-plane'],
      iat: seconds(o.now),
      exp: E.isRight(cpClaims) ? cpClaims.right.exp : seconds(o.now),
      cid: o.connectionId,
      gen: o.generation,
      idx,
      seg: o.segments[idx]?.name ?? o.actor,
      prev: tokenHash(cp.token ?? ''),
    },
    o.signer,
  );
};

/** The address of a CIDR (10.0.0.1/32 -> 10.0.0.1): what path tokens bind. */
export const bareAddress = (cidr: string): string => cidr.split('/')[0]!;
/** A side's addresses as a plan binds them: bare, comma-separated. */
export const boundAddresses = (cidrs: readonly string[]): string => cidrs.map(bareAddress).join(',');

export interface ChainCheck {
  readonly registry: IdentityRegistry;
  readonly connectionId: string;
  readonly generation: number;
  /** The checking agent's node and the side it is asked to act on. */
  readonly node: string;
  readonly side: 'client' | 'endpoint';
  /** The side's own addresses, as in its node command. */
  readonly addresses: readonly string[];
  readonly now: Date;
  /**
   * Programming, not removal: only programming checks expiry, and refuses tokens of a revoked
   * identity or of a key retired before it signed them. Removing a side must still go ahead
   * (the connection of a revoked client is closed, and its sides taken down).
   */
  readonly checkExpiry: boolean;
}

/**
 * What an agent checks before acting on a side: the client's token and the control plane's, each
 * signed by a registered identity of the right role, in order, chained by hash, for this
 * connection, generation, node and addresses, and (when programming) segment 1 not expired and no
 * token issued in the future; agent segments already signed must verify too. Left: why not, in
 * words for the connection's failure reason.
 */
export const verifyPathChain = async (segments: readonly PathSegment[] | undefined, o: ChainCheck): Promise<E.Either<string, void>> => {
  if (!segments || segments.length < 2) return E.left('the node command carries no path tokens');
  if (segments.length > 4) return E.left(`the path has ${segments.length} segments, at most 4`);
  const at = (i: number, what: string) => (msg: string) => `path segment ${i} (${what}): ${msg}`;
  const claims: PathClaims[] = [];
  // Segment 0 by the control plane: the client is another domain's, and it opened the path here on
  // that domain's behalf (federation, src/security/guard.ts).
  const roles: readonly (readonly Role[])[] = [['client', 'operator', 'control-plane'], ['control-plane'], ['agent'], ['agent']];
  // Signatures are checked together; what is wrong is told in segment order.
  const verified = await Promise.all(segments.map((seg) => (seg.token === undefined ? undefined : verifyToken(seg.token, o.registry, ROLES, o.now, undefined, { forRemoval: !o.checkExpiry }))));
  const cpVerified = verified[CONTROL_PLANE_SEGMENT];
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    const where = at(i, seg.name);
    const v = verified[i];
    if (v === undefined) {
      if (i < 2) return E.left(where('has no token'));
      continue;
    }
    // Signature first, position next: a genuine token in the wrong place is a re-ordering.
    if (E.isLeft(v)) return E.left(where(v.left));
    const c = v.right.claims;
    if (c.idx !== i) return E.left(where(`token was issued for segment ${c.idx} (${c.seg}): the path is re-ordered`));
    const role = o.registry.byKey(c.iss)!.role;
    if (!roles[i]!.includes(role)) return E.left(where(`issued by ${c.sub} (${role}), where a ${roles[i]!.join(' or ')} token belongs`));
    if (c.seg !== seg.name) return E.left(where(`token names segment "${c.seg}"`));
    if (c.cid !== o.connectionId) return E.left(where(`token is for connection ${c.cid}, not ${o.connectionId}`));
    // Programming acts on the tokens' word now: none may come from a clock far ahead.
    const future = o.checkExpiry ? issuedInTheFuture(c.iat, o.now) : undefined;
    if (future) return E.left(where(`token ${future}`));
    claims[i] = c;
  }
  const client = claims[CLIENT_SEGMENT]!;
  const cp = claims[CONTROL_PLANE_SEGMENT]!;
  const cpWhere = at(CONTROL_PLANE_SEGMENT, 'control-plane');
  if (cp.prev !== tokenHash(segments[CLIENT_SEGMENT]!.token!)) return E.left(cpWhere('was not issued under segment 0: the path is re-ordered or spliced'));
  // A renewed client segment need not name the service again: the control plane's binds it.
  if (client.svc !== undefined && cp.svc !== client.svc) return E.left(cpWhere(`authorizes service ${cp.svc}, the client asked for ${client.svc}`));
  if (cp.gen !== o.generation) return E.left(cpWhere(`authorizes generation ${cp.gen}, the command is for generation ${o.generation}`));
  if (!cp.aud.includes(`agent:${o.node}`)) return E.left(cpWhere(`is not addressed to agent:${o.node}`));
  const plan = cp.plan;
  if (!plan) return E.left(cpWhere('binds no plan'));
  const node = o.side === 'client' ? plan.clientNode : plan.endpointNode;
  if (node !== o.node) return E.left(cpWhere(`puts the ${o.side} side on node ${node}, not ${o.node}`));
  const address = o.side === 'client' ? plan.src : plan.dst;
  const allowed = address.split(',');
  if (o.addresses.some((a) => !allowed.includes(bareAddress(a)))) return E.left(cpWhere(`authorizes address ${address} for the ${o.side} side, the command asks for ${o.addresses.join(', ')}`));
  if (o.checkExpiry && cpVerified && E.isRight(cpVerified) && cpVerified.right.expired) return E.left(cpWhere(`${expiredAt(cp)}; refresh the connection to renew its tokens`));
  const cpHash = tokenHash(segments[CONTROL_PLANE_SEGMENT]!.token!);
  for (let i = 2; i < segments.length; i++) {
    const c = claims[i];
    if (!c) continue;
    const where = at(i, segments[i]!.name);
    if (c.prev !== cpHash) return E.left(where('was not issued under segment 1'));
    if (c.gen !== cp.gen) return E.left(where(`is for generation ${c.gen}`));
    const agentNode = i === CLIENT_SIDE_SEGMENT ? plan.clientNode : plan.endpointNode;
    if (c.sub !== `agent:${agentNode}`) return E.left(where(`signed by ${c.sub}, not agent:${agentNode}`));
  }
  return E.right(undefined);
};

/** The control plane's check of the token an agent reports with a programmed side. */
export const verifyAgentToken = async (
  token: string,
  o: { registry: IdentityRegistry; node: string; side: 'client' | 'endpoint'; connectionId: string; generation: number; segments: readonly PathSegment[]; now: Date },
): Promise<E.Either<string, void>> => {
  const v = await verifyToken(token, o.registry, ['agent'], o.now, 'control-plane');
  if (E.isLeft(v)) return E.left(/^is /.test(v.left) ? `agent path token ${v.left}` : `agent path token: ${v.left}`);
  const c = v.right.claims;
  const idx = segmentOfSide(o.side);
  const cp = o.segments[CONTROL_PLANE_SEGMENT]?.token;
  const cpClaims = cp === undefined ? undefined : readClaims(cp);
  const problem =
    c.sub !== `agent:${o.node}` ? `is agent ${c.sub}'s, the report is from agent:${o.node}`
    : c.idx !== idx ? `has index ${c.idx}, the ${o.side} side's is ${idx}`
    : c.cid !== o.connectionId || c.gen !== o.generation ? `is for ${c.cid} generation ${c.gen}`
    : cp === undefined || c.prev !== tokenHash(cp) ? 'was not issued under the control plane token of this plan'
    : cpClaims && E.isRight(cpClaims) && c.exp > cpClaims.right.exp ? `outlives the control plane token it was issued under (${expiresText(c.exp)}, the plan ${expiresText(cpClaims.right.exp)})`
    : issuedInTheFuture(c.iat, o.now);
  return problem ? E.left(`agent path token ${problem}`) : E.right(undefined);
};
