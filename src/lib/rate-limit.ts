import { sleep } from './abort.js';

/**
 * The reference's API limiter reduced to what matters here: a token bucket of
 * `qps` (burst = qps) plus a cap on operations in flight. qps 0 means unlimited;
 * the fast path then costs nothing.
 */
export class RateLimiter {
  private tokens: number;
  private last = Date.now();
  private inflight = 0;
  private readonly waiters: (() => void)[] = [];

  constructor(
    private qps: number,
    private readonly maxInflight = 0,
  ) {
    this.tokens = qps;
  }

  /** Changes the rate (bootstrap qps → steady qps). */
  setQps(qps: number): void {
    this.qps = qps;
    this.tokens = Math.min(this.tokens, qps);
  }

  async run<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    if (this.qps <= 0 && this.maxInflight <= 0) return fn();
    await this.acquire(signal);
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private async acquire(signal?: AbortSignal): Promise<void> {
    if (this.maxInflight > 0 && this.inflight >= this.maxInflight) {
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.inflight++;
    for (;;) {
      // Re-read every round: setQps(0) (unlimited) must release waiters too.
      if (this.qps <= 0) return;
      const now = Date.now();
      this.tokens = Math.min(this.qps, this.tokens + ((now - this.last) / 1000) * this.qps);
      this.last = now;
      if (this.tokens >= 1) {
        this.tokens -= 1;
        return;
      }
      try {
        await sleep(Math.ceil(((1 - this.tokens) / this.qps) * 1000), signal);
      } catch (err) {
        this.release();
        throw err;
      }
    }
  }

  private release(): void {
    this.inflight--;
    this.waiters.shift()?.();
  }
}
