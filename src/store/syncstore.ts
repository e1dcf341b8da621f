import type { Logger } from 'pino';
import type { Backend, TxnOp } from '../kvstore/backend.js';
import { MAX_TXN_OPS, withTrailingSlash } from '../kvstore/backend.js';
import { encodeSyncedCanary, joinKey, syncedCanaryKey } from '../keyspace/index.js';
import { ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { WorkQueue } from '../lib/workqueue.js';
import { applyOps, type TxnWriter } from './write-batcher.js';

/** Hooks for the reference metrics (kvstore_sync_queue_size, kvstore_sync_errors_total, …). */
export interface SyncStoreMetrics {
  queueSize?(size: number): void;
  syncError?(): void;
  initialSyncCompleted?(): void;
}

export interface SyncStoreOptions {
  readonly backend: Backend;
  /** Cluster whose data this is: names the canary `cilium/synced/<cluster>/<syncedKey>`. */
  readonly sourceCluster: string;
  /** Keys are written at `<prefix>/<name>`. */
  readonly prefix: string;
  /** Canary suffix; defaults to `prefix` (the reference overrides it for identities and ipcache). */
  readonly syncedKey?: string | undefined;
  /** Attach every key to a session lease (default true). */
  readonly lease?: boolean | undefined;
  /** Batches written concurrently (default 4). */
  readonly workers?: number | undefined;
  /** Keys per etcd transaction (default 128, etcd's --max-txn-ops). */
  readonly batchSize?: number | undefined;
  readonly retryInitialMs?: number | undefined;
  readonly retryMaxMs?: number | undefined;
  /**
   * Sends the batches through this writer instead of straight to `backend` (a
   * WriteBatcher shared by many stores bounds and merges their transactions).
   */
  readonly writer?: TxnWriter | undefined;
  readonly log?: Logger | undefined;
  readonly metrics?: SyncStoreMetrics | undefined;
}

/** The queue item that stands for "write the canary" (cannot collide: names never hold NUL). */
const CANARY = '\0canary';

/**
 * The writer side: mirrors a set of (name → value) into `<prefix>/<name>`.
 *
 * - `upsertKey`/`deleteKey` only touch the in-memory desired state and queue the
 *   name; workers write the *current* desired value, so bursts coalesce.
 * - Identical values are skipped before they reach the queue.
 * - Writes are batched into transactions; failures retry per key with back-off,
 *   forever.
 * - `synced()` queues the canary. It is written once every upsert made before the
 *   call is acknowledged and, because our etcd is persistent (unlike the
 *   reference's), after deleting the keys under the prefix that were not
 *   re-upserted: leftovers of a previous run must not survive the canary.
 * - Keys whose lease is lost, and everything after the etcd behind the connection
 *   was replaced, are written again.
 */
export class SyncStore {
  private readonly state = new Map<string, string>();
  private readonly pendingSync = new Set<string>();
  private readonly queue: WorkQueue<string>;
  private readonly backend: Backend;
  private readonly prefix: string;
  private readonly canaryKey: string;
  private readonly lease: boolean;
  private readonly log: Logger;
  private readonly batchSize: number;
  private syncRequested = false;
  private canaryWritten = false;
  private canaryWaiting = false;
  private callbacks: (() => void)[] = [];
  private errors = 0;
  private readonly unsubscribe: (() => void)[] = [];

  constructor(private readonly opts: SyncStoreOptions) {
    this.backend = opts.backend;
    this.prefix = opts.prefix.replace(/\/+$/, '');
    this.canaryKey = syncedCanaryKey(opts.sourceCluster, opts.syncedKey ?? this.prefix);
    this.lease = opts.lease ?? true;
    this.batchSize = Math.min(opts.batchSize ?? MAX_TXN_OPS, MAX_TXN_OPS);
    this.log = (opts.log ?? silentLogger).child({ prefix: this.prefix });
    this.queue = new WorkQueue({
      initialMs: opts.retryInitialMs ?? 5,
      maxMs: opts.retryMaxMs ?? 60_000,
    });
  }

  /** Runs the workers until `signal` aborts. Queue state survives only for this run. */
  async run(signal: AbortSignal): Promise<void> {
    this.unsubscribe.push(
      this.backend.onLeaseLost((keys) => {
        this.rewriteLost(keys);
      }),
      this.backend.onStatusError((err) => {
        if (isClusterMeshError(err, ErrorCode.EtcdClusterIdMismatch)) this.rewriteAll();
      }),
    );
    const onAbort = (): void => {
      this.queue.shutdown();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      const workers = Array.from({ length: this.opts.workers ?? 4 }, () => this.worker());
      await Promise.all(workers);
    } finally {
      signal.removeEventListener('abort', onAbort);
      for (const u of this.unsubscribe.splice(0)) u();
    }
  }

  upsertKey(name: string, value: string): void {
    if (this.state.get(name) === value) return;
    this.state.set(name, value);
    if (!this.syncRequested) this.pendingSync.add(name);
    this.enqueue(name);
  }

  deleteKey(name: string): void {
    if (!this.state.delete(name)) return;
    // A deletion settles a pending upsert as far as the canary is concerned.
    this.settle(name);
    this.enqueue(name);
  }

  /**
   * Requests the canary (first call only); callbacks run once it is written.
   * Callers invoke it when their source has delivered its initial state.
   */
  synced(...callbacks: (() => void)[]): void {
    if (this.syncRequested) return;
    this.syncRequested = true;
    this.callbacks = callbacks;
    this.enqueue(CANARY);
  }

  get isSynced(): boolean {
    return this.canaryWritten;
  }

  /** Names waiting to be written (queued, in flight or backing off). */
  get queueSize(): number {
    return this.queue.pending;
  }

  get size(): number {
    return this.state.size;
  }

  get syncErrors(): number {
    return this.errors;
  }

  private enqueue(item: string): void {
    this.queue.add(item);
    this.opts.metrics?.queueSize?.(this.queue.pending);
  }

  private settle(name: string): void {
    if (!this.pendingSync.delete(name)) return;
    if (this.pendingSync.size === 0 && this.canaryWaiting) {
      this.canaryWaiting = false;
      this.enqueue(CANARY);
    }
  }

  private async worker(): Promise<void> {
    for (;;) {
      const batch = await this.queue.getBatch(this.batchSize);
      if (batch === undefined) return;
      const names = batch.filter((n) => n !== CANARY);
      try {
        if (names.length > 0) await this.flush(names);
        if (names.length < batch.length) await this.processCanary();
      } finally {
        for (const n of batch) this.queue.done(n);
        this.opts.metrics?.queueSize?.(this.queue.pending);
      }
    }
  }

  private async flush(names: readonly string[]): Promise<void> {
    const ops: TxnOp[] = names.map((name) => {
      const value = this.state.get(name);
      const key = joinKey(this.prefix, name);
      return value === undefined
        ? { kind: 'delete', key }
        : { kind: 'put', key, value, lease: this.lease };
    });
    try {
      await this.write(ops);
    } catch (err) {
      this.errors++;
      this.opts.metrics?.syncError?.();
      this.log.warn(
        { err: errorMessage(err), keys: names.length, first: names[0] },
        'kvstore write failed, retrying',
      );
      for (const n of names) this.queue.addRateLimited(n);
      return;
    }
    for (const n of names) {
      this.queue.forget(n);
      if (this.state.has(n)) this.settle(n);
    }
  }

  private async write(ops: readonly TxnOp[]): Promise<void> {
    if (this.opts.writer !== undefined) {
      await this.opts.writer.write(ops);
      return;
    }
    await applyOps(this.backend, ops);
  }

  private async processCanary(): Promise<void> {
    if (this.pendingSync.size > 0) {
      // Re-queued by settle() once the last pending upsert is acknowledged.
      this.canaryWaiting = true;
      return;
    }
    try {
      if (!this.canaryWritten) await this.deleteLeftovers();
      await this.backend.put(this.canaryKey, encodeSyncedCanary(), { lease: this.lease });
    } catch (err) {
      this.errors++;
      this.opts.metrics?.syncError?.();
      this.log.warn({ err: errorMessage(err) }, 'writing the synced canary failed, retrying');
      this.queue.addRateLimited(CANARY);
      return;
    }
    this.queue.forget(CANARY);
    if (this.canaryWritten) return;
    this.canaryWritten = true;
    this.log.info({ canary: this.canaryKey, keys: this.state.size }, 'initial sync completed');
    this.opts.metrics?.initialSyncCompleted?.();
    const cbs = this.callbacks;
    this.callbacks = [];
    for (const cb of cbs) cb();
  }

  /** Deletes keys under the prefix that this run never upserted (persistent etcd). */
  private async deleteLeftovers(): Promise<void> {
    const base = withTrailingSlash(this.prefix);
    const { kvs } = await this.backend.list(base);
    const stale = kvs.map((kv) => kv.key).filter((key) => !this.state.has(key.slice(base.length)));
    for (let i = 0; i < stale.length; i += this.batchSize) {
      await this.backend.txn(
        stale.slice(i, i + this.batchSize).map((key) => ({ kind: 'delete', key })),
      );
    }
    // A name upserted while the deletions were in flight may have been written
    // before them: write it again.
    for (const key of stale) {
      const name = key.slice(base.length);
      if (this.state.has(name)) this.enqueue(name);
    }
    if (stale.length > 0) {
      this.log.info({ deleted: stale.length }, 'deleted leftover keys of a previous run');
    }
  }

  private rewriteLost(keys: readonly string[]): void {
    const base = withTrailingSlash(this.prefix);
    for (const key of keys) {
      if (key === this.canaryKey && this.canaryWritten) this.enqueue(CANARY);
      else if (key.startsWith(base) && this.state.has(key.slice(base.length))) {
        this.enqueue(key.slice(base.length));
      }
    }
  }

  /** The etcd behind the connection was replaced: everything must be written again. */
  private rewriteAll(): void {
    this.log.warn({ keys: this.state.size }, 'etcd replaced; rewriting all keys');
    // The canary goes last again: readers must not see it before the data.
    for (const name of this.state.keys()) {
      this.pendingSync.add(name);
      this.enqueue(name);
    }
    if (this.canaryWritten) this.enqueue(CANARY);
  }
}
