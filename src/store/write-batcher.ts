import type { Backend, TxnOp } from '../kvstore/backend.js';
import { MAX_TXN_OPS } from '../kvstore/backend.js';
import { ErrorCode, isClusterMeshError } from '../lib/errors.js';

/** Where a SyncStore sends its writes: a backend's `txn`, or a shared WriteBatcher. */
export interface TxnWriter {
  /** Applies `ops` (at most MAX_TXN_OPS, distinct keys) atomically, or throws. */
  write(ops: readonly TxnOp[]): Promise<void>;
}

export interface WriteBatcherOptions {
  readonly backend: Backend;
  /** Transactions in flight at once (default 8). */
  readonly maxInflight?: number | undefined;
  /** Operations per transaction (default and cap: MAX_TXN_OPS, etcd's --max-txn-ops). */
  readonly maxOps?: number | undefined;
  /** Approximate bytes (keys + values) per transaction (default 1 MiB; etcd caps requests at 1.5 MiB). */
  readonly maxBytes?: number | undefined;
}

interface Request {
  readonly ops: readonly TxnOp[];
  readonly bytes: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

/**
 * One bounded write pipeline shared by many SyncStores on the same kvstore
 * (KVStoreMesh: five per remote cluster, 1,250 with 250 clusters).
 *
 * Without it every store writes on its own, with its own workers: with hundreds of
 * stores catching up at once, thousands of transactions reach etcd together, its
 * raft proposal queue grows past its request timeout ("etcdserver: request timed
 * out") and every write of the backlog fails and backs off. Here at most
 * `maxInflight` transactions are outstanding; whatever the stores queue meanwhile
 * is packed into the next transactions (up to `maxOps` operations), so a burst
 * costs few round trips and a quiet period none (a lone write goes out at once).
 *
 * The keys of the requests merged into one transaction are distinct as long as
 * each key has one writer that waits for its write (a SyncStore's work queue never
 * hands a key to two workers at once, and stores own disjoint prefixes).
 */
export class WriteBatcher implements TxnWriter {
  private readonly backend: Backend;
  private readonly maxInflight: number;
  private readonly maxOps: number;
  private readonly maxBytes: number;
  private queue: Request[] = [];
  private head = 0;
  private inflight = 0;
  private queuedOps = 0;

  constructor(opts: WriteBatcherOptions) {
    this.backend = opts.backend;
    this.maxInflight = Math.max(1, opts.maxInflight ?? 8);
    this.maxOps = Math.max(1, Math.min(opts.maxOps ?? MAX_TXN_OPS, MAX_TXN_OPS));
    this.maxBytes = opts.maxBytes ?? 1024 * 1024;
  }

  write(ops: readonly TxnOp[]): Promise<void> {
    if (ops.length === 0) return Promise.resolve();
    let bytes = 0;
    for (const op of ops) bytes += op.key.length + (op.kind === 'put' ? op.value.length : 0);
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ ops, bytes, resolve, reject });
      this.queuedOps += ops.length;
      this.pump();
    });
  }

  /** Operations waiting for a transaction slot. */
  get pending(): number {
    return this.queuedOps;
  }

  /** Transactions in flight. */
  get active(): number {
    return this.inflight;
  }

  private pump(): void {
    while (this.inflight < this.maxInflight && this.head < this.queue.length) {
      const batch = this.take();
      this.inflight++;
      void this.send(batch).finally(() => {
        this.inflight--;
        this.pump();
      });
    }
  }

  /** The next requests that fit one transaction (always at least one). */
  private take(): Request[] {
    const batch: Request[] = [];
    let ops = 0;
    let bytes = 0;
    while (this.head < this.queue.length) {
      const r = this.queue[this.head] as Request;
      if (
        batch.length > 0 &&
        (ops + r.ops.length > this.maxOps || bytes + r.bytes > this.maxBytes)
      ) {
        break;
      }
      batch.push(r);
      ops += r.ops.length;
      bytes += r.bytes;
      this.head++;
    }
    this.queuedOps -= ops;
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return batch;
  }

  private async send(batch: readonly Request[]): Promise<void> {
    const only = batch[0];
    if (batch.length === 1 && only !== undefined) {
      await applyOps(this.backend, only.ops).then(only.resolve, only.reject);
      return;
    }
    try {
      await applyOps(
        this.backend,
        batch.flatMap((r) => r.ops),
      );
    } catch (err) {
      if (transient(err)) {
        for (const r of batch) r.reject(err);
        return;
      }
      // Something in one request is refused (value too large, a lost lease): its
      // neighbours must not fail with it, so each request is tried on its own.
      await Promise.all(batch.map((r) => applyOps(this.backend, r.ops).then(r.resolve, r.reject)));
      return;
    }
    for (const r of batch) r.resolve();
  }
}

/**
 * Applies `ops` atomically: a single op as a plain put or delete (cheaper for etcd
 * than a one-op transaction), more as one transaction.
 */
export async function applyOps(backend: Backend, ops: readonly TxnOp[]): Promise<void> {
  const op = ops[0];
  if (ops.length === 1 && op !== undefined) {
    if (op.kind === 'put') await backend.put(op.key, op.value, { lease: op.lease });
    else await backend.delete(op.key);
    return;
  }
  await backend.txn(ops);
}

/** An outage or overload: retrying the requests separately would only add load. */
function transient(err: unknown): boolean {
  return (
    isClusterMeshError(err, ErrorCode.KvstoreUnreachable) ||
    isClusterMeshError(err, ErrorCode.KvstoreClosed) ||
    isClusterMeshError(err, ErrorCode.EtcdClusterIdMismatch) ||
    isClusterMeshError(err, ErrorCode.Timeout)
  );
}
