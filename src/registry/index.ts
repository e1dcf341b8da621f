/** The local cluster registry: what daemons and the CLI import. */
export type * from './types.js';
export type {
  ConditionStatus,
  Container,
  ContainerPort,
  Deployment,
  DeploymentSpec,
  DeploymentStatus,
  EnvVar,
  Endpoint,
  EndpointConditions,
  EndpointPort,
  EndpointSlice,
  KindName,
  KindTypes,
  Namespace,
  ObjectReference,
  Pod,
  PodCondition,
  PodPhase,
  PodSpec,
  PodStatus,
  PodTemplate,
  Protocol,
  Service,
  ServicePort,
  ServiceType,
} from './objects.js';
export { SERVICE_NAME_LABEL } from './objects.js';
export type { KindInfo } from './kinds.js';
export { KINDS, findKind, isKindName, kindInfo, resolveKindName } from './kinds.js';
export type { NameRule } from './names.js';
export { NameRules } from './names.js';
export type { ValidateOptions, ValidationProblem, ValidationResult } from './validation.js';
export { formatPath, formatProblem, parseObject, validateObject } from './validation.js';
export type { ServiceJoin, ServiceJoinEvent, ServiceJoinHandlers } from './service-join.js';
export { ServiceSliceIndex, joinServices } from './service-join.js';
export type { LoadManifestOptions, ManifestObject } from './manifest.js';
export { STDIN_SOURCE, loadManifests, manifestFiles, parseManifest } from './manifest.js';
export {
  REGISTRY_PREFIX,
  cacheKey,
  decodeStored,
  encodeStored,
  objectKey,
  resourcePrefix,
} from './codec.js';
export type { ApplyAction, ApplyResult, RegistryOptions } from './registry.js';
export { Registry, resultLine } from './registry.js';
export type { InformerOptions } from './informer.js';
export { createInformer } from './informer.js';
export type { TableOptions } from './printers.js';
export { formatAge, formatTable } from './printers.js';
