import { createHash } from 'node:crypto';
import type { Condition, ConditionStatus } from '../registry/objects.js';

/**
 * MCS-API (KEP-1645) names shared by the export, the operator and the CLI. The strings
 * are part of the API contract: condition types and reasons are mcs-api v1beta1's, the
 * labels and annotations the ones DNS servers and Cilium read.
 */

export const MCS_API_VERSION = 'multicluster.x-k8s.io/v1beta1';

/** Links an MCS EndpointSlice to its ServiceImport (like `kubernetes.io/service-name`). */
export const MCS_SERVICE_NAME_LABEL = 'multicluster.kubernetes.io/service-name';
/** The cluster whose endpoints an MCS EndpointSlice holds. */
export const MCS_SOURCE_CLUSTER_LABEL = 'multicluster.kubernetes.io/source-cluster';
/** On the ServiceImport: the name of the Service that carries its clusterset IP. */
export const DERIVED_SERVICE_ANNOTATION = 'multicluster.kubernetes.io/derived-service';
export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
/** Slices the operator mirrors from the local cluster's exported Service. */
export const LOCAL_MIRROR_MANAGER = 'endpointslice-local-mcsapi-controller.cilium.io';
/** Slices the operator builds from a remote cluster's endpoints (headless imports). */
export const MESH_MIRROR_MANAGER = 'endpointslice-mesh-controller.cilium.io';
/** On a locally mirrored slice: the slice it copies. */
export const LOCAL_SLICE_LABEL = 'service.cilium.io/local-endpointslice';

/**
 * On a Namespace: `"false"` keeps its Services out of the clusterset (not exported, not
 * imported); any other value, or none, leaves it global (Cilium's
 * `clustermesh-default-global-namespace` default).
 */
export const GLOBAL_NAMESPACE_ANNOTATION = 'clustermesh.cilium.io/global';

export const ConditionType = {
  Valid: 'Valid',
  Ready: 'Ready',
  Conflict: 'Conflict',
} as const;

export const Reason = {
  Valid: 'Valid',
  NoService: 'NoService',
  InvalidServiceType: 'InvalidServiceType',
  NamespaceNotGlobal: 'NamespaceNotGlobal',
  Ready: 'Ready',
  Pending: 'Pending',
  NoConflicts: 'NoConflicts',
  PortConflict: 'PortConflict',
  TypeConflict: 'TypeConflict',
  SessionAffinityConflict: 'SessionAffinityConflict',
  SessionAffinityConfigConflict: 'SessionAffinityConfigConflict',
  AnnotationsConflict: 'AnnotationsConflict',
  LabelsConflict: 'LabelsConflict',
  InternalTrafficPolicyConflict: 'InternalTrafficPolicyConflict',
  TrafficDistributionConflict: 'TrafficDistributionConflict',
  IPFamilyConflict: 'IPFamilyConflict',
} as const;

/**
 * The name of the Service carrying a ServiceImport's clusterset IP: `derived-` and the
 * first 10 characters of the lower-case, unpadded base32hex encoding of
 * SHA-256(`<namespace>/<name>`), the function of the mcs-api reference controllers and
 * Cilium. Every cluster computes the same name, which is what lets the global-service
 * machinery merge the derived Services of all clusters.
 */
export function derivedServiceName(namespace: string, name: string): string {
  const digest = createHash('sha256').update(`${namespace}/${name}`).digest();
  return `derived-${base32hex(digest).slice(0, 10).toLowerCase()}`;
}

const BASE32HEX = '0123456789ABCDEFGHIJKLMNOPQRSTUV';

function base32hex(bytes: Uint8Array): string {
  let out = '';
  let bits = 0;
  let value = 0;
  for (const b of bytes) {
    value = (value << 8) | b;
    bits += 8;
    while (bits >= 5) {
      out += BASE32HEX.charAt((value >>> (bits - 5)) & 31);
      bits -= 5;
    }
    value &= (1 << bits) - 1;
  }
  if (bits > 0) out += BASE32HEX.charAt((value << (5 - bits)) & 31);
  return out;
}

/** A condition as the operator wants it; the transition time is filled in by {@link setConditions}. */
export interface DesiredCondition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
}

/**
 * The new condition list: `desired` replace their types, `removed` types go, the others
 * stay. `lastTransitionTime` moves only when a condition's status changes (metav1
 * semantics), so a reconcile that changes nothing rewrites nothing.
 */
export function setConditions(
  current: readonly Condition[] | undefined,
  desired: readonly DesiredCondition[],
  removed: readonly string[],
  now: string,
): Condition[] {
  const byType = new Map((current ?? []).map((c) => [c.type, c]));
  for (const t of removed) byType.delete(t);
  for (const d of desired) {
    const old = byType.get(d.type);
    byType.set(d.type, {
      type: d.type,
      status: d.status,
      reason: d.reason,
      message: d.message,
      lastTransitionTime:
        old !== undefined && old.status === d.status ? old.lastTransitionTime : now,
    });
  }
  return [...byType.values()];
}
