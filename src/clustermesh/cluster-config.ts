import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import {
  ClusterConfigPrefix,
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
 * there: re-written with update-if-different every `intervalMs` (Cilium: 5 min), in
 * case its lease expired during an outage. With `watch`, as Cilium's
 * clustermesh-apiserver does, a change or deletion by anyone else is also reverted as
 * soon as the watch reports it: remote agents would otherwise validate against a wrong
 * config for up to a period. The first write must succeed within `initialTimeoutMs`:
 * remote agents refuse a cluster without config.
 */
export async function enforceClusterConfig(
  backend: Backend,
  cluster: string,
  config: CiliumClusterConfig,
  opts: { intervalMs: number; initialTimeoutMs: number; log: Logger; watch?: boolean },
): Promise<{ run(signal: AbortSignal): Promise<void> }> {
  const key = clusterConfigKey(cluster);
  const value = encodeClusterConfig(config);
  await withTimeout(
    backend.put(key, value, { lease: true }),
    opts.initialTimeoutMs,
    `writing ${key}`,
  );
  opts.log.info({ key, value }, 'cluster configuration written');
  const restore = async (): Promise<void> => {
    try {
      if (await backend.updateIfDifferent(key, value, { lease: true })) {
        opts.log.info({ key }, 'cluster configuration restored');
      }
    } catch (err) {
      opts.log.warn({ key, err: errorMessage(err) }, 'enforcing cluster configuration failed');
    }
  };
  const periodic = async (signal: AbortSignal): Promise<void> => {
    while (!signal.aborted) {
      try {
        await sleep(opts.intervalMs, signal);
      } catch {
        return;
      }
      await restore();
    }
  };
  const watched = async (signal: AbortSignal): Promise<void> => {
    for await (const ev of backend.listAndWatch(ClusterConfigPrefix, signal)) {
      // After every (re)list: the key may have gone while nobody watched.
      if (ev.kind === 'listDone') await restore();
      else if (ev.key === key && (ev.kind === 'delete' || ev.value !== value)) await restore();
    }
  };
  return {
    run: async (signal) => {
      await Promise.all([periodic(signal), opts.watch === true ? watched(signal) : undefined]);
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
