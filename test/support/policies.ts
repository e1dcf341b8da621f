/** The seeds' cross-cluster policy, verbatim: x-wing of cluster1 may reach rebel-base of cluster2. */
export const ALLOW_CROSS_CLUSTER = `apiVersion: "cilium.io/v2"
kind: CiliumNetworkPolicy
metadata:
  name: "allow-cross-cluster"
  description: "Allow x-wing in cluster1 to contact rebel-base in cluster2"
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
      io.cilium.k8s.policy.cluster: cluster1
  egress:
  - toEndpoints:
    - matchLabels:
        name: rebel-base
        io.cilium.k8s.policy.cluster: cluster2
`;

/**
 * DNS for every pod of the namespace it is applied to: once a policy selects a pod for
 * egress, its lookups to the cluster DNS (kube-system/coredns) are dropped unless allowed.
 */
export const ALLOW_DNS = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: allow-dns
spec:
  endpointSelector: {}
  egress:
  - toEndpoints:
    - matchLabels:
        k8s:io.kubernetes.pod.namespace: kube-system
        k8s:k8s-app: kube-dns
    toPorts:
    - ports:
      - port: "53"
        protocol: ANY
`;
