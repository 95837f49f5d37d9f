// NetworkServiceEndpoint: a concrete provider of one or more network services on a node.
import * as E from 'fp-ts/lib/Either.js';
import { castDraft, produce } from 'immer';
import { jsonEqual, reject, type Aggregate, type Labels, type OfferedDns } from './domain.ts';
import { covers, overlaps, parseCidr, type Family, type IpPrefix } from './ip.ts';

export interface EndpointSpec {
  readonly name: string;
  readonly networkServiceNames: readonly string[];
  /** Labels per service, as in the original: networkServiceLabels[service].labels. */
  readonly networkServiceLabels: Readonly<Record<string, { readonly labels: Labels }>>;
  readonly node: string;
  /** Prefixes that client/endpoint address pairs are allocated from: at most one per family. */
  readonly prefixes: readonly string[];
  readonly excludedPrefixes: readonly string[];
  /** Network namespace the endpoint's side of each connection goes into; absent for a simulated endpoint. */
  readonly netns?: string;
  /** DNS its clients get for the connection's life; absent: none. */
  readonly dns?: OfferedDns;
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
      /** Context from the registry: the families of the services that carry only some (absent: any). */
      readonly serviceFamilies?: Readonly<Record<string, readonly Family[]>>;
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

/**
 * What is wrong with an endpoint's prefixes and exclusions, naming the field: a malformed prefix,
 * two of one family, or an exclusion that covers a whole prefix (nothing could be handed out).
 */
/**
 * IPv6 ranges no pool may hand out: link-local addresses are each link's own (the dataplane gives
 * every veth's node end fe80::1 as the workload's gateway), and multicast ones name groups.
 */
const RESERVED_IPV6: readonly { text: string; what: string }[] = [
  { text: 'fe80::/10', what: 'link-local' },
  { text: 'ff00::/8', what: 'multicast' },
];

export const prefixProblem = (prefixes: readonly string[], excludedPrefixes: readonly string[]): { at: string; message: string } | undefined => {
  const parsed: IpPrefix[] = [];
  for (const [i, text] of prefixes.entries()) {
    const p = parseCidr(text);
    if (E.isLeft(p)) return { at: `prefixes[${i}]`, message: p.left };
    if (parsed.some((q) => q.family === p.right.family)) return { at: `prefixes[${i}]`, message: `"${text}" is a second ${p.right.family} prefix; give one per family` };
    for (const r of RESERVED_IPV6) {
      const reserved = parseCidr(r.text);
      if (E.isRight(reserved) && overlaps(p.right, reserved.right)) return { at: `prefixes[${i}]`, message: `"${text}" overlaps ${r.text} (${r.what}); give a unique local (fd00::/8) or global prefix` };
    }
    parsed.push(p.right);
  }
  for (const [i, text] of excludedPrefixes.entries()) {
    const x = parseCidr(text);
    if (E.isLeft(x)) return { at: `excludedPrefixes[${i}]`, message: x.left };
    const whole = parsed.findIndex((p) => covers(x.right, p));
    if (whole >= 0) return { at: `excludedPrefixes[${i}]`, message: `"${text}" covers the whole prefix ${prefixes[whole]}: no address of it could be handed out` };
  }
  return undefined;
};

/** A prefix of a family one of the endpoint's services does not carry, named by its field. */
const familyProblem = (spec: EndpointSpec, serviceFamilies: Readonly<Record<string, readonly Family[]>>): string | undefined => {
  for (const service of spec.networkServiceNames) {
    const families = serviceFamilies[service];
    if (!families) continue;
    for (const [i, text] of spec.prefixes.entries()) {
      const p = parseCidr(text);
      if (E.isRight(p) && !families.includes(p.right.family)) {
        return `prefixes[${i}]: "${text}" is ${p.right.family}; network service "${service}" carries ${families.join(' and ')} only`;
      }
    }
  }
  return undefined;
};

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
        if (spec.prefixes.length === 0) return reject('invalid', 'prefixes: an endpoint needs at least one prefix to hand out addresses from');
        const bad = prefixProblem(spec.prefixes, spec.excludedPrefixes);
        if (bad) return reject('invalid', `${bad.at}: ${bad.message}`);
        const wrongFamily = familyProblem(spec, command.serviceFamilies ?? {});
        if (wrongFamily) return reject('invalid', wrongFamily);
        const expiry = command.expirationTime ? { expirationTime: command.expirationTime } : {};
        if (!state.registered) return E.right([{ type: 'EndpointRegistered', spec, ...expiry }]);
        if (state.spec && state.spec.node !== spec.node) {
          return reject('conflict', `endpoint "${spec.name}" is registered on node ${state.spec.node}, not ${spec.node}; unregister it first`);
        }
        if (state.spec && !jsonEqual([...state.spec.prefixes].sort(), [...spec.prefixes].sort())) {
          return reject('conflict', `endpoint "${spec.name}" allocates from ${state.spec.prefixes.join(' and ')}; changing its prefixes needs unregister first`);
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
