import type { Logger } from 'pino';
import type { ClusterService, L4Addr, ServiceAffinity } from '../keyspace/index.js';
import { silentLogger } from '../lib/logger.js';
import type { BackendState } from './backend-choice.js';

/** A local Service as the agent sees it: its own backends plus its global-service settings. */
export interface LocalService {
  /** Frontends and local backends in the ClusterService shape (same converter as the export). */
  readonly service: ClusterService;
  readonly global: boolean;
  readonly affinity: ServiceAffinity;
  /** Kubernetes Service type (`ClusterIP`, `NodePort`, …). */
  readonly type: string;
}

export interface TableBackend {
  /** `ip:port/PROTO` */
  readonly address: string;
  readonly ip: string;
  readonly port: number;
  readonly cluster: string;
  readonly state: BackendState;
  readonly preferred: boolean;
}

/** One frontend (ClusterIP × port) and the backends it balances over. */
export interface TableFrontend {
  readonly id: number;
  readonly namespace: string;
  readonly name: string;
  /** `ip:port/PROTO` */
  readonly frontend: string;
  readonly ip: string;
  readonly port: number;
  readonly protocol: string;
  readonly portName: string;
  readonly type: string;
  readonly affinity: ServiceAffinity;
  readonly backends: readonly TableBackend[];
}

export type ServiceListener = (serviceId: string) => void;

const svcId = (namespace: string, name: string): string => `${namespace}/${name}`;

/**
 * The agent's service table (reference `ServiceCache.correlateEndpoints`): local
 * Services with their own backends, plus remote backends only when the Service is
 * global *locally* and the remote cluster shares it. Preferred marks follow the
 * local affinity (`local` → local backends, `remote` → remote ones). A remote-only
 * service with no local Service does nothing; a backend IP claimed twice is logged
 * and skipped.
 */
export class ServiceTable {
  private readonly local = new Map<string, LocalService>();
  /** ns/name → cluster → shared ClusterService. */
  private readonly remote = new Map<string, Map<string, ClusterService>>();
  private readonly frontendIds = new Map<string, number>();
  private nextId = 1;
  private readonly listeners = new Set<ServiceListener>();
  /**
   * Conflicts already logged per service, so each is reported once, not at every read;
   * forgotten when the service changes (bounded by the live conflicts).
   */
  private readonly reported = new Map<string, Set<string>>();

  constructor(
    readonly localCluster: string,
    private readonly log: Logger = silentLogger,
  ) {}

  upsertLocal(local: LocalService): void {
    const id = svcId(local.service.namespace, local.service.name);
    this.local.set(id, local);
    this.emit(id);
  }

  deleteLocal(namespace: string, name: string): void {
    const id = svcId(namespace, name);
    if (this.local.delete(id)) this.emit(id);
  }

  /** A remote cluster's entry; a non-shared one counts as a deletion (reference observer). */
  upsertRemote(cs: ClusterService): void {
    if (cs.cluster === this.localCluster) return;
    if (!cs.shared) {
      this.deleteRemote(cs.cluster, cs.namespace, cs.name);
      return;
    }
    const id = svcId(cs.namespace, cs.name);
    let byCluster = this.remote.get(id);
    if (byCluster === undefined) {
      byCluster = new Map();
      this.remote.set(id, byCluster);
    }
    byCluster.set(cs.cluster, cs);
    this.emit(id);
  }

  deleteRemote(cluster: string, namespace: string, name: string): void {
    const id = svcId(namespace, name);
    const byCluster = this.remote.get(id);
    if (byCluster?.delete(cluster) !== true) return;
    if (byCluster.size === 0) this.remote.delete(id);
    this.emit(id);
  }

  /** `cilium_clustermesh_global_services`: distinct ns/name shared by remote clusters. */
  get numGlobalServices(): number {
    return this.remote.size;
  }

  /** Backends skipped because their IP was already claimed (distinct, since start). */
  get conflictCount(): number {
    let n = 0;
    for (const set of this.reported.values()) n += set.size;
    return n;
  }

  /** Every frontend of every local Service, merged; sorted by frontend ID. */
  frontends(): TableFrontend[] {
    const out: TableFrontend[] = [];
    for (const id of [...this.local.keys()].sort()) out.push(...this.frontendsOf(id));
    return out.sort((a, b) => a.id - b.id);
  }

  /** The merged frontends of one Service (`ns/name`); empty when it has no local Service. */
  frontendsOf(serviceId: string): TableFrontend[] {
    const local = this.local.get(serviceId);
    if (local === undefined) return [];
    const svc = local.service;
    const remotes = local.global ? this.remote.get(serviceId) : undefined;
    const out: TableFrontend[] = [];
    for (const [ip, ports] of Object.entries(svc.frontends)) {
      for (const [portName, l4] of Object.entries(ports)) {
        const frontend = `${addr(ip, l4.Port)}/${l4.Protocol}`;
        const backends: TableBackend[] = [];
        const seen = new Set<string>();
        const add = (
          cluster: string,
          bip: string,
          bports: Readonly<Record<string, L4Addr>>,
          preferred: boolean,
        ): void => {
          const b = bports[portName];
          if (b === undefined || b.Protocol !== l4.Protocol) return;
          if (seen.has(bip)) {
            const key = `${bip}|${cluster}`;
            let set = this.reported.get(serviceId);
            if (set === undefined) {
              set = new Set();
              this.reported.set(serviceId, set);
            }
            if (!set.has(key)) {
              set.add(key);
              this.log.warn(
                { service: serviceId, backend: bip, cluster },
                'Conflicting service backend IP',
              );
            }
            return;
          }
          seen.add(bip);
          backends.push({
            address: `${addr(bip, b.Port)}/${b.Protocol}`,
            ip: bip,
            port: b.Port,
            cluster,
            state: 'active',
            preferred,
          });
        };
        for (const [bip, bports] of Object.entries(svc.backends)) {
          add(this.localCluster, bip, bports, local.global && local.affinity === 'local');
        }
        if (remotes !== undefined) {
          for (const cluster of [...remotes.keys()].sort()) {
            const cs = remotes.get(cluster);
            if (cs === undefined) continue;
            for (const [bip, bports] of Object.entries(cs.backends)) {
              add(cluster, bip, bports, local.affinity === 'remote');
            }
          }
        }
        out.push({
          id: this.idFor(frontend),
          namespace: svc.namespace,
          name: svc.name,
          frontend,
          ip,
          port: l4.Port,
          protocol: l4.Protocol,
          portName,
          type: local.type,
          affinity: local.global ? local.affinity : 'none',
          backends,
        });
      }
    }
    return out;
  }

  /**
   * The backends (with their hostnames) of a Service in every cluster that shares it:
   * the local cluster's while the local Service is global, then each remote cluster's
   * in name order. Unlike {@link frontendsOf} this needs no frontend, so headless global
   * Services, which remote clusters export with `"frontends":{}`, are covered too; it is
   * what cross-cluster DNS and MCS-API read.
   */
  clusterBackendsOf(serviceId: string): ClusterBackends[] {
    const out: ClusterBackends[] = [];
    const local = this.local.get(serviceId);
    if (local?.global === true) out.push(clusterBackends(this.localCluster, local.service));
    const remotes = this.remote.get(serviceId);
    if (remotes !== undefined) {
      for (const cluster of [...remotes.keys()].sort()) {
        const cs = remotes.get(cluster);
        if (cs !== undefined) out.push(clusterBackends(cluster, cs));
      }
    }
    return out;
  }

  /** The frontend listening on `ip:port/proto`, if any. */
  lookup(ip: string, port: number, protocol = 'TCP'): TableFrontend | undefined {
    const key = `${addr(ip, port)}/${protocol}`;
    for (const [id, local] of this.local) {
      if (local.service.frontends[ip] === undefined) continue;
      const f = this.frontendsOf(id).find((x) => x.frontend === key);
      if (f !== undefined) return f;
    }
    return undefined;
  }

  onChange(listener: ServiceListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private idFor(frontend: string): number {
    let id = this.frontendIds.get(frontend);
    if (id === undefined) {
      id = this.nextId++;
      this.frontendIds.set(frontend, id);
    }
    return id;
  }

  private emit(id: string): void {
    this.reported.delete(id);
    for (const l of this.listeners) l(id);
  }
}

/** One cluster's backends of a Service, as {@link ServiceTable.clusterBackendsOf} lists them. */
export interface ClusterBackends {
  readonly cluster: string;
  readonly backends: readonly {
    readonly ip: string;
    /** `''` when the endpoint has none. */
    readonly hostname: string;
    readonly ports: Readonly<Record<string, L4Addr>>;
  }[];
}

function clusterBackends(cluster: string, cs: ClusterService): ClusterBackends {
  return {
    cluster,
    backends: Object.keys(cs.backends)
      .sort()
      .map((ip) => ({ ip, hostname: cs.hostnames[ip] ?? '', ports: cs.backends[ip] ?? {} })),
  };
}

function addr(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}
