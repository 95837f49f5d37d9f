// NetworkServiceEndpoint: a concrete provider of one or more network services on a node.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { jsonEqual, reject, type Aggregate, type Labels } from './domain.ts';

export interface EndpointSpec {
  readonly name: string;
  readonly networkServiceNames: readonly string[];
  /** Labels per service, as in the original: networkServiceLabels[service].labels. */
  readonly networkServiceLabels: Readonly<Record<string, { readonly labels: Labels }>>;
  readonly node: string;
  /** Prefix that client/endpoint address pairs are allocated from. */
  readonly prefix: string;
  readonly excludedPrefixes: readonly string[];
  /** Network namespace the endpoint's side of each connection goes into; absent for a simulated endpoint. */
  readonly netns?: string;
  /** Federation: floating registries (domains) this endpoint is also registered in, as svc@<domain>. */
  readonly floating?: readonly string[];
  /** Federation, in a floating registry: the endpoint's home domain (its node is "<node>@<domain>"). */
  readonly domain?: string;
}

export type EndpointCommand =
  | {
      readonly type: 'RegisterEndpoint';
      readonly spec: EndpointSpec;
      /** ISO time after which the registration lapses unless refreshed; absent: a static registration. */
      readonly expirationTime?: string;
      /** Context from the registry: which of the endpoint's services are registered. */
      readonly registeredServices: readonly string[];
    }
  /** domain: sent by that domain for its entry in a floating registry; only its own entries. */
  | { readonly type: 'UnregisterEndpoint'; readonly name: string; readonly domain?: string }
  /** expired: its registration lapsed (checked against `at`); node-lost: its node stopped answering. */
  | { readonly type: 'ExpireEndpoint'; readonly name: string; readonly cause: 'expired' | 'node-lost'; readonly at: string };

export type EndpointEvent =
  | { readonly type: 'EndpointRegistered'; readonly spec: EndpointSpec; readonly expirationTime?: string }
  | { readonly type: 'EndpointUpdated'; readonly spec: EndpointSpec; readonly expirationTime?: string }
  | { readonly type: 'EndpointRefreshed'; readonly expirationTime?: string }
  | { readonly type: 'EndpointUnregistered'; readonly name: string }
  | { readonly type: 'EndpointExpired'; readonly name: string; readonly cause: 'expired' | 'node-lost'; readonly expirationTime?: string };

export interface EndpointState {
  readonly registered: boolean;
  readonly spec?: EndpointSpec;
  readonly expirationTime?: string;
}

export const endpoint: Aggregate<EndpointState, EndpointCommand, EndpointEvent> = {
  name: 'endpoint',
  initialState: { registered: false },
  decide(command, state) {
    switch (command.type) {
      case 'RegisterEndpoint': {
        const { spec } = command;
        const missing = spec.networkServiceNames.filter((s) => !command.registeredServices.includes(s));
        if (missing.length > 0) {
          return reject(
            'not-found',
            `network service ${missing.map((m) => `"${m}"`).join(', ')} is not registered; register it first (nsm service register ${missing[0]})`,
          );
        }
        const stray = Object.keys(spec.networkServiceLabels).filter((s) => !spec.networkServiceNames.includes(s));
        if (stray.length > 0) {
          return reject('invalid', `labels given for service "${stray[0]}" which the endpoint does not provide`);
        }
        const expiry = command.expirationTime ? { expirationTime: command.expirationTime } : {};
        if (!state.registered) return E.right([{ type: 'EndpointRegistered', spec, ...expiry }]);
        if (state.spec && state.spec.node !== spec.node) {
          return reject('conflict', `endpoint "${spec.name}" is registered on node ${state.spec.node}, not ${spec.node}; unregister it first`);
        }
        if (state.spec && state.spec.prefix !== spec.prefix) {
          return reject('conflict', `endpoint "${spec.name}" allocates from ${state.spec.prefix}; changing its prefix needs unregister first`);
        }
        if (!jsonEqual(state.spec, spec)) {
          return E.right([{ type: 'EndpointUpdated', spec, ...expiry }]);
        }
        if (state.expirationTime === command.expirationTime) return E.right([]);
        return E.right([{ type: 'EndpointRefreshed', ...expiry }]);
      }
      case 'UnregisterEndpoint':
        if (!state.registered) return reject('not-found', `endpoint "${command.name}" is not registered`);
        if (command.domain !== undefined && state.spec?.domain !== command.domain) {
          return reject('conflict', `endpoint "${command.name}" was not registered by domain ${command.domain}`);
        }
        return E.right([{ type: 'EndpointUnregistered', name: command.name }]);
      case 'ExpireEndpoint': {
        if (!state.registered) return E.right([]);
        // Refreshed since the detector looked, or static: nothing lapsed.
        if (command.cause === 'expired' && (!state.expirationTime || Date.parse(state.expirationTime) > Date.parse(command.at))) return E.right([]);
        return E.right([
          { type: 'EndpointExpired', name: command.name, cause: command.cause, ...(state.expirationTime ? { expirationTime: state.expirationTime } : {}) },
        ]);
      }
    }
  },
  evolve: (state, event) =>
    produce(state, (s) => {
      switch (event.type) {
        case 'EndpointRegistered':
        case 'EndpointUpdated':
          s.registered = true;
          s.spec = castDraft(event.spec);
          if (event.expirationTime) s.expirationTime = event.expirationTime;
          else delete s.expirationTime;
          break;
        case 'EndpointRefreshed':
          if (event.expirationTime) s.expirationTime = event.expirationTime;
          else delete s.expirationTime;
          break;
        case 'EndpointUnregistered':
        case 'EndpointExpired':
          s.registered = false;
      }
    }),
};
