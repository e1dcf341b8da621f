/**
 * The MCS-API operator (Cilium's cilium-operator ClusterMesh part): the table of
 * contents. One per cluster. Start order: local kvstore → object source and writer (the
 * registry, or a Kubernetes API server in Kubernetes mode) → informers → remote
 * clusters (the config directory, as the agent reads it: each remote's own kvstore, or
 * the KVStoreMesh cache) → the import controller, started only once the informers and
 * every reachable remote listed their state → health server. Stop in reverse.
 */
import { Counter, Gauge } from 'prom-client';
import type { Logger } from 'pino';
import { ClusterMesh } from '../clustermesh/clustermesh.js';
import { remoteBackendFactory } from '../clustermesh/backend-factory.js';
import type { RemoteClusterTiming } from '../clustermesh/remote-cluster.js';
import type { ClusterMeshStatus } from '../clustermesh/status.js';
import type { KvstoreConfig } from '../kvstore/config.js';
import { KvstoreHook } from '../kvstore/connect.js';
import { validateClusterInfo, type MaxConnectedClusters } from '../keyspace/index.js';
import { sleep } from '../lib/abort.js';
import { HttpHook, healthServer, waitUntil } from '../lib/daemon.js';
import { Lifecycle } from '../lib/lifecycle.js';
import { clusterMeshMetrics } from '../metrics/clustermesh.js';
import { KvstoreMetrics } from '../metrics/kvstore.js';
import { GlobalExports } from '../mcsapi/global-exports.js';
import { ImportReconciler } from '../mcsapi/reconciler.js';
import { OperatorRemoteCluster } from '../mcsapi/remote.js';
import type { KubeObjectSource } from '../kubesource/source.js';
import type { KubeObjectWriter } from '../kubesource/writer.js';
import { Registry } from '../registry/registry.js';
import {
  registryObjects,
  registryWriter,
  type ObjectSource,
  type ObjectWriter,
} from '../registry/source.js';
import { SharedInformers } from '../workloads/informers.js';

export interface OperatorOptions {
  readonly clusterName: string;
  readonly clusterId: number;
  readonly maxConnectedClusters: MaxConnectedClusters;
  readonly kvstore: KvstoreConfig;
  /** `--clustermesh-config`; undefined = only the local cluster's exports. */
  readonly clustermeshConfig?: string | undefined;
  readonly healthAddr?: string | undefined;
  /**
   * How long the first reconcile waits for a configured remote cluster that has not
   * listed its exports yet. Until then an import that only a remote contributes would
   * look orphaned and be deleted: waiting is what keeps a restart from flapping imports.
   */
  readonly remoteSyncTimeoutMs?: number | undefined;
  readonly timing?: Partial<RemoteClusterTiming> | undefined;
  readonly log: Logger;
  readonly memoryStoreName?: string | undefined;
  /**
   * Kubernetes mode (`--k8s-kubeconfig-path`, or in-cluster inside a pod): ServiceExports,
   * Services, EndpointSlices and Namespaces are read from the API server, and what the
   * operator writes goes back through it. undefined: the registry in the kvstore.
   */
  readonly kubernetes?: { readonly kubeconfigPath?: string | undefined } | undefined;
}

export class Operator {
  readonly global = new GlobalExports();
  private readonly lifecycle: Lifecycle;
  private readonly log: Logger;
  private readonly metrics: KvstoreMetrics;
  private readonly kvstore: KvstoreHook;
  private readonly health: HttpHook;
  private mesh: ClusterMesh | undefined;
  private readonly remotes = new Map<string, OperatorRemoteCluster>();
  private reconciler: ImportReconciler | undefined;
  private started = false;
  private objects: { source: ObjectSource; writer: ObjectWriter } | undefined;
  private kube: { source: KubeObjectSource; writer: KubeObjectWriter } | undefined;

  constructor(private readonly opts: OperatorOptions) {
    validateClusterInfo({
      name: opts.clusterName,
      id: opts.clusterId,
      maxConnectedClusters: opts.maxConnectedClusters,
    });
    this.log = opts.log.child({ cluster: opts.clusterName, component: 'operator' });
    this.lifecycle = new Lifecycle(this.log);
    this.metrics = new KvstoreMetrics('cilium_operator', opts.clusterName);
    this.kvstore = new KvstoreHook(opts.kvstore, {
      log: this.log,
      memoryStoreName: opts.memoryStoreName,
    });
    this.health = healthServer(opts.healthAddr, {
      kvstore: () => this.kvstore.status(),
      ready: () => this.ready,
      metrics: async () => {
        this.refreshMetrics();
        return { contentType: this.metrics.registry.contentType, body: await this.metrics.text() };
      },
      status: () => this.statusJson(),
    });
    this.compose();
  }

  private refreshMetrics: () => void = () => undefined;

  private compose(): void {
    const o = this.opts;
    const meshMetrics = clusterMeshMetrics(this.metrics.registry, 'cilium_operator_clustermesh', {
      cluster: o.clusterName,
    });
    const exportsGauge = new Gauge({
      name: 'cilium_operator_clustermesh_global_service_exports',
      help: 'Number of distinct namespaced names exported by remote clusters',
      labelNames: ['source_cluster'],
      registers: [this.metrics.registry],
    });
    const rejected = new Counter({
      name: 'cilium_operator_clustermesh_rejected_entries_total',
      help: 'Remote service exports and services rejected by validation',
      labelNames: ['source_cluster', 'target_cluster', 'kind'],
      registers: [this.metrics.registry],
    });
    this.refreshMetrics = () => {
      this.mesh?.updateMetrics();
      exportsGauge.set({ source_cluster: o.clusterName }, this.global.names().length);
    };

    this.lifecycle.append(this.kvstore);
    this.lifecycle.append({
      name: 'objects',
      start: async () => {
        if (o.kubernetes === undefined) {
          const backend = this.kvstore.require();
          this.objects = {
            source: registryObjects(backend),
            writer: registryWriter(new Registry(backend, { log: this.log })),
          };
          return;
        }
        // Loaded only in Kubernetes mode: the client costs most of a second to import.
        const [{ kubeObjects }, { kubeWriter }, { loadKubeConfig }] = await Promise.all([
          import('../kubesource/source.js'),
          import('../kubesource/writer.js'),
          import('../kubesource/kubeconfig.js'),
        ]);
        const kc = loadKubeConfig(o.kubernetes.kubeconfigPath);
        const source = kubeObjects(kc, { log: this.log, metrics: this.metrics.registry });
        const writer = kubeWriter(kc, {
          log: this.log,
          onCall: (m, c, s) => {
            source.observeCall(m, c, s);
          },
        });
        this.kube = { source, writer };
        this.objects = { source, writer };
      },
    });
    let informers: SharedInformers | undefined;
    this.lifecycle.append({
      name: 'informers',
      start: (ctx) => {
        const objects = this.objects;
        if (objects === undefined) throw new Error('operator: object source not started');
        const shared = new SharedInformers(objects.source, this.log);
        informers = shared;
        const reconciler = new ImportReconciler({
          cluster: o.clusterName,
          writer: objects.writer,
          informers: {
            serviceExports: shared.subscribe('ServiceExport', (ev) => {
              reconciler.enqueue(ev.object.metadata.namespace, ev.object.metadata.name);
            }),
            serviceImports: shared.subscribe('ServiceImport', (ev) => {
              reconciler.enqueue(ev.object.metadata.namespace, ev.object.metadata.name);
            }),
            services: shared.subscribe('Service', (ev) => {
              reconciler.onService(ev.object);
            }),
            slices: shared.subscribe('EndpointSlice', (ev) => {
              reconciler.onSlice(ev);
            }),
            namespaces: shared.subscribe('Namespace', (ev) => {
              reconciler.onNamespace(ev.object.metadata.name);
            }),
          },
          global: this.global,
          unlistedClusters: () =>
            new Set([...this.remotes].filter(([, r]) => !r.listed).map(([n]) => n)),
          log: this.log,
        });
        this.reconciler = reconciler;
        this.global.onChange((namespace, name) => {
          reconciler.enqueue(namespace, name);
        });
        ctx.spawn('informers', (signal) => shared.run(signal));
      },
    });
    this.lifecycle.append({
      name: 'clustermesh',
      start: async (ctx) => {
        if (!ClusterMesh.enabled(o.clusterId, o.clustermeshConfig)) {
          this.log.info('no remote clusters (no cluster ID or no --clustermesh-config)');
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
            const logic = new OperatorRemoteCluster(
              name,
              { id: o.clusterId, maxConnectedClusters: o.maxConnectedClusters },
              this.global,
              this.log.child({ remote: name }),
              (cluster, kind) => {
                rejected.inc({ source_cluster: o.clusterName, target_cluster: cluster, kind });
              },
              // Names it stopped exporting while unreachable are only found by a full pass.
              () => {
                if (this.started) this.reconciler?.enqueueAll();
              },
            );
            this.remotes.set(name, logic);
            return logic;
          },
          onClusterRemoved: (name) => this.remotes.delete(name),
          backendFactory: remoteBackendFactory({
            listLimit: o.kvstore.listLimit,
            qps: o.kvstore.qps,
            maxInflight: o.kvstore.maxInflight,
          }),
          metrics: meshMetrics,
          timing: o.timing,
          log: this.log,
        });
        await this.mesh.start(ctx.signal);
      },
      stop: async () => {
        await this.mesh?.stop();
      },
    });
    this.lifecycle.append({
      name: 'import-controller',
      start: (ctx) => {
        ctx.spawn('import controller', async (signal) => {
          const reconciler = this.reconciler;
          if (reconciler === undefined || informers === undefined) return;
          await informers.synced(signal);
          await this.waitRemotesListed(o.remoteSyncTimeoutMs ?? 30_000, signal);
          reconciler.enqueueAll();
          this.started = true;
          this.log.info(
            { remotes: [...this.remotes.keys()].sort() },
            'import controller started: local and remote exports listed',
          );
          await reconciler.controller.run(signal);
        });
      },
    });
    this.lifecycle.append(this.health);
  }

  /**
   * Until every configured remote listed its exports once, or `timeoutMs` passed. A
   * remote that is down at start keeps the imports the registry already has (they are
   * not touched before this returns) until it is listed or the timeout says to go on.
   */
  private async waitRemotesListed(timeoutMs: number, signal: AbortSignal): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const pending = [...this.remotes].filter(([, r]) => !r.listed).map(([n]) => n);
      if (pending.length === 0) return;
      if (Date.now() > deadline) {
        this.log.warn(
          { remotes: pending.sort() },
          'remote clusters not listed in time: reconciling without them',
        );
        return;
      }
      await sleep(20, signal);
    }
  }

  async start(): Promise<void> {
    await this.lifecycle.start();
    this.log.info({ health: this.health.url }, 'operator started');
  }

  async stop(): Promise<void> {
    await this.lifecycle.stop();
    this.metrics.close();
  }

  /** The import controller runs and its first pass over every name is done. */
  get ready(): boolean {
    return this.started;
  }

  /** Resolves once the first reconcile of every name known at start is done. */
  async waitReady(timeoutMs = 60_000, signal?: AbortSignal): Promise<void> {
    await waitUntil(() => this.started, 'operator', timeoutMs, signal);
    await this.reconciler?.controller.initialSync;
  }

  get healthUrl(): string | undefined {
    return this.health.url;
  }

  clustermeshStatus(): ClusterMeshStatus {
    return this.mesh?.status() ?? { clusters: [] };
  }

  statusJson(): unknown {
    return {
      cluster: this.opts.clusterName,
      ready: this.ready,
      kvstore: this.kvstore.status()?.message,
      ...(this.kube === undefined
        ? {}
        : { kubernetes: { ...this.kube.source.status(), writes: this.kube.writer.status() } }),
      'remote-exports': Object.fromEntries(this.global.countByCluster()),
      clustermesh: this.clustermeshStatus(),
    };
  }
}
