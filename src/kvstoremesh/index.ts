export {
  KvstoreMesh,
  DefaultGlobalReadyTimeoutMs,
  DefaultKvstoreMeshHealthAddr,
  DefaultPerClusterReadyTimeoutMs,
  validateKvstoreMeshOptions,
  type KvstoreMeshOptions,
} from './module.js';
export {
  KvstoreMeshRemoteCluster,
  DefaultKvstoreMeshRemoteTiming,
  cachedPrefixes,
  type KvstoreMeshRemoteOptions,
  type KvstoreMeshRemoteTiming,
} from './remote-cluster.js';
export { Reflector, type ReflectorOptions, type ReflectorWriteOptions } from './reflector.js';
export { DefaultKvstoreMeshStatusUrl, fetchKvstoreMeshStatus } from './status-client.js';
