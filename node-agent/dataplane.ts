// The Dataplane port: what a node agent needs from whatever programs packets on its host.
//
// Each call is about one *side* of one connection (a workload interface or an endpoint
// interface, with its addresses, routes and, across nodes, its tunnel to the peer). Calls state
// the desired result, so they are idempotent. Multi-point segments and network-function
// chains are new kinds of side (see docs/dataplane.md, "Extending the port"), not new methods.
import type * as TE from 'fp-ts/lib/TaskEither.js';
import type { MechanismType } from '../aggregates/domain.ts';
import type { SideSpec } from '../src/contracts/nodeCommands.ts';

export interface DataplaneError {
  readonly connectionId: string;
  readonly side: string;
  readonly message: string;
}

/** A side as found on the host, for reconciliation. */
export interface ObservedSide {
  readonly connectionId: string;
  readonly side: SideSpec['side'];
  readonly generation: number;
}

export interface Dataplane {
  readonly kind: 'simulated' | 'linux';
  /** How many sides it may program at once (different connections); 1 when unknown. */
  readonly concurrency?: number;
  /** Mechanisms this host can provide; sent when the node joins. */
  capabilities(): readonly MechanismType[];
  /** Create or update the side so that it matches the spec. */
  program(spec: SideSpec): TE.TaskEither<DataplaneError, void>;
  /** Remove everything of the side; removing a side that is not there succeeds. */
  remove(spec: Pick<SideSpec, 'connectionId' | 'side' | 'generation'>): TE.TaskEither<DataplaneError, void>;
  observe(): TE.TaskEither<DataplaneError, readonly ObservedSide[]>;
  /**
   * Checks that traffic gets through a programmed client side to the endpoint (like the
   * original NSM's liveness ping). Left: the probe itself could not run; right(false): it ran
   * and nothing came back.
   */
  probe(spec: SideSpec): TE.TaskEither<DataplaneError, ProbeResult>;
}

export interface ProbeResult {
  readonly alive: boolean;
  readonly detail?: string;
}

export const sideKey = (s: { connectionId: string; side: string }): string => `${s.connectionId}/${s.side}`;
