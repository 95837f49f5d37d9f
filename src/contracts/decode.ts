// Small decoder combinators: every input that crosses a process boundary goes through one of
// these, so a bad field is reported by its path ("body.labels.app: ...") and nothing else runs.
import * as E from 'fp-ts/lib/Either.js';

export interface DecodeError {
  readonly path: string;
  readonly message: string;
}
export type Decoder<A> = (input: unknown, path: string) => E.Either<DecodeError, A>;

const fail = (path: string, message: string): E.Either<DecodeError, never> => E.left({ path, message });
const describe = (v: unknown): string =>
  v === null ? 'null' : Array.isArray(v) ? 'array' : typeof v === 'string' && v.length > 40 ? `string(${v.length})` : typeof v === 'string' ? JSON.stringify(v) : typeof v;

export const formatDecodeError = (e: DecodeError): string => (e.path ? `${e.path}: ${e.message}` : e.message);

export const decode = <A>(d: Decoder<A>, input: unknown, root = ''): E.Either<DecodeError, A> => d(input, root);

const join = (path: string, key: string | number): string =>
  typeof key === 'number' ? `${path}[${key}]` : path ? `${path}.${key}` : key;

export const string = (opts: { min?: number; max: number; pattern?: RegExp; patternHint?: string }): Decoder<string> =>
  (v, path) => {
    if (typeof v !== 'string') return fail(path, `expected a string, got ${describe(v)}`);
    if (v.length < (opts.min ?? 0)) return fail(path, opts.min === 1 ? 'must not be empty' : `must have at least ${opts.min} characters`);
    if (v.length > opts.max) return fail(path, `too long (${v.length} characters, at most ${opts.max})`);
    if (opts.pattern && !opts.pattern.test(v)) return fail(path, `invalid value ${describe(v)}: ${opts.patternHint ?? `must match ${opts.pattern}`}`);
    return E.right(v);
  };

export const integer = (opts: { min: number; max: number }): Decoder<number> => (v, path) => {
  if (typeof v !== 'number' || !Number.isInteger(v)) return fail(path, `expected an integer, got ${describe(v)}`);
  if (v < opts.min || v > opts.max) return fail(path, `must be between ${opts.min} and ${opts.max}, got ${v}`);
  return E.right(v);
};

export const boolean: Decoder<boolean> = (v, path) =>
  typeof v === 'boolean' ? E.right(v) : fail(path, `expected true or false, got ${describe(v)}`);

export const literal = <L extends string>(...values: readonly L[]): Decoder<L> => (v, path) =>
  typeof v === 'string' && (values as readonly string[]).includes(v)
    ? E.right(v as L)
    : fail(path, `expected one of ${values.join(', ')}, got ${describe(v)}`);

export const array = <A>(item: Decoder<A>, opts: { max: number; min?: number }): Decoder<A[]> => (v, path) => {
  if (!Array.isArray(v)) return fail(path, `expected an array, got ${describe(v)}`);
  if (v.length > opts.max) return fail(path, `too many items (${v.length}, at most ${opts.max})`);
  if (v.length < (opts.min ?? 0)) return fail(path, `needs at least ${opts.min} item(s)`);
  const out: A[] = [];
  for (let i = 0; i < v.length; i++) {
    const r = item(v[i], join(path, i));
    if (E.isLeft(r)) return r;
    out.push(r.right);
  }
  return E.right(out);
};

const isPlainObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && Object.getPrototypeOf(v) === Object.prototype;

/** A string map with validated keys and values; keys like __proto__ are refused by the key decoder. */
export const record = <V>(key: Decoder<string>, value: Decoder<V>, opts: { max: number }): Decoder<Record<string, V>> =>
  (v, path) => {
    if (!isPlainObject(v)) return fail(path, `expected an object, got ${describe(v)}`);
    const keys = Object.keys(v);
    if (keys.length > opts.max) return fail(path, `too many entries (${keys.length}, at most ${opts.max})`);
    const out: Record<string, V> = {};
    for (const k of keys) {
      const kr = key(k, join(path, k));
      if (E.isLeft(kr)) return kr;
      const vr = value(v[k], join(path, k));
      if (E.isLeft(vr)) return vr;
      out[k] = vr.right;
    }
    return E.right(out);
  };

type Fields = Record<string, Decoder<unknown>>;
const hasOwn = (o: object, k: string): boolean => Object.prototype.hasOwnProperty.call(o, k);
type Out<F extends Fields> = { [K in keyof F]: F[K] extends Decoder<infer A> ? A : never };
type OptOut<F extends Fields> = { [K in keyof F]?: F[K] extends Decoder<infer A> ? A : never };

/** An object with required and optional fields; unknown fields are an error (a typo must not pass silently). */
export const object = <R extends Fields, O extends Fields = Record<never, never>>(
  required: R,
  optional?: O,
): Decoder<Out<R> & OptOut<O>> => (v, path) => {
  if (!isPlainObject(v)) return fail(path, `expected an object, got ${describe(v)}`);
  const out: Record<string, unknown> = {};
  for (const k of Object.keys(v)) {
    // Own properties only: `in` would let "constructor" or "toString" through as known fields.
    if (!hasOwn(required, k) && !(optional && hasOwn(optional, k))) return fail(join(path, k), 'unknown field');
  }
  for (const [k, d] of Object.entries(required)) {
    if (!hasOwn(v, k) || v[k] === undefined) return fail(join(path, k), 'is required');
    const r = d(v[k], join(path, k));
    if (E.isLeft(r)) return r;
    out[k] = r.right;
  }
  for (const [k, d] of Object.entries(optional ?? {})) {
    if (!hasOwn(v, k) || v[k] === undefined || v[k] === null) continue;
    const r = d(v[k], join(path, k));
    if (E.isLeft(r)) return r;
    out[k] = r.right;
  }
  return E.right(out as Out<R> & OptOut<O>);
};

/**
 * The names of Object.prototype's members. The read models keep connections, services, endpoints,
 * nodes and requesters in plain objects keyed by their ids and names: `byId["constructor"]` finds
 * Object itself, so an id with such a name would be taken for one that exists (and the fold of its
 * first event crashed the control plane, at every start, for good). Refused at the boundary.
 */
export const PROTOTYPE_KEYS: ReadonlySet<string> = new Set([...Object.getOwnPropertyNames(Object.prototype), '__proto__']);
/** A string used as a key of the read models: not the name of an Object.prototype member. */
export const key = (d: Decoder<string>): Decoder<string> => (v, path) => {
  const r = d(v, path);
  if (E.isLeft(r)) return r;
  return PROTOTYPE_KEYS.has(r.right) ? fail(path, `invalid value ${describe(r.right)}: the name of a JavaScript object member is reserved`) : r;
};

export const map = <A, B>(d: Decoder<A>, f: (a: A) => B): Decoder<B> => (v, path) => E.map(f)(d(v, path));

export const refine = <A>(d: Decoder<A>, check: (a: A) => string | undefined): Decoder<A> => (v, path) => {
  const r = d(v, path);
  if (E.isLeft(r)) return r;
  const problem = check(r.right);
  return problem ? fail(path, problem) : r;
};

/** Like refine, for a check across fields: the problem names the field it is about, relative to this value. */
export const refineAt = <A>(d: Decoder<A>, check: (a: A) => { at: string; message: string } | undefined): Decoder<A> => (v, path) => {
  const r = d(v, path);
  if (E.isLeft(r)) return r;
  const problem = check(r.right);
  return problem ? fail(path ? `${path}.${problem.at}` : problem.at, problem.message) : r;
};

/** Parses JSON with a size bound before parsing, so an oversize message costs nothing. */
export const parseJson = (bytes: Uint8Array | string, maxBytes: number): E.Either<DecodeError, unknown> => {
  const size = typeof bytes === 'string' ? Buffer.byteLength(bytes) : bytes.byteLength;
  if (size > maxBytes) return fail('', `message too large (${size} bytes, at most ${maxBytes})`);
  const text = typeof bytes === 'string' ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8');
  try {
    return E.right(JSON.parse(text));
  } catch (e) {
    return fail('', `not valid JSON (${(e as Error).message})`);
  }
};
