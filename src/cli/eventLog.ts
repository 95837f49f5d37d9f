// The event log and its seals as nsm replay, nsm audit and nsm projections read them: straight
// from JetStream (read-only), so they answer with the control plane down, and verify checks what
// is stored rather than what a control plane says.
import * as E from 'fp-ts/lib/Either.js';
import { jetStreamEventStore } from '../../infra/eventstore/jetstream.ts';
import type { MeshClient } from '../client/index.ts';
import { parseBound } from '../read/replay.ts';
import { fail, type Ctx } from './kit.ts';

/** JSON for people and scripts; log positions are bigints. */
export const jsonText = (v: unknown) => JSON.stringify(v, (_k, x) => (typeof x === 'bigint' ? x.toString() : x), 2);

/** --since/--until: a time or a log position. */
export const bound = (text: string | undefined, flag: string) => {
  if (text === undefined) return undefined;
  const b = parseBound(text, flag);
  return E.isRight(b) ? b.right : fail(b.left);
};

/** A message of the log that is not a commit is stepped over; verify reports it, the others say so on stderr. */
export type Foreign = { readonly position: bigint; readonly reason: string };

export const openLog = async (ctx: Ctx, c: MeshClient, onForeign?: (f: Foreign) => void) => {
  const warn = (f: Foreign) => ctx.warn(`nsm: position ${f.position} of the log is not a commit (${f.reason}): stepped over; nsm audit verify reports it`);
  try {
    return await jetStreamEventStore(c.nc, c.subjects, { create: false, onForeign: onForeign ?? warn });
  } catch (e) {
    return fail((e as Error).message);
  }
};
