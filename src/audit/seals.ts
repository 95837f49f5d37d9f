// The seal store port and the decoding of stored seals. Adapter: infra/nats/seals.ts.
import * as E from 'fp-ts/lib/Either.js';
import * as D from '../contracts/decode.ts';
import type { Seal } from './hash.ts';

export interface SealRecord {
  /** Order of the seal in the seal store (JetStream stream sequence). */
  readonly sequence: number;
  readonly seal: Seal;
}

/** A stored seal that could not be read: verify reports it as a broken seal. */
export interface InvalidSealRecord {
  readonly sequence: number;
  readonly invalid: string;
}

export type SealAppend = { readonly kind: 'appended'; readonly sequence: number; readonly duplicate: boolean } | { readonly kind: 'conflict' };

/**
 * Where the seal chain stands: the newest readable seal, and the sequence an append must come
 * after. The two differ when something other than a sealer wrote to the seal stream (a foreign
 * message cannot be removed: the stream denies deletes; docs/security.md "What a stolen key can
 * do"): the chain carries on from the newest readable seal, and verify reports the foreign one.
 */
export interface SealTip {
  /** Sequence of the last message on the seal subject: what the next append expects. */
  readonly sequence: number;
  /** The newest readable seal, absent when there is none. */
  readonly seal?: Seal;
  /** Unreadable messages stepped over after that seal. */
  readonly foreign?: number;
}

export interface SealStore {
  last(): Promise<SealTip | undefined>;
  /** Appends if the last seal is still the one at `afterSequence` (0: no seal yet). */
  append(seal: Seal, afterSequence: number): Promise<SealAppend>;
  /** Every seal stored when called, in order. */
  readAll(): AsyncIterable<SealRecord | InvalidSealRecord>;
}

const position = D.string({ min: 1, max: 20, pattern: /^\d+$/, patternHint: 'a log position' });
const hex64 = D.string({ min: 64, max: 64, pattern: /^[0-9a-f]{64}$/, patternHint: 'a sha256 in hex' });
const entry: D.Decoder<readonly [string, string]> = (v, path) => {
  if (!Array.isArray(v) || v.length !== 2) return E.left({ path, message: 'expected [position, hash]' });
  const p = position(v[0], `${path}[0]`);
  if (E.isLeft(p)) return p;
  const h = hex64(v[1], `${path}[1]`);
  if (E.isLeft(h)) return h;
  return E.right([p.right, h.right] as const);
};

export const decodeSeal: D.Decoder<Seal> = D.object({
  from: position,
  to: position,
  entries: D.array(entry, { min: 1, max: 100_000 }),
  prevSealHash: hex64,
  sealHash: hex64,
});

export const isInvalidSeal = (r: SealRecord | InvalidSealRecord): r is InvalidSealRecord => 'invalid' in r;
