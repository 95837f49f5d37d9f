// NetworkService: a named capability (payload + matches) that endpoints provide.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { jsonEqual, reject, type Aggregate, type Match, type OfferedDns, type Payload } from './domain.ts';
import type { Family } from './ip.ts';

export interface NetworkServiceSpec {
  readonly name: string;
  readonly payload: Payload;
  readonly matches: readonly Match[];
  /** The address families its connections carry; absent: whichever its endpoints offer. */
  readonly ipFamilies?: readonly Family[];
  /** DNS every connection to it gets (after its endpoint's own, if any); absent: none. */
  readonly dns?: OfferedDns;
}

export type NetworkServiceCommand =
  | { readonly type: 'RegisterNetworkService'; readonly spec: NetworkServiceSpec }
  | { readonly type: 'UnregisterNetworkService'; readonly name: string };

export type NetworkServiceEvent =
  | { readonly type: 'NetworkServiceRegistered'; readonly spec: NetworkServiceSpec }
  | { readonly type: 'NetworkServiceUpdated'; readonly spec: NetworkServiceSpec }
  | { readonly type: 'NetworkServiceUnregistered'; readonly name: string };

export interface NetworkServiceState {
  readonly registered: boolean;
  readonly spec?: NetworkServiceSpec;
}

export const networkService: Aggregate<NetworkServiceState, NetworkServiceCommand, NetworkServiceEvent> = {
  name: 'service',
  initialState: { registered: false },
  decide(command, state) {
    switch (command.type) {
      case 'RegisterNetworkService':
        if (!state.registered) return E.right([{ type: 'NetworkServiceRegistered', spec: command.spec }]);
        if (jsonEqual(state.spec, command.spec)) return E.right([]);
        return E.right([{ type: 'NetworkServiceUpdated', spec: command.spec }]);
      case 'UnregisterNetworkService':
        if (!state.registered) return reject('not-found', `network service "${command.name}" is not registered`);
        return E.right([{ type: 'NetworkServiceUnregistered', name: command.name }]);
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'NetworkServiceRegistered':
        case 'NetworkServiceUpdated':
          s.registered = true;
          s.spec = castDraft(event.spec);
          break;
        case 'NetworkServiceUnregistered':
          s.registered = false;
          delete s.spec;
      }
    }),
};
