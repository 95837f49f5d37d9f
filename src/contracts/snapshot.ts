// A snapshot of a read model as it is stored (src/read/snapshots.ts saves and loads them), and
// the decoder of its header: the model itself is only used when the projection version matches.
import * as E from 'fp-ts/lib/Either.js';
import * as D from './decode.ts';

export interface Snapshot {
  /** Projection version that built the model (MESH_PROJECTION_VERSION). */
  readonly version: number;
  /** Log position of the last commit folded into the model. */
  readonly position: number;
  readonly savedAt: string;
  readonly model: unknown;
}

const header = D.object({ version: D.integer({ min: 0, max: 1e6 }), position: D.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }), savedAt: D.string({ max: 64 }), model: (v, _p) => E.right(v) });

/** Only the header is decoded: the model was written by code of the same projection version, which is checked before it is used. */
export const decodeSnapshot = (bytes: Uint8Array, what: string): Snapshot => {
  const parsed = D.parseJson(bytes, Number.MAX_SAFE_INTEGER);
  const s = E.isRight(parsed) ? header(parsed.right, what) : parsed;
  if (E.isLeft(s)) throw new Error(`${what} is unreadable: ${D.formatDecodeError(s.left)}`);
  return s.right as Snapshot;
};

