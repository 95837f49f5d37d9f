// The aggregates by stream prefix, so the command handler and replay can find each one.
import { addressPool, type AddressPoolCommand, type AddressPoolEvent } from './addressPool.ts';
import { connection, type ConnectionCommand, type ConnectionEvent } from './connection/index.ts';
import type { Aggregate } from './domain.ts';
import { endpoint, type EndpointCommand, type EndpointEvent } from './endpoint.ts';
import { networkService, type NetworkServiceCommand, type NetworkServiceEvent } from './networkService.ts';
import { node, type NodeCommand, type NodeEvent } from './node.ts';
import { peer, type PeerCommand, type PeerEvent } from './peer.ts';
import { policy, type PolicyCommand, type PolicyEvent } from './policy.ts';
import { tunnelPool, type TunnelPoolCommand, type TunnelPoolEvent } from './tunnelPool.ts';
import { workflow, type WorkflowCommand, type WorkflowEvent } from './workflow.ts';
import { limits, type LimitsCommand, type LimitsEvent } from './limits.ts';
import { identities, type IdentitiesCommand, type IdentitiesEvent } from './identity.ts';

export type DomainEvent = NetworkServiceEvent | EndpointEvent | NodeEvent | ConnectionEvent | AddressPoolEvent | TunnelPoolEvent | PolicyEvent | PeerEvent | WorkflowEvent | LimitsEvent | IdentitiesEvent;

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyAggregate = Aggregate<any, any, any>;

export const AGGREGATES: Readonly<Record<string, AnyAggregate>> = {
  [networkService.name]: networkService,
  [endpoint.name]: endpoint,
  [node.name]: node,
  [connection.name]: connection,
  [addressPool.name]: addressPool,
  [tunnelPool.name]: tunnelPool,
  [policy.name]: policy,
  [peer.name]: peer,
  [workflow.name]: workflow,
  [limits.name]: limits,
  [identities.name]: identities,
};

export type AggregateName = 'service' | 'endpoint' | 'node' | 'connection' | 'pool' | 'tunnel' | 'policy' | 'peer' | 'workflow' | 'limits' | 'identities';
export const AGGREGATE_NAMES: readonly AggregateName[] = ['service', 'endpoint', 'node', 'connection', 'pool', 'tunnel', 'policy', 'peer', 'workflow', 'limits', 'identities'];

/** Each aggregate's commands, by the stream prefix it lives under. */
export interface AggregateCommands {
  readonly service: NetworkServiceCommand;
  readonly endpoint: EndpointCommand;
  readonly node: NodeCommand;
  readonly connection: ConnectionCommand;
  readonly pool: AddressPoolCommand;
  readonly tunnel: TunnelPoolCommand;
  readonly policy: PolicyCommand;
  readonly peer: PeerCommand;
  readonly workflow: WorkflowCommand;
  readonly limits: LimitsCommand;
  readonly identities: IdentitiesCommand;
}
export type AnyAggregateCommand = AggregateCommands[AggregateName];

/** The commands of the aggregate a stream name ("<aggregate>.<id>") belongs to; any aggregate's when the name is only known as a string. */
export type CommandOfStream<S extends string> = S extends `${infer A extends AggregateName}.${string}` ? AggregateCommands[A] : AnyAggregateCommand;
