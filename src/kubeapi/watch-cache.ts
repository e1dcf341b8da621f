import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { isAborted } from '../lib/abort.js';
import { errorMessage } from '../lib/errors.js';
import { decodeStored, resourcePrefix } from '../registry/codec.js';
import type { KindInfo } from '../registry/kinds.js';
import type { RegistryObject } from '../registry/types.js';

/**
 * The history a Kubernetes watch resumes from: one list-and-watch of a kind's keys in the
 * kvstore, its current objects, and the last events with their revisions (the objects'
 * resourceVersions). A watch from resourceVersion N replays the events after N and then
 * follows live ones; N older than the history is answered 410 Gone by the caller.
 *
 * When the kvstore stream had to re-list (compaction of a revision it still needed, an
 * etcd restart), the events in between are unknown: the history restarts at the re-list's
 * revision, so older resourceVersions expire, while the live watchers receive the re-list's
 * differences as ordinary events and stay consistent.
 */

export type WatchEventType = 'ADDED' | 'MODIFIED' | 'DELETED';

export interface CacheEvent {
  readonly type: WatchEventType;
  /** The kvstore revision of the change (the object's resourceVersion). */
  readonly revision: number;
  readonly object: RegistryObject;
  /** The object before a MODIFIED event (selectors that stop matching turn it into DELETED). */
  readonly previous?: RegistryObject | undefined;
  /**
   * What watchers of one selection and format are sent for this event (null: nothing),
   * computed by the first of them and reused by the others.
   */
  readonly encoded: Map<string, Buffer | null>;
}

export type CacheListener = (ev: CacheEvent) => void;

export interface KindWatchCacheOptions {
  /** Events kept for resuming watches (default 10,000). */
  readonly historyLimit?: number | undefined;
  readonly log: Logger;
}

export class KindWatchCache {
  private readonly objects = new Map<string, RegistryObject>();
  private history: CacheEvent[] = [];
  private readonly listeners = new Set<CacheListener>();
  private readonly historyLimit: number;
  private readonly log: Logger;
  /** Every event after this revision is in `history`. */
  private floorRevision = 0;
  /** The last revision the cache has applied. */
  private currentRevision = 0;
  private synced = false;
  private readonly readyWaiters: (() => void)[] = [];

  constructor(
    private readonly backend: Backend,
    readonly info: KindInfo,
    opts: KindWatchCacheOptions,
  ) {
    this.historyLimit = opts.historyLimit ?? 10_000;
    this.log = opts.log.child({ watchCache: info.resource });
  }

  get floor(): number {
    return this.floorRevision;
  }

  get revision(): number {
    return this.currentRevision;
  }

  get ready(): boolean {
    return this.synced;
  }

  /** Resolves once the first list has been applied. */
  whenReady(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.readyWaiters.push(resolve));
  }

  /** The current objects (a snapshot at `revision`). */
  snapshot(): RegistryObject[] {
    return [...this.objects.values()];
  }

  private sorted:
    { readonly revision: number; readonly items: readonly RegistryObject[] } | undefined;

  /**
   * The current objects ordered by namespace and name, as lists return them: sorted once
   * per change rather than once per list.
   */
  sortedSnapshot(): readonly RegistryObject[] {
    if (this.sorted?.revision !== this.changes) {
      const items = [...this.objects.values()].sort(byNamespaceName);
      this.sorted = { revision: this.changes, items };
    }
    return this.sorted.items;
  }

  /** Counts applied changes (a re-list's included), for `sortedSnapshot`. */
  private changes = 0;

  /** Runs until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    const prefix = resourcePrefix(this.info);
    try {
      for await (const ev of this.backend.listAndWatch(prefix, signal)) {
        if (ev.kind === 'listDone') {
          this.currentRevision = Math.max(this.currentRevision, ev.revision);
          if (!this.synced) {
            this.synced = true;
            this.floorRevision = ev.revision;
            for (const w of this.readyWaiters.splice(0)) w();
          } else {
            // Events before this re-list may be missing from the history.
            this.floorRevision = Math.max(this.floorRevision, ev.revision);
            this.log.info({ revision: ev.revision }, 'watch history restarted after a re-list');
          }
          continue;
        }
        if (ev.kind === 'delete') {
          const prev = this.objects.get(ev.key);
          if (prev === undefined) continue;
          this.objects.delete(ev.key);
          this.changes++;
          const object = withRv(prev, ev.modRevision);
          this.record('DELETED', ev.modRevision, object, undefined);
          continue;
        }
        let object: RegistryObject;
        try {
          object = decodeStored(this.info, { ...ev, createRevision: 0 });
        } catch (err) {
          this.log.warn(
            { key: ev.key, err: errorMessage(err) },
            'skipping invalid registry object',
          );
          continue;
        }
        const prev = this.objects.get(ev.key);
        this.objects.set(ev.key, object);
        this.changes++;
        this.record(prev === undefined ? 'ADDED' : 'MODIFIED', ev.modRevision, object, prev);
      }
    } catch (err) {
      if (!isAborted(signal)) throw err;
    }
  }

  private record(
    type: WatchEventType,
    revision: number,
    object: RegistryObject,
    previous: RegistryObject | undefined,
  ): void {
    if (!this.synced) return;
    this.currentRevision = Math.max(this.currentRevision, revision);
    const ev: CacheEvent = { type, revision, object, previous, encoded: new Map() };
    this.history.push(ev);
    if (this.history.length > this.historyLimit * 2) {
      const dropped = this.history.length - this.historyLimit;
      const last = this.history[dropped - 1];
      this.history = this.history.slice(dropped);
      if (last !== undefined) this.floorRevision = Math.max(this.floorRevision, last.revision);
    }
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch (err) {
        this.log.error({ err: errorMessage(err) }, 'watch listener failed');
      }
    }
  }

  /**
   * Events after `revision` still in the history, then every new one, to `listener`.
   * Returns `undefined` (nothing subscribed) when `revision` is older than the history.
   */
  subscribe(revision: number, listener: CacheListener): (() => void) | undefined {
    if (revision < this.floorRevision) return undefined;
    // Synchronous replay then registration: no event can fall between the two.
    for (const ev of this.history) if (ev.revision > revision) listener(ev);
    const filtered: CacheListener = (ev) => {
      if (ev.revision > revision) listener(ev);
    };
    this.listeners.add(filtered);
    return () => {
      this.listeners.delete(filtered);
    };
  }

  get watchers(): number {
    return this.listeners.size;
  }
}

/** The order of list items: namespace, then name. */
export function byNamespaceName(a: RegistryObject, b: RegistryObject): number {
  const an = a.metadata.namespace ?? '';
  const bn = b.metadata.namespace ?? '';
  if (an !== bn) return an < bn ? -1 : 1;
  return a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0;
}

function withRv(obj: RegistryObject, revision: number): RegistryObject {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(revision) } };
}

/** One watch cache per kind of the registry, started together. */
export class WatchCaches {
  private readonly caches = new Map<string, KindWatchCache>();

  constructor(backend: Backend, kinds: readonly KindInfo[], opts: KindWatchCacheOptions) {
    for (const info of kinds) this.caches.set(info.kind, new KindWatchCache(backend, info, opts));
  }

  of(kind: string): KindWatchCache | undefined {
    return this.caches.get(kind);
  }

  run(signal: AbortSignal, log: Logger): Promise<void> {
    return Promise.all(
      [...this.caches.values()].map((c) =>
        c.run(signal).catch((err: unknown) => {
          log.error({ err: errorMessage(err), kind: c.info.kind }, 'watch cache stopped');
        }),
      ),
    ).then(() => undefined);
  }

  async whenReady(): Promise<void> {
    await Promise.all([...this.caches.values()].map((c) => c.whenReady()));
  }
}
