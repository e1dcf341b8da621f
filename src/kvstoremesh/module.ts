/**
 * KVStoreMesh: the table of contents. Start order: local kvstore (at etcd.bootstrapQps)
 * → ClusterMesh (one RemoteCluster per file of --clustermesh-config, each mirroring
 * its cluster into the local `cilium/cache/...`) → readiness → health server. Stop in
 * reverse; the cache is kept on stop (agents keep reading it, the next run takes it
 * over) and only deleted when a cluster's config file is removed.
 */
import type { Logger } from 'pino';
import { ClusterMesh } from '../clustermesh/clustermesh.js';
import type { ClusterMeshStatus } from '../clustermesh/status.js';
import type { RemoteBackendFactory } from '../clustermesh/backend-factory.js';
import type { RemoteClusterTiming } from '../clustermesh/remote-cluster.js';
import { remoteBackendFactory } from '../clustermesh/backend-factory.js';
import type { KvstoreConfig } from '../kvstore/config.js';
import { KvstoreHook } from '../kvstore/connect.js';
import { EtcdBackend } from '../kvstore/etcd.js';
import {
  validateClusterId,
  validateClusterInfo,
  type MaxConnectedClusters,
} from '../keyspace/index.js';
import { sleep } from '../lib/abort.js';
import { Bootstrap, HttpHook, healthServer, waitUntil } from '../lib/daemon.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { Lifecycle } from '../lib/lifecycle.js';
import { clusterMeshMetrics } from '../metrics/clustermesh.js';
import { KvstoreMetrics } from '../metrics/kvstore.js';
import { WriteBatcher } from '../store/write-batcher.js';
import type { ReflectorWriteOptions } from './reflector.js';
import { KvstoreMeshRemoteCluster, type KvstoreMeshRemoteTiming } from './remote-cluster.js';
import type { KubeApiProbe } from '../kubesource/probe.js';

export const DefaultKvstoreMeshHealthAddr = '127.0.0.1:9881';
export const DefaultPerClusterReadyTimeoutMs = 15_000;
export const DefaultGlobalReadyTimeoutMs = 10 * 60_000;

const METRICS_PREFIX = 'cilium_kvstoremesh';

export interface KvstoreMeshOptions {
  readonly clusterName: string;
  readonly clusterId: number;
  readonly maxConnectedClusters: MaxConnectedClusters;
  /** The local kvstore: the cache. `bootstrapQps` applies until ready, then `qps`. */
  readonly kvstore: KvstoreConfig;
  /** `--clustermesh-config`: one etcd config file per remote cluster. */
  readonly clustermeshConfig: string;
  /** `/healthz`, `/readyz`, `/metrics`, `/status` (reference port 9881); undefined = not served. */
  readonly healthAddr?: string | undefined;
  /** A cluster that did not connect this long after being configured does not hold up readiness. */
  readonly perClusterReadyTimeoutMs?: number | undefined;
  /** Ready after this long whatever the clusters do. */
  readonly globalReadyTimeoutMs?: number | undefined;
  /** Cache management per remote cluster: grace period, drain retries, config enforcement. */
  readonly remote?: Partial<KvstoreMeshRemoteTiming> | undefined;
  /** Hidden reference flag `--disable-drain-on-disconnection`. */
  readonly disableDrainOnDisconnection?: boolean | undefined;
  /** SyncStore batching of the cache writers. */
  readonly write?: ReflectorWriteOptions | undefined;
  /** Connection state machine delays (tests shrink them). */
  readonly timing?: Partial<RemoteClusterTiming> | undefined;
  /** Config directory rescan period (default 2 s). */
  readonly rescanIntervalMs?: number | undefined;
  /** Remote clients; default: etcd (or `memory://<store>`) inheriting etcd.limit/qps/maxInflight. */
  readonly backendFactory?: RemoteBackendFactory | undefined;
  /** Memory kvstore only: the in-process store to join as the local kvstore. */
  readonly memoryStoreName?: string | undefined;
  /**
   * `--k8s-kubeconfig-path` (or in-cluster inside a pod). KVStoreMesh reads no Kubernetes
   * object: it only checks that the API server answers and reports it in /status.
   */
  readonly kubernetes?: { readonly kubeconfigPath?: string | undefined } | undefined;
  readonly log: Logger;
}

export function validateKvstoreMeshOptions(o: KvstoreMeshOptions): void {
  validateClusterInfo({
    name: o.clusterName,
    id: o.clusterId,
    maxConnectedClusters: o.maxConnectedClusters,
  });
  // ClusterMesh is off with cluster ID 0; KVStoreMesh exists only for a mesh.
  validateClusterId(o.clusterId, o.maxConnectedClusters);
  if (o.clustermeshConfig === '') {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      '--clustermesh-config must name a directory',
    );
  }
  for (const [flag, v] of [
    ['--per-cluster-ready-timeout', o.perClusterReadyTimeoutMs],
    ['--global-ready-timeout', o.globalReadyTimeoutMs],
    ['--drain-grace-period', o.remote?.drainGracePeriodMs],
  ] as const) {
    if (v !== undefined && !(v >= 0)) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, `${flag} must not be negative`);
    }
  }
}

export class KvstoreMesh {
  private readonly lifecycle: Lifecycle;
  private readonly log: Logger;
  private readonly metrics: KvstoreMetrics;
  private readonly bootstrap: Bootstrap;
  private readonly perClusterReadyTimeoutMs: number;
  private readonly globalReadyTimeoutMs: number;
  private readonly kvstore: KvstoreHook;
  private mesh: ClusterMesh | undefined;
  /** The logic of every configured cluster, by name. */
  private readonly remotes = new Map<string, KvstoreMeshRemoteCluster>();
  private readonly health: HttpHook;
  private readonly excluded = new Set<string>();
  private refreshMetrics: () => void = () => undefined;
  private kube: KubeApiProbe | undefined;

  constructor(private readonly opts: KvstoreMeshOptions) {
    validateKvstoreMeshOptions(opts);
    this.log = opts.log.child({ cluster: opts.clusterName, component: 'kvstoremesh' });
    this.lifecycle = new Lifecycle(this.log);
    this.perClusterReadyTimeoutMs =
      opts.perClusterReadyTimeoutMs ?? DefaultPerClusterReadyTimeoutMs;
    this.globalReadyTimeoutMs = opts.globalReadyTimeoutMs ?? DefaultGlobalReadyTimeoutMs;
    this.metrics = new KvstoreMetrics(METRICS_PREFIX, opts.clusterName);
    this.bootstrap = new Bootstrap(this.metrics.registry, METRICS_PREFIX, opts.clusterName);
    // createBackend applies etcd.bootstrapQps when given; see markReady().
    this.kvstore = new KvstoreHook(opts.kvstore, {
      log: this.log,
      memoryStoreName: opts.memoryStoreName,
    });
    this.health = healthServer(opts.healthAddr, {
      kvstore: () => this.kvstore.status(),
      ready: () => this.ready,
      metrics: async () => ({
        contentType: this.metrics.registry.contentType,
        body: await this.metricsText(),
      }),
      status: () =>
        this.kube === undefined
          ? this.status()
          : { ...this.status(), kubernetes: this.kube.status() },
    });
    this.compose();
  }

  private compose(): void {
    const o = this.opts;
    this.lifecycle.append(this.kvstore);
    const kubernetes = o.kubernetes;
    if (kubernetes !== undefined) {
      this.lifecycle.append({
        name: 'kubernetes',
        start: async (ctx) => {
          // Loaded only in Kubernetes mode: the client costs most of a second to import.
          const [{ KubeApiProbe }, { loadKubeConfig }] = await Promise.all([
            import('../kubesource/probe.js'),
            import('../kubesource/kubeconfig.js'),
          ]);
          const probe = new KubeApiProbe(loadKubeConfig(kubernetes.kubeconfigPath), this.log);
          this.kube = probe;
          await probe.check();
          ctx.spawn('kubernetes probe', (signal) => probe.run(signal));
        },
      });
    }

    this.lifecycle.append({
      name: 'clustermesh',
      start: async (ctx) => {
        const lifetime = ctx.signal;
        const local = this.kvstore.require();
        // One bounded pipeline for the writes of every reflector: hundreds of remote
        // clusters catching up at once must not flood the local etcd (see WriteBatcher).
        const writer = new WriteBatcher({ backend: local, maxInflight: o.write?.inflight });
        const meshMetrics = clusterMeshMetrics(this.metrics.registry, METRICS_PREFIX, {
          cluster: o.clusterName,
        });
        const mesh = new ClusterMesh({
          local: {
            name: o.clusterName,
            id: o.clusterId,
            maxConnectedClusters: o.maxConnectedClusters,
          },
          configDir: o.clustermeshConfig,
          newLogic: (name) => {
            const logic = new KvstoreMeshRemoteCluster({
              name,
              local,
              lifetime,
              // ClusterMesh forgets a cluster before draining it for removal, and
              // keeps it while draining it for a cluster-ID change.
              isRemoval: () => this.mesh?.cluster(name) === undefined,
              timing: o.remote,
              disableDrainOnDisconnection: o.disableDrainOnDisconnection,
              write: o.write,
              writer,
              metrics: this.metrics,
              log: this.log,
            });
            this.remotes.set(name, logic);
            return logic;
          },
          onClusterRemoved: (name) => {
            const logic = this.remotes.get(name);
            this.remotes.delete(name);
            // Its writers wind down in the background; stopping waits for them.
            if (logic !== undefined) ctx.spawn(`retire ${name}`, () => logic.closed());
          },
          backendFactory:
            o.backendFactory ??
            remoteBackendFactory({
              listLimit: o.kvstore.listLimit,
              qps: o.kvstore.qps,
              maxInflight: o.kvstore.maxInflight,
            }),
          metrics: meshMetrics,
          timing: o.timing,
          rescanIntervalMs: o.rescanIntervalMs,
          log: this.log,
        });
        this.mesh = mesh;
        this.refreshMetrics = () => {
          mesh.updateMetrics();
        };
        this.bootstrap.begin();
        // Clusters present in the directory now exist when this resolves.
        await mesh.start(lifetime);
        ctx.spawn('readiness', (signal) => this.watchReadiness(signal));
      },
      stop: async () => {
        // The lifetime signal is already aborted: writers stop, removals give up.
        await this.mesh?.stop();
        await Promise.all([...this.remotes.values()].map((r) => r.closed()));
      },
    });

    this.lifecycle.append(this.health);
  }

  async start(): Promise<void> {
    await this.lifecycle.start();
    this.log.info(
      { health: this.health.url, clusters: this.mesh?.clusters().length ?? 0 },
      'kvstoremesh started',
    );
  }

  async stop(): Promise<void> {
    await this.lifecycle.stop();
    this.metrics.close();
  }

  /**
   * Latched once every remote cluster that connected in time wrote all its canaries
   * (or the global timeout passed): agents may then rely on the cache.
   */
  get ready(): boolean {
    return this.bootstrap.ready;
  }

  waitReady(timeoutMs = 30_000, signal?: AbortSignal): Promise<void> {
    return waitUntil(() => this.ready, 'kvstoremesh', timeoutMs, signal);
  }

  get healthUrl(): string | undefined {
    return this.health.url;
  }

  /** The ClusterMesh status of every remote cluster (`/status`, `kvstoremesh status`). */
  status(): ClusterMeshStatus {
    return this.mesh?.status() ?? { clusters: [] };
  }

  /** The logic of one configured remote cluster (tests, tooling). */
  remote(name: string): KvstoreMeshRemoteCluster | undefined {
    return this.remotes.get(name);
  }

  async metricsText(): Promise<string> {
    // Readiness and node counts change without events: refresh before a scrape.
    this.refreshMetrics();
    return this.metrics.text();
  }

  /** Names of clusters readiness still waits for (empty once ready). */
  pendingClusters(now = Date.now()): string[] {
    if (this.ready) return [];
    const pending: string[] = [];
    for (const rc of this.mesh?.clusters() ?? []) {
      const logic = this.remotes.get(rc.name);
      if (logic === undefined || logic.synced) continue;
      const connected = logic.connectedAt;
      const deadline = logic.addedAt + this.perClusterReadyTimeoutMs;
      // Reference: the per-cluster wait ends for good when the cluster has not even
      // connected in time; a cluster connecting later does not count any more.
      if ((connected === undefined || connected > deadline) && now >= deadline) {
        if (!this.excluded.has(rc.name)) {
          this.excluded.add(rc.name);
          this.log.warn(
            { remote: rc.name, timeoutMs: this.perClusterReadyTimeoutMs },
            'remote cluster did not connect in time: not waiting for it to become ready',
          );
        }
        continue;
      }
      pending.push(rc.name);
    }
    return pending;
  }

  private async watchReadiness(signal: AbortSignal): Promise<void> {
    for (;;) {
      const now = Date.now();
      if (this.pendingClusters(now).length === 0) break;
      if (this.bootstrap.elapsedMs >= this.globalReadyTimeoutMs) {
        this.log.warn(
          { pending: this.pendingClusters(now), timeoutMs: this.globalReadyTimeoutMs },
          'global ready timeout reached: reporting ready with remote clusters still syncing',
        );
        break;
      }
      try {
        await sleep(50, signal);
      } catch {
        return;
      }
    }
    this.markReady();
  }

  private markReady(): void {
    const seconds = this.bootstrap.markReady();
    const kv = this.opts.kvstore;
    const backend = this.kvstore.backend;
    if (kv.bootstrapQps !== undefined && backend instanceof EtcdBackend) {
      // qps 0 is unlimited, and RateLimiter re-reads the rate on every wait, so
      // callers already queued for a bootstrap token go on at once either way.
      backend.setQps(kv.qps);
    }
    this.log.info(
      { seconds: Number(seconds.toFixed(3)), clusters: this.mesh?.clusters().length ?? 0 },
      'bootstrap completed: remote clusters cached',
    );
  }
}
