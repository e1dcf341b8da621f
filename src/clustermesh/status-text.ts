import type { ClusterMeshStatus, RemoteClusterStatus } from './status.js';

export interface StatusTextOptions {
  /** Details of every cluster (`--verbose` / `--all-clusters`); default: only non-ready ones. */
  readonly verbose?: boolean | undefined;
  /** `clustermesh`: agent (`cilium-dbg status`); `kvstoremesh`: `kvstoremesh-dbg status`. */
  readonly kind?: 'clustermesh' | 'kvstoremesh' | undefined;
  /** Reference time for "last failure … ago" (default: now). */
  readonly now?: Date | undefined;
}

/**
 * The ClusterMesh part of the status text (spec §12), as lines without trailing
 * newlines:
 *
 *     ClusterMesh:   1/2 remote clusters ready, 3 global-services
 *        c2: not-ready, 0 nodes, 0 endpoints, 0 identities, 0 services, 2 reconnections (last: 5s ago)
 *        └  etcd: 0/1 connected, …
 *        └  remote configuration: expected=true, retrieved=false
 *        └  synchronization status: nodes=false, endpoints=false, identities=false, services=false
 */
export function formatClusterMeshStatus(
  status: ClusterMeshStatus,
  opts: StatusTextOptions = {},
): string[] {
  const ready = status.clusters.filter((c) => c.ready).length;
  const total = status.clusters.length;
  const lines =
    opts.kind === 'kvstoremesh'
      ? [`KVStoreMesh:  ${ready}/${total} clusters ready`]
      : [
          `ClusterMesh:   ${ready}/${total} remote clusters ready, ${status['num-global-services'] ?? 0} global-services`,
        ];
  const now = opts.now ?? new Date();
  for (const c of status.clusters) {
    if (opts.verbose === true || !c.ready) lines.push(...formatRemoteCluster(c, now));
  }
  return lines;
}

/** The per-cluster block of the status text. */
export function formatRemoteCluster(c: RemoteClusterStatus, now: Date = new Date()): string[] {
  const exports =
    c['num-service-exports'] === undefined
      ? ''
      : `${c['num-service-exports']} MCS-API service exports, `;
  const last =
    c['last-failure'] === undefined
      ? 'never'
      : `${humanDuration(now.getTime() - Date.parse(c['last-failure']))} ago`;
  const lines = [
    `   ${c.name}: ${c.ready ? 'ready' : 'not-ready'}, ${c['num-nodes']} nodes, ` +
      `${c['num-endpoints']} endpoints, ${c['num-identities']} identities, ` +
      `${c['num-shared-services']} services, ${exports}${c['num-failures']} reconnections (last: ${last})`,
    `   └  ${c.status}`,
  ];
  const cfg = c.config;
  if (cfg === undefined) {
    lines.push('   └  remote configuration: expected=unknown, retrieved=unknown');
  } else {
    let text = `   └  remote configuration: expected=${cfg.required}, retrieved=${cfg.retrieved}`;
    if (cfg.retrieved) {
      text += `, cluster-id=${cfg['cluster-id']}, kvstoremesh=${cfg.kvstoremesh}, sync-canaries=${cfg['sync-canaries']}`;
      const se = cfg['service-exports-enabled'];
      if (se !== undefined) {
        text += `, service-exports=${se === null ? 'unsupported' : se ? 'enabled' : 'disabled'}`;
      }
    }
    lines.push(text);
  }
  const s = c.synced;
  let synced =
    `   └  synchronization status: nodes=${s.nodes}, endpoints=${s.endpoints}, ` +
    `identities=${s.identities}, services=${s.services}`;
  if (s['service-exports'] !== undefined) synced += `, service-exports=${s['service-exports']}`;
  lines.push(synced);
  return lines;
}

/** Kubernetes' `duration.HumanDuration`, which the reference uses for "last failure". */
export function humanDuration(ms: number): string {
  const seconds = Math.trunc(ms / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.trunc(seconds / 60);
  if (minutes < 10) {
    const s = seconds % 60;
    return s === 0 ? `${minutes}m` : `${minutes}m${s}s`;
  }
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.trunc(minutes / 60);
  if (hours < 8) {
    const m = minutes % 60;
    return m === 0 ? `${hours}h` : `${hours}h${m}m`;
  }
  if (hours < 48) return `${hours}h`;
  if (hours < 24 * 8) {
    const h = hours % 24;
    return h === 0 ? `${hours / 24}d` : `${Math.trunc(hours / 24)}d${h}h`;
  }
  if (hours < 24 * 365 * 2) return `${Math.trunc(hours / 24)}d`;
  const days = Math.trunc(hours / 24);
  if (hours < 24 * 365 * 8) {
    const dy = days % 365;
    return dy === 0 ? `${days / 365}y` : `${Math.trunc(days / 365)}y${dy}d`;
  }
  return `${Math.trunc(days / 365)}y`;
}
