import type { KeyValue } from '../kvstore/backend.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { findKind, knownKindNames, type KindInfo } from './kinds.js';
import { formatProblem, isRecord, validateObject } from './validation.js';
import type { RegistryObject } from './types.js';

/**
 * Keys and values of registry objects in the kvstore:
 * `registry/<resource>/<namespace>/<name>` (cluster-scoped: `registry/<resource>/<name>`),
 * value = the object's JSON without `metadata.resourceVersion`, which is the key's mod
 * revision and is filled in on every read (a copy inside the value would go stale).
 */

export const REGISTRY_PREFIX = 'registry/';

/** The kind named exactly (`CiliumNode`), or ClusterMeshError(InvalidArgument). */
export function requireKind(kind: string | KindInfo): KindInfo {
  if (typeof kind !== 'string') return kind;
  const info = findKind(kind);
  if (info === undefined) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `unknown kind ${JSON.stringify(kind)} (known: ${knownKindNames()})`,
    );
  }
  return info;
}

/** Prefix of every object of a kind, or of one namespace of a namespaced kind. */
export function resourcePrefix(info: KindInfo, namespace?: string): string {
  const base = `${REGISTRY_PREFIX}${info.resource}/`;
  return info.namespaced && namespace !== undefined ? `${base}${namespace}/` : base;
}

export function objectKey(info: KindInfo, namespace: string | undefined, name: string): string {
  if (!info.namespaced) return `${REGISTRY_PREFIX}${info.resource}/${name}`;
  return `${REGISTRY_PREFIX}${info.resource}/${namespace ?? 'default'}/${name}`;
}

export function keyOf(info: KindInfo, obj: RegistryObject): string {
  return objectKey(info, obj.metadata.namespace, obj.metadata.name);
}

/** `<namespace>/<name>` or `<name>`: the informer cache key. */
export function cacheKey(namespace: string | undefined, name: string): string {
  return namespace === undefined || namespace === '' ? name : `${namespace}/${name}`;
}

/** `services "rebel-base"`, as Kubernetes names objects in errors. */
export function describeObject(info: KindInfo, name: string): string {
  return `${info.resource} ${JSON.stringify(name)}`;
}

/** The stored JSON: server fields in a fixed place, resourceVersion left out. */
export function encodeStored(obj: RegistryObject): string {
  return JSON.stringify(normalize(obj));
}

/** Orders fields like Kubernetes prints them and drops `metadata.resourceVersion`. */
export function normalize(obj: RegistryObject): RegistryObject {
  return withResourceVersion(obj, undefined);
}

/** `obj` with server fields in a fixed order and the given resourceVersion (or none). */
function withResourceVersion(
  obj: RegistryObject,
  resourceVersion: string | undefined,
): RegistryObject {
  const { apiVersion, kind, metadata, ...rest } = obj;
  const { name, namespace, uid, generation, creationTimestamp, labels, annotations, ...metaRest } =
    metadata;
  delete metaRest.resourceVersion;
  return {
    apiVersion,
    kind,
    // Absent, not undefined: consumers and deep-equality checks see what JSON would hold.
    metadata: dropUndefined({
      name,
      namespace,
      uid,
      resourceVersion,
      generation,
      creationTimestamp,
      labels,
      annotations,
      ...metaRest,
    }),
    ...rest,
  };
}

/**
 * Decodes and validates a stored value; the object's name and namespace must match the
 * key. Throws ClusterMeshError(InvalidEntry): such values come from outside the registry
 * (a raw `kvstore set`, another version) and readers skip them.
 */
export function decodeStored(info: KindInfo, kv: KeyValue): RegistryObject {
  const bad = (reason: string): ClusterMeshError =>
    new ClusterMeshError(ErrorCode.InvalidEntry, `invalid registry entry ${kv.key}: ${reason}`);
  let raw: unknown;
  try {
    raw = JSON.parse(kv.value);
  } catch {
    throw bad('malformed JSON');
  }
  if (isRecord(raw) && raw.kind !== info.kind) {
    throw bad(`kind ${JSON.stringify(raw.kind)} stored under ${info.resource}`);
  }
  const r = validateObject(raw);
  if (!r.ok) throw bad(formatProblem(r.problem));
  const obj = r.object;
  if (keyOf(info, obj) !== kv.key) {
    throw bad(
      `object ${cacheKey(obj.metadata.namespace, obj.metadata.name)} does not match its key`,
    );
  }
  return withResourceVersion(obj, String(kv.modRevision));
}

/** Deep equality of JSON-shaped values, ignoring key order. */
export function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) {
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  }
  if (!isRecord(a) || !isRecord(b)) return false;
  // Absent and undefined are the same once serialised.
  const ka = Object.keys(a).filter((k) => a[k] !== undefined);
  const kb = Object.keys(b).filter((k) => b[k] !== undefined);
  return ka.length === kb.length && ka.every((k) => sameJson(a[k], b[k]));
}

function dropUndefined<T extends object>(obj: T): T {
  // Same type, fewer keys: every dropped key is optional (its value was undefined).
  return Object.fromEntries(Object.entries(obj).filter(([, v]) => v !== undefined)) as T;
}
