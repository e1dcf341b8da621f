/**
 * The ClusterMesh status model, JSON-compatible with the reference's
 * `api/v1/models/remote_cluster*.go` (field names are the JSON keys) and with the
 * `status -o json` contract of DESIGN §5. Optional fields are the reference's
 * `omitempty`/nullable ones: they appear only where the component has them (service
 * exports for KVStoreMesh/operator, last-failure once a failure happened).
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
  /** null: the remote does not support service exports; absent: not relevant here. */
  readonly 'service-exports-enabled'?: boolean | null;
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
