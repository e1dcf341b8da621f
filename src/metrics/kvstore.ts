import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { KVSTORE_OPERATION_CHANNEL, type KvstoreOperationMessage } from '../kvstore/etcd.js';
import type { SyncStoreMetrics } from '../store/syncstore.js';
import type { WatchStoreMetrics } from '../store/watchstore.js';

/**
 * The reference's `scope` label: `<resource>/<version>` from a key
 * (`cilium/state/nodes/v1/...` → `nodes/v1`); synced canaries → `synced/<scope>`;
 * the heartbeat → `heartbeat`.
 */
export function scopeOf(key: string): string {
  if (key.startsWith('cilium/.heartbeat')) return 'heartbeat';
  if (key.startsWith('cilium/synced/')) {
    const rest = key.split('/').slice(3).join('/');
    return `synced/${scopeOf(rest)}`;
  }
  const parts = key.split('/');
  if ((parts[1] === 'state' || parts[1] === 'cache') && parts.length >= 4) {
    return `${parts[2] ?? ''}/${parts[3] ?? ''}`;
  }
  if (parts[0] === 'registry' && parts.length >= 2) return `registry/${parts[1] ?? ''}`;
  return parts.slice(0, 2).join('/');
}

/**
 * The kvstore metric family every daemon exports under its own namespace
 * (`cilium_clustermesh_apiserver_`, `cilium_kvstoremesh_`, `cilium_`).
 */
export class KvstoreMetrics {
  readonly registry: Registry;
  private readonly ops: Histogram;
  private readonly queueSize: Gauge;
  private readonly syncErrors: Counter;
  private readonly initialSync: Gauge;
  private readonly subscriber: (msg: unknown) => void;

  constructor(
    private readonly namespace: string,
    private readonly sourceCluster: string,
    registry: Registry = new Registry(),
  ) {
    this.registry = registry;
    this.ops = new Histogram({
      name: `${namespace}_kvstore_operations_duration_seconds`,
      help: 'Duration of kvstore operations',
      labelNames: ['action', 'kind', 'outcome', 'scope'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    });
    this.queueSize = new Gauge({
      name: `${namespace}_kvstore_sync_queue_size`,
      help: 'Number of elements queued for synchronization in the kvstore',
      labelNames: ['scope', 'source_cluster'],
      registers: [registry],
    });
    this.syncErrors = new Counter({
      name: `${namespace}_kvstore_sync_errors_total`,
      help: 'Number of times synchronization to the kvstore failed',
      labelNames: ['scope', 'source_cluster'],
      registers: [registry],
    });
    this.initialSync = new Gauge({
      name: `${namespace}_kvstore_initial_sync_completed`,
      help: 'Whether the initial synchronization from/to the kvstore has completed',
      labelNames: ['scope', 'source_cluster', 'action'],
      registers: [registry],
    });
    this.subscriber = (msg: unknown) => {
      const m = msg as KvstoreOperationMessage;
      this.ops.observe(
        { action: m.action, kind: m.kind, outcome: m.outcome, scope: scopeOf(m.key) },
        m.durationMs / 1000,
      );
    };
    subscribe(KVSTORE_OPERATION_CHANNEL, this.subscriber);
  }

  /** Hooks for a SyncStore writing `prefix`. */
  syncStore(prefix: string, sourceCluster = this.sourceCluster): SyncStoreMetrics {
    const labels = { scope: scopeOf(`${prefix}/`), source_cluster: sourceCluster };
    this.initialSync.set({ ...labels, action: 'write' }, 0);
    return {
      queueSize: (n) => this.queueSize.set(labels, n),
      syncError: () => this.syncErrors.inc(labels),
      initialSyncCompleted: () => this.initialSync.set({ ...labels, action: 'write' }, 1),
    };
  }

  /** Hooks for a WatchStore reading `prefix` of `sourceCluster`. */
  watchStore(prefix: string, sourceCluster: string): WatchStoreMetrics {
    const labels = { scope: scopeOf(`${prefix}/`), source_cluster: sourceCluster, action: 'read' };
    return {
      synced: (s) => this.initialSync.set(labels, s ? 1 : 0),
    };
  }

  metricName(suffix: string): string {
    return `${this.namespace}_${suffix}`;
  }

  text(): Promise<string> {
    return this.registry.metrics();
  }

  close(): void {
    unsubscribe(KVSTORE_OPERATION_CHANNEL, this.subscriber);
  }
}
