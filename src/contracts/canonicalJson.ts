// Canonical JSON: object keys sorted (UTF-16 code unit order), no whitespace, otherwise exactly
// what JSON.stringify writes. Two values that read back equal from JSON give the same text, so
// a hash over it survives a round trip through any store that keeps the JSON value.
//
// Written for speed (every commit is hashed when it is appended and again when it is sealed):
// strings that JSON.stringify would leave as they are, which is nearly all of them, are quoted
// directly, and key texts are reused.

/** What JSON.stringify escapes in a string: quotes, backslashes, control characters, lone surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;
const keyTexts = new Map<string, string>();
const keyText = (key: string): string => {
  let t = keyTexts.get(key);
  if (t === undefined) {
    t = JSON.stringify(key);
    // Keys are field names and a bounded set of map keys (ids): cap the cache all the same.
    if (keyTexts.size < 10_000) keyTexts.set(key, t);
  }
  return t;
};

const text = (value: unknown, inArray: boolean): string | undefined => {
  if (value === null) return 'null';
  switch (typeof value) {
    case 'string':
      return NEEDS_ESCAPE.test(value) ? JSON.stringify(value) : `"${value}"`;
    case 'number':
    case 'boolean':
      return JSON.stringify(value);
    case 'bigint':
      throw new TypeError('canonicalJson: a bigint has no JSON form; store it as a decimal string');
    case 'undefined':
    case 'function':
    case 'symbol':
      // As JSON.stringify: dropped from objects, null inside arrays.
      return inArray ? 'null' : undefined;
  }
  if (typeof (value as { toJSON?: unknown }).toJSON === 'function') return text((value as { toJSON: () => unknown }).toJSON(), inArray);
  if (Array.isArray(value)) {
    let s = '[';
    for (let i = 0; i < value.length; i++) s += (i > 0 ? ',' : '') + text(value[i], true);
    return `${s}]`;
  }
  const obj = value as Record<string, unknown>;
  let s = '{';
  let first = true;
  for (const key of Object.keys(obj).sort()) {
    const v = text(obj[key], false);
    if (v === undefined) continue;
    s += `${first ? '' : ','}${keyText(key)}:${v}`;
    first = false;
  }
  return `${s}}`;
};

export const canonicalJson = (value: unknown): string => text(value, false) ?? 'null';

/** JSON.stringify replacer: positions and revisions are bigints, which JSON cannot hold. */
export const bigintsAsStrings = (_key: string, v: unknown): unknown => (typeof v === 'bigint' ? v.toString() : v);
