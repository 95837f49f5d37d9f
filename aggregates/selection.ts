// Endpoint selection with the original NSM matching semantics, then placement preferences.
import { isSubset, type Labels, type Match } from './domain.ts';

export interface Candidate {
  readonly name: string;
  readonly node: string;
  /** The endpoint's labels for the requested service (networkServiceLabels[service].labels). */
  readonly labels: Labels;
  /** Connections currently served (not closed), used to prefer the least loaded endpoint;
   * absent when the caller passes `loadOf` to the selection instead. */
  readonly load?: number;
  /** Federation: the endpoint's home domain, for entries of a floating registry. */
  readonly domain?: string;
}

/** Destination selector values may use "{{.key}}" to refer to the client's labels, as in the original. */
const expand = (value: string, clientLabels: Labels): string =>
  value.replace(/\{\{\s*\.([A-Za-z0-9_.-]+)\s*\}\}/g, (_, key: string) => clientLabels[key] ?? '');

const matchesSelector = (endpointLabels: Labels, selector: Labels, clientLabels: Labels): boolean =>
  Object.entries(selector).every(([k, v]) => endpointLabels[k] === expand(v, clientLabels));

/**
 * Candidates allowed by the service's matches: the first match whose source selector is a
 * subset of the client's labels decides, unless it yields nothing and says fallthrough. No
 * applicable match (or no matches at all) leaves every endpoint.
 */
export const matchEndpoints = <C extends Candidate>(
  matches: readonly Match[],
  clientLabels: Labels,
  endpoints: readonly C[],
): readonly C[] => {
  for (const match of matches) {
    if (!isSubset(clientLabels, match.sourceSelector)) continue;
    const chosen = new Set<C>();
    for (const route of match.routes) {
      for (const ep of endpoints) {
        if (matchesSelector(ep.labels, route.destinationSelector, clientLabels)) chosen.add(ep);
      }
    }
    if (chosen.size === 0 && match.fallthrough) continue;
    return endpoints.filter((ep) => chosen.has(ep));
  }
  return endpoints;
};

export type Selection<C> =
  | { readonly kind: 'selected'; readonly endpoint: C; readonly considered: number }
  | { readonly kind: 'none'; readonly reason: string };

/**
 * Picks one endpoint: matching first, then the client's node, then the least loaded; ties
 * broken by name so that the decision is deterministic (and therefore replayable).
 */
export const selectEndpoint = <C extends Candidate>(input: {
  readonly service: string;
  readonly matches: readonly Match[];
  readonly clientLabels: Labels;
  readonly clientNode: string;
  readonly endpoints: readonly C[];
  readonly exclude: readonly string[];
  /** Load by endpoint name, asked only for the endpoints that remain after matching and placement. */
  readonly loadOf?: (endpoint: string) => number;
}): Selection<C> => {
  const available = input.endpoints.filter((ep) => !input.exclude.includes(ep.name));
  if (input.endpoints.length === 0) {
    return { kind: 'none', reason: `no endpoint is registered for network service "${input.service}"` };
  }
  if (available.length === 0) {
    return { kind: 'none', reason: `every endpoint of "${input.service}" is excluded (${input.exclude.join(', ')})` };
  }
  const matching = matchEndpoints(input.matches, input.clientLabels, available);
  if (matching.length === 0) {
    return {
      kind: 'none',
      reason: `no endpoint of "${input.service}" matches the client's labels ${JSON.stringify(input.clientLabels)}`,
    };
  }
  const local = matching.filter((ep) => ep.node === input.clientNode);
  const pool = local.length > 0 ? local : matching;
  const loads = new Map(pool.map((ep) => [ep.name, input.loadOf ? input.loadOf(ep.name) : (ep.load ?? 0)]));
  const best = [...pool].sort((a, b) => loads.get(a.name)! - loads.get(b.name)! || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))[0]!;
  return { kind: 'selected', endpoint: best, considered: matching.length };
};
