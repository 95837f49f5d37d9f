// Verifies the audit trail: every commit's hash against its content, every in-stream link
// (prevHash and version continuity), and the log's sequence of (position, hash) against the
// seals and the seal chain. Pure over async iterables, so it runs the same on a live store and
// on an export file. Memory: one entry per stream plus the seal entries not yet matched.
import type { StoredCommit } from '../contracts/envelope.ts';
import { commitHash, GENESIS_HASH, sealHashOf } from './hash.ts';
import type { Seal } from '../contracts/seal.ts';
import { isInvalidSeal, type InvalidSealRecord, type SealRecord } from '../ports/sealStore.ts';

export type FindingKind =
  /** A commit's content no longer matches its hash, its successor's link, or its seal. */
  | 'altered'
  /** A commit (or an event of one) that the chain or a seal says existed is missing. */
  | 'removed'
  /** A commit stands at a place in the log other than the one it was chained or sealed at. */
  | 'reordered'
  /** A commit no seal covers although seals cover the positions around it. */
  | 'inserted'
  /** A seal does not match its own hash, does not chain to the previous seal, or is unreadable. */
  | 'seal-broken'
  /** An export file that ends before its end line. */
  | 'truncated';

export interface Finding {
  readonly kind: FindingKind;
  /** Log position (decimal) the finding is about, when it is about one commit. */
  readonly position?: string;
  readonly stream?: string;
  readonly version?: number;
  readonly message: string;
}

export interface VerifyCounts {
  commits: number;
  events: number;
  streams: number;
  seals: number;
  /** Commits matched against a seal. */
  sealed: number;
  /** Commits after the last seal: not sealed yet (the sealer runs every second or so). */
  unsealed: number;
  /** Commits written before hash chaining: covered by seals only, if sealed at all. */
  unchained: number;
}

export interface VerifyReport {
  readonly ok: boolean;
  /** Ordered by position; the first one is the first broken link. */
  readonly findings: readonly Finding[];
  /** Findings beyond the reporting cap, counted only. */
  readonly moreFindings: number;
  readonly counts: VerifyCounts;
  readonly firstPosition?: string;
  readonly lastPosition?: string;
  readonly firstUnchained?: string;
}

/** A stored commit; from an export file also how many events its lines declared. */
export type VerifiableCommit = StoredCommit & { readonly declaredEvents?: number };

export interface VerifyInput {
  readonly commits: AsyncIterable<VerifiableCommit>;
  readonly seals: AsyncIterable<SealRecord | InvalidSealRecord>;
  /**
   * The commits start at this position, not at the beginning of the log (a partial export):
   * links into earlier commits and the seal chain's start cannot be checked.
   */
  readonly partialFrom?: bigint;
  /** Last position checked: seal entries after it belong to commits appended since. */
  readonly until?: bigint;
  /** The input was cut short (an export without its end line); asked after the commits are read. */
  readonly truncated?: boolean | (() => boolean);
  /**
   * Messages of the log that are not commits, stepped over by the reader (asked after the commits
   * are read): something other than the control plane wrote them (docs/security.md).
   */
  readonly foreign?: () => readonly { readonly position: bigint; readonly reason: string }[];
  readonly maxFindings?: number;
}

/** How many commits later a sealed position still unmatched counts as removed, not late. */
const REORDER_WINDOW = 1024;

interface StreamTip {
  lastVersion: number;
  lastHash: string;
  lastPosition: bigint;
}

export const verifyLog = async (input: VerifyInput): Promise<VerifyReport> => {
  const maxFindings = input.maxFindings ?? 10_000;
  const findings: Finding[] = [];
  let moreFindings = 0;
  const add = (f: Finding) => {
    if (findings.length < maxFindings) findings.push(f);
    else moreFindings++;
  };
  const counts: VerifyCounts = { commits: 0, events: 0, streams: 0, seals: 0, sealed: 0, unsealed: 0, unchained: 0 };
  const partial = input.partialFrom !== undefined && input.partialFrom > 1n;
  const inRange = (p: bigint) => (input.partialFrom === undefined || p >= input.partialFrom) && (input.until === undefined || p <= input.until);

  // ---- seals, pulled as far as the commits need them ----
  const sealIter = input.seals[Symbol.asyncIterator]();
  let sealsDone = false;
  let prevSeal: Seal | undefined;
  let sealedUpTo = -1n;
  /** Sealed positions not yet matched by a commit -> hash. */
  const expected = new Map<bigint, string>();
  /** Hash -> sealed position for the most recent seal entries: names a commit found at the wrong position. */
  const recentSealed = new Map<string, bigint>();
  const recentOrder: string[] = [];
  /** Sealed positions in seal order, to find those the commits move past. */
  const sealedQueue: bigint[] = [];
  let sealedHead = 0;
  /** Sealed positions the commits have moved past, with the commit count at that moment. */
  const passed: { position: bigint; at: number }[] = [];
  let passedHead = 0;

  const takeSeal = (r: SealRecord | InvalidSealRecord) => {
    counts.seals++;
    if (isInvalidSeal(r)) {
      add({ kind: 'seal-broken', message: `seal #${r.sequence} is unreadable: ${r.invalid}` });
      return;
    }
    const s = r.seal;
    const where = `seal #${r.sequence} (positions ${s.from}..${s.to})`;
    if (sealHashOf(s) !== s.sealHash) add({ kind: 'seal-broken', position: s.from, message: `${where} does not match its own sealHash: the seal was altered` });
    if (prevSeal) {
      if (s.prevSealHash !== prevSeal.sealHash) add({ kind: 'seal-broken', position: s.from, message: `${where} does not chain to the seal before it (positions ${prevSeal.from}..${prevSeal.to}): a seal was removed, inserted or altered` });
      if (BigInt(s.from) <= BigInt(prevSeal.to)) add({ kind: 'seal-broken', position: s.from, message: `${where} overlaps the seal before it (which ends at ${prevSeal.to})` });
    } else if (!partial && s.prevSealHash !== GENESIS_HASH) {
      add({ kind: 'seal-broken', position: s.from, message: `${where} is the first seal but does not start the chain: earlier seals are missing` });
    }
    let prev = -1n;
    for (const [ps, hash] of s.entries) {
      const p = BigInt(ps);
      if (p <= prev) add({ kind: 'seal-broken', position: ps, message: `${where} lists position ${ps} out of order` });
      prev = p;
      if (!inRange(p)) continue;
      expected.set(p, hash);
      sealedQueue.push(p);
      recentSealed.set(hash, p);
      recentOrder.push(hash);
      if (recentOrder.length > 4 * REORDER_WINDOW) {
        const old = recentOrder.splice(0, REORDER_WINDOW);
        for (const x of old) recentSealed.delete(x);
      }
    }
    if (s.entries[0]?.[0] !== s.from || s.entries[s.entries.length - 1]?.[0] !== s.to) add({ kind: 'seal-broken', position: s.from, message: `${where}: from/to do not match its entries` });
    if (BigInt(s.to) > sealedUpTo) sealedUpTo = BigInt(s.to);
    prevSeal = s;
  };
  const sealsThrough = async (p: bigint) => {
    while (!sealsDone && sealedUpTo < p) {
      const n = await sealIter.next();
      if (n.done) sealsDone = true;
      else takeSeal(n.value);
    }
  };
  const takeExpected = (p: bigint): string | undefined => {
    const h = expected.get(p);
    if (h !== undefined) expected.delete(p);
    return h;
  };
  const reportRemovedSeal = (p: bigint) => {
    const h = takeExpected(p);
    if (h !== undefined) add({ kind: 'removed', position: p.toString(), message: `the commit sealed at position ${p} is missing` });
  };

  // ---- streams ----
  const tips = new Map<string, StreamTip>();
  /** Versions a stream skipped, until a late commit fills them or the end says they are gone. */
  const gaps = new Map<string, { from: number; to: number; before: bigint }[]>();

  let maxSeen: bigint | undefined;
  let firstPosition: bigint | undefined;
  let firstUnchained: bigint | undefined;

  for await (const c of input.commits) {
    const p = c.position;
    const ps = p.toString();
    counts.commits++;
    counts.events += c.events.length;
    firstPosition ??= p;
    await sealsThrough(p);
    const first = c.events[0];
    const last = c.events[c.events.length - 1];
    const at = { position: ps, stream: c.stream, ...(first ? { version: first.version } : {}) };
    let named = false; // a specific finding already names what is wrong with this commit

    // Log order.
    const late = maxSeen !== undefined && p <= maxSeen;
    if (late) {
      add({ kind: 'reordered', ...at, message: `the commit at position ${ps} comes after position ${maxSeen}` });
      named = true;
    } else {
      maxSeen = p;
      // Sealed positions we moved past without seeing them may still come, late; judge them later.
      while (sealedHead < sealedQueue.length && sealedQueue[sealedHead]! < p) {
        const q = sealedQueue[sealedHead++]!;
        if (expected.has(q)) passed.push({ position: q, at: counts.commits });
      }
      if (sealedHead > 4096) {
        sealedQueue.splice(0, sealedHead);
        sealedHead = 0;
      }
    }

    // Events inside the commit.
    const versions = c.events.map((e) => e.version);
    if (c.declaredEvents !== undefined && c.events.length !== c.declaredEvents) {
      const missing = c.declaredEvents - c.events.length;
      add({ kind: missing > 0 ? 'removed' : 'inserted', ...at, message: `the commit at position ${ps} declares ${c.declaredEvents} events but has ${c.events.length}` });
      named = true;
    } else if (versions.some((v, i) => i > 0 && v !== versions[i - 1]! + 1)) {
      const sorted = [...versions].sort((a, b) => a - b);
      const contiguous = sorted.every((v, i) => i === 0 || v === sorted[i - 1]! + 1);
      add({ kind: contiguous ? 'reordered' : 'removed', ...at, message: contiguous ? `events of the commit at position ${ps} are out of order (versions ${versions.join(',')})` : `the commit at position ${ps} skips event versions (${versions.join(',')})` });
      named = true;
    }

    // Content against its own hash.
    const computed = commitHash(c);
    if (c.hash === undefined) {
      counts.unchained++;
      firstUnchained ??= p;
    } else if (c.hash !== computed && !named) {
      add({ kind: 'altered', ...at, message: `the commit at position ${ps} (${c.stream} v${first?.version}) no longer matches its hash: its content was changed` });
      named = true;
    }

    // Against the seals.
    const sealed = takeExpected(p);
    if (sealed !== undefined) {
      counts.sealed++;
      if (sealed !== computed && !named) {
        const elsewhere = recentSealed.get(computed);
        if (elsewhere !== undefined && elsewhere !== p) add({ kind: 'reordered', ...at, message: `position ${ps} holds the commit sealed at position ${elsewhere}` });
        else add({ kind: 'altered', ...at, message: `the commit at position ${ps} differs from what was sealed (its hash was recomputed after a change)` });
        named = true;
      }
    } else if (p <= sealedUpTo && inRange(p)) {
      if (!named) add({ kind: 'inserted', ...at, message: `the commit at position ${ps} is in no seal although seals cover the log around it` });
      named = true;
    } else if (p > sealedUpTo) counts.unsealed++;

    // Link to the previous commit of its stream.
    if (first && last) {
      const tip = tips.get(c.stream);
      if (!tip) {
        counts.streams++;
        if (first.version === 1) {
          if (c.prevHash !== undefined && c.prevHash !== GENESIS_HASH && !named) {
            add({ kind: 'altered', ...at, message: `the first commit of ${c.stream} (position ${ps}) does not start its chain` });
          }
        } else if (!partial) {
          (gaps.get(c.stream) ?? gaps.set(c.stream, []).get(c.stream)!).push({ from: 1, to: first.version - 1, before: p });
        }
      } else if (first.version === tip.lastVersion + 1) {
        if (c.prevHash !== undefined && c.prevHash !== tip.lastHash && !named) {
          add({
            kind: 'altered',
            position: tip.lastPosition.toString(),
            stream: c.stream,
            version: tip.lastVersion,
            message: `the commit at position ${tip.lastPosition} (${c.stream}) is not the one its successor at position ${ps} chained to: it was rewritten`,
          });
        }
      } else if (first.version > tip.lastVersion + 1) {
        (gaps.get(c.stream) ?? gaps.set(c.stream, []).get(c.stream)!).push({ from: tip.lastVersion + 1, to: first.version - 1, before: p });
      } else {
        // An earlier version arriving now: it fills a gap (reordered) or repeats one.
        const g = gaps.get(c.stream);
        const filled = g?.findIndex((x) => first.version >= x.from && first.version <= x.to) ?? -1;
        if (filled >= 0) g!.splice(filled, 1);
        if (!late) add({ kind: filled >= 0 ? 'reordered' : 'inserted', ...at, message: filled >= 0 ? `${c.stream} v${first.version} at position ${ps} comes after v${tip.lastVersion}` : `${c.stream} v${first.version} at position ${ps} repeats a version already seen` });
      }
      if (!tip || first.version > tip.lastVersion) tips.set(c.stream, { lastVersion: last.version, lastHash: c.hash ?? computed, lastPosition: p });
    }

    // Sealed positions passed long enough ago are not late: they are gone.
    while (passedHead < passed.length && passed[passedHead]!.at + REORDER_WINDOW < counts.commits) reportRemovedSeal(passed[passedHead++]!.position);
    if (passedHead > 4096) {
      passed.splice(0, passedHead);
      passedHead = 0;
    }
  }

  // ---- the end ----
  for (; passedHead < passed.length; passedHead++) reportRemovedSeal(passed[passedHead]!.position);
  // Seals cover commits the reading never reached: removed from the end (up to `until`).
  await sealsThrough(input.until ?? maxSeen ?? -1n);
  const end = input.until ?? maxSeen;
  for (const p of [...expected.keys()].sort((a, b) => (a < b ? -1 : 1))) if (end !== undefined && p <= end) reportRemovedSeal(p);
  // Drain the remaining seals too: their chain must hold even past the last commit read.
  while (!sealsDone) {
    const n = await sealIter.next();
    if (n.done) sealsDone = true;
    else takeSeal(n.value);
  }
  for (const [stream, g] of gaps) {
    for (const x of g) {
      add({ kind: 'removed', position: x.before.toString(), stream, version: x.to, message: `${stream} v${x.from === x.to ? x.from : `${x.from}..${x.to}`} is missing before position ${x.before}` });
    }
  }
  if (typeof input.truncated === 'function' ? input.truncated() : input.truncated) add({ kind: 'truncated', message: 'the export ends before its end line: commits after the last one read may be missing' });
  for (const f of input.foreign?.() ?? []) {
    add({ kind: 'inserted', position: f.position.toString(), message: `position ${f.position} holds a message that is not a commit (${f.reason}): something other than the control plane wrote to the log` });
  }

  const order = (f: Finding) => (f.position === undefined ? Number.MAX_SAFE_INTEGER : Number(f.position));
  findings.sort((a, b) => order(a) - order(b));
  return {
    ok: findings.length === 0 && moreFindings === 0,
    findings,
    moreFindings,
    counts,
    ...(firstPosition !== undefined ? { firstPosition: firstPosition.toString() } : {}),
    ...(maxSeen !== undefined ? { lastPosition: maxSeen.toString() } : {}),
    ...(firstUnchained !== undefined ? { firstUnchained: firstUnchained.toString() } : {}),
  };
};

export const describeFinding = (f: Finding): string =>
  `${f.kind}${f.position !== undefined ? ` at position ${f.position}` : ''}${f.stream ? ` (${f.stream}${f.version !== undefined ? ` v${f.version}` : ''})` : ''}: ${f.message}`;
