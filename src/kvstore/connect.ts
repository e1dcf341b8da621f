import type { Logger } from 'pino';
import { HeartbeatPath } from '../keyspace/index.js';
import { withTimeout } from '../lib/abort.js';
import type { Hook } from '../lib/lifecycle.js';
import type { Backend, BackendStatus } from './backend.js';
import { createBackend, type KvstoreConfig } from './config.js';

/** How long a daemon waits for its own kvstore's first answer before giving up. */
export const DefaultConnectTimeoutMs = 60_000;

export interface ConnectOptions {
  readonly log: Logger;
  /** Memory kvstore only: the in-process store to join. */
  readonly memoryStoreName?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

/**
 * A client for `config` that has answered once: the heartbeat read pins the etcd
 * cluster ID and proves the endpoints work. Bounded, so a kvstore that never answers
 * fails the start instead of hanging it; the client is closed when it fails.
 */
export async function connectKvstore(
  config: KvstoreConfig,
  opts: ConnectOptions,
): Promise<Backend> {
  const backend = await createBackend(config, {
    log: opts.log,
    memoryStoreName: opts.memoryStoreName,
  });
  try {
    await withTimeout(
      backend.get(HeartbeatPath),
      opts.timeoutMs ?? DefaultConnectTimeoutMs,
      'connecting to the kvstore',
    );
  } catch (err) {
    await backend.close();
    throw err;
  }
  return backend;
}

/** A daemon's own kvstore as a lifecycle hook: connected on start, closed on stop. */
export class KvstoreHook implements Hook {
  readonly name = 'kvstore';
  private client: Backend | undefined;

  constructor(
    private readonly config: KvstoreConfig,
    private readonly opts: ConnectOptions,
  ) {}

  async start(): Promise<void> {
    this.client = await connectKvstore(this.config, this.opts);
  }

  async stop(): Promise<void> {
    await this.client?.close();
  }

  /** The client, once started (undefined before, and after a failed start). */
  get backend(): Backend | undefined {
    return this.client;
  }

  /** The client, for hooks that start after this one. */
  require(): Backend {
    if (this.client === undefined) throw new Error('kvstore not started');
    return this.client;
  }

  status(): BackendStatus | undefined {
    return this.client?.status();
  }
}
