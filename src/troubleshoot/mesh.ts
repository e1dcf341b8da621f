/**
 * `clustermesh troubleshoot` over a running local mesh (its mesh.json): asks every agent
 * what it runs with and what it holds, reads each remote's etcd with the config file the
 * agents use, and turns the comparison into checks. Per cluster: configuration. Per pair
 * (cluster → remote): the config file, the connection chain, then per agent of the
 * cluster its view of the remote: status, sync per resource, consistency with the remote.
 */
import { derivedServiceName } from '../mcsapi/types.js';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { AgentTroubleshootInfo } from '../agent/api.js';
import type { RemoteResource } from '../agent/remote-cluster.js';
import type { ClusterMeshStatus, RemoteClusterStatus } from '../clustermesh/status.js';
import { freshnessAges } from '../clustermesh/freshness.js';
import { loadEtcdConfigFile, type EtcdClientConfig } from '../kvstore/config.js';
import {
  clusterNameProblem,
  decodeClusterService,
  ipNetToCidr,
  remoteClusterLayout,
  syncedCanaryKey,
  type CiliumClusterConfig,
} from '../keyspace/index.js';
import { errorMessage } from '../lib/errors.js';
import type { MeshState } from '../localmesh/mesh-state.js';
import { report, type Check, type TroubleshootReport } from './check.js';
import {
  clusterInfoChecks,
  podCidrChecks,
  sameEverywhereChecks,
  type ClusterFacts,
  type NodeCidr,
} from './config.js';
import { checkConnection } from './connection.js';
import { diffKeys } from './consistency.js';

export interface TroubleshootOptions {
  readonly state: MeshState;
  /** Only these clusters' checks (default: all). */
  readonly clusters?: readonly string[] | undefined;
  /** Only pairs toward these remotes (default: all). */
  readonly remotes?: readonly string[] | undefined;
  readonly timeoutMs?: number | undefined;
}

interface AgentData {
  readonly cluster: string;
  readonly node: string;
  readonly api: string;
  info?: AgentTroubleshootInfo;
  status?: ClusterMeshStatus;
  /** In their kvstore JSON form: a CIDR is Go's `{IP, Mask}`. */
  nodes?: {
    Name: string;
    Cluster: string;
    IPv4AllocCIDR: { IP: string; Mask: string } | string | null;
  }[];
  services?: {
    service: string;
    backends: { address: string; cluster: string }[];
  }[];
  error?: string;
}

const RESOURCES: readonly RemoteResource[] = ['nodes', 'endpoints', 'identities', 'services'];
/** The layout's name of each resource (its canary key). */
const LAYOUT_KEY = {
  nodes: 'nodes',
  endpoints: 'ip',
  identities: 'identities',
  services: 'services',
} as const;

async function getJson<T>(base: string, path: string, timeoutMs: number): Promise<T> {
  const res = await fetch(new URL(path, base), { signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: HTTP ${res.status} ${text.trim().slice(0, 120)}`);
  return JSON.parse(text) as T;
}

async function gatherAgent(a: AgentData, timeoutMs: number): Promise<void> {
  try {
    a.info = await getJson<AgentTroubleshootInfo>(a.api, '/v1/troubleshoot', timeoutMs);
    a.status = await getJson<ClusterMeshStatus>(a.api, '/v1/clustermesh', timeoutMs);
    a.nodes = await getJson<AgentData['nodes']>(a.api, '/v1/nodes', timeoutMs);
    a.services = await getJson<AgentData['services']>(a.api, '/v1/services', timeoutMs);
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    a.error = errorMessage(cause ?? err);
  }
}

function ageText(seconds: number | undefined): string {
  if (seconds === undefined) return 'never';
  return seconds < 1 ? `${Math.round(seconds * 1000)} ms ago` : `${seconds.toFixed(1)} s ago`;
}

function keys(n: number): string {
  return n === 1 ? '1 key' : `${n} keys`;
}

function listText(keys: readonly string[], max = 10): string {
  const shown = keys.slice(0, max).join(', ');
  return keys.length > max ? `${shown}, … (${keys.length - max} more)` : shown;
}

export async function troubleshootMesh(o: TroubleshootOptions): Promise<TroubleshootReport> {
  const timeoutMs = o.timeoutMs ?? 3_000;
  const want = (c: string): boolean =>
    o.clusters === undefined || o.clusters.length === 0 || o.clusters.includes(c);
  const wantRemote = (r: string): boolean =>
    o.remotes === undefined || o.remotes.length === 0 || o.remotes.includes(r);
  const agents: AgentData[] = o.state.clusters.flatMap((c) =>
    c.agents.map((a) => ({ cluster: c.name, node: a.node, api: a.api })),
  );
  await Promise.all(agents.map((a) => gatherAgent(a, timeoutMs)));
  const checks: Check[] = [];

  // Agents answering.
  for (const a of agents.filter((x) => want(x.cluster))) {
    checks.push(
      a.error === undefined
        ? {
            id: 'agent.api',
            cluster: a.cluster,
            node: a.node,
            status: 'ok',
            message: `agent API ${a.api} answers`,
          }
        : {
            id: 'agent.api',
            cluster: a.cluster,
            node: a.node,
            status: 'fail',
            message: `agent API ${a.api} does not answer: ${a.error}`,
            hint: 'Is the agent of this node running? Its checks are skipped',
          },
    );
  }
  const live = agents.filter((a) => a.info !== undefined);

  // Configuration across the mesh.
  const facts: ClusterFacts[] = o.state.clusters.map((c) => {
    const mine = live.filter((a) => a.cluster === c.name);
    return {
      name: c.name,
      id: mine[0]?.info?.cluster.id ?? c.id,
      maxConnectedClusters: new Map(
        mine.map((a) => [a.node, a.info?.['max-connected-clusters'] ?? 0]),
      ),
      policyDefaultLocalCluster: new Map(
        mine.map((a) => [a.node, a.info?.['policy-default-local-cluster'] ?? true]),
      ),
    };
  });
  const cidrs = new Map<string, NodeCidr>();
  for (const a of live) {
    for (const n of a.nodes ?? []) {
      const raw = n.IPv4AllocCIDR;
      const cidr = raw === null || typeof raw === 'string' ? raw : ipNetToCidr(raw.IP, raw.Mask);
      if (cidr === null || cidr === '') continue;
      cidrs.set(`${n.Cluster}/${n.Name}`, { cluster: n.Cluster, node: n.Name, cidr });
    }
  }
  const wanted = (c: Check): boolean => want(c.cluster);
  checks.push(...clusterInfoChecks(facts).filter(wanted));
  checks.push(...sameEverywhereChecks(facts, 'max-connected-clusters').filter(wanted));
  checks.push(...sameEverywhereChecks(facts, 'policy-default-local-cluster').filter(wanted));
  checks.push(
    ...podCidrChecks(
      o.state.clusters.map((c) => c.name),
      [...cidrs.values()],
    ).filter(wanted),
  );

  // Pairs.
  for (const c of o.state.clusters.filter((x) => want(x.name))) {
    const mine = live.filter((a) => a.cluster === c.name);
    const dir = mine[0]?.info?.['clustermesh-config'] ?? null;
    if (mine.length === 0) continue;
    if (dir === null) {
      checks.push({
        id: 'config.clustermesh-config',
        cluster: c.name,
        status: 'fail',
        message: 'the agents run without --clustermesh-config: ClusterMesh is disabled',
        hint: 'Start the agents with --clustermesh-config DIR holding one etcd config per remote cluster',
      });
      continue;
    }
    let files: string[] = [];
    try {
      files = (await readdir(dir)).filter(
        (f) => !f.startsWith('.') && clusterNameProblem(f) === null,
      );
    } catch (err) {
      checks.push({
        id: 'config.clustermesh-config',
        cluster: c.name,
        status: 'fail',
        message: `cannot read ${dir}: ${errorMessage(err)}`,
        hint: 'The --clustermesh-config directory must exist and be readable by the agents',
      });
    }
    const remotes = [
      ...new Set([...o.state.clusters.map((x) => x.name), ...files].filter((r) => r !== c.name)),
    ]
      .filter(wantRemote)
      .sort();
    // IDs every cluster of the mesh runs with: a remote must advertise its own, unused elsewhere.
    const idsInUse = new Map(facts.map((f) => [f.name, f.id]));
    const advertised = new Map<string, number>();
    const pairs: { remote: string; client?: Etcd3; config?: CiliumClusterConfig; ok: boolean }[] =
      [];
    for (const remote of remotes) {
      const pair = await configFileCheck(c.name, remote, dir, mine, checks);
      if (pair === undefined) {
        pairs.push({ remote, ok: false });
        continue;
      }
      if (pair === 'memory') {
        checks.push({
          id: 'connection.kvstore',
          cluster: c.name,
          remote,
          status: 'warn',
          message: `${remote}'s kvstore is an in-process memory store: the connection and consistency with the remote cannot be checked from outside`,
          hint: 'Run the mesh with --kvstore etcd to check connections and consistency',
        });
        pairs.push({ remote, ok: true });
        continue;
      }
      const conn = await checkConnection({
        cluster: c.name,
        remote,
        config: pair,
        maxConnectedClusters: mine[0]?.info?.['max-connected-clusters'] ?? 255,
        timeoutMs,
      });
      checks.push(...conn.checks);
      if (conn.clusterConfig !== undefined) advertised.set(remote, conn.clusterConfig.id);
      pairs.push({ remote, client: conn.client, config: conn.clusterConfig, ok: conn.ok });
    }
    try {
      for (const p of pairs) {
        if (!p.ok) continue;
        if (p.config !== undefined) {
          const id = p.config.id;
          // A member of the mesh keeps its ID against clusters known only from a config
          // file; such a cluster must not take an ID any other one uses.
          const member = idsInUse.has(p.remote);
          const others = [
            ...[...idsInUse].filter(([n, i]) => n !== p.remote && i === id).map(([n]) => n),
            ...(member
              ? []
              : [...advertised]
                  .filter(([n, i]) => n !== p.remote && i === id && !idsInUse.has(n))
                  .map(([n]) => n)),
          ];
          const own = idsInUse.get(p.remote);
          if (others.length > 0 || (own !== undefined && own !== id)) {
            checks.push({
              id: 'config.cluster-id-unique',
              cluster: c.name,
              remote: p.remote,
              status: 'fail',
              message:
                others.length > 0
                  ? `${p.remote} advertises cluster ID ${id}, which ${others.join(', ')} ${others.length > 1 ? 'use' : 'uses'}`
                  : `${p.remote} advertises cluster ID ${id} but its agents run with ${own ?? '?'}`,
              hint: 'Every cluster of a mesh needs its own cluster ID: agents refuse a second cluster with an ID already connected',
              log: 'cannot reserve the cluster ID of the remote cluster',
              details: { id, others },
            });
            continue;
          }
          checks.push({
            id: 'config.cluster-id-unique',
            cluster: c.name,
            remote: p.remote,
            status: 'ok',
            message: `${p.remote} advertises cluster ID ${id}, used by no other cluster`,
          });
        }
        for (const a of mine) {
          checks.push(
            ...(await agentPairChecks(c.name, p.remote, a, p.client, p.config, timeoutMs)),
          );
        }
      }
    } finally {
      for (const p of pairs) p.client?.close();
    }
  }
  return report(checks);
}

/** The remote's config file: present, valid, and picked up by every agent of the cluster. */
async function configFileCheck(
  cluster: string,
  remote: string,
  dir: string,
  agents: readonly AgentData[],
  checks: Check[],
): Promise<EtcdClientConfig | 'memory' | undefined> {
  const path = join(dir, remote);
  const base = { id: 'config.remote-file', cluster, remote };
  const log = 'remote cluster added';
  let cfg: EtcdClientConfig | 'memory';
  try {
    const text = await readFile(path, 'utf8');
    cfg = /^\s*-\s*memory:\/\//m.test(text) ? 'memory' : await loadEtcdConfigFile(path);
  } catch (err) {
    const missing =
      (err as NodeJS.ErrnoException).code === 'ENOENT' || /not found/.test(errorMessage(err));
    checks.push({
      ...base,
      status: 'fail',
      message: missing
        ? `no configuration for ${remote}: ${path} not found (the remote's checks are skipped)`
        : `${path}: ${errorMessage(err)}`,
      hint: missing
        ? `Write ${remote}'s etcd config (endpoints, trusted-ca-file, cert-file, key-file) to ${path}; agents pick it up within seconds (Cilium: the cilium-clustermesh secret)`
        : 'Fix the file: it must be an etcd config with endpoints (http:// or https://)',
      log,
    });
    return undefined;
  }
  const missingIn = agents.filter((a) => a.info?.remotes[remote] === undefined).map((a) => a.node);
  const ignored = agents.flatMap((a) =>
    (a.status?.['ignored-configs'] ?? []).filter((i) => i.name === remote).map((i) => i.reason),
  );
  if (missingIn.length > 0) {
    checks.push({
      ...base,
      status: 'fail',
      message: `${path} is not picked up by ${missingIn.join(', ')}${ignored.length > 0 ? ` (${ignored[0] ?? ''})` : ''}`,
      hint: 'Agents rescan the directory every few seconds: check that the file name is the remote cluster name and the agents watch this directory',
      log,
    });
    return undefined;
  }
  const endpoints = cfg === 'memory' ? 'memory store' : cfg.endpoints.join(', ');
  checks.push({
    ...base,
    status: 'ok',
    message: `${path} (${endpoints}) picked up by ${agents.length}/${agents.length} agents`,
  });
  return cfg;
}

async function listKeys(client: Etcd3, prefix: string, timeoutMs: number): Promise<string[]> {
  const deadline = new Date(Date.now() + timeoutMs);
  return (await client.getAll().prefix(`${prefix}/`).options({ deadline }).keys()).sort();
}

/**
 * Derived Service (`ns/derived-…`) → the `ns/name` it imports, from the remote's
 * ServiceExports next to its services (state or KVStoreMesh cache alike). Labels only:
 * a remote that cannot be listed gets none.
 */
async function mcsNames(
  client: Etcd3,
  servicesPrefix: string,
  timeoutMs: number,
): Promise<Map<string, string>> {
  const prefix = servicesPrefix.replace('/services/v1/', '/serviceexports/v1/');
  const out = new Map<string, string>();
  if (prefix === servicesPrefix) return out;
  try {
    for (const key of await listKeys(client, prefix, timeoutMs)) {
      const [ns, name] = key.slice(prefix.length + 1).split('/');
      if (ns === undefined || name === undefined) continue;
      out.set(`${ns}/${derivedServiceName(ns, name)}`, `${ns}/${name}`);
    }
  } catch {
    // Names only decorate the report; the services check itself does not need them.
  }
  return out;
}

async function agentPairChecks(
  cluster: string,
  remote: string,
  a: AgentData,
  client: Etcd3 | undefined,
  config: CiliumClusterConfig | undefined,
  timeoutMs: number,
): Promise<Check[]> {
  const out: Check[] = [];
  const base = { cluster, remote, node: a.node };
  const st: RemoteClusterStatus | undefined = a.status?.clusters.find((x) => x.name === remote);
  const info1 = a.info;
  if (st === undefined || info1 === undefined) return out;
  const counts = `${st['num-nodes']} nodes, ${st['num-endpoints']} endpoints, ${st['num-identities']} identities, ${st['num-shared-services']} services`;
  if (!st.connected || !st.ready) {
    out.push({
      id: 'remote.status',
      ...base,
      status: 'fail',
      message: `${st.connected ? 'connected' : 'not connected'}, ${st.ready ? 'ready' : 'not ready'}: ${st.status} (${st['num-failures']} failures)`,
      hint: `The agent cannot use ${remote} right now; the checks above show where the connection breaks`,
      log: 'connection to remote cluster established',
    });
    return out;
  }
  out.push({
    id: 'remote.status',
    ...base,
    status: 'ok',
    message: `connected and ready: ${counts}`,
  });

  const now = Date.now();
  const ages = freshnessAges(st.freshness ?? {}, now);
  const heartbeat = `last heartbeat ${ageText(ages.heartbeatAgeSeconds)}`;
  // Each resource's own last change: a remote whose nodes churn while its services went
  // quiet shows it here (the connection's freshness covers every resource at once).
  const fresh = (at: string | undefined): string =>
    `last event ${ageText(at === undefined ? undefined : (now - Date.parse(at)) / 1000)}, ${heartbeat}`;
  const resources = info1.remotes[remote];
  if (resources === undefined) return out;
  const layout = remoteClusterLayout(remote, config?.capabilities.cached ?? false);

  // Sync per resource.
  for (const r of RESOURCES) {
    const v = resources[r];
    let canary = 'canaries not used';
    let canaryMissing = false;
    if (client !== undefined && config?.capabilities.syncedCanaries === true) {
      const key = syncedCanaryKey(remote, layout[LAYOUT_KEY[r]].syncedKey);
      try {
        const present =
          (await client
            .get(key)
            .options({ deadline: new Date(Date.now() + timeoutMs) })
            .string()) !== null;
        canaryMissing = !present;
        canary = present ? 'canary present' : `canary ${key} missing`;
      } catch (err) {
        canary = `canary unreadable: ${errorMessage(err)}`;
      }
    }
    const took = v.syncDurationMs === undefined ? '' : ` in ${v.syncDurationMs} ms`;
    out.push(
      v.synced
        ? {
            id: `sync.${r}`,
            ...base,
            status: 'ok',
            message: `synced${took}; ${canary}; ${fresh(v.lastEventAt)}`,
          }
        : {
            id: `sync.${r}`,
            ...base,
            status: 'fail',
            message: `not synced; ${canary}`,
            hint: canaryMissing
              ? `${remote} has not finished its initial sync of ${r} (its clustermesh-apiserver writes the canary when done)`
              : `The agent's watch of ${v.prefix} has not completed its listing`,
          },
    );
  }

  // Consistency per resource, between two snapshots of the agent's view.
  if (client === undefined) return out;
  const remoteKeys = new Map<RemoteResource, string[]>();
  let serviceValues: Map<string, string> | undefined;
  try {
    for (const r of RESOURCES)
      remoteKeys.set(r, await listKeys(client, resources[r].prefix, timeoutMs));
    const deadline = new Date(Date.now() + timeoutMs);
    serviceValues = new Map(
      Object.entries(
        await client
          .getAll()
          .prefix(`${resources.services.prefix}/`)
          .options({ deadline })
          .strings(),
      ),
    );
  } catch (err) {
    out.push({
      id: 'consistency.read',
      ...base,
      status: 'fail',
      message: `cannot list ${remote}'s keys: ${errorMessage(err)}`,
      hint: `The remote user needs read access to ${remote}'s cilium/ prefix`,
    });
    return out;
  }
  let info2: AgentTroubleshootInfo;
  try {
    info2 = await getJson<AgentTroubleshootInfo>(a.api, '/v1/troubleshoot', timeoutMs);
  } catch {
    info2 = info1;
  }
  for (const r of RESOURCES) {
    const theirs = remoteKeys.get(r) ?? [];
    const d = diffKeys(
      theirs,
      info1.remotes[remote]?.[r].keys ?? [],
      info2.remotes[remote]?.[r].keys ?? [],
    );
    const held = info2.remotes[remote]?.[r].keys.length ?? 0;
    if (d.stale.length === 0 && d.missing.length === 0) {
      out.push({
        id: `consistency.${r}`,
        ...base,
        status: 'ok',
        message: `${keys(theirs.length)} in ${remote}'s etcd, ${held} in the agent's view, none stale or missing`,
      });
      continue;
    }
    const parts = [
      ...(d.stale.length > 0
        ? [`stale (gone from ${remote}, still held): ${listText(d.stale)}`]
        : []),
      ...(d.missing.length > 0 ? [`missing (in ${remote}, not held): ${listText(d.missing)}`] : []),
    ];
    out.push({
      id: `consistency.${r}`,
      ...base,
      status: 'fail',
      message: `${keys(theirs.length)} in ${remote}'s etcd, ${held} in the agent's view; ${parts.join('; ')}`,
      hint: `The agent's view of ${remote} diverged (lost watch events, or entries it rejected): a reconnect re-lists and repairs it; rejected entries are counted in the agent's status`,
      log: 'rejected invalid entry',
      details: { stale: d.stale, missing: d.missing, remote: theirs.length, agent: held },
    });
  }

  // Remote pod IPs the ipcache does not know: policy would see them as world.
  const ipPrefix = `${resources.endpoints.prefix}/`;
  const remoteIPs = (remoteKeys.get('endpoints') ?? []).map((k) => k.slice(ipPrefix.length));
  const known = (info: AgentTroubleshootInfo): Set<string> =>
    new Set(
      info.ipcache.map((e) =>
        e.cidr.endsWith('/32') || e.cidr.endsWith('/128') ? e.cidr.replace(/\/\d+$/, '') : e.cidr,
      ),
    );
  const k1 = known(info1);
  const k2 = known(info2);
  const notInIpcache = remoteIPs.filter((ip) => !k1.has(ip) && !k2.has(ip));
  out.push(
    notInIpcache.length === 0
      ? {
          id: 'consistency.ipcache',
          ...base,
          status: 'ok',
          message: `all ${remoteIPs.length} ${remote} endpoint IPs are in the ipcache`,
        }
      : {
          id: 'consistency.ipcache',
          ...base,
          status: 'fail',
          message: `${notInIpcache.length} of ${remoteIPs.length} ${remote} endpoint IPs missing from the ipcache (policy sees them as world): ${listText(notInIpcache)}`,
          hint: `Traffic from these pods of ${remote} is classified reserved:world and dropped by policies allowing ${remote}; the agent's ipcache lost them`,
          details: { missing: notInIpcache },
        },
  );

  // Global-service backends per cluster: the remote's shared services against the agent's.
  // MCS-API derived Services are global services too (every cluster names them alike);
  // the remote's ServiceExports say which exported name each stands for.
  const mcs = await mcsNames(client, resources.services.prefix, timeoutMs);
  const label = (ns: string, svcName: string): string => {
    const exported = mcs.get(`${ns}/${svcName}`);
    return `${ns}/${svcName}${exported === undefined ? '' : ` (MCS-API ${exported})`}`;
  };
  const mismatches: string[] = [];
  const summary: string[] = [];
  const svcPrefix = `${resources.services.prefix}/`;
  for (const [key, value] of serviceValues) {
    let svc;
    try {
      svc = decodeClusterService(key.slice(svcPrefix.length - remote.length - 1), value);
    } catch {
      continue;
    }
    if (!svc.shared) continue;
    const name = `${svc.namespace}/${svc.name}`;
    const shown = label(svc.namespace, svc.name);
    const want = new Set(Object.keys(svc.backends));
    const fe = (a.services ?? []).filter((s) => s.service === name);
    const have = new Set(
      fe.flatMap((s) =>
        s.backends
          .filter((b) => b.cluster === remote)
          .map((b) => b.address.replace(/:\d+(\/\w+)?$/, '')),
      ),
    );
    const lacking = [...want].filter((ip) => !have.has(ip));
    const extra = [...have].filter((ip) => !want.has(ip));
    if (fe.length === 0)
      mismatches.push(`${shown}: not a service of the agent (no local Service of that name?)`);
    else if (lacking.length > 0 || extra.length > 0) {
      mismatches.push(
        `${shown}: ${lacking.length > 0 ? `missing backends ${lacking.join(', ')}` : ''}${lacking.length > 0 && extra.length > 0 ? '; ' : ''}${extra.length > 0 ? `stale backends ${extra.join(', ')}` : ''}`,
      );
    } else summary.push(`${shown}: ${want.size} backends from ${remote}`);
  }
  out.push(
    mismatches.length === 0
      ? {
          id: 'consistency.global-services',
          ...base,
          status: 'ok',
          message: summary.length === 0 ? `${remote} shares no global service` : summary.join('; '),
        }
      : {
          id: 'consistency.global-services',
          ...base,
          status: 'fail',
          message: mismatches.join('; '),
          hint: 'A global service needs a Service of the same name and namespace in every cluster, annotated service.cilium.io/global: "true"',
          details: { mismatches },
        },
  );
  return out;
}
