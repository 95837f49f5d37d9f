// A seal of the audit chain as it is stored (src/audit/sealer.ts makes them, src/audit/verify.ts
// checks them), and its decoder: seals are read back from a store anyone with the right key
// could have written to.
import * as E from 'fp-ts/lib/Either.js';
import * as D from './decode.ts';

/** A seal: the (position, commit hash) pairs of a run of consecutive commits of the log. */
export interface Seal {
  /** Positions as decimal strings: log positions are 64-bit. */
  readonly from: string;
  readonly to: string;
  readonly entries: readonly (readonly [position: string, hash: string])[];
  readonly prevSealHash: string;
  readonly sealHash: string;
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

