import type { ObjectSource } from '../registry/source.js';
import type { Logger } from 'pino';
import type { LocalCluster } from '../convert/cilium.js';
import type { Backend } from '../kvstore/backend.js';
import { errorMessage } from '../lib/errors.js';
import type { KvstoreMetrics } from '../metrics/kvstore.js';
import type { KindName, KindTypes } from '../registry/objects.js';
import type { ObjectEvent, RegistryObject } from '../registry/types.js';
import { SyncStore } from '../store/syncstore.js';

/**
 * The one synchronizer of the clustermesh-apiserver: a source of events (an informer of
 * one kind, or the Service ⇄ EndpointSlice join) whose events a converter turns into
 * keys of one SyncStore. The canary is requested once the source delivered its initial
 * state, so that readers never see a partial mirror as complete.
 */
export interface Synchronizer {
  readonly name: string;
  readonly store: SyncStore;
  /** Runs the source and the store until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

export interface SynchronizerDeps {
  readonly backend: Backend;
  readonly cluster: LocalCluster;
  readonly log: Logger;
  readonly metrics: KvstoreMetrics;
}

/** One key to write (`value` set) or to delete (`value` undefined), relative to the store's prefix. */
export interface KeyUpdate {
  readonly key: string;
  readonly value: string | undefined;
}

/** Turns one event into the store's key updates, applied in the order given. */
export interface Converter<E> {
  /** `log` is the synchronizer's. */
  convert(event: E, log: Logger): Iterable<KeyUpdate>;
  /** Names the event's object in the warning logged when `convert` throws. */
  describe(event: E): string;
}

export interface SourceHandlers<E> {
  onEvent(event: E): void;
  onSynced(): void;
}

/** Creates the source delivering events to `handlers`; `log` is the synchronizer's. */
export type Source<E> = (
  handlers: SourceHandlers<E>,
  log: Logger,
) => { run(signal: AbortSignal): Promise<void> };

/** The informer of one kind as a source. */
export function informerSource<K extends KindName>(
  objects: ObjectSource,
  kind: K,
): Source<ObjectEvent<KindTypes[K]>> {
  return (handlers, log) => objects.informer(kind, handlers, { log });
}

/** Names an object event's object in logs. */
export function describeObject<T extends RegistryObject>(ev: ObjectEvent<T>): string {
  return ev.object.metadata.name;
}

export interface SynchronizerOptions<E> {
  readonly name: string;
  /** The store's prefix, e.g. `cilium/state/nodes/v1`. */
  readonly prefix: string;
  /** The canary's key when it is not the prefix (see SyncStoreOptions.syncedKey). */
  readonly syncedKey?: string | undefined;
  readonly source: Source<E>;
  readonly converter: Converter<E>;
}

function newStore(deps: SynchronizerDeps, prefix: string, syncedKey?: string): SyncStore {
  return new SyncStore({
    backend: deps.backend,
    sourceCluster: deps.cluster.name,
    prefix,
    syncedKey,
    log: deps.log,
    metrics: deps.metrics.syncStore(prefix),
  });
}

export function createSynchronizer<E>(
  deps: SynchronizerDeps,
  opts: SynchronizerOptions<E>,
): Synchronizer {
  const log = deps.log.child({ synchronizer: opts.name });
  const store = newStore(deps, opts.prefix, opts.syncedKey);
  const { converter } = opts;
  return {
    name: opts.name,
    store,
    run: async (signal) => {
      const source = opts.source(
        {
          onEvent: (ev) => {
            try {
              for (const { key, value } of converter.convert(ev, log)) {
                if (value === undefined) store.deleteKey(key);
                else store.upsertKey(key, value);
              }
            } catch (err) {
              log.warn(
                { err: errorMessage(err), object: converter.describe(ev) },
                'cannot convert object',
              );
            }
          },
          onSynced: () => {
            store.synced();
          },
        },
        log,
      );
      await Promise.all([store.run(signal), source.run(signal)]);
    },
  };
}
