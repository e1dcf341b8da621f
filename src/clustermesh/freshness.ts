/**
 * How current the view of one remote cluster is (issue #17). "Ready" only says the
 * watches were registered and synced once; a remote whose apiserver stopped writing,
 * or whose events arrive late, can stay ready with an old view. Three signals:
 *
 * - the last heartbeat received: the remote's apiserver (or KVStoreMesh) rewrites
 *   `cilium/.heartbeat` periodically, so its age says whether that writer is alive
 *   and its writes reach us;
 * - the last event received by the component's watches: when a change of the remote's
 *   state last reached us (the listing at each connect does not count, it replays);
 * - the propagation delay, estimated as the local receive time minus the time the
 *   heartbeat carries. The value is written with one-second resolution (Go's RFC 3339,
 *   kept for compatibility), so the estimate exceeds the real delay by up to a second,
 *   and clock skew between the two hosts adds to it.
 */
import type {
  Backend,
  KeyValue,
  ListAndWatchOptions,
  ListPage,
  ListPageOptions,
  Lock,
  ModRevisionCompare,
  PutOptions,
  TxnOp,
  Unsubscribe,
  WatchEvent,
} from '../kvstore/backend.js';
import { decodeHeartbeat } from '../keyspace/index.js';
import type { RemoteClusterFreshness } from './status.js';

export class RemoteFreshness {
  private lastHeartbeatAt: number | undefined;
  private lastEventAt: number | undefined;
  private delayMs: number | undefined;

  constructor(private readonly now: () => number = Date.now) {}

  /** A heartbeat written while we watched arrived (not one read by the initial listing). */
  heartbeat(value: string): void {
    const at = this.now();
    this.lastHeartbeatAt = at;
    try {
      this.delayMs = Math.max(0, at - decodeHeartbeat(value).getTime());
    } catch {
      // A malformed value still proves the writer is alive; it only gives no delay.
      this.delayMs = undefined;
    }
  }

  /** A watch of the component's logic delivered an upsert or delete after its listing. */
  event(): void {
    this.lastEventAt = this.now();
  }

  /** The status fields; empty until something was received. */
  status(): RemoteClusterFreshness {
    const iso = (ms: number | undefined): string | undefined =>
      ms === undefined ? undefined : new Date(ms).toISOString();
    const lastHeartbeat = iso(this.lastHeartbeatAt);
    const lastEvent = iso(this.lastEventAt);
    return {
      ...(lastHeartbeat === undefined ? {} : { 'last-heartbeat': lastHeartbeat }),
      ...(lastEvent === undefined ? {} : { 'last-event': lastEvent }),
      ...(this.delayMs === undefined ? {} : { 'propagation-delay-ms': this.delayMs }),
    };
  }
}

/** Ages in seconds at `nowMs` (undefined: never received), for metrics and the text view. */
export function freshnessAges(
  f: RemoteClusterFreshness,
  nowMs: number,
): {
  heartbeatAgeSeconds: number | undefined;
  lastEventAgeSeconds: number | undefined;
  propagationDelaySeconds: number | undefined;
} {
  const age = (iso: string | undefined): number | undefined =>
    iso === undefined ? undefined : Math.max(0, nowMs - Date.parse(iso)) / 1000;
  const delay = f['propagation-delay-ms'];
  return {
    heartbeatAgeSeconds: age(f['last-heartbeat']),
    lastEventAgeSeconds: age(f['last-event']),
    propagationDelaySeconds: delay === undefined ? undefined : delay / 1000,
  };
}

async function* tap(
  events: AsyncIterable<WatchEvent>,
  onEvent: () => void,
): AsyncGenerator<WatchEvent> {
  // The listing at (re)connect replays state, possibly old: only what the watch
  // delivers afterwards is a change that just reached us.
  let listed = false;
  for await (const ev of events) {
    if (ev.kind === 'listDone') listed = true;
    else if (listed) onEvent();
    yield ev;
  }
}

/**
 * The backend as the logic sees it: the same calls, with every watch event reported
 * to `onEvent` first. Delegates explicitly, so the wrapped backend's own `this` is
 * never swapped.
 */
export function observeWatchEvents(backend: Backend, onEvent: () => void): Backend {
  return {
    kind: backend.kind,
    get: (key: string): Promise<KeyValue | undefined> => backend.get(key),
    listPage: (prefix: string, opts?: ListPageOptions): Promise<ListPage> =>
      backend.listPage(prefix, opts),
    list: (prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> => backend.list(prefix),
    put: (key: string, value: string, opts?: PutOptions): Promise<void> =>
      backend.put(key, value, opts),
    createOnly: (key: string, value: string, opts?: PutOptions): Promise<boolean> =>
      backend.createOnly(key, value, opts),
    updateIfDifferent: (key: string, value: string, opts?: PutOptions): Promise<boolean> =>
      backend.updateIfDifferent(key, value, opts),
    delete: (key: string): Promise<boolean> => backend.delete(key),
    deletePrefix: (prefix: string): Promise<number> => backend.deletePrefix(prefix),
    txn: (ops: readonly TxnOp[]): Promise<void> => backend.txn(ops),
    txnIf: (compares: readonly ModRevisionCompare[], ops: readonly TxnOp[]): Promise<boolean> =>
      backend.txnIf(compares, ops),
    listAndWatch: (
      prefix: string,
      signal: AbortSignal,
      opts?: ListAndWatchOptions,
    ): AsyncIterable<WatchEvent> => tap(backend.listAndWatch(prefix, signal, opts), onEvent),
    lock: (path: string, signal?: AbortSignal): Promise<Lock> => backend.lock(path, signal),
    status: () => backend.status(),
    onStatusError: (listener: (err: Error) => void): Unsubscribe => backend.onStatusError(listener),
    onLeaseLost: (listener: (keys: readonly string[]) => void): Unsubscribe =>
      backend.onLeaseLost(listener),
    close: (): Promise<void> => backend.close(),
  };
}
