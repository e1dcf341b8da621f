import type { RemoteCertificate } from './remote-certs.js';

export type { RemoteCertificate } from './remote-certs.js';

/**
 * The ClusterMesh status model, with the field names of the reference's
 * `api/v1/models/remote_cluster*.go` (the JSON keys). In memory and on the daemons'
 * status APIs every field is present; {@link clusterMeshStatusJson} gives the
 * reference's `omitempty` bytes that `status -o json` prints.
 */

/** What the business logic of one remote cluster reports (agent, KVStoreMesh, operator). */
export interface RemoteLogicStatus {
  readonly numNodes: number;
  /** ipcache entries (IPs), not pods. */
  readonly numEndpoints: number;
  readonly numIdentities: number;
  readonly numSharedServices: number;
  /** Present only for components that sync MCS-API service exports. */
  readonly numServiceExports?: number | undefined;
  readonly synced: RemoteLogicSynced;
}

export interface RemoteLogicSynced {
  readonly nodes: boolean;
  readonly endpoints: boolean;
  readonly identities: boolean;
  readonly services: boolean;
  /** Present only for components that sync MCS-API service exports. */
  readonly serviceExports?: boolean | undefined;
}

/** `RemoteClusterConfig`. */
export interface RemoteClusterConfigStatus {
  readonly required: boolean;
  readonly retrieved: boolean;
  readonly 'cluster-id': number;
  readonly kvstoremesh: boolean;
  readonly 'sync-canaries': boolean;
  /** Absent: the remote does not support service exports (the reference's nil). */
  readonly 'service-exports-enabled'?: boolean;
}

/** `RemoteClusterSynced`. */
export interface RemoteClusterSyncedStatus {
  readonly nodes: boolean;
  readonly endpoints: boolean;
  readonly identities: boolean;
  readonly services: boolean;
  readonly 'service-exports'?: boolean;
}

/** `RemoteCluster`. */
export interface RemoteClusterStatus {
  readonly name: string;
  readonly connected: boolean;
  readonly ready: boolean;
  /** etcd status string, the reason the last attempt failed, or the initial waiting text. */
  readonly status: string;
  /** Absent until a connection reached the configuration step (reference: nil). */
  readonly config?: RemoteClusterConfigStatus;
  readonly 'num-nodes': number;
  readonly 'num-endpoints': number;
  readonly 'num-identities': number;
  readonly 'num-shared-services': number;
  readonly 'num-service-exports'?: number;
  readonly 'num-failures': number;
  /** RFC 3339 with milliseconds; absent while no failure happened. */
  readonly 'last-failure'?: string;
  readonly synced: RemoteClusterSyncedStatus;
  /**
   * How current the view of the cluster is (not in the reference, so left out of its
   * JSON); each field absent until its first sample.
   */
  readonly freshness?: RemoteClusterFreshness;
  /**
   * The certificates its config file names, with their expiry (not in the reference, so
   * left out of its JSON); absent for a plaintext remote.
   */
  readonly certificates?: readonly RemoteCertificate[];
}

/** See freshness.ts. Times are RFC 3339 with milliseconds, of the local clock. */
export interface RemoteClusterFreshness {
  /** When the last heartbeat was received. */
  readonly 'last-heartbeat'?: string;
  /** When a watch last delivered a change. */
  readonly 'last-event'?: string;
  /** Receive time minus the last heartbeat's own time (an upper bound, ±clock skew). */
  readonly 'propagation-delay-ms'?: number;
}

/** A file in the configuration directory that looks like a config but is not used. */
export interface IgnoredClusterConfig {
  readonly name: string;
  readonly reason: string;
}

/** `ClusterMeshStatus`. */
export interface ClusterMeshStatus {
  /** Sorted by name. */
  readonly clusters: readonly RemoteClusterStatus[];
  readonly 'num-global-services'?: number;
  /** Config files skipped because their name is not a valid cluster name (not in the reference). */
  readonly 'ignored-configs'?: readonly IgnoredClusterConfig[];
}

export const WaitingForConnection = 'Waiting for initial connection to be established';

/** What Go's `strfmt.DateTime` writes for the zero time (`last-failure` never happened). */
export const GoZeroDateTime = '0001-01-01T00:00:00.000Z';

type Json = Record<string, unknown>;

/** Drops the fields Go's `omitempty` drops: false, 0, '' and undefined. */
function omitEmpty(o: Readonly<Record<string, unknown>>): Json {
  const out: Json = {};
  for (const [k, v] of Object.entries(o)) {
    if (v === undefined || v === false || v === 0 || v === '') continue;
    out[k] = v;
  }
  return out;
}

/**
 * The reference's JSON of one remote cluster: every field `omitempty` except
 * `last-failure`, which is always written (the zero time when there was no failure).
 * `service-exports-enabled: false` stays, as it is a pointer in the reference.
 */
export function remoteClusterStatusJson(c: RemoteClusterStatus): Json {
  const cfg = c.config;
  const exportsEnabled = cfg?.['service-exports-enabled'];
  const synced = c.synced;
  const exportsSynced = synced['service-exports'];
  return omitEmpty({
    name: c.name,
    connected: c.connected,
    ready: c.ready,
    status: c.status,
    config:
      cfg === undefined
        ? undefined
        : {
            ...omitEmpty({
              'cluster-id': cfg['cluster-id'],
              kvstoremesh: cfg.kvstoremesh,
              required: cfg.required,
              retrieved: cfg.retrieved,
            }),
            ...(exportsEnabled === undefined ? {} : { 'service-exports-enabled': exportsEnabled }),
            ...omitEmpty({ 'sync-canaries': cfg['sync-canaries'] }),
          },
    'num-nodes': c['num-nodes'],
    'num-endpoints': c['num-endpoints'],
    'num-identities': c['num-identities'],
    'num-shared-services': c['num-shared-services'],
    'num-service-exports': c['num-service-exports'],
    'num-failures': c['num-failures'],
    'last-failure': c['last-failure'] ?? GoZeroDateTime,
    synced: {
      ...omitEmpty({
        endpoints: synced.endpoints,
        identities: synced.identities,
        nodes: synced.nodes,
      }),
      ...(exportsSynced === undefined ? {} : { 'service-exports': exportsSynced }),
      ...omitEmpty({ services: synced.services }),
    },
  });
}

/** The reference's `ClusterMeshStatus` JSON (`clusters` always present). */
export function clusterMeshStatusJson(status: ClusterMeshStatus): Json {
  return {
    clusters: status.clusters.map(remoteClusterStatusJson),
    ...omitEmpty({ 'num-global-services': status['num-global-services'] }),
    ...(status['ignored-configs'] === undefined
      ? {}
      : { 'ignored-configs': status['ignored-configs'] }),
  };
}
