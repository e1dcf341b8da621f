/**
 * STABLE KEYSPACE CONTRACT — values written here are read by the reference system
 * (Cilium) and by older releases of this project; do not change the output format.
 *
 * A tiny JSON writer that reproduces Go's `encoding/json` output byte for byte:
 * struct fields in declaration order (JS object key order cannot be trusted because
 * integer-like keys are hoisted), map keys sorted bytewise, and Go's HTML-safe string
 * escaping (`<`, `>`, `&`, U+2028, U+2029 become `\u00XX` sequences).
 */

/** A fragment of already-serialised JSON. */
export type JsonFragment = string;

/** Compares strings by Unicode code point, which equals Go's bytewise UTF-8 order. */
export function compareGoStrings(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca !== cb) {
      // codePointAt joins a surrogate pair, so astral characters sort after U+FFFF as in UTF-8.
      return (a.codePointAt(i) ?? ca) - (b.codePointAt(i) ?? cb);
    }
  }
  return a.length - b.length;
}

const GO_EXTRA_ESCAPES = /[<>&\u2028\u2029]/g;
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;

export function goString(s: string): JsonFragment {
  // Go writes invalid UTF-8 as U+FFFD; a lone surrogate is the JS equivalent.
  const wellFormed = s.replace(LONE_SURROGATE, '\ufffd');
  return JSON.stringify(wellFormed).replace(
    GO_EXTRA_ESCAPES,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
}

export function goInt(n: number): JsonFragment {
  if (!Number.isSafeInteger(n)) throw new TypeError(`not an integer: ${n}`);
  return String(n);
}

export function goBool(b: boolean): JsonFragment {
  return b ? 'true' : 'false';
}

export const goNull: JsonFragment = 'null';

/**
 * Serialises a struct. Fields whose fragment is `undefined` are left out, which is
 * how callers express Go's `omitempty`.
 */
export function goStruct(
  fields: ReadonlyArray<readonly [name: string, value: JsonFragment | undefined]>,
): JsonFragment {
  const parts: string[] = [];
  for (const [name, value] of fields) {
    if (value !== undefined) parts.push(`${goString(name)}:${value}`);
  }
  return `{${parts.join(',')}}`;
}

/** Serialises a map with keys sorted the way Go sorts them. */
export function goMap<T>(
  map: Readonly<Record<string, T>>,
  encodeValue: (value: T) => JsonFragment,
): JsonFragment {
  const keys = Object.keys(map).sort(compareGoStrings);
  const parts = keys.map((k) => `${goString(k)}:${encodeValue(map[k] as T)}`);
  return `{${parts.join(',')}}`;
}

export function goArray<T>(
  items: readonly T[],
  encodeItem: (item: T) => JsonFragment,
): JsonFragment {
  return `[${items.map(encodeItem).join(',')}]`;
}

export function goStringMap(map: Readonly<Record<string, string>>): JsonFragment {
  return goMap(map, goString);
}

export function isEmptyRecord(map: Readonly<Record<string, unknown>>): boolean {
  return Object.keys(map).length === 0;
}
