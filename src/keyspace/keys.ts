/**
 * STABLE KEYSPACE CONTRACT — wire-compatible with the reference system (Cilium
 * ClusterMesh, `pkg/kvstore/kvstore.go` and the per-resource stores). Every key the
 * project reads or writes is built here; changing any string breaks interoperability
 * with remote clusters and older releases.
 *
 * Keys follow Go's `path.Join`: empty parts are skipped, the result is cleaned, and
 * there is never a trailing or a double slash.
 */

import { posix } from 'node:path';

export const BaseKeyPrefix = 'cilium';
export const StatePrefix = 'cilium/state';
/** Where KVStoreMesh mirrors remote clusters (1.14+). */
export const CachePrefix = 'cilium/cache';
export const InitLockPath = 'cilium/.initlock';
export const HeartbeatPath = 'cilium/.heartbeat';
/** Legacy marker (1.14/1.15 only) meaning "a cluster config is expected". */
export const HasClusterConfigPath = 'cilium/.has-cluster-config';
export const ClusterConfigPrefix = 'cilium/cluster-config';
export const SyncedPrefix = 'cilium/synced';

export const HeartbeatWriteIntervalMs = 60_000;
/** A heartbeat older than twice the write interval counts as a quorum error. */
export const HeartbeatStaleThresholdMs = 2 * HeartbeatWriteIntervalMs;

export const NodesPrefix = 'cilium/state/nodes/v1';
export const NodeRegisterPrefix = 'cilium/state/noderegister/v1';
export const IdentitiesPrefix = 'cilium/state/identities/v1';
export const IdentitiesIdPrefix = 'cilium/state/identities/v1/id';
export const IdentitiesValuePrefix = 'cilium/state/identities/v1/value';
export const IdentitiesLocksPrefix = 'cilium/state/identities/v1/locks';
/** `IPIdentitiesPath`: the ipcache root, without address space. */
export const IPIdentitiesPath = 'cilium/state/ip/v1';
export const DefaultAddressSpace = 'default';
/** Not cluster-scoped: every cluster writes its own etcd under this prefix. */
export const IPCachePrefix = 'cilium/state/ip/v1/default';
export const ServicesPrefix = 'cilium/state/services/v1';
export const ServiceExportsPrefix = 'cilium/state/serviceexports/v1';

/** Joins key parts with Go `path.Join` semantics. */
export function joinKey(...parts: readonly string[]): string {
  const nonEmpty = parts.filter((p) => p !== '');
  if (nonEmpty.length === 0) return '';
  const joined = posix.normalize(nonEmpty.join('/'));
  return joined.length > 1 && joined.endsWith('/') ? joined.slice(0, -1) : joined;
}

/**
 * The part of `key` below `base` (without the separating slash), or `null` when the
 * key is not strictly under `base`.
 */
export function keySuffix(key: string, base: string): string | null {
  const prefix = `${base}/`;
  if (!key.startsWith(prefix) || key.length === prefix.length) return null;
  return key.slice(prefix.length);
}

/** `StateToCachePrefix`: `cilium/state...` → `cilium/cache...`; anything else unchanged. */
export function stateToCachePrefix(prefix: string): string {
  return prefix.startsWith(StatePrefix) ? CachePrefix + prefix.slice(StatePrefix.length) : prefix;
}

// --- nodes -------------------------------------------------------------------------

/** Key name of a node (`GetKeyNodeName`), i.e. the key below {@link NodesPrefix}. */
export function nodeKeyName(cluster: string, name: string): string {
  return joinKey(cluster, name);
}

export function nodesClusterPrefix(cluster: string): string {
  return joinKey(NodesPrefix, cluster);
}

export function nodeKey(cluster: string, name: string): string {
  return joinKey(NodesPrefix, cluster, name);
}

/** External-workload registration (≤ 1.17): keyed by node name only. */
export function nodeRegisterKey(name: string): string {
  return joinKey(NodeRegisterPrefix, name);
}

// --- identities --------------------------------------------------------------------

/** Master key of a global identity; the value is the sorted label string. */
export function identityKey(id: number): string {
  return joinKey(IdentitiesIdPrefix, identityIdString(id));
}

/** Slave (reference) key used in kvstore allocation mode. */
export function identityValueKey(labelString: string, suffix: string): string {
  return joinKey(IdentitiesValuePrefix, labelString, suffix);
}

function identityIdString(id: number): string {
  if (!Number.isSafeInteger(id) || id < 0) throw new RangeError(`invalid identity ${id}`);
  return String(id);
}

// --- ipcache -----------------------------------------------------------------------

/** Key of an ipcache entry; `prefixString` is `<ip>` or `<ip>/<len>` (see `ipIdentityPairKeyName`). */
export function ipcacheKey(prefixString: string): string {
  return joinKey(IPCachePrefix, prefixString);
}

// --- services / service exports ----------------------------------------------------

/** Key name of a shared service, i.e. the key below {@link ServicesPrefix}. */
export function serviceKeyName(cluster: string, namespace: string, name: string): string {
  return joinKey(cluster, namespace, name);
}

export function servicesClusterPrefix(cluster: string): string {
  return joinKey(ServicesPrefix, cluster);
}

export function serviceKey(cluster: string, namespace: string, name: string): string {
  return joinKey(ServicesPrefix, cluster, namespace, name);
}

export function serviceExportsClusterPrefix(cluster: string): string {
  return joinKey(ServiceExportsPrefix, cluster);
}

export function serviceExportKey(cluster: string, namespace: string, name: string): string {
  return joinKey(ServiceExportsPrefix, cluster, namespace, name);
}

// --- cluster config, canaries ------------------------------------------------------

export function clusterConfigKey(cluster: string): string {
  return joinKey(ClusterConfigPrefix, cluster);
}

export function syncedClusterPrefix(cluster: string): string {
  return joinKey(SyncedPrefix, cluster);
}

/** `path.Join("cilium/synced", sourceCluster, syncedKey)`. */
export function syncedCanaryKey(cluster: string, syncedKey: string): string {
  return joinKey(SyncedPrefix, cluster, syncedKey);
}

// --- per-resource layout -----------------------------------------------------------

/** The resources mirrored between clusters, by their kvstore path segment. */
export type MeshResource = 'nodes' | 'services' | 'serviceexports' | 'identities' | 'ip';
export const MeshResources: readonly MeshResource[] = [
  'nodes',
  'services',
  'serviceexports',
  'identities',
  'ip',
];

/** `cilium/state/<res>/v1`: the unscoped state prefix, also the apiserver's canary suffix. */
export function stateResourcePrefix(resource: MeshResource): string {
  return joinKey(StatePrefix, resource, 'v1');
}

/** `cilium/cache/<res>/v1`: the KVStoreMesh canary suffix of a resource. */
export function cacheResourcePrefix(resource: MeshResource): string {
  return joinKey(CachePrefix, resource, 'v1');
}

/** `cilium/cache/<res>/v1/<cluster>`: where KVStoreMesh mirrors one remote cluster. */
export function cachePrefix(resource: MeshResource, cluster: string): string {
  return joinKey(CachePrefix, resource, 'v1', cluster);
}

export function identitiesCachePrefix(cluster: string): string {
  return cachePrefix('identities', cluster);
}

export function ipcacheCachePrefix(cluster: string): string {
  return cachePrefix('ip', cluster);
}

/**
 * Canary written by the clustermesh-apiserver once a resource is synced. Identities
 * and ipcache override the store prefix (`…/identities/v1/id`, `…/ip/v1/default`)
 * with the unscoped `…/identities/v1`, `…/ip/v1`.
 */
export function apiserverCanaryKey(cluster: string, resource: MeshResource): string {
  return syncedCanaryKey(cluster, stateResourcePrefix(resource));
}

/** Canary written by a KVStoreMesh reflector: `cilium/synced/<c>/cilium/cache/<res>/v1`. */
export function kvstoremeshCanaryKey(cluster: string, resource: MeshResource): string {
  return syncedCanaryKey(cluster, cacheResourcePrefix(resource));
}

/**
 * Where a reader finds one remote cluster's data. `watchPrefix` is what to list and
 * watch; `keyBase` is what to strip from a key (plus `/`) to get the key suffix the
 * decoders expect; `syncedKey` is the canary suffix (below `cilium/synced/<cluster>/`)
 * that gates the watch when the remote advertises sync canaries.
 */
export interface ResourceLocation {
  readonly watchPrefix: string;
  readonly keyBase: string;
  readonly syncedKey: string;
}

/**
 * The reader-side layout of a remote cluster (agent / operator / KVStoreMesh), for
 * direct access (`cached = false`) or through KVStoreMesh (`cached = true`, taken from
 * the remote's cluster config capabilities). For identities, `watchPrefix` is the
 * base of the tree; agents and KVStoreMesh read only its master keys, `<watchPrefix>/id`.
 */
export function remoteClusterLayout(
  cluster: string,
  cached: boolean,
): Readonly<Record<MeshResource, ResourceLocation>> {
  const adapt = (p: string): string => (cached ? stateToCachePrefix(p) : p);
  const scoped = (resource: 'nodes' | 'services' | 'serviceexports'): ResourceLocation => {
    const base = adapt(stateResourcePrefix(resource));
    return { watchPrefix: joinKey(base, cluster), keyBase: base, syncedKey: base };
  };
  const identities = cached ? identitiesCachePrefix(cluster) : IdentitiesPrefix;
  const ip = cached ? ipcacheCachePrefix(cluster) : IPCachePrefix;
  return {
    nodes: scoped('nodes'),
    services: scoped('services'),
    serviceexports: scoped('serviceexports'),
    identities: {
      watchPrefix: identities,
      keyBase: identities,
      syncedKey: adapt(stateResourcePrefix('identities')),
    },
    ip: { watchPrefix: ip, keyBase: ip, syncedKey: adapt(stateResourcePrefix('ip')) },
  };
}
