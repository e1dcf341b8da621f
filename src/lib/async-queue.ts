/**
 * An unbounded push queue consumed as an async iterator: bridges callback/event
 * sources (etcd3 watchers, in-memory watchers) into `for await` loops. `fail()`
 * makes the consumer's loop throw after it has drained what was pushed before.
 */
export class AsyncQueue<T> implements AsyncIterable<T> {
  private items: T[] = [];
  private head = 0;
  private waiter: (() => void) | undefined;
  private done = false;
  private error: unknown = undefined;
  private failed = false;

  push(item: T): void {
    if (this.done) return;
    this.items.push(item);
    this.wake();
  }

  /** Ends the stream; the consumer finishes after draining. */
  end(): void {
    this.done = true;
    this.wake();
  }

  /** Ends the stream with an error thrown to the consumer after draining. */
  fail(err: unknown): void {
    if (this.done) return;
    this.error = err;
    this.failed = true;
    this.done = true;
    this.wake();
  }

  get size(): number {
    return this.items.length - this.head;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.head < this.items.length) {
        const item = this.items[this.head] as T;
        this.head++;
        // Compact occasionally so a long-lived queue does not grow without bound.
        if (this.head > 1024 && this.head * 2 > this.items.length) {
          this.items = this.items.slice(this.head);
          this.head = 0;
        }
        yield item;
        continue;
      }
      if (this.done) {
        if (this.failed) throw this.error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }
}
