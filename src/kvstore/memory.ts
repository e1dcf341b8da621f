import type { Logger } from 'pino';
import { ErrorCode, isClusterMeshError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import {
  DEFAULT_LEASE_TTL_SECONDS,
  DEFAULT_LIST_LIMIT,
  type Backend,
  type BackendStatus,
  type KeyValue,
  type ListPage,
  type ListAndWatchOptions,
  type ListPageOptions,
  type ModRevisionCompare,
  type Lock,
  type PutOptions,
  type TxnOp,
  type WatchEvent,
} from './backend.js';
import { listAndWatch, type RawEvent } from './list-and-watch.js';
import { MemoryStore, type Answer } from './memory-store.js';
import { SessionBackend, type LeaseHandle } from './session.js';

export interface MemoryBackendOptions {
  readonly leaseTtlSeconds?: number;
  readonly listLimit?: number;
  readonly log?: Logger;
}

/**
 * A client connection to a MemoryStore. Behaves like the etcd backend: leases
 * with keepalive, cluster-ID pinning, list-and-watch with restarts. Several
 * backends may share one store (several daemons of one cluster in one process).
 */
export class MemoryBackend extends SessionBackend implements Backend {
  readonly kind = 'memory' as const;
  private readonly listLimit: number;

  constructor(
    readonly store: MemoryStore = new MemoryStore(),
    opts: MemoryBackendOptions = {},
  ) {
    super(opts.log ?? silentLogger, opts.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS);
    this.listLimit = opts.listLimit ?? DEFAULT_LIST_LIMIT;
  }

  private call<T>(fn: () => Answer<T>): T {
    this.throwIfClosed();
    let a: Answer<T>;
    try {
      a = fn();
    } catch (err) {
      this.pin.failed(err);
      throw err;
    }
    this.pin.check(a.clusterId);
    return a.result;
  }

  // Every method is async so that, as with etcd, callers never observe synchronous effects.
  get(key: string): Promise<KeyValue | undefined> {
    return this.async(() => this.store.get(key));
  }

  listPage(prefix: string, opts: ListPageOptions = {}): Promise<ListPage> {
    return this.async(() =>
      this.store.range(prefix, opts.startAfter, opts.limit ?? this.listLimit, opts.revision),
    );
  }

  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const page = await this.listPage(prefix, { limit: 0 });
    return { kvs: [...page.kvs], revision: page.revision };
  }

  async put(key: string, value: string, opts?: PutOptions): Promise<void> {
    const lease = await this.leaseFor(key, opts);
    this.write([lease], () => this.store.put(key, value, lease));
  }

  async createOnly(key: string, value: string, opts?: PutOptions): Promise<boolean> {
    const lease = await this.leaseFor(key, opts);
    return this.write([lease], () => this.store.createOnly(key, value, lease));
  }

  async updateIfDifferent(key: string, value: string, opts?: PutOptions): Promise<boolean> {
    const lease = await this.leaseFor(key, opts);
    return this.write([lease], () => this.store.updateIfDifferent(key, value, lease));
  }

  /** A write the store refuses for an unknown lease drops that lease, as with etcd. */
  private write<T>(leases: readonly (string | undefined)[], fn: () => Answer<T>): T {
    try {
      return this.call(fn);
    } catch (err) {
      if (isClusterMeshError(err, ErrorCode.LeaseLost)) {
        for (const l of leases) if (l !== undefined) this.leases.invalidate(l);
      }
      throw err;
    }
  }

  delete(key: string): Promise<boolean> {
    this.leases.forget(key);
    return this.async(() => this.store.delete(key));
  }

  deletePrefix(prefix: string): Promise<number> {
    return this.async(() => this.store.deletePrefix(prefix));
  }

  async txn(ops: readonly TxnOp[]): Promise<void> {
    const leaseIds = new Map<string, string>();
    for (const op of ops) {
      if (op.kind === 'put' && op.lease === true) {
        leaseIds.set(op.key, await this.leases.leaseFor(op.key));
      } else if (op.kind === 'delete') {
        this.leases.forget(op.key);
      }
    }
    this.write([...leaseIds.values()], () =>
      this.store.txn(ops, (op) => (op.kind === 'put' ? leaseIds.get(op.key) : undefined)),
    );
  }

  async txnIf(compares: readonly ModRevisionCompare[], ops: readonly TxnOp[]): Promise<boolean> {
    const leaseIds = new Map<string, string>();
    for (const op of ops) {
      if (op.kind === 'put' && op.lease === true) {
        leaseIds.set(op.key, await this.leases.leaseFor(op.key));
      }
    }
    const applied = this.write([...leaseIds.values()], () =>
      this.store.txnIf(compares, ops, (op) =>
        op.kind === 'put' ? leaseIds.get(op.key) : undefined,
      ),
    );
    if (applied) for (const op of ops) if (op.kind === 'delete') this.leases.forget(op.key);
    return applied;
  }

  listAndWatch(
    prefix: string,
    signal: AbortSignal,
    opts: ListAndWatchOptions = {},
  ): AsyncIterable<WatchEvent> {
    const combined = AbortSignal.any([signal, this.abort.signal]);
    return listAndWatch(
      {
        listPage: (p, o) => this.listPage(p, o),
        watch: (p, from, s) => this.watch(p, from, s),
        clusterId: () => this.pin.clusterId,
      },
      prefix,
      combined,
      { pageSize: this.listLimit, log: this.log, stopOnClusterChange: opts.stopOnClusterChange },
    );
  }

  private async *watch(
    prefix: string,
    fromRevision: number,
    signal: AbortSignal,
  ): AsyncGenerator<readonly RawEvent[]> {
    // An abort listener added to an already-aborted signal never fires.
    if (signal.aborted) return;
    const queue = this.call(() => this.store.watch(prefix, fromRevision));
    const onAbort = (): void => {
      this.store.unwatch(queue);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const batch of queue) yield batch;
    } catch (err) {
      this.pin.failed(err);
      throw err;
    } finally {
      signal.removeEventListener('abort', onAbort);
      this.store.unwatch(queue);
    }
  }

  async lock(path: string, signal?: AbortSignal): Promise<Lock> {
    this.throwIfClosed();
    const release = await this.store.lock(path, signal);
    let released = false;
    return {
      release: () => {
        if (!released) {
          released = true;
          release();
        }
        return Promise.resolve();
      },
    };
  }

  status(): BackendStatus {
    return this.sessionStatus(
      ['memory'],
      (connected) =>
        `memory: ${connected ? 1 : 0}/1 connected, leases=${this.leases.size}${
          this.pin.clusterId === undefined ? '' : `, ID: ${this.pin.clusterId}`
        }`,
    );
  }

  protected closeClient(): void {
    // Nothing beyond the session: the store belongs to whoever created it.
  }

  private async leaseFor(key: string, opts?: PutOptions): Promise<string | undefined> {
    if (opts?.lease === true) return this.leases.leaseFor(key);
    this.leases.forget(key);
    return undefined;
  }

  private async<T>(fn: () => Answer<T>): Promise<T> {
    return Promise.resolve().then(() => this.call(fn));
  }

  protected grantLease(ttlSeconds: number): Promise<LeaseHandle> {
    return Promise.resolve(this.grant(ttlSeconds));
  }

  private grant(ttlSeconds: number): LeaseHandle {
    const id = this.call(() => this.store.grantLease(ttlSeconds));
    const lost = new Set<() => void>();
    // Keepalive at a third of the TTL, like etcd3's auto keepalive.
    const timer = setInterval(
      () => {
        let alive: boolean;
        try {
          alive = this.store.keepAlive(id).result;
        } catch {
          return; // unreachable: try again next tick, the lease may still be alive
        }
        if (!alive) {
          clearInterval(timer);
          for (const l of lost) l();
        }
      },
      Math.max(50, (ttlSeconds * 1000) / 3),
    );
    return {
      id,
      onLost: (l) => lost.add(l),
      release: () => {
        clearInterval(timer);
      },
      revoke: () => {
        clearInterval(timer);
        this.store.revokeLease(id);
        return Promise.resolve();
      },
    };
  }
}
