import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { ErrorCode, errorMessage, isClusterMeshError, toError } from './errors.js';

/** Listeners a hook's signal takes before Node warns of a leak. */
const MAX_TASK_LISTENERS = 256;

/** A background task: runs until it is done or `signal` aborts. */
export type Task = (signal: AbortSignal) => Promise<void>;

/** What a hook's start is given. */
export interface HookContext {
  /** Aborts when this hook stops. */
  readonly signal: AbortSignal;
  /**
   * Runs `task` in the background, owned by this hook: the hook's stop waits for it,
   * and a failure is logged under `name` instead of going unhandled.
   */
  spawn(name: string, task: Task): void;
}

/** One component of a daemon: started in order, stopped in reverse. */
export interface Hook {
  readonly name: string;
  start?(ctx: HookContext): Promise<void> | void;
  stop?(): Promise<void> | void;
}

/** A hook that started (or is starting), with the tasks it spawned. */
interface Running {
  readonly hook: Hook;
  readonly abort: AbortController;
  readonly tasks: Set<Promise<void>>;
}

/**
 * Explicit daemon lifecycle: hooks start in the order they were appended and stop
 * in reverse; a failed start stops what already started. Each hook owns the tasks
 * it spawns: stopping a hook aborts its signal, runs its `stop`, then waits for
 * exactly its own tasks, so no background loop outlives the component it uses.
 */
export class Lifecycle {
  private readonly hooks: Hook[] = [];
  private started: Running[] = [];

  constructor(private readonly log: Logger) {}

  append(hook: Hook): void {
    this.hooks.push(hook);
  }

  async start(): Promise<void> {
    for (const hook of this.hooks) {
      const run: Running = { hook, abort: new AbortController(), tasks: new Set() };
      // Every task of the hook shares this signal and may listen to it (an informer each):
      // Node's warning at 10 listeners would be noise, not a leak.
      setMaxListeners(MAX_TASK_LISTENERS, run.abort.signal);
      const t0 = performance.now();
      try {
        await hook.start?.({
          signal: run.abort.signal,
          spawn: (name, task) => {
            this.spawn(run, name, task);
          },
        });
      } catch (err) {
        this.log.error({ hook: hook.name, err: errorMessage(err) }, 'start failed');
        // Its start did not complete, so its stop is not called; its tasks still end.
        run.abort.abort();
        await settle(run);
        await this.stop();
        throw err;
      }
      this.started.push(run);
      this.log.debug({ hook: hook.name, ms: Math.round(performance.now() - t0) }, 'started');
    }
  }

  async stop(): Promise<void> {
    const runs = this.started.reverse();
    this.started = [];
    for (const run of runs) {
      run.abort.abort();
      try {
        await run.hook.stop?.();
      } catch (err) {
        this.log.warn({ hook: run.hook.name, err: errorMessage(err) }, 'stop failed');
      }
      // After stop: closing a component may be what ends a task, and a task spawned
      // while stopping still belongs to the hook.
      await settle(run);
    }
  }

  private spawn(run: Running, name: string, task: Task): void {
    const signal = run.abort.signal;
    let running: Promise<void>;
    try {
      running = task(signal);
    } catch (err) {
      running = Promise.reject(toError(err));
    }
    const tracked: Promise<void> = running
      .catch((err: unknown) => {
        // Ending because its hook stopped is how a task is meant to end.
        if (signal.aborted && isClusterMeshError(err, ErrorCode.Aborted)) return;
        this.log.error({ hook: run.hook.name, task: name, err: errorMessage(err) }, 'task failed');
      })
      .finally(() => {
        run.tasks.delete(tracked);
      });
    run.tasks.add(tracked);
  }
}

/** Waits for every task of `run`, including those spawned while waiting. */
async function settle(run: Running): Promise<void> {
  while (run.tasks.size > 0) await Promise.all(run.tasks);
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
