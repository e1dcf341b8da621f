import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { MAX_KEYS_PER_LEASE, type BackendStatus, type Unsubscribe } from './backend.js';

/** A granted lease whose keepalive runs until `release()` or until it is lost. */
export interface LeaseHandle {
  readonly id: string;
  /** Called once when the server says the lease is gone (expired, revoked). */
  onLost(listener: () => void): void;
  /** Stops the keepalive without revoking (keys then expire after the TTL). */
  release(): void;
  revoke(): Promise<void>;
}

export type GrantLease = (ttlSeconds: number) => Promise<LeaseHandle>;

/**
 * The session leases of one connection. Keys are spread over leases of at most
 * 1,000 keys (the reference's limit, which keeps a single lease expiry from
 * deleting an unbounded number of keys at once). When a lease is lost, its keys
 * are reported so their owners can write them again under a fresh lease.
 */
export class LeasePool {
  private current: { handle: LeaseHandle; keys: number } | undefined;
  private granting: Promise<void> | undefined;
  /**
   * The next lease, granted in the background once the current one is half full:
   * with a backlog of 250,000 keys, writers would otherwise stop at every 1,000th key
   * for a grant round trip to a busy etcd.
   */
  private prefetched: Promise<LeaseHandle | undefined> | undefined;
  private readonly byKey = new Map<string, LeaseHandle>();
  private readonly counts = new Map<LeaseHandle, number>();
  private readonly listeners = new Set<(keys: readonly string[]) => void>();

  constructor(
    private readonly grant: GrantLease,
    private readonly ttlSeconds: number,
    private readonly log: Logger,
    private readonly maxKeys = MAX_KEYS_PER_LEASE,
  ) {}

  /** The lease id `key` must be written with; counts the key against that lease. */
  async leaseFor(key: string): Promise<string> {
    const existing = this.byKey.get(key);
    if (existing !== undefined) return existing.id;
    for (;;) {
      const cur = this.current;
      if (cur !== undefined && cur.keys < this.maxKeys) {
        cur.keys++;
        this.byKey.set(key, cur.handle);
        this.counts.set(cur.handle, (this.counts.get(cur.handle) ?? 0) + 1);
        if (cur.keys * 2 >= this.maxKeys && this.maxKeys > 1) this.prefetch();
        return cur.handle.id;
      }
      // Concurrent writers share one grant instead of each creating a lease.
      this.granting ??= this.nextLease().finally(() => {
        this.granting = undefined;
      });
      await this.granting;
    }
  }

  /** A key was deleted: it no longer counts against its lease. */
  forget(key: string): void {
    const h = this.byKey.get(key);
    if (h === undefined) return;
    this.byKey.delete(key);
    const n = (this.counts.get(h) ?? 1) - 1;
    this.counts.set(h, n);
  }

  /** The server rejected a write with this lease: treat it as lost now. */
  invalidate(id: string): void {
    for (const h of this.counts.keys()) if (h.id === id) this.lost(h);
  }

  get size(): number {
    return this.counts.size;
  }

  onLost(listener: (keys: readonly string[]) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Stops keepalives. `revoke` deletes the keys now instead of at TTL expiry. */
  async close(revoke = false): Promise<void> {
    const handles = [...this.counts.keys()];
    this.counts.clear();
    this.byKey.clear();
    this.current = undefined;
    const spare = await this.prefetched;
    this.prefetched = undefined;
    if (spare !== undefined) handles.push(spare);
    for (const h of handles) {
      if (revoke) await h.revoke().catch(() => undefined);
      h.release();
    }
  }

  /** Starts granting the lease that follows the current one (once). */
  private prefetch(): void {
    if (this.prefetched !== undefined) return;
    this.prefetched = this.grant(this.ttlSeconds).catch((err: unknown) => {
      // The writer that needs it grants one itself.
      this.log.debug({ err: errorMessage(err) }, 'lease prefetch failed');
      return undefined;
    });
  }

  /** Makes the prefetched lease (or a freshly granted one) the current lease. */
  private async nextLease(): Promise<void> {
    const spare = this.prefetched;
    this.prefetched = undefined;
    const handle =
      (spare === undefined ? undefined : await spare) ?? (await this.grant(this.ttlSeconds));
    this.counts.set(handle, 0);
    this.current = { handle, keys: 0 };
    handle.onLost(() => {
      this.lost(handle);
    });
    this.log.debug({ lease: handle.id, ttl: this.ttlSeconds }, 'lease granted');
  }

  private lost(handle: LeaseHandle): void {
    if (!this.counts.has(handle)) return;
    this.counts.delete(handle);
    if (this.current?.handle === handle) this.current = undefined;
    const keys: string[] = [];
    for (const [k, h] of this.byKey) {
      if (h === handle) {
        keys.push(k);
        this.byKey.delete(k);
      }
    }
    handle.release();
    this.log.warn({ lease: handle.id, keys: keys.length }, 'lease lost; keys must be rewritten');
    for (const l of this.listeners) l(keys);
  }
}

/**
 * Pins the etcd cluster ID seen in the first answer of a connection. An answer
 * from another cluster (etcd wiped or replaced behind the same address) is an
 * error: it is reported to status listeners, and the pin moves to the new ID so
 * that the re-list the error triggers can proceed on the same connection.
 */
export class ClusterIdPin {
  private pinned: string | undefined;
  private readonly listeners = new Set<(err: Error) => void>();
  private lastErr: string | undefined;
  private ok = false;

  constructor(private readonly log: Logger) {}

  get clusterId(): string | undefined {
    return this.pinned;
  }

  get connected(): boolean {
    return this.ok;
  }

  get lastError(): string | undefined {
    return this.lastErr;
  }

  check(clusterId: string): void {
    this.ok = true;
    if (this.pinned === undefined || this.pinned === clusterId) {
      this.pinned = clusterId;
      return;
    }
    const err = new ClusterMeshError(
      ErrorCode.EtcdClusterIdMismatch,
      `etcd cluster id mismatch: connected to ${clusterId}, expected ${this.pinned}`,
    );
    this.log.warn({ expected: this.pinned, got: clusterId }, 'etcd cluster ID changed');
    this.pinned = clusterId;
    this.report(err);
    throw err;
  }

  /** Records a failed operation; unreachable errors flip `connected`. */
  failed(err: unknown): void {
    this.lastErr = errorMessage(err);
    if (err instanceof ClusterMeshError && err.code === ErrorCode.KvstoreUnreachable) {
      this.ok = false;
    }
  }

  report(err: Error): void {
    this.lastErr = err.message;
    for (const l of this.listeners) l(err);
  }

  onError(listener: (err: Error) => void): Unsubscribe {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

/**
 * What the etcd and memory backends share: the cluster-ID pin, the session leases,
 * status, and closing (which ends every watch and every lease keepalive).
 */
export abstract class SessionBackend {
  protected readonly pin: ClusterIdPin;
  protected readonly leases: LeasePool;
  /** Aborts on close: watches and waits for the rate limiter end with the client. */
  protected readonly abort = new AbortController();
  private isClosed = false;

  protected constructor(
    protected readonly log: Logger,
    leaseTtlSeconds: number,
  ) {
    this.pin = new ClusterIdPin(log);
    this.leases = new LeasePool((ttl) => this.grantLease(ttl), leaseTtlSeconds, log);
  }

  /** Grants a lease with keepalive, for the pool. */
  protected abstract grantLease(ttlSeconds: number): Promise<LeaseHandle>;

  /** Releases the client itself, once the leases ended. */
  protected abstract closeClient(): void;

  protected get closed(): boolean {
    return this.isClosed;
  }

  protected throwIfClosed(): void {
    if (this.isClosed) {
      throw new ClusterMeshError(ErrorCode.KvstoreClosed, 'kvstore client closed');
    }
  }

  /** The status fields filled alike by every backend; `message` is the backend's own. */
  protected sessionStatus(
    endpoints: readonly string[],
    message: (connected: boolean) => string,
  ): BackendStatus {
    const connected = !this.isClosed && this.pin.connected;
    return {
      connected,
      endpoints,
      clusterId: this.pin.clusterId,
      leases: this.leases.size,
      message: message(connected),
      lastError: this.pin.lastError,
    };
  }

  onStatusError(listener: (err: Error) => void): Unsubscribe {
    return this.pin.onError(listener);
  }

  onLeaseLost(listener: (keys: readonly string[]) => void): Unsubscribe {
    return this.leases.onLost(listener);
  }

  async close(): Promise<void> {
    if (this.isClosed) return;
    this.isClosed = true;
    this.abort.abort(new ClusterMeshError(ErrorCode.KvstoreClosed, 'kvstore client closed'));
    await this.leases.close();
    this.closeClient();
  }
}
