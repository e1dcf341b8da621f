/**
 * Registry objects → kvstore types, as the reference's converters do
 * (`ParseCiliumNode`, CiliumIdentity → label string, CiliumEndpoint → one
 * IPIdentityPair per address).
 */
import {
  canonicalCIDR,
  canonicalIP,
  formatLabelsForKVStore,
  makeNode,
  type IPIdentityPair,
  type Node,
} from '../keyspace/index.js';
import type { CiliumEndpoint, CiliumIdentity, CiliumNode } from '../registry/types.js';

export interface LocalCluster {
  readonly name: string;
  readonly id: number;
}

export function nodeFromCiliumNode(cn: CiliumNode, cluster: LocalCluster): Node {
  const cidrs = (cn.spec.ipam?.podCIDRs ?? [])
    .map((c) => canonicalCIDR(c))
    .filter((c): c is string => c !== null);
  const v4 = cidrs.filter((c) => !c.includes(':'));
  const v6 = cidrs.filter((c) => c.includes(':'));
  return makeNode({
    Name: cn.metadata.name,
    Cluster: cluster.name,
    ClusterID: cluster.id,
    IPAddresses: (cn.spec.addresses ?? []).map((a) => ({
      Type: a.type,
      IP: canonicalIP(a.ip) ?? a.ip,
    })),
    IPv4AllocCIDR: v4[0] ?? null,
    IPv4SecondaryAllocCIDRs: v4.slice(1),
    IPv6AllocCIDR: v6[0] ?? null,
    IPv6SecondaryAllocCIDRs: v6.slice(1),
    IPv4HealthIP: cn.spec.health?.ipv4 ?? '',
    IPv6HealthIP: cn.spec.health?.ipv6 ?? '',
    IPv4IngressIP: cn.spec.ingress?.ipv4 ?? '',
    IPv6IngressIP: cn.spec.ingress?.ipv6 ?? '',
    Source: 'custom-resource',
    EncryptionKey: cn.spec.encryption?.key ?? 0,
    Labels: cn.metadata.labels ?? {},
    Annotations: cn.metadata.annotations ?? {},
  });
}

/** The master key value; `undefined` for an identity without labels (skipped, as in the reference). */
export function labelStringFromCiliumIdentity(ci: CiliumIdentity): string | undefined {
  const labels = ci['security-labels'];
  if (Object.keys(labels).length === 0) return undefined;
  return formatLabelsForKVStore(labels);
}

/** One entry per address of the endpoint; none without an identity. */
export function ipcacheEntriesFromEndpoint(cep: CiliumEndpoint): IPIdentityPair[] {
  const st = cep.status;
  const id = st.identity?.id;
  if (id === undefined) return [];
  const hostIP = st.networking?.node ?? '';
  const out: IPIdentityPair[] = [];
  for (const a of st.networking?.addressing ?? []) {
    for (const ip of [a.ipv4, a.ipv6]) {
      if (ip === undefined || ip === '') continue;
      const canonical = canonicalIP(ip);
      if (canonical === null) continue;
      out.push({
        IP: canonical,
        Mask: null,
        HostIP: hostIP,
        ID: id,
        Key: st.encryption?.key ?? 0,
        Metadata: '',
        K8sNamespace: cep.metadata.namespace ?? 'default',
        K8sPodName: cep.metadata.name,
        ...(st['named-ports'] === undefined || st['named-ports'].length === 0
          ? {}
          : {
              NamedPorts: st['named-ports'].map((p) => ({
                Name: p.name,
                Port: p.port,
                Protocol: p.protocol ?? 'TCP',
              })),
            }),
      });
    }
  }
  return out;
}
