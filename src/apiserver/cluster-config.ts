import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import {
  HeartbeatPath,
  clusterConfigKey,
  encodeClusterConfig,
  encodeHeartbeat,
  type CiliumClusterConfig,
} from '../keyspace/index.js';
import { sleep, withTimeout } from '../lib/abort.js';
import { errorMessage } from '../lib/errors.js';

/**
 * Writes `cilium/cluster-config/<cluster>` (with the session lease) and keeps it
 * there: re-written with update-if-different every `intervalMs` (reference: 5 min),
 * in case its lease expired during an outage. The first write must succeed
 * within `initialTimeoutMs`: remote agents refuse a cluster without config.
 */
export async function enforceClusterConfig(
  backend: Backend,
  cluster: string,
  config: CiliumClusterConfig,
  opts: { intervalMs: number; initialTimeoutMs: number; log: Logger },
): Promise<{ run(signal: AbortSignal): Promise<void> }> {
  const key = clusterConfigKey(cluster);
  const value = encodeClusterConfig(config);
  await withTimeout(
    backend.put(key, value, { lease: true }),
    opts.initialTimeoutMs,
    `writing ${key}`,
  );
  opts.log.info({ key, value }, 'cluster configuration written');
  return {
    run: async (signal) => {
      while (!signal.aborted) {
        try {
          await sleep(opts.intervalMs, signal);
        } catch {
          return;
        }
        try {
          if (await backend.updateIfDifferent(key, value, { lease: true })) {
            opts.log.info({ key }, 'cluster configuration restored');
          }
        } catch (err) {
          opts.log.warn({ key, err: errorMessage(err) }, 'enforcing cluster configuration failed');
        }
      }
    },
  };
}

/** Writes `cilium/.heartbeat` = now (RFC3339) every `intervalMs` (reference: 1 min). */
export async function runHeartbeat(
  backend: Backend,
  signal: AbortSignal,
  opts: { intervalMs: number; log: Logger },
): Promise<void> {
  while (!signal.aborted) {
    try {
      await withTimeout(
        backend.put(HeartbeatPath, encodeHeartbeat(), { lease: true }),
        Math.min(25_000, opts.intervalMs),
        'heartbeat write',
      );
    } catch (err) {
      opts.log.warn({ err: errorMessage(err) }, 'heartbeat write failed');
    }
    try {
      await sleep(opts.intervalMs, signal);
    } catch {
      return;
    }
  }
}
