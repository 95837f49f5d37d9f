// ed25519 identities as NATS nkeys: the seed authenticates the identity to nats-server and the
// same key signs path tokens. Signing runs in node:crypto (native); tokens are verified by jose
// (./jwt.ts) with the KeyObject made here; the nkeys library bundled with nats.js only creates
// keys and checks their encoding.
import { createPrivateKey, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { nkeys } from 'nats';

interface NkeyPair {
  getPublicKey(): string;
  getSeed(): Uint8Array;
}
const lib = nkeys as { createUser(): NkeyPair; fromSeed(seed: Uint8Array): NkeyPair; fromPublic(pub: string): unknown };

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const base32Decode = (s: string): Uint8Array => {
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of s) {
    const v = B32.indexOf(ch);
    if (v < 0) throw new Error('not base32');
    value = (value << 5) | v;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Uint8Array.from(out);
};

export const USER_KEY_PATTERN = /^U[A-Z2-7]{55}$/;
export const USER_SEED_PATTERN = /^SU[A-Z2-7]{56}$/;

/** A new user nkey: the seed ("SU...") is the secret, the public key ("U...") names the identity. */
export const createUserKey = (): { seed: string; publicKey: string } => {
  const kp = lib.createUser();
  return { seed: new TextDecoder().decode(kp.getSeed()), publicKey: kp.getPublicKey() };
};

export const isUserPublicKey = (s: string): boolean => {
  if (!USER_KEY_PATTERN.test(s)) return false;
  try {
    lib.fromPublic(s);
    return true;
  } catch {
    return false;
  }
};

export interface Signer {
  /** The nkey public key ("U..."), as listed in the identity registry. */
  readonly publicKey: string;
  sign(data: Uint8Array): Uint8Array;
}

const PKCS8_ED25519 = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_ED25519 = Buffer.from('302a300506032b6570032100', 'hex');

/** A signer from a user seed; the seed itself is not kept in a readable form. */
export const signerFromSeed = (seed: string): Signer => {
  const trimmed = seed.trim();
  if (!USER_SEED_PATTERN.test(trimmed)) throw new Error('not an nkey user seed (expected "SU" and 56 base32 characters)');
  const kp = lib.fromSeed(new TextEncoder().encode(trimmed));
  // Seed encoding: 2 prefix bytes, the 32-byte ed25519 seed, 2 checksum bytes.
  const raw = base32Decode(trimmed).subarray(2, 34);
  const key: KeyObject = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, raw]), format: 'der', type: 'pkcs8' });
  raw.fill(0);
  const publicKey = kp.getPublicKey();
  return { publicKey, sign: (data) => new Uint8Array(sign(null, data, key)) };
};

const publicKeys = new Map<string, KeyObject>();
/** The ed25519 key of an nkey user public key (what token verification takes); undefined when it is not a valid one. */
export const publicKeyObject = (pub: string): KeyObject | undefined => {
  const known = publicKeys.get(pub);
  if (known) return known;
  if (!isUserPublicKey(pub)) return undefined;
  // Public key encoding: 1 prefix byte, the 32-byte key, 2 checksum bytes.
  const raw = base32Decode(pub).subarray(1, 33);
  const key = createPublicKey({ key: Buffer.concat([SPKI_ED25519, raw]), format: 'der', type: 'spki' });
  publicKeys.set(pub, key);
  return key;
};
