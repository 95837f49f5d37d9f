// The audit export format (JSON Lines), written by `nsm audit export` and read back by
// `nsm audit verify --file`. Lines, in this order:
//   header  {"type":"nsm-audit-export","version":1,"domain":..,"exportedAt":..,"since"?:..,"until"?:..,
//            "fromPosition":"N","toPosition":"N","complete":bool}
//   event   {"type":"event","position":"N","revision":N,"stream":..,"commitId":..,"prevHash"?:..,"hash"?:..,
//            "index":i,"count":n,"event":{the stored envelope}}        one per event, in log order
//   seal    {"type":"seal","sequence":N,"seal":{from,to,entries,prevSealHash,sealHash}}
//                                                                       every seal overlapping the range
//   end     {"type":"end","commits":N,"events":N,"seals":N}
// prevHash/hash are the commit's (the events of one commit repeat them); `complete` says the
// range starts at the beginning of the log, so chains can be checked from their genesis.
import { createReadStream } from 'node:fs';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Writable } from 'node:stream';
import * as E from 'fp-ts/lib/Either.js';
import * as D from '../contracts/decode.ts';
import { asPosition, type EventEnvelope, type StoredCommit } from '../contracts/envelope.ts';
import type { InvalidSealRecord, SealRecord } from '../ports/sealStore.ts';
import { decodeSeal } from '../contracts/seal.ts';
import type { VerifiableCommit } from './verify.ts';

export const EXPORT_FORMAT = 'nsm-audit-export';
export const EXPORT_VERSION = 1;

export interface ExportHeader {
  readonly type: typeof EXPORT_FORMAT;
  readonly version: number;
  readonly domain: string;
  readonly exportedAt?: string;
  readonly since?: string;
  readonly until?: string;
  /** First and last position of the range (the commits in it may start later). */
  readonly fromPosition: string;
  readonly toPosition: string;
  readonly complete: boolean;
}

export interface ExportCounts {
  commits: number;
  events: number;
  seals: number;
}

const write = async (out: Writable, line: unknown) => {
  if (!out.write(JSON.stringify(line) + '\n')) await once(out, 'drain');
};

/** Streams the export: nothing is held beyond one commit. */
export const writeExport = async (
  out: Writable,
  o: {
    header: ExportHeader;
    commits: AsyncIterable<StoredCommit>;
    seals: AsyncIterable<SealRecord | InvalidSealRecord>;
    onProgress?: (c: ExportCounts & { position: bigint }) => void;
  },
): Promise<ExportCounts> => {
  const counts: ExportCounts = { commits: 0, events: 0, seals: 0 };
  const from = BigInt(o.header.fromPosition);
  const to = BigInt(o.header.toPosition);
  await write(out, o.header);
  for await (const c of o.commits) {
    counts.commits++;
    const { position, revision, stream, commitId, prevHash, hash, events } = c;
    for (let index = 0; index < events.length; index++) {
      counts.events++;
      await write(out, { type: 'event', position: position.toString(), revision, stream, commitId, ...(prevHash !== undefined ? { prevHash } : {}), ...(hash !== undefined ? { hash } : {}), index, count: events.length, event: events[index] });
    }
    if (counts.commits % 1000 === 0) o.onProgress?.({ ...counts, position });
  }
  for await (const r of o.seals) {
    // Only seals overlapping the range: they vouch for its commits.
    if ('seal' in r && (BigInt(r.seal.to) < from || BigInt(r.seal.from) > to)) continue;
    counts.seals++;
    await write(out, 'seal' in r ? { type: 'seal', sequence: r.sequence, seal: r.seal } : { type: 'seal', sequence: r.sequence, invalid: r.invalid });
  }
  await write(out, { type: 'end', ...counts });
  return counts;
};

const header = D.object(
  { type: D.literal(EXPORT_FORMAT), version: D.integer({ min: 1, max: EXPORT_VERSION }), domain: D.string({ min: 1, max: 64 }), fromPosition: D.string({ min: 1, max: 20, pattern: /^\d+$/ }), toPosition: D.string({ min: 1, max: 20, pattern: /^\d+$/ }), complete: D.boolean },
  { exportedAt: D.string({ max: 64 }), since: D.string({ max: 64 }), until: D.string({ max: 64 }) },
);

export class ExportFileError extends Error {}

interface EventLine {
  position: string;
  revision: number;
  stream: string;
  commitId: string;
  prevHash?: string;
  hash?: string;
  index: number;
  count: number;
  event: EventEnvelope;
}

const lines = async function* (path: string): AsyncIterable<{ n: number; value: Record<string, unknown> }> {
  const rl = createInterface({ input: createReadStream(path), crlfDelay: Infinity });
  let n = 0;
  try {
    for await (const text of rl) {
      n++;
      if (text.trim() === '') continue;
      const parsed = D.parseJson(text, 64 * 1024 * 1024);
      if (E.isLeft(parsed) || typeof parsed.right !== 'object' || parsed.right === null) {
        throw new ExportFileError(`${path} line ${n} is not a JSON object${E.isLeft(parsed) ? ` (${parsed.left.message})` : ''}`);
      }
      yield { n, value: parsed.right as Record<string, unknown> };
    }
  } finally {
    rl.close();
  }
};

export interface ExportFile {
  readonly header: ExportHeader;
  /** Event lines grouped back into commits (consecutive lines of one position). */
  commits(): AsyncIterable<VerifiableCommit>;
  seals(): AsyncIterable<SealRecord | InvalidSealRecord>;
  /** After commits() has been read to the end: whether the end line was there. */
  readonly sawEnd: () => boolean;
}

export const openExport = async (path: string): Promise<ExportFile> => {
  let first: Record<string, unknown> | undefined;
  for await (const l of lines(path)) {
    first = l.value;
    break;
  }
  if (!first) throw new ExportFileError(`${path} is empty`);
  const h = header(first, 'header');
  if (E.isLeft(h)) throw new ExportFileError(`${path} is not an nsm audit export (${D.formatDecodeError(h.left)})`);
  let sawEnd = false;

  async function* commits(): AsyncIterable<VerifiableCommit> {
    let group: EventLine[] = [];
    const flush = (): VerifiableCommit | undefined => {
      const g = group;
      group = [];
      const head = g[0];
      if (!head) return undefined;
      return {
        commitId: head.commitId,
        stream: head.stream,
        events: g.map((l) => l.event),
        ...(head.prevHash !== undefined ? { prevHash: head.prevHash } : {}),
        ...(head.hash !== undefined ? { hash: head.hash } : {}),
        revision: head.revision,
        position: asPosition(head.position),
        declaredEvents: head.count,
      };
    };
    for await (const { n, value } of lines(path)) {
      if (value.type === 'end') {
        sawEnd = true;
        continue;
      }
      if (value.type !== 'event') continue;
      const l = value as unknown as EventLine;
      if (typeof l.position !== 'string' || !/^\d+$/.test(l.position) || typeof l.stream !== 'string' || typeof l.event !== 'object' || l.event === null) {
        throw new ExportFileError(`${path} line ${n}: an event line needs position, stream and event`);
      }
      if (group.length > 0 && (group[0]!.position !== l.position || group[0]!.commitId !== l.commitId)) {
        const c = flush();
        if (c) yield c;
      }
      group.push(l);
    }
    const c = flush();
    if (c) yield c;
  }

  async function* seals(): AsyncIterable<SealRecord | InvalidSealRecord> {
    for await (const { value } of lines(path)) {
      if (value.type !== 'seal') continue;
      const sequence = typeof value.sequence === 'number' ? value.sequence : 0;
      const s = decodeSeal(value.seal, 'seal');
      yield E.isRight(s) ? { sequence, seal: s.right } : { sequence, invalid: typeof value.invalid === 'string' ? value.invalid : D.formatDecodeError(s.left) };
    }
  }

  return { header: h.right as ExportHeader, commits, seals, sawEnd: () => sawEnd };
};
