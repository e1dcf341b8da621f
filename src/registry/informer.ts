import type { Logger } from 'pino';
import type { Backend, WatchEvent } from '../kvstore/backend.js';
import { isAborted, sleep } from '../lib/abort.js';
import { Backoff } from '../lib/backoff.js';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { cacheKey, decodeStored, requireKind, resourcePrefix } from './codec.js';
import type { KindInfo } from './kinds.js';
import type { KindName, KindTypes } from './objects.js';
import type { Informer, InformerHandlers, ObjectEvent, RegistryObject } from './types.js';

export interface InformerOptions {
  /** Watch one namespace only (namespaced kinds). */
  readonly namespace?: string | undefined;
  readonly log?: Logger | undefined;
}

/**
 * A list-and-watch of one kind, delivering added/modified/deleted events from a cache.
 * Daemons use it the way Kubernetes controllers use informers:
 *
 *   const nodes = createInformer(backend, 'CiliumNode', { onEvent: (ev) => …, onSynced });
 *   await nodes.run(signal);
 */
export function createInformer<K extends KindName>(
  backend: Backend,
  kind: K,
  handlers: InformerHandlers<KindTypes[K]>,
  opts?: InformerOptions,
): Informer<KindTypes[K]>;
export function createInformer<T extends RegistryObject>(
  backend: Backend,
  kind: string | KindInfo,
  handlers: InformerHandlers<T>,
  opts?: InformerOptions,
): Informer<T>;
export function createInformer(
  backend: Backend,
  kind: string | KindInfo,
  handlers: InformerHandlers<RegistryObject>,
  opts: InformerOptions = {},
): Informer<RegistryObject> {
  return new RegistryInformer(backend, requireKind(kind), handlers, opts);
}

interface Entry<T> {
  readonly object: T;
  readonly value: string;
}

/**
 * Values are validated like everything the registry reads: an invalid one is logged and
 * skipped, and the last valid object stays in the cache (and is what a later delete
 * reports). The backend's list-and-watch already survives errors, compaction and etcd
 * restarts by re-listing and diffing; should the stream itself fail, the informer starts a
 * new one and diffs its first list against the cache, so consumers never see a gap.
 */
class RegistryInformer<T extends RegistryObject> implements Informer<T> {
  private readonly cache = new Map<string, Entry<T>>();
  private readonly prefix: string;
  private readonly log: Logger;
  private synced = false;
  private running = false;

  constructor(
    private readonly backend: Backend,
    private readonly info: KindInfo,
    private readonly handlers: InformerHandlers<T>,
    opts: InformerOptions,
  ) {
    this.prefix = resourcePrefix(info, opts.namespace);
    this.log = (opts.log ?? silentLogger).child({ informer: info.resource });
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  list(): readonly T[] {
    return [...this.cache.values()].map((e) => e.object);
  }

  get(namespace: string | undefined, name: string): T | undefined {
    const ns = this.info.namespaced ? (namespace ?? 'default') : undefined;
    return this.cache.get(cacheKey(ns, name))?.object;
  }

  async run(signal: AbortSignal): Promise<void> {
    if (this.running) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, `informer ${this.prefix} already runs`);
    }
    this.running = true;
    const backoff = new Backoff({ initialMs: 100, maxMs: 10_000 });
    try {
      while (!signal.aborted) {
        // Keys seen since this stream started; until its first listDone, the cache may hold
        // objects deleted while no stream ran.
        let seen: Set<string> | undefined = new Set();
        try {
          for await (const ev of this.backend.listAndWatch(this.prefix, signal)) {
            if (ev.kind === 'listDone') {
              if (seen !== undefined) this.dropUnseen(seen);
              seen = undefined;
              backoff.reset();
              if (!this.synced) {
                this.synced = true;
                this.call(() => this.handlers.onSynced?.());
              }
              continue;
            }
            const key = this.keyOf(ev.key);
            if (key === undefined) continue;
            seen?.add(key);
            this.apply(key, ev);
          }
          // The stream ends only when aborted or when the backend was closed.
          return;
        } catch (err) {
          if (isAborted(signal) || isClusterMeshError(err, ErrorCode.KvstoreClosed)) return;
          const delay = backoff.next();
          this.log.warn({ err: errorMessage(err), retryInMs: delay }, 'informer restarting');
          await sleep(delay, signal).catch(() => undefined);
        }
      }
    } finally {
      this.running = false;
    }
  }

  private apply(key: string, ev: Exclude<WatchEvent, { kind: 'listDone' }>): void {
    const prev = this.cache.get(key);
    if (ev.kind === 'delete') {
      if (prev === undefined) return;
      this.cache.delete(key);
      this.emit({ type: 'deleted', object: prev.object });
      return;
    }
    if (prev?.value === ev.value) {
      // Same content rewritten: only the resourceVersion moved; not worth an event.
      this.cache.set(key, { value: ev.value, object: withVersion(prev.object, ev.modRevision) });
      return;
    }
    let object: T;
    try {
      object = decodeStored(this.info, {
        key: ev.key,
        value: ev.value,
        modRevision: ev.modRevision,
        createRevision: 0,
      }) as T;
    } catch (err) {
      this.log.warn(
        { key: ev.key, err: errorMessage(err), keptPrevious: prev !== undefined },
        'skipping invalid registry object',
      );
      return;
    }
    this.cache.set(key, { value: ev.value, object });
    this.emit(
      prev === undefined
        ? { type: 'added', object }
        : { type: 'modified', object, old: prev.object },
    );
  }

  private dropUnseen(seen: ReadonlySet<string>): void {
    for (const [key, entry] of [...this.cache]) {
      if (seen.has(key)) continue;
      this.cache.delete(key);
      this.emit({ type: 'deleted', object: entry.object });
    }
  }

  /** `<namespace>/<name>` or `<name>` of a key under the prefix; `undefined` if malformed. */
  private keyOf(key: string): string | undefined {
    const base = resourcePrefix(this.info);
    const rest = key.startsWith(base) ? key.slice(base.length) : '';
    const parts = rest.split('/');
    const ok = parts.length === (this.info.namespaced ? 2 : 1) && parts.every((p) => p !== '');
    if (!ok) {
      this.log.warn({ key }, 'skipping key outside the registry layout');
      return undefined;
    }
    return rest;
  }

  private emit(ev: ObjectEvent<T>): void {
    this.call(() => {
      this.handlers.onEvent(ev);
    });
  }

  /** A failing handler must not stop the informer (nor the other consumers' events). */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'informer handler failed');
    }
  }
}

function withVersion<T extends RegistryObject>(obj: T, modRevision: number): T {
  return { ...obj, metadata: { ...obj.metadata, resourceVersion: String(modRevision) } };
}

/** Runs informers together: should one fail, the others stop rather than run unawaited. */
export async function runInformers(
  informers: readonly Pick<Informer<RegistryObject>, 'run'>[],
  signal: AbortSignal,
): Promise<void> {
  const stop = new AbortController();
  const onAbort = (): void => {
    stop.abort(signal.reason);
  };
  if (signal.aborted) onAbort();
  else signal.addEventListener('abort', onAbort, { once: true });
  try {
    await Promise.all(
      informers.map((informer) =>
        informer.run(stop.signal).catch((err: unknown) => {
          stop.abort();
          throw err;
        }),
      ),
    );
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
