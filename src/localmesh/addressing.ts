import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

/**
 * The local mesh's address plan: everything lives in 127.0.0.0/8 so
 * nothing leaves the machine. Cluster c (its ID) owns 127.c.0.0/16:
 *   node n        127.c.0.n            (n = 1..MAX_NODES)
 *   pods of n     127.c.n.0/24         (inside the cluster pod CIDR 127.c.0.0/17)
 *   ClusterIPs    127.c.128.0/17
 *   etcd          127.c.128.2          (the clustermesh-apiserver Service's ClusterIP)
 *   DNS           127.c.128.10
 *   apiserver     127.c.128.2:9880 (health, /metrics) and :9962 (/metrics)
 *   VMs           127.c.250.0/24      (inside the ClusterIP range, which skips it)
 */

export const MAX_CLUSTERS = 255;
/** Node /24s must stay inside 127.c.0.0/17 and must not be 127.c.0.0/24 (the node IPs). */
export const MAX_NODES = 127;
/** Agent API port on each node IP; a free port is used when it is taken. */
export const AGENT_API_PORT = 9876;
/** The clustermesh-apiserver's health port (also serves /metrics) and metrics port. */
export const APISERVER_HEALTH_PORT = 9880;
export const APISERVER_METRICS_PORT = 9962;

export interface NodeAddressing {
  readonly name: string;
  readonly ip: string;
  readonly podCIDR: string;
}

export interface ClusterAddressing {
  readonly name: string;
  readonly id: number;
  readonly podCIDR: string;
  readonly serviceCIDR: string;
  readonly dnsIP: string;
  /** Where the cluster's etcd listens: what `<cluster>.mesh.cilium.io` stands for. */
  readonly etcdIP: string;
  /** Where the cluster's VMs (`clustermesh vm run`) live. */
  readonly vmCIDR: string;
  readonly nodes: readonly NodeAddressing[];
}

export function clusterAddressing(id: number, nodes: number): ClusterAddressing {
  if (!Number.isInteger(id) || id < 1 || id > MAX_CLUSTERS) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `cluster ID ${id}: the local mesh supports IDs 1..${MAX_CLUSTERS}`,
    );
  }
  if (!Number.isInteger(nodes) || nodes < 1 || nodes > MAX_NODES) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `--nodes ${nodes}: expected 1..${MAX_NODES} (one /24 of 127.${id}.0.0/17 per node)`,
    );
  }
  const name = `cluster${id}`;
  return {
    name,
    id,
    podCIDR: `127.${id}.0.0/17`,
    serviceCIDR: `127.${id}.128.0/17`,
    dnsIP: `127.${id}.128.10`,
    etcdIP: `127.${id}.128.2`,
    vmCIDR: vmCIDR(id),
    nodes: Array.from({ length: nodes }, (_, i) => ({
      name: `${name}-node${i + 1}`,
      ip: `127.${id}.0.${i + 1}`,
      podCIDR: `127.${id}.${i + 1}.0/24`,
    })),
  };
}

function parseCidr(cidr: string): { base: number; bits: number } {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (m === null) throw new ClusterMeshError(ErrorCode.InvalidArgument, `invalid CIDR ${cidr}`);
  const octets = [m[1], m[2], m[3], m[4]].map(Number);
  const bits = Number(m[5]);
  if (octets.some((o) => o > 255) || bits > 32) {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `invalid CIDR ${cidr}`);
  }
  const ip = octets.reduce((acc, o) => acc * 256 + o, 0);
  const size = 2 ** (32 - bits);
  return { base: ip - (ip % size), bits };
}

function contains(outer: { base: number; bits: number }, ip: number): boolean {
  const size = 2 ** (32 - outer.bits);
  return ip >= outer.base && ip < outer.base + size;
}

/**
 * Pod CIDRs must be disjoint across every node of every cluster: the ipcache maps an
 * IP to exactly one endpoint. One line names the first overlapping pair.
 */
export function validatePodCidrs(
  entries: readonly { readonly owner: string; readonly cidr: string }[],
): void {
  const parsed = entries.map((e) => ({ ...e, net: parseCidr(e.cidr) }));
  for (let i = 0; i < parsed.length; i++) {
    for (let j = i + 1; j < parsed.length; j++) {
      const a = parsed[i];
      const b = parsed[j];
      if (a === undefined || b === undefined) continue;
      if (contains(a.net, b.net.base) || contains(b.net, a.net.base)) {
        throw new ClusterMeshError(
          ErrorCode.InvalidConfig,
          `pod CIDR ${a.cidr} of ${a.owner} overlaps ${b.cidr} of ${b.owner}`,
        );
      }
    }
  }
}

/** The node whose pod CIDR (or node IP) holds `ip`; undefined for host addresses. */
export function nodeOfIP<N extends NodeAddressing>(nodes: readonly N[], ip: string): N | undefined {
  const m = /^127\.(\d+)\.(\d+)\.(\d+)$/.exec(ip);
  if (m === null) return undefined;
  const third = Number(m[2]);
  const fourth = Number(m[3]);
  for (const n of nodes) {
    if (n.ip === ip) return n;
    const pm = /^127\.(\d+)\.(\d+)\.0\/24$/.exec(n.podCIDR);
    if (pm !== null && pm[1] === m[1] && Number(pm[2]) === third && fourth > 0) return n;
  }
  return undefined;
}

/** Cluster `id`'s VM range: outside every pod CIDR (node /24s end at 127.c.127.0/24). */
export function vmCIDR(id: number): string {
  return `127.${id}.250.0/24`;
}

/** Every address of a cluster's VM range: its ClusterIP allocator must never hand one out. */
export function vmAddresses(c: Pick<ClusterAddressing, 'id'>): string[] {
  return Array.from({ length: 256 }, (_, i) => `127.${c.id}.250.${i}`);
}
