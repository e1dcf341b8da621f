/**
 * The one way tests wait for something asynchronous: `eventually` retries an assertion,
 * `until` polls a condition. Both are bounded, so a lost event fails the test instead of
 * hanging it.
 */

export interface WaitOptions {
  /** Give up after this long. Default 20 s. */
  readonly timeoutMs?: number;
  /** Pause between attempts. Default 50 ms. */
  readonly intervalMs?: number;
  /** What is awaited, for the timeout error; a function is only called on timeout. */
  readonly message?: string | (() => string);
  /**
   * Subscribes to a change source (returning the unsubscribe): a notification ends the pause
   * early, so event-driven conditions are seen at once without fast polling.
   */
  readonly wake?: (notify: () => void) => () => void;
}

/** Options, or just the timeout in milliseconds. */
export type Wait = WaitOptions | number;

const DEFAULT_TIMEOUT_MS = 20_000;
const DEFAULT_INTERVAL_MS = 50;

function options(wait: Wait): WaitOptions {
  return typeof wait === 'number' ? { timeoutMs: wait } : wait;
}

function describeWait(message: WaitOptions['message']): string | undefined {
  return typeof message === 'function' ? message() : message;
}

function pause(ms: number, wake: WaitOptions['wake']): Promise<void> {
  return new Promise<void>((resolve) => {
    const state: { settled: boolean; unsubscribe?: (() => void) | undefined } = { settled: false };
    const done = (): void => {
      if (state.settled) return;
      state.settled = true;
      clearTimeout(timer);
      state.unsubscribe?.();
      resolve();
    };
    const timer = setTimeout(done, ms);
    const unsubscribe = wake?.(done);
    // A source that notified while subscribing has already ended the pause.
    if (state.settled) unsubscribe?.();
    else state.unsubscribe = unsubscribe;
  });
}

/**
 * Calls `fn` until it returns without throwing and returns its result. On timeout the last
 * error is rethrown as is, or wrapped (as `cause`) under `message` when one is given.
 */
export async function eventually<T>(fn: () => T | Promise<T>, wait: Wait = {}): Promise<T> {
  const opts = options(wait);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (err) {
      const left = deadline - Date.now();
      if (left <= 0) {
        const what = describeWait(opts.message);
        if (what === undefined) throw err;
        const why = err instanceof Error ? err.message : String(err);
        throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}: ${why}`, {
          cause: err,
        });
      }
      await pause(Math.min(left, opts.intervalMs ?? DEFAULT_INTERVAL_MS), opts.wake);
    }
  }
}

/**
 * Waits until `pred` returns true and returns how many milliseconds that took. Throws
 * `timed out after <timeoutMs>ms waiting for <message>` otherwise.
 */
export async function until(
  pred: () => boolean | Promise<boolean>,
  wait: Wait = {},
): Promise<number> {
  const opts = options(wait);
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  const start = Date.now();
  const deadline = start + timeoutMs;
  while (!(await pred())) {
    const left = deadline - Date.now();
    if (left <= 0) {
      const what = describeWait(opts.message) ?? 'a condition';
      throw new Error(`timed out after ${timeoutMs}ms waiting for ${what}`);
    }
    await pause(Math.min(left, opts.intervalMs ?? DEFAULT_INTERVAL_MS), opts.wake);
  }
  return Date.now() - start;
}
