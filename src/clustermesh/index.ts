export { ClusterMesh } from './clustermesh.js';
export type { ClusterMeshMetrics, ClusterMeshOptions } from './clustermesh.js';
export {
  RemoteCluster,
  DefaultRemoteClusterTiming,
  type LocalClusterInfo,
  type RemoteClusterLogic,
  type RemoteClusterOptions,
  type RemoteClusterTiming,
} from './remote-cluster.js';
export { ClusterIdsManager } from './idsmgr.js';
export {
  ConfigDirWatcher,
  type ConfigDirHandler,
  type ConfigDirWatcherOptions,
  type IgnoredKind,
} from './config-dir.js';
export {
  defaultRemoteBackendFactory,
  type RemoteBackendFactory,
  type RemoteBackendRequest,
} from './backend-factory.js';
export { formatClusterMeshStatus, formatRemoteCluster, goDuration } from './status-text.js';
export type { StatusTextOptions } from './status-text.js';
export { WaitingForConnection } from './status.js';
export type {
  ClusterMeshStatus,
  IgnoredClusterConfig,
  RemoteClusterConfigStatus,
  RemoteClusterStatus,
  RemoteClusterSyncedStatus,
  RemoteLogicStatus,
  RemoteLogicSynced,
} from './status.js';
