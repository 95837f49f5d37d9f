// A dataplane that records what it was asked to program and touches nothing on the host.
// Used for tests, benchmarks and laptops; connections it "establishes" carry no packets.
import * as E from 'fp-ts/lib/Either.js';
import { MECHANISM_TYPES, type MechanismType } from '../aggregates/domain.ts';
import type { SideSpec } from '../src/contracts/nodeCommands.ts';
import { sideKey, type Dataplane, type DataplaneError } from './dataplane.ts';

export interface SimulatedDataplane extends Dataplane {
  /** What is programmed now, by "<connectionId>/<side>". */
  readonly programmed: ReadonlyMap<string, SideSpec>;
  /** Calls in order, for tests: at least the last JOURNAL_KEPT (a long run must not keep every call). */
  readonly journal: readonly { readonly op: 'program' | 'remove'; readonly key: string; readonly generation: number }[];
  /** Makes the next program() of this connection fail with the message (fault injection). */
  failNext(connectionId: string, message: string): void;
  /** Drops traffic towards this endpoint-side address (CIDR as in the spec) until restored. */
  cutDatapathTo(address: string): void;
  restoreDatapathTo(address: string): void;
}

export const JOURNAL_KEPT = 1000;

export const simulatedDataplane = (mechanisms: readonly MechanismType[] = MECHANISM_TYPES): SimulatedDataplane => {
  const programmed = new Map<string, SideSpec>();
  const journal: { op: 'program' | 'remove'; key: string; generation: number }[] = [];
  const failures = new Map<string, string>();
  const cut = new Set<string>();
  const record = (entry: { op: 'program' | 'remove'; key: string; generation: number }) => {
    journal.push(entry);
    // Cut in chunks: the oldest calls go once there are twice as many as kept.
    if (journal.length >= 2 * JOURNAL_KEPT) journal.splice(0, journal.length - JOURNAL_KEPT);
  };
  return {
    kind: 'simulated',
    concurrency: 64,
    programmed,
    journal,
    failNext: (id, message) => void failures.set(id, message),
    cutDatapathTo: (address) => void cut.add(address),
    restoreDatapathTo: (address) => void cut.delete(address),
    capabilities: () => mechanisms,
    program: (spec) => async () => {
      const key = sideKey(spec);
      record({ op: 'program', key, generation: spec.generation });
      const failure = failures.get(spec.connectionId);
      if (failure) {
        failures.delete(spec.connectionId);
        return E.left<DataplaneError>({ connectionId: spec.connectionId, side: spec.side, message: failure });
      }
      programmed.set(key, spec);
      return E.right(undefined);
    },
    remove: (spec) => async () => {
      const key = sideKey(spec);
      record({ op: 'remove', key, generation: spec.generation });
      programmed.delete(key);
      return E.right(undefined);
    },
    probe: (spec) => async () => {
      const blocked = spec.remoteAddresses.find((t) => cut.has(t));
      if (!programmed.has(sideKey(spec))) return E.right({ alive: false, detail: 'side is not programmed' });
      return E.right(blocked ? { alive: false, detail: `traffic to ${blocked} is dropped (simulated cut)` } : { alive: true });
    },
    observe: () => async () =>
      E.right([...programmed.values()].map((s) => ({ connectionId: s.connectionId, side: s.side, generation: s.generation }))),
  };
};
