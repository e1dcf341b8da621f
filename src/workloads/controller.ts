import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import { WorkQueue } from '../lib/workqueue.js';
import type { RegistryObject } from '../registry/types.js';

/**
 * A level-triggered controller: events only name a key (`<namespace>/<name>`), the work
 * queue coalesces repeated keys, and `reconcile` brings the world in line with the current
 * state of that key, whatever happened before. A failed reconcile is retried with
 * per-key back-off. One worker, so a controller's reconciles never overlap: the
 * allocators they use need no locking.
 */
export class Controller {
  private readonly queue = new WorkQueue<string>({ initialMs: 100, maxMs: 30_000 });
  /** Keys queued before the worker started: the objects that existed at start. */
  private readonly initial = new Set<string>();
  private started = false;
  private resolveInitial!: () => void;
  /** Resolves once every key queued before `run` was reconciled once (or the run ended). */
  readonly initialSync: Promise<void> = new Promise((resolve) => {
    this.resolveInitial = resolve;
  });

  constructor(
    readonly name: string,
    private readonly reconcile: (key: string, signal: AbortSignal) => Promise<void>,
    private readonly log: Logger,
  ) {}

  enqueue(key: string): void {
    if (!this.started) this.initial.add(key);
    this.queue.add(key);
  }

  /** Reconciles queued keys until `signal` aborts; an in-flight reconcile is awaited. */
  async run(signal: AbortSignal): Promise<void> {
    this.started = true;
    if (this.initial.size === 0) this.resolveInitial();
    const shutdown = (): void => {
      this.queue.shutdown();
    };
    if (signal.aborted) shutdown();
    signal.addEventListener('abort', shutdown, { once: true });
    try {
      for (;;) {
        const batch = await this.queue.getBatch(1);
        // Items queued before the shutdown are dropped: their world is going away.
        if (batch === undefined || signal.aborted) break;
        for (const key of batch) await this.process(key, signal);
      }
    } finally {
      signal.removeEventListener('abort', shutdown);
      this.resolveInitial();
    }
  }

  private async process(key: string, signal: AbortSignal): Promise<void> {
    try {
      await this.reconcile(key, signal);
      this.queue.forget(key);
    } catch (err) {
      if (!signal.aborted) {
        const retries = this.queue.retries(key);
        // The first failures are usually a race with another writer; persistent ones matter.
        this.log[retries < 3 ? 'debug' : 'warn'](
          { controller: this.name, key, retries, err: errorMessage(err) },
          'reconcile failed, retrying',
        );
        this.queue.addRateLimited(key);
      }
    } finally {
      this.queue.done(key);
      if (this.initial.delete(key) && this.initial.size === 0) this.resolveInitial();
    }
  }
}

/** `<namespace>/<name>`. */
export function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? 'default'}/${name}`;
}

/** Inverse of {@link keyOf}. */
export function splitKey(key: string): { readonly namespace: string; readonly name: string } {
  const slash = key.indexOf('/');
  return { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * Oldest object first (creationTimestamp), then by key: the order allocations are restored
 * in, so that of two objects claiming one address the older keeps it.
 */
export function oldestFirst(
  a: Pick<RegistryObject, 'metadata'>,
  b: Pick<RegistryObject, 'metadata'>,
): number {
  return (
    (a.metadata.creationTimestamp ?? '').localeCompare(b.metadata.creationTimestamp ?? '') ||
    keyOf(a.metadata.namespace, a.metadata.name).localeCompare(
      keyOf(b.metadata.namespace, b.metadata.name),
    )
  );
}
