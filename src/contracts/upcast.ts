// Event schema versions and upcasters. Every stored envelope says which shape its `data` has
// (`schema`); when an event type's shape changes, its current schema goes up by one and an
// upcaster lifts data of the previous schema to the new one. Folds (repository, projections,
// replay) read stored commits through upcastCommit, so a log written by an older version
// replays with current code. Stored commits are never rewritten: their hashes cover the stored
// shape, and `nsm history` shows what was stored.
import type { EventEnvelope, StoredCommit } from './envelope.ts';

type Data = { readonly type: string } & Record<string, unknown>;
/** Data of schema n of one event type -> data of schema n + 1. Pure. */
export type Upcaster = (data: Data) => Data;

/** Current schema per event type; a type not listed is at schema 1. */
export const CURRENT_SCHEMA: Readonly<Record<string, number>> = {
  // 2: context gains dnsContext and ethernetContext (the original API's ConnectionContext).
  PathPlanned: 2,
  // 2: a pair per family, `pairs: [{prefix, src, dst}]`, for IPv6 and dual stack; schema 1 held one
  // IPv4 pair (`prefix, index, src, dst`), and the release its index.
  AddressesAllocated: 2,
  AddressesReleased: 2,
  // 2: an endpoint has `prefixes` (one per family); schema 1 had one IPv4 `prefix`.
  EndpointRegistered: 2,
  EndpointUpdated: 2,
};

/** Endpoint spec of schema 1 -> 2: its one prefix becomes the list of its prefixes. */
const endpointPrefixes: Upcaster = (d) => {
  const { prefix, ...spec } = (d.spec ?? {}) as Record<string, unknown>;
  return { ...d, spec: { ...spec, prefixes: typeof prefix === 'string' ? [prefix] : [] } };
};

/** UPCASTERS[type][n] lifts schema n to n + 1, for every n below CURRENT_SCHEMA[type]. */
export const UPCASTERS: Readonly<Record<string, Readonly<Record<number, Upcaster>>>> = {
  PathPlanned: {
    1: (d) => {
      const context = (d.context ?? {}) as Record<string, unknown>;
      return { ...d, context: { dnsContext: { configs: [] }, ethernetContext: {}, ...context } };
    },
  },
  AddressesAllocated: {
    1: ({ prefix, index: _index, src, dst, ...rest }) => ({ ...rest, pairs: [{ prefix, src, dst }] }) as Data,
  },
  AddressesReleased: {
    1: ({ index: _index, ...rest }) => rest as Data,
  },
  EndpointRegistered: { 1: endpointPrefixes },
  EndpointUpdated: { 1: endpointPrefixes },
};

export const schemaOf = (type: string): number => CURRENT_SCHEMA[type] ?? 1;

export class UpcastError extends Error {}

/** The envelope with data at the current schema of its type (the same object when already current). */
export const upcastEvent = <E extends EventEnvelope>(env: E): E => {
  const target = schemaOf(env.type);
  const from = env.schema ?? 1;
  // Newer than this code (a replica not yet upgraded reading a newer one's events): passed on
  // as stored; shape changes are additive, so older code reads what it knows.
  if (from >= target) return env;
  let data = env.data as unknown as Data;
  for (let n = from; n < target; n++) {
    const up = UPCASTERS[env.type]?.[n];
    if (!up) throw new UpcastError(`no upcaster for ${env.type} from schema ${n} to ${n + 1}`);
    data = up(data);
  }
  return { ...env, schema: target, data };
};

/** The commit with every event upcast (the same object when nothing needed it). */
export const upcastCommit = (c: StoredCommit): StoredCommit => {
  let changed: EventEnvelope[] | undefined;
  for (let i = 0; i < c.events.length; i++) {
    const e = c.events[i]!;
    const u = upcastEvent(e);
    if (u !== e) (changed ??= c.events.slice())[i] = u;
  }
  return changed ? { ...c, events: changed } : c;
};
