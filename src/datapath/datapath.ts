/**
 * One node's userspace datapath: service translation (its own LB map, built from its
 * agent's service table, so affinity and remote backends are as this node sees them),
 * endpoint enrichment from its ipcache and identity cache, and its flow log.
 */
import type { Logger } from 'pino';
import type { IdentityCache } from '../identity/cache.js';
import { hostCidr, type IPCache } from '../ipcache/ipcache.js';
import type { ServiceTable, TableBackend } from '../service/table.js';
import { FlowLog, type Flow, type FlowEndpoint } from './flows.js';
import { BackendHealth, isHealthProbe, type BackendHealthOptions } from './health.js';
import { LoadBalancerMap, type LbFrontend } from './lb-map.js';

/** Drop reason of a connection attempt to a backend that failed and was retried elsewhere. */
export const BACKEND_UNHEALTHY = 'BACKEND_UNHEALTHY';

/** Reserved identities (Cilium's numbering) for addresses the ipcache does not know. */
export const RESERVED_HOST = 1;
export const RESERVED_WORLD = 2;
const HOST_LABELS: readonly string[] = Object.freeze(['reserved:host']);
const WORLD_LABELS: readonly string[] = Object.freeze(['reserved:world']);

export interface NodeDatapathOptions {
  readonly cluster: string;
  readonly node: { readonly name: string; readonly ip: string };
  readonly services: ServiceTable;
  readonly ipcache: IPCache;
  readonly identities?: IdentityCache | undefined;
  readonly log: Logger;
  readonly flowCapacity?: number | undefined;
  /** Backend health checking; `false` turns it off (every backend counts as healthy). */
  readonly health?: Omit<BackendHealthOptions, 'log' | 'sourceIP'> | false | undefined;
}

export interface Addr {
  readonly ip: string;
  readonly port: number;
}

export interface Translation {
  readonly frontend: LbFrontend;
  /** A TableBackend is an LbBackend that also carries its ip and port. */
  readonly backend: TableBackend;
}

export interface IngressConnection {
  readonly pod: { readonly namespace: string; readonly name: string; readonly ip: string };
  readonly localPort: number;
  readonly peer: Addr;
}

export class NodeDatapath {
  readonly cluster: string;
  readonly node: { readonly name: string; readonly ip: string };
  readonly lb: LoadBalancerMap;
  readonly flows: FlowLog;
  readonly log: Logger;
  readonly health: BackendHealth | undefined;
  private readonly ipcache: IPCache;
  private readonly identities: IdentityCache | undefined;

  constructor(opts: NodeDatapathOptions) {
    this.cluster = opts.cluster;
    this.node = { name: opts.node.name, ip: opts.node.ip };
    this.log = opts.log.child({ cluster: opts.cluster, node: opts.node.name, subsys: 'datapath' });
    this.ipcache = opts.ipcache;
    this.identities = opts.identities;
    this.health =
      opts.health === false
        ? undefined
        : new BackendHealth({ ...opts.health, sourceIP: opts.node.ip, log: this.log });
    this.lb = new LoadBalancerMap(opts.services, this.log, {}, this.health);
    this.flows = new FlowLog(opts.flowCapacity);
  }

  /**
   * The backend a new connection from `src` to `dst` goes to; undefined when `dst` is no
   * frontend or its service has no backend able to take new flows (see `frontendOf`).
   */
  translate(src: Addr, dst: Addr): Translation | undefined {
    const frontend = this.lb.lookup(dst.ip, dst.port, 'TCP');
    if (frontend === undefined) return undefined;
    const backend = this.selectBackend(frontend, src);
    return backend === undefined ? undefined : { frontend, backend };
  }

  frontendOf(ip: string, port: number): LbFrontend | undefined {
    return this.lb.lookup(ip, port, 'TCP');
  }

  selectBackend(frontend: LbFrontend, src: Addr): TableBackend | undefined {
    return this.lb.select(frontend, {
      srcIP: src.ip,
      srcPort: src.port,
      dstIP: frontend.ip,
      dstPort: frontend.port,
      proto: frontend.protocol,
    });
  }

  /**
   * Another backend for a connection whose dial to `failed` did not succeed (the failure
   * is reported first, so health already steers the choice); undefined when none is left.
   */
  alternativeBackend(
    frontend: LbFrontend,
    src: Addr,
    failed: TableBackend,
  ): TableBackend | undefined {
    return this.lb.alternative(
      frontend,
      {
        srcIP: src.ip,
        srcPort: src.port,
        dstIP: frontend.ip,
        dstPort: frontend.port,
        proto: frontend.protocol,
      },
      failed.address,
    );
  }

  /** Health of a backend as this node's datapath sees it. */
  backendHealth(address: string): 'healthy' | 'unhealthy' {
    return this.health?.healthOf(address) ?? 'healthy';
  }

  /**
   * Who is behind `ip`: pod, namespace, cluster and identity from the ipcache, labels
   * from the identity cache; this node's own addresses are the host, anything unknown
   * is the world (as Cilium classifies them).
   */
  endpointOf(ip: string, port: number): FlowEndpoint {
    const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    const entry = this.ipcache.lookup(hostCidr(bare));
    if (entry !== undefined) {
      return {
        ip: bare,
        port,
        cluster: entry.cluster,
        namespace: entry.k8sNamespace,
        pod: entry.k8sPodName,
        identity: entry.identity,
        labels: this.identities?.get(entry.identity)?.labels,
      };
    }
    if (bare === this.node.ip || bare === '127.0.0.1' || bare === '::1') {
      return {
        ip: bare,
        port,
        cluster: this.cluster,
        identity: RESERVED_HOST,
        labels: HOST_LABELS,
        node: this.node.name,
      };
    }
    return { ip: bare, port, identity: RESERVED_WORLD, labels: WORLD_LABELS };
  }

  /** A backend as a flow endpoint; its cluster is known from the table even without ipcache. */
  backendEndpoint(b: TableBackend): FlowEndpoint {
    const ep = this.endpointOf(b.ip, b.port);
    // Not "world": the table says which cluster it is in, the ipcache just lags behind.
    return ep.identity === RESERVED_WORLD ? { ip: ep.ip, port: ep.port, cluster: b.cluster } : ep;
  }

  /** A service connection translated and connected to its backend. */
  recordForwarded(src: Addr, dst: Addr, t: Translation): Flow {
    return this.flows.record({
      node: this.node.name,
      verdict: 'FORWARDED',
      protocol: 'TCP',
      direction: 'egress',
      source: this.endpointOf(src.ip, src.port),
      destination: { ip: dst.ip, port: dst.port },
      service: t.frontend.service,
      backend: this.backendEndpoint(t.backend),
    });
  }

  /** A service connection that could not be forwarded (`no backends`, an errno code, …). */
  recordDropped(
    src: Addr,
    dst: Addr,
    reason: string,
    frontend?: LbFrontend,
    backend?: TableBackend,
    error?: string,
  ): Flow {
    return this.flows.record({
      node: this.node.name,
      verdict: 'DROPPED',
      dropReason: reason,
      ...(error === undefined ? {} : { error }),
      protocol: 'TCP',
      direction: 'egress',
      source: this.endpointOf(src.ip, src.port),
      destination: { ip: dst.ip, port: dst.port },
      service: frontend?.service,
      backend: backend === undefined ? undefined : this.backendEndpoint(backend),
    });
  }

  /** A direct connection a workload of this node accepted (no translation involved). */
  recordIngress(conn: IngressConnection): Flow | undefined {
    // Health probes of the datapaths are not traffic.
    if (isHealthProbe(conn.peer.ip, conn.pod.ip, conn.localPort)) return undefined;
    let dst = this.endpointOf(conn.pod.ip, conn.localPort);
    if (dst.identity === RESERVED_WORLD) dst = { ip: dst.ip, port: dst.port };
    return this.flows.record({
      node: this.node.name,
      verdict: 'FORWARDED',
      protocol: 'TCP',
      direction: 'ingress',
      source: this.endpointOf(conn.peer.ip, conn.peer.port),
      // The runtime knows its pod even before the ipcache has caught up with it.
      destination: {
        ...dst,
        cluster: dst.cluster ?? this.cluster,
        namespace: conn.pod.namespace,
        pod: conn.pod.name,
        node: this.node.name,
      },
    });
  }

  close(): void {
    this.lb.close();
    this.health?.close();
  }
}
