import type { NetworkPolicySpec, PolicyRule, PolicyStatus } from './policy-schemas.js';
import type { CiliumEndpoint, CiliumIdentity, CiliumNode, RegistryObject } from './types.js';
import type { CiliumExternalWorkload } from './external-workload-schema.js';

export type { CiliumExternalWorkload } from './external-workload-schema.js';

export type {
  CIDRRule,
  EgressRule,
  Entity,
  IPBlock,
  IngressRule,
  L4Proto,
  LabelSelector,
  LabelSelectorRequirement,
  NetworkPolicyEgressRule,
  NetworkPolicyIngressRule,
  NetworkPolicyPeer,
  NetworkPolicyPort,
  NetworkPolicySpec,
  PolicyRule,
  PolicyStatus,
  PortProtocol,
  PortRule,
} from './policy-schemas.js';

/**
 * Typed shapes of the Kubernetes kinds daemons read, beside the Cilium ones in types.ts.
 * Kept here rather than in types.ts (the agreed contract) so that adding them changes no
 * existing export; they may move there once consumers settle on them.
 */

export interface Namespace extends RegistryObject {
  readonly kind: 'Namespace';
}

export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type ServiceType = 'ClusterIP' | 'NodePort' | 'LoadBalancer' | 'ExternalName';

export interface ServicePort {
  readonly name?: string | undefined;
  readonly port: number;
  /** A port number or the name of a container port. */
  readonly targetPort?: number | string | undefined;
  readonly nodePort?: number | undefined;
  /** Defaulted to TCP by the registry. */
  readonly protocol: Protocol;
}

export interface Service extends RegistryObject {
  readonly kind: 'Service';
  readonly spec: {
    /** Defaulted to ClusterIP by the registry. */
    readonly type: ServiceType;
    /** An IP, `None` (headless) or empty (to be allocated). */
    readonly clusterIP?: string | undefined;
    readonly clusterIPs?: readonly string[] | undefined;
    /** Defaulted to `[]`. */
    readonly ports: readonly ServicePort[];
    readonly selector?: Readonly<Record<string, string>> | undefined;
    readonly externalName?: string | undefined;
    readonly sessionAffinity?: 'None' | 'ClientIP' | undefined;
    readonly [field: string]: unknown;
  };
}

export interface EndpointConditions {
  readonly ready?: boolean | undefined;
  readonly serving?: boolean | undefined;
  readonly terminating?: boolean | undefined;
}

export interface ObjectReference {
  readonly kind?: string | undefined;
  readonly namespace?: string | undefined;
  readonly name?: string | undefined;
  readonly uid?: string | undefined;
}

export interface Endpoint {
  readonly addresses: readonly string[];
  readonly conditions?: EndpointConditions | undefined;
  readonly hostname?: string | undefined;
  readonly nodeName?: string | undefined;
  readonly zone?: string | undefined;
  readonly targetRef?: ObjectReference | undefined;
}

export interface EndpointPort {
  readonly name?: string | undefined;
  readonly port?: number | undefined;
  /** Defaulted to TCP by the registry. */
  readonly protocol: Protocol;
  readonly appProtocol?: string | undefined;
}

/** The label naming the Service an EndpointSlice belongs to; required by the registry. */
export const SERVICE_NAME_LABEL = 'kubernetes.io/service-name';

export interface EndpointSlice extends RegistryObject {
  readonly kind: 'EndpointSlice';
  readonly addressType: 'IPv4' | 'IPv6' | 'FQDN';
  /** Defaulted to `[]`. */
  readonly endpoints: readonly Endpoint[];
  /** Defaulted to `[]`. */
  readonly ports: readonly EndpointPort[];
}

export interface ContainerPort {
  readonly containerPort: number;
  /** An IANA service name, what a Service's `targetPort` may refer to. */
  readonly name?: string | undefined;
  /** Defaulted to TCP by the registry. */
  readonly protocol: Protocol;
  readonly hostPort?: number | undefined;
  readonly [field: string]: unknown;
}

export interface EnvVar {
  readonly name: string;
  readonly value?: string | undefined;
  readonly [field: string]: unknown;
}

export interface Container {
  readonly name: string;
  readonly image: string;
  readonly ports?: readonly ContainerPort[] | undefined;
  readonly env?: readonly EnvVar[] | undefined;
  readonly command?: readonly string[] | undefined;
  readonly args?: readonly string[] | undefined;
  readonly [field: string]: unknown;
}

export interface PodSpec {
  /** At least one. */
  readonly containers: readonly Container[];
  /** The node the pod runs on: set by the user, or by the scheduler when it binds the pod. */
  readonly nodeName?: string | undefined;
  /** Its identity's `io.cilium.k8s.policy.serviceaccount` label (`default` when unset). */
  readonly serviceAccountName?: string | undefined;
  readonly [field: string]: unknown;
}

export type PodPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed' | 'Unknown';
export type ConditionStatus = 'True' | 'False' | 'Unknown';

export interface PodCondition {
  /** `PodScheduled`, `Initialized`, `ContainersReady`, `Ready`. */
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason?: string | undefined;
  readonly message?: string | undefined;
  readonly lastTransitionTime?: string | undefined;
  readonly [field: string]: unknown;
}

export interface PodStatus {
  readonly phase?: PodPhase | undefined;
  readonly podIP?: string | undefined;
  readonly podIPs?: readonly { readonly ip: string }[] | undefined;
  /** The IP of the node the pod runs on. */
  readonly hostIP?: string | undefined;
  /** Why the pod is in its phase, CamelCase (`UnknownImage`). */
  readonly reason?: string | undefined;
  readonly message?: string | undefined;
  /** RFC3339. */
  readonly startTime?: string | undefined;
  readonly conditions?: readonly PodCondition[] | undefined;
  readonly [field: string]: unknown;
}

export interface Pod extends RegistryObject {
  readonly kind: 'Pod';
  readonly spec: PodSpec;
  readonly status?: PodStatus | undefined;
}

export interface PodTemplate {
  readonly metadata?:
    | {
        readonly labels?: Readonly<Record<string, string>> | undefined;
        readonly annotations?: Readonly<Record<string, string>> | undefined;
        readonly [field: string]: unknown;
      }
    | undefined;
  readonly spec: PodSpec;
}

export interface DeploymentSpec {
  /** Defaulted to 1 by the registry. */
  readonly replicas: number;
  /** `matchLabels` is required and non-empty; the template's labels must match it. */
  readonly selector: {
    readonly matchLabels: Readonly<Record<string, string>>;
    readonly [field: string]: unknown;
  };
  readonly template: PodTemplate;
  readonly [field: string]: unknown;
}

export interface DeploymentStatus {
  readonly replicas?: number | undefined;
  readonly readyReplicas?: number | undefined;
  readonly availableReplicas?: number | undefined;
  readonly updatedReplicas?: number | undefined;
  readonly observedGeneration?: number | undefined;
  readonly [field: string]: unknown;
}

export interface Deployment extends RegistryObject {
  readonly kind: 'Deployment';
  readonly spec: DeploymentSpec;
  readonly status?: DeploymentStatus | undefined;
}

/**
 * A namespaced Cilium policy: one rule in `spec`, a list in `specs`, or both (at least one
 * rule in all). Its rules never carry `nodeSelector`.
 */
export interface CiliumNetworkPolicy extends RegistryObject {
  readonly kind: 'CiliumNetworkPolicy';
  readonly spec?: PolicyRule | undefined;
  readonly specs?: readonly PolicyRule[] | undefined;
  readonly status?: PolicyStatus | undefined;
}

/** A cluster-scoped Cilium policy; a rule selects endpoints or (host policy) nodes. */
export interface CiliumClusterwideNetworkPolicy extends RegistryObject {
  readonly kind: 'CiliumClusterwideNetworkPolicy';
  readonly spec?: PolicyRule | undefined;
  readonly specs?: readonly PolicyRule[] | undefined;
  readonly status?: PolicyStatus | undefined;
}

/** A Kubernetes NetworkPolicy; `spec.policyTypes` is defaulted as the API server does. */
export interface NetworkPolicy extends RegistryObject {
  readonly kind: 'NetworkPolicy';
  readonly spec: NetworkPolicySpec;
}

/** A `metav1.Condition` (MCS-API status). */
export interface Condition {
  readonly type: string;
  readonly status: ConditionStatus;
  readonly reason: string;
  readonly message: string;
  /** RFC 3339; changes only when `status` changes. */
  readonly lastTransitionTime: string;
  readonly observedGeneration?: number | undefined;
}

/** MCS-API `ServicePort` (multicluster.x-k8s.io): no targetPort, no nodePort. */
export interface MCSPort {
  readonly name?: string | undefined;
  /** Defaulted to TCP by the registry. */
  readonly protocol: Protocol;
  readonly appProtocol?: string | undefined;
  readonly port: number;
}

export interface SessionAffinityConfig {
  readonly clientIP?: { readonly timeoutSeconds?: number | undefined } | undefined;
}

/** KEP-1645 ServiceExport (`multicluster.x-k8s.io/v1beta1`): exports the same-named Service. */
export interface ServiceExport extends RegistryObject {
  readonly kind: 'ServiceExport';
  readonly spec?:
    | {
        readonly exportedLabels?: Readonly<Record<string, string>> | undefined;
        readonly exportedAnnotations?: Readonly<Record<string, string>> | undefined;
      }
    | undefined;
  readonly status?: { readonly conditions?: readonly Condition[] | undefined } | undefined;
}

/** KEP-1645 ServiceImport (`multicluster.x-k8s.io/v1beta1`), written by the operator only. */
export interface ServiceImport extends RegistryObject {
  readonly kind: 'ServiceImport';
  readonly spec: {
    readonly ports: readonly MCSPort[];
    readonly ips?: readonly string[] | undefined;
    readonly type: 'ClusterSetIP' | 'Headless';
    readonly sessionAffinity?: 'None' | 'ClientIP' | undefined;
    readonly sessionAffinityConfig?: SessionAffinityConfig | undefined;
    readonly ipFamilies?: readonly ('IPv4' | 'IPv6')[] | undefined;
    readonly internalTrafficPolicy?: 'Cluster' | 'Local' | undefined;
    readonly trafficDistribution?: string | undefined;
  };
  readonly status?:
    | {
        readonly clusters?: readonly { readonly cluster: string }[] | undefined;
        readonly conditions?: readonly Condition[] | undefined;
      }
    | undefined;
}

/** A ConfigMap: string data (and base64 binary data) that pods mount or read. */
export interface ConfigMap extends RegistryObject {
  readonly kind: 'ConfigMap';
  readonly data?: Readonly<Record<string, string>> | undefined;
  readonly binaryData?: Readonly<Record<string, string>> | undefined;
  readonly immutable?: boolean | undefined;
}

/** A DaemonSet: one pod per node (stored; local mode does not run it). */
export interface DaemonSet extends RegistryObject {
  readonly kind: 'DaemonSet';
  readonly spec: {
    readonly selector: { readonly matchLabels: Readonly<Record<string, string>> };
    readonly template: PodTemplate;
    readonly [field: string]: unknown;
  };
}

export interface ServiceAccount extends RegistryObject {
  readonly kind: 'ServiceAccount';
  readonly automountServiceAccountToken?: boolean | undefined;
}

/** A Secret: base64 `data` (and write-only `stringData`). */
export interface Secret extends RegistryObject {
  readonly kind: 'Secret';
  readonly type?: string | undefined;
  readonly data?: Readonly<Record<string, string>> | undefined;
  readonly stringData?: Readonly<Record<string, string>> | undefined;
  readonly immutable?: boolean | undefined;
}

/** One RBAC rule: verbs on resources (with subresources `pods/log`) of API groups. */
export interface RbacPolicyRule {
  readonly verbs: readonly string[];
  readonly apiGroups?: readonly string[] | undefined;
  readonly resources?: readonly string[] | undefined;
  readonly resourceNames?: readonly string[] | undefined;
  readonly nonResourceURLs?: readonly string[] | undefined;
}

export interface RbacSubject {
  readonly kind: 'ServiceAccount' | 'User' | 'Group';
  readonly name: string;
  readonly namespace?: string | undefined;
  readonly apiGroup?: string | undefined;
}

export interface RoleRef {
  readonly apiGroup: 'rbac.authorization.k8s.io';
  readonly kind: 'Role' | 'ClusterRole';
  readonly name: string;
}

export interface Role extends RegistryObject {
  readonly kind: 'Role';
  readonly rules: readonly RbacPolicyRule[];
}

export interface ClusterRole extends RegistryObject {
  readonly kind: 'ClusterRole';
  readonly rules: readonly RbacPolicyRule[];
}

export interface RoleBinding extends RegistryObject {
  readonly kind: 'RoleBinding';
  readonly roleRef: RoleRef;
  readonly subjects: readonly RbacSubject[];
}

export interface ClusterRoleBinding extends RegistryObject {
  readonly kind: 'ClusterRoleBinding';
  readonly roleRef: RoleRef;
  readonly subjects: readonly RbacSubject[];
}

/**
 * Kind name → the type its objects decode to. The registry's methods and informers are
 * generic over these names, so `createInformer(backend, 'CiliumNode', …)` yields CiliumNodes.
 * Kinds validated only for apiVersion/kind/metadata decode to plain RegistryObjects.
 */
export interface KindTypes {
  Namespace: Namespace;
  Service: Service;
  EndpointSlice: EndpointSlice;
  CiliumNode: CiliumNode;
  CiliumEndpoint: CiliumEndpoint;
  CiliumIdentity: CiliumIdentity;
  Pod: Pod;
  Deployment: Deployment;
  CiliumNetworkPolicy: CiliumNetworkPolicy;
  CiliumClusterwideNetworkPolicy: CiliumClusterwideNetworkPolicy;
  NetworkPolicy: NetworkPolicy;
  CiliumExternalWorkload: CiliumExternalWorkload;
  ServiceExport: ServiceExport;
  ServiceImport: ServiceImport;
  ConfigMap: ConfigMap;
  DaemonSet: DaemonSet;
  ServiceAccount: ServiceAccount;
  Secret: Secret;
  Role: Role;
  ClusterRole: ClusterRole;
  RoleBinding: RoleBinding;
  ClusterRoleBinding: ClusterRoleBinding;
}

export type KindName = keyof KindTypes;
