// The aggregates by stream prefix, so the command handler and replay can find each one.
import { addressPool, type AddressPoolEvent } from './addressPool.ts';
import { connection, type ConnectionEvent } from './connection/index.ts';
import type { Aggregate } from './domain.ts';
import { endpoint, type EndpointEvent } from './endpoint.ts';
import { networkService, type NetworkServiceEvent } from './networkService.ts';
import { node, type NodeEvent } from './node.ts';
import { peer, type PeerEvent } from './peer.ts';
import { policy, type PolicyEvent } from './policy.ts';
import { tunnelPool, type TunnelPoolEvent } from './tunnelPool.ts';
import { workflow, type WorkflowEvent } from './workflow.ts';
import { limits, type LimitsEvent } from './limits.ts';

export type DomainEvent = NetworkServiceEvent | EndpointEvent | NodeEvent | ConnectionEvent | AddressPoolEvent | TunnelPoolEvent | PolicyEvent | PeerEvent | WorkflowEvent | LimitsEvent;

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
};

export type AggregateName = 'service' | 'endpoint' | 'node' | 'connection' | 'pool' | 'tunnel' | 'policy' | 'peer' | 'workflow' | 'limits';
export const AGGREGATE_NAMES: readonly AggregateName[] = ['service', 'endpoint', 'node', 'connection', 'pool', 'tunnel', 'policy', 'peer', 'workflow', 'limits'];
