import { canonicalCIDR } from '../keyspace/index.js';
import { ClusterMeshError, ErrorCode, isClusterMeshError } from '../lib/errors.js';
import { isDns1123Subdomain } from '../registry/names.js';
import type { Registry } from '../registry/registry.js';
import type { CiliumNode } from '../registry/types.js';
import { ipv4ToInt, parseIPv4CIDR, rangeContains, rangesOverlap } from './ipv4.js';

/** A node of the local cluster: where pods run, with its own slice of the pod IPs. */
export interface RuntimeNode {
  /** `cluster1-node1`. */
  readonly name: string;
  /** `127.1.0.1`. */
  readonly ip: string;
  /** `127.1.1.0/24`. */
  readonly podCIDR: string;
}

/**
 * Rejects node lists the runtime cannot serve, with one line naming the culprit:
 * duplicate names or IPs, pod CIDRs that are not IPv4 or overlap (the ipcache would map
 * one pod IP to two nodes), a node IP inside a pod CIDR.
 */
export function validateNodes(cluster: string, nodes: readonly RuntimeNode[]): void {
  const fail = (msg: string): never => {
    throw new ClusterMeshError(ErrorCode.InvalidConfig, `cluster ${cluster}: ${msg}`);
  };
  if (nodes.length === 0) fail('no nodes');
  const names = new Set<string>();
  const ips = new Map<number, string>();
  const ranges: {
    node: string;
    cidr: string;
    range: NonNullable<ReturnType<typeof parseIPv4CIDR>>;
  }[] = [];
  for (const n of nodes) {
    if (!isDns1123Subdomain(n.name))
      fail(`node name ${JSON.stringify(n.name)} is not a valid name`);
    if (names.has(n.name)) fail(`node ${n.name} is listed twice`);
    names.add(n.name);
    const ip = ipv4ToInt(n.ip);
    if (ip === undefined) fail(`node ${n.name}: ${JSON.stringify(n.ip)} is not an IPv4 address`);
    else {
      const other = ips.get(ip);
      if (other !== undefined) fail(`nodes ${other} and ${n.name} have the same IP ${n.ip}`);
      ips.set(ip, n.name);
    }
    const range = parseIPv4CIDR(n.podCIDR);
    if (range === undefined || range.prefixLen > 30) {
      fail(
        `node ${n.name}: pod CIDR ${JSON.stringify(n.podCIDR)} is not an IPv4 CIDR of /30 or larger`,
      );
    } else {
      for (const r of ranges) {
        if (rangesOverlap(r.range, range)) {
          fail(`pod CIDRs of nodes ${r.node} (${r.cidr}) and ${n.name} (${n.podCIDR}) overlap`);
        }
      }
      ranges.push({ node: n.name, cidr: n.podCIDR, range });
    }
  }
  for (const [ip, node] of ips) {
    const r = ranges.find((x) => rangeContains(x.range, ip));
    if (r !== undefined)
      fail(`node ${node}'s IP lies inside the pod CIDR ${r.cidr} of node ${r.node}`);
  }
}

/**
 * Creates or updates one CiliumNode per node. Only the fields the runtime owns change
 * (the InternalIP address, the pod CIDR), so whatever else others recorded survives.
 */
export async function registerNodes(
  registry: Registry,
  nodes: readonly RuntimeNode[],
): Promise<void> {
  for (const n of nodes) {
    const cidr = canonicalCIDR(n.podCIDR) ?? n.podCIDR;
    const withOurs = (cur: CiliumNode['spec']): CiliumNode['spec'] => ({
      ...cur,
      addresses: [
        { type: 'InternalIP', ip: n.ip },
        ...(cur.addresses ?? []).filter((a) => a.type !== 'InternalIP'),
      ],
      ipam: { ...cur.ipam, podCIDRs: [cidr] },
    });
    for (;;) {
      const patched = await registry.patch('CiliumNode', undefined, n.name, (cur) => ({
        ...cur,
        spec: withOurs(cur.spec),
      }));
      if (patched !== undefined) break;
      try {
        await registry.create<CiliumNode>({
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumNode',
          metadata: { name: n.name },
          spec: withOurs({}),
        });
        break;
      } catch (err) {
        // Created meanwhile: patch it on the next round.
        if (!isClusterMeshError(err, ErrorCode.Conflict)) throw err;
      }
    }
  }
}
