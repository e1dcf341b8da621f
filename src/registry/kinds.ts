import type { z } from 'zod';
import { NameRules, type NameRule } from './names.js';
import type { KindName, KindTypes } from './objects.js';
import {
  ciliumEndpointSchema,
  ciliumIdentitySchema,
  ciliumNodeSchema,
  clusterRoleBindingSchema,
  clusterRoleSchema,
  configMapSchema,
  daemonSetSchema,
  deploymentSchema,
  endpointSliceSchema,
  identitySchema,
  namespaceSchema,
  podSchema,
  roleBindingSchema,
  roleSchema,
  secretSchema,
  serviceAccountSchema,
  serviceExportSchema,
  serviceImportSchema,
  serviceSchema,
  type IdentitySchema,
} from './schemas.js';
import {
  ciliumClusterwideNetworkPolicySchema,
  ciliumNetworkPolicySchema,
  networkPolicySchema,
} from './policy-schemas.js';
import type { RegistryObject } from './types.js';
import { ciliumExternalWorkloadSchema } from './external-workload-schema.js';

/** The kinds the registry stores: how they are named, addressed and validated. */

export interface KindInfo<K extends KindName = KindName> {
  /** `CiliumNode`. */
  readonly kind: K;
  /** API group, `''` for the core group. */
  readonly group: string;
  /** Accepted apiVersions; the first is the preferred one. */
  readonly apiVersions: readonly string[];
  /** Plural lowercase resource name, used in keys: `ciliumnodes`. */
  readonly resource: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly namespaced: boolean;
  /** The rule its objects' names follow. */
  readonly nameRule: NameRule;
  readonly schema: z.ZodType<KindTypes[K]>;
  /** apiVersion, kind and metadata only: enough to locate an object (e.g. to delete it). */
  readonly identitySchema: z.ZodType<RegistryObject>;
}

interface KindEntry<K extends KindName> {
  readonly kind: K;
  /** Default `''`, the core group. */
  readonly group?: string;
  readonly versions: readonly string[];
  readonly resource: string;
  readonly shortNames: readonly string[];
  readonly namespaced: boolean;
  readonly nameRule: NameRule;
  /** The full schema, an extension of the kind's identity schema. */
  readonly schema: (identity: IdentitySchema<K>) => z.ZodType<KindTypes[K]>;
}

function entry<K extends KindName>(e: KindEntry<K>): KindInfo<K> {
  const group = e.group ?? '';
  const identity = identitySchema(e.kind, e.nameRule);
  return {
    kind: e.kind,
    group,
    apiVersions: e.versions.map((v) => (group === '' ? v : `${group}/${v}`)),
    resource: e.resource,
    singular: e.kind.toLowerCase(),
    shortNames: e.shortNames,
    namespaced: e.namespaced,
    nameRule: e.nameRule,
    schema: e.schema(identity),
    identitySchema: identity,
  };
}

const CILIUM = 'cilium.io';
const RBAC = 'rbac.authorization.k8s.io';
const MCS = 'multicluster.x-k8s.io';
// v1beta1 is the storage version of mcs-api v0.5.0; v1alpha1 is still served, field-identical.
const MCS_VERSIONS = ['v1beta1', 'v1alpha1'];

const TABLE: { readonly [K in KindName]: KindInfo<K> } = {
  Namespace: entry({
    kind: 'Namespace',
    versions: ['v1'],
    resource: 'namespaces',
    shortNames: ['ns'],
    namespaced: false,
    nameRule: NameRules.dns1123Label,
    schema: namespaceSchema,
  }),
  Service: entry({
    kind: 'Service',
    versions: ['v1'],
    resource: 'services',
    shortNames: ['svc'],
    namespaced: true,
    nameRule: NameRules.dns1035Label,
    schema: serviceSchema,
  }),
  EndpointSlice: entry({
    kind: 'EndpointSlice',
    group: 'discovery.k8s.io',
    versions: ['v1'],
    resource: 'endpointslices',
    shortNames: [],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: endpointSliceSchema,
  }),
  Pod: entry({
    kind: 'Pod',
    versions: ['v1'],
    resource: 'pods',
    shortNames: ['po'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: podSchema,
  }),
  Deployment: entry({
    kind: 'Deployment',
    group: 'apps',
    versions: ['v1'],
    resource: 'deployments',
    shortNames: ['deploy'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: deploymentSchema,
  }),
  CiliumNode: entry({
    kind: 'CiliumNode',
    group: CILIUM,
    versions: ['v2'],
    resource: 'ciliumnodes',
    shortNames: ['cn', 'ciliumn'],
    namespaced: false,
    nameRule: NameRules.dns1123Subdomain,
    schema: ciliumNodeSchema,
  }),
  CiliumEndpoint: entry({
    kind: 'CiliumEndpoint',
    group: CILIUM,
    versions: ['v2'],
    resource: 'ciliumendpoints',
    shortNames: ['cep', 'ciliumep'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: ciliumEndpointSchema,
  }),
  CiliumIdentity: entry({
    kind: 'CiliumIdentity',
    group: CILIUM,
    versions: ['v2'],
    resource: 'ciliumidentities',
    shortNames: ['ciliumid'],
    namespaced: false,
    nameRule: NameRules.numericIdentity,
    schema: ciliumIdentitySchema,
  }),
  CiliumNetworkPolicy: entry({
    kind: 'CiliumNetworkPolicy',
    group: CILIUM,
    versions: ['v2'],
    resource: 'ciliumnetworkpolicies',
    shortNames: ['cnp', 'ciliumnp'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: ciliumNetworkPolicySchema,
  }),
  CiliumClusterwideNetworkPolicy: entry({
    kind: 'CiliumClusterwideNetworkPolicy',
    group: CILIUM,
    versions: ['v2'],
    resource: 'ciliumclusterwidenetworkpolicies',
    shortNames: ['ccnp'],
    namespaced: false,
    nameRule: NameRules.dns1123Subdomain,
    schema: ciliumClusterwideNetworkPolicySchema,
  }),
  NetworkPolicy: entry({
    kind: 'NetworkPolicy',
    group: 'networking.k8s.io',
    versions: ['v1'],
    resource: 'networkpolicies',
    shortNames: ['netpol'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: networkPolicySchema,
  }),
  CiliumExternalWorkload: entry({
    kind: 'CiliumExternalWorkload',
    group: CILIUM,
    versions: ['v2'],
    resource: 'ciliumexternalworkloads',
    shortNames: ['cew'],
    namespaced: false,
    nameRule: NameRules.dns1123Subdomain,
    schema: ciliumExternalWorkloadSchema,
  }),
  ServiceExport: entry({
    kind: 'ServiceExport',
    group: MCS,
    versions: MCS_VERSIONS,
    resource: 'serviceexports',
    shortNames: ['svcex', 'svcexport'],
    namespaced: true,
    nameRule: NameRules.dns1035Label,
    schema: serviceExportSchema,
  }),
  ServiceImport: entry({
    kind: 'ServiceImport',
    group: MCS,
    versions: MCS_VERSIONS,
    resource: 'serviceimports',
    shortNames: ['svcim', 'svcimport'],
    namespaced: true,
    nameRule: NameRules.dns1035Label,
    schema: serviceImportSchema,
  }),
  ConfigMap: entry({
    kind: 'ConfigMap',
    versions: ['v1'],
    resource: 'configmaps',
    shortNames: ['cm'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: configMapSchema,
  }),
  // What deploying the daemons takes (deploy/helm/clustermesh): stored and served by the
  // Kubernetes API; the RBAC kinds also authorize its ServiceAccount requests.
  DaemonSet: entry({
    kind: 'DaemonSet',
    group: 'apps',
    versions: ['v1'],
    resource: 'daemonsets',
    shortNames: ['ds'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: daemonSetSchema,
  }),
  ServiceAccount: entry({
    kind: 'ServiceAccount',
    versions: ['v1'],
    resource: 'serviceaccounts',
    shortNames: ['sa'],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: serviceAccountSchema,
  }),
  Secret: entry({
    kind: 'Secret',
    versions: ['v1'],
    resource: 'secrets',
    shortNames: [],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: secretSchema,
  }),
  Role: entry({
    kind: 'Role',
    group: RBAC,
    versions: ['v1'],
    resource: 'roles',
    shortNames: [],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: roleSchema,
  }),
  ClusterRole: entry({
    kind: 'ClusterRole',
    group: RBAC,
    versions: ['v1'],
    resource: 'clusterroles',
    shortNames: [],
    namespaced: false,
    nameRule: NameRules.dns1123Subdomain,
    schema: clusterRoleSchema,
  }),
  RoleBinding: entry({
    kind: 'RoleBinding',
    group: RBAC,
    versions: ['v1'],
    resource: 'rolebindings',
    shortNames: [],
    namespaced: true,
    nameRule: NameRules.dns1123Subdomain,
    schema: roleBindingSchema,
  }),
  ClusterRoleBinding: entry({
    kind: 'ClusterRoleBinding',
    group: RBAC,
    versions: ['v1'],
    resource: 'clusterrolebindings',
    shortNames: [],
    namespaced: false,
    nameRule: NameRules.dns1123Subdomain,
    schema: clusterRoleBindingSchema,
  }),
};

/** Every kind, in a stable order (the table's). */
export const KINDS: readonly KindInfo[] = Object.values(TABLE);

export function isKindName(kind: string): kind is KindName {
  return Object.hasOwn(TABLE, kind);
}

export function kindInfo<K extends KindName>(kind: K): KindInfo<K> {
  return TABLE[kind];
}

/** The kind of a manifest's `kind` field (exact, case-sensitive), or `undefined`. */
export function findKind(kind: string): KindInfo | undefined {
  return isKindName(kind) ? TABLE[kind] : undefined;
}

/**
 * What a user may type for a kind on the command line, kubectl style: the kind, its
 * singular or plural lowercase name, a short name, optionally qualified by the group
 * (`serviceexports.multicluster.x-k8s.io`); case-insensitive.
 */
export function resolveKindName(text: string): KindInfo | undefined {
  const lower = text.toLowerCase();
  for (const k of KINDS) {
    const names = [k.singular, k.resource, ...k.shortNames];
    if (names.includes(lower)) return k;
    if (k.group !== '' && names.some((n) => lower === `${n}.${k.group}`)) return k;
  }
  return undefined;
}

export function knownKindNames(): string {
  return KINDS.map((k) => k.kind).join(', ');
}
