import type { Logger } from 'pino';
import { errorMessage } from './errors.js';

/** One component of a daemon: started in order, stopped in reverse. */
export interface Hook {
  readonly name: string;
  start?(signal: AbortSignal): Promise<void> | void;
  stop?(): Promise<void> | void;
}

/**
 * Explicit daemon lifecycle: hooks start in the order they were appended and stop
 * in reverse; a failed start stops what already started. The signal handed to
 * `start` aborts when the lifecycle stops, so background loops end with it.
 */
export class Lifecycle {
  private readonly hooks: Hook[] = [];
  private started: Hook[] = [];
  private readonly ac = new AbortController();

  constructor(private readonly log: Logger) {}

  append(hook: Hook): void {
    this.hooks.push(hook);
  }

  get signal(): AbortSignal {
    return this.ac.signal;
  }

  async start(): Promise<void> {
    for (const h of this.hooks) {
      const t0 = performance.now();
      try {
        await h.start?.(this.ac.signal);
      } catch (err) {
        this.log.error({ hook: h.name, err: errorMessage(err) }, 'start failed');
        await this.stop();
        throw err;
      }
      this.started.push(h);
      this.log.debug({ hook: h.name, ms: Math.round(performance.now() - t0) }, 'started');
    }
  }

  async stop(): Promise<void> {
    this.ac.abort();
    const hooks = this.started.reverse();
    this.started = [];
    for (const h of hooks) {
      try {
        await h.stop?.();
      } catch (err) {
        this.log.warn({ hook: h.name, err: errorMessage(err) }, 'stop failed');
      }
    }
  }
}

/** Resolves on the first SIGINT or SIGTERM (listeners removed afterwards). */
export function untilSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals): void => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}
