import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import type { Service } from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type { Informer, ObjectEvent } from '../registry/types.js';
import { Controller, keyOf, oldestFirst, splitKey } from './controller.js';
import { intToIPv4, ipv4ToInt, parseIPv4CIDR, rangeContains, type IPv4Range } from './ipv4.js';

/**
 * ClusterIPs: a Service that asks for one (type ClusterIP, NodePort or LoadBalancer with
 * no `spec.clusterIP`) gets the lowest free address of the service CIDR. The network
 * address, the first address (Kubernetes keeps it for the `kubernetes` Service), the
 * broadcast address and the reserved ones (the DNS server) are never handed out; a
 * Service may still name a reserved one itself, which is how the DNS Service gets its IP.
 */
export class ServiceIPAllocator {
  private readonly range: IPv4Range;
  private readonly reserved: ReadonlySet<number>;
  /** Address → `<namespace>/<service>`. */
  private readonly used = new Map<number, string>();
  private readonly owners = new Map<string, number>();

  constructor(
    readonly cidr: string,
    reserved: readonly string[] = [],
  ) {
    const range = parseIPv4CIDR(cidr);
    if (range === undefined || range.prefixLen > 30) {
      throw new ClusterMeshError(
        ErrorCode.InvalidConfig,
        `service CIDR ${JSON.stringify(cidr)} is not an IPv4 CIDR of /30 or larger`,
      );
    }
    this.range = range;
    this.reserved = new Set(reserved.map(ipv4ToInt).filter((n) => n !== undefined));
  }

  contains(ip: string): boolean {
    const n = ipv4ToInt(ip);
    return n !== undefined && rangeContains(this.range, n);
  }

  /** Who holds `ip`, if anyone. */
  holder(ip: string): string | undefined {
    const n = ipv4ToInt(ip);
    return n === undefined ? undefined : this.used.get(n);
  }

  addressOf(owner: string): string | undefined {
    const n = this.owners.get(owner);
    return n === undefined ? undefined : intToIPv4(n);
  }

  /** Records that `owner` uses `ip` (inside the CIDR, free or already its own). */
  claim(owner: string, ip: string): boolean {
    const n = ipv4ToInt(ip);
    if (n === undefined || !rangeContains(this.range, n)) return false;
    const holder = this.used.get(n);
    if (holder !== undefined) return holder === owner;
    this.release(owner);
    this.used.set(n, owner);
    this.owners.set(owner, n);
    return true;
  }

  /** The owner's address, else the lowest free one; `undefined` when the CIDR is full. */
  allocate(owner: string): string | undefined {
    const held = this.owners.get(owner);
    if (held !== undefined) return intToIPv4(held);
    const { base, size } = this.range;
    for (let n = base + 2; n < base + size - 1; n++) {
      if (this.used.has(n) || this.reserved.has(n)) continue;
      this.used.set(n, owner);
      this.owners.set(owner, n);
      return intToIPv4(n);
    }
    return undefined;
  }

  release(owner: string): void {
    const n = this.owners.get(owner);
    if (n === undefined) return;
    this.owners.delete(owner);
    this.used.delete(n);
  }
}

/** Whether a Service of this shape gets a ClusterIP (headless and ExternalName ones do not). */
function wantsClusterIP(svc: Service): boolean {
  return svc.spec.type !== 'ExternalName' && svc.spec.clusterIP !== 'None';
}

export interface ServiceIPControllerOptions {
  readonly registry: Registry;
  readonly services: Informer<Service>;
  readonly allocator: ServiceIPAllocator;
  readonly log: Logger;
}

export class ServiceIPController {
  readonly controller: Controller;
  private readonly log: Logger;
  /** Services already warned about, with the address they were warned for. */
  private readonly warned = new Map<string, string>();

  constructor(private readonly o: ServiceIPControllerOptions) {
    this.log = o.log.child({ controller: 'service-ips' });
    this.controller = new Controller('service-ips', (key) => this.reconcile(key), this.log);
  }

  onService(ev: ObjectEvent<Service>): void {
    this.controller.enqueue(keyOf(ev.object.metadata.namespace, ev.object.metadata.name));
  }

  /**
   * Records the addresses Services already have, oldest Service first (it keeps an
   * address two of them name), before any Service is reconciled.
   */
  restore(): void {
    const services = [...this.o.services.list()].sort(oldestFirst);
    for (const svc of services) {
      const ip = svc.spec.clusterIP;
      if (ip !== undefined && ip !== '' && wantsClusterIP(svc)) {
        this.o.allocator.claim(keyOf(svc.metadata.namespace, svc.metadata.name), ip);
      }
    }
  }

  private async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const svc = this.o.services.get(namespace, name);
    const alloc = this.o.allocator;
    if (svc === undefined || !wantsClusterIP(svc)) {
      alloc.release(key);
      this.warned.delete(key);
      return;
    }
    const given = svc.spec.clusterIP ?? '';
    if (given !== '') {
      if (alloc.claim(key, given)) {
        this.warned.delete(key);
        return;
      }
      // A user's choice is left alone: the Service works locally, only the allocator
      // cannot vouch for it.
      if (this.warned.get(key) !== given) {
        this.warned.set(key, given);
        const holder = alloc.holder(given);
        this.log.warn(
          { service: key, clusterIP: given, serviceCIDR: alloc.cidr, takenBy: holder },
          holder === undefined
            ? 'ClusterIP outside the service CIDR, left as given'
            : 'ClusterIP already used by another Service, left as given',
        );
      }
      alloc.release(key);
      return;
    }
    const ip = alloc.allocate(key);
    if (ip === undefined) {
      throw new ClusterMeshError(
        ErrorCode.Conflict,
        `service ${key}: no free ClusterIP left in ${alloc.cidr}`,
      );
    }
    const stored = await this.o.registry.patch('Service', namespace, name, (cur) => {
      if (cur.metadata.uid !== svc.metadata.uid) return undefined;
      if ((cur.spec.clusterIP ?? '') !== '' || !wantsClusterIP(cur)) return undefined;
      return { ...cur, spec: { ...cur.spec, clusterIP: ip, clusterIPs: [ip] } };
    });
    if (stored?.spec.clusterIP === ip) {
      this.log.info({ service: key, clusterIP: ip }, 'ClusterIP allocated');
    }
  }
}
