import { Backoff } from './backoff.js';

/**
 * A coalescing work queue with client-go semantics: an item is queued at most once
 * (adding it again while queued is a no-op), is never handed to two workers at
 * once, and if it is re-added while being processed it is queued again when the
 * worker calls `done`. Per-item exponential back-off for retries.
 */
export class WorkQueue<T> {
  private queue: T[] = [];
  private head = 0;
  private readonly dirty = new Set<T>();
  private readonly processing = new Set<T>();
  private readonly failures = new Map<T, Backoff>();
  private readonly timers = new Map<T, NodeJS.Timeout>();
  private waiters: (() => void)[] = [];
  private shut = false;

  constructor(
    private readonly retry: { initialMs: number; maxMs: number } = { initialMs: 5, maxMs: 60_000 },
  ) {}

  add(item: T): void {
    if (this.shut || this.dirty.has(item)) return;
    this.dirty.add(item);
    if (this.processing.has(item)) return;
    this.queue.push(item);
    this.wake();
  }

  /** Re-adds after this item's next back-off delay. */
  addRateLimited(item: T): void {
    if (this.shut || this.timers.has(item)) return;
    let b = this.failures.get(item);
    if (b === undefined) {
      b = new Backoff({ initialMs: this.retry.initialMs, maxMs: this.retry.maxMs, jitter: 0.1 });
      this.failures.set(item, b);
    }
    const t = setTimeout(() => {
      this.timers.delete(item);
      this.add(item);
    }, b.next());
    this.timers.set(item, t);
  }

  /** Clears the item's failure history (after a success). */
  forget(item: T): void {
    this.failures.delete(item);
  }

  /** Number of times the item failed since the last `forget`. */
  retries(item: T): number {
    return this.failures.get(item)?.failures ?? 0;
  }

  /** Waits for at least one item and returns up to `max`; `undefined` once shut down. */
  async getBatch(max: number): Promise<T[] | undefined> {
    while (this.length === 0) {
      if (this.shut) return undefined;
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    const out: T[] = [];
    while (out.length < max && this.head < this.queue.length) {
      const item = this.queue[this.head++] as T;
      this.dirty.delete(item);
      this.processing.add(item);
      out.push(item);
    }
    if (this.head > 4096 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
    return out;
  }

  done(item: T): void {
    this.processing.delete(item);
    if (this.dirty.has(item) && !this.shut) {
      this.queue.push(item);
      this.wake();
    }
  }

  /** Items waiting (not counting those being processed or waiting for a retry). */
  get length(): number {
    return this.queue.length - this.head;
  }

  /** Items queued, in flight or waiting for a retry: what is not yet written. */
  get pending(): number {
    return this.length + this.processing.size + this.timers.size;
  }

  shutdown(): void {
    this.shut = true;
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
    this.wake();
  }

  private wake(): void {
    const ws = this.waiters;
    this.waiters = [];
    for (const w of ws) w();
  }
}
