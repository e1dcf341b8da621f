import { clusterCertFiles, readCertificateInfo, USER_ROLES, clusterUsers } from '../certs/index.js';
import { errorMessage } from '../lib/errors.js';
import type { ClusterRecord } from './cluster-record.js';
import { configuredRemotes } from './mesh-setup.js';

/**
 * `clustermesh mesh status`: `cilium clustermesh status` for every cluster of a state dir.
 * Like the Cilium CLI, it asks every agent for its ClusterMesh status and aggregates per
 * cluster: how many agents are connected to how many remotes, and why one is not.
 */

interface AgentRemote {
  readonly name: string;
  readonly connected: boolean;
  readonly ready: boolean;
  readonly status: string;
}

export interface AgentView {
  readonly node: string;
  /** Undefined when the agent did not answer. */
  readonly remotes: readonly AgentRemote[] | undefined;
  readonly globalServices: number;
  readonly error?: string | undefined;
}

export interface CertificateExpiry {
  readonly file: string;
  readonly subject: string;
  readonly notAfter: Date;
  readonly daysLeft: number;
}

export interface ClusterView {
  readonly record: ClusterRecord;
  /** Remote clusters in its clustermesh config (KVStoreMesh's when it runs KVStoreMesh). */
  readonly configured: readonly string[];
  readonly agents: readonly AgentView[];
  readonly certificates: readonly CertificateExpiry[];
}

/** Certificates expiring sooner than this are called out (Cilium's certgen renews at 30 days). */
export const EXPIRY_WARNING_DAYS = 30;

async function agentView(node: string, api: string): Promise<AgentView> {
  try {
    const res = await fetch(new URL('/v1/clustermesh', api), { signal: AbortSignal.timeout(3000) });
    const body = (await res.json()) as {
      clusters?: { name: string; connected?: boolean; ready?: boolean; status?: string }[];
      'num-global-services'?: number;
    };
    return {
      node,
      remotes: (body.clusters ?? []).map((c) => ({
        name: c.name,
        connected: c.connected === true,
        ready: c.ready === true,
        status: c.status ?? '',
      })),
      globalServices: body['num-global-services'] ?? 0,
    };
  } catch (err) {
    return { node, remotes: undefined, globalServices: 0, error: errorMessage(err) };
  }
}

async function certificates(rec: ClusterRecord): Promise<CertificateExpiry[]> {
  if (!rec.tls || rec.etcdDir === undefined) return [];
  const files = clusterCertFiles(rec.etcdDir, rec.name);
  const users = clusterUsers(rec.name);
  const list: [string, string][] = [
    ['ca.crt', files.caFile],
    ['server.crt', files.server.certFile],
    ...USER_ROLES.map((r): [string, string] => [`${users[r]}.crt`, files.clients[r].certFile]),
  ];
  const out: CertificateExpiry[] = [];
  for (const [label, path] of list) {
    const info = await readCertificateInfo(path).catch(() => undefined);
    if (info === undefined) continue;
    out.push({
      file: label,
      subject: info.commonName,
      notAfter: info.notAfter,
      daysLeft: Math.floor((info.notAfter.getTime() - Date.now()) / 86_400_000),
    });
  }
  return out;
}

export async function collectClusterView(rec: ClusterRecord): Promise<ClusterView> {
  const [configured, agents, certs] = await Promise.all([
    configuredRemotes(rec),
    Promise.all(rec.agents.map((a) => agentView(a.node, a.api))),
    certificates(rec),
  ]);
  return { record: rec, configured, agents, certificates: certs };
}

/** Every agent ready towards every configured remote (and there is at least one). */
export function clusterReady(v: ClusterView): boolean {
  if (!v.record.enabled || v.configured.length === 0) return false;
  return v.agents.every((a) =>
    v.configured.every((r) => a.remotes?.find((x) => x.name === r)?.ready === true),
  );
}

/** A one-line hint for a connection failure, as the Cilium CLI's 💡 lines. */
export function hintFor(status: string, remote: string): string | undefined {
  const s = status.toLowerCase();
  if (/expired/.test(s)) {
    return `A certificate has expired: renew it with "clustermesh certs rotate --cluster ${remote}" (then connect again).`;
  }
  if (
    /not trusted by the configured ca|self[- ]signed|unable to verify|unable to get local issuer/.test(
      s,
    )
  ) {
    return `The CA in the config does not match ${remote}'s server certificate: the clusters must trust each other's CA; run "clustermesh mesh connect" again to copy the right one.`;
  }
  if (
    /unknown ca|bad certificate|certificate required|rejected the client certificate|certificate unknown/.test(
      s,
    )
  ) {
    return `${remote}'s etcd rejected the client certificate: it must be signed by ${remote}'s CA and name an etcd user (CN); run "clustermesh mesh connect" again to get a valid one.`;
  }
  if (/key-file|cert-file|trusted-ca-file/.test(s)) {
    return `The client credentials of ${remote} are incomplete (certificate, key and CA must all be there): run "clustermesh mesh connect" again.`;
  }
  if (/permission denied/.test(s)) {
    return `etcd refused the user: remote clusters read as "remote", which may only read what a remote reads.`;
  }
  if (/name resolution|enotfound|getaddrinfo|dns/.test(s)) {
    return `${remote}.mesh.cilium.io does not resolve: map it in hostaliases.yaml of the clustermesh config directory (the seeds' hostAliases).`;
  }
  if (/unreachable|econnrefused|unavailable|deadline/.test(s)) {
    return `Verify that ${remote}'s etcd is running and reachable at the address its config names.`;
  }
  return undefined;
}

function stats(values: readonly number[]): string {
  if (values.length === 0) return '[min:0 / avg:0.0 / max:0]';
  const min = Math.min(...values);
  const max = Math.max(...values);
  const avg = values.reduce((a, b) => a + b, 0) / values.length;
  return `[min:${min} / avg:${avg.toFixed(1)} / max:${max}]`;
}

function dateOnly(d: Date): string {
  return d.toISOString().slice(0, 10);
}

/** One cluster's block, in the shape of `cilium clustermesh status`. */
export function formatClusterView(v: ClusterView, opts: { verbose?: boolean } = {}): string {
  const r = v.record;
  const lines: string[] = [`Cluster ${r.name} (ID ${r.id}):`];
  const where =
    r.etcdIP === undefined ? r.kvstore : `${r.etcdIP}:${new URL(r.kvstore).port || '2379'}`;
  lines.push('✅ Cluster access information is available:', `  - ${where} (${r.kvstore})`);
  lines.push(
    r.tls
      ? '🔒 etcd: TLS, client certificates, users root/admin/remote/local/externalworkload'
      : '⚠️  etcd: plaintext, no users (up --insecure)',
  );
  lines.push(`ℹ️  KVStoreMesh is ${r.kvstoremeshConfigDir === undefined ? 'disabled' : 'enabled'}`);
  if (!r.enabled) {
    lines.push(
      `⚠️  Cluster not enabled for clustermesh: run "clustermesh mesh enable --cluster ${r.name}"`,
    );
  } else if (v.configured.length === 0) {
    lines.push(
      `⚠️  Cluster not connected to any cluster: run "clustermesh mesh connect --cluster ${r.name} --destination-cluster <other>"`,
    );
  }
  const total = v.agents.length;
  const connectedCounts = v.agents.map(
    (a) => v.configured.filter((c) => a.remotes?.find((x) => x.name === c)?.ready === true).length,
  );
  const all = connectedCounts.filter((n) => n === v.configured.length).length;
  if (v.configured.length > 0) {
    lines.push(
      all === total
        ? `✅ All ${total} nodes are connected to all clusters ${stats(connectedCounts)}`
        : `⚠️  ${total - all}/${total} nodes are not connected to all clusters ${stats(connectedCounts)}`,
    );
    lines.push('🔌 Cluster Connections:');
    for (const c of v.configured) {
      const configured = v.agents.filter((a) => a.remotes?.some((x) => x.name === c)).length;
      const connected = v.agents.filter(
        (a) => a.remotes?.find((x) => x.name === c)?.ready === true,
      ).length;
      lines.push(`  - ${c}: ${configured}/${total} configured, ${connected}/${total} connected`);
    }
    lines.push(`🔀 Global services: ${stats(v.agents.map((a) => a.globalServices))}`);
  }
  for (const a of v.agents) {
    if (a.remotes === undefined) {
      lines.push(`❌ ${r.name}/${a.node}: agent did not answer: ${a.error ?? 'unknown error'}`);
      continue;
    }
    for (const c of v.configured) {
      const st = a.remotes.find((x) => x.name === c);
      if (st?.ready === true) continue;
      const why = st === undefined ? 'not configured yet' : st.status.replace(/\s+/g, ' ').trim();
      lines.push(`❌ ${r.name}/${a.node} is not connected to cluster ${c}: ${why}`);
      const hint = st === undefined ? undefined : hintFor(why, c);
      if (hint !== undefined) lines.push(`💡 ${hint}`);
    }
  }
  for (const cert of v.certificates) {
    if (cert.daysLeft < EXPIRY_WARNING_DAYS) {
      lines.push(
        cert.daysLeft < 0
          ? `❌ certificate ${cert.file} of ${r.name} expired on ${dateOnly(cert.notAfter)}`
          : `⚠️  certificate ${cert.file} of ${r.name} expires in ${cert.daysLeft} days (${dateOnly(cert.notAfter)})`,
      );
      lines.push(`💡 Renew with "clustermesh certs rotate --cluster ${r.name}".`);
    }
  }
  if (opts.verbose === true && v.certificates.length > 0) {
    lines.push('🔑 Certificates:');
    for (const cert of v.certificates) {
      lines.push(
        `  - ${cert.file.padEnd(28)} CN=${cert.subject.padEnd(40)} expires ${dateOnly(cert.notAfter)} (${cert.daysLeft} days)`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
