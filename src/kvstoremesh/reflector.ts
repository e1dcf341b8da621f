/**
 * A KVStoreMesh reflector (reference `pkg/clustermesh/kvstoremesh/reflector.go`): one
 * remote cluster × one resource. A raw WatchStore on the remote feeds a SyncStore on
 * the local kvstore, so `<remote prefix>/<suffix>` is copied verbatim to
 * `cilium/cache/<res>/v1/<cluster>/<suffix>`, and the canary
 * `cilium/synced/<cluster>/cilium/cache/<res>/v1` follows once the first full list of
 * the remote has been written.
 */
import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import {
  cachePrefix,
  cacheResourcePrefix,
  joinKey,
  kvstoremeshCanaryKey,
  stateResourcePrefix,
  type MeshResource,
} from '../keyspace/index.js';
import { silentLogger } from '../lib/logger.js';
import type { KvstoreMetrics } from '../metrics/kvstore.js';
import { SyncStore } from '../store/syncstore.js';
import type { TxnWriter } from '../store/write-batcher.js';
import { WatchStore } from '../store/watchstore.js';

/** SyncStore tuning shared by every reflector (batching is what keeps etcd writes cheap). */
export interface ReflectorWriteOptions {
  /** Batches written concurrently per reflector (SyncStore default 4). */
  readonly workers?: number | undefined;
  /** Keys per transaction (SyncStore default 128, etcd's --max-txn-ops). */
  readonly batchSize?: number | undefined;
  /** Retry back-off of failed writes (default 5 ms doubling up to 10 s). */
  readonly retryInitialMs?: number | undefined;
  readonly retryMaxMs?: number | undefined;
  /** Transactions in flight to the local kvstore, all reflectors together (default 8). */
  readonly inflight?: number | undefined;
}

/**
 * Cap of the per-key retry back-off: a write that failed while the local kvstore was
 * overloaded or away is retried within this long of its recovery (SyncStore: 60 s).
 */
export const DefaultReflectorRetryMaxMs = 10_000;

export interface ReflectorOptions extends ReflectorWriteOptions {
  readonly resource: MeshResource;
  /** The remote cluster: scopes the cache prefix and names the canary. */
  readonly cluster: string;
  /** The local kvstore, where the cache lives. */
  readonly local: Backend;
  /** The write pipeline shared by every reflector (default: straight to `local`). */
  readonly writer?: TxnWriter | undefined;
  readonly metrics?: KvstoreMetrics | undefined;
  readonly log?: Logger | undefined;
}

/**
 * The part of a resource's tree KVStoreMesh mirrors, where not the whole of it: of
 * the identities only the master keys (`id/<id>`). The `value/` and `locks/` keys of
 * kvstore allocation mode are the allocator's own bookkeeping; agents never read them
 * from a remote, and the reference stopped mirroring them in 1.18.
 */
export const MirroredSubtree: Readonly<Partial<Record<MeshResource, string>>> = {
  identities: 'id',
};

export class Reflector {
  readonly resource: MeshResource;
  /** `cilium/cache/<res>/v1/<cluster>`. */
  readonly cachePrefix: string;
  /** `cilium/synced/<cluster>/cilium/cache/<res>/v1`. */
  readonly canaryKey: string;
  private readonly watcher: WatchStore<string>;
  private readonly syncer: SyncStore;

  /** Put back in front of a watched name, as the watch prefix went one level deeper. */
  private readonly cacheNamePrefix: string;

  constructor(opts: ReflectorOptions) {
    const { resource, cluster } = opts;
    this.resource = resource;
    this.cacheNamePrefix =
      MirroredSubtree[resource] === undefined ? '' : `${MirroredSubtree[resource]}/`;
    this.cachePrefix = cachePrefix(resource, cluster);
    this.canaryKey = kvstoremeshCanaryKey(cluster, resource);
    const log = (opts.log ?? silentLogger).child({ resource });
    this.syncer = new SyncStore({
      backend: opts.local,
      sourceCluster: cluster,
      prefix: this.cachePrefix,
      // The cluster-scoped store prefix would give `…/<res>/v1/<cluster>`; readers
      // look for the unscoped cache prefix, as with the apiserver's overrides.
      syncedKey: cacheResourcePrefix(resource),
      workers: opts.workers,
      batchSize: opts.batchSize,
      retryInitialMs: opts.retryInitialMs,
      retryMaxMs: opts.retryMaxMs ?? DefaultReflectorRetryMaxMs,
      writer: opts.writer,
      metrics: opts.metrics?.syncStore(this.cachePrefix, cluster),
      log,
    });
    this.watcher = new WatchStore<string>({
      clusterName: cluster,
      // No validation: KVStoreMesh is a transparent cache. Agents apply the
      // anti-spoofing validators when they read it, bound to their own config.
      decode: (_name, value) => value,
      observer: {
        onUpdate: (name, value) => {
          this.syncer.upsertKey(this.cacheNamePrefix + name, value);
        },
        onDelete: (name) => {
          this.syncer.deleteKey(this.cacheNamePrefix + name);
        },
      },
      // Fires after the first complete list only: the canary then means "the cache
      // holds a full copy", and re-lists after reconnects just diff.
      onSync: [
        () => {
          this.syncer.synced();
        },
      ],
      // A replaced remote etcd must be re-read only once its own canaries are back
      // (the reconnect does that); a blind re-list would wipe the cache.
      stopOnClusterChange: true,
      metrics: opts.metrics?.watchStore(stateResourcePrefix(resource), cluster),
      log,
    });
  }

  /**
   * Writes to the local kvstore until `signal` aborts. Runs for the reflector's
   * lifetime, across remote reconnects, so pending writes survive a disconnect.
   */
  run(signal: AbortSignal): Promise<void> {
    return this.syncer.run(signal);
  }

  /**
   * Mirrors the remote resource whose layout base is `prefix` (what
   * `remoteClusterLayout` gives as the watch prefix) until `signal` aborts (one remote
   * connection). Only the {@link MirroredSubtree} of it is read where one is defined.
   */
  watch(remote: Backend, prefix: string, signal: AbortSignal): Promise<void> {
    const sub = MirroredSubtree[this.resource];
    return this.watcher.watch(remote, sub === undefined ? prefix : joinKey(prefix, sub), signal);
  }

  /**
   * The remote does not have this resource (service exports of a remote that does not
   * support them): drop what an earlier connection cached and report synced anyway,
   * so readiness does not wait for data that never comes (the reference's fake sync).
   */
  markSynced(): void {
    this.watcher.drain();
    this.syncer.synced();
  }

  /** The canary was written: the cache holds the remote's full state. */
  get synced(): boolean {
    return this.syncer.isSynced;
  }

  /** Entries currently mirrored from the remote. */
  get numEntries(): number {
    return this.watcher.numEntries;
  }

  get queueSize(): number {
    return this.syncer.queueSize;
  }

  get syncErrors(): number {
    return this.syncer.syncErrors;
  }
}
