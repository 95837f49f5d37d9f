// The one token shape the mesh signs: a compact JWT with an EdDSA signature by an identity's key.
// Path tokens (./pathToken.ts) and API tokens (./apiToken.ts) differ only in their claims.
import type { Signer } from './keys.ts';

/** The encoded header every mesh token starts with; anything else is not one of ours. */
export const JWT_HEADER = Buffer.from(JSON.stringify({ alg: 'EdDSA', typ: 'JWT' })).toString('base64url');

export const signJwt = (claims: object, signer: Signer): string => {
  const input = `${JWT_HEADER}.${Buffer.from(JSON.stringify(claims)).toString('base64url')}`;
  return `${input}.${Buffer.from(signer.sign(Buffer.from(input))).toString('base64url')}`;
};
