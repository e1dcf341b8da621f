/**
 * clustermesh-apiserver: the table of contents. Start order, as in the reference:
 * kvstore → cluster config → heartbeat → synchronizers (registry → SyncStores →
 * canaries) → health/metrics servers. Stop in reverse.
 */
import type { Logger } from 'pino';
import type { KvstoreConfig } from '../kvstore/config.js';
import { KvstoreHook } from '../kvstore/connect.js';
import {
  IPCachePrefix,
  IdentitiesIdPrefix,
  IdentitiesPrefix,
  IPIdentitiesPath,
  NodesPrefix,
  ServiceExportsPrefix,
  ServicesPrefix,
  apiserverClusterConfig,
  validateClusterId,
  validateClusterInfo,
  type MaxConnectedClusters,
} from '../keyspace/index.js';
import { sleep } from '../lib/abort.js';
import { Bootstrap, HttpHook, healthServer, waitUntil } from '../lib/daemon.js';
import { Lifecycle } from '../lib/lifecycle.js';
import { KvstoreMetrics } from '../metrics/kvstore.js';
import { enforceClusterConfig, runHeartbeat } from '../clustermesh/cluster-config.js';
import { joinServices } from '../registry/service-join.js';
import {
  endpointConverter,
  identityConverter,
  nodeConverter,
  serviceConverter,
  serviceExportConverter,
} from './converters.js';
import { joinServiceExports } from '../mcsapi/export.js';
import type { KubeObjectSource } from '../kubesource/source.js';
import { registryObjects, type ObjectSource } from '../registry/source.js';
import { ExternalWorkloadController } from '../externalworkload/controller.js';
import {
  createSynchronizer,
  informerSource,
  type Synchronizer,
  type SynchronizerDeps,
} from './synchronizer.js';

export interface ApiserverOptions {
  readonly clusterName: string;
  readonly clusterId: number;
  readonly maxConnectedClusters: MaxConnectedClusters;
  readonly kvstore: KvstoreConfig;
  /** `/healthz`, `/readyz`, `/metrics` (reference port 9880); undefined = not served. */
  readonly healthAddr?: string | undefined;
  /** A separate `/metrics` listener (reference port 19962). */
  readonly metricsAddr?: string | undefined;
  readonly heartbeatIntervalMs?: number | undefined;
  readonly clusterConfigIntervalMs?: number | undefined;
  readonly log: Logger;
  /** Memory kvstore only: the in-process store to join. */
  readonly memoryStoreName?: string | undefined;
  /**
   * Kubernetes mode: read the cluster's objects from a Kubernetes API server
   * (`--k8s-kubeconfig-path`; in-cluster config when `kubeconfigPath` is undefined)
   * instead of the registry in the kvstore.
   */
  readonly kubernetes?: { readonly kubeconfigPath?: string | undefined } | undefined;
  /**
   * `--enable-external-workloads`: VMs register through `cilium/state/noderegister/v1/`
   * and get an identity, a CiliumNode and a CiliumEndpoint (src/externalworkload/).
   */
  readonly externalWorkloads?: boolean | undefined;
  /**
   * With external workloads: the log file of the cluster's etcd, when it runs beside this
   * apiserver (the local mesh); the client certificates it rejects count as refusals.
   */
  readonly etcdLogFile?: string | undefined;
}

export function validateApiserverOptions(o: ApiserverOptions): void {
  validateClusterInfo({
    name: o.clusterName,
    id: o.clusterId,
    maxConnectedClusters: o.maxConnectedClusters,
  });
  // The local cluster may run with ID 0 without a mesh; an apiserver exists for one.
  validateClusterId(o.clusterId, o.maxConnectedClusters);
}

export class Apiserver {
  private readonly lifecycle: Lifecycle;
  private readonly log: Logger;
  private readonly metrics: KvstoreMetrics;
  private readonly kvstore: KvstoreHook;
  private synchronizers: Synchronizer[] = [];
  private kube: KubeObjectSource | undefined;
  private readonly health: HttpHook;
  private readonly metricsServer: HttpHook;
  private readonly bootstrap: Bootstrap;

  constructor(private readonly opts: ApiserverOptions) {
    validateApiserverOptions(opts);
    this.log = opts.log.child({ cluster: opts.clusterName, component: 'apiserver' });
    this.lifecycle = new Lifecycle(this.log);
    this.metrics = new KvstoreMetrics('cilium_clustermesh_apiserver', opts.clusterName);
    this.bootstrap = new Bootstrap(
      this.metrics.registry,
      'cilium_clustermesh_apiserver',
      opts.clusterName,
    );
    this.kvstore = new KvstoreHook(opts.kvstore, {
      log: this.log,
      memoryStoreName: opts.memoryStoreName,
    });
    const render = async (): Promise<{ contentType: string; body: string }> => ({
      contentType: this.metrics.registry.contentType,
      body: await this.metrics.text(),
    });
    this.health = healthServer(opts.healthAddr, {
      kvstore: () => this.kvstore.status(),
      ready: () => this.ready,
      metrics: render,
      status: () => this.statusJson(),
    });
    this.metricsServer = new HttpHook('metrics', opts.metricsAddr, '--metrics-addr', {
      '/metrics': render,
    });
    this.compose();
  }

  private compose(): void {
    const o = this.opts;
    const cluster = { name: o.clusterName, id: o.clusterId };
    this.lifecycle.append(this.kvstore);
    this.lifecycle.append({
      name: 'cluster-config',
      start: async (ctx) => {
        const enforcer = await enforceClusterConfig(
          this.kvstore.require(),
          o.clusterName,
          apiserverClusterConfig({
            id: o.clusterId,
            maxConnectedClusters: o.maxConnectedClusters,
            serviceExportsEnabled: true,
          }),
          {
            intervalMs: o.clusterConfigIntervalMs ?? 5 * 60_000,
            initialTimeoutMs: 60_000,
            log: this.log,
            watch: true,
          },
        );
        ctx.spawn('cluster-config', (signal) => enforcer.run(signal));
      },
    });
    this.lifecycle.append({
      name: 'heartbeat',
      start: (ctx) => {
        const backend = this.kvstore.require();
        ctx.spawn('heartbeat', (signal) =>
          runHeartbeat(backend, signal, {
            intervalMs: o.heartbeatIntervalMs ?? 60_000,
            log: this.log,
          }),
        );
      },
    });
    this.lifecycle.append({
      name: 'synchronizers',
      start: async (ctx) => {
        const backend = this.kvstore.require();
        let objects = registryObjects(backend);
        if (o.kubernetes !== undefined) {
          // Loaded only in Kubernetes mode: the client costs most of a second to import.
          const [{ kubeObjects }, { loadKubeConfig }] = await Promise.all([
            import('../kubesource/source.js'),
            import('../kubesource/kubeconfig.js'),
          ]);
          this.kube = kubeObjects(loadKubeConfig(o.kubernetes.kubeconfigPath), {
            log: this.log,
            metrics: this.metrics.registry,
          });
          objects = this.kube;
        }
        this.synchronizers = allSynchronizers(
          { backend, cluster, log: this.log, metrics: this.metrics },
          objects,
        );
        ctx.spawn('bootstrap', (signal) => this.watchBootstrap(signal));
        for (const s of this.synchronizers) {
          ctx.spawn(`synchronizer ${s.name}`, (signal) => s.run(signal));
        }
      },
    });
    if (o.externalWorkloads === true) {
      this.lifecycle.append({
        name: 'external-workloads',
        start: (ctx) => {
          const controller = new ExternalWorkloadController({
            backend: this.kvstore.require(),
            cluster,
            log: this.log,
            metrics: this.metrics.registry,
            etcdLogFile: o.etcdLogFile,
          });
          ctx.spawn('external workloads', (signal) => controller.run(signal));
        },
      });
    }
    this.lifecycle.append(this.health);
    this.lifecycle.append(this.metricsServer);
  }

  async start(): Promise<void> {
    await this.lifecycle.start();
    this.log.info(
      { health: this.health.url, metrics: this.metricsServer.url },
      'clustermesh-apiserver started',
    );
  }

  async stop(): Promise<void> {
    await this.lifecycle.stop();
    this.metrics.close();
  }

  /** Ready once every store wrote its canary. */
  get ready(): boolean {
    return this.bootstrap.ready;
  }

  /** Notes the moment the last canary is written (bootstrap_seconds). */
  private async watchBootstrap(signal: AbortSignal): Promise<void> {
    while (!this.synchronizers.every((s) => s.store.isSynced)) {
      try {
        await sleep(10, signal);
      } catch {
        return;
      }
    }
    const seconds = this.bootstrap.markReady();
    this.log.info(
      { seconds: Number(seconds.toFixed(3)) },
      'bootstrap completed: all canaries written',
    );
  }

  /** Waits until ready (used by tests and `up`). */
  waitReady(timeoutMs = 30_000, signal?: AbortSignal): Promise<void> {
    return waitUntil(() => this.ready, 'apiserver', timeoutMs, signal);
  }

  get healthUrl(): string | undefined {
    return this.health.url;
  }

  get metricsUrl(): string | undefined {
    return this.metricsServer.url;
  }

  statusJson(): unknown {
    return {
      cluster: this.opts.clusterName,
      'cluster-id': this.opts.clusterId,
      ready: this.ready,
      kvstore: this.kvstore.status()?.message,
      ...(this.kube === undefined ? {} : { kubernetes: this.kube.status() }),
      stores: this.synchronizers.map((s) => ({
        name: s.name,
        synced: s.store.isSynced,
        keys: s.store.size,
        'queue-size': s.store.queueSize,
        'sync-errors': s.store.syncErrors,
      })),
    };
  }
}

/**
 * The stores the apiserver exports, each an informer (or the Service ⇄ EndpointSlice
 * join) through its kind's converter, in the order they start.
 */
export function allSynchronizers(deps: SynchronizerDeps, objects: ObjectSource): Synchronizer[] {
  const { cluster } = deps;
  return [
    createSynchronizer(deps, {
      name: 'nodes',
      prefix: NodesPrefix,
      source: informerSource(objects, 'CiliumNode'),
      converter: nodeConverter(cluster),
    }),
    createSynchronizer(deps, {
      name: 'identities',
      // Canary `cilium/synced/<c>/cilium/state/identities/v1`, as the reference overrides it.
      prefix: IdentitiesIdPrefix,
      syncedKey: IdentitiesPrefix,
      source: informerSource(objects, 'CiliumIdentity'),
      converter: identityConverter(),
    }),
    createSynchronizer(deps, {
      name: 'endpoints',
      // Canary `cilium/synced/<c>/cilium/state/ip/v1`, as the reference overrides it.
      prefix: IPCachePrefix,
      syncedKey: IPIdentitiesPath,
      source: informerSource(objects, 'CiliumEndpoint'),
      converter: endpointConverter(),
    }),
    createSynchronizer(deps, {
      name: 'services',
      prefix: ServicesPrefix,
      // Synced once both Services and EndpointSlices are listed: readers never see a
      // service whose backends are still missing.
      source: (handlers, log) => joinServices(objects, handlers, { log }),
      converter: serviceConverter(cluster),
    }),
    createSynchronizer(deps, {
      name: 'serviceexports',
      prefix: ServiceExportsPrefix,
      source: (handlers, log) => joinServiceExports(objects, handlers, { log }),
      converter: serviceExportConverter(cluster),
    }),
  ];
}
