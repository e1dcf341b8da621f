/**
 * One node's userspace datapath: service translation (its own LB map, built from its
 * agent's service table, so affinity and remote backends are as this node sees them),
 * endpoint enrichment from its ipcache and identity cache, and its flow log.
 */
import type { Logger } from 'pino';
import type { EndpointTable, LocalEndpoint } from '../endpoint/table.js';
import type { IdentityCache } from '../identity/cache.js';
import { hostCidr, type IPCache } from '../ipcache/ipcache.js';
import type { Node } from '../keyspace/index.js';
import type { NodeManager } from '../node/manager.js';
import {
  ReservedIdentity,
  type PeerIdentity,
  type PolicyDecision,
  type PolicyEnforcer,
} from '../policy/enforcer.js';
import type { ServiceTable, TableBackend } from '../service/table.js';
import { FlowLog, type Flow, type FlowEndpoint, type FlowRecord } from './flows.js';
import {
  BackendHealth,
  isHealthProbe,
  isHealthProbeConnection,
  type BackendHealthOptions,
} from './health.js';
import { LoadBalancerMap, type LbFrontend } from './lb-map.js';
import { Blackholes } from './partition.js';

/** Drop reason of a connection attempt to a backend that failed and was retried elsewhere. */
export const BACKEND_UNHEALTHY = 'BACKEND_UNHEALTHY';

const HOST_LABELS: readonly string[] = Object.freeze(['reserved:host']);
const WORLD_LABELS: readonly string[] = Object.freeze(['reserved:world']);
const REMOTE_NODE_LABELS: readonly string[] = Object.freeze(['reserved:remote-node']);

export type L4Proto = 'TCP' | 'UDP';

/** Policy enforcement of a node: its cluster's policies and its endpoints. */
export interface DatapathPolicy {
  readonly enforcer: PolicyEnforcer;
  readonly endpoints: EndpointTable;
  /** Every node of the mesh, so that their addresses are host / remote-node, not world. */
  readonly nodes: NodeManager;
}

export interface NodeDatapathOptions {
  readonly cluster: string;
  readonly node: { readonly name: string; readonly ip: string };
  readonly services: ServiceTable;
  readonly ipcache: IPCache;
  readonly identities?: IdentityCache | undefined;
  readonly log: Logger;
  readonly flowCapacity?: number | undefined;
  /** Without it nothing is enforced (and flows carry no policy verdicts). */
  readonly policy?: DatapathPolicy | undefined;
  /** Backend health checking; `false` turns it off (every backend counts as healthy). */
  readonly health?: Omit<BackendHealthOptions, 'log' | 'sourceIP'> | false | undefined;
}

export type ConnectVerdict =
  | { readonly verdict: 'service' }
  | { readonly verdict: 'allowed'; readonly flow?: Flow | undefined }
  | { readonly verdict: 'dropped'; readonly reason: string; readonly flow: Flow };

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
  /** Partition fault injection: addresses new connections from this node cannot reach. */
  readonly blackholes = new Blackholes();
  private readonly ipcache: IPCache;
  private readonly identities: IdentityCache | undefined;
  private readonly policy: DatapathPolicy | undefined;
  /** Addresses of every node of the mesh (remote-node to policy) → nodes holding them. */
  private readonly nodeIPs = new Map<string, number>();
  private readonly nodeAddrs = new Map<string, readonly string[]>();
  private unsubscribeNodes: (() => void) | undefined;

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
    if (this.health !== undefined) this.health.blackholes = this.blackholes;
    this.lb = new LoadBalancerMap(opts.services, this.log, {}, this.health);
    this.flows = new FlowLog(opts.flowCapacity);
    this.policy = opts.policy;
    const nodes = opts.policy?.nodes;
    if (nodes !== undefined) {
      for (const n of nodes.list()) this.trackNode('upsert', n);
      this.unsubscribeNodes = nodes.onChange((event, n) => {
        this.trackNode(event, n);
      });
    }
  }

  /** Keeps `nodeIPs` in step with one node's change (no rescan of every node per event). */
  private trackNode(event: 'upsert' | 'delete', n: Node): void {
    const key = `${n.Cluster}/${n.Name}`;
    for (const ip of this.nodeAddrs.get(key) ?? []) {
      const left = (this.nodeIPs.get(ip) ?? 1) - 1;
      if (left <= 0) this.nodeIPs.delete(ip);
      else this.nodeIPs.set(ip, left);
    }
    this.nodeAddrs.delete(key);
    if (event === 'delete') return;
    const ips = n.IPAddresses.map((a) => a.IP);
    this.nodeAddrs.set(key, ips);
    for (const ip of ips) this.nodeIPs.set(ip, (this.nodeIPs.get(ip) ?? 0) + 1);
  }

  /** Whether new connections from this node to `ip` go unanswered (partition fault). */
  blackholed(ip: string): boolean {
    return this.blackholes.has(ip);
  }

  /** Fault injection: blackholes new connections to `cidrs` ([] heals). */
  partition(cidrs: readonly string[]): void {
    this.blackholes.set(cidrs);
    this.log.warn({ cidrs }, cidrs.length === 0 ? 'Partition healed' : 'Partition injected');
  }

  // ---- policy ----

  /**
   * Who `ip` is to policy on this node: the identity its ipcache holds; this node's own
   * addresses are the host and the other nodes' are remote-node; anything else is world,
   * exactly as in Cilium (which is why an IP the ipcache has not learnt yet is world).
   */
  peerOf(ip: string): PeerIdentity {
    const bare = ip.startsWith('::ffff:') ? ip.slice(7) : ip;
    const entry = this.ipcache.lookup(hostCidr(bare));
    if (entry !== undefined) return { kind: 'identity', id: entry.identity };
    const id = this.unknownAddressIdentity(bare);
    return id === ReservedIdentity.World ? { kind: 'world', ip: bare } : { kind: 'identity', id };
  }

  /** The endpoint of this node holding `ip`, if any (the subject of its policy). */
  localEndpoint(ip: string): LocalEndpoint | undefined {
    const ep = this.policy?.endpoints.lookup(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
    return ep?.nodeIP === this.node.ip ? ep : undefined;
  }

  /**
   * Egress of the local endpoint at `srcIP` toward `dstIP:dport` (for a service, the
   * translated backend and its port, as Cilium decides after translation). Not enforced
   * when the source is not an endpoint of this node (the host has no host firewall).
   */
  egressDecision(
    srcIP: string,
    dstIP: string,
    dport: number,
    proto: L4Proto,
  ): PolicyDecision | undefined {
    const p = this.policy;
    const ep = this.localEndpoint(srcIP);
    if (p === undefined || ep === undefined) return undefined;
    const dstEp = p.endpoints.lookup(dstIP);
    return p.enforcer.egress(ep.identity, this.peerOf(dstIP), dport, proto, dstEp?.namedPorts);
  }

  /** Ingress of the local endpoint at `dstIP` from `srcIP`; its named ports resolve `dport`. */
  ingressDecision(
    dstIP: string,
    srcIP: string,
    dport: number,
    proto: L4Proto,
  ): PolicyDecision | undefined {
    const p = this.policy;
    const ep = this.localEndpoint(dstIP);
    if (p === undefined || ep === undefined) return undefined;
    return p.enforcer.ingress(ep.identity, this.peerOf(srcIP), dport, proto, ep.namedPorts);
  }

  /**
   * A local endpoint connecting from `src` to `dst` outside the service proxy (pod IP,
   * node, DNS server, world): egress policy decides here, at the source, and the verdict
   * is recorded when policy is enforced. A ClusterIP is the proxy's to decide (`service`).
   */
  connect(src: Addr, dst: Addr, proto: L4Proto): ConnectVerdict {
    if (proto === 'TCP' && this.frontendOf(dst.ip, dst.port) !== undefined) {
      return { verdict: 'service' };
    }
    const d = this.egressDecision(src.ip, dst.ip, dst.port, proto);
    if (d === undefined || !d.enforced) return { verdict: 'allowed' };
    const flow = this.recordEgress(src, dst, proto, d);
    return d.allowed
      ? { verdict: 'allowed', flow }
      : { verdict: 'dropped', reason: d.reason ?? 'POLICY_DENIED', flow };
  }

  /**
   * An address the ipcache does not know: this node's own addresses are the host, the
   * other nodes' are remote-node, anything else is world (as Cilium classifies them).
   */
  private unknownAddressIdentity(
    ip: string,
  ):
    | typeof ReservedIdentity.Host
    | typeof ReservedIdentity.RemoteNode
    | typeof ReservedIdentity.World {
    if (ip === this.node.ip || ip === '127.0.0.1' || ip === '::1') return ReservedIdentity.Host;
    return this.nodeIPs.has(ip) ? ReservedIdentity.RemoteNode : ReservedIdentity.World;
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
    switch (this.unknownAddressIdentity(bare)) {
      case ReservedIdentity.Host:
        return {
          ip: bare,
          port,
          cluster: this.cluster,
          identity: ReservedIdentity.Host,
          labels: HOST_LABELS,
          node: this.node.name,
        };
      case ReservedIdentity.RemoteNode:
        return {
          ip: bare,
          port,
          identity: ReservedIdentity.RemoteNode,
          labels: REMOTE_NODE_LABELS,
        };
      default:
        return { ip: bare, port, identity: ReservedIdentity.World, labels: WORLD_LABELS };
    }
  }

  /** A backend as a flow endpoint; its cluster is known from the table even without ipcache. */
  backendEndpoint(b: TableBackend): FlowEndpoint {
    const ep = this.endpointOf(b.ip, b.port);
    // Not "world": the table says which cluster it is in, the ipcache just lags behind.
    return ep.identity === ReservedIdentity.World
      ? { ip: ep.ip, port: ep.port, cluster: b.cluster }
      : ep;
  }

  /** A service connection translated and connected to its backend. */
  recordForwarded(src: Addr, dst: Addr, t: Translation, egress?: PolicyDecision): Flow {
    return this.record(
      {
        node: this.node.name,
        verdict: 'FORWARDED',
        protocol: 'TCP',
        direction: 'egress',
        source: this.endpointOf(src.ip, src.port),
        destination: { ip: dst.ip, port: dst.port },
        service: t.frontend.service,
        backend: this.backendEndpoint(t.backend),
      },
      egress,
    );
  }

  /**
   * A service connection that could not be forwarded (`no backends`, an errno code, …),
   * or that egress policy dropped (`decision`, the reason is then its drop reason).
   */
  recordDropped(
    src: Addr,
    dst: Addr,
    reason: string,
    frontend?: LbFrontend,
    backend?: TableBackend,
    extra: { readonly decision?: PolicyDecision; readonly error?: string } = {},
  ): Flow {
    const { decision, error } = extra;
    return this.record(
      {
        node: this.node.name,
        verdict: 'DROPPED',
        dropReason: decision?.reason ?? reason,
        ...(error === undefined ? {} : { error }),
        protocol: 'TCP',
        direction: 'egress',
        source: this.endpointOf(src.ip, src.port),
        destination: { ip: dst.ip, port: dst.port },
        service: frontend?.service,
        backend: backend === undefined ? undefined : this.backendEndpoint(backend),
      },
      decision,
    );
  }

  /**
   * A connection a local endpoint makes directly (no service translation), decided by
   * its egress policy here at the source: to a pod, a node, the DNS server or the world.
   */
  recordEgress(src: Addr, dst: Addr, proto: L4Proto, decision: PolicyDecision): Flow {
    return this.record(
      {
        node: this.node.name,
        verdict: decision.allowed ? 'FORWARDED' : 'DROPPED',
        dropReason: decision.reason ?? undefined,
        protocol: proto,
        direction: 'egress',
        source: this.endpointOf(src.ip, src.port),
        destination: this.endpointOf(dst.ip, dst.port),
      },
      decision,
    );
  }

  /** A connection to a workload of this node, admitted or dropped by its ingress policy. */
  recordIngress(
    conn: IngressConnection,
    decision?: PolicyDecision,
    notAProbe = false,
  ): Flow | undefined {
    // Health probes of the datapaths are not traffic. A probe may share its address with
    // other traffic of its node: only its source port tells, once the prober has seen it connect.
    if (!notAProbe && isHealthProbe(conn.peer.ip, conn.pod.ip, conn.localPort)) {
      setImmediate(() => {
        if (!isHealthProbeConnection(conn.peer.ip, conn.peer.port, conn.pod.ip, conn.localPort)) {
          this.recordIngress(conn, decision, true);
        }
      });
      return undefined;
    }
    let dst = this.endpointOf(conn.pod.ip, conn.localPort);
    if (dst.identity === ReservedIdentity.World) dst = { ip: dst.ip, port: dst.port };
    const allowed = decision?.allowed ?? true;
    return this.record(
      {
        node: this.node.name,
        verdict: allowed ? 'FORWARDED' : 'DROPPED',
        dropReason: decision?.reason ?? undefined,
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
      },
      decision,
    );
  }

  /** Adds the policy verdict (type, the policies that decided) to a flow and records it. */
  private record(f: FlowRecord, d: PolicyDecision | undefined): Flow {
    if (d === undefined || !d.enforced) {
      return this.flows.record({ ...f, type: f.verdict === 'DROPPED' ? 'drop' : 'trace' });
    }
    const refs = (list: PolicyDecision['allowedBy']) =>
      list.map((r) => ({ kind: r.kind, namespace: r.namespace, name: r.name }));
    const allowed = refs(d.allowedBy);
    const denied = refs(d.deniedBy);
    return this.flows.record({
      ...f,
      type: 'policy-verdict',
      ...(d.direction === 'egress'
        ? {
            ...(allowed.length > 0 ? { egress_allowed_by: allowed } : {}),
            ...(denied.length > 0 ? { egress_denied_by: denied } : {}),
          }
        : {
            ...(allowed.length > 0 ? { ingress_allowed_by: allowed } : {}),
            ...(denied.length > 0 ? { ingress_denied_by: denied } : {}),
          }),
    });
  }

  close(): void {
    this.unsubscribeNodes?.();
    this.lb.close();
    this.health?.close();
  }
}
