// The seal store port. Adapter: infra/nats/seals.ts; a seal's stored shape: src/contracts/seal.ts.
import type { Seal } from '../contracts/seal.ts';

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

export const isInvalidSeal = (r: SealRecord | InvalidSealRecord): r is InvalidSealRecord => 'invalid' in r;
