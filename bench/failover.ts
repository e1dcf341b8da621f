/**
 * Failover benchmark on a local mesh (`clustermesh up --clusters 2 --example rebel-base`,
 * in this process): x-wing in cluster1 sends `--rate` requests/s, each on a new
 * connection, to the global Service rebel-base (backends in both clusters), while
 * cluster2 fails in one of five ways, each on a fresh mesh:
 *
 *   1. cluster2's backends die abruptly (their sockets close; its control plane does
 *      not notice): time from the crash until no request fails, share of requests failed;
 *   2. all of cluster2 dies (workloads, agents, apiserver, kvstore): the same;
 *   3. cluster2's etcd stalls for 3 s (SIGSTOP, SIGCONT): how many cluster1 agents
 *      report cluster2 not ready at any time (goal 0), requests failed;
 *   4. cluster2's etcd stays stopped: time until every cluster1 agent reports cluster2
 *      not ready (goal ≤ 5 s), and until ready again after SIGCONT;
 *   5. cluster1 and cluster2 are partitioned (both ways, control plane and datapath,
 *      through the agents' fault API) for `--observe` seconds, then healed: time until
 *      no request fails, share failed, and time from healing until cluster2 answers.
 *
 *   npm run bench -- failover [--rate 200] [--nodes 2] [--observe 5]
 *
 * Events 3 and 4 need etcd (skipped with the memory kvstore when etcd is not installed).
 * Uses the addresses of `clustermesh up` (127.1.x.x, 127.2.x.x): run no other mesh
 * (nor the e2e tests) meanwhile.
 */
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '../src/lib/logger.js';
import type { MeshState } from '../src/localmesh/mesh-state.js';
import { LocalMesh } from '../src/localmesh/up.js';
import { flag, report, type Row } from './lib.js';

interface Sample {
  readonly sentAt: number;
  readonly ok: boolean;
  readonly cluster: string;
}

async function getJson(url: string, method = 'GET'): Promise<unknown> {
  const res = await fetch(url, { method });
  const body = await res.text();
  if (!res.ok) throw new Error(`${method} ${url}: ${res.status} ${body}`);
  return JSON.parse(body) as unknown;
}

/** Whether the request succeeded, and the cluster of the echo server that answered. */
function request(
  host: string,
  port: number,
  from: string,
): Promise<{ ok: boolean; cluster: string }> {
  return new Promise((resolve) => {
    const req = get({ host, port, path: '/', localAddress: from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let cluster = '';
        try {
          cluster = (JSON.parse(body) as { Cluster?: string }).Cluster ?? '';
        } catch {
          // Not the echo server's reply: the cluster stays unknown.
        }
        resolve({ ok: res.statusCode === 200, cluster });
      });
      res.on('error', () => {
        resolve({ ok: false, cluster: '' });
      });
    });
    req.setTimeout(2_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      resolve({ ok: false, cluster: '' });
    });
  });
}

/** An open-loop load: one request every 1000/rate ms until stopped. */
class Load {
  readonly samples: Sample[] = [];
  private readonly inflight = new Set<Promise<void>>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly host: string,
    private readonly port: number,
    private readonly from: string,
    private readonly rate: number,
  ) {}

  start(): void {
    const t0 = performance.now();
    let sent = 0;
    const tick = (): void => {
      const due = Math.floor(((performance.now() - t0) * this.rate) / 1000);
      for (; sent < due; sent++) {
        const sentAt = Date.now();
        const p = request(this.host, this.port, this.from).then((r) => {
          this.samples.push({ sentAt, ...r });
        });
        this.inflight.add(p);
        void p.finally(() => this.inflight.delete(p));
      }
    };
    this.timer = setInterval(tick, 5);
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await Promise.all([...this.inflight]);
  }

  /** Send time of the first successful request from `from` that `cluster` answered. */
  firstFrom(from: number, cluster: string): number | undefined {
    let first: number | undefined;
    for (const s of this.samples) {
      if (s.sentAt >= from && s.ok && s.cluster === cluster)
        first = Math.min(first ?? s.sentAt, s.sentAt);
    }
    return first;
  }

  /** Requests sent in [from, to): failed share and the last failed send time. */
  window(from: number, to: number): { total: number; failed: number; lastFailedAt?: number } {
    let total = 0;
    let failed = 0;
    let lastFailedAt: number | undefined;
    for (const s of this.samples) {
      if (s.sentAt < from || s.sentAt >= to) continue;
      total++;
      if (!s.ok) {
        failed++;
        lastFailedAt = Math.max(lastFailedAt ?? 0, s.sentAt);
      }
    }
    return { total, failed, ...(lastFailedAt === undefined ? {} : { lastFailedAt }) };
  }
}

interface Mesh {
  readonly state: MeshState;
  readonly clientIP: string;
  readonly clusterIP: string;
  fault(cluster: string, action: string): Promise<void>;
  /** Whether each cluster1 agent sees cluster2 ready. */
  cluster2Ready(): Promise<boolean[]>;
  load(rate: number): Load;
}

async function withMesh<T>(
  kvstore: 'etcd' | 'memory',
  nodes: number,
  fn: (m: Mesh) => Promise<T>,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'clustermesh-bench-failover-'));
  const mesh = new LocalMesh({
    clusters: 2,
    nodes,
    kvstore,
    example: 'rebel-base',
    stateDir: dir,
    log: silentLogger,
  });
  try {
    const state = await mesh.start();
    const c1 = state.clusters[0];
    if (c1 === undefined) throw new Error('no cluster1');
    const agent = c1.agents[0]?.api ?? '';
    let clientIP = '';
    let clusterIP = '';
    // Ready when x-wing runs and cluster1 balances over backends of both clusters.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const pods = (await getJson(`${state.control}/v1/pods?cluster=cluster1`)) as {
        name: string;
        ip: string;
      }[];
      clientIP = pods.find((p) => p.name.startsWith('x-wing'))?.ip ?? '';
      const lb = (await getJson(`${agent}/v1/lb`)) as { frontend: string; backends: string[] }[];
      const svc = lb.find(
        (e) => e.frontend.startsWith('127.1.128.') && e.frontend.endsWith(':80/TCP'),
      );
      clusterIP = svc?.frontend.split(':')[0] ?? '';
      const clusters = new Set(svc?.backends.map((b) => b.split('.')[1]));
      if (clientIP !== '' && clusters.size === 2) break;
      if (Date.now() > deadline)
        throw new Error('mesh did not become ready with backends in both clusters');
      await sleep(200);
    }
    return await fn({
      state,
      clientIP,
      clusterIP,
      fault: async (cluster, action) => {
        await getJson(`${state.control}/v1/fault?cluster=${cluster}&action=${action}`, 'POST');
      },
      cluster2Ready: () =>
        Promise.all(
          c1.agents.map(async (a) => {
            const st = (await getJson(`${a.api}/v1/clustermesh`)) as {
              clusters: { name: string; ready: boolean }[];
            };
            return st.clusters.find((c) => c.name === 'cluster2')?.ready === true;
          }),
        ),
      load: (rate) => new Load(clusterIP, 80, clientIP, rate),
    });
  } finally {
    await mesh.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

interface CrashResult {
  readonly recoveryMs: number;
  readonly failedPct: number;
  readonly requests: number;
}

async function crash(
  kvstore: 'etcd' | 'memory',
  nodes: number,
  rate: number,
  observeS: number,
  action: string,
): Promise<CrashResult> {
  return withMesh(kvstore, nodes, async (m) => {
    const load = m.load(rate);
    load.start();
    await sleep(2_000);
    const before = load.window(0, Date.now());
    if (before.failed > 0)
      console.error(`warning: ${before.failed} requests failed before the event`);
    const t = Date.now();
    await m.fault('cluster2', action);
    await sleep(observeS * 1000);
    await load.stop();
    const w = load.window(t, t + observeS * 1000);
    return {
      recoveryMs: w.lastFailedAt === undefined ? 0 : w.lastFailedAt - t,
      failedPct: w.total === 0 ? 0 : (100 * w.failed) / w.total,
      requests: w.total,
    };
  });
}

interface PartitionResult extends CrashResult {
  /** From healing until cluster2 answers a request again. */
  readonly backMs: number;
}

/**
 * cluster1 and cluster2 cut off from each other, control plane and datapath (the agents'
 * partition fault: kvstore calls held, new connections and probes blackholed), then
 * healed.
 */
async function partition(
  kvstore: 'etcd' | 'memory',
  nodes: number,
  rate: number,
  observeS: number,
): Promise<PartitionResult> {
  return withMesh(kvstore, nodes, async (m) => {
    const all = async (action: 'partition' | 'heal'): Promise<void> => {
      for (const c of m.state.clusters) {
        const other = c.name === 'cluster1' ? 'cluster2' : 'cluster1';
        for (const a of c.agents) {
          await getJson(`${a.api}/v1/fault?action=${action}&remote=${other}`, 'POST');
        }
      }
    };
    const load = m.load(rate);
    load.start();
    await sleep(2_000);
    const t = Date.now();
    await all('partition');
    await sleep(observeS * 1000);
    const healed = Date.now();
    await all('heal');
    let backMs = Number.NaN;
    while (Date.now() - healed < 15_000) {
      await sleep(100);
      const first = load.firstFrom(healed, 'cluster2');
      if (first !== undefined) {
        backMs = first - healed;
        break;
      }
    }
    await load.stop();
    const w = load.window(t, healed);
    return {
      recoveryMs: w.lastFailedAt === undefined ? 0 : w.lastFailedAt - t,
      failedPct: w.total === 0 ? 0 : (100 * w.failed) / w.total,
      requests: w.total,
      backMs,
    };
  });
}

interface StallResult {
  readonly falseNotReady: number;
  readonly stallFailedPct: number;
  readonly notReadyMs: number;
  readonly readyAgainMs: number;
}

async function stall(nodes: number, rate: number): Promise<StallResult> {
  return withMesh('etcd', nodes, async (m) => {
    const load = m.load(rate);
    load.start();
    await sleep(1_000);
    // 1. A 3 s stall, sampled every 100 ms on every cluster1 agent, and 2 s after it.
    const flipped = new Set<number>();
    const t = Date.now();
    await m.fault('cluster2', 'freeze-kvstore');
    let thawed = false;
    while (Date.now() - t < 5_000) {
      if (!thawed && Date.now() - t >= 3_000) {
        await m.fault('cluster2', 'thaw-kvstore');
        thawed = true;
      }
      (await m.cluster2Ready()).forEach((ready, i) => {
        if (!ready) flipped.add(i);
      });
      await sleep(100);
    }
    const w = load.window(t, t + 5_000);
    // 2. Stopped for good: until every cluster1 agent reports cluster2 not ready.
    const s = Date.now();
    await m.fault('cluster2', 'freeze-kvstore');
    while ((await m.cluster2Ready()).some((r) => r) && Date.now() - s < 60_000) await sleep(50);
    const notReadyMs = Date.now() - s;
    const r = Date.now();
    await m.fault('cluster2', 'thaw-kvstore');
    while ((await m.cluster2Ready()).some((x) => !x) && Date.now() - r < 60_000) await sleep(50);
    const readyAgainMs = Date.now() - r;
    await load.stop();
    return {
      falseNotReady: flipped.size,
      stallFailedPct: w.total === 0 ? 0 : (100 * w.failed) / w.total,
      notReadyMs,
      readyAgainMs,
    };
  });
}

export async function main(args: string[]): Promise<void> {
  const rate = flag(args, '--rate', 'positive', 200);
  const nodes = flag(args, '--nodes', 'positive integer', 2);
  const observe = flag(args, '--observe', 'positive', 5);
  const haveEtcd = spawnSync('sh', ['-c', 'command -v etcd']).status === 0;
  const kvstore = haveEtcd ? 'etcd' : 'memory';

  const backends = await crash(kvstore, nodes, rate, observe, 'crash-workloads');
  const cluster = await crash(kvstore, nodes, rate, observe, 'crash-cluster');
  const cut = await partition(kvstore, nodes, rate, observe);
  const etcd = haveEtcd ? await stall(nodes, rate) : undefined;

  // The reference column is Cilium's ClusterMesh: its datapath has no backend health, so
  // requests to backends that died unannounced keep failing (for the whole observed
  // window: a lower bound) on their share of the backends (half here); a stopped remote
  // etcd shows as not ready after about 30 s; a 3 s stall raises no alarm.
  const windowMs = observe * 1000;
  const rows: Row[] = [
    {
      metric: 'cluster2 backends die: until no request fails',
      ours: backends.recoveryMs,
      raw: windowMs,
      unit: 'ms',
      higherIsBetter: false,
      goal: '≤ 1,000 ms',
    },
    {
      metric: 'cluster2 backends die: requests failed',
      ours: backends.failedPct,
      raw: 50,
      unit: '%',
      higherIsBetter: false,
    },
    {
      metric: 'all of cluster2 dies: until no request fails',
      ours: cluster.recoveryMs,
      raw: windowMs,
      unit: 'ms',
      higherIsBetter: false,
      goal: '≤ 1,000 ms',
    },
    {
      metric: 'all of cluster2 dies: requests failed',
      ours: cluster.failedPct,
      raw: 50,
      unit: '%',
      higherIsBetter: false,
    },
    {
      metric: 'clusters partitioned: until no request fails',
      ours: cut.recoveryMs,
      raw: windowMs,
      unit: 'ms',
      higherIsBetter: false,
      goal: '≤ 1,000 ms',
    },
    {
      metric: 'clusters partitioned: requests failed',
      ours: cut.failedPct,
      raw: 50,
      unit: '%',
      higherIsBetter: false,
    },
    {
      metric: 'partition healed: until cluster2 answers',
      ours: cut.backMs,
      // No reference figure.
      raw: Number.NaN,
      unit: 'ms',
      higherIsBetter: false,
    },
  ];
  if (etcd !== undefined) {
    rows.push(
      {
        metric: 'remote etcd stopped: until not ready',
        ours: etcd.notReadyMs,
        raw: 30_000,
        unit: 'ms',
        higherIsBetter: false,
        goal: '≤ 5,000 ms',
      },
      {
        metric: 'remote etcd resumed: until ready',
        ours: etcd.readyAgainMs,
        // No reference figure.
        raw: Number.NaN,
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        metric: '3 s etcd stall: agents falsely not ready',
        ours: etcd.falseNotReady,
        raw: 0,
        unit: 'agents',
        higherIsBetter: false,
        goal: '0',
      },
      {
        metric: '3 s etcd stall: requests failed',
        ours: etcd.stallFailedPct,
        raw: 0,
        unit: '%',
        higherIsBetter: false,
      },
    );
  }
  report(
    'failover',
    rows,
    {
      rate,
      nodes,
      kvstore,
      requests: { backends: backends.requests, cluster: cluster.requests, partition: cut.requests },
    },
    ['clustermesh', 'reference'],
  );
}
