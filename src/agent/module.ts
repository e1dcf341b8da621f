/**
 * The agent: the table of contents. Start order: local kvstore → views → datapath
 * (local mesh only) → local cluster watcher (own registry) → ClusterMesh (remote
 * clusters from the config directory) → API. Stop in reverse; remote state is kept on stop (no drain).
 */
import { Counter, Gauge } from 'prom-client';
import type { Logger } from 'pino';
import { ClusterMesh } from '../clustermesh/clustermesh.js';
import type { ClusterMeshStatus } from '../clustermesh/status.js';
import type { KubeObjectSource } from '../kubesource/source.js';
import { registryObjects, type ObjectSource } from '../registry/source.js';
import type { Backend } from '../kvstore/backend.js';
import type { KvstoreConfig } from '../kvstore/config.js';
import { KvstoreHook } from '../kvstore/connect.js';
import {
  validateClusterInfo,
  validateClusterName,
  type MaxConnectedClusters,
} from '../keyspace/index.js';
import { sleep } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import type { RunningHttpServer } from '../lib/http-server.js';
import { Lifecycle } from '../lib/lifecycle.js';
import type { Addr, ConnectVerdict, L4Proto } from '../datapath/datapath.js';
import type { FlowLog } from '../datapath/flows.js';
import { clusterMeshMetrics } from '../metrics/clustermesh.js';
import { KvstoreMetrics } from '../metrics/kvstore.js';
import { registerPolicyMetrics } from '../metrics/policy.js';
import { ReservedIdentity } from '../policy/enforcer.js';
import { remoteBackendFactory } from '../clustermesh/backend-factory.js';
import type { RemoteClusterTiming } from '../clustermesh/remote-cluster.js';
import { hostCidr } from '../ipcache/ipcache.js';
import { parseHostPort } from '../lib/http-server.js';
import { HealthProber, startHealthEndpoint } from '../health/prober.js';
import { startAgentApi, type AgentTroubleshootInfo } from './api.js';
import { Partitions } from './faults.js';
import { LocalClusterWatcher } from './local-cluster.js';
import { PolicyWatcher } from './policy-watcher.js';
import { AgentRemoteCluster } from './remote-cluster.js';
import { newAgentViews, type AgentViews } from './views.js';

export interface AgentOptions {
  readonly clusterName: string;
  readonly clusterId: number;
  readonly nodeName: string;
  readonly maxConnectedClusters: MaxConnectedClusters;
  /**
   * Kubernetes mode: the own cluster's objects (nodes, identities, endpoints, Services,
   * policies) from a Kubernetes API server instead of the registry in the kvstore.
   */
  readonly kubernetes?: { readonly kubeconfigPath?: string | undefined } | undefined;
  /** The local cluster's kvstore (its registry, and the KVStoreMesh cache). */
  readonly kvstore: KvstoreConfig;
  /** `--clustermesh-config`: one etcd config per remote cluster; undefined = no mesh. */
  readonly clustermeshConfig?: string | undefined;
  readonly apiAddr?: string | undefined;
  readonly timing?: Partial<RemoteClusterTiming> | undefined;
  /**
   * `--clustermesh-cache-ttl`: revoke what a remote cluster contributed once it has been
   * disconnected this long (it comes back with the next successful connection).
   * 0 / undefined = keep forever, the reference default.
   */
  readonly cacheTtlMs?: number | undefined;
  readonly log: Logger;
  readonly memoryStoreName?: string | undefined;
  /** `--policy-default-local-cluster`: selectors naming no cluster select only this one (default true). */
  readonly policyDefaultLocalCluster?: boolean | undefined;
  /**
   * The userspace datapath (local mesh only): built over the agent's views once its
   * kvstore is up, its flows served at `/v1/flows`, closed before the views stop.
   */
  readonly datapath?: ((views: AgentViews, log: Logger) => AgentDatapath) | undefined;
  /**
   * `host:port` of this node's health endpoint (Cilium: port 4240 of the node); when set,
   * the agent also probes every node of the mesh there (`/v1/health`).
   */
  readonly healthAddr?: string | undefined;
  readonly healthProbeIntervalMs?: number | undefined;
  /**
   * `--join-cluster` (external-workload mode): this agent runs on a VM, registers with its
   * cluster before reading it, keeps the registration while it runs and removes it on stop.
   */
  readonly joinCluster?: AgentJoin | undefined;
}

/** What the agent needs of an external workload's registration (src/externalworkload/join.ts). */
export interface AgentJoin {
  register(backend: Backend, signal: AbortSignal): Promise<number>;
  maintain(backend: Backend, signal: AbortSignal): Promise<void>;
  unregister(backend: Backend): Promise<void>;
}

/** What the agent needs of a datapath: its flow log, and a way to stop it. */
export interface AgentDatapath {
  readonly flows: FlowLog;
  /** Egress decision for a connection a local endpoint is about to make (`/v1/connect`). */
  connect?(src: Addr, dst: Addr, proto: L4Proto): ConnectVerdict;
  /** The datapath's verdict on a backend (views show it next to the state). */
  backendHealth?(address: string): 'healthy' | 'unhealthy';
  /** Fault injection: new connections and probes to these CIDRs are blackholed ([] heals). */
  partition?(cidrs: readonly string[]): void;
  blackholed?(ip: string): boolean;
  close(): void | Promise<void>;
}

export class Agent {
  readonly views: AgentViews;
  private readonly lifecycle: Lifecycle;
  private readonly log: Logger;
  private readonly metrics: KvstoreMetrics;
  private readonly kvstore: KvstoreHook;
  private local: LocalClusterWatcher | undefined;
  private objects: ObjectSource | undefined;
  private kube: KubeObjectSource | undefined;
  private policies: PolicyWatcher | undefined;
  private mesh: ClusterMesh | undefined;
  private api: RunningHttpServer | undefined;
  private datapath: AgentDatapath | undefined;
  private readonly remotes = new Map<string, AgentRemoteCluster>();
  private readonly partitions = new Partitions();
  private healthEndpoint: RunningHttpServer | undefined;
  private prober: HealthProber | undefined;
  private refreshMetrics: () => void = () => undefined;

  constructor(private readonly opts: AgentOptions) {
    validateClusterInfo({
      name: opts.clusterName,
      id: opts.clusterId,
      maxConnectedClusters: opts.maxConnectedClusters,
    });
    if (opts.nodeName === '') {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, '--node-name must not be empty');
    }
    validateClusterName(opts.clusterName);
    this.log = opts.log.child({ cluster: opts.clusterName, node: opts.nodeName });
    this.views = newAgentViews({
      clusterName: opts.clusterName,
      log: this.log,
      policyDefaultLocalCluster: opts.policyDefaultLocalCluster,
    });
    this.lifecycle = new Lifecycle(this.log);
    this.metrics = new KvstoreMetrics('cilium', opts.clusterName);
    this.kvstore = new KvstoreHook(opts.kvstore, {
      log: this.log,
      memoryStoreName: opts.memoryStoreName,
    });
    this.compose();
  }

  private compose(): void {
    const o = this.opts;
    const meshMetrics = clusterMeshMetrics(this.metrics.registry, 'cilium_clustermesh', {
      cluster: o.clusterName,
      node: o.nodeName,
    });
    const globalServices = new Gauge({
      name: 'cilium_clustermesh_global_services',
      help: 'Number of global services in the cluster mesh',
      labelNames: ['source_cluster', 'source_node_name'],
      registers: [this.metrics.registry],
    });
    const revocations = new Counter({
      name: 'cilium_clustermesh_remote_cluster_cache_revocations',
      help: 'Remote clusters whose cached state was revoked after --clustermesh-cache-ttl',
      labelNames: ['mode', 'target_cluster'],
      registers: [this.metrics.registry],
    });
    const gsLabels = { source_cluster: o.clusterName, source_node_name: o.nodeName };
    const policy = this.views.policy;
    const refreshPolicy = registerPolicyMetrics(this.metrics.registry, {
      policies: () => policy.engine.listPolicies().length,
      revision: () => policy.revision,
      changes: () => policy.changeCounts,
      enforcement: () => {
        const ip = this.ownNodeIP();
        if (ip === undefined) return [];
        return this.views.endpoints.list(ip).map((ep) => {
          // Not learnt yet: decided as reserved:init, enforced both ways.
          const known = policy.engine.labelSetOf(ep.identity) !== undefined;
          const p = policy.engine.computeEndpointPolicy(
            known ? ep.identity : ReservedIdentity.Init,
          );
          return { ingress: p.ingress.enforced, egress: p.egress.enforced };
        });
      },
      drops: () => this.datapath?.flows.dropCounts() ?? [],
    });
    this.refreshMetrics = () => {
      // Readiness, node and service counts change without events: refresh before a scrape.
      this.mesh?.updateMetrics();
      globalServices.set(gsLabels, this.views.services.numGlobalServices);
      refreshPolicy();
    };

    this.lifecycle.append(this.kvstore);
    const join = o.joinCluster;
    if (join !== undefined) {
      this.lifecycle.append({
        name: 'join-cluster',
        start: async (ctx) => {
          const backend = this.kvstore.require();
          await join.register(backend, ctx.signal);
          ctx.spawn('join-cluster', (signal) => join.maintain(backend, signal));
        },
        stop: async () => {
          const backend = this.kvstore.require();
          await join.unregister(backend).catch((err: unknown) => {
            this.log.warn({ err: errorMessage(err) }, 'could not remove the registration');
          });
        },
      });
    }
    this.lifecycle.append({
      name: 'datapath',
      start: () => {
        this.datapath = o.datapath?.(this.views, this.log);
      },
      stop: async () => {
        await this.datapath?.close();
      },
    });
    this.lifecycle.append({
      name: 'objects',
      start: async () => {
        if (o.kubernetes === undefined) {
          this.objects = registryObjects(this.kvstore.require());
          return;
        }
        // Loaded only in Kubernetes mode: the client costs most of a second to import.
        const [{ kubeObjects }, { loadKubeConfig }] = await Promise.all([
          import('../kubesource/source.js'),
          import('../kubesource/kubeconfig.js'),
        ]);
        this.kube = kubeObjects(loadKubeConfig(o.kubernetes.kubeconfigPath), {
          log: this.log,
          metrics: this.metrics.registry,
        });
        this.objects = this.kube;
      },
    });
    this.lifecycle.append({
      name: 'local-cluster',
      start: (ctx) => {
        const local = new LocalClusterWatcher(
          this.requireObjects(),
          { name: o.clusterName, id: o.clusterId, nodeName: o.nodeName },
          this.views,
          this.log,
        );
        this.local = local;
        ctx.spawn('local cluster watcher', (signal) => local.run(signal));
      },
    });
    this.lifecycle.append({
      name: 'policy',
      start: (ctx) => {
        this.views.policy.follow(this.views.identities);
        const policies = new PolicyWatcher(this.requireObjects(), this.views.policy, this.log);
        this.policies = policies;
        ctx.spawn('policy watcher', (signal) => policies.run(signal));
      },
      stop: () => {
        this.views.policy.close();
      },
    });
    this.lifecycle.append({
      name: 'clustermesh',
      start: async (ctx) => {
        if (!ClusterMesh.enabled(o.clusterId, o.clustermeshConfig)) {
          this.log.info('ClusterMesh disabled (no cluster ID or no --clustermesh-config)');
          return;
        }
        this.mesh = new ClusterMesh({
          local: {
            name: o.clusterName,
            id: o.clusterId,
            maxConnectedClusters: o.maxConnectedClusters,
          },
          configDir: o.clustermeshConfig ?? '',
          newLogic: (name) => {
            const logic = new AgentRemoteCluster(
              name,
              { id: o.clusterId, maxConnectedClusters: o.maxConnectedClusters },
              this.views,
              this.log.child({ remote: name }),
              this.metrics,
              (cluster, kind) => {
                meshMetrics.rejected(cluster, kind);
              },
            );
            this.remotes.set(name, logic);
            return logic;
          },
          onClusterRemoved: (name) => this.remotes.delete(name),
          backendFactory: this.partitions.wrap(
            remoteBackendFactory({
              listLimit: o.kvstore.listLimit,
              qps: o.kvstore.qps,
              maxInflight: o.kvstore.maxInflight,
            }),
          ),
          numGlobalServices: () => this.views.services.numGlobalServices,
          metrics: meshMetrics,
          timing: o.timing,
          log: this.log,
        });
        await this.mesh.start(ctx.signal);
        const ttlMs = o.cacheTtlMs;
        if (ttlMs !== undefined && ttlMs > 0) {
          ctx.spawn('cache revocation', (signal) => this.revokeStale(ttlMs, signal, revocations));
        }
      },
      stop: async () => {
        await this.mesh?.stop();
      },
    });
    this.lifecycle.append({
      name: 'health',
      start: async () => {
        if (o.healthAddr === undefined) return;
        const { host, port } = parseHostPort(o.healthAddr, '--health-addr');
        this.healthEndpoint = await startHealthEndpoint(o.healthAddr);
        this.prober = new HealthProber({
          self: { cluster: o.clusterName, name: o.nodeName, ip: host },
          peers: () =>
            this.views.nodes.list().flatMap((n) => {
              const ip = n.IPAddresses.find((a) => a.Type === 'InternalIP')?.IP;
              return ip === undefined ? [] : [{ cluster: n.Cluster, name: n.Name, ip }];
            }),
          port,
          intervalMs: o.healthProbeIntervalMs,
          unreachable: (ip) => this.datapath?.blackholed?.(ip) ?? false,
          log: this.log,
        });
        this.prober.start();
      },
      stop: async () => {
        this.prober?.close();
        await this.healthEndpoint?.close();
      },
    });
    this.lifecycle.append({
      name: 'api',
      start: async () => {
        if (o.apiAddr === undefined) return;
        this.api = await startAgentApi(o.apiAddr, {
          views: this.views,
          clustermeshStatus: () => this.clustermeshStatus(),
          agentStatus: () => this.status(),
          metrics: async () => {
            this.refreshMetrics();
            return {
              contentType: this.metrics.registry.contentType,
              body: await this.metrics.text(),
            };
          },
          healthy: () => this.kvstore.status()?.connected === true,
          flows: this.datapath?.flows,
          connect: this.datapath?.connect?.bind(this.datapath),
          nodeIP: () => this.ownNodeIP(),
          backendHealth: this.datapath?.backendHealth?.bind(this.datapath),
          troubleshoot: () => this.troubleshootInfo(),
          health: () => this.prober?.status(),
          // Only agents of the local mesh (those with a userspace datapath) take faults.
          fault:
            this.datapath === undefined
              ? undefined
              : (action, params) => this.fault(action, params),
        });
      },
      stop: async () => {
        await this.api?.close();
      },
    });
  }

  /** What `clustermesh troubleshoot` needs of this agent beyond its status (`/v1/troubleshoot`). */
  troubleshootInfo(): AgentTroubleshootInfo {
    const o = this.opts;
    const remotes: AgentTroubleshootInfo['remotes'] = {};
    for (const [name, logic] of this.remotes) remotes[name] = logic.resources();
    return {
      cluster: { name: o.clusterName, id: o.clusterId },
      node: o.nodeName,
      'max-connected-clusters': o.maxConnectedClusters,
      'policy-default-local-cluster': o.policyDefaultLocalCluster ?? true,
      'clustermesh-config': o.clustermeshConfig ?? null,
      kvstore: o.kvstore.kind,
      remotes,
      ipcache: this.views.ipcache.list().map((e) => ({ cidr: e.cidr, cluster: e.cluster })),
      faults: {
        partitioned: this.partitions.list(),
        'dropping-events': [...this.remotes].filter(([, r]) => r.dropEvents).map(([n]) => n),
      },
    };
  }

  /**
   * Fault injection (local mesh): `drop-events` / `resume-events` for `remote`: watch events
   * from it are lost, so the view diverges; `forget-ip` of `ip`: one ipcache entry is
   * removed behind the watchers' back; `partition` / `heal` of `remote`: its kvstore calls
   * and events are held and the datapath blackholes new connections to its nodes and pods.
   */
  private fault(action: string, params: URLSearchParams): Record<string, unknown> {
    this.log.warn({ action, params: Object.fromEntries(params) }, 'Injecting fault on request');
    const remoteOf = (): string => {
      const remote = params.get('remote') ?? '';
      if (!this.remotes.has(remote)) {
        throw new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `fault ${action}: remote ${JSON.stringify(remote.slice(0, 80))} is not a remote cluster of this agent (remotes: ${[...this.remotes.keys()].join(', ')})`,
        );
      }
      return remote;
    };
    switch (action) {
      case 'drop-events':
      case 'resume-events': {
        const r = this.remotes.get(remoteOf());
        if (r !== undefined) r.dropEvents = action === 'drop-events';
        return {};
      }
      case 'forget-ip': {
        const ip = params.get('ip') ?? '';
        const entry = this.views.ipcache.lookup(ip.includes('/') ? ip : hostCidr(ip));
        if (entry === undefined) {
          throw new ClusterMeshError(
            ErrorCode.KeyNotFound,
            `fault forget-ip: ${JSON.stringify(ip.slice(0, 80))} is not in this agent's ipcache`,
          );
        }
        this.views.ipcache.delete(entry.source, entry.cluster, entry.cidr);
        return { forgotten: entry.cidr };
      }
      case 'partition':
      case 'heal': {
        const remote = remoteOf();
        if (action === 'partition') this.partitions.partition(remote);
        else this.partitions.heal(remote);
        const cidrs = this.partitionedCidrs();
        this.datapath?.partition?.(cidrs);
        return { partitioned: this.partitions.list(), cidrs };
      }
      default:
        throw new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `fault: action must be one of drop-events, resume-events, forget-ip, partition, heal; got ${JSON.stringify(action.slice(0, 80))}`,
        );
    }
  }

  /** Node addresses and pod CIDRs of every partitioned remote cluster, as its nodes say. */
  private partitionedCidrs(): string[] {
    const out: string[] = [];
    for (const n of this.views.nodes.list()) {
      if (!this.partitions.isPartitioned(n.Cluster)) continue;
      for (const a of n.IPAddresses) out.push(hostCidr(a.IP));
      if (n.IPv4AllocCIDR !== null) out.push(n.IPv4AllocCIDR);
    }
    return out.sort();
  }

  /** This node's address, from its own CiliumNode (undefined until it is known). */
  private ownNodeIP(): string | undefined {
    const self = this.views.nodes
      .list()
      .find((n) => n.Cluster === this.opts.clusterName && n.Name === this.opts.nodeName);
    return self?.IPAddresses.find((a) => a.Type === 'InternalIP')?.IP ?? self?.IPAddresses[0]?.IP;
  }

  /** Drains clusters disconnected for longer than `ttlMs`; their next connection restores them. */
  private async revokeStale(
    ttlMs: number,
    signal: AbortSignal,
    revocations: Counter,
  ): Promise<void> {
    const since = new Map<string, number>();
    const revoked = new Set<string>();
    while (!signal.aborted) {
      const now = Date.now();
      for (const rc of this.mesh?.clusters() ?? []) {
        if (rc.connected) {
          since.delete(rc.name);
          revoked.delete(rc.name);
          continue;
        }
        const down = since.get(rc.name) ?? now;
        since.set(rc.name, down);
        const logic = this.remotes.get(rc.name);
        if (revoked.has(rc.name) || logic === undefined || now - down < ttlMs) continue;
        try {
          logic.drain();
        } catch (err) {
          // A connection attempt is watching right now: try again on the next tick.
          this.log.debug({ remote: rc.name, err: errorMessage(err) }, 'revocation postponed');
          continue;
        }
        revoked.add(rc.name);
        revocations.inc({ mode: 'ttl', target_cluster: rc.name });
        this.log.warn(
          { remote: rc.name, disconnectedMs: now - down },
          'remote cluster disconnected longer than the cache TTL: its entries were revoked',
        );
      }
      try {
        await sleep(Math.min(1000, Math.max(50, ttlMs / 4)), signal);
      } catch {
        return;
      }
    }
  }

  async start(): Promise<void> {
    await this.lifecycle.start();
    this.log.info({ api: this.api?.url }, 'agent started');
  }

  async stop(): Promise<void> {
    await this.lifecycle.stop();
    this.metrics.close();
  }

  get apiUrl(): string | undefined {
    return this.api?.url;
  }

  private requireObjects(): ObjectSource {
    if (this.objects === undefined) throw new Error('object source not started');
    return this.objects;
  }

  clustermeshStatus(): ClusterMeshStatus {
    return this.mesh?.status() ?? { clusters: [], 'num-global-services': 0 };
  }

  /** `/v1/status`: the agent summary the `status` command prints above ClusterMesh. */
  status(): unknown {
    const rejected: Record<string, number> = {};
    for (const [name, r] of this.remotes) rejected[name] = r.status().rejected;
    return {
      cluster: { name: this.opts.clusterName, id: this.opts.clusterId },
      node: this.opts.nodeName,
      kvstore: this.kvstore.status()?.message ?? 'not connected',
      ...(this.kube === undefined ? {} : { kubernetes: this.kube.status() }),
      'local-synced': this.local?.synced ?? false,
      policy: {
        synced: this.policies?.synced ?? false,
        revision: this.views.policy.revision,
        policies: this.views.policy.engine.listPolicies().length,
        rejected: this.views.policy.rejectedPolicies,
      },
      clustermesh: this.clustermeshStatus(),
      'rejected-entries': rejected,
    };
  }
}
