// What a workflow decides to do, as data: the reactions in this folder are pure functions from an
// event (and what is known when it is handled) to steps, and ./runner.ts is the one part that
// carries steps out against the store, the node agents and other domains. A step whose outcome
// matters carries the rest of the decision as a pure continuation (`then`, `onRejected`), so a
// chain such as allocate, then plan, then release if closed meanwhile stays a pure function too.
import type { ConnectionEvent, ConnectionState, PathSegment } from '../../aggregates/connection/index.ts';
import type { DomainError } from '../../aggregates/domain.ts';
import type { EndpointSpec } from '../../aggregates/endpoint.ts';
import type { PeerFacts } from '../../aggregates/peer.ts';
import type { TunnelIdRange } from '../../aggregates/tunnelPool.ts';
import type { MeshModel } from '../../projections/mesh.ts';
import type { NodeCommand } from '../contracts/nodeCommands.ts';
import type { AnyAggregateCommand, CommandOfStream } from '../../aggregates/index.ts';
import type { EventEnvelope } from '../contracts/envelope.ts';
import type { LoadOf } from '../command/routes.ts';

/** What a reaction knows besides its event: the read model when it runs, and the configuration. */
export interface WorkflowContext {
  readonly domain: string;
  readonly model: MeshModel;
  readonly now: Date;
  /** A second datapath failure within this long of an in-place repair moves the connection. */
  readonly escalateWithinMs: number;
  /** Connections healed (or marked down, or resynced) at once when an endpoint, node or peer fails. */
  readonly healConcurrency: number;
  /** This domain's tunnel ids (federated domains take disjoint ranges); absent: all ids. */
  readonly tunnelIds?: TunnelIdRange;
  /** Whether this domain is federated: without it, a connection to another domain fails. */
  readonly federated: boolean;
  /** Signs the path of a plan (authenticated meshes); absent or returning undefined: unsigned. */
  readonly planSegments?: (o: { state: ConnectionState; endpoint: { name: string; node: string }; src: readonly string[]; dst: readonly string[]; now: Date }) => readonly PathSegment[] | undefined;
}

/** Inputs a command may be built from at the moment it is decided (loads change with every decision). */
export interface DecisionInputs {
  readonly model: MeshModel;
  readonly loadOf: LoadOf;
}

export interface Execute {
  readonly kind: 'execute';
  readonly stream: string;
  /** Names the step among those of its causing event: the commit id is `<event id>-<step>`. */
  readonly step: string;
  /** The command, or `build` to make it right before the decision from what is current then. */
  readonly command: AnyAggregateCommand | { readonly build: (inputs: DecisionInputs) => AnyAggregateCommand };
  /** A (re)selection: counted as endpoint load until the view holds it. */
  readonly selection?: boolean;
  /** What to do when the aggregate refuses (absent: nothing). */
  readonly onRejected?: (error: DomainError) => readonly Step[];
  /** What to do with the aggregate's state after the decision (absent: nothing). */
  readonly then?: (state: unknown) => readonly Step[];
}

/** A call to the federation's I/O (src/runtime/federationSteps.ts), one durable interdomain command each. */
export type FederationCall =
  | { readonly op: 'request'; readonly state: ConnectionState }
  | { readonly op: 'state'; readonly state: ConnectionState }
  | { readonly op: 'report'; readonly state: ConnectionState; readonly result: 'programmed' | 'failed' | 'broken'; readonly error?: string }
  | { readonly op: 'close'; readonly state: ConnectionState }
  | { readonly op: 'redirect'; readonly state: ConnectionState; readonly event: Extract<ConnectionEvent, { type: 'ConnectionRedirected' }> }
  | { readonly op: 'forward-endpoint'; readonly domain: string; readonly what: { op: 'register'; spec: EndpointSpec } | { op: 'unregister'; name: string } }
  | { readonly op: 'resync'; readonly connectionId: string }
  | { readonly op: 'peer-seen'; readonly facts: PeerFacts };

export type Step =
  | Execute
  | { readonly kind: 'node-command'; readonly node: string; readonly command: NodeCommand }
  /** Reads an aggregate's current state, then decides with it. */
  | { readonly kind: 'load'; readonly stream: string; readonly then: (state: unknown) => readonly Step[] }
  | { readonly kind: 'federate'; readonly call: FederationCall }
  /** Groups run side by side, at most `limit` at once; the steps of one group in order. */
  | { readonly kind: 'together'; readonly limit: number; readonly groups: readonly (readonly Step[])[] }
  | { readonly kind: 'log'; readonly level: 'info' | 'warn'; readonly msg: string; readonly fields: Readonly<Record<string, unknown>> };

/** A decision on a stream; the command must be one of that stream's aggregate's. */
export const execute = <S extends string>(stream: S, step: string, command: CommandOfStream<S> | { readonly build: (inputs: DecisionInputs) => CommandOfStream<S> }, more: Omit<Execute, 'kind' | 'stream' | 'step' | 'command'> = {}): Execute => ({
  kind: 'execute',
  stream,
  step,
  command,
  ...more,
});
export const together = (groups: readonly (readonly Step[])[], limit: number): Step[] => (groups.length === 0 ? [] : [{ kind: 'together', limit, groups }]);
export const federate = (call: FederationCall): Step => ({ kind: 'federate', call });
export const log = (level: 'info' | 'warn', msg: string, fields: Readonly<Record<string, unknown>>): Step => ({ kind: 'log', level, msg, fields });

/** What crosses to other domains, carried out by the runtime (src/runtime/federationSteps.ts) for the runner. */
export interface FederationSteps {
  /** Client side: asks the endpoint's domain for the connection (again after a redirect). */
  request(s: ConnectionState, env: EventEnvelope): Promise<void>;
  /** Endpoint side: tells the client's domain where the connection stands here. */
  state(s: ConnectionState, env: EventEnvelope): Promise<void>;
  /** Client side: the client side's progress, for the endpoint domain's generation. */
  report(s: ConnectionState, result: 'programmed' | 'failed' | 'broken', env: EventEnvelope, error?: string): Promise<void>;
  /** Client side: closed or failed here; the endpoint's domain closes its half. */
  close(s: ConnectionState, env: EventEnvelope): Promise<void>;
  /** Registry side: names the endpoint's home domain to the client's domain. */
  redirect(s: ConnectionState, ev: Extract<ConnectionEvent, { type: 'ConnectionRedirected' }>, env: EventEnvelope): Promise<void>;
  /** An endpoint registered as svc@<floating>: its registration (or its end) goes to that registry. */
  forwardEndpoint(domain: string, what: { op: 'register'; spec: EndpointSpec } | { op: 'unregister'; name: string }, env: EventEnvelope): Promise<void>;
  /** Client side, the endpoint's domain is back: asks where the connection stands there and applies it. */
  resync(connectionId: string, env: EventEnvelope): Promise<void>;
  /** A peer was heard: its registry copy is kept from now on. */
  peerSeen(facts: PeerFacts): Promise<void>;
}
