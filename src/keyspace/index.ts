/**
 * STABLE KEYSPACE CONTRACT — key builders and value codecs wire-compatible with the
 * reference system (Cilium ClusterMesh). See the header of each module for details.
 */

export {
  BaseKeyPrefix,
  StatePrefix,
  CachePrefix,
  InitLockPath,
  HeartbeatPath,
  HasClusterConfigPath,
  ClusterConfigPrefix,
  SyncedPrefix,
  HeartbeatWriteIntervalMs,
  HeartbeatStaleThresholdMs,
  NodesPrefix,
  NodeRegisterPrefix,
  IdentitiesPrefix,
  IdentitiesIdPrefix,
  IdentitiesValuePrefix,
  IdentitiesLocksPrefix,
  IPIdentitiesPath,
  DefaultAddressSpace,
  IPCachePrefix,
  ServicesPrefix,
  ServiceExportsPrefix,
  MeshResources,
  joinKey,
  keySuffix,
  stateToCachePrefix,
  nodeKeyName,
  nodesClusterPrefix,
  nodeKey,
  nodeRegisterKey,
  identityKey,
  identityValueKey,
  ipcacheKey,
  serviceKeyName,
  servicesClusterPrefix,
  serviceKey,
  serviceExportsClusterPrefix,
  serviceExportKey,
  clusterConfigKey,
  syncedClusterPrefix,
  syncedCanaryKey,
  stateResourcePrefix,
  cacheResourcePrefix,
  cachePrefix,
  identitiesCachePrefix,
  ipcacheCachePrefix,
  apiserverCanaryKey,
  kvstoremeshCanaryKey,
  remoteClusterLayout,
} from './keys.js';
export type { MeshResource, ResourceLocation } from './keys.js';

export {
  DefaultClusterName,
  ClusterNameMaxLength,
  ClusterNameRegex,
  DefaultMaxConnectedClusters,
  SupportedMaxConnectedClusters,
  clusterNameProblem,
  validateClusterName,
  isValidClusterName,
  isMaxConnectedClusters,
  validateMaxConnectedClusters,
  clusterIdMax,
  clusterIdProblem,
  validateClusterId,
  validateClusterInfo,
  NumericIdentityBitlength,
  IdentityScopeMask,
  IdentityScopeGlobal,
  IdentityScopeLocal,
  IdentityScopeRemoteNode,
  MinimalNumericIdentity,
  UserReservedNumericIdentity,
  ReservedIdentity,
  ReservedIdentityNames,
  clusterIdShift,
  clusterIdentityRange,
  identityClusterId,
  identityScope,
  isReservedIdentity,
  isIdentityInClusterRange,
} from './cluster.js';
export type { MaxConnectedClusters, ClusterInfo, IdentityRange } from './cluster.js';

export {
  LabelSource,
  PolicyLabelCluster,
  PolicyLabelServiceAccount,
  PodNamespaceLabel,
  PodNamespaceMetaLabelsPrefix,
  clusterLabel,
  parseLabel,
  formatLabel,
  sortLabels,
  labelsFromRecord,
  labelsToRecord,
  formatLabelsForKVStore,
  parseLabelsFromKVStore,
} from './labels.js';
export type { Label } from './labels.js';

export {
  parseIP,
  formatIP,
  canonicalIP,
  isValidIP,
  ipFamily,
  decodeMask,
  maskFromPrefixLen,
  prefixLenFromMask,
  parseCIDR,
  canonicalCIDR,
  cidrToIPNet,
  ipNetToCidr,
} from './ip.js';
export type { IPFamily, ParsedCIDR, GoIPNet } from './ip.js';

export type { DecodeOptions } from './codec.js';

export {
  NodeAddressType,
  makeNode,
  nodeKeyNameOf,
  nodeFullname,
  encodeNode,
  decodeNode,
} from './node.js';
export type { Node, NodeAddress } from './node.js';

export {
  ipIdentityPairKeyName,
  ipAndMaskFor,
  encodeIPIdentityPair,
  decodeIPIdentityPair,
} from './ipcache.js';
export type { IPIdentityPair, NamedPort } from './ipcache.js';

export {
  makeClusterService,
  clusterServiceKeyName,
  encodeClusterService,
  decodeClusterService,
  GlobalServiceAnnotation,
  GlobalServiceAnnotationAlias,
  SharedServiceAnnotation,
  SharedServiceAnnotationAlias,
  ServiceAffinityAnnotation,
  ServiceAffinityAnnotationAlias,
  GlobalSyncEndpointSlicesAnnotation,
  globalServiceSettings,
  globalSyncEndpointSlices,
} from './service.js';
export type {
  ClusterService,
  L4Addr,
  PortConfiguration,
  BackendZone,
  ServiceAffinity,
  GlobalServiceSettings,
} from './service.js';

export {
  MCSTrafficDistributions,
  serviceExportKeyName,
  encodeMCSAPIServiceSpec,
  decodeMCSAPIServiceSpec,
} from './serviceexport.js';
export type {
  MCSAPIServiceSpec,
  MCSServicePort,
  MCSSessionAffinityConfig,
  MCSServiceImportType,
  MCSSessionAffinity,
  MCSInternalTrafficPolicy,
} from './serviceexport.js';

export {
  makeClusterConfig,
  apiserverClusterConfig,
  kvstoremeshClusterConfig,
  encodeClusterConfig,
  decodeClusterConfig,
  validateRemoteClusterConfig,
  serviceExportsStatus,
} from './clusterconfig.js';
export type { CiliumClusterConfig, ClusterConfigCapabilities } from './clusterconfig.js';

export {
  parseIdentityId,
  parseIdentityKeyId,
  parseIdentityKeySuffix,
  encodeIdentity,
  decodeIdentity,
  validateRemoteIdentity,
  validateRemoteIPCacheIdentity,
  remoteIPCacheIdentity,
} from './identity.js';
export type { GlobalIdentity, IdentityKeySuffix, RemoteClusterRef } from './identity.js';

export {
  GO_ZERO_TIME_MS,
  formatRFC3339,
  rfc3339Now,
  parseRFC3339,
  encodeHeartbeat,
  decodeHeartbeat,
  encodeSyncedCanary,
  decodeSyncedCanary,
} from './time.js';

export { compareGoStrings } from './gojson.js';
