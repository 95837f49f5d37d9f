// Bearer tokens for the HTTP API of an authenticated mesh: a short-lived EdDSA JWT that an
// identity signs with its own key (`nsm token`); the API answers with that identity's scope.
import * as E from 'fp-ts/lib/Either.js';
import type { IdentityRegistry } from './identities.ts';
import { JWT_HEADER, signJwt } from './jwt.ts';
import { verifySignature, type Signer } from './keys.ts';

export const API_AUDIENCE = 'nsm-http';
/** Longest lifetime the API accepts: a leaked token is worth little for long. */
export const MAX_API_TOKEN_SECONDS = 24 * 3600;

export const apiToken = (signer: Signer, actor: string, now: Date, ttlSeconds: number): string => {
  const iat = Math.floor(now.getTime() / 1000);
  return signJwt({ typ: 'nsm-api', iss: signer.publicKey, sub: actor, aud: API_AUDIENCE, iat, exp: iat + ttlSeconds }, signer);
};

/** The actor an `Authorization: Bearer` header proves, or why it proves nothing. */
export const verifyApiToken = (header: string | undefined, registry: IdentityRegistry, now: Date): E.Either<string, string> => {
  const m = /^Bearer ([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/.exec(header ?? '');
  if (!m) return E.left('this mesh requires "Authorization: Bearer <token>"; get one with: nsm token');
  const [, h, p, sig] = m as unknown as [string, string, string, string];
  if (h !== JWT_HEADER) return E.left('not an EdDSA JWT');
  let c: { typ?: unknown; iss?: unknown; sub?: unknown; aud?: unknown; iat?: unknown; exp?: unknown };
  try {
    c = JSON.parse(Buffer.from(p, 'base64url').toString('utf8'));
  } catch {
    return E.left('the token payload is not JSON');
  }
  if (c.typ !== 'nsm-api' || c.aud !== API_AUDIENCE || typeof c.iss !== 'string' || typeof c.sub !== 'string' || !Number.isInteger(c.iat) || !Number.isInteger(c.exp)) {
    return E.left('not an nsm API token');
  }
  const id = registry.byKey(c.iss);
  if (!id || id.actor !== c.sub) return E.left('the token is not signed by an identity of this mesh');
  if (!verifySignature(c.iss, Buffer.from(`${h}.${p}`), Buffer.from(sig, 'base64url'))) return E.left('the token signature does not verify');
  const nowS = Math.floor(now.getTime() / 1000);
  if ((c.exp as number) <= nowS) return E.left('the token has expired; get a new one with: nsm token');
  if ((c.exp as number) - (c.iat as number) > MAX_API_TOKEN_SECONDS) return E.left(`the token lives longer than ${MAX_API_TOKEN_SECONDS} s`);
  return E.right(id.actor);
};
