/**
 * STABLE KEYSPACE CONTRACT — shared plumbing of the value codecs: Go-compatible
 * decoding rules (missing or `null` fields take the zero value, unknown fields are
 * ignored) and uniform ClusterMeshError(InvalidEntry) errors.
 */

import { z } from 'zod';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { clusterIdProblem, type MaxConnectedClusters } from './cluster.js';

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

/** Throws unless `clusterId` is acceptable under the reference's "local or valid" rule. */
export function checkEntryClusterId(
  what: string,
  keySuffix: string,
  clusterId: number,
  opts: DecodeOptions,
): void {
  if (clusterId !== (opts.localClusterId ?? 0)) {
    const problem = clusterIdProblem(clusterId, opts.maxConnectedClusters ?? 255);
    if (problem !== null) throw invalidEntry(what, keySuffix, problem);
  }
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
