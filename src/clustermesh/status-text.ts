import { freshnessAges } from './freshness.js';
import { CERT_EXPIRY_WARNING_DAYS, daysLeft } from './remote-certs.js';
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
 * The ClusterMesh part of the status text in the reference's 1.17+ format
 * (`pkg/client/client.go`, `kvstoremesh-dbg status`), as lines without trailing
 * newlines. The header's tab is rendered as the three spaces a tabwriter pads it to:
 *
 *     ClusterMesh:   1/2 remote clusters ready, 3 global-services
 *        c2: not-ready, 0 nodes, 0 endpoints, 0 identities, 0 services, 0 MCS-API service exports, 2 reconnections (last: 5s ago)
 *        └  etcd: 1/1 connected, …
 *        └  remote configuration: expected=true, retrieved=false
 *        └  synchronization status: nodes=false, endpoints=false, identities=false, services=false
 *
 * Agent (`cilium-dbg status`): clusters that are not ready, or all with `verbose`.
 * KVStoreMesh: every cluster, ready ones as their first line only unless `verbose`.
 */
export function formatClusterMeshStatus(
  status: ClusterMeshStatus,
  opts: StatusTextOptions = {},
): string[] {
  const ready = status.clusters.filter((c) => c.ready).length;
  const total = status.clusters.length;
  const kvstoremesh = opts.kind === 'kvstoremesh';
  const lines = kvstoremesh
    ? [`KVStoreMesh:   ${ready}/${total} remote clusters ready`]
    : [
        `ClusterMesh:   ${ready}/${total} remote clusters ready, ${status['num-global-services'] ?? 0} global-services`,
      ];
  const now = opts.now ?? new Date();
  const verbose = opts.verbose === true;
  for (const c of status.clusters) {
    if (verbose) {
      lines.push(
        ...formatRemoteCluster(c, now),
        ...formatFreshness(c, now),
        ...formatCertificates(c, now),
      );
    } else if (!c.ready) lines.push(...formatRemoteCluster(c, now));
    else if (kvstoremesh) lines.push(...formatRemoteCluster(c, now).slice(0, 1));
    // Shown with or without --verbose: an expiring certificate is about to cut the cluster off.
    lines.push(...formatExpiryWarnings(c, now));
  }
  return lines;
}

/**
 * `--verbose` only, for a remote reached over TLS: its client certificate and CA(s) with
 * their expiry dates.
 *
 *     └  certificates: cert-file CN=remote expires 2027-12-05 (364 days), trusted-ca-file CN=clustermesh-c2-ca expires 2027-12-05 (364 days)
 */
export function formatCertificates(c: RemoteClusterStatus, now: Date = new Date()): string[] {
  const certs = c.certificates ?? [];
  if (certs.length === 0) return [];
  return [
    `   └  certificates: ${certs
      .map(
        (x) =>
          `${x.file} CN=${x.subject} expires ${x['not-after'].slice(0, 10)} (${daysLeft(x['not-after'], now)} days)`,
      )
      .join(', ')}`,
  ];
}

/** A line per certificate of `c` that expires within 30 days or has expired, with the fix. */
export function formatExpiryWarnings(c: RemoteClusterStatus, now: Date = new Date()): string[] {
  const out: string[] = [];
  for (const x of c.certificates ?? []) {
    const days = daysLeft(x['not-after'], now);
    if (days >= CERT_EXPIRY_WARNING_DAYS) continue;
    const what = `${c.name}: certificate ${x.file} (CN=${x.subject})`;
    const date = x['not-after'].slice(0, 10);
    out.push(
      Date.parse(x['not-after']) <= now.getTime()
        ? `   ❌  ${what} expired on ${date}: renew with "clustermesh certs rotate --cluster ${c.name}"`
        : `   ⚠️  ${what} expires in ${days} days (${date}): renew with "clustermesh certs rotate --cluster ${c.name}"`,
    );
  }
  return out;
}

/**
 * `--verbose` only, after the reference's lines, and only from daemons that report it
 * (so the reference's own output is printed unchanged):
 *
 *     └  freshness: last heartbeat 400ms ago, last event 12.3s ago, propagation delay ≤ 1.2s
 */
export function formatFreshness(c: RemoteClusterStatus, now: Date = new Date()): string[] {
  if (c.freshness === undefined) return [];
  const a = freshnessAges(c.freshness, now.getTime());
  const ago = (s: number | undefined): string =>
    s === undefined ? 'never' : `${shortDuration(s)} ago`;
  const delay =
    a.propagationDelaySeconds === undefined
      ? 'unknown'
      : `≤ ${shortDuration(a.propagationDelaySeconds)}`;
  return [
    `   └  freshness: last heartbeat ${ago(a.heartbeatAgeSeconds)}, ` +
      `last event ${ago(a.lastEventAgeSeconds)}, propagation delay ${delay}`,
  ];
}

/**
 * Sub-second spans matter here (a heartbeat 400ms old is fresh, 40s is not), which
 * goDuration's whole seconds would hide: `400ms`, `12.3s`, `1m30s`, `2h5m0s`.
 */
export function shortDuration(seconds: number): string {
  const ms = Math.round(seconds * 1000);
  if (ms < 1000) return `${ms}ms`;
  if (ms < 60_000) return `${(Math.floor(ms / 100) / 10).toFixed(1).replace(/\.0$/, '')}s`;
  return goDuration(seconds * 1000);
}

/** The per-cluster block of the status text. */
export function formatRemoteCluster(c: RemoteClusterStatus, now: Date = new Date()): string[] {
  const last =
    c['last-failure'] === undefined
      ? 'never'
      : `${goDuration(now.getTime() - Date.parse(c['last-failure']))} ago`;
  const lines = [
    `   ${c.name}: ${c.ready ? 'ready' : 'not-ready'}, ${c['num-nodes']} nodes, ` +
      `${c['num-endpoints']} endpoints, ${c['num-identities']} identities, ` +
      `${c['num-shared-services']} services, ${c['num-service-exports'] ?? 0} MCS-API service exports, ` +
      `${c['num-failures']} reconnections (last: ${last})`,
    `   └  ${c.status}`,
  ];
  const cfg = c.config;
  if (cfg === undefined) {
    lines.push('   └  remote configuration: expected=unknown, retrieved=unknown');
  } else {
    let text = `   └  remote configuration: expected=${cfg.required}, retrieved=${cfg.retrieved}`;
    if (cfg.retrieved) {
      const se = cfg['service-exports-enabled'];
      text +=
        `, cluster-id=${cfg['cluster-id']}, kvstoremesh=${cfg.kvstoremesh}, sync-canaries=${cfg['sync-canaries']}` +
        `, service-exports=${se === undefined ? 'unsupported' : se ? 'enabled' : 'disabled'}`;
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

/**
 * Go's `time.Duration.String()` of a span truncated to whole seconds, which the
 * reference prints for the last failure: `0s`, `5s`, `1m30s`, `2m0s`, `1h0m0s`.
 */
export function goDuration(ms: number): string {
  const total = Math.trunc(ms / 1000);
  if (total === 0) return '0s';
  const sign = total < 0 ? '-' : '';
  const abs = Math.abs(total);
  const h = Math.trunc(abs / 3600);
  const m = Math.trunc((abs % 3600) / 60);
  const sec = abs % 60;
  if (h > 0) return `${sign}${h}h${m}m${sec}s`;
  if (m > 0) return `${sign}${m}m${sec}s`;
  return `${sign}${sec}s`;
}
