import type { Backend } from '../kvstore/backend.js';
import { createBackend, resolveKvstoreConfig, type KvstoreConfig } from '../kvstore/config.js';
import { EtcdBackend } from '../kvstore/etcd.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { createLogger, type Logger } from '../lib/logger.js';
import type { KvstoreCliOptions } from './common.js';

/**
 * Opening a kvstore for one-shot commands. Loaded lazily (it pulls in etcd3 and gRPC), so
 * `--help` and commands that never touch a kvstore start fast.
 */

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
// close() revokes leases; a dead server must not keep a finished command alive.
const CLOSE_TIMEOUT_MS = 2_000;

export interface OpenKvstoreOptions extends KvstoreCliOptions {
  /** Give up when the first round trip has not completed by then. */
  readonly connectTimeoutMs?: number | undefined;
  /** A cluster of the running local mesh: its admin credentials come from the state dir. */
  readonly cluster?: string | undefined;
  readonly stateDir?: string | undefined;
}

/** `--kvstore-opt` values for `opts`: given ones, else those of the mesh cluster named. */
async function kvstoreOpts(opts: OpenKvstoreOptions): Promise<readonly string[]> {
  if (opts.cluster === undefined) return opts.kvstoreOpt ?? [];
  if (opts.kvstoreOpt !== undefined) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      '--cluster and --kvstore-opt exclude each other (--cluster takes the mesh credentials)',
    );
  }
  const { readMeshState, clusterOf, kvstoreOptsOf } = await import('../localmesh/mesh-state.js');
  const cluster = clusterOf(await readMeshState(opts.stateDir), opts.cluster);
  if (cluster.kvstore.startsWith('memory://')) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `cluster ${cluster.name} keeps its kvstore in the up process (memory): start up with --kvstore etcd`,
    );
  }
  return kvstoreOptsOf(cluster);
}

/**
 * Runs `fn` against a connected kvstore and always closes it. Unlike a daemon, a one-shot
 * command defaults to etcd: an empty in-process memory store would only ever answer "not found".
 */
export async function withKvstore<T>(
  opts: OpenKvstoreOptions,
  fn: (backend: Backend) => Promise<T>,
): Promise<T> {
  const cfg = await resolveKvstoreConfig(opts.kvstore ?? 'etcd', await kvstoreOpts(opts));
  const backend = await createBackend(cfg, { log: cliLogger() });
  try {
    await connect(backend, cfg, opts.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
    return await fn(backend);
  } finally {
    await within(backend.close(), CLOSE_TIMEOUT_MS).catch(() => undefined);
  }
}

async function connect(backend: Backend, cfg: KvstoreConfig, timeoutMs: number): Promise<void> {
  if (!(backend instanceof EtcdBackend)) return;
  // etcd3's own per-call deadline is 15 s and a black-holed endpoint would use all of it.
  const ok = await within(backend.connect(), timeoutMs);
  if (!ok) {
    const where = cfg.etcd?.endpoints.join(',') ?? '?';
    throw new ClusterMeshError(
      ErrorCode.KvstoreUnreachable,
      `etcd at ${where} unreachable: no answer within ${formatMs(timeoutMs)}`,
    );
  }
}

/** Resolves to true when `p` settles in time (rethrowing its error), false on timeout. */
async function within(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, ms);
  });
  try {
    return await Promise.race([p.then(() => true as const), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}

/** Warnings only unless LOG_LEVEL says otherwise: a CLI's stderr is for its one-line errors. */
function cliLogger(): Logger {
  const log = createLogger({ component: 'cli' });
  if (process.env.LOG_LEVEL === undefined) log.level = 'warn';
  return log;
}
