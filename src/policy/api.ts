/**
 * The policy objects as users write them: `cilium.io/v2` CiliumNetworkPolicy and
 * CiliumClusterwideNetworkPolicy, and `networking.k8s.io/v1` NetworkPolicy. Field names
 * are exactly the Kubernetes / Cilium ones so manifests load unchanged; only the L3/L4
 * subset the engine evaluates is typed (the parser refuses the rest by name).
 */

export type SelectorOperator = 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** Cilium's EndpointSelector has the shape of a Kubernetes LabelSelector. */
export type EndpointSelector = LabelSelector;

export type CiliumEntity =
  | 'all'
  | 'world'
  | 'world-ipv4'
  | 'world-ipv6'
  | 'cluster'
  | 'cluster-mesh'
  | 'host'
  | 'remote-node'
  | 'kube-apiserver'
  | 'health'
  | 'init'
  | 'ingress'
  | 'unmanaged'
  | 'none';

export interface CIDRRule {
  cidr: string;
  except?: string[];
}

export type CiliumProtocol = 'TCP' | 'UDP' | 'SCTP' | 'ANY';

export interface PortProtocol {
  /** A decimal port ("0" = every port), or a named port. */
  port: string | number;
  endPort?: number;
  protocol?: CiliumProtocol;
}

export interface PortRule {
  ports?: PortProtocol[];
}

export interface IngressRule {
  fromEndpoints?: EndpointSelector[];
  fromEntities?: CiliumEntity[];
  fromCIDR?: string[];
  fromCIDRSet?: CIDRRule[];
  toPorts?: PortRule[];
}

export interface EgressRule {
  toEndpoints?: EndpointSelector[];
  toEntities?: CiliumEntity[];
  toCIDR?: string[];
  toCIDRSet?: CIDRRule[];
  toPorts?: PortRule[];
}

/** Deny rules carry ports only (no L7), which at L3/L4 is the same shape. */
export type IngressDenyRule = IngressRule;
export type EgressDenyRule = EgressRule;

export interface DefaultDenyConfig {
  ingress?: boolean;
  egress?: boolean;
}

export interface CiliumRule {
  endpointSelector: EndpointSelector;
  ingress?: IngressRule[];
  egress?: EgressRule[];
  ingressDeny?: IngressDenyRule[];
  egressDeny?: EgressDenyRule[];
  enableDefaultDeny?: DefaultDenyConfig;
  labels?: unknown[];
  description?: string;
  log?: unknown;
}

export interface ObjectMeta {
  name: string;
  namespace?: string;
  uid?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

export interface CiliumNetworkPolicy {
  apiVersion: 'cilium.io/v2';
  kind: 'CiliumNetworkPolicy';
  metadata: ObjectMeta;
  spec?: CiliumRule;
  specs?: CiliumRule[];
}

export interface CiliumClusterwideNetworkPolicy {
  apiVersion: 'cilium.io/v2';
  kind: 'CiliumClusterwideNetworkPolicy';
  metadata: ObjectMeta;
  spec?: CiliumRule;
  specs?: CiliumRule[];
}

export type K8sProtocol = 'TCP' | 'UDP' | 'SCTP';

export interface NetworkPolicyPort {
  protocol?: K8sProtocol;
  port?: number | string;
  endPort?: number;
}

export interface IPBlock {
  cidr: string;
  except?: string[];
}

export interface NetworkPolicyPeer {
  podSelector?: LabelSelector;
  namespaceSelector?: LabelSelector;
  ipBlock?: IPBlock;
}

export interface NetworkPolicyIngressRule {
  from?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export interface NetworkPolicyEgressRule {
  to?: NetworkPolicyPeer[];
  ports?: NetworkPolicyPort[];
}

export type PolicyType = 'Ingress' | 'Egress';

export interface NetworkPolicySpec {
  podSelector: LabelSelector;
  policyTypes?: PolicyType[];
  ingress?: NetworkPolicyIngressRule[];
  egress?: NetworkPolicyEgressRule[];
}

export interface NetworkPolicy {
  apiVersion: 'networking.k8s.io/v1';
  kind: 'NetworkPolicy';
  metadata: ObjectMeta;
  spec: NetworkPolicySpec;
}

export type PolicyObject = CiliumNetworkPolicy | CiliumClusterwideNetworkPolicy | NetworkPolicy;
