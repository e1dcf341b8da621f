import { Gauge, type Registry } from 'prom-client';
import { sleep } from './abort.js';
import { ClusterMeshError, ErrorCode } from './errors.js';
import {
  healthRoutes,
  startHttpServer,
  type Route,
  type RunningHttpServer,
} from './http-server.js';
import type { Hook } from './lifecycle.js';

/**
 * Polls `done` until it holds. Rejects with ERR_TIMEOUT (`<what> not ready in time`)
 * after `timeoutMs`, or with ERR_ABORTED when `signal` aborts.
 */
export async function waitUntil(
  done: () => boolean,
  what: string,
  timeoutMs: number,
  signal?: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) {
      throw new ClusterMeshError(ErrorCode.Timeout, `${what} not ready in time`);
    }
    await sleep(20, signal);
  }
}

/**
 * A daemon's readiness latch and its `<prefix>_bootstrap_seconds` gauge: the time
 * from the start of its initial sync to the moment it first became ready.
 */
export class Bootstrap {
  private readonly gauge: Gauge;
  private startedAt = performance.now();
  private readyAt: number | undefined;

  constructor(
    registry: Registry,
    prefix: string,
    private readonly cluster: string,
  ) {
    this.gauge = new Gauge({
      name: `${prefix}_bootstrap_seconds`,
      help: 'Duration in seconds to complete bootstrap',
      labelNames: ['source_cluster'],
      registers: [registry],
    });
  }

  /** Starts the clock over (the initial sync begins after construction). */
  begin(): void {
    this.startedAt = performance.now();
  }

  /** Milliseconds since the clock started. */
  get elapsedMs(): number {
    return performance.now() - this.startedAt;
  }

  get ready(): boolean {
    return this.readyAt !== undefined;
  }

  /** Latches readiness and records the bootstrap duration; returns it in seconds. */
  markReady(): number {
    this.readyAt = performance.now();
    const seconds = (this.readyAt - this.startedAt) / 1000;
    this.gauge.set({ source_cluster: this.cluster }, seconds);
    return seconds;
  }
}

/** A lifecycle hook serving `routes` on `addr` (nothing when `addr` is undefined). */
export class HttpHook implements Hook {
  private server: RunningHttpServer | undefined;

  constructor(
    readonly name: string,
    private readonly addr: string | undefined,
    /** The flag that named `addr`, for error messages. */
    private readonly flag: string,
    private readonly routes: Readonly<Record<string, Route>>,
  ) {}

  async start(): Promise<void> {
    if (this.addr === undefined) return;
    this.server = await startHttpServer(this.addr, this.flag, this.routes);
  }

  async stop(): Promise<void> {
    await this.server?.close();
  }

  /** `http://host:port` as bound, once started. */
  get url(): string | undefined {
    return this.server?.url;
  }
}

/** The server every daemon runs on its `--health-addr` (routes: see healthRoutes). */
export function healthServer(
  addr: string | undefined,
  sources: Parameters<typeof healthRoutes>[0],
): HttpHook {
  return new HttpHook('health', addr, '--health-addr', healthRoutes(sources));
}
