import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { withTrailingSlash } from '../kvstore/backend.js';
import { syncedClusterPrefix } from '../keyspace/index.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';

/** A watch to start: runs until `signal` aborts. */
export type WatchFunc = (signal: AbortSignal) => Promise<void>;

export interface WatchStoreManager {
  /** Registers the watch of `prefix` (before `run`). */
  register(prefix: string, fn: WatchFunc): void;
  /** Starts watches as their turn comes; resolves once `signal` aborted and all returned. */
  run(signal: AbortSignal): Promise<void>;
}

abstract class BaseManager implements WatchStoreManager {
  protected readonly funcs = new Map<string, WatchFunc>();
  protected readonly running: Promise<void>[] = [];
  private started = false;

  constructor(protected readonly log: Logger) {}

  register(prefix: string, fn: WatchFunc): void {
    if (this.started) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        'WatchStoreManager: register after run',
      );
    }
    this.funcs.set(prefix.replace(/\/+$/, ''), fn);
  }

  async run(signal: AbortSignal): Promise<void> {
    this.started = true;
    await this.schedule(signal);
    await Promise.all(this.running);
  }

  protected start(prefix: string, signal: AbortSignal): void {
    const fn = this.funcs.get(prefix);
    if (fn === undefined) return;
    this.funcs.delete(prefix);
    this.log.debug({ prefix }, 'starting watch');
    this.running.push(
      fn(signal).catch((err: unknown) => {
        this.log.error({ prefix, err: errorMessage(err) }, 'watch failed');
      }),
    );
  }

  protected abstract schedule(signal: AbortSignal): Promise<void>;
}

/**
 * For remotes that write sync canaries: a prefix is watched only once
 * `cilium/synced/<cluster>/<prefix>` exists, so a freshly restarted remote whose
 * writer has not finished repopulating cannot make us delete valid entries.
 */
export class SyncedWatchStoreManager extends BaseManager {
  constructor(
    private readonly backend: Backend,
    private readonly clusterName: string,
    log: Logger = silentLogger,
  ) {
    super(log.child({ cluster: clusterName }));
  }

  protected async schedule(signal: AbortSignal): Promise<void> {
    const base = withTrailingSlash(syncedClusterPrefix(this.clusterName));
    for await (const ev of this.backend.listAndWatch(base, signal)) {
      // Canary deletions are ignored: a started watch keeps running.
      if (ev.kind !== 'upsert') continue;
      this.start(ev.key.slice(base.length), signal);
    }
  }
}

/** For remotes without canaries: every watch starts at once. */
export class ImmediateWatchStoreManager extends BaseManager {
  protected schedule(signal: AbortSignal): Promise<void> {
    for (const prefix of [...this.funcs.keys()]) this.start(prefix, signal);
    return Promise.resolve();
  }
}

export function newWatchStoreManager(
  backend: Backend,
  clusterName: string,
  syncedCanaries: boolean,
  log?: Logger,
): WatchStoreManager {
  return syncedCanaries
    ? new SyncedWatchStoreManager(backend, clusterName, log)
    : new ImmediateWatchStoreManager(log ?? silentLogger);
}
