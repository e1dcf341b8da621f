import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { intToIPv4, ipv4ToInt, parseIPv4CIDR, rangeContains, type IPv4Range } from './ipv4.js';

/**
 * Pod IPs: each node hands out the host addresses of its pod CIDR (a /24 gives .1–.254),
 * lowest free first, to owners named by a key (`<namespace>/<pod>`). Nothing is
 * persisted: after a restart the runtime claims the IPs recorded in pod statuses again
 * before it allocates anything, so running pods keep their addresses.
 */

interface Pool {
  readonly cidr: string;
  readonly range: IPv4Range;
  /** Address → owner. */
  readonly used: Map<number, string>;
}

export interface PodAddress {
  readonly node: string;
  readonly ip: string;
}

export class PodIPAM {
  private readonly pools = new Map<string, Pool>();
  private readonly owners = new Map<string, { readonly node: string; readonly ip: number }>();

  constructor(nodes: readonly { readonly name: string; readonly podCIDR: string }[]) {
    for (const n of nodes) {
      const range = parseIPv4CIDR(n.podCIDR);
      // nodes.ts validated the CIDRs; this guards direct use.
      if (range === undefined || range.prefixLen > 30) {
        throw new ClusterMeshError(
          ErrorCode.InvalidConfig,
          `node ${n.name}: pod CIDR ${n.podCIDR} must be an IPv4 CIDR of at least 4 addresses`,
        );
      }
      this.pools.set(n.name, { cidr: n.podCIDR, range, used: new Map() });
    }
  }

  /** The owner's address, if it holds one. */
  addressOf(owner: string): PodAddress | undefined {
    const a = this.owners.get(owner);
    return a === undefined ? undefined : { node: a.node, ip: intToIPv4(a.ip) };
  }

  /**
   * Gives `ip` on `node` to `owner` if it is a host address of the node's CIDR and free
   * (or already the owner's); the owner's previous address, if any, is released.
   */
  claim(owner: string, node: string, ip: string): boolean {
    const pool = this.pools.get(node);
    const n = ipv4ToInt(ip);
    if (pool === undefined || n === undefined || !isHost(pool.range, n)) return false;
    const holder = pool.used.get(n);
    if (holder !== undefined) return holder === owner;
    this.release(owner);
    pool.used.set(n, owner);
    this.owners.set(owner, { node, ip: n });
    return true;
  }

  /**
   * The owner's address on `node`: the one it holds there, else the lowest free one
   * (releasing what it held on another node); `undefined` when the node is full.
   */
  allocate(owner: string, node: string): string | undefined {
    const held = this.owners.get(owner);
    if (held?.node === node) return intToIPv4(held.ip);
    const pool = this.pools.get(node);
    if (pool === undefined) return undefined;
    const { base, size } = pool.range;
    for (let n = base + 1; n < base + size - 1; n++) {
      if (!pool.used.has(n)) {
        this.release(owner);
        pool.used.set(n, owner);
        this.owners.set(owner, { node, ip: n });
        return intToIPv4(n);
      }
    }
    return undefined;
  }

  /** Frees the owner's address; returns what it held. */
  release(owner: string): PodAddress | undefined {
    const held = this.owners.get(owner);
    if (held === undefined) return undefined;
    this.owners.delete(owner);
    this.pools.get(held.node)?.used.delete(held.ip);
    return { node: held.node, ip: intToIPv4(held.ip) };
  }

  /** Addresses in use on the node (the scheduler's measure of load). */
  used(node: string): number {
    return this.pools.get(node)?.used.size ?? 0;
  }

  cidrOf(node: string): string | undefined {
    return this.pools.get(node)?.cidr;
  }
}

function isHost(r: IPv4Range, ip: number): boolean {
  return rangeContains(r, ip) && ip !== r.base && ip !== r.base + r.size - 1;
}
