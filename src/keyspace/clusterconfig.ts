/**
 * STABLE KEYSPACE CONTRACT — the CiliumClusterConfig value at
 * `cilium/cluster-config/<cluster>` (reference `pkg/clustermesh/types/types.go`).
 * Every field is `omitempty` except `capabilities` (a struct, which Go's omitempty
 * never drops); `serviceExportsEnabled` is a `*bool`: `null`/absent means "the remote
 * does not support MCS export sync", `false` means "supported but disabled".
 */

import { z } from 'zod';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { clusterIdProblem, type MaxConnectedClusters } from './cluster.js';
import { goBool, goInt, goStruct } from './gojson.js';
import { goObject, parseValue, zBool, zUint32 } from './codec.js';

export interface ClusterConfigCapabilities {
  /** The cluster writes `cilium/synced/...` canaries. */
  readonly syncedCanaries: boolean;
  /** Data lives under `cilium/cache/...`, cluster-scoped (written by KVStoreMesh). */
  readonly cached: boolean;
  /** 0 when the writer predates the field (≤ 1.14). */
  readonly maxConnectedClusters: number;
  readonly serviceExportsEnabled: boolean | null;
}

export interface CiliumClusterConfig {
  readonly id: number;
  readonly capabilities: ClusterConfigCapabilities;
}

export function makeClusterConfig(
  id: number,
  capabilities: Partial<ClusterConfigCapabilities> = {},
): CiliumClusterConfig {
  return {
    id,
    capabilities: {
      syncedCanaries: false,
      cached: false,
      maxConnectedClusters: 0,
      serviceExportsEnabled: null,
      ...capabilities,
    },
  };
}

/** What the clustermesh-apiserver writes for its own cluster. */
export function apiserverClusterConfig(opts: {
  readonly id: number;
  readonly maxConnectedClusters: MaxConnectedClusters;
  readonly serviceExportsEnabled: boolean;
}): CiliumClusterConfig {
  return makeClusterConfig(opts.id, {
    syncedCanaries: true,
    maxConnectedClusters: opts.maxConnectedClusters,
    serviceExportsEnabled: opts.serviceExportsEnabled,
  });
}

/** What KVStoreMesh writes into the local etcd for a remote cluster it mirrors. */
export function kvstoremeshClusterConfig(remote: CiliumClusterConfig): CiliumClusterConfig {
  return makeClusterConfig(remote.id, {
    syncedCanaries: true,
    cached: true,
    maxConnectedClusters: remote.capabilities.maxConnectedClusters,
    serviceExportsEnabled: remote.capabilities.serviceExportsEnabled,
  });
}

/** Serialises like the reference's `json.Marshal(config)`. */
export function encodeClusterConfig(config: CiliumClusterConfig): string {
  const c = config.capabilities;
  return goStruct([
    ['id', config.id === 0 ? undefined : goInt(config.id)],
    [
      'capabilities',
      goStruct([
        ['syncedCanaries', c.syncedCanaries ? goBool(true) : undefined],
        ['cached', c.cached ? goBool(true) : undefined],
        [
          'maxConnectedClusters',
          c.maxConnectedClusters === 0 ? undefined : goInt(c.maxConnectedClusters),
        ],
        [
          'serviceExportsEnabled',
          c.serviceExportsEnabled === null ? undefined : goBool(c.serviceExportsEnabled),
        ],
      ]),
    ],
  ]);
}

const configSchema = goObject({
  id: zUint32,
  capabilities: goObject({
    syncedCanaries: zBool,
    cached: zBool,
    maxConnectedClusters: zUint32,
    serviceExportsEnabled: z
      .boolean()
      .nullish()
      .transform((v) => v ?? null),
  }).nullish(),
});

/**
 * Parses a cluster config value. `clusterName` (the key below
 * `cilium/cluster-config`) only labels errors: the value does not repeat it. The ID
 * is not range-checked here; use {@link validateRemoteClusterConfig}.
 */
export function decodeClusterConfig(clusterName: string, value: string): CiliumClusterConfig {
  const raw = parseValue(configSchema, 'cluster config', clusterName, value);
  return makeClusterConfig(raw.id, raw.capabilities ?? {});
}

/**
 * The reference's `ClusterInfo.ValidateRemoteConfig`: the remote ID must be a valid
 * cluster ID under the local limit, and with 511 clusters both sides must agree on
 * max-connected-clusters. Throws ClusterMeshError(InvalidEntry) with the reference text.
 */
export function validateRemoteClusterConfig(
  config: CiliumClusterConfig,
  local: { readonly maxConnectedClusters: MaxConnectedClusters },
): void {
  const problem = clusterIdProblem(config.id, local.maxConnectedClusters);
  if (problem !== null) throw new ClusterMeshError(ErrorCode.InvalidEntry, problem);
  const remoteMax = config.capabilities.maxConnectedClusters;
  if (local.maxConnectedClusters !== 255 && remoteMax !== local.maxConnectedClusters) {
    throw new ClusterMeshError(
      ErrorCode.InvalidEntry,
      `mismatched MaxConnectedClusters; local=${local.maxConnectedClusters}, remote=${remoteMax}`,
    );
  }
}

/** Status text of `serviceExportsEnabled` as shown by `status --verbose`. */
export function serviceExportsStatus(config: CiliumClusterConfig): string {
  const v = config.capabilities.serviceExportsEnabled;
  return v === null ? 'unsupported' : v ? 'enabled' : 'disabled';
}
