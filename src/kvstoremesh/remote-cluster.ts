/**
 * KVStoreMesh's business logic for one remote cluster (reference
 * `pkg/clustermesh/kvstoremesh/remote_cluster.go`), plugged into the shared
 * RemoteCluster controller: per connection it publishes the remote's cluster config
 * into the local kvstore with `cached: true` and mirrors five resources into
 * `cilium/cache/...`; on removal it withdraws the config, waits for agents to go
 * away, then deletes the cache.
 */
import type { Logger } from 'pino';
import { enforceClusterConfig } from '../clustermesh/cluster-config.js';
import type { RemoteClusterLogic } from '../clustermesh/remote-cluster.js';
import type { RemoteLogicStatus } from '../clustermesh/status.js';
import type { Backend } from '../kvstore/backend.js';
import {
  MeshResources,
  cachePrefix,
  clusterConfigKey,
  kvstoremeshClusterConfig,
  remoteClusterLayout,
  syncedClusterPrefix,
  type CiliumClusterConfig,
  type MeshResource,
} from '../keyspace/index.js';
import { sleep } from '../lib/abort.js';
import { errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import type { KvstoreMetrics } from '../metrics/kvstore.js';
import { newWatchStoreManager } from '../store/watchstoremgr.js';
import type { TxnWriter } from '../store/write-batcher.js';
import { Reflector, type ReflectorWriteOptions } from './reflector.js';

/** Delays of one remote cluster's cache management; tests shrink them. */
export interface KvstoreMeshRemoteTiming {
  /** Re-enforcement of `cilium/cluster-config/<remote>` in the local kvstore. */
  readonly clusterConfigIntervalMs: number;
  /** Deadline of the first cluster config write of a connection. */
  readonly clusterConfigTimeoutMs: number;
  /** Between withdrawing the cluster config and deleting the cache of a removed cluster. */
  readonly drainGracePeriodMs: number;
  /** Retries of the removal after the first attempt, and the first (doubling) back-off. */
  readonly drainRetries: number;
  readonly drainRetryBaseMs: number;
}

export const DefaultKvstoreMeshRemoteTiming: KvstoreMeshRemoteTiming = {
  clusterConfigIntervalMs: 5 * 60_000,
  clusterConfigTimeoutMs: 60_000,
  drainGracePeriodMs: 3 * 60_000,
  drainRetries: 5,
  drainRetryBaseMs: 2_000,
};

export interface KvstoreMeshRemoteOptions {
  readonly name: string;
  /** The local kvstore, where the cache lives. */
  readonly local: Backend;
  /**
   * Aborts when KVStoreMesh stops: reflectors stop writing and a removal in progress
   * gives up (the cache is then left to its leases, as in the reference).
   */
  readonly lifetime: AbortSignal;
  /**
   * Whether a `drain()` now is the removal of this cluster (its config file is gone)
   * rather than a change of its cluster ID. The RemoteCluster controller calls
   * `drain()` for both; only the owner of the ClusterMesh can tell them apart.
   */
  readonly isRemoval: () => boolean;
  readonly timing?: Partial<KvstoreMeshRemoteTiming> | undefined;
  /** Hidden reference flag: keep the cache of removed clusters (until its leases expire). */
  readonly disableDrainOnDisconnection?: boolean | undefined;
  readonly write?: ReflectorWriteOptions | undefined;
  /** The local write pipeline shared by every remote cluster (default: straight to `local`). */
  readonly writer?: TxnWriter | undefined;
  readonly metrics?: KvstoreMetrics | undefined;
  readonly log?: Logger | undefined;
}

type Reflectors = Readonly<Record<MeshResource, Reflector>>;

/** One set of reflectors and the writers they run; replaced when the cache is reset. */
interface Generation {
  readonly reflectors: Reflectors;
  readonly stop: AbortController;
  readonly done: Promise<void>;
}

/** Every local prefix holding data of `cluster`: canaries first, so readers stop trusting first. */
export function cachedPrefixes(cluster: string): string[] {
  return [
    `${syncedClusterPrefix(cluster)}/`,
    ...MeshResources.map((r) => `${cachePrefix(r, cluster)}/`),
  ];
}

export class KvstoreMeshRemoteCluster implements RemoteClusterLogic {
  readonly name: string;
  readonly mirrorsVerbatim = true;
  /** From the last config read: false when the remote does not support service exports. */
  private exportsSupported = true;
  /** When the cluster was configured (readiness: per-cluster ready timeout). */
  readonly addedAt = Date.now();
  private connected: number | undefined;
  private readonly timing: KvstoreMeshRemoteTiming;
  private readonly log: Logger;
  private gen: Generation;
  /** drain() calls run one at a time (a removal may follow an ID change in progress). */
  private draining: Promise<void> = Promise.resolve();

  constructor(private readonly opts: KvstoreMeshRemoteOptions) {
    this.name = opts.name;
    this.timing = { ...DefaultKvstoreMeshRemoteTiming, ...opts.timing };
    this.log = (opts.log ?? silentLogger).child({ remote: opts.name });
    this.gen = this.startGeneration();
  }

  /** When the first connection reached the business logic (undefined: never). */
  get connectedAt(): number | undefined {
    return this.connected;
  }

  /** Every reflector wrote its canary. */
  get synced(): boolean {
    return Object.values(this.gen.reflectors).every((r) => r.synced);
  }

  async run(
    backend: Backend,
    config: CiliumClusterConfig,
    ready: () => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.connected ??= Date.now();
    const { reflectors } = this.gen;
    // Before any data: agents switch to the cache when they read `cached: true` here,
    // and then wait for the canaries, which follow the data.
    const enforcer = await enforceClusterConfig(
      this.opts.local,
      this.name,
      kvstoremeshClusterConfig(config),
      {
        intervalMs: this.timing.clusterConfigIntervalMs,
        initialTimeoutMs: this.timing.clusterConfigTimeoutMs,
        log: this.log,
      },
    );
    // A remote may itself be a KVStoreMesh cache: then read its cached layout.
    const layout = remoteClusterLayout(this.name, config.capabilities.cached);
    const mgr = newWatchStoreManager(
      backend,
      this.name,
      config.capabilities.syncedCanaries,
      this.log,
    );
    this.exportsSupported = config.capabilities.serviceExportsEnabled !== null;
    for (const res of MeshResources) {
      const reflector = reflectors[res];
      if (res === 'serviceexports' && config.capabilities.serviceExportsEnabled === null) {
        // This remote does not export MCS-API service exports at all.
        reflector.markSynced();
        continue;
      }
      const loc = layout[res];
      mgr.register(loc.syncedKey, (s) => reflector.watch(backend, loc.watchPrefix, s));
    }
    ready();
    await Promise.all([mgr.run(signal), enforcer.run(signal)]);
  }

  /**
   * Not called on a reconnect (the cache then stays and the next list diffs it).
   * Removal: see removeCache(). Cluster-ID change: the cache is emptied and rebuilt from
   * scratch, like the agent drains, so entries of the old and the new incarnation
   * never mix and readers see the canaries again only over a complete new copy.
   */
  drain(): Promise<void> {
    const next = this.draining.then(() => this.drainOnce());
    this.draining = next.catch(() => undefined);
    return next;
  }

  status(): RemoteLogicStatus {
    const r = this.gen.reflectors;
    return {
      numNodes: r.nodes.numEntries,
      numEndpoints: r.ip.numEntries,
      numIdentities: r.identities.numEntries,
      numSharedServices: r.services.numEntries,
      numServiceExports: r.serviceexports.numEntries,
      synced: {
        nodes: r.nodes.synced,
        endpoints: r.ip.synced,
        identities: r.identities.synced,
        services: r.services.synced,
        // Reported only for a remote that supports exports, as the reference does.
        ...(this.exportsSupported ? { serviceExports: r.serviceexports.synced } : {}),
      },
    };
  }

  /** Local writes waiting, summed over the reflectors (status, tests). */
  get queueSize(): number {
    return Object.values(this.gen.reflectors).reduce((n, r) => n + r.queueSize, 0);
  }

  /** Resolves once the writers stopped (after `lifetime` aborted or a removal). */
  async closed(): Promise<void> {
    await this.draining;
    await this.gen.done;
  }

  // ---- internals -----------------------------------------------------------

  private startGeneration(): Generation {
    const make = (resource: MeshResource): Reflector =>
      new Reflector({
        resource,
        cluster: this.name,
        local: this.opts.local,
        writer: this.opts.writer,
        metrics: this.opts.metrics,
        log: this.log,
        ...this.opts.write,
      });
    const reflectors: Reflectors = {
      nodes: make('nodes'),
      services: make('services'),
      serviceexports: make('serviceexports'),
      identities: make('identities'),
      ip: make('ip'),
    };
    const stop = new AbortController();
    const signal = AbortSignal.any([this.opts.lifetime, stop.signal]);
    // A SyncStore run on an already-aborted signal would never see the abort.
    const done = signal.aborted
      ? Promise.resolve()
      : Promise.all(
          Object.values(reflectors).map((r) =>
            r.run(signal).catch((err: unknown) => {
              this.log.error(
                { resource: r.resource, err: errorMessage(err) },
                'cache writer failed',
              );
            }),
          ),
        ).then(() => undefined);
    return { reflectors, stop, done };
  }

  private async stopGeneration(): Promise<void> {
    this.gen.stop.abort();
    await this.gen.done;
  }

  private async drainOnce(): Promise<void> {
    // Shutting down: the cache stays valid for agents and the next run takes it over.
    if (this.opts.lifetime.aborted) return;
    if (this.opts.isRemoval()) await this.removeCache();
    else await this.resetCache();
  }

  /** Config first (agents stop connecting), grace period, then the data. */
  private async removeCache(): Promise<void> {
    // No write of ours may land after the deletions.
    await this.stopGeneration();
    if (this.opts.disableDrainOnDisconnection === true) {
      this.log.info('remote cluster removed; drain disabled, its cache expires with its leases');
      return;
    }
    this.log.info(
      { gracePeriodMs: this.timing.drainGracePeriodMs },
      'remote cluster removed: withdrawing its configuration, then draining its cache',
    );
    await this.withRetries('draining the cache of a removed cluster', (first) =>
      this.deleteCache({ withdrawConfig: true, gracePeriod: first }),
    );
  }

  private async resetCache(): Promise<void> {
    this.log.warn('remote cluster ID changed: deleting its cache, the new connection rebuilds it');
    await this.stopGeneration();
    // The config is not withdrawn: the next run() overwrites it with the new ID.
    await this.withRetries('deleting the cache after a cluster ID change', () =>
      this.deleteCache({ withdrawConfig: false, gracePeriod: false }),
    );
    // Even if the deletion gave up, fresh SyncStores delete leftovers before their canary.
    this.gen = this.startGeneration();
  }

  private async deleteCache(o: { withdrawConfig: boolean; gracePeriod: boolean }): Promise<void> {
    const local = this.opts.local;
    if (o.withdrawConfig) await local.delete(clusterConfigKey(this.name));
    if (o.gracePeriod) await sleep(this.timing.drainGracePeriodMs, this.opts.lifetime);
    let deleted = 0;
    for (const prefix of cachedPrefixes(this.name)) deleted += await local.deletePrefix(prefix);
    this.log.info({ deleted }, 'cached data deleted');
  }

  /** Up to `drainRetries` retries with doubling back-off; gives up at shutdown. */
  private async withRetries(what: string, fn: (first: boolean) => Promise<void>): Promise<void> {
    const lifetime = this.opts.lifetime;
    let backoff = this.timing.drainRetryBaseMs;
    for (let attempt = 0; ; attempt++) {
      try {
        await fn(attempt === 0);
        return;
      } catch (err) {
        if (lifetime.aborted) {
          this.log.warn({ what }, 'interrupted by shutdown; the cache is left to its leases');
          return;
        }
        if (attempt >= this.timing.drainRetries) {
          this.log.error({ what, err: errorMessage(err), attempts: attempt + 1 }, 'giving up');
          return;
        }
        this.log.warn({ what, err: errorMessage(err), retryInMs: backoff }, 'failed, retrying');
      }
      try {
        await sleep(backoff, lifetime);
      } catch {
        return;
      }
      backoff *= 2;
    }
  }
}
