import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import { readMeshState, type MeshState } from '../localmesh/mesh-state.js';
import {
  aggregateEdges,
  connectionOf,
  globalServicesOf,
  workloadOfPod,
  type AgentRemoteStatus,
  type AgentServiceRow,
  type AgentStatusAnswer,
  type UiCluster,
  type UiFlow,
  type UiFlowRow,
  type UiGlobalService,
  type UiPolicy,
  type UiSnapshot,
  type UiWorkload,
} from './model.js';

/**
 * Gathers the browser view from what the CLI reads: mesh.json for what runs where, each
 * agent's `/v1/clustermesh`, `/v1/services` and `/v1/flows`, and the control API's pods,
 * ServiceImports and policies. Nothing is cached beyond the last answer of each source, so
 * the page shows what `status`, `service list` and `observe` would print.
 */

export interface CollectorOptions {
  readonly stateDir: string;
  readonly log: Logger;
  /** The service map's window. Default 60 s. */
  readonly windowSec?: number | undefined;
  /** How often connections are polled (ms). Default 500. */
  readonly statusIntervalMs?: number | undefined;
  /** How often services, pods and policies are polled (ms). Default 1000. */
  readonly objectsIntervalMs?: number | undefined;
  /** How often every agent's flow log is polled (ms). Default 100. */
  readonly flowsIntervalMs?: number | undefined;
  /** Per request. Default 1500 ms: a frozen kvstore must not stall the whole view. */
  readonly requestTimeoutMs?: number | undefined;
}

export type CollectorEvent =
  | { readonly type: 'snapshot'; readonly data: UiSnapshot }
  | { readonly type: 'flows'; readonly data: readonly UiFlowRow[] };

const POLICY_KINDS = ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'];
const MAX_FLOWS = 5_000;
const SNAPSHOT_MIN_INTERVAL_MS = 200;

interface FlowCursor {
  next: number | undefined;
}

export class MeshCollector {
  private readonly ac = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly listeners = new Set<(ev: CollectorEvent) => void>();
  private state: MeshState | undefined;
  private stateError = 'starting';
  private statusAnswers = new Map<string, AgentStatusAnswer>();
  private serviceTables = new Map<string, readonly AgentServiceRow[]>();
  private mcs = new Map<string, ReadonlySet<string>>();
  private pods = new Map<string, readonly PodInfo[]>();
  private policies = new Map<string, readonly UiPolicy[]>();
  private readonly cursors = new Map<string, FlowCursor>();
  private flows: UiFlowRow[] = [];
  private pendingSnapshot: NodeJS.Timeout | undefined;
  private lastSnapshotAt = 0;
  private readonly windowSec: number;
  private readonly timeoutMs: number;

  constructor(private readonly opts: CollectorOptions) {
    // Every request in flight listens for the stop (a few per agent and cluster at once).
    setMaxListeners(10_000, this.ac.signal);
    this.windowSec = opts.windowSec ?? 60;
    this.timeoutMs = opts.requestTimeoutMs ?? 1500;
  }

  start(): void {
    const every = (name: string, ms: number, fn: () => Promise<void>): void => {
      this.loops.push(this.loop(name, ms, fn));
    };
    every('status', this.opts.statusIntervalMs ?? 500, () => this.pollStatus());
    every('objects', this.opts.objectsIntervalMs ?? 1000, () => this.pollObjects());
    every('flows', this.opts.flowsIntervalMs ?? 100, () => this.pollFlows());
  }

  async stop(): Promise<void> {
    this.ac.abort();
    if (this.pendingSnapshot !== undefined) clearTimeout(this.pendingSnapshot);
    await Promise.allSettled(this.loops);
    this.listeners.clear();
  }

  subscribe(fn: (ev: CollectorEvent) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The mesh's state file as last read (undefined while no mesh runs). */
  get meshState(): MeshState | undefined {
    return this.state;
  }

  recentFlows(limit = 500): UiFlowRow[] {
    return this.flows.slice(-limit);
  }

  snapshot(now = Date.now()): UiSnapshot {
    const st = this.state;
    const clusters: UiCluster[] = (st?.clusters ?? []).map((c) => ({
      name: c.name,
      id: c.id,
      nodes: c.agents.map((a) => {
        const ans = this.statusAnswers.get(a.api);
        return {
          name: a.node,
          ip: a.ip,
          api: a.api,
          up: ans?.ok === true,
          ...(ans !== undefined && !ans.ok ? { error: ans.error } : {}),
        };
      }),
    }));
    const connections = [];
    for (const from of st?.clusters ?? []) {
      const answers = from.agents.flatMap((a) => {
        const ans = this.statusAnswers.get(a.api);
        return ans === undefined ? [] : [ans];
      });
      for (const to of st?.clusters ?? []) {
        if (to.name === from.name) continue;
        // Not meshed (`up --no-connect`, before `mesh connect`): no agent that answers
        // lists the remote, so there is no connection to draw, rather than a failing one.
        const listed = answers.some((a) => !a.ok || a.remotes.some((r) => r.name === to.name));
        if (!listed && (answers.length > 0 || st?.connected === false)) continue;
        connections.push(connectionOf(from.name, to.name, answers, now));
      }
    }
    const mcs = new Set<string>();
    for (const s of this.mcs.values()) for (const k of s) mcs.add(k);
    const services: UiGlobalService[] = globalServicesOf(this.serviceTables, mcs);
    const workloads: UiWorkload[] = [];
    for (const [cluster, pods] of this.pods) {
      const byKey = new Map<string, UiWorkload & { pods: UiWorkload['pods'][number][] }>();
      for (const p of pods) {
        const name = workloadOfPod(p.name);
        const key = `${p.namespace}/${name}`;
        let w = byKey.get(key);
        if (w === undefined) {
          w = { cluster, namespace: p.namespace, name, pods: [] };
          byKey.set(key, w);
        }
        w.pods.push({ name: p.name, node: p.node, ip: p.ip });
      }
      workloads.push(...byKey.values());
    }
    workloads.sort((a, b) =>
      `${a.cluster}/${a.namespace}/${a.name}` < `${b.cluster}/${b.namespace}/${b.name}` ? -1 : 1,
    );
    return {
      time: new Date(now).toISOString(),
      mesh:
        st === undefined
          ? { state: 'absent', message: this.stateError }
          : {
              state: 'running',
              message: `${st.clusters.length} clusters, started ${st.startedAt}`,
              kvstore: st.kvstore,
              tls: st.tls,
              kvstoremesh: st.kvstoremesh,
            },
      clusters,
      connections,
      services,
      workloads,
      edges: aggregateEdges(this.flows, now, this.windowSec * 1000),
      policies: [...this.policies.values()].flat(),
      windowSec: this.windowSec,
    };
  }

  /** GET a JSON document, bounded by the request timeout and the collector's stop. */
  async getJson(url: string): Promise<unknown> {
    // One controller per request, its stop listener removed after: a listener per request
    // left on the collector's signal would pile up over a long run.
    const ac = new AbortController();
    const abort = (): void => {
      ac.abort();
    };
    const timer = setTimeout(abort, this.timeoutMs);
    this.ac.signal.addEventListener('abort', abort, { once: true });
    try {
      const res = await fetch(url, { signal: ac.signal });
      const text = await res.text();
      if (!res.ok) throw new Error(`${url}: HTTP ${res.status}: ${text.trim().slice(0, 200)}`);
      return JSON.parse(text) as unknown;
    } finally {
      clearTimeout(timer);
      this.ac.signal.removeEventListener('abort', abort);
    }
  }

  private async loop(name: string, ms: number, fn: () => Promise<void>): Promise<void> {
    const signal = this.ac.signal;
    while (!signal.aborted) {
      const t0 = performance.now();
      try {
        await fn();
      } catch (err) {
        this.opts.log.debug({ loop: name, err: errorMessage(err) }, 'ui poll');
      }
      const wait = Math.max(10, ms - (performance.now() - t0));
      await new Promise<void>((resolve) => {
        const done = (): void => {
          clearTimeout(t);
          signal.removeEventListener('abort', done);
          resolve();
        };
        const t = setTimeout(done, wait);
        signal.addEventListener('abort', done, { once: true });
      });
    }
  }

  private emit(ev: CollectorEvent): void {
    for (const fn of this.listeners) {
      try {
        fn(ev);
      } catch (err) {
        this.opts.log.debug({ err: errorMessage(err) }, 'ui listener failed');
      }
    }
  }

  /**
   * Coalesces updates into at most one snapshot event per `SNAPSHOT_MIN_INTERVAL_MS`: under
   * a flood of flows the page redraws its maps a few times a second, not on every poll
   * (new flows themselves go out at once, as `flows` events).
   */
  private scheduleSnapshot(): void {
    if (this.pendingSnapshot !== undefined || this.listeners.size === 0) return;
    const wait = Math.max(0, this.lastSnapshotAt + SNAPSHOT_MIN_INTERVAL_MS - performance.now());
    this.pendingSnapshot = setTimeout(() => {
      this.pendingSnapshot = undefined;
      this.lastSnapshotAt = performance.now();
      this.emit({ type: 'snapshot', data: this.snapshot() });
    }, wait);
  }

  private async pollStatus(): Promise<void> {
    try {
      const st = await readMeshState(this.opts.stateDir);
      if (st.startedAt !== this.state?.startedAt) {
        // A new mesh: forget what the previous one said.
        this.cursors.clear();
        this.flows = [];
        this.statusAnswers = new Map();
        this.serviceTables = new Map();
        this.pods = new Map();
        this.policies = new Map();
        this.mcs = new Map();
      }
      this.state = st;
    } catch (err) {
      this.state = undefined;
      this.stateError = errorMessage(err);
      this.scheduleSnapshot();
      return;
    }
    const agents = this.state.clusters.flatMap((c) => c.agents);
    const answers = await Promise.all(
      agents.map(async (a): Promise<[string, AgentStatusAnswer]> => {
        try {
          const body = (await this.getJson(`${a.api}/v1/clustermesh`)) as { clusters?: unknown };
          const remotes = Array.isArray(body.clusters)
            ? (body.clusters as AgentRemoteStatus[])
            : [];
          return [a.api, { ok: true, remotes }];
        } catch (err) {
          return [a.api, { ok: false, error: errorMessage(err) }];
        }
      }),
    );
    this.statusAnswers = new Map(answers);
    this.scheduleSnapshot();
  }

  private async pollObjects(): Promise<void> {
    const st = this.state;
    if (st === undefined) return;
    await Promise.all(
      st.clusters.map(async (c) => {
        const control = (kind: string): Promise<unknown> =>
          this.getJson(
            `${st.control}/v1/objects?cluster=${encodeURIComponent(c.name)}&kind=${kind}`,
          );
        const tasks: Promise<void>[] = [];
        // The first agent that answers: what `service list --node` prints for it.
        tasks.push(
          (async () => {
            for (const a of c.agents) {
              try {
                const rows = await this.getJson(`${a.api}/v1/services`);
                if (Array.isArray(rows)) this.serviceTables.set(c.name, rows as AgentServiceRow[]);
                return;
              } catch {
                // Try the next agent of the cluster.
              }
            }
          })(),
        );
        tasks.push(
          (async () => {
            const pods = await this.getJson(
              `${st.control}/v1/pods?cluster=${encodeURIComponent(c.name)}`,
            );
            if (Array.isArray(pods)) {
              this.pods.set(
                c.name,
                (pods as PodInfo[]).filter((p) => p.phase === 'Running'),
              );
            }
          })(),
        );
        tasks.push(
          (async () => {
            const imports = (await control('ServiceImport')) as ObjectMeta[];
            this.mcs.set(
              c.name,
              new Set(imports.map((o) => `${o.metadata.namespace ?? ''}/${o.metadata.name}`)),
            );
          })(),
        );
        tasks.push(
          (async () => {
            const lists = await Promise.all(POLICY_KINDS.map((k) => control(k)));
            this.policies.set(
              c.name,
              lists.flatMap((l, i) =>
                (l as ObjectMeta[]).map((o) => ({
                  cluster: c.name,
                  kind: POLICY_KINDS[i] ?? '',
                  namespace: o.metadata.namespace ?? '',
                  name: o.metadata.name,
                })),
              ),
            );
          })(),
        );
        // One slow source (a frozen kvstore) keeps its last answer; the others still update.
        await Promise.allSettled(tasks);
      }),
    );
    this.scheduleSnapshot();
  }

  private async pollFlows(): Promise<void> {
    const st = this.state;
    if (st === undefined) return;
    const fresh: UiFlowRow[] = [];
    await Promise.all(
      st.clusters.flatMap((c) =>
        c.agents.map(async (a) => {
          let cur = this.cursors.get(a.api);
          if (cur === undefined) {
            cur = { next: undefined };
            this.cursors.set(a.api, cur);
          }
          const q = cur.next === undefined ? 'limit=500' : `since=${cur.next}&limit=1000`;
          let page: { flows?: UiFlow[]; next?: number };
          try {
            page = (await this.getJson(`${a.api}/v1/flows?${q}`)) as typeof page;
          } catch {
            return;
          }
          const prev = cur.next;
          // A cursor going back is a restarted flow log: everything it sends is new.
          const restarted = prev === undefined || (page.next ?? prev) < prev;
          if (typeof page.next === 'number') cur.next = page.next;
          for (const f of page.flows ?? []) {
            if (!restarted && f.seq <= prev) continue;
            fresh.push({ ...f, cluster: c.name, id: `${c.name}/${a.node}#${f.seq}` });
          }
        }),
      ),
    );
    if (fresh.length === 0) return;
    fresh.sort((x, y) => (x.time < y.time ? -1 : x.time > y.time ? 1 : 0));
    this.flows.push(...fresh);
    if (this.flows.length > MAX_FLOWS) this.flows = this.flows.slice(-MAX_FLOWS);
    this.emit({ type: 'flows', data: fresh });
    this.scheduleSnapshot();
  }
}

interface PodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly phase: string;
}

interface ObjectMeta {
  readonly metadata: { readonly namespace?: string; readonly name: string };
}
