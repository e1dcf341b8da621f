/**
 * clustermesh-apiserver: the table of contents. Start order (reference §7.4):
 * kvstore → cluster config → heartbeat → synchronizers (registry → SyncStores →
 * canaries) → health/metrics servers. Stop in reverse.
 */
import { Gauge } from 'prom-client';
import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { createBackend, type KvstoreConfig } from '../kvstore/config.js';
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
import { sleep, withTimeout } from '../lib/abort.js';
import { errorMessage } from '../lib/errors.js';
import { healthRoutes, startHttpServer, type RunningHttpServer } from '../lib/http-server.js';
import { Lifecycle } from '../lib/lifecycle.js';
import { KvstoreMetrics } from '../metrics/kvstore.js';
import { enforceClusterConfig, runHeartbeat } from './cluster-config.js';
import { joinServices } from '../registry/service-join.js';
import {
  endpointConverter,
  identityConverter,
  nodeConverter,
  serviceConverter,
} from './converters.js';
import {
  createSynchronizer,
  disabledSynchronizer,
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
  private backend: Backend | undefined;
  private synchronizers: Synchronizer[] = [];
  private health: RunningHttpServer | undefined;
  private metricsServer: RunningHttpServer | undefined;
  private readyAt: number | undefined;
  private readonly startedAt = performance.now();
  private readonly bootstrap: Gauge;

  constructor(private readonly opts: ApiserverOptions) {
    validateApiserverOptions(opts);
    this.log = opts.log.child({ cluster: opts.clusterName, component: 'apiserver' });
    this.lifecycle = new Lifecycle(this.log);
    this.metrics = new KvstoreMetrics('cilium_clustermesh_apiserver', opts.clusterName);
    this.bootstrap = new Gauge({
      name: 'cilium_clustermesh_apiserver_bootstrap_seconds',
      help: 'Duration in seconds to complete bootstrap',
      labelNames: ['source_cluster'],
      registers: [this.metrics.registry],
    });
    this.compose();
  }

  private compose(): void {
    const o = this.opts;
    const cluster = { name: o.clusterName, id: o.clusterId };
    this.lifecycle.append({
      name: 'kvstore',
      start: async () => {
        const backend = await createBackend(o.kvstore, {
          log: this.log,
          memoryStoreName: o.memoryStoreName,
        });
        this.backend = backend;
        // Bounded: a kvstore that never answers must not hang the start forever.
        await withTimeout(backend.get('cilium/.heartbeat'), 60_000, 'connecting to the kvstore');
      },
      stop: async () => {
        await this.backend?.close();
      },
    });
    const background: Promise<void>[] = [];
    this.lifecycle.append({
      name: 'cluster-config',
      start: async (signal) => {
        const enforcer = await enforceClusterConfig(
          this.requireBackend(),
          o.clusterName,
          apiserverClusterConfig({
            id: o.clusterId,
            maxConnectedClusters: o.maxConnectedClusters,
            serviceExportsEnabled: false,
          }),
          {
            intervalMs: o.clusterConfigIntervalMs ?? 5 * 60_000,
            initialTimeoutMs: 60_000,
            log: this.log,
          },
        );
        background.push(enforcer.run(signal));
      },
    });
    this.lifecycle.append({
      name: 'heartbeat',
      start: (signal) => {
        background.push(
          runHeartbeat(this.requireBackend(), signal, {
            intervalMs: o.heartbeatIntervalMs ?? 60_000,
            log: this.log,
          }),
        );
      },
    });
    this.lifecycle.append({
      name: 'synchronizers',
      start: (signal) => {
        this.synchronizers = allSynchronizers({
          backend: this.requireBackend(),
          cluster,
          log: this.log,
          metrics: this.metrics,
        });
        background.push(this.watchBootstrap(signal));
        for (const s of this.synchronizers) {
          background.push(
            s.run(signal).catch((err: unknown) => {
              this.log.error(
                { synchronizer: s.name, err: errorMessage(err) },
                'synchronizer failed',
              );
            }),
          );
        }
      },
      stop: async () => {
        await Promise.all(background);
      },
    });
    const render = async (): Promise<{ contentType: string; body: string }> => ({
      contentType: this.metrics.registry.contentType,
      body: await this.metrics.text(),
    });
    this.lifecycle.append({
      name: 'http',
      start: async () => {
        if (o.healthAddr !== undefined) {
          this.health = await startHttpServer(
            o.healthAddr,
            '--health-addr',
            healthRoutes({
              kvstore: () => this.backend?.status(),
              ready: () => this.ready,
              metrics: render,
              status: () => this.statusJson(),
            }),
          );
        }
        if (o.metricsAddr !== undefined) {
          this.metricsServer = await startHttpServer(o.metricsAddr, '--metrics-addr', {
            '/metrics': render,
          });
        }
      },
      stop: async () => {
        await this.health?.close();
        await this.metricsServer?.close();
      },
    });
  }

  private requireBackend(): Backend {
    if (this.backend === undefined) throw new Error('kvstore not started');
    return this.backend;
  }

  async start(): Promise<void> {
    await this.lifecycle.start();
    this.log.info(
      { health: this.health?.url, metrics: this.metricsServer?.url },
      'clustermesh-apiserver started',
    );
  }

  async stop(): Promise<void> {
    await this.lifecycle.stop();
    this.metrics.close();
  }

  /** Ready once every store wrote its canary. */
  get ready(): boolean {
    return this.readyAt !== undefined;
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
    this.readyAt = performance.now();
    const seconds = (this.readyAt - this.startedAt) / 1000;
    this.bootstrap.set({ source_cluster: this.opts.clusterName }, seconds);
    this.log.info(
      { seconds: Number(seconds.toFixed(3)) },
      'bootstrap completed: all canaries written',
    );
  }

  /** Waits until ready (polling; used by tests and `up`). */
  async waitReady(timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.ready) {
      if (Date.now() > deadline) throw new Error('apiserver not ready in time');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  get healthUrl(): string | undefined {
    return this.health?.url;
  }

  statusJson(): unknown {
    return {
      cluster: this.opts.clusterName,
      'cluster-id': this.opts.clusterId,
      ready: this.ready,
      kvstore: this.backend?.status().message,
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
export function allSynchronizers(deps: SynchronizerDeps): Synchronizer[] {
  const { backend, cluster } = deps;
  return [
    createSynchronizer(deps, {
      name: 'nodes',
      prefix: NodesPrefix,
      source: informerSource(backend, 'CiliumNode'),
      converter: nodeConverter(cluster),
    }),
    createSynchronizer(deps, {
      name: 'identities',
      // Canary `cilium/synced/<c>/cilium/state/identities/v1`, as the reference overrides it.
      prefix: IdentitiesIdPrefix,
      syncedKey: IdentitiesPrefix,
      source: informerSource(backend, 'CiliumIdentity'),
      converter: identityConverter(),
    }),
    createSynchronizer(deps, {
      name: 'endpoints',
      // Canary `cilium/synced/<c>/cilium/state/ip/v1`, as the reference overrides it.
      prefix: IPCachePrefix,
      syncedKey: IPIdentitiesPath,
      source: informerSource(backend, 'CiliumEndpoint'),
      converter: endpointConverter(),
    }),
    createSynchronizer(deps, {
      name: 'services',
      prefix: ServicesPrefix,
      // Synced once both Services and EndpointSlices are listed: readers never see a
      // service whose backends are still missing.
      source: (handlers, log) => joinServices(backend, handlers, { log }),
      converter: serviceConverter(cluster),
    }),
    disabledSynchronizer(deps, 'serviceexports', ServiceExportsPrefix),
  ];
}
