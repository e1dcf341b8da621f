import { Counter, Gauge, type Registry } from 'prom-client';
import type { ClusterMeshMetrics } from '../clustermesh/clustermesh.js';

/**
 * The remote-cluster metrics Cilium exports, under a daemon's prefix
 * (`cilium_clustermesh` for agents, `cilium_kvstoremesh` for KVStoreMesh), with the
 * 1.14–1.17 labels `source_cluster`, `source_node_name`, `target_cluster`.
 */
export function clusterMeshMetrics(
  registry: Registry,
  prefix: string,
  source: { readonly cluster: string; readonly node?: string | undefined },
): ClusterMeshMetrics & { rejected(target: string, kind: string): void } {
  const base: Record<string, string> = { source_cluster: source.cluster };
  if (source.node !== undefined) base.source_node_name = source.node;
  const baseLabels = Object.keys(base);
  const g = (name: string, help: string, target: boolean): Gauge =>
    new Gauge({
      name: `${prefix}_${name}`,
      help,
      labelNames: target ? [...baseLabels, 'target_cluster'] : baseLabels,
      registers: [registry],
    });
  const remoteClusters = g('remote_clusters', 'Number of remote clusters', false);
  const failures = g('remote_cluster_failures', 'Number of failures at the remote cluster', true);
  const lastFailure = g(
    'remote_cluster_last_failure_ts',
    'Last failure timestamp (unix seconds)',
    true,
  );
  const readiness = g(
    'remote_cluster_readiness_status',
    'Readiness of the remote cluster (1 ready)',
    true,
  );
  const nodes = g('remote_cluster_nodes', 'Number of nodes of the remote cluster', true);
  // Our own (the reference has no freshness metrics): absent until the first sample.
  const heartbeatAge = g(
    'remote_cluster_heartbeat_age_seconds',
    'Seconds since the last heartbeat of the remote cluster was received',
    true,
  );
  const lastEventAge = g(
    'remote_cluster_last_event_age_seconds',
    'Seconds since a watch last delivered a change from the remote cluster',
    true,
  );
  const propagationDelay = g(
    'remote_cluster_propagation_delay_seconds',
    'Receive time minus the time in the last heartbeat (an upper bound: the heartbeat has one-second resolution)',
    true,
  );
  const rejected = new Counter({
    name: `${prefix}_remote_cluster_rejected_entries_total`,
    help: 'Entries from a remote cluster rejected by validation (malformed or spoofed)',
    labelNames: [...baseLabels, 'target_cluster', 'kind'],
    registers: [registry],
  });
  const t = (cluster: string): Record<string, string> => ({ ...base, target_cluster: cluster });
  return {
    remoteClusters: (n) => remoteClusters.set(base, n),
    remoteClusterFailures: (c, n) => failures.set(t(c), n),
    remoteClusterLastFailureTs: (c, ts) => lastFailure.set(t(c), ts),
    remoteClusterReadiness: (c, r) => readiness.set(t(c), r ? 1 : 0),
    remoteClusterNodes: (c, n) => nodes.set(t(c), n),
    remoteClusterFreshness: (c, f) => {
      const set = (m: Gauge, v: number | undefined): void => {
        if (v === undefined) m.remove(t(c));
        else m.set(t(c), v);
      };
      set(heartbeatAge, f.heartbeatAgeSeconds);
      set(lastEventAge, f.lastEventAgeSeconds);
      set(propagationDelay, f.propagationDelaySeconds);
    },
    remoteClusterRemoved: (c) => {
      for (const m of [
        failures,
        lastFailure,
        readiness,
        nodes,
        heartbeatAge,
        lastEventAge,
        propagationDelay,
      ])
        m.remove(t(c));
    },
    rejected: (target, kind) => rejected.inc({ ...t(target), kind }),
  };
}
