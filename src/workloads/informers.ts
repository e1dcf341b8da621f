import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { abortError, aborted } from '../lib/abort.js';
import { registryObjects, type ObjectSource } from '../registry/source.js';
import type { KindName, KindTypes } from '../registry/objects.js';
import type { Informer, ObjectEvent, RegistryObject } from '../registry/types.js';

type Handler<T extends RegistryObject> = (ev: ObjectEvent<T>) => void;

interface Entry {
  readonly informer: Informer<RegistryObject>;
  readonly handlers: Handler<RegistryObject>[];
  /** Re-checked after every event of the kind. */
  readonly waiters: Set<() => void>;
  synced: boolean;
}

/**
 * One informer per kind, shared by the runtime's controllers: a single list-and-watch
 * and cache per kind however many controllers read it, and events dispatched to every
 * subscriber in registration order.
 */
export class SharedInformers {
  private readonly entries = new Map<KindName, Entry>();
  private readonly syncWaiters = new Set<() => void>();
  private readonly source: ObjectSource;

  /** `from`: a registry's kvstore, or any ObjectSource (Kubernetes mode's API server). */
  constructor(
    from: Backend | ObjectSource,
    private readonly log: Logger,
  ) {
    this.source = isObjectSource(from) ? from : registryObjects(from);
  }

  /** The informer of `kind`, with `handler` (if any) receiving its events. Before `run`. */
  subscribe<K extends KindName>(kind: K, handler?: Handler<KindTypes[K]>): Informer<KindTypes[K]> {
    let entry = this.entries.get(kind);
    if (entry === undefined) {
      const created: Entry = {
        handlers: [],
        waiters: new Set(),
        synced: false,
        informer: this.source.informer(
          kind,
          {
            onEvent: (ev) => {
              for (const h of created.handlers) h(ev);
              for (const w of [...created.waiters]) w();
            },
            onSynced: () => {
              created.synced = true;
              for (const w of [...this.syncWaiters]) w();
            },
          },
          { log: this.log },
        ),
      };
      entry = created;
      this.entries.set(kind, entry);
    }
    // The source decodes objects of `kind` to KindTypes[K]; the map just forgets which K.
    if (handler !== undefined) entry.handlers.push(handler as unknown as Handler<RegistryObject>);
    return entry.informer as unknown as Informer<KindTypes[K]>;
  }

  /** Runs every informer until `signal` aborts. */
  async run(signal: AbortSignal): Promise<void> {
    await Promise.all([...this.entries.values()].map((e) => e.informer.run(signal)));
  }

  /** Resolves once every informer delivered its initial list; ERR_ABORTED on abort. */
  async synced(signal: AbortSignal): Promise<void> {
    const all = (): boolean => [...this.entries.values()].every((e) => e.synced);
    if (all()) return;
    let wake!: () => void;
    const done = new Promise<void>((resolve) => {
      wake = () => {
        if (all()) resolve();
      };
    });
    this.syncWaiters.add(wake);
    try {
      await orAbort(done, signal, undefined);
    } finally {
      this.syncWaiters.delete(wake);
    }
    if (signal.aborted) throw abortError(signal);
  }

  /**
   * Resolves to true once `predicate` holds, re-checked after every event of `kind`; to
   * false after `timeoutMs` or on abort. Controllers use it to see their own writes in the
   * cache before they count objects again.
   */
  async waitFor(
    kind: KindName,
    predicate: () => boolean,
    timeoutMs: number,
    signal: AbortSignal,
  ): Promise<boolean> {
    if (predicate()) return true;
    const entry = this.entries.get(kind);
    if (entry === undefined || signal.aborted) return false;
    let timer: NodeJS.Timeout | undefined;
    let check!: () => void;
    const met = new Promise<boolean>((resolve) => {
      check = () => {
        if (predicate()) resolve(true);
      };
      timer = setTimeout(() => {
        resolve(false);
      }, timeoutMs);
    });
    entry.waiters.add(check);
    try {
      return await orAbort(met, signal, false);
    } finally {
      clearTimeout(timer);
      entry.waiters.delete(check);
    }
  }
}

function isObjectSource(from: Backend | ObjectSource): from is ObjectSource {
  return 'informer' in from && 'mode' in from;
}

/** `promise`, or `onAbort` once `signal` aborts; leaves no listener on `signal`. */
async function orAbort<T>(promise: Promise<T>, signal: AbortSignal, onAbort: T): Promise<T> {
  const done = new AbortController();
  try {
    return await Promise.race([
      promise,
      aborted(AbortSignal.any([signal, done.signal])).then(() => onAbort),
    ]);
  } finally {
    done.abort();
  }
}
