// Large maps inside aggregate states, split into buckets. immer copies a map it modifies, so a
// flat map of N entries makes each event cost O(N) to fold; with buckets an event copies one
// bucket (about N/64 entries) and the bucket index.
import type { Draft } from 'immer';

export type Buckets<V> = Readonly<Record<string, Readonly<Record<string, V>>>>;

const BUCKETS = 64;

/** A stable, cheap spread of string keys over the buckets (FNV-1a). */
const hashBucket = (key: string): string => {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return String((h >>> 0) % BUCKETS);
};
/** Numeric keys in runs of 256, so neighbouring indexes share a bucket (bigint: an IPv6 pool's pair indexes). */
const rangeBucket = (key: number | bigint): string => (typeof key === 'bigint' ? String(key / 256n) : String(Math.floor(key / 256)));

export type BucketKey = string | number | bigint;

export const bucketKey = (key: BucketKey): string => (typeof key === 'string' ? hashBucket(key) : rangeBucket(key));

export const getIn = <V>(b: Buckets<V>, key: BucketKey): V | undefined => b[bucketKey(key)]?.[String(key)];

export const setIn = <V>(b: Draft<Buckets<V>>, key: BucketKey, value: Draft<V>): void => {
  const k = bucketKey(key);
  ((b as Record<string, Record<string, Draft<V>>>)[k] ??= {})[String(key)] = value;
};

export const deleteIn = <V>(b: Draft<Buckets<V>>, key: BucketKey): void => {
  const k = bucketKey(key);
  const bucket = (b as Record<string, Record<string, unknown>>)[k];
  if (!bucket) return;
  delete bucket[String(key)];
  if (Object.keys(bucket).length === 0) delete (b as Record<string, unknown>)[k];
};

export const entriesOf = <V>(b: Buckets<V>): [string, V][] => Object.values(b).flatMap((bucket) => Object.entries(bucket));
