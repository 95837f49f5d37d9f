// Bearer tokens for the HTTP API of an authenticated mesh: a short-lived EdDSA JWT that an
// identity signs with its own key (`nsm token`); the API answers with that identity's scope.
// Verified by jose (./jwt.ts); the mesh adds the checks on time jose leaves to it.
import * as E from 'fp-ts/lib/Either.js';
import { keyProblem, type IdentityRegistry } from './identities.ts';
import { issuedInTheFuture, signJwt, unverifiedClaims, validTooLong, verifyJwt } from './jwt.ts';
import { publicKeyObject, type Signer } from './keys.ts';

export const API_AUDIENCE = 'nsm-http';
/** Longest lifetime the API accepts, and longest it accepts a token for from now: a leaked token is worth little for long. */
export const MAX_API_TOKEN_SECONDS = 24 * 3600;
const MAX_TEXT = '24 h';

export const apiToken = (signer: Signer, actor: string, now: Date, ttlSeconds: number): string => {
  const iat = Math.floor(now.getTime() / 1000);
  return signJwt({ typ: 'nsm-api', iss: signer.publicKey, sub: actor, aud: API_AUDIENCE, iat, exp: iat + ttlSeconds }, signer);
};

const NEEDS_BEARER = 'this mesh requires "Authorization: Bearer <token>"; get one with: nsm token';

/**
 * The actor an `Authorization: Bearer` header proves, or why it proves nothing: signed by the key
 * of a registered identity that is the token's subject, for this API, issued no later than the
 * clock skew allows, not expired, and living (and valid from now) at most 24 h.
 */
export const verifyApiToken = async (header: string | undefined, registry: IdentityRegistry, now: Date): Promise<E.Either<string, string>> => {
  const m = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(header ?? '');
  if (!m) return E.left(NEEDS_BEARER);
  const token = m[1]!;
  const read = unverifiedClaims(token);
  if (E.isLeft(read)) return E.left(read.left === 'not-json' ? 'the token payload is not JSON' : read.left === 'not-eddsa' ? 'not an EdDSA JWT' : NEEDS_BEARER);
  const c = read.right;
  if (c.typ !== 'nsm-api' || typeof c.iss !== 'string' || typeof c.sub !== 'string' || !Number.isInteger(c.iat) || !Number.isInteger(c.exp)) return E.left('not an nsm API token');
  const id = registry.byKey(c.iss);
  const key = publicKeyObject(c.iss);
  if (!id || id.actor !== c.sub || !key) return E.left('the token is not signed by an identity of this mesh');
  const v = await verifyJwt(token, key, { now, audience: API_AUDIENCE, requiredClaims: ['typ', 'iss', 'sub', 'aud'] });
  if (E.isLeft(v)) {
    const f = v.left;
    return E.left(f.kind === 'signature' ? 'the token signature does not verify' : f.kind === 'claim' && f.claim === 'aud' ? `not an nsm API token (its audience is not ${API_AUDIENCE})` : `not an nsm API token: ${f.message}`);
  }
  if (v.right.expired) return E.left('the token has expired; get a new one with: nsm token');
  const { iat, exp } = v.right.claims as { iat: number; exp: number };
  const problem =
    keyProblem(registry, c.iss, iat) ??
    issuedInTheFuture(iat, now) ??
    (exp - iat > MAX_API_TOKEN_SECONDS ? `lives longer than ${MAX_API_TOKEN_SECONDS} s (${MAX_TEXT})` : undefined) ??
    validTooLong(exp, now, MAX_API_TOKEN_SECONDS, MAX_TEXT);
  return problem ? E.left(`the token ${problem}`) : E.right(id.actor);
};
