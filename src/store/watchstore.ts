import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { withTrailingSlash } from '../kvstore/backend.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';

export interface WatchStoreObserver<T> {
  onUpdate(name: string, entry: T): void;
  onDelete(name: string, entry: T): void;
}

/** Turns a key name (key minus prefix) and its value into an entry; throws when invalid. */
export type EntryDecoder<T> = (name: string, value: string) => T;

/** Hooks for the reference metrics (kvstore_initial_sync_completed{action="read"}, entries). */
export interface WatchStoreMetrics {
  entries?(n: number): void;
  synced?(synced: boolean): void;
  invalid?(): void;
}

export interface WatchStoreOptions<T> {
  /** Remote cluster name, for logs. */
  readonly clusterName: string;
  readonly decode: EntryDecoder<T>;
  readonly observer: WatchStoreObserver<T>;
  /** Run once, when the first list ever completes (not again on reconnect). */
  readonly onSync?: readonly (() => void)[] | undefined;
  readonly log?: Logger | undefined;
  readonly metrics?: WatchStoreMetrics | undefined;
  /** See ListAndWatchOptions.stopOnClusterChange: `watch()` then throws instead of re-listing. */
  readonly stopOnClusterChange?: boolean | undefined;
}

interface Entry<T> {
  value: T;
  stale: boolean;
}

/**
 * The reader side: a restartable list-and-watch of one prefix into a map,
 * reporting changes to an observer.
 *
 * - Each `watch()` marks the known entries stale; after its list, entries still
 *   stale are deleted. A reconnect therefore removes only what disappeared.
 * - When a watch ends (disconnect), entries are kept: the last known state keeps
 *   serving. Only `drain()` (cluster removed, cluster ID changed) deletes them.
 * - An entry that fails to decode is logged and counted; the previous valid value
 *   stays (and is not considered stale: the key still exists).
 */
export class WatchStore<T> {
  private readonly entries = new Map<string, Entry<T>>();
  private running = false;
  private syncedNow = false;
  private onSync: (() => void)[];
  private invalid = 0;
  private readonly log: Logger;

  constructor(private readonly opts: WatchStoreOptions<T>) {
    this.onSync = [...(opts.onSync ?? [])];
    this.log = (opts.log ?? silentLogger).child({ source: opts.clusterName });
  }

  /** Blocks until `signal` aborts. One watch at a time. */
  async watch(backend: Backend, prefix: string, signal: AbortSignal): Promise<void> {
    if (this.running) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        'WatchStore: a watch is already running',
      );
    }
    this.running = true;
    const base = withTrailingSlash(prefix);
    for (const e of this.entries.values()) e.stale = true;
    try {
      const stream = backend.listAndWatch(base, signal, {
        stopOnClusterChange: this.opts.stopOnClusterChange,
      });
      for await (const ev of stream) {
        if (ev.kind === 'listDone') {
          this.listDone();
          continue;
        }
        const name = ev.key.slice(base.length);
        if (ev.kind === 'upsert') this.upsert(name, ev.value);
        else this.remove(name);
      }
    } finally {
      this.running = false;
      this.syncedNow = false;
      this.opts.metrics?.synced?.(false);
    }
  }

  private upsert(name: string, raw: string): void {
    let value: T;
    try {
      value = this.opts.decode(name, raw);
    } catch (err) {
      this.invalid++;
      this.opts.metrics?.invalid?.();
      const prev = this.entries.get(name);
      if (prev !== undefined) prev.stale = false;
      this.log.warn(
        { key: name, err: errorMessage(err), keptPrevious: prev !== undefined },
        'rejected invalid entry',
      );
      return;
    }
    const prev = this.entries.get(name);
    if (prev === undefined) {
      this.entries.set(name, { value, stale: false });
      this.opts.metrics?.entries?.(this.entries.size);
    } else {
      prev.value = value;
      prev.stale = false;
    }
    this.opts.observer.onUpdate(name, value);
  }

  private remove(name: string): void {
    const prev = this.entries.get(name);
    if (prev === undefined) return;
    this.entries.delete(name);
    this.opts.metrics?.entries?.(this.entries.size);
    this.opts.observer.onDelete(name, prev.value);
  }

  private listDone(): void {
    for (const [name, e] of this.entries) if (e.stale) this.remove(name);
    this.syncedNow = true;
    this.opts.metrics?.synced?.(true);
    const cbs = this.onSync;
    this.onSync = [];
    for (const cb of cbs) cb();
  }

  /** Deletes every entry (observer sees each deletion). Not while a watch runs. */
  drain(): void {
    if (this.running) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, 'WatchStore: drain while watching');
    }
    for (const name of [...this.entries.keys()]) this.remove(name);
  }

  get numEntries(): number {
    return this.entries.size;
  }

  get synced(): boolean {
    return this.syncedNow;
  }

  get invalidEntries(): number {
    return this.invalid;
  }

  get(name: string): T | undefined {
    return this.entries.get(name)?.value;
  }

  *values(): IterableIterator<[string, T]> {
    for (const [k, e] of this.entries) yield [k, e.value];
  }
}
