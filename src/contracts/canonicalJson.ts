// Canonical JSON: object keys sorted (UTF-16 code unit order), no whitespace, otherwise exactly
// what JSON.stringify writes. Two values that read back equal from JSON give the same text, so
// a hash over it survives a round trip through any store that keeps the JSON value.

const text = (value: unknown, inArray: boolean): string | undefined => {
  if (value !== null && typeof value === 'object' && typeof (value as { toJSON?: unknown }).toJSON === 'function') {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case 'string':
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
  if (value === null) return 'null';
  if (Array.isArray(value)) return `[${value.map((v) => text(v, true)).join(',')}]`;
  const obj = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(obj).sort()) {
    const v = text(obj[key], false);
    if (v !== undefined) parts.push(`${JSON.stringify(key)}:${v}`);
  }
  return `{${parts.join(',')}}`;
};

export const canonicalJson = (value: unknown): string => text(value, false) ?? 'null';
