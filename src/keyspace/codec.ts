/**
 * STABLE KEYSPACE CONTRACT — shared plumbing of the value codecs: Go-compatible
 * decoding rules (missing or `null` fields take the zero value, unknown fields are
 * ignored, field names match case-insensitively when no field matches exactly) and
 * uniform ClusterMeshError(InvalidEntry) errors.
 */

import { z } from 'zod';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { clusterIdProblem, type MaxConnectedClusters } from './cluster.js';
import { serviceKeyName } from './keys.js';

/** Options shared by the decoders that mirror the reference's validators. */
export interface DecodeOptions {
  /**
   * The reader's own cluster ID. Like the reference, an entry whose cluster ID equals
   * it skips the range check (so 0 is accepted from a cluster without mesh); any other
   * value must be a valid cluster ID. Default 0.
   */
  readonly localClusterId?: number;
  /** Bounds the valid cluster IDs; default 255. */
  readonly maxConnectedClusters?: MaxConnectedClusters;
  /** Anti-spoofing: the entry's cluster name must equal this (the remote's config name). */
  readonly expectedCluster?: string;
  /** Anti-spoofing: the entry's cluster ID must equal this (the ID reserved for the remote). */
  readonly expectedClusterId?: number;
}

export function invalidEntry(
  what: string,
  keySuffix: string,
  reason: string,
  cause?: unknown,
): ClusterMeshError {
  return new ClusterMeshError(
    ErrorCode.InvalidEntry,
    `invalid ${what} entry ${JSON.stringify(keySuffix)}: ${reason}`,
    cause === undefined ? undefined : { cause },
  );
}

function describeIssues(error: z.ZodError): string {
  return error.issues
    .slice(0, 3)
    .map((issue) => {
      const path = issue.path.map((p) => String(p)).join('.');
      return path === '' ? issue.message : `${path}: ${issue.message}`;
    })
    .join('; ');
}

/** JSON-parses and shape-checks a value; failures become InvalidEntry errors. */
export function parseValue<S extends z.ZodType>(
  schema: S,
  what: string,
  keySuffix: string,
  value: string,
): z.output<S> {
  let data: unknown;
  try {
    data = JSON.parse(value);
  } catch (err) {
    throw invalidEntry(what, keySuffix, 'malformed JSON', err);
  }
  const result = schema.safeParse(data);
  if (!result.success) throw invalidEntry(what, keySuffix, describeIssues(result.error));
  return result.data;
}

/** ASCII case folding; Go also folds a few non-ASCII letters (see docs/compatibility.md). */
function foldCase(s: string): string {
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase());
}

/**
 * Renames the keys of a decoded JSON object to the struct field they select under
 * Go's `encoding/json` rules: an exact match wins, otherwise the first field whose
 * name is equal ignoring case. When several keys select one field, the later key in
 * the document wins, as in Go. Keys that select no field are kept (and ignored by the
 * schema); anything that is not an object is returned unchanged for the schema to
 * reject.
 */
export function foldFieldNames(data: unknown, fields: readonly string[]): unknown {
  if (typeof data !== 'object' || data === null || Array.isArray(data)) return data;
  const exact = new Set(fields);
  const folded = new Map<string, string>();
  for (const f of fields) {
    const k = foldCase(f);
    if (!folded.has(k)) folded.set(k, f);
  }
  let renamed = false;
  const out = new Map<string, unknown>();
  for (const [key, value] of Object.entries(data as Record<string, unknown>)) {
    const field = exact.has(key) ? key : (folded.get(foldCase(key)) ?? key);
    if (field !== key) renamed = true;
    out.set(field, value);
  }
  return renamed ? Object.fromEntries(out) : data;
}

/** `z.object` whose input field names are matched the way Go matches them. */
export function goObject<T extends z.ZodRawShape>(shape: T) {
  const fields = Object.keys(shape);
  return z.preprocess((v) => foldFieldNames(v, fields), z.object(shape));
}

// Go's decoder leaves a field at its zero value when it is missing or `null`.

export const zString = z
  .string()
  .nullish()
  .transform((v) => v ?? '');

export function zUint(max: number) {
  return z
    .number()
    .int()
    .min(0)
    .max(max)
    .nullish()
    .transform((v) => v ?? 0);
}

export const zUint8 = zUint(0xff);
export const zUint16 = zUint(0xffff);
export const zUint32 = zUint(0xffffffff);
export const zInt32 = z
  .number()
  .int()
  .min(-(2 ** 31))
  .max(2 ** 31 - 1);

export const zBool = z
  .boolean()
  .nullish()
  .transform((v) => v ?? false);

export const zStringMap = z
  .record(
    z.string(),
    z
      .string()
      .nullable()
      .transform((v) => v ?? ''),
  )
  .nullish()
  .transform((v): Record<string, string> => v ?? {});

export function zList<T extends z.ZodType>(item: T) {
  return z
    .array(item)
    .nullish()
    .transform((v): z.output<T>[] => v ?? []);
}

/**
 * Throws unless `clusterId` is acceptable under the reference's "local or valid" rule
 * and, when the options name one, equals the expected ID. The reference runs these
 * two checks at different points (value validation, then the validators); decoders
 * that follow its order call {@link checkClusterIdRange} and
 * {@link checkExpectedClusterId} separately.
 */
export function checkEntryClusterId(
  what: string,
  keySuffix: string,
  clusterId: number,
  opts: DecodeOptions,
): void {
  checkClusterIdRange(what, keySuffix, clusterId, opts);
  checkExpectedClusterId(what, keySuffix, clusterId, opts);
}

export function checkClusterIdRange(
  what: string,
  keySuffix: string,
  clusterId: number,
  opts: DecodeOptions,
): void {
  if (clusterId !== (opts.localClusterId ?? 0)) {
    const problem = clusterIdProblem(clusterId, opts.maxConnectedClusters ?? 255);
    if (problem !== null) throw invalidEntry(what, keySuffix, problem);
  }
}

export function checkExpectedClusterId(
  what: string,
  keySuffix: string,
  clusterId: number,
  opts: DecodeOptions,
): void {
  if (opts.expectedClusterId !== undefined && clusterId !== opts.expectedClusterId) {
    throw invalidEntry(
      what,
      keySuffix,
      `unexpected cluster ID: got ${clusterId}, expected ${opts.expectedClusterId}`,
    );
  }
}

export function checkEntryCluster(
  what: string,
  keySuffix: string,
  cluster: string,
  opts: DecodeOptions,
): void {
  if (opts.expectedCluster !== undefined && cluster !== opts.expectedCluster) {
    throw invalidEntry(
      what,
      keySuffix,
      `unexpected cluster name: got ${cluster}, expected ${opts.expectedCluster}`,
    );
  }
}

/** Wraps encoder input problems, which are programming errors of the caller. */
export function invalidValue(what: string, reason: string): ClusterMeshError {
  return new ClusterMeshError(ErrorCode.InvalidArgument, `cannot encode ${what}: ${reason}`);
}

/**
 * A namespaced entry's `<cluster>/<namespace>/<name>` must be its key below the prefix.
 * Cilium compares `<namespace>/<name>` with the key below `<prefix>/<cluster>/`, and its
 * message says so when the cluster part matches.
 */
export function checkNamespacedKey(
  what: string,
  keySuffix: string,
  raw: { readonly cluster: string; readonly namespace: string; readonly name: string },
): void {
  const keyName = serviceKeyName(raw.cluster, raw.namespace, raw.name);
  if (keyName === keySuffix) return;
  const clusterPrefix = `${raw.cluster}/`;
  throw invalidEntry(
    what,
    keySuffix,
    keySuffix.startsWith(clusterPrefix)
      ? `namespaced name does not match key: got ${raw.namespace}/${raw.name}, expected ${keySuffix.slice(clusterPrefix.length)}`
      : `namespaced name does not match key: got ${keyName}, expected ${keySuffix}`,
  );
}
