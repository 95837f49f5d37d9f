// Bearer tokens of the HTTP API as functions: what `nsm token` signs verifies; a token dated
// forward, valid too long from now, expired, for another audience, of another algorithm, altered,
// or signed by a key the mesh does not know is refused, each with a reason.
import * as E from 'fp-ts/lib/Either.js';
import * as assert from 'uvu/assert';
import { API_AUDIENCE, apiToken, MAX_API_TOKEN_SECONDS, verifyApiToken } from '../../src/security/apiToken.ts';
import { registryOf, type Identity, type IdentityRegistry } from '../../src/security/identities.ts';
import { signJwt } from '../../src/security/jwt.ts';
import { createUserKey, signerFromSeed, type Signer } from '../../src/security/keys.ts';
import { suite } from '../lib/harness.ts';

type Who = { identity: Identity; signer: Signer };
const make = (role: Identity['role'], name: string): Who => {
  const k = createUserKey();
  return { identity: { name, role, actor: name, publicKey: k.publicKey }, signer: signerFromSeed(k.seed) };
};
const operator = make('operator', 'operator');
const alice = make('client', 'alice');
const outsider = make('client', 'mallory');
const registry: IdentityRegistry = (() => {
  const r = registryOf('d', [operator, alice].map((w) => w.identity));
  if (E.isLeft(r)) throw new Error(r.left);
  return r.right;
})();

const now = new Date('2026-03-01T12:00:00Z');
const at = (s: number) => new Date(now.getTime() + s * 1000);
const nowS = Math.floor(now.getTime() / 1000);
const bearer = (t: string) => `Bearer ${t}`;

/** A token with exactly these claims, signed by `who` (what a key holder can make by hand). */
const handMade = (who: Who, claims: Record<string, unknown>) =>
  signJwt({ typ: 'nsm-api', iss: who.signer.publicKey, sub: who.identity.actor, aud: API_AUDIENCE, ...claims }, who.signer);

const accepted = async (header: string, actor: string, when = now) => {
  const r = await verifyApiToken(header, registry, when);
  assert.equal(r, E.right(actor));
};
const refused = async (header: string | undefined, says: RegExp, when = now) => {
  const r = await verifyApiToken(header, registry, when);
  assert.ok(E.isLeft(r), `refused: ${JSON.stringify(r)}`);
  if (E.isLeft(r)) assert.match(r.left, says);
};

const s = suite('API tokens');

s('a token from nsm token verifies for its actor, up to its expiry', async () => {
  await accepted(bearer(apiToken(operator.signer, 'operator', now, 900)), 'operator');
  await accepted(bearer(apiToken(alice.signer, 'alice', now, MAX_API_TOKEN_SECONDS)), 'alice');
  await accepted(bearer(apiToken(alice.signer, 'alice', now, 900)), 'alice', at(899));
  await refused(bearer(apiToken(alice.signer, 'alice', now, 900)), /the token has expired; get a new one with: nsm token/, at(900));
});

s('dated forward: a token issued in the future is refused, within 60 s of skew accepted', async () => {
  // A key holder mints a token "issued" a year from now, valid for an hour from then.
  const yearAhead = handMade(alice, { iat: nowS + 365 * 86400, exp: nowS + 365 * 86400 + 3600 });
  await refused(bearer(yearAhead), /the token was issued in the future \(2027-03-01T12:00:00\.000Z, 31536000 s after this host's clock\)/);
  await refused(bearer(handMade(alice, { iat: nowS + 61, exp: nowS + 61 + 600 })), /issued in the future/);
  // A signer whose clock runs a little ahead.
  await accepted(bearer(handMade(alice, { iat: nowS + 60, exp: nowS + 60 + 600 })), 'alice');
  await accepted(bearer(apiToken(alice.signer, 'alice', at(30), 3600)), 'alice');
});

s('a token valid for longer than the maximum from now is refused, however it is dated', async () => {
  // iat within the skew, exp - iat exactly the maximum: exp - now exceeds it.
  await refused(bearer(handMade(alice, { iat: nowS + 30, exp: nowS + 30 + MAX_API_TOKEN_SECONDS })), /the token is valid for more than 24 h from now/);
  await refused(bearer(handMade(alice, { iat: nowS, exp: nowS + MAX_API_TOKEN_SECONDS + 1 })), /lives longer than 86400 s|valid for more than 24 h/);
  // Issued long ago with a lifetime far above the maximum, but not yet expired.
  await refused(bearer(handMade(alice, { iat: nowS - 10 * 86400, exp: nowS + 3600 })), /lives longer than 86400 s/);
});

s('wrong audience, type, issuer, subject, algorithm or signature: refused', async () => {
  await refused(undefined, /this mesh requires "Authorization: Bearer <token>"; get one with: nsm token/);
  await refused('Basic b3BlcmF0b3I6cGFzc3dvcmQ=', /requires "Authorization: Bearer <token>"/);
  await refused(bearer(handMade(alice, { iat: nowS, exp: nowS + 600, aud: 'somewhere-else' })), /not an nsm API token/);
  await refused(bearer(handMade(alice, { iat: nowS, exp: nowS + 600, typ: 'nsm-path' })), /not an nsm API token/);
  await refused(bearer(handMade(alice, { iat: nowS, exp: nowS + 600, sub: 'operator' })), /not signed by an identity of this mesh/);
  await refused(bearer(handMade(outsider, { iat: nowS, exp: nowS + 600 })), /not signed by an identity of this mesh/);
  await refused(bearer(handMade(alice, { iat: 'yesterday', exp: nowS + 600 })), /not an nsm API token/);
  // alg none, and an HMAC header over the same claims.
  const good = apiToken(alice.signer, 'alice', now, 600);
  const [, payload, sig] = good.split('.') as [string, string, string];
  const header = (h: object) => Buffer.from(JSON.stringify(h)).toString('base64url');
  await refused(bearer(`${header({ alg: 'none', typ: 'JWT' })}.${payload}.`), /requires "Authorization: Bearer <token>"|not an EdDSA JWT/);
  await refused(bearer(`${header({ alg: 'none', typ: 'JWT' })}.${payload}.${sig}`), /not an EdDSA JWT/);
  await refused(bearer(`${header({ alg: 'HS256', typ: 'JWT' })}.${payload}.${sig}`), /not an EdDSA JWT/);
  // Altered claims (a longer expiry) under the original signature.
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
  const altered = `${good.split('.')[0]}.${Buffer.from(JSON.stringify({ ...claims, exp: nowS + 3000 })).toString('base64url')}.${sig}`;
  await refused(bearer(altered), /the token signature does not verify/);
  await refused(bearer(`${good.split('.')[0]}.${payload}.${sig.slice(0, -4)}AAAA`), /the token signature does not verify/);
  await refused(bearer('a.b.c'), /not an EdDSA JWT|payload is not JSON/);
});

s.run();
