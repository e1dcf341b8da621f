import { parseCIDR, parseIP } from '../keyspace/index.js';

/**
 * IPv4 addresses as unsigned 32-bit integers, for the allocators (pod IPs, ClusterIPs),
 * which scan ranges for the lowest free address. The local mesh is IPv4-only (src/localmesh/addressing.ts).
 */

export interface IPv4Range {
  /** The network address. */
  readonly base: number;
  readonly prefixLen: number;
  /** Number of addresses, network and broadcast included. */
  readonly size: number;
}

/** The address as a number, or `undefined` unless it is a plain IPv4 address. */
export function ipv4ToInt(ip: string): number | undefined {
  const b = parseIP(ip);
  if (b?.length !== 4) return undefined;
  return (((b[0] ?? 0) << 24) | ((b[1] ?? 0) << 16) | ((b[2] ?? 0) << 8) | (b[3] ?? 0)) >>> 0;
}

export function intToIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff].join('.');
}

/** An IPv4 CIDR's range, or `undefined` when the text is not one. */
export function parseIPv4CIDR(cidr: string): IPv4Range | undefined {
  const c = parseCIDR(cidr);
  if (c?.bits !== 32) return undefined;
  const base = ipv4ToInt(c.ip.join('.'));
  if (base === undefined) return undefined;
  return { base, prefixLen: c.prefixLen, size: 2 ** (32 - c.prefixLen) };
}

export function rangeContains(r: IPv4Range, ip: number): boolean {
  return ip >= r.base && ip < r.base + r.size;
}

export function rangesOverlap(a: IPv4Range, b: IPv4Range): boolean {
  return rangeContains(a, b.base) || rangeContains(b, a.base);
}
