// The one token shape the mesh signs: a compact JWT with an EdDSA signature by an identity's key.
// Path tokens (./pathToken.ts) and API tokens (./apiToken.ts) differ only in their claims.
//
// Signing stays here (node:crypto through a Signer, which never hands out its key). Verifying is
// jose's (npm `jose`): the header (alg EdDSA only, typ JWT, no unknown `crit`), the signature
// against the issuer's ed25519 key, the claims it is told to require, the audience, and expiry
// at the `now` the caller passes in (no clock in here). What jose does not check the mesh adds
// in `timeProblem`: a token issued in the future, or valid for longer from now than allowed.
import type { KeyObject } from 'node:crypto';
import * as E from 'fp-ts/lib/Either.js';
import { decodeJwt, decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from 'jose';
import type { Signer } from './keys.ts';

const HEADER = { alg: 'EdDSA', typ: 'JWT' } as const;
/** The encoded header every mesh token starts with. */
export const JWT_HEADER = Buffer.from(JSON.stringify(HEADER)).toString('base64url');

/** How far a signer's clock may run ahead of the verifier's before its tokens are "issued in the future". */
export const CLOCK_SKEW_SECONDS = 60;

/** Longest token the mesh reads at all (an API token is a few hundred bytes, a path token under 1 KB). */
export const MAX_TOKEN_LENGTH = 4096;

export const signJwt = (claims: object, signer: Signer): string => {
  const input = `${JWT_HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${Buffer.from(signer.sign(Buffer.from(input))).toString('base64url')}`;
};

export const seconds = (d: Date): number => Math.floor(d.getTime() / 1000);
const iso = (s: number): string => new Date(s * 1000).toISOString();

/** Why a token cannot be read (before any signature is checked). */
export type Unreadable = 'not-a-token' | 'not-eddsa' | 'not-json';

/**
 * The claims of a compact EdDSA JWT without checking its signature: to find the issuer's key, or
 * for display. Left: why it is not one of ours.
 */
export const unverifiedClaims = (token: string): E.Either<Unreadable, JWTPayload> => {
  if (typeof token !== 'string' || token.length > MAX_TOKEN_LENGTH || token.split('.').length !== 3) return E.left('not-a-token');
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    return E.left('not-eddsa');
  }
  if (alg !== HEADER.alg) return E.left('not-eddsa');
  try {
    return E.right(decodeJwt(token));
  } catch {
    return E.left('not-json');
  }
};

export type VerifyFailure =
  | { readonly kind: 'malformed'; readonly message: string }
  | { readonly kind: 'signature'; readonly message: string }
  /** A claim jose was asked to check is missing or has another value (`claim` names it). */
  | { readonly kind: 'claim'; readonly claim: string; readonly message: string };

export interface Verified {
  readonly claims: JWTPayload;
  /** The signature verifies and every other check passed, but `exp` is at or before `now`. */
  readonly expired: boolean;
}

/**
 * jose's verification of a mesh token against the issuer's key: alg EdDSA and typ JWT only, the
 * signature, the required claims, the audience (when given: one of the token's `aud` must be it),
 * and expiry at `now`. An expired token whose signature verifies is answered as such (`expired`),
 * so that a caller may still accept it where expiry does not matter (removing an expired
 * connection); nothing else is relaxed.
 */
export const verifyJwt = async (
  token: string,
  key: KeyObject,
  o: { readonly now: Date; readonly requiredClaims?: readonly string[]; readonly audience?: string },
): Promise<E.Either<VerifyFailure, Verified>> => {
  try {
    const r = await jwtVerify(token, key, {
      algorithms: [HEADER.alg],
      typ: HEADER.typ,
      currentDate: o.now,
      requiredClaims: ['iat', 'exp', ...(o.requiredClaims ?? [])],
      ...(o.audience !== undefined ? { audience: o.audience } : {}),
    });
    return E.right({ claims: r.payload, expired: false });
  } catch (e) {
    // jose checks the signature before the claims: an expired token here is a genuine one.
    if (e instanceof errors.JWTExpired) return E.right({ claims: e.payload, expired: true });
    if (e instanceof errors.JWSSignatureVerificationFailed) return E.left({ kind: 'signature', message: e.message });
    if (e instanceof errors.JWTClaimValidationFailed) return E.left({ kind: 'claim', claim: e.claim, message: e.message });
    // Anything else (a JWSInvalid, a TypeError from input jose cannot use): not a token we accept.
    return E.left({ kind: 'malformed', message: e instanceof Error ? e.message : String(e) });
  }
};

// What jose leaves to the mesh, with `now` given. (jose's own `maxTokenAge` would refuse an `iat`
// even a second ahead, with no skew, and its `clockTolerance` would also stretch expiry.)

/** A token issued later than CLOCK_SKEW_SECONDS after now; undefined: it is not. */
export const issuedInTheFuture = (iat: number, now: Date): string | undefined => {
  const n = seconds(now);
  return iat > n + CLOCK_SKEW_SECONDS ? `was issued in the future (${iso(iat)}, ${iat - n} s after this host's clock); at most ${CLOCK_SKEW_SECONDS} s of clock skew is allowed` : undefined;
};

/** A token that stays valid for longer than `max` seconds from now (whatever its `iat` says); undefined: it does not. */
export const validTooLong = (exp: number, now: Date, max: number, maxText: string): string | undefined =>
  exp - seconds(now) > max ? `is valid for more than ${maxText} from now (until ${iso(exp)})` : undefined;
