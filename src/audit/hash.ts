// The hashes of the audit trail: each commit is chained to the previous commit of its stream,
// and seals chain runs of consecutive log positions into one global chain (see docs/audit.md).
import { createHash } from 'node:crypto';
import { canonicalJson } from '../contracts/canonicalJson.ts';
import type { Commit } from '../contracts/envelope.ts';
import type { Seal } from '../contracts/seal.ts';

/** prevHash of the first commit of a stream, and prevSealHash of the first seal. */
export const GENESIS_HASH = '0'.repeat(64);

export const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/**
 * The hash a commit must carry: over commitId, stream, events and prevHash. A commit written
 * before chaining has no prevHash; its content hash then covers the other three, which is what
 * seals record for it.
 */
export const commitHash = (c: Pick<Commit, 'commitId' | 'stream' | 'events' | 'prevHash'>): string =>
  sha256(canonicalJson({ commitId: c.commitId, stream: c.stream, events: c.events, prevHash: c.prevHash }));

export const sealHashOf = (s: Pick<Seal, 'from' | 'to' | 'entries' | 'prevSealHash'>): string =>
  sha256(canonicalJson({ from: s.from, to: s.to, entries: s.entries, prevSealHash: s.prevSealHash }));

export const makeSeal = (entries: Seal['entries'], prevSealHash: string): Seal => {
  const from = entries[0]![0];
  const to = entries[entries.length - 1]![0];
  return { from, to, entries, prevSealHash, sealHash: sealHashOf({ from, to, entries, prevSealHash }) };
};
