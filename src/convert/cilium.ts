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

/** The WireGuard public key annotation and its legacy alias; the first one wins. */
export const WireguardPubKeyAnnotation = 'network.cilium.io/wg-pub-key';
export const WireguardPubKeyAnnotationAlias = 'io.cilium.network.wg-pub-key';

/** Canonical text of an IP, or `''` (Go's nil `net.IP`) when it does not parse. */
function ipOrEmpty(text: string | undefined): string {
  return text === undefined ? '' : (canonicalIP(text) ?? '');
}

function annotationOf(
  annotations: Readonly<Record<string, string>> | undefined,
  name: string,
  alias: string,
): string {
  if (annotations === undefined) return '';
  if (Object.hasOwn(annotations, name)) return annotations[name] ?? '';
  return Object.hasOwn(annotations, alias) ? (annotations[alias] ?? '') : '';
}

function arrayOrEmpty<T>(v: readonly T[] | undefined): readonly T[] {
  return Array.isArray(v) ? (v as readonly T[]) : [];
}

/** A uint32 field of a registry object that the registry does not validate; else 0. */
function uint32OrZero(v: unknown): number {
  return typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : 0;
}

/**
 * The reference's `ParseCiliumNode` plus the cluster name and ID. Unparsable
 * addresses, health/ingress IPs and CIDRs are skipped one by one (the reference
 * "silently ignores" them), so one bad field never keeps the node from being exported.
 * Pod CIDRs come from `ipam.podCIDRs` and then every allocated multi-pool CIDR: the
 * first of each family is the primary, the rest are secondary.
 */
export function nodeFromCiliumNode(cn: CiliumNode, cluster: LocalCluster): Node {
  const spec = cn.spec;
  const cidrs = [
    ...(spec.ipam?.podCIDRs ?? []),
    ...arrayOrEmpty(spec.ipam?.pools?.allocated).flatMap((p) => arrayOrEmpty(p.cidrs)),
  ]
    // The registry does not validate these newer fields: anything but a string is skipped.
    .map((c: unknown) => (typeof c === 'string' ? canonicalCIDR(c) : null))
    .filter((c): c is string => c !== null);
  const v4 = cidrs.filter((c) => !c.includes(':'));
  const v6 = cidrs.filter((c) => c.includes(':'));
  const addresses = (spec.addresses ?? []).flatMap((a) => {
    const ip = canonicalIP(a.ip);
    return ip === null ? [] : [{ Type: a.type, IP: ip }];
  });
  return makeNode({
    Name: cn.metadata.name,
    Cluster: cluster.name,
    ClusterID: cluster.id,
    IPAddresses: addresses,
    IPv4AllocCIDR: v4[0] ?? null,
    IPv4SecondaryAllocCIDRs: v4.slice(1),
    IPv6AllocCIDR: v6[0] ?? null,
    IPv6SecondaryAllocCIDRs: v6.slice(1),
    IPv4HealthIP: ipOrEmpty(spec.health?.ipv4),
    IPv6HealthIP: ipOrEmpty(spec.health?.ipv6),
    IPv4IngressIP: ipOrEmpty(spec.ingress?.ipv4),
    IPv6IngressIP: ipOrEmpty(spec.ingress?.ipv6),
    Source: 'custom-resource',
    EncryptionKey: spec.encryption?.key ?? 0,
    Labels: cn.metadata.labels ?? {},
    Annotations: cn.metadata.annotations ?? {},
    NodeIdentity: uint32OrZero(spec.nodeidentity),
    WireguardPubKey: annotationOf(
      cn.metadata.annotations,
      WireguardPubKeyAnnotation,
      WireguardPubKeyAnnotationAlias,
    ),
    BootID: typeof spec.bootid === 'string' ? spec.bootid : '',
  });
}

/** The master key value; `undefined` for an identity without labels (skipped, as in the reference). */
export function labelStringFromCiliumIdentity(ci: CiliumIdentity): string | undefined {
  const labels = ci['security-labels'];
  if (Object.keys(labels).length === 0) return undefined;
  return formatLabelsForKVStore(labels);
}

/**
 * One entry per address of the endpoint, as the reference apiserver writes them: an
 * endpoint without an identity yet gets ID 0, a node address that is not an IP
 * becomes `""`, an address that is not an IP is skipped, and no named ports are
 * written (only agents in kvstore mode write those).
 */
export function ipcacheEntriesFromEndpoint(cep: CiliumEndpoint): IPIdentityPair[] {
  const st = cep.status;
  const networking = st.networking;
  if (networking === undefined) return [];
  const id = st.identity?.id ?? 0;
  const hostIP = ipOrEmpty(networking.node);
  const out: IPIdentityPair[] = [];
  for (const a of networking.addressing) {
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
      });
    }
  }
  return out;
}
