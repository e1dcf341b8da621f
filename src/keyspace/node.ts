/**
 * STABLE KEYSPACE CONTRACT — the Node value at `cilium/state/nodes/v1/<cluster>/<name>`
 * (reference `pkg/node/types/node.go`, a Go struct without JSON tags, so field names
 * are PascalCase and appear in declaration order).
 *
 * Wire details that differ from a naive reading of the struct:
 * - Alloc CIDRs are Cilium `*cidr.CIDR` = embedded `*net.IPNet`, which Go marshals as
 *   `{"IP":"10.2.0.0","Mask":"////AA=="}` (base64 mask), `null` when unset. This
 *   module's `Node` type holds them as `"10.2.0.0/24"` strings and converts; the
 *   decoder also accepts the plain string form for robustness.
 * - Unset `net.IP` fields marshal as `""` (not `null`); the type uses `''` too.
 * - Slices and maps that Go leaves nil when empty (addresses, secondary CIDRs,
 *   labels, annotations) are written as `null` when empty, like the reference.
 */

import { z } from 'zod';
import {
  type JsonFragment,
  goArray,
  goInt,
  goNull,
  goString,
  goStringMap,
  goStruct,
} from './gojson.js';
import { canonicalCIDR, canonicalIP, cidrToIPNet, ipNetToCidr } from './ip.js';
import { nodeKeyName } from './keys.js';
import {
  goObject,
  type DecodeOptions,
  checkEntryCluster,
  checkClusterIdRange,
  checkExpectedClusterId,
  invalidEntry,
  invalidValue,
  parseValue,
  zList,
  zString,
  zStringMap,
  zUint32,
  zUint8,
} from './codec.js';

/** `addressing.AddressType` values used by the reference. */
export const NodeAddressType = {
  Hostname: 'Hostname',
  ExternalIP: 'ExternalIP',
  InternalIP: 'InternalIP',
  ExternalDNS: 'ExternalDNS',
  InternalDNS: 'InternalDNS',
  CiliumInternalIP: 'CiliumInternalIP',
} as const;

export interface NodeAddress {
  readonly Type: string;
  /** Canonical IP text, `''` when unset. */
  readonly IP: string;
}

export interface Node {
  readonly Name: string;
  readonly Cluster: string;
  readonly IPAddresses: readonly NodeAddress[];
  /** `"10.2.0.0/24"`, `null` when unset. */
  readonly IPv4AllocCIDR: string | null;
  readonly IPv4SecondaryAllocCIDRs: readonly string[];
  readonly IPv6AllocCIDR: string | null;
  readonly IPv6SecondaryAllocCIDRs: readonly string[];
  /** `''` when unset, as Go marshals a nil `net.IP`. */
  readonly IPv4HealthIP: string;
  readonly IPv6HealthIP: string;
  readonly IPv4IngressIP: string;
  readonly IPv6IngressIP: string;
  readonly ClusterID: number;
  /** e.g. `custom-resource`, `kvstore`, `local`, `clustermesh`. */
  readonly Source: string;
  readonly EncryptionKey: number;
  readonly Labels: Readonly<Record<string, string>>;
  readonly Annotations: Readonly<Record<string, string>>;
  readonly NodeIdentity: number;
  readonly WireguardPubKey: string;
  /** Always written, `""` when unknown (the field has no `omitempty`). */
  readonly BootID: string;
}

/** A node with every optional field at the value the reference would hold. */
export function makeNode(fields: Pick<Node, 'Name' | 'Cluster'> & Partial<Node>): Node {
  return {
    IPAddresses: [],
    IPv4AllocCIDR: null,
    IPv4SecondaryAllocCIDRs: [],
    IPv6AllocCIDR: null,
    IPv6SecondaryAllocCIDRs: [],
    IPv4HealthIP: '',
    IPv6HealthIP: '',
    IPv4IngressIP: '',
    IPv6IngressIP: '',
    ClusterID: 0,
    Source: '',
    EncryptionKey: 0,
    Labels: {},
    Annotations: {},
    NodeIdentity: 0,
    WireguardPubKey: '',
    BootID: '',
    ...fields,
  };
}

/** The key below `cilium/state/nodes/v1`: `<Cluster>/<Name>`. */
export function nodeKeyNameOf(node: Pick<Node, 'Cluster' | 'Name'>): string {
  return nodeKeyName(node.Cluster, node.Name);
}

/** `<cluster>/<node>` unless the cluster is `default` (reference `Node.Fullname()`). */
export function nodeFullname(node: Pick<Node, 'Cluster' | 'Name'>): string {
  return node.Cluster !== 'default' ? nodeKeyName(node.Cluster, node.Name) : node.Name;
}

function encodeIP(field: string, ip: string): JsonFragment {
  if (ip === '') return goString('');
  const canon = canonicalIP(ip);
  if (canon === null) throw invalidValue('node', `${field}: invalid IP ${JSON.stringify(ip)}`);
  return goString(canon);
}

function encodeCIDR(field: string, cidr: string): JsonFragment {
  const ipnet = cidrToIPNet(cidr);
  if (ipnet === null) throw invalidValue('node', `${field}: invalid CIDR ${JSON.stringify(cidr)}`);
  return goStruct([
    ['IP', goString(ipnet.IP)],
    ['Mask', goString(ipnet.Mask)],
  ]);
}

function encodeCIDRList(field: string, list: readonly string[]): JsonFragment {
  return list.length === 0 ? goNull : goArray(list, (c) => encodeCIDR(field, c));
}

function encodeNilableMap(map: Readonly<Record<string, string>>): JsonFragment {
  return Object.keys(map).length === 0 ? goNull : goStringMap(map);
}

/** Serialises a node exactly as the reference's `json.Marshal(node)`. */
export function encodeNode(node: Node): string {
  return goStruct([
    ['Name', goString(node.Name)],
    ['Cluster', goString(node.Cluster)],
    [
      'IPAddresses',
      node.IPAddresses.length === 0
        ? goNull
        : goArray(node.IPAddresses, (a) =>
            goStruct([
              ['Type', goString(a.Type)],
              ['IP', encodeIP('IPAddresses.IP', a.IP)],
            ]),
          ),
    ],
    [
      'IPv4AllocCIDR',
      node.IPv4AllocCIDR === null ? goNull : encodeCIDR('IPv4AllocCIDR', node.IPv4AllocCIDR),
    ],
    [
      'IPv4SecondaryAllocCIDRs',
      encodeCIDRList('IPv4SecondaryAllocCIDRs', node.IPv4SecondaryAllocCIDRs),
    ],
    [
      'IPv6AllocCIDR',
      node.IPv6AllocCIDR === null ? goNull : encodeCIDR('IPv6AllocCIDR', node.IPv6AllocCIDR),
    ],
    [
      'IPv6SecondaryAllocCIDRs',
      encodeCIDRList('IPv6SecondaryAllocCIDRs', node.IPv6SecondaryAllocCIDRs),
    ],
    ['IPv4HealthIP', encodeIP('IPv4HealthIP', node.IPv4HealthIP)],
    ['IPv6HealthIP', encodeIP('IPv6HealthIP', node.IPv6HealthIP)],
    ['IPv4IngressIP', encodeIP('IPv4IngressIP', node.IPv4IngressIP)],
    ['IPv6IngressIP', encodeIP('IPv6IngressIP', node.IPv6IngressIP)],
    ['ClusterID', goInt(node.ClusterID)],
    ['Source', goString(node.Source)],
    ['EncryptionKey', goInt(node.EncryptionKey)],
    ['Labels', encodeNilableMap(node.Labels)],
    ['Annotations', encodeNilableMap(node.Annotations)],
    ['NodeIdentity', goInt(node.NodeIdentity)],
    ['WireguardPubKey', goString(node.WireguardPubKey)],
    ['BootID', goString(node.BootID)],
  ]);
}

const zIPNet = z.union([
  goObject({ IP: zString, Mask: zString }),
  // Not what the reference writes, but unambiguous, so accept it.
  z.string(),
]);

const nodeSchema = goObject({
  Name: zString,
  Cluster: zString,
  IPAddresses: zList(goObject({ Type: zString, IP: zString })),
  IPv4AllocCIDR: zIPNet.nullish(),
  IPv4SecondaryAllocCIDRs: zList(zIPNet.nullable()),
  IPv6AllocCIDR: zIPNet.nullish(),
  IPv6SecondaryAllocCIDRs: zList(zIPNet.nullable()),
  IPv4HealthIP: zString,
  IPv6HealthIP: zString,
  IPv4IngressIP: zString,
  IPv6IngressIP: zString,
  ClusterID: zUint32,
  Source: zString,
  EncryptionKey: zUint8,
  Labels: zStringMap,
  Annotations: zStringMap,
  NodeIdentity: zUint32,
  WireguardPubKey: zString,
  BootID: zString,
});

/**
 * Parses and validates a node value. `keySuffix` is the key below
 * `cilium/state/nodes/v1` (or its cache twin), i.e. `<Cluster>/<Name>`.
 */
export function decodeNode(keySuffix: string, value: string, opts: DecodeOptions = {}): Node {
  const raw = parseValue(nodeSchema, 'node', keySuffix, value);
  const fail = (reason: string) => invalidEntry('node', keySuffix, reason);

  const ip = (field: string, text: string): string => {
    if (text === '') return '';
    const canon = canonicalIP(text);
    if (canon === null) throw fail(`${field}: invalid IP address: ${text}`);
    return canon;
  };
  const cidr = (field: string, v: z.output<typeof zIPNet> | null | undefined): string | null => {
    if (v === null || v === undefined || v === '') return null;
    // A zero IPNet is how Go would write an allocated-but-empty CIDR.
    if (typeof v !== 'string' && v.IP === '' && v.Mask === '') return null;
    const text = typeof v === 'string' ? canonicalCIDR(v) : ipNetToCidr(v.IP, v.Mask);
    if (text === null) throw fail(`${field}: invalid CIDR ${JSON.stringify(v)}`);
    return text;
  };
  const cidrList = (field: string, list: readonly (z.output<typeof zIPNet> | null)[]) =>
    list.flatMap((c) => {
      const text = cidr(field, c);
      return text === null ? [] : [text];
    });

  // The reference's order: value checks, then the cluster-name, name and cluster-ID
  // validators, so that a spoofed entry is reported with the same reason.
  if (raw.Cluster === '') throw fail('cluster is unset');
  if (raw.Name === '') throw fail('name is unset');
  checkClusterIdRange('node', keySuffix, raw.ClusterID, opts);
  checkEntryCluster('node', keySuffix, raw.Cluster, opts);
  const keyName = nodeKeyName(raw.Cluster, raw.Name);
  if (keyName !== keySuffix) {
    // The reference compares the name with the key below `<prefix>/<cluster>/`.
    const clusterPrefix = `${raw.Cluster}/`;
    throw fail(
      keySuffix.startsWith(clusterPrefix)
        ? `name does not match key: got ${raw.Name}, expected ${keySuffix.slice(clusterPrefix.length)}`
        : `name does not match key: got ${keyName}, expected ${keySuffix}`,
    );
  }
  checkExpectedClusterId('node', keySuffix, raw.ClusterID, opts);

  const node: Node = {
    Name: raw.Name,
    Cluster: raw.Cluster,
    IPAddresses: raw.IPAddresses.map((a) => ({ Type: a.Type, IP: ip('IPAddresses.IP', a.IP) })),
    IPv4AllocCIDR: cidr('IPv4AllocCIDR', raw.IPv4AllocCIDR),
    IPv4SecondaryAllocCIDRs: cidrList('IPv4SecondaryAllocCIDRs', raw.IPv4SecondaryAllocCIDRs),
    IPv6AllocCIDR: cidr('IPv6AllocCIDR', raw.IPv6AllocCIDR),
    IPv6SecondaryAllocCIDRs: cidrList('IPv6SecondaryAllocCIDRs', raw.IPv6SecondaryAllocCIDRs),
    IPv4HealthIP: ip('IPv4HealthIP', raw.IPv4HealthIP),
    IPv6HealthIP: ip('IPv6HealthIP', raw.IPv6HealthIP),
    IPv4IngressIP: ip('IPv4IngressIP', raw.IPv4IngressIP),
    IPv6IngressIP: ip('IPv6IngressIP', raw.IPv6IngressIP),
    ClusterID: raw.ClusterID,
    Source: raw.Source,
    EncryptionKey: raw.EncryptionKey,
    Labels: raw.Labels,
    Annotations: raw.Annotations,
    NodeIdentity: raw.NodeIdentity,
    WireguardPubKey: raw.WireguardPubKey,
    BootID: raw.BootID,
  };
  return node;
}
