// Membership, once for the two kinds of member the mesh watches: a node of this domain (its
// agent's heartbeat) and a peer domain of the federation (its control plane's heartbeat). A
// member is first heard, may change what it says of itself, goes silent (lost) and is heard
// again (recovered). The node and peer aggregates decide with these; the detectors
// (src/workflows) judge silence with `silence`.
import { jsonEqual } from './domain.ts';

/** What hearing from a member means given what is known of it: first time, back after being lost, changed. */
export const hearing = <F>(state: { readonly known: boolean; readonly lost: boolean; readonly facts?: F }, facts: F): { readonly first: boolean; readonly back: boolean; readonly changed: boolean } => ({
  first: !state.known,
  back: state.known && state.lost,
  changed: state.known && !jsonEqual(state.facts, facts),
});

/** Silence makes a known member lost once; a lost one is recovered once. */
export const losing = (state: { readonly known: boolean; readonly lost: boolean }): boolean => state.known && !state.lost;
export const recovering = (state: { readonly known: boolean; readonly lost: boolean }): boolean => state.known && state.lost;

/** A member as a read model shows it: reachable or lost, when it last changed, when it was lost. */
export interface MemberRow {
  readonly status: string;
  readonly updatedAt: string;
  readonly lostAt?: string;
}

/**
 * Judges silence: `lost` when not heard for `timeoutMs` (counting from the later of its last
 * heartbeat, its last change, and `listeningSince`, when this replica began to listen: its own
 * deafness is not the member's silence); `back` when a lost member was heard after it was lost.
 */
export const silence = (row: MemberRow, heardAt: string | undefined, now: number, listeningSince: number, timeoutMs: number): { readonly lost?: string; readonly back?: string } => {
  const ms = (t: string | undefined) => (t ? Date.parse(t) || 0 : 0);
  if (row.status === 'lost') return heardAt && ms(heardAt) > ms(row.lostAt ?? row.updatedAt) ? { back: heardAt } : {};
  const lastSeen = Math.max(ms(heardAt), ms(row.updatedAt), listeningSince);
  return now - lastSeen > timeoutMs ? { lost: new Date(lastSeen).toISOString() } : {};
};
