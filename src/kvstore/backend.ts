/**
 * The kvstore contract. Two implementations: `etcd` (real etcd through etcd3) and
 * `memory` (same semantics, in-process). Both are held to the contract suite in
 * test/support/kvstore-contract.ts, so code written against this interface behaves the
 * same on either.
 *
 * Keys and values are UTF-8 strings (the reference system stores them verbatim).
 * Revisions are etcd revisions as JavaScript numbers (safe up to 2^53).
 */

export interface KeyValue {
  readonly key: string;
  readonly value: string;
  /** Revision of the last write to this key. */
  readonly modRevision: number;
  /** Revision at which the key was created (resets after a delete). */
  readonly createRevision: number;
  /** Lease the key is attached to, `undefined` when it has none. */
  readonly lease?: string | undefined;
}

export interface ListPage {
  readonly kvs: readonly KeyValue[];
  /** Store revision the page was read at. */
  readonly revision: number;
  /** True when keys remain after the last one returned. */
  readonly more: boolean;
}

export interface ListPageOptions {
  /** Return keys strictly greater than this one (continuation token). */
  readonly startAfter?: string | undefined;
  /** Page size; defaults to the backend's configured list limit. */
  readonly limit?: number | undefined;
  /** Read at this revision (consistent paging); defaults to the latest. */
  readonly revision?: number | undefined;
}

export interface PutOptions {
  /** Attach the key to one of the backend's session leases (≤ 1,000 keys each). */
  readonly lease?: boolean | undefined;
}

export type TxnOp =
  | {
      readonly kind: 'put';
      readonly key: string;
      readonly value: string;
      readonly lease?: boolean;
      /**
       * Keep the lease the key already has (etcd's ignore_lease): one party answers in a
       * key another party keeps alive, and the key still goes when that party's lease does.
       */
      readonly keepLease?: boolean;
    }
  | { readonly kind: 'delete'; readonly key: string };

export interface ModRevisionCompare {
  readonly key: string;
  /** Expected mod revision; 0 means "does not exist". */
  readonly modRevision: number;
}

/**
 * Events of a list-and-watch stream. After every (re)list, exactly one `listDone`
 * follows the upserts and the deletions of keys that vanished meanwhile, so a
 * consumer that applies the stream in order always holds the store's state as of
 * the last event.
 */
export type WatchEvent =
  | {
      readonly kind: 'upsert';
      readonly key: string;
      readonly value: string;
      readonly modRevision: number;
    }
  | { readonly kind: 'delete'; readonly key: string; readonly modRevision: number }
  | { readonly kind: 'listDone'; readonly revision: number; readonly relist: number };

export interface ListAndWatchOptions {
  /**
   * End the stream with ERR_ETCD_CLUSTER_ID_MISMATCH instead of re-listing when the
   * etcd behind the connection changed. Remote-cluster readers use it: a freshly
   * wiped remote must be re-read only after its sync canaries exist again, which
   * their (re)connection logic ensures; a blind re-list would delete valid state.
   */
  readonly stopOnClusterChange?: boolean | undefined;
}

export interface BackendStatus {
  readonly connected: boolean;
  readonly endpoints: readonly string[];
  /** etcd cluster ID (hex) pinned by this connection, when known. */
  readonly clusterId?: string | undefined;
  readonly leases: number;
  /** Human-readable summary in the reference's style. */
  readonly message: string;
  readonly lastError?: string | undefined;
}

export interface Lock {
  /** Releases the lock; idempotent. */
  release(): Promise<void>;
}

export type Unsubscribe = () => void;

export interface Backend {
  readonly kind: 'etcd' | 'memory';

  get(key: string): Promise<KeyValue | undefined>;
  /** One page of keys under `prefix`, in key order. */
  listPage(prefix: string, opts?: ListPageOptions): Promise<ListPage>;
  /** Every key under `prefix`, read page by page at one revision. */
  list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }>;

  put(key: string, value: string, opts?: PutOptions): Promise<void>;
  /** Writes only if the key does not exist; returns whether it wrote. */
  createOnly(key: string, value: string, opts?: PutOptions): Promise<boolean>;
  /** Writes only if the stored value differs (or the key is missing); returns whether it wrote. */
  updateIfDifferent(key: string, value: string, opts?: PutOptions): Promise<boolean>;
  /** Returns whether a key was deleted. */
  delete(key: string): Promise<boolean>;
  /** Returns the number of keys deleted. */
  deletePrefix(prefix: string): Promise<number>;
  /** Applies all ops atomically (one etcd transaction; etcd allows 128 ops by default). */
  txn(ops: readonly TxnOp[]): Promise<void>;
  /**
   * Compare-and-swap: applies `ops` atomically only if every key's mod revision still
   * equals the expected one (0 = the key must not exist). Returns whether it applied.
   */
  txnIf(compares: readonly ModRevisionCompare[], ops: readonly TxnOp[]): Promise<boolean>;

  /**
   * Lists `prefix` then watches it from the list revision + 1, restarting by itself
   * on errors, compaction and etcd cluster changes (re-list, diff against what was
   * emitted). Ends when `signal` aborts or the backend is closed.
   */
  listAndWatch(
    prefix: string,
    signal: AbortSignal,
    opts?: ListAndWatchOptions,
  ): AsyncIterable<WatchEvent>;

  /** A distributed mutex on `path`, held under its own short lease. */
  lock(path: string, signal?: AbortSignal): Promise<Lock>;

  status(): BackendStatus;
  /** Errors that mean "this connection is unhealthy" (cluster ID change, lost quorum, …). */
  onStatusError(listener: (err: Error) => void): Unsubscribe;
  /** Keys whose lease expired or was lost; their owners must write them again. */
  onLeaseLost(listener: (keys: readonly string[]) => void): Unsubscribe;

  close(): Promise<void>;
}

/** Ensures a watch/list prefix ends with `/` so that `a/c1` does not match `a/c10`. */
export function withTrailingSlash(prefix: string): string {
  return prefix.endsWith('/') ? prefix : `${prefix}/`;
}

export const MAX_KEYS_PER_LEASE = 1000;
export const DEFAULT_LIST_LIMIT = 256;
export const DEFAULT_LEASE_TTL_SECONDS = 15 * 60;
export const MAX_TXN_OPS = 128;
