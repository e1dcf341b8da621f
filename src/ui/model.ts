/**
 * The browser view's data model: what the UI server sends (a snapshot, then flows as they
 * come) and the pure functions that derive it from what the control and agent APIs answer.
 * No Node or DOM imports: the server and the page (web/) share this module.
 */

/** The subset of a datapath flow (`/v1/flows`) the page uses. */
export interface UiFlowEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly cluster?: string | undefined;
  readonly namespace?: string | undefined;
  readonly pod?: string | undefined;
  readonly identity?: number | undefined;
  readonly labels?: readonly string[] | undefined;
}

export interface UiFlowPolicy {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export interface UiFlow {
  readonly seq: number;
  readonly time: string;
  readonly node: string;
  readonly verdict: 'FORWARDED' | 'DROPPED';
  readonly dropReason?: string | undefined;
  readonly error?: string | undefined;
  readonly protocol: string;
  readonly source: UiFlowEndpoint;
  readonly destination: UiFlowEndpoint;
  readonly service?: { readonly namespace: string; readonly name: string } | undefined;
  readonly backend?: UiFlowEndpoint | undefined;
  readonly direction: 'egress' | 'ingress';
  readonly type?: string | undefined;
  readonly egress_allowed_by?: readonly UiFlowPolicy[] | undefined;
  readonly ingress_allowed_by?: readonly UiFlowPolicy[] | undefined;
  readonly egress_denied_by?: readonly UiFlowPolicy[] | undefined;
  readonly ingress_denied_by?: readonly UiFlowPolicy[] | undefined;
}

/** A flow as the page keeps it: which cluster's agent saw it. */
export interface UiFlowRow extends UiFlow {
  readonly cluster: string;
  /** `<cluster>/<node>#<seq>`: unique across the mesh. */
  readonly id: string;
}

export interface UiNode {
  readonly name: string;
  readonly ip: string;
  readonly api: string;
  /** Whether its agent API answered the last poll. */
  readonly up: boolean;
  readonly error?: string | undefined;
}

export interface UiCluster {
  readonly name: string;
  readonly id: number;
  readonly nodes: readonly UiNode[];
}

export type ConnectionState = 'ready' | 'connecting' | 'failing' | 'unknown';

export interface UiSynced {
  readonly nodes: boolean;
  readonly endpoints: boolean;
  readonly identities: boolean;
  readonly services: boolean;
}

/** How cluster `from`'s agents see remote cluster `to` (the worst of its agents). */
export interface UiConnection {
  readonly from: string;
  readonly to: string;
  readonly state: ConnectionState;
  /** Agents of `from` that reported; `ready` counts those that see `to` ready. */
  readonly agents: number;
  readonly ready: number;
  /** Age of the newest heartbeat any of them read, at snapshot time; null: none seen. */
  readonly heartbeatAgeMs: number | null;
  readonly synced: UiSynced;
  /** "synced" or "syncing: nodes, services". */
  readonly syncText: string;
  /** Why it is not ready (the agents' status line or last failure); empty when ready. */
  readonly reason: string;
  readonly numNodes: number;
  readonly numEndpoints: number;
  readonly numServices: number;
}

export interface UiBackend {
  readonly address: string;
  readonly cluster: string;
  readonly health: string;
  readonly state: string;
  readonly preferred: boolean;
}

export interface UiServiceView {
  /** The cluster whose first agent's service table this is. */
  readonly cluster: string;
  readonly frontend: string;
  readonly affinity: string;
  readonly backends: readonly UiBackend[];
}

/** A Service shared across clusters: global (annotation) or derived from an MCS ServiceImport. */
export interface UiGlobalService {
  readonly namespace: string;
  readonly name: string;
  readonly kind: 'global' | 'mcs';
  readonly views: readonly UiServiceView[];
}

export interface UiWorkload {
  readonly cluster: string;
  readonly namespace: string;
  readonly name: string;
  readonly pods: readonly { readonly name: string; readonly node: string; readonly ip: string }[];
}

export type EdgeVerdict = 'forwarded' | 'dropped' | 'no-backend';

export interface UiEdge {
  /** `<from key>-><to key>`. */
  readonly id: string;
  readonly from: string;
  readonly to: string;
  /** The verdict of the latest flow on the edge. */
  readonly verdict: EdgeVerdict;
  readonly counts: Readonly<Record<EdgeVerdict, number>>;
  /** Connections per second over the window (one per egress flow). */
  readonly rate: number;
  readonly lastSeen: string;
}

export interface UiPolicy {
  readonly cluster: string;
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export interface UiMeshInfo {
  /** `absent`: no mesh.json yet (starting, or no mesh runs). */
  readonly state: 'running' | 'absent';
  readonly message: string;
  readonly kvstore?: string | undefined;
  readonly tls?: boolean | undefined;
  readonly kvstoremesh?: boolean | undefined;
}

export interface UiSnapshot {
  readonly time: string;
  readonly mesh: UiMeshInfo;
  readonly clusters: readonly UiCluster[];
  readonly connections: readonly UiConnection[];
  readonly services: readonly UiGlobalService[];
  readonly workloads: readonly UiWorkload[];
  readonly edges: readonly UiEdge[];
  readonly policies: readonly UiPolicy[];
  /** The service map's window (seconds). */
  readonly windowSec: number;
}

// ---------------------------------------------------------------------------------------
// Workloads

/** The Deployment a pod belongs to, from its name (`<deployment>-<hash>-<suffix>`). */
export function workloadOfPod(pod: string): string {
  const m = /^(.+)-[a-z0-9]{6,10}-[a-z0-9]{5}$/.exec(pod);
  return m?.[1] ?? pod;
}

/** `cluster/namespace/workload`, the key of a service-map node. */
export function workloadKey(cluster: string, namespace: string, name: string): string {
  return `${cluster}/${namespace}/${name}`;
}

/**
 * The service-map node a flow endpoint stands for: its workload when it is a pod, the
 * reserved entity (`world`, `host`…) or its IP otherwise.
 */
export function endpointKey(e: UiFlowEndpoint, fallbackCluster: string): string {
  if (e.pod !== undefined) {
    return workloadKey(
      e.cluster ?? fallbackCluster,
      e.namespace ?? 'default',
      workloadOfPod(e.pod),
    );
  }
  const reserved = e.labels?.find((l) => l.startsWith('reserved:'));
  if (reserved !== undefined) return `reserved/${reserved.slice('reserved:'.length)}`;
  return `ip/${e.ip}`;
}

/** The policy-drop reasons; every other drop counts as "no backend" (nothing answered). */
export function edgeVerdictOf(f: Pick<UiFlow, 'verdict' | 'dropReason'>): EdgeVerdict {
  if (f.verdict === 'FORWARDED') return 'forwarded';
  return (f.dropReason ?? '').startsWith('POLICY') ? 'dropped' : 'no-backend';
}

/**
 * The edge a flow belongs to: source workload → the backend's workload (service flows), the
 * service itself when no backend was chosen, or the destination pod.
 */
export function edgeOf(f: UiFlow, observedIn: string): { from: string; to: string } {
  const from = endpointKey(f.source, observedIn);
  let to: string;
  if (f.backend !== undefined && (f.backend.pod !== undefined || f.service === undefined)) {
    to = endpointKey(f.backend, observedIn);
  } else if (f.service !== undefined) {
    to = `service/${observedIn}/${f.service.namespace}/${f.service.name}`;
  } else {
    to = endpointKey(f.destination, observedIn);
  }
  return { from, to };
}

export function edgeId(from: string, to: string): string {
  return `${from}->${to}`;
}

/**
 * Edges of the flows seen in the last `windowMs` before `now`. Each connection is recorded
 * at the source (egress) and, when it reaches a pod, at the destination (ingress): the rate
 * counts egress flows, and the verdict is the latest flow's, so an ingress drop after an
 * allowed egress shows as dropped.
 */
export function aggregateEdges(
  flows: readonly UiFlowRow[],
  now: number,
  windowMs: number,
): UiEdge[] {
  interface Acc {
    from: string;
    to: string;
    last: number;
    lastVerdict: EdgeVerdict;
    lastSeen: string;
    counts: Record<EdgeVerdict, number>;
    egress: number;
  }
  const edges = new Map<string, Acc>();
  const since = now - windowMs;
  for (const f of flows) {
    const t = Date.parse(f.time);
    if (!(t >= since) || t > now + 5_000) continue;
    const { from, to } = edgeOf(f, f.cluster);
    const id = edgeId(from, to);
    let e = edges.get(id);
    if (e === undefined) {
      e = {
        from,
        to,
        last: -Infinity,
        lastVerdict: 'forwarded',
        lastSeen: f.time,
        counts: { forwarded: 0, dropped: 0, 'no-backend': 0 },
        egress: 0,
      };
      edges.set(id, e);
    }
    const v = edgeVerdictOf(f);
    // Ingress flows of forwarded connections repeat their egress flow; drops count once each.
    if (f.direction === 'egress' || v !== 'forwarded') e.counts[v]++;
    if (f.direction === 'egress') e.egress++;
    // Same millisecond: a drop wins, it is the later stage of one connection.
    if (t > e.last || (t === e.last && v !== 'forwarded')) {
      e.last = t;
      e.lastVerdict = v;
      e.lastSeen = f.time;
    }
  }
  const out = [...edges.entries()].map(([id, e]): UiEdge => ({
    id,
    from: e.from,
    to: e.to,
    verdict: e.lastVerdict,
    counts: e.counts,
    rate: Math.round((e.egress / (windowMs / 1000)) * 100) / 100,
    lastSeen: e.lastSeen,
  }));
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

// ---------------------------------------------------------------------------------------
// Connections

/** What `/v1/clustermesh` answers for one remote (the fields used here). */
export interface AgentRemoteStatus {
  readonly name: string;
  readonly connected?: boolean;
  readonly ready?: boolean;
  readonly status?: string;
  readonly 'num-nodes'?: number;
  readonly 'num-endpoints'?: number;
  readonly 'num-shared-services'?: number;
  readonly 'num-failures'?: number;
  readonly 'last-failure'?: string;
  readonly synced?: Partial<UiSynced>;
  readonly freshness?: { readonly 'last-heartbeat'?: string };
}

/** One agent's answer: its remotes, or why it did not answer. */
export type AgentStatusAnswer =
  | { readonly ok: true; readonly remotes: readonly AgentRemoteStatus[] }
  | { readonly ok: false; readonly error: string };

const SYNC_KEYS = ['nodes', 'endpoints', 'identities', 'services'] as const;

/**
 * The connection `from` → `to` as `from`'s agents report it. Ready when every answering
 * agent sees `to` ready; failing when one sees it not ready (or not at all) after it was
 * known, or when no agent of `from` answers; connecting while they wait for the first contact.
 */
export function connectionOf(
  from: string,
  to: string,
  answers: readonly AgentStatusAnswer[],
  now: number,
): UiConnection {
  let agents = 0;
  let ready = 0;
  let newest: number | null = null;
  const synced: Record<(typeof SYNC_KEYS)[number], boolean> = {
    nodes: true,
    endpoints: true,
    identities: true,
    services: true,
  };
  const reasons: string[] = [];
  let waiting = false;
  let numNodes = 0;
  let numEndpoints = 0;
  let numServices = 0;
  const errors: string[] = [];
  for (const a of answers) {
    if (!a.ok) {
      errors.push(a.error);
      continue;
    }
    agents++;
    const r = a.remotes.find((x) => x.name === to);
    if (r === undefined) {
      reasons.push(`not configured as a remote of ${from}`);
      for (const k of SYNC_KEYS) synced[k] = false;
      continue;
    }
    if (r.ready === true) ready++;
    else {
      const status = r.status ?? '';
      if (/waiting for initial connection/i.test(status) && (r['num-failures'] ?? 0) === 0) {
        waiting = true;
      }
      const failure = r['last-failure'];
      const why =
        status !== ''
          ? status
          : failure !== undefined && !failure.startsWith('0001-')
            ? `last failure ${failure}`
            : 'not ready';
      reasons.push(why);
    }
    for (const k of SYNC_KEYS) if (r.synced?.[k] !== true) synced[k] = false;
    const hb = r.freshness?.['last-heartbeat'];
    const t = hb === undefined ? NaN : Date.parse(hb);
    if (!Number.isNaN(t) && (newest === null || t > newest)) newest = t;
    numNodes = Math.max(numNodes, r['num-nodes'] ?? 0);
    numEndpoints = Math.max(numEndpoints, r['num-endpoints'] ?? 0);
    numServices = Math.max(numServices, r['num-shared-services'] ?? 0);
  }
  const unsynced = SYNC_KEYS.filter((k) => !synced[k]);
  let state: ConnectionState;
  if (agents === 0) state = errors.length > 0 ? 'failing' : 'unknown';
  else if (ready === agents) state = 'ready';
  else if (waiting && reasons.length === agents - ready) state = 'connecting';
  else state = 'failing';
  if (agents === 0 && errors.length > 0) {
    reasons.push(`no agent of ${from} answers: ${errors[0] ?? ''}`);
  }
  return {
    from,
    to,
    state,
    agents,
    ready,
    heartbeatAgeMs: newest === null ? null : Math.max(0, now - newest),
    synced,
    syncText:
      agents === 0
        ? 'unknown'
        : unsynced.length === 0
          ? 'synced'
          : `syncing: ${unsynced.join(', ')}`,
    reason: state === 'ready' ? '' : [...new Set(reasons)].join('; '),
    numNodes,
    numEndpoints,
    numServices,
  };
}

/** "1.2 s ago", "450 ms ago", "never". */
export function ageText(ms: number | null): string {
  if (ms === null) return 'no heartbeat yet';
  if (ms < 1000) return `heartbeat ${Math.round(ms)} ms ago`;
  return `heartbeat ${(ms / 1000).toFixed(1)} s ago`;
}

// ---------------------------------------------------------------------------------------
// Services

/** One row of an agent's `/v1/services`. */
export interface AgentServiceRow {
  readonly service: string;
  readonly frontend: string;
  readonly type?: string;
  readonly affinity?: string;
  readonly backends: readonly {
    readonly address: string;
    readonly cluster: string;
    readonly state?: string;
    readonly preferred?: boolean;
    readonly health?: string;
  }[];
}

/**
 * Global services across clusters: a Service shows when some cluster's table holds
 * backends of another cluster, or when it is the derived Service of a ServiceImport
 * (`mcs` names `namespace/name` of the imports).
 */
export function globalServicesOf(
  tables: ReadonlyMap<string, readonly AgentServiceRow[]>,
  mcs: ReadonlySet<string>,
): UiGlobalService[] {
  const byName = new Map<string, { views: UiServiceView[]; global: boolean }>();
  for (const [cluster, rows] of tables) {
    for (const row of rows) {
      const global = row.backends.some((b) => b.cluster !== cluster);
      const derived = mcs.has(row.service);
      if (!global && !derived) continue;
      let s = byName.get(row.service);
      if (s === undefined) {
        s = { views: [], global: false };
        byName.set(row.service, s);
      }
      if (global) s.global = true;
      s.views.push({
        cluster,
        frontend: row.frontend,
        affinity: row.affinity ?? 'none',
        backends: row.backends.map((b) => ({
          address: b.address,
          cluster: b.cluster,
          health: b.health ?? 'healthy',
          state: b.state ?? 'active',
          preferred: b.preferred === true,
        })),
      });
    }
  }
  // A Service global in one cluster is global everywhere it exists: show every cluster's view.
  for (const [name, s] of byName) {
    for (const [cluster, rows] of tables) {
      if (s.views.some((v) => v.cluster === cluster)) continue;
      for (const row of rows.filter((r) => r.service === name)) {
        s.views.push({
          cluster,
          frontend: row.frontend,
          affinity: row.affinity ?? 'none',
          backends: row.backends.map((b) => ({
            address: b.address,
            cluster: b.cluster,
            health: b.health ?? 'healthy',
            state: b.state ?? 'active',
            preferred: b.preferred === true,
          })),
        });
      }
    }
  }
  return [...byName.entries()]
    .map(([key, s]): UiGlobalService => {
      const [namespace = '', name = ''] = key.split('/');
      return {
        namespace,
        name,
        kind: mcs.has(key) ? 'mcs' : 'global',
        views: s.views.sort((a, b) =>
          a.cluster === b.cluster
            ? a.frontend < b.frontend
              ? -1
              : 1
            : a.cluster < b.cluster
              ? -1
              : 1,
        ),
      };
    })
    .sort((a, b) => (`${a.namespace}/${a.name}` < `${b.namespace}/${b.name}` ? -1 : 1));
}

// ---------------------------------------------------------------------------------------
// Flow filters (the filters of `clustermesh observe`)

export interface FlowFilter {
  readonly cluster?: string | undefined;
  readonly namespace?: string | undefined;
  /** A pod name, or a prefix of one (a workload name). */
  readonly pod?: string | undefined;
  readonly verdict?: 'FORWARDED' | 'DROPPED' | undefined;
  /** Hubble's event type, as `observe --type` reads it (flows before the field: trace/drop). */
  readonly type?: 'policy-verdict' | 'drop' | 'trace' | undefined;
}

export function flowMatches(f: UiFlowRow, filter: FlowFilter): boolean {
  if (filter.verdict !== undefined && f.verdict !== filter.verdict) return false;
  if (filter.type !== undefined) {
    const type = f.type ?? (f.verdict === 'DROPPED' ? 'drop' : 'trace');
    if (type !== filter.type) return false;
  }
  const ends = [f.source, f.destination, ...(f.backend === undefined ? [] : [f.backend])];
  if (
    filter.cluster !== undefined &&
    filter.cluster !== '' &&
    !ends.some((e) => e.cluster === filter.cluster)
  ) {
    return false;
  }
  if (
    filter.namespace !== undefined &&
    filter.namespace !== '' &&
    !ends.some((e) => e.namespace === filter.namespace) &&
    f.service?.namespace !== filter.namespace
  ) {
    return false;
  }
  if (filter.pod !== undefined && filter.pod !== '') {
    const p = filter.pod;
    if (!ends.some((e) => e.pod !== undefined && e.pod.startsWith(p))) return false;
  }
  return true;
}
