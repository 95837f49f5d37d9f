// The audit operations over a live store and its seals, or over an export file: what
// `nsm audit verify` and `nsm audit export` run.
import type { Writable } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import type { EventStore } from '../ports/eventStore.ts';
import { EXPORT_FORMAT, EXPORT_VERSION, openExport, writeExport, type ExportCounts, type ExportHeader } from './exportFile.ts';
import { resolveBound, type Bound } from '../read/replay.ts';
import type { SealStore } from '../ports/sealStore.ts';
import { verifyLog, type VerifyReport } from './verify.ts';

/** Everything stored when called, checked against every seal. */
export const verifyStore = async (
  store: EventStore,
  seals: SealStore,
  o: { foreign?: () => readonly { position: bigint; reason: string }[] } = {},
): Promise<E.Either<string, VerifyReport>> => {
  const last = await store.lastPosition()();
  if (E.isLeft(last)) return E.left(`event store: ${last.left.message}`);
  return E.right(await verifyLog({ commits: store.readAll(0n, last.right), seals: seals.readAll(), until: last.right, ...(o.foreign ? { foreign: o.foreign } : {}) }));
};

export const verifyExportFile = async (path: string): Promise<VerifyReport> => {
  const f = await openExport(path);
  return verifyLog({
    commits: f.commits(),
    seals: f.seals(),
    until: BigInt(f.header.toPosition),
    ...(f.header.complete ? {} : { partialFrom: BigInt(f.header.fromPosition) }),
    truncated: () => !f.sawEnd(),
  });
};

export interface ExportRange {
  /** Commits stored at or after this moment (default: the beginning of the log). */
  readonly since?: Bound;
  /** ...and at or before this one (default: the end of the log when the export starts). */
  readonly until?: Bound;
}

const describe = (b: Bound | undefined) => (b === undefined ? undefined : 'position' in b ? b.position.toString() : b.time.toISOString());

export const exportRange = async (
  store: EventStore,
  seals: SealStore,
  o: ExportRange & { domain: string; out: Writable; now?: () => Date; onProgress?: (c: ExportCounts & { position: bigint; to: bigint }) => void },
): Promise<E.Either<string, ExportCounts & { from: bigint; to: bigint }>> => {
  // `since` is inclusive: start after the last commit before it.
  let after = 0n;
  if (o.since) {
    if ('position' in o.since) after = o.since.position > 0n ? o.since.position - 1n : 0n;
    else {
      const r = await resolveBound(store, { time: new Date(o.since.time.getTime() - 1) });
      if (E.isLeft(r)) return r;
      if (r.right.beforeTime) return E.left('this event store cannot find a position by time; give --since as a log position');
      after = r.right.position;
    }
  }
  const end = await resolveBound(store, o.until ?? { position: BigInt(Number.MAX_SAFE_INTEGER) });
  if (E.isLeft(end)) return end;
  if (end.right.beforeTime) return E.left('this event store cannot find a position by time; give --until as a log position');
  const to = end.right.position;
  const header: ExportHeader = {
    type: EXPORT_FORMAT,
    version: EXPORT_VERSION,
    domain: o.domain,
    exportedAt: (o.now ?? (() => new Date()))().toISOString(),
    ...(o.since ? { since: describe(o.since)! } : {}),
    ...(o.until ? { until: describe(o.until)! } : {}),
    fromPosition: (after + 1n).toString(),
    toPosition: to.toString(),
    complete: after === 0n,
  };
  const counts = await writeExport(o.out, {
    header,
    commits: to > after ? store.readAll(after, to) : (async function* () {})(),
    seals: seals.readAll(),
    ...(o.onProgress ? { onProgress: (c: ExportCounts & { position: bigint }) => o.onProgress!({ ...c, to }) } : {}),
  });
  return E.right({ ...counts, from: after + 1n, to });
};
