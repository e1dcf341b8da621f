import { randomBytes } from 'node:crypto';
import { AsyncQueue } from '../lib/async-queue.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import type { KeyValue, ListPage, TxnOp } from './backend.js';
import type { RawEvent } from './list-and-watch.js';

interface Entry {
  value: string;
  modRevision: number;
  createRevision: number;
  lease: string | undefined;
}

interface LogEvent {
  readonly revision: number;
  readonly key: string;
  /** State after the event; undefined for a delete. */
  readonly next: Entry | undefined;
  /** State before the event; undefined when the key did not exist. */
  readonly prev: Entry | undefined;
}

interface StoreWatcher {
  readonly prefix: string;
  readonly queue: AsyncQueue<readonly RawEvent[]>;
}

interface LeaseState {
  readonly ttlMs: number;
  expiresAt: number;
  readonly keys: Set<string>;
}

export interface Answer<T> {
  readonly result: T;
  readonly clusterId: string;
  readonly revision: number;
}

export interface MemoryStoreOptions {
  /** History kept for reads/watches at past revisions before auto-compaction. */
  readonly maxHistory?: number;
}

/**
 * The in-memory "server": an MVCC keyspace with revisions, leases, watches from a
 * revision and compaction, behaving like a single etcd member. Clients
 * (MemoryBackend) talk to it as etcd3 talks to etcd, including the cluster ID in
 * every answer, so a `wipe()` looks to them exactly like a replaced etcd.
 */
export class MemoryStore {
  private data = new Map<string, Entry>();
  private sorted: string[] | undefined;
  private log: LogEvent[] = [];
  private revision = 1;
  private compacted = 0;
  private watchers = new Set<StoreWatcher>();
  private leases = new Map<string, LeaseState>();
  private nextLease = 1;
  private expiryTimer: NodeJS.Timeout | undefined;
  private available = true;
  private locks = new Map<string, (() => void)[]>();
  private clusterIdHex = newClusterId();
  private readonly maxHistory: number;

  constructor(opts: MemoryStoreOptions = {}) {
    this.maxHistory = opts.maxHistory ?? 100_000;
  }

  get clusterId(): string {
    return this.clusterIdHex;
  }

  get currentRevision(): number {
    return this.revision;
  }

  get compactedRevision(): number {
    return this.compacted;
  }

  // ---- reads -------------------------------------------------------------

  get(key: string): Answer<KeyValue | undefined> {
    this.checkAvailable();
    const e = this.data.get(key);
    return this.answer(e === undefined ? undefined : toKV(key, e));
  }

  range(prefix: string, startAfter?: string, limit = 0, atRevision?: number): Answer<ListPage> {
    this.checkAvailable();
    const rev = atRevision ?? this.revision;
    if (rev > this.revision) {
      throw new ClusterMeshError(
        ErrorCode.KvstoreOperation,
        'required revision is a future revision',
      );
    }
    if (rev < this.compacted) {
      throw new ClusterMeshError(ErrorCode.Compacted, 'required revision has been compacted');
    }
    const view = rev === this.revision ? this.data : this.viewAt(rev, prefix);
    const keys = rev === this.revision ? this.sortedKeys() : [...view.keys()].sort();
    let i = lowerBound(keys, startAfter ?? prefix);
    if (startAfter !== undefined && keys[i] === startAfter) i++;
    const kvs: KeyValue[] = [];
    let more = false;
    for (; i < keys.length; i++) {
      const key = keys[i] as string;
      if (!key.startsWith(prefix)) break;
      const e = view.get(key);
      if (e === undefined) continue;
      if (limit > 0 && kvs.length === limit) {
        more = true;
        break;
      }
      kvs.push(toKV(key, e));
    }
    return { result: { kvs, revision: rev, more }, clusterId: this.clusterIdHex, revision: rev };
  }

  /** The state of keys under `prefix` at a past revision, rebuilt by undoing the log. */
  private viewAt(rev: number, prefix: string): Map<string, Entry> {
    const view = new Map<string, Entry>();
    for (const [k, e] of this.data) if (k.startsWith(prefix)) view.set(k, e);
    for (let i = this.log.length - 1; i >= 0; i--) {
      const ev = this.log[i] as LogEvent;
      if (ev.revision <= rev) break;
      if (!ev.key.startsWith(prefix)) continue;
      if (ev.prev === undefined) view.delete(ev.key);
      else view.set(ev.key, ev.prev);
    }
    return view;
  }

  // ---- writes ------------------------------------------------------------

  /** Applies ops atomically at one new revision. `guard` may veto the whole txn. */
  txn(ops: readonly TxnOp[], leaseOf: (op: TxnOp) => string | undefined): Answer<void> {
    this.checkAvailable();
    for (const op of ops) {
      const lease = leaseOf(op);
      if (lease !== undefined && !this.leases.has(lease)) {
        throw new ClusterMeshError(ErrorCode.LeaseLost, `lease ${lease} not found`);
      }
    }
    const events: LogEvent[] = [];
    const rev = this.revision + 1;
    for (const op of ops) {
      const ev =
        op.kind === 'put'
          ? this.applyPut(
              op.key,
              op.value,
              op.keepLease === true ? this.data.get(op.key)?.lease : leaseOf(op),
              rev,
            )
          : this.applyDelete(op.key, rev);
      if (ev !== undefined) events.push(ev);
    }
    if (events.length > 0) this.commit(rev, events);
    return this.answer(undefined);
  }

  /** Applies `ops` only if every key still has the expected mod revision (0 = absent). */
  txnIf(
    compares: readonly { key: string; modRevision: number }[],
    ops: readonly TxnOp[],
    leaseOf: (op: TxnOp) => string | undefined,
  ): Answer<boolean> {
    this.checkAvailable();
    for (const c of compares) {
      if ((this.data.get(c.key)?.modRevision ?? 0) !== c.modRevision) return this.answer(false);
    }
    this.txn(ops, leaseOf);
    return this.answer(true);
  }

  put(key: string, value: string, lease?: string): Answer<void> {
    return this.txn([{ kind: 'put', key, value }], () => lease);
  }

  createOnly(key: string, value: string, lease?: string): Answer<boolean> {
    this.checkAvailable();
    if (this.data.has(key)) return this.answer(false);
    this.put(key, value, lease);
    return this.answer(true);
  }

  updateIfDifferent(key: string, value: string, lease?: string): Answer<boolean> {
    this.checkAvailable();
    const cur = this.data.get(key);
    if (cur !== undefined && cur.value === value && cur.lease === lease) return this.answer(false);
    this.put(key, value, lease);
    return this.answer(true);
  }

  delete(key: string): Answer<boolean> {
    this.checkAvailable();
    const had = this.data.has(key);
    if (had) this.txn([{ kind: 'delete', key }], () => undefined);
    return this.answer(had);
  }

  deletePrefix(prefix: string): Answer<number> {
    this.checkAvailable();
    const keys = this.sortedKeys().filter((k) => k.startsWith(prefix));
    if (keys.length > 0) {
      this.txn(
        keys.map((key) => ({ kind: 'delete', key })),
        () => undefined,
      );
    }
    return this.answer(keys.length);
  }

  private applyPut(key: string, value: string, lease: string | undefined, rev: number): LogEvent {
    const prev = this.data.get(key);
    const next: Entry = {
      value,
      modRevision: rev,
      createRevision: prev?.createRevision ?? rev,
      lease,
    };
    if (prev === undefined) this.sorted = undefined;
    if (prev?.lease !== undefined && prev.lease !== lease)
      this.leases.get(prev.lease)?.keys.delete(key);
    if (lease !== undefined) this.leases.get(lease)?.keys.add(key);
    this.data.set(key, next);
    return { revision: rev, key, next, prev };
  }

  private applyDelete(key: string, rev: number): LogEvent | undefined {
    const prev = this.data.get(key);
    if (prev === undefined) return undefined;
    if (prev.lease !== undefined) this.leases.get(prev.lease)?.keys.delete(key);
    this.data.delete(key);
    this.sorted = undefined;
    return { revision: rev, key, next: undefined, prev };
  }

  private commit(rev: number, events: LogEvent[]): void {
    this.revision = rev;
    for (const ev of events) this.log.push(ev);
    if (this.log.length > this.maxHistory) {
      const cut = this.log[this.log.length - Math.floor(this.maxHistory / 2)];
      if (cut !== undefined) this.compact(cut.revision - 1);
    }
    for (const w of this.watchers) {
      const batch = toRaw(events, w.prefix);
      if (batch.length > 0) w.queue.push(batch);
    }
  }

  /** Drops history up to `rev`, like etcd's compaction: reads and watches before it fail. */
  compact(rev: number): void {
    if (rev <= this.compacted) return;
    this.compacted = Math.min(rev, this.revision);
    let i = 0;
    while (i < this.log.length && (this.log[i] as LogEvent).revision <= this.compacted) i++;
    this.log = this.log.slice(i);
  }

  // ---- watch -------------------------------------------------------------

  /** Events of keys under `prefix` from `fromRevision` on (history first, then live). */
  watch(prefix: string, fromRevision: number): Answer<AsyncQueue<readonly RawEvent[]>> {
    this.checkAvailable();
    if (fromRevision <= this.compacted) {
      throw new ClusterMeshError(ErrorCode.Compacted, 'required revision has been compacted');
    }
    const queue = new AsyncQueue<readonly RawEvent[]>();
    const past = toRaw(
      this.log.filter((ev) => ev.revision >= fromRevision),
      prefix,
    );
    if (past.length > 0) queue.push(past);
    const watcher: StoreWatcher = { prefix, queue };
    this.watchers.add(watcher);
    return this.answer(queue);
  }

  /** Stops a watch started with `watch()`. */
  unwatch(queue: AsyncQueue<readonly RawEvent[]>): void {
    for (const w of this.watchers) {
      if (w.queue === queue) {
        this.watchers.delete(w);
        queue.end();
      }
    }
  }

  // ---- leases ------------------------------------------------------------

  grantLease(ttlSeconds: number): Answer<string> {
    this.checkAvailable();
    const id = (this.nextLease++).toString(16);
    const ttlMs = ttlSeconds * 1000;
    this.leases.set(id, { ttlMs, expiresAt: Date.now() + ttlMs, keys: new Set() });
    this.scheduleExpiry();
    return this.answer(id);
  }

  /** Returns false when the lease no longer exists (expired or revoked). */
  keepAlive(id: string): Answer<boolean> {
    this.checkAvailable();
    const l = this.leases.get(id);
    if (l === undefined) return this.answer(false);
    l.expiresAt = Date.now() + l.ttlMs;
    this.scheduleExpiry();
    return this.answer(true);
  }

  revokeLease(id: string): Answer<void> {
    this.checkAvailable();
    this.expireLease(id);
    return this.answer(undefined);
  }

  get leaseCount(): number {
    return this.leases.size;
  }

  private expireLease(id: string): void {
    const l = this.leases.get(id);
    if (l === undefined) return;
    this.leases.delete(id);
    if (l.keys.size > 0) {
      this.txn(
        [...l.keys].map((key) => ({ kind: 'delete', key })),
        () => undefined,
      );
    }
  }

  private scheduleExpiry(): void {
    clearTimeout(this.expiryTimer);
    let next = Infinity;
    for (const l of this.leases.values()) next = Math.min(next, l.expiresAt);
    if (next === Infinity) return;
    this.expiryTimer = setTimeout(
      () => {
        this.expiryTimer = undefined;
        const now = Date.now();
        for (const [id, l] of [...this.leases]) if (l.expiresAt <= now) this.expireLease(id);
        this.scheduleExpiry();
      },
      Math.max(0, next - Date.now()),
    );
    // Lease expiry must not keep a process alive on its own.
    this.expiryTimer.unref();
  }

  // ---- locks -------------------------------------------------------------

  /** A FIFO mutex per path; resolves with the release function. */
  async lock(path: string, signal?: AbortSignal): Promise<() => void> {
    this.checkAvailable();
    const queue = this.locks.get(path);
    const release = (): void => {
      const q = this.locks.get(path);
      if (q === undefined) return;
      q.shift();
      const next = q[0];
      if (next === undefined) this.locks.delete(path);
      else next();
    };
    if (queue === undefined) {
      this.locks.set(path, [() => undefined]);
      return release;
    }
    await new Promise<void>((resolve, reject) => {
      const entry = (): void => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      };
      const onAbort = (): void => {
        const i = queue.indexOf(entry);
        if (i > 0) queue.splice(i, 1);
        reject(new ClusterMeshError(ErrorCode.Aborted, `lock ${path}: aborted`));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      queue.push(entry);
    });
    return release;
  }

  // ---- fault injection (tests) -----------------------------------------

  /** Makes every operation fail as if the server were unreachable; live watches break. */
  setAvailable(available: boolean): void {
    this.available = available;
    if (!available) this.breakWatches();
  }

  /** Replaces the store with an empty one under a new cluster ID, like a wiped etcd. */
  wipe(): void {
    this.breakWatches();
    this.data.clear();
    this.sorted = undefined;
    this.log = [];
    this.revision = 1;
    this.compacted = 0;
    this.leases.clear();
    this.locks.clear();
    clearTimeout(this.expiryTimer);
    this.clusterIdHex = newClusterId();
  }

  /** Releases timers; the store stays readable. */
  close(): void {
    clearTimeout(this.expiryTimer);
    this.expiryTimer = undefined;
    this.breakWatches();
  }

  private breakWatches(): void {
    for (const w of this.watchers) {
      w.queue.fail(
        new ClusterMeshError(ErrorCode.KvstoreUnreachable, 'connection to kvstore lost'),
      );
    }
    this.watchers.clear();
  }

  private checkAvailable(): void {
    if (!this.available) {
      throw new ClusterMeshError(ErrorCode.KvstoreUnreachable, 'kvstore unavailable');
    }
  }

  private answer<T>(result: T): Answer<T> {
    return { result, clusterId: this.clusterIdHex, revision: this.revision };
  }

  private sortedKeys(): string[] {
    this.sorted ??= [...this.data.keys()].sort();
    return this.sorted;
  }
}

function toKV(key: string, e: Entry): KeyValue {
  return {
    key,
    value: e.value,
    modRevision: e.modRevision,
    createRevision: e.createRevision,
    lease: e.lease,
  };
}

function toRaw(events: readonly LogEvent[], prefix: string): RawEvent[] {
  const out: RawEvent[] = [];
  for (const ev of events) {
    if (!ev.key.startsWith(prefix)) continue;
    out.push(
      ev.next === undefined
        ? { kind: 'delete', key: ev.key, value: '', modRevision: ev.revision }
        : { kind: 'put', key: ev.key, value: ev.next.value, modRevision: ev.revision },
    );
  }
  return out;
}

function lowerBound(keys: readonly string[], target: string): number {
  let lo = 0;
  let hi = keys.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((keys[mid] as string) < target) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function newClusterId(): string {
  return randomBytes(8).toString('hex');
}
