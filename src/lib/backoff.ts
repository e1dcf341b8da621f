/**
 * Exponential backoff with jitter, as used for list retries (50ms → 1min in the
 * reference) and per-key SyncStore retries (5ms → 1000s).
 */
export interface BackoffOptions {
  readonly initialMs: number;
  readonly maxMs: number;
  readonly factor?: number;
  /** Fraction of the delay randomised (0..1). */
  readonly jitter?: number;
}

export class Backoff {
  private attempt = 0;
  constructor(private readonly opts: BackoffOptions) {}

  /** Delay before the next retry; each call counts one more failure. */
  next(): number {
    const factor = this.opts.factor ?? 2;
    const base = Math.min(this.opts.maxMs, this.opts.initialMs * factor ** this.attempt);
    this.attempt++;
    const jitter = this.opts.jitter ?? 0.2;
    return Math.round(base * (1 - jitter + Math.random() * jitter));
  }

  get failures(): number {
    return this.attempt;
  }

  reset(): void {
    this.attempt = 0;
  }
}
