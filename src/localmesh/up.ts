/**
 * `clustermesh up`: the table of contents of a local mesh. N clusters, each with its
 * kvstore (an etcd process, or an in-process memory store), apiserver, optional
 * KVStoreMesh, workload runtime, one agent (with its userspace datapath) per node, the
 * MCS-API operator, a ClusterIP proxy and a DNS server; then the control API the CLI reaches through
 * `<state-dir>/mesh.json`. Start in that order, stop in reverse.
 *
 * Everything but etcd runs in this process: the memory kvstore cannot be shared across
 * processes, and one process keeps the 2 × 2 mesh ready in a few seconds. Each agent still
 * has its own kvstore clients, remote-cluster connections and API address, exactly as a
 * separately started `clustermesh agent` would.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join, resolve } from 'node:path';
import type { Logger } from 'pino';
import { Agent } from '../agent/module.js';
import type { AgentViews } from '../agent/views.js';
import { Apiserver } from '../apiserver/module.js';
import { HEALTH_PORT } from '../health/prober.js';
import { NodeDatapath, type NodeDatapathOptions } from '../datapath/datapath.js';
import type { RemoteClusterTiming } from '../clustermesh/remote-cluster.js';
import { ServiceProxy } from '../datapath/service-proxy.js';
import { createRegistryDnsSource } from '../dns/registry-source.js';
import { startDnsServer, type RunningDnsServer } from '../dns/server.js';
import type { Backend } from '../kvstore/backend.js';
import {
  createBackend,
  resolveKvstoreConfig,
  sharedMemoryStore,
  type KvstoreConfig,
} from '../kvstore/config.js';
import { DefaultMaxConnectedClusters, type MaxConnectedClusters } from '../keyspace/index.js';
import { KvstoreMesh } from '../kvstoremesh/module.js';
import { execSubresource } from '../kubeapi/exec.js';
import { logSubresource } from '../kubeapi/logs.js';
import { kubeconfigYaml } from '../kubeapi/kubeconfig.js';
import { startMeshKubeApis, type MeshKubeApis } from '../kubeapi/mesh.js';
import { execProbeRunner, podExecutor, podLogSource } from '../podexec/kube.js';
import { ciliumCommands, type CliRunner } from '../podexec/cilium.js';
import {
  CILIUM_IMAGE,
  LogTap,
  kubeSystemObjects,
  systemImages,
  teeLogger,
} from '../workloads/system-pods.js';
import { imageName } from '../workloads/images.js';
import { sleep } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { Lifecycle } from '../lib/lifecycle.js';
import { Operator } from '../operator/module.js';
import { Registry } from '../registry/registry.js';
import { findEtcdBinary, freePort, startEtcd, type EtcdServer } from '../etcd/index.js';
import { writeRemoteConfig, type RemoteAccess } from '../clustermesh/remote-config.js';
import { ETCD_PORT, startSecureEtcd, type EtcdAccess } from './secure-etcd.js';
import { ClusterRuntime, type WorkloadConnection } from '../workloads/cluster-runtime.js';
import {
  AGENT_API_PORT,
  APISERVER_HEALTH_PORT,
  APISERVER_METRICS_PORT,
  MAX_CLUSTERS,
  clusterAddressing,
  nodeOfIP,
  validatePodCidrs,
  vmAddresses,
  type ClusterAddressing,
  type NodeAddressing,
} from './addressing.js';
import { startControlApi, type ControlApi, type Fault } from './control-api.js';
import { example, type ExampleName } from './example.js';
import { readMeshState, stateFile, type MeshState } from './mesh-state.js';
import { writeClusterRecord } from './cluster-record.js';
import { startUiServer, type UiServer } from '../ui/server.js';
import { startMeshVms, type MeshVms } from './vm.js';

export interface UpOptions {
  readonly clusters: number;
  /**
   * ID of the first cluster (default 1): clusters are cluster<id>..cluster<id+N-1> with
   * their addresses in 127.<id>.0.0/16, so meshes on disjoint IDs can run side by side.
   */
  readonly firstClusterId?: number | undefined;
  readonly nodes: number;
  /** undefined: etcd when its binary is installed, memory otherwise. */
  readonly kvstore?: 'etcd' | 'memory' | undefined;
  readonly kvstoremesh?: boolean | undefined;
  readonly example?: ExampleName | undefined;
  readonly stateDir: string;
  /** Port of the DNS servers; 53 by default, a free port when 53 cannot be bound. */
  readonly dnsPort?: number | undefined;
  readonly log: Logger;
  /** `--policy-default-local-cluster` of every agent (default true, as Cilium 1.19). */
  readonly policyDefaultLocalCluster?: boolean | undefined;
  /** Backend health checking of every node's datapath (defaults: see datapath/health.ts). */
  readonly backendHealth?: NodeDatapathOptions['health'];
  /** Remote-cluster timing of the agents and KVStoreMesh (outage detection). */
  readonly remoteTiming?: Partial<RemoteClusterTiming> | undefined;
  /** How long `start` waits for every agent to see every remote cluster ready. */
  readonly readyTimeoutMs?: number | undefined;
  /**
   * false: no ClusterIP proxy (benches with tens of thousands of Services: it holds a
   * listening socket per frontend, more than the open-file limit allows).
   */
  readonly serviceProxy?: boolean | undefined;
  /**
   * etcd with TLS and users (default true): a CA and certificates per cluster, client
   * certificate authentication, Cilium's etcdinit users and roles. false: plaintext, no auth.
   */
  readonly tls?: boolean | undefined;
  /**
   * Write every cluster into every other cluster's clustermesh config (default true).
   * false: the clusters start unmeshed, for `clustermesh mesh enable` / `connect`.
   */
  readonly connect?: boolean | undefined;
  /**
   * Runs our CLI in-process: `kubectl exec` into a kube-system `cilium-…` pod runs
   * `cilium-dbg …` through it against that node's agent. Without it the pods have no `cilium`.
   */
  readonly podCli?: CliRunner | undefined;
  /** The apiservers accept external workloads (VMs) when on etcd (default true). */
  readonly externalWorkloads?: boolean | undefined;
  /** `--vms N`: VMs vm1..vmN joined to cluster1 once the mesh is ready (src/localmesh/vm.ts). */
  readonly vms?: number | undefined;
  /**
   * `--k8s-mode`: each cluster's Kubernetes API starts before its daemons, and its
   * apiserver, agents, operator (and KVStoreMesh) run in Kubernetes mode against it, each
   * with a kubeconfig naming only its own cluster's context.
   */
  readonly k8sMode?: boolean | undefined;
}

/** One running agent as a benchmark observes it in-process. */
export interface MeshAgentView {
  readonly cluster: string;
  readonly node: NodeAddressing;
  readonly views: AgentViews;
  readonly datapath: NodeDatapath | undefined;
}

interface MeshAgent {
  readonly node: NodeAddressing;
  readonly agent: Agent;
  datapath?: NodeDatapath | undefined;
}

interface MeshCluster {
  readonly addr: ClusterAddressing;
  readonly configDir: string;
  readonly kvstoremeshDir: string;
  /** The cluster's certificates, users' etcd configs and host aliases (TLS only). */
  readonly etcdDir: string;
  /** Client access by user; set once etcd runs with TLS. */
  access?: EtcdAccess;
  kvstore?: KvstoreConfig;
  /** What mesh.json and the other clusters' config files name: an etcd URL or memory://. */
  kvstoreUrl?: string;
  etcd?: EtcdServer;
  /** The control-plane client: workload runtime, DNS, control API. */
  backend?: Backend;
  registry?: Registry;
  apiserver?: Apiserver;
  kvstoremesh?: KvstoreMesh;
  runtime?: ClusterRuntime;
  agents: MeshAgent[];
  operator?: Operator;
  proxy?: ServiceProxy;
  dns?: RunningDnsServer;
  /** The apiserver's log, as the kube-system clustermesh-apiserver pod prints it. */
  apiserverLog?: LogTap;
  /** `--k8s-mode`: `<state-dir>/<cluster>/kubeconfig`, the daemons' `--k8s-kubeconfig-path`. */
  kubeconfig?: string;
}

export class LocalMesh {
  private readonly lifecycle: Lifecycle;
  private readonly log: Logger;
  private readonly clusters: MeshCluster[];
  private readonly stateDir: string;
  private control: ControlApi | undefined;
  private kubeApis: MeshKubeApis | undefined;
  private ui: UiServer | undefined;
  private kind: 'etcd' | 'memory' = 'memory';
  private state: MeshState | undefined;
  private createdStateDir = false;
  /** etcd processes stopped by `freeze-kvstore`. */
  private readonly frozen = new Set<number>();

  constructor(private readonly opts: UpOptions) {
    if (!Number.isInteger(opts.clusters) || opts.clusters < 1 || opts.clusters > MAX_CLUSTERS) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `--clusters ${opts.clusters}: expected 1..${MAX_CLUSTERS}`,
      );
    }
    const first = opts.firstClusterId ?? 1;
    if (!Number.isInteger(first) || first < 1 || first + opts.clusters - 1 > MAX_CLUSTERS) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `--first-cluster-id ${first} with --clusters ${opts.clusters}: IDs must stay within 1..${MAX_CLUSTERS}`,
      );
    }
    this.stateDir = resolve(opts.stateDir);
    this.log = opts.log.child({ component: 'up' });
    this.clusters = Array.from({ length: opts.clusters }, (_, i) => {
      const addr = clusterAddressing(first + i, opts.nodes);
      return {
        addr,
        configDir: join(this.stateDir, addr.name, 'clustermesh'),
        kvstoremeshDir: join(this.stateDir, addr.name, 'kvstoremesh'),
        etcdDir: join(this.stateDir, addr.name, 'etcd'),
        agents: [],
      };
    });
    validatePodCidrs(
      this.clusters.flatMap((c) => c.addr.nodes.map((n) => ({ owner: n.name, cidr: n.podCIDR }))),
    );
    this.lifecycle = new Lifecycle(this.log);
    this.compose();
  }

  get meshState(): MeshState | undefined {
    return this.state;
  }

  private compose(): void {
    const o = this.opts;
    this.lifecycle.append({
      name: 'state-dir',
      start: () => this.claimStateDir(),
      stop: () => this.releaseStateDir(),
    });
    this.lifecycle.append({
      name: 'kvstores',
      start: () => this.startKvstores(),
      stop: () => this.eachCluster(async (c) => this.stopKvstore(c)),
    });
    if (o.k8sMode === true) {
      // The daemons read their cluster through its Kubernetes API: it runs before them.
      this.lifecycle.append({
        name: 'kube-apis',
        start: async () => {
          await this.eachCluster((c) => this.openRegistry(c));
          await this.startKubeApis();
          await this.writeClusterKubeconfigs();
        },
        stop: async () => {
          await this.kubeApis?.stop();
          await this.eachCluster(async (c) => c.backend?.close());
        },
      });
    }
    this.lifecycle.append({
      name: 'apiservers',
      start: () =>
        this.eachCluster(async (c) => {
          c.apiserverLog = new LogTap();
          c.apiserver = new Apiserver({
            ...this.daemonOptions(c),
            log: teeLogger(o.log, c.apiserverLog),
            // VMs join over etcd (`clustermesh vm run`); an in-process store has no door for them.
            externalWorkloads: this.kind === 'etcd' && o.externalWorkloads !== false,
            // On the clustermesh-apiserver Service's address, at the reference's ports.
            healthAddr: `${c.addr.etcdIP}:${APISERVER_HEALTH_PORT}`,
            metricsAddr: `${c.addr.etcdIP}:${APISERVER_METRICS_PORT}`,
            etcdLogFile: c.etcd?.logFile,
          });
          await c.apiserver.start();
        }),
      stop: () => this.eachCluster(async (c) => c.apiserver?.stop()),
    });
    this.lifecycle.append({
      name: 'clustermesh-config',
      start: () => this.writeClustermeshConfig(),
    });
    if (o.kvstoremesh === true) {
      this.lifecycle.append({
        name: 'kvstoremesh',
        start: () =>
          this.eachCluster(async (c) => {
            c.kvstoremesh = new KvstoreMesh({
              ...this.daemonOptions(c),
              clustermeshConfig: c.kvstoremeshDir,
              healthAddr: `${c.addr.nodes[0]?.ip ?? '127.0.0.1'}:0`,
            });
            await c.kvstoremesh.start();
          }),
        stop: () => this.eachCluster(async (c) => c.kvstoremesh?.stop()),
      });
    }
    this.lifecycle.append({
      name: 'workload-runtimes',
      start: ({ signal }) => {
        const stopping = this.perCluster(signal);
        return this.eachCluster(async (c) => {
          const backend = await this.openRegistry(c);
          c.runtime = new ClusterRuntime({
            cluster: { name: c.addr.name, id: c.addr.id },
            nodes: c.addr.nodes,
            backend,
            serviceCIDR: c.addr.serviceCIDR,
            // VMs (`vm run`) take 127.c.250.x, inside the service CIDR: never a ClusterIP.
            reservedServiceIPs: [c.addr.dnsIP, c.addr.etcdIP, ...vmAddresses(c.addr)],
            systemEndpoints: [
              {
                namespace: 'kube-system',
                name: 'coredns',
                ip: c.addr.dnsIP,
                labels: { 'k8s-app': 'kube-dns' },
                serviceAccount: 'coredns',
              },
            ],
            log: o.log,
            onConnection: (conn) => this.admit(c, conn),
            images: systemImages({ apiserverLog: c.apiserverLog }),
            // Exec probes run their command as `kubectl exec` would.
            execProbe: execProbeRunner({
              name: c.addr.name,
              dns: () => c.dns?.address ?? '',
              agentApi: (node) => c.agents.find((a) => a.node.name === node)?.agent.apiUrl,
            }),
          });
          await c.runtime.start(stopping(c));
        });
      },
      stop: () =>
        this.eachCluster(async (c) => {
          await c.runtime?.stop();
          // In Kubernetes mode the client outlives this hook: the Kubernetes API stops later.
          if (o.k8sMode !== true) await c.backend?.close();
        }),
    });
    this.lifecycle.append({
      name: 'agents',
      start: () =>
        this.eachCluster(async (c) => {
          await Promise.all(c.addr.nodes.map((node) => this.startAgent(c, node)));
        }),
      stop: () =>
        this.eachCluster(async (c) => {
          await Promise.all(c.agents.map((a) => a.agent.stop()));
        }),
    });
    this.lifecycle.append({
      name: 'operators',
      start: () =>
        this.eachCluster(async (c) => {
          // The agents' config directory: the operator reads remotes as they do, directly
          // or through the KVStoreMesh cache.
          c.operator = new Operator({ ...this.daemonOptions(c), clustermeshConfig: c.configDir });
          await c.operator.start();
        }),
      stop: () => this.eachCluster(async (c) => c.operator?.stop()),
    });
    this.lifecycle.append({
      name: 'service-proxies',
      start: () =>
        this.eachCluster(async (c) => {
          const first = c.agents[0]?.datapath;
          if (first === undefined || o.serviceProxy === false) return;
          c.proxy = new ServiceProxy({
            cluster: c.addr.name,
            frontends: first.lb,
            route: (srcIP) => this.datapathOf(c, srcIP) ?? first,
            log: o.log,
          });
          await c.proxy.start();
        }),
      stop: () => this.eachCluster(async (c) => c.proxy?.stop()),
    });
    this.lifecycle.append({
      name: 'dns',
      start: (ctx) => {
        const stopping = this.perCluster(ctx.signal);
        return this.eachCluster(async (c) => {
          if (c.backend === undefined) return;
          const dns = createRegistryDnsSource(c.backend, o.log.child({ cluster: c.addr.name }));
          ctx.spawn(`dns source ${c.addr.name}`, () => dns.run(stopping(c)));
          c.dns = await startDnsServer({
            host: c.addr.dnsIP,
            port: o.dnsPort ?? 53,
            fallbackToFreePort: true,
            source: dns.source,
            log: o.log.child({ cluster: c.addr.name, component: 'dns' }),
            admit: (peer, transport) => this.admitDns(c, peer, transport),
          });
        });
      },
      stop: () => this.eachCluster(async (c) => c.dns?.close()),
    });
    this.lifecycle.append({
      name: 'control-api',
      start: async () => {
        this.control = await startControlApi({
          clusters: new Map(
            this.clusters.flatMap((c) =>
              c.registry === undefined || c.runtime === undefined
                ? []
                : [
                    [
                      c.addr.name,
                      {
                        registry: c.registry,
                        runtime: c.runtime,
                        fault: (action: Fault) => this.fault(c, action),
                      },
                    ] as const,
                  ],
            ),
          ),
          log: o.log,
        });
      },
      stop: async () => {
        await this.control?.close();
      },
    });
    this.lifecycle.append({
      name: o.k8sMode === true ? 'kube-api-subresources' : 'kube-apis',
      start: async () => {
        if (this.kubeApis === undefined) await this.startKubeApis();
        if (this.kubeApis === undefined) return;
        for (const c of this.clusters) {
          const server = this.kubeApis.servers.get(c.addr.name);
          const registry = c.registry;
          if (server === undefined || registry === undefined) continue;
          server.addSubresource(
            execSubresource(
              podExecutor({
                name: c.addr.name,
                registry,
                pods: () => c.runtime?.pods() ?? [],
                dns: () => c.dns?.address ?? '',
                agentApi: (node) => c.agents.find((a) => a.node.name === node)?.agent.apiUrl,
                imageCommands: (image, node) =>
                  o.podCli === undefined || imageName(image) !== CILIUM_IMAGE
                    ? undefined
                    : ciliumCommands(
                        { stateDir: this.stateDir, cluster: c.addr.name, node },
                        o.podCli,
                      ),
                log: o.log.child({ cluster: c.addr.name, subsys: 'pod-exec' }),
              }),
              o.log.child({ cluster: c.addr.name, subsys: 'kube-apiserver' }),
            ),
          );
          // kube-system's agent and clustermesh-apiserver pods, which kubectl reaches them by.
          await registry.apply(
            kubeSystemObjects(c.addr.name, c.addr.nodes, { dnsIP: c.addr.dnsIP }),
          );
          const runtime = c.runtime;
          if (runtime !== undefined) {
            server.addSubresource(
              logSubresource(
                podLogSource({ registry, logs: runtime.logs }),
                o.log.child({ cluster: c.addr.name, subsys: 'kube-apiserver' }),
              ),
            );
          }
        }
      },
      stop: async () => {
        if (o.k8sMode !== true) await this.kubeApis?.stop();
      },
    });
    this.lifecycle.append({
      name: 'ui',
      start: async () => {
        // Reads mesh.json and the APIs above like the CLI; shows "starting" until ready.
        this.ui = await startUiServer({ stateDir: this.stateDir, log: o.log });
      },
      stop: async () => {
        await this.ui?.close();
      },
    });
    this.lifecycle.append({
      name: 'ready',
      start: async ({ signal }) => {
        await this.waitMeshReady(o.readyTimeoutMs ?? 60_000, signal);
        if (o.example !== undefined) await this.applyExample(o.example, signal);
        await this.writeState();
      },
    });
    const vms = o.vms ?? 0;
    if (vms > 0) {
      let running: MeshVms | undefined;
      this.lifecycle.append({
        name: 'vms',
        start: async () => {
          const first = this.clusters[0];
          if (first?.registry === undefined || first.access === undefined) {
            throw new ClusterMeshError(
              ErrorCode.InvalidArgument,
              '--vms: VMs join over etcd with TLS (not with --kvstore memory or --insecure)',
            );
          }
          running = await startMeshVms({
            stateDir: this.stateDir,
            cluster: first.addr.name,
            count: vms,
            registry: first.registry,
            log: this.log,
          });
        },
        stop: async () => {
          await running?.stop();
        },
      });
    }
  }

  /** The cluster's registry client (control plane: runtime, DNS, control API, Kubernetes API). */
  private async openRegistry(c: MeshCluster): Promise<Backend> {
    if (c.backend !== undefined) return c.backend;
    const backend = await createBackend(this.kvstoreOf(c), {
      log: this.opts.log,
      memoryStoreName: this.memoryStoreOf(c),
    });
    c.backend = backend;
    c.registry = new Registry(backend, { log: this.opts.log });
    return backend;
  }

  /** The Kubernetes API of each cluster, on its first node's IP (kubectl's contexts). */
  private async startKubeApis(): Promise<void> {
    this.kubeApis = await startMeshKubeApis({
      stateDir: this.stateDir,
      clusters: this.clusters.flatMap((c) =>
        c.registry === undefined || c.addr.nodes[0] === undefined
          ? []
          : [{ name: c.addr.name, ip: c.addr.nodes[0].ip, registry: c.registry }],
      ),
      log: this.opts.log,
    });
  }

  /**
   * One kubeconfig per cluster with only its own context, as a daemon deployed in that
   * cluster would have: a daemon cannot read another cluster's API by mistake.
   */
  private async writeClusterKubeconfigs(): Promise<void> {
    for (const c of this.clusters) {
      const server = this.kubeApis?.servers.get(c.addr.name);
      if (server === undefined) continue;
      const file = join(this.stateDir, c.addr.name, 'kubeconfig');
      await writeFile(
        file,
        kubeconfigYaml([
          {
            name: c.addr.name,
            server: server.url,
            caPem: server.caPem,
            token: server.tokenValue,
          },
        ]),
        { mode: 0o600 },
      );
      c.kubeconfig = file;
    }
  }

  /**
   * Every agent's views and datapath, read-only: benchmarks time when a change reaches
   * each agent, which nothing outside the process can observe without polling.
   */
  agents(): readonly MeshAgentView[] {
    return this.clusters.flatMap((c) =>
      c.agents.map((a) => ({
        cluster: c.addr.name,
        node: a.node,
        views: a.agent.views,
        datapath: a.datapath,
      })),
    );
  }

  async start(): Promise<MeshState> {
    await this.lifecycle.start();
    if (this.state === undefined) throw new Error('mesh state not written');
    return this.state;
  }

  async stop(): Promise<void> {
    // A frozen etcd would not stop: resume it first.
    for (const pid of this.frozen) {
      try {
        process.kill(pid, 'SIGCONT');
      } catch {
        // Already gone.
      }
    }
    this.frozen.clear();
    await this.lifecycle.stop();
  }

  // ---- state dir ----

  private async claimStateDir(): Promise<void> {
    const existing = await readMeshState(this.stateDir).catch(() => undefined);
    if (existing !== undefined && processAlive(existing.pid) && existing.pid !== process.pid) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `a mesh is already running from ${this.stateDir} (pid ${existing.pid}); stop it or use --state-dir`,
      );
    }
    try {
      await mkdir(this.stateDir);
      this.createdStateDir = true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    await rm(stateFile(this.stateDir), { force: true });
    for (const c of this.clusters) {
      await rm(join(this.stateDir, c.addr.name), { recursive: true, force: true });
      await mkdir(c.configDir, { recursive: true });
      if (this.opts.kvstoremesh === true) await mkdir(c.kvstoremeshDir, { recursive: true });
    }
  }

  private async releaseStateDir(): Promise<void> {
    await rm(stateFile(this.stateDir), { force: true });
    for (const c of this.clusters) {
      await rm(join(this.stateDir, c.addr.name), { recursive: true, force: true });
    }
    if (this.createdStateDir) await rm(this.stateDir, { recursive: true, force: true });
  }

  // ---- kvstores ----

  private async startKvstores(): Promise<void> {
    this.kind = this.opts.kvstore ?? (etcdInstalled() ? 'etcd' : 'memory');
    await this.eachCluster(async (c) => {
      if (this.kind === 'memory') {
        c.kvstore = await resolveKvstoreConfig('memory', []);
        c.kvstoreUrl = `memory://${this.memoryStoreOf(c) ?? c.addr.name}`;
        return;
      }
      const host = c.addr.etcdIP;
      // Cilium's port when this address has it free (another mesh may hold it).
      const port = (await portFree(host, ETCD_PORT)) ? ETCD_PORT : await freePort(host);
      if (this.opts.tls === false) {
        c.etcd = await startEtcd({ name: c.addr.name, clientHost: host, clientPort: port });
        c.kvstoreUrl = c.etcd.clientUrl;
        c.kvstore = await resolveKvstoreConfig('etcd', [`etcd.address=${c.etcd.clientUrl}`]);
        return;
      }
      const access = await startSecureEtcd({
        cluster: c.addr.name,
        dir: c.etcdDir,
        host,
        port,
        // Unmeshed clusters get their remote users from `clustermesh mesh enable`.
        enable: this.opts.connect !== false,
      });
      c.etcd = access.etcd;
      c.access = access;
      c.kvstoreUrl = access.url;
      c.kvstore = await resolveKvstoreConfig('etcd', [`etcd.config=${access.configs.admin}`]);
    });
  }

  private async stopKvstore(c: MeshCluster): Promise<void> {
    await c.etcd?.stop();
  }

  private kvstoreOf(c: MeshCluster): KvstoreConfig {
    if (c.kvstore === undefined) throw new Error(`kvstore of ${c.addr.name} not started`);
    return c.kvstore;
  }

  /** What every daemon of cluster `c` (apiserver, KVStoreMesh, agents) is started with. */
  private daemonOptions(c: MeshCluster): {
    readonly clusterName: string;
    readonly clusterId: number;
    readonly maxConnectedClusters: MaxConnectedClusters;
    readonly kvstore: KvstoreConfig;
    readonly log: Logger;
    readonly memoryStoreName: string | undefined;
    readonly kubernetes: { readonly kubeconfigPath: string } | undefined;
  } {
    return {
      clusterName: c.addr.name,
      clusterId: c.addr.id,
      // Cilium's default; cluster IDs 1..MAX_CLUSTERS fit in it.
      maxConnectedClusters: DefaultMaxConnectedClusters,
      kvstore: this.kvstoreOf(c),
      log: this.opts.log,
      memoryStoreName: this.memoryStoreOf(c),
      kubernetes: c.kubeconfig === undefined ? undefined : { kubeconfigPath: c.kubeconfig },
    };
  }

  /**
   * Fault injection (tests, benches). `crash-workloads` kills every pod socket of the
   * cluster and its workload controllers at once, as a node crash would, so nothing
   * tells the control plane (Pods, CiliumEndpoints and EndpointSlices stay as they were);
   * `crash-cluster` also takes down its agents, proxy, KVStoreMesh, apiserver and
   * kvstore. Crashes are not undone: the mesh is meant to be stopped afterwards.
   * `freeze-kvstore` / `thaw-kvstore` stop and resume the cluster's etcd process;
   * `restart-operator` stops the cluster's operator and starts a new one.
   */
  private async fault(c: MeshCluster, action: Fault): Promise<void> {
    this.log.warn({ cluster: c.addr.name, action }, 'Injecting fault on request');
    if (action === 'restart-operator') {
      await c.operator?.stop();
      c.operator = new Operator({ ...this.daemonOptions(c), clustermeshConfig: c.configDir });
      await c.operator.start();
      return;
    }
    if (action === 'freeze-kvstore' || action === 'thaw-kvstore') {
      const pid = c.etcd?.pid;
      if (pid === undefined) {
        throw new ClusterMeshError(ErrorCode.InvalidArgument, `${action}: needs --kvstore etcd`);
      }
      if (action === 'freeze-kvstore') this.frozen.add(pid);
      else this.frozen.delete(pid);
      process.kill(pid, action === 'freeze-kvstore' ? 'SIGSTOP' : 'SIGCONT');
      return;
    }
    await c.runtime?.stop();
    if (action === 'crash-workloads') return;
    await Promise.all(c.agents.map((a) => a.agent.stop()));
    await c.proxy?.stop();
    await c.kvstoremesh?.stop();
    await c.apiserver?.stop();
    if (c.etcd !== undefined) await c.etcd.stop();
    const store = this.memoryStoreOf(c);
    if (store !== undefined) sharedMemoryStore(store).setAvailable(false);
  }

  /** In-process stores are named after the state dir too: two meshes in one process stay apart. */
  private memoryStoreOf(c: MeshCluster): string | undefined {
    return this.kind === 'memory' ? `${c.addr.name}@${this.stateDir}` : undefined;
  }

  /**
   * One file per remote cluster (named after it). With KVStoreMesh, KVStoreMesh dials the
   * remotes and the agents' files name their own kvstore, where the cache lives. With TLS,
   * the files are what `clustermesh mesh connect` writes (the remote's CA and `remote`
   * certificate next to them, the name in hostaliases.yaml), and the agents reach their
   * KVStoreMesh cache as `local-<cluster>`.
   */
  private async writeClustermeshConfig(): Promise<void> {
    if (this.opts.connect === false) return;
    await this.eachCluster(async (c) => {
      for (const remote of this.clusters) {
        if (remote === c) continue;
        if (this.opts.kvstoremesh === true) {
          await writeRemoteConfig(c.kvstoremeshDir, await this.accessOf(remote, 'remote'));
          await writeRemoteConfig(c.configDir, {
            ...(await this.accessOf(c, 'local')),
            cluster: remote.addr.name,
          });
        } else {
          await writeRemoteConfig(c.configDir, await this.accessOf(remote, 'remote'));
        }
      }
    });
  }

  /** How another party reaches cluster `c`'s kvstore as `user`. */
  private async accessOf(c: MeshCluster, user: 'remote' | 'local'): Promise<RemoteAccess> {
    const endpoint = c.kvstoreUrl ?? '';
    if (c.access === undefined) return { cluster: c.addr.name, endpoint };
    return {
      cluster: c.addr.name,
      endpoint,
      aliasIp: c.addr.etcdIP,
      tls: await c.access.credentials(user),
    };
  }

  // ---- agents ----

  private async startAgent(c: MeshCluster, node: NodeAddressing): Promise<void> {
    const port = (await portFree(node.ip, AGENT_API_PORT)) ? AGENT_API_PORT : 0;
    const entry: MeshAgent = {
      node,
      agent: new Agent({
        ...this.daemonOptions(c),
        nodeName: node.name,
        clustermeshConfig: c.configDir,
        apiAddr: `${node.ip}:${port}`,
        healthAddr: `${node.ip}:${HEALTH_PORT}`,
        policyDefaultLocalCluster: this.opts.policyDefaultLocalCluster,
        timing: this.opts.remoteTiming,
        datapath: (views, log) => {
          const dp = new NodeDatapath({
            cluster: c.addr.name,
            node: { name: node.name, ip: node.ip },
            services: views.services,
            ipcache: views.ipcache,
            identities: views.identities,
            health: this.opts.backendHealth,
            log,
            policy: { enforcer: views.policy, endpoints: views.endpoints, nodes: views.nodes },
          });
          entry.datapath = dp;
          return dp;
        },
      }),
    };
    c.agents.push(entry);
    await entry.agent.start();
  }

  /**
   * Ingress at the destination's node: a connection reaches a workload only when that
   * node's policy admits its source (as that node's ipcache classifies it).
   */
  private admit(c: MeshCluster, conn: WorkloadConnection): boolean {
    const dp = this.datapathOf(c, conn.pod.ip);
    if (dp === undefined) return true;
    // Probes are told apart by address only, so they get no exemption from policy: a
    // probe needs only the handshake, which a drop does not undo. recordIngress leaves
    // them out of the flows.
    const d = dp.ingressDecision(conn.pod.ip, conn.peer.ip, conn.localPort, 'TCP');
    dp.recordIngress(conn, d);
    return d?.allowed ?? true;
  }

  /**
   * A DNS query from a pod: the pod's egress policy toward the DNS endpoint decides on
   * its node, so a default-deny egress policy blocks DNS unless it allows it.
   */
  private admitDns(
    c: MeshCluster,
    peer: { ip: string; port: number },
    transport: 'udp' | 'tcp',
  ): boolean {
    const dp = this.datapathOf(c, peer.ip);
    if (dp === undefined) return true;
    const proto = transport === 'udp' ? 'UDP' : 'TCP';
    // Policy sees the DNS endpoint's own port, 53, whatever port up could bind.
    const v = dp.connect(peer, { ip: c.addr.dnsIP, port: 53 }, proto);
    return v.verdict !== 'dropped';
  }

  private datapathOf(c: MeshCluster, ip: string): NodeDatapath | undefined {
    const node = nodeOfIP(c.addr.nodes, ip);
    if (node === undefined) return undefined;
    return c.agents.find((a) => a.node.name === node.name)?.datapath;
  }

  /** Every agent sees every remote cluster ready (a single cluster is ready at once). */
  private async waitMeshReady(timeoutMs: number, signal: AbortSignal): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    // Unmeshed clusters (--no-connect) have no remote to wait for.
    const remotes = this.opts.connect === false ? 0 : this.clusters.length - 1;
    for (;;) {
      const pending = this.clusters.flatMap((c) =>
        c.agents.filter((a) => {
          const st = a.agent.clustermeshStatus();
          return st.clusters.filter((x) => x.ready).length < remotes;
        }),
      );
      if (pending.length === 0) return;
      if (performance.now() > deadline) {
        this.log.warn(
          { agents: pending.map((a) => a.node.name) },
          'some agents do not see every remote cluster yet; continuing',
        );
        return;
      }
      await sleep(50, signal);
    }
  }

  private async applyExample(name: ExampleName, signal: AbortSignal): Promise<void> {
    const ex = example(name);
    await this.eachCluster(async (c) => {
      await c.registry?.apply(ex.objects);
    });
    // Ready when every cluster runs the example's pods and every agent balances its global
    // Service over every cluster's backends: a walkthrough started right after `up` then sees replies from every cluster.
    // Unmeshed clusters (--no-connect) balance over their own backends only.
    const want = ex.backendsPerCluster * (this.opts.connect === false ? 1 : this.clusters.length);
    const pods = ex.objects.reduce((n, obj) => {
      const spec = obj.spec as { replicas?: number } | undefined;
      return obj.kind === 'Deployment' ? n + (spec?.replicas ?? 1) : n;
    }, 0);
    const deadline = performance.now() + 30_000;
    while (performance.now() < deadline) {
      const running = this.clusters.every(
        (c) =>
          (c.runtime?.pods().filter((p) => p.phase === 'Running' && p.namespace !== 'kube-system')
            .length ?? 0) >= pods,
      );
      const ready = this.clusters.every((c) =>
        c.agents.every(
          (a) =>
            (a.agent.views.services.frontendsOf(ex.globalService)[0]?.backends.length ?? 0) >= want,
        ),
      );
      if (running && ready) return;
      await sleep(50, signal);
    }
    this.log.warn(
      { example: name },
      'example not balanced over every cluster after 30 s; continuing',
    );
  }

  private async writeState(): Promise<void> {
    const state: MeshState = {
      version: 1,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      kvstore: this.kind,
      kvstoremesh: this.opts.kvstoremesh === true,
      ...(this.opts.k8sMode === true ? { k8sMode: true } : {}),
      tls: this.clusters.some((c) => c.access !== undefined),
      connected: this.opts.connect !== false,
      control: this.control?.url ?? '',
      ...(this.kubeApis === undefined ? {} : { kubeconfig: this.kubeApis.kubeconfig }),
      ...(this.ui === undefined ? {} : { ui: this.ui.url }),
      clusters: this.clusters.map((c) => ({
        name: c.addr.name,
        id: c.addr.id,
        kvstore: c.kvstoreUrl ?? '',
        ...(c.access === undefined
          ? {}
          : { kvstoreConfig: c.access.configs.admin, etcdDir: c.etcdDir, etcdIP: c.addr.etcdIP }),
        dns: c.dns?.address ?? '',
        podCIDR: c.addr.podCIDR,
        serviceCIDR: c.addr.serviceCIDR,
        vmCIDR: c.addr.vmCIDR,
        ...(c.apiserver?.healthUrl === undefined
          ? {}
          : {
              apiserver: {
                health: c.apiserver.healthUrl,
                ...(c.apiserver.metricsUrl === undefined
                  ? {}
                  : { metrics: c.apiserver.metricsUrl }),
              },
            }),
        agents: c.agents.map((a) => ({
          node: a.node.name,
          ip: a.node.ip,
          podCIDR: a.node.podCIDR,
          api: a.agent.apiUrl ?? '',
        })),
      })),
    };
    for (const c of this.clusters) {
      await writeClusterRecord(this.stateDir, {
        version: 1,
        name: c.addr.name,
        id: c.addr.id,
        kvstore: c.kvstoreUrl ?? '',
        ...(c.access === undefined ? {} : { etcdIP: c.addr.etcdIP, etcdDir: c.etcdDir }),
        tls: c.access !== undefined,
        configDir: c.configDir,
        ...(this.opts.kvstoremesh === true ? { kvstoremeshConfigDir: c.kvstoremeshDir } : {}),
        agents: c.agents.map((a) => ({ node: a.node.name, api: a.agent.apiUrl ?? '' })),
        enabled: this.opts.connect !== false,
      });
    }
    await writeFile(stateFile(this.stateDir), `${JSON.stringify(state, null, 2)}\n`);
    this.state = state;
  }

  /**
   * One signal per cluster, all aborted by `signal` through a single listener: per-cluster
   * work listens there, so a hook's signal carries one listener however many clusters run.
   */
  private perCluster(signal: AbortSignal): (c: MeshCluster) => AbortSignal {
    const controllers = new Map(this.clusters.map((c) => [c, new AbortController()]));
    signal.addEventListener(
      'abort',
      () => {
        for (const ac of controllers.values()) ac.abort();
      },
      { once: true },
    );
    return (c) => controllers.get(c)?.signal ?? signal;
  }

  private async eachCluster(fn: (c: MeshCluster) => Promise<unknown>): Promise<void> {
    const results = await Promise.allSettled(this.clusters.map(fn));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed !== undefined) throw failed.reason;
  }
}

function etcdInstalled(): boolean {
  try {
    findEtcdBinary();
    return true;
  } catch {
    return false;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function portFree(host: string, port: number): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const srv = createServer();
    srv.once('error', () => {
      resolvePromise(false);
    });
    srv.listen({ host, port, exclusive: true }, () => {
      srv.close(() => {
        resolvePromise(true);
      });
    });
  });
}
