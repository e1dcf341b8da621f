/**
 * KVStoreMesh at scale, in the manner of the reference's `scale-clustermesh` CI test and
 * its remote-cluster mock (cilium/scaffolding `cmapisrv-mock`).
 *
 *   npm run bench -- kvstoremesh [--clusters 50] [--churn-seconds 300] [--nodes 100]
 *                                [--endpoints 1000] [--identities 100] [--no-agent]
 *                                [--mesh-log FILE]
 *
 * `--mesh-log FILE` keeps KVStoreMesh's stderr (LOG_LEVEL, default warn);
 * `BENCH_MESH_NODE_ARGS='--cpu-prof --cpu-prof-dir=DIR'` passes Node flags to it.
 *
 * Mock remote clusters: K synthetic clusters `mock-001`… (cluster IDs 2..K+1). Our remote
 * model reads the non-cluster-scoped prefixes `cilium/state/ip/v1/default` and
 * `cilium/state/identities/v1` of the etcd named by a cluster's config file, so clusters
 * sharing one etcd would see each other's entries. Each mock cluster therefore gets its own
 * etcd process (single member, 100 ms raft heartbeat to keep idle CPU low: ~24 MiB RSS and
 * ~0.3 % CPU each when idle on this machine). The mock etcds run with GOMAXPROCS=1 under
 * `nice 10`: they stand for remote clusters on other machines (the reference runs its mock
 * on a node of its own), and on this 2-core machine 250 of them would otherwise starve
 * KVStoreMesh and its local etcd, which keep normal priority. Each holds, written directly in the reference
 * format with batched txns (what its clustermesh-apiserver would have written): `--nodes`
 * nodes, `--identities` identities inside the cluster's identity range, `--endpoints`
 * ipcache entries, the cluster config (syncedCanaries), the five `cilium/synced/<c>/…`
 * canaries and the heartbeat (refreshed every 30 s for the whole run).
 *
 * Local cluster `cluster1` (ID 1): one etcd and KVStoreMesh as a child process
 * (`bin/clustermesh kvstoremesh`), one etcd config file per mock cluster in its config
 * directory. Bootstrap is timed from the spawn until `/readyz` is 200, and until every
 * mock cluster's five KVStoreMesh canaries are in the local etcd (readiness may exclude a
 * cluster that has not connected within `--per-cluster-ready-timeout`, 15 s). The cache
 * key counts are then checked against what the mocks hold.
 *
 * Churn: per mock cluster 0.1 node updates/s, 1 endpoint change/s and 0.2 identity
 * changes/s (updates, deletes and re-creations), one timer loop for all clusters. During
 * churn `/metrics` is sampled every 2 s (sync queue size, sync errors, remote cluster
 * failures) together with KVStoreMesh's CPU and RSS. After churn the cache must converge to
 * exactly the mocks' content (full key/value comparison).
 *
 * Agent (skipped with `--no-agent`): after bootstrap and before churn (so with exactly
 * K × `--endpoints` remote endpoints), one `clustermesh agent` of the local
 * cluster in its own process, with one config file per mock cluster naming the local etcd
 * (as agents are configured with KVStoreMesh): it reads the cache of every cluster;
 * RSS and heap after forced full GCs, before the files appear and once synced, per remote
 * endpoint (the nodes and identities of the remotes are included in the difference).
 *
 * Baseline (raw, same run, before KVStoreMesh starts): raw etcd3 paged range reads of every
 * mock cluster's data and raw batched txns writing it into a fresh etcd under the cache
 * keys — the least any mirror must do.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, readFileSync, type WriteStream } from 'node:fs';
import { chmod, mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Range, type Etcd3 } from 'etcd3';
import {
  HeartbeatPath,
  MeshResources,
  NodeAddressType,
  apiserverCanaryKey,
  apiserverClusterConfig,
  cachePrefix,
  cacheResourcePrefix,
  clusterConfigKey,
  encodeClusterConfig,
  encodeHeartbeat,
  encodeIPIdentityPair,
  encodeNode,
  encodeSyncedCanary,
  formatLabelsForKVStore,
  identityKey,
  ipcacheKey,
  makeNode,
  nodeKey,
  nodesClusterPrefix,
  IdentitiesPrefix,
  IPCachePrefix,
  NodesPrefix,
  SyncedPrefix,
} from '../src/keyspace/index.js';
import { MAX_TXN_OPS } from '../src/kvstore/backend.js';
import { findEtcdBinary, startEtcd, type EtcdServer } from '../test/support/etcd.js';
import { freePort } from '../test/support/ports.js';
import { AgentProcess, type MemoryUsage } from './agent-process.js';
import { flag, pool, report, type Row } from './lib.js';

const LOCAL = 'cluster1';
const LOCAL_ID = 1;
const PAGE = 256;
const BIN = fileURLToPath(new URL('../bin/clustermesh', import.meta.url));
const CLK_TCK = 100;
const SAMPLE_MS = 2_000;
const HEARTBEAT_MS = 30_000;
const BOOTSTRAP_TIMEOUT_MS = 9 * 60_000;
const CONVERGE_TIMEOUT_MS = 60_000;
const CHURN_TICK_MS = 50;
const CHURN_MAX_INFLIGHT = 1024;
/** Scheduling priority of the mock etcds (nice): the system under test comes first. */
const MOCK_NICE = 10;
const RATE = { node: 0.1, endpoint: 1, identity: 0.2 } as const;
const QUEUE_GOAL = 1_000;
const AGENT_SYNC_TIMEOUT_MS = 5 * 60_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const secs = (t0: number): number => (performance.now() - t0) / 1000;
const round = (n: number, d = 3): number => Number(n.toFixed(d));
const mib = (n: number): number => round(n / 1024 / 1024, 1);

// ---------------------------------------------------------------------------------------------
// The mock clusters

interface Mock {
  readonly name: string;
  readonly id: number;
  readonly etcd: EtcdServer;
  client: Etcd3 | undefined;
  /** Endpoint / identity indices currently deleted by churn. */
  readonly deletedEndpoints: Set<number>;
  readonly deletedIdentities: Set<number>;
  rev: number;
}

function mockName(i: number): string {
  return `mock-${String(i + 1).padStart(3, '0')}`;
}

// Data only: nothing ever connects to these addresses. Unique per cluster.
function nodeIP(cid: number, n: number): string {
  return `100.${String(cid)}.${String(n >> 8)}.${String(n & 255)}`;
}
function podIP(cid: number, i: number): string {
  return `10.${String(cid)}.${String(i >> 8)}.${String(i & 255)}`;
}
function identityBase(cid: number): number {
  return cid * 65536 + 256;
}

function nodeValue(m: Mock, n: number, rev: number): [string, string] {
  const name = `node-${String(n)}`;
  const node = makeNode({
    Name: name,
    Cluster: m.name,
    ClusterID: m.id,
    IPAddresses: [{ Type: NodeAddressType.InternalIP, IP: nodeIP(m.id, n) }],
    IPv4AllocCIDR: `10.${String(m.id)}.${String(n & 255)}.0/24`,
    Labels: { 'bench/rev': String(rev) },
    Source: 'custom-resource',
  });
  return [nodeKey(m.name, name), encodeNode(node)];
}

function identityValue(m: Mock, k: number, rev: number): [string, string] {
  const value = formatLabelsForKVStore({
    'k8s:app': `app-${String(k)}`,
    'k8s:bench-rev': String(rev),
    'k8s:io.kubernetes.pod.namespace': 'default',
    'k8s:io.cilium.k8s.policy.cluster': m.name,
  });
  return [identityKey(identityBase(m.id) + k), value];
}

function endpointValue(
  m: Mock,
  i: number,
  rev: number,
  nodes: number,
  identities: number,
): [string, string] {
  const ip = podIP(m.id, i);
  const value = encodeIPIdentityPair({
    IP: ip,
    Mask: null,
    HostIP: nodeIP(m.id, (i + rev) % nodes),
    ID: identityBase(m.id) + ((i + rev) % identities),
    Key: 0,
    Metadata: '',
    K8sNamespace: 'default',
    K8sPodName: `app-${String(i % identities)}-${String(i)}`,
  });
  return [ipcacheKey(ip), value];
}

async function txnPut(client: Etcd3, pairs: readonly [string, string][]): Promise<void> {
  for (let i = 0; i < pairs.length; i += MAX_TXN_OPS) {
    await client.kv.txn({
      success: pairs.slice(i, i + MAX_TXN_OPS).map(([key, value]) => ({
        request_put: { key: Buffer.from(key), value: Buffer.from(value) },
      })),
    });
  }
}

async function populate(
  m: Mock,
  nodes: number,
  endpoints: number,
  identities: number,
): Promise<number> {
  const client = m.etcd.createClient();
  m.client = client;
  const pairs: [string, string][] = [];
  for (let n = 0; n < nodes; n++) pairs.push(nodeValue(m, n, 0));
  for (let k = 0; k < identities; k++) pairs.push(identityValue(m, k, 0));
  for (let i = 0; i < endpoints; i++) pairs.push(endpointValue(m, i, 0, nodes, identities));
  const config = apiserverClusterConfig({
    id: m.id,
    maxConnectedClusters: 255,
    serviceExportsEnabled: false,
  });
  pairs.push([clusterConfigKey(m.name), encodeClusterConfig(config)]);
  pairs.push([HeartbeatPath, encodeHeartbeat()]);
  await txnPut(client, pairs);
  // The canaries last, as the apiserver writes them once everything else is written.
  const now = encodeSyncedCanary();
  await txnPut(
    client,
    MeshResources.map((r) => [apiserverCanaryKey(m.name, r), now]),
  );
  return pairs.length + MeshResources.length;
}

// ---------------------------------------------------------------------------------------------
// Raw reads

async function rawList(
  client: Etcd3,
  prefix: string,
  revision?: string,
): Promise<{ kvs: [string, string][]; revision: string }> {
  const end = Range.prefix(prefix).end;
  let start = Buffer.from(prefix);
  let rev = revision;
  const kvs: [string, string][] = [];
  for (;;) {
    const res = await client.kv.range({
      key: start,
      range_end: end,
      limit: PAGE,
      ...(rev === undefined ? {} : { revision: rev }),
    });
    rev ??= res.header.revision;
    for (const kv of res.kvs) kvs.push([kv.key.toString(), kv.value.toString()]);
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return { kvs, revision: rev };
}

async function countPrefix(client: Etcd3, prefix: string): Promise<number> {
  const res = await client.kv.range({
    key: Buffer.from(prefix),
    range_end: Range.prefix(prefix).end,
    count_only: true,
  });
  return Number(res.count);
}

/** What a mirror of `m` must hold locally: cache key → value (nodes, identities, ipcache). */
async function expectedCache(m: Mock): Promise<Map<string, string>> {
  const client = m.client;
  if (client === undefined) throw new Error('mock not populated');
  const out = new Map<string, string>();
  const first = await rawList(client, `${nodesClusterPrefix(m.name)}/`);
  const rev = first.revision;
  const mapping: [string, { kvs: [string, string][] }, string][] = [
    [`${NodesPrefix}/`, first, cachePrefix('nodes', m.name).slice(0, -m.name.length)],
    [
      `${IdentitiesPrefix}/`,
      await rawList(client, `${IdentitiesPrefix}/`, rev),
      `${cachePrefix('identities', m.name)}/`,
    ],
    [
      `${IPCachePrefix}/`,
      await rawList(client, `${IPCachePrefix}/`, rev),
      `${cachePrefix('ip', m.name)}/`,
    ],
  ];
  for (const [from, { kvs }, to] of mapping) {
    for (const [k, v] of kvs) out.set(to + k.slice(from.length), v);
  }
  return out;
}

async function localCache(local: Etcd3, m: Mock): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const r of ['nodes', 'identities', 'ip'] as const) {
    for (const [k, v] of (await rawList(local, `${cachePrefix(r, m.name)}/`)).kvs) out.set(k, v);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Processes

interface CpuMem {
  ticks: number;
  rss: number;
  hwm: number;
}

function procStat(pid: number | undefined): CpuMem {
  if (pid === undefined) return { ticks: 0, rss: 0, hwm: 0 };
  try {
    const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const status = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
    const kb = (name: string): number =>
      Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return {
      ticks: Number(fields[11] ?? 0) + Number(fields[12] ?? 0),
      rss: kb('VmRSS'),
      hwm: kb('VmHWM'),
    };
  } catch {
    return { ticks: 0, rss: 0, hwm: 0 };
  }
}

function sumStat(pids: readonly (number | undefined)[]): CpuMem {
  return pids.reduce<CpuMem>(
    (a, p) => {
      const s = procStat(p);
      return { ticks: a.ticks + s.ticks, rss: a.rss + s.rss, hwm: a.hwm + s.hwm };
    },
    { ticks: 0, rss: 0, hwm: 0 },
  );
}

class MeshProcess {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private readonly tailLines: string[] = [];
  running = true;
  warnings = 0;
  errors = 0;

  private readonly logFile: WriteStream | undefined;

  constructor(
    readonly url: string,
    args: readonly string[],
    logPath?: string,
  ) {
    // e.g. BENCH_MESH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof' profiles KVStoreMesh alone.
    const nodeArgs = (process.env.BENCH_MESH_NODE_ARGS ?? '').split(' ').filter((a) => a !== '');
    this.child = spawn(process.execPath, [...nodeArgs, BIN, ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
    });
    this.logFile = logPath === undefined ? undefined : createWriteStream(logPath);
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.running = false;
        resolve();
      });
    });
    const out = this.child.stderr;
    if (out !== null) {
      createInterface({ input: out }).on('line', (line) => {
        if (line.includes('"level":40')) this.warnings++;
        else if (line.includes('"level":50') || line.includes('"level":60')) this.errors++;
        this.logFile?.write(`${line}\n`);
        this.tailLines.push(line);
        if (this.tailLines.length > 20) this.tailLines.shift();
      });
    }
  }

  get pid(): number | undefined {
    return this.running ? this.child.pid : undefined;
  }

  tail(): string {
    return this.tailLines.join('\n');
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000);
    await this.exited;
    clearTimeout(timer);
    this.logFile?.end();
  }
}

/** Series of one metric family from Prometheus text: label string → value. */
function metricSeries(text: string, name: string): number[] {
  const out: number[] = [];
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const rest = line.slice(name.length);
    if (!(rest.startsWith('{') || rest.startsWith(' '))) continue;
    const v = Number(line.slice(line.lastIndexOf(' ') + 1));
    if (Number.isFinite(v)) out.push(v);
  }
  return out;
}

interface Sample {
  t: number;
  queueMax: number;
  queueSum: number;
  syncErrors: number;
  failures: number;
  cpuPct: number;
  rss: number;
}

async function sampleMetrics(
  mesh: MeshProcess,
  t0: number,
  prev: { ticks: number; at: number },
): Promise<Sample | undefined> {
  let text: string;
  try {
    text = (await mesh.get('/metrics')).body;
  } catch {
    return undefined;
  }
  const queue = metricSeries(text, 'cilium_kvstoremesh_kvstore_sync_queue_size');
  const stat = procStat(mesh.pid);
  const now = performance.now();
  const cpuPct = ((stat.ticks - prev.ticks) / CLK_TCK / ((now - prev.at) / 1000)) * 100;
  prev.ticks = stat.ticks;
  prev.at = now;
  return {
    t: round(secs(t0), 1),
    queueMax: Math.max(0, ...queue),
    queueSum: queue.reduce((a, b) => a + b, 0),
    syncErrors: metricSeries(text, 'cilium_kvstoremesh_kvstore_sync_errors_total').reduce(
      (a, b) => a + b,
      0,
    ),
    failures: metricSeries(text, 'cilium_kvstoremesh_remote_cluster_failures').reduce(
      (a, b) => a + b,
      0,
    ),
    cpuPct: round(cpuPct, 1),
    rss: stat.rss,
  };
}

// ---------------------------------------------------------------------------------------------
// Churn

interface ChurnResult {
  ops: { node: number; endpoint: number; identity: number };
  deletes: number;
  failed: number;
  seconds: number;
  maxInflight: number;
}

async function churn(
  mocks: readonly Mock[],
  seconds: number,
  nodes: number,
  endpoints: number,
  identities: number,
): Promise<ChurnResult> {
  const k = mocks.length;
  const ops = { node: 0, endpoint: 0, identity: 0 };
  let deletes = 0;
  let failed = 0;
  let inflight = 0;
  let maxInflight = 0;
  const pending = new Set<Promise<void>>();
  const pick = <T>(xs: readonly T[]): T => {
    const x = xs[Math.floor(Math.random() * xs.length)];
    if (x === undefined) throw new Error('empty');
    return x;
  };
  const run = (fn: () => Promise<unknown>): void => {
    inflight++;
    maxInflight = Math.max(maxInflight, inflight);
    const p = fn()
      .then(
        () => undefined,
        () => {
          failed++;
        },
      )
      .finally(() => {
        inflight--;
        pending.delete(p);
      });
    pending.add(p);
  };
  const op = (kind: keyof typeof ops): void => {
    const m = pick(mocks);
    const c = m.client;
    if (c === undefined) return;
    const rev = ++m.rev;
    if (kind === 'node') {
      const [key, value] = nodeValue(m, Math.floor(Math.random() * nodes), rev);
      run(() => c.put(key).value(value).exec());
    } else if (kind === 'identity') {
      const i = Math.floor(Math.random() * identities);
      const [key, value] = identityValue(m, i, rev);
      if (m.deletedIdentities.has(i)) {
        m.deletedIdentities.delete(i);
        run(() => c.put(key).value(value).exec());
      } else if (Math.random() < 0.5) {
        m.deletedIdentities.add(i);
        deletes++;
        run(() => c.delete().key(key).exec());
      } else {
        run(() => c.put(key).value(value).exec());
      }
    } else {
      const i = Math.floor(Math.random() * endpoints);
      const [key, value] = endpointValue(m, i, rev, nodes, identities);
      if (m.deletedEndpoints.has(i)) {
        m.deletedEndpoints.delete(i);
        run(() => c.put(key).value(value).exec());
      } else if (Math.random() < 0.3) {
        m.deletedEndpoints.add(i);
        deletes++;
        run(() => c.delete().key(key).exec());
      } else {
        run(() => c.put(key).value(value).exec());
      }
    }
    ops[kind]++;
  };
  const t0 = performance.now();
  for (;;) {
    const elapsed = Math.min(secs(t0), seconds);
    for (const kind of ['node', 'endpoint', 'identity'] as const) {
      const due = Math.floor(RATE[kind] * k * elapsed);
      while (ops[kind] < due && inflight < CHURN_MAX_INFLIGHT) op(kind);
    }
    if (elapsed >= seconds) break;
    await sleep(CHURN_TICK_MS);
  }
  await Promise.all([...pending]);
  return { ops, deletes, failed, seconds: secs(t0), maxInflight };
}

// ---------------------------------------------------------------------------------------------
// One agent of the local cluster reading the cache

interface AgentResult {
  syncSeconds: number;
  endpoints: number;
  nodes: number;
  identities: number;
  before: MemoryUsage & { vmRss: number; vmHwm: number };
  after: MemoryUsage & { vmRss: number; vmHwm: number };
}

interface StatusCluster {
  name?: unknown;
  ready?: unknown;
  'num-nodes'?: unknown;
  'num-endpoints'?: unknown;
  'num-identities'?: unknown;
}

function statusClusters(status: unknown): StatusCluster[] {
  if (typeof status !== 'object' || status === null || !('clustermesh' in status)) return [];
  const cm: unknown = status.clustermesh;
  if (typeof cm !== 'object' || cm === null || !('clusters' in cm)) return [];
  const clusters: unknown = cm.clusters;
  return Array.isArray(clusters) ? (clusters as StatusCluster[]) : [];
}

/**
 * An agent of the local cluster in its own process: one config file per remote cluster,
 * each naming the local etcd (as the reference's agents do with KVStoreMesh); it finds
 * `cached: true` in the cluster configs and reads `cilium/cache/...`. Memory is taken
 * after forced full GCs, before the files appear and once every cluster is synced.
 */
async function measureAgent(
  local: EtcdServer,
  mocks: readonly Mock[],
  want: { nodes: number; identities: number; endpoints: number },
  cleanups: (() => Promise<void>)[],
): Promise<AgentResult> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-kvstoremesh-agent-'));
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  const staged = join(dir, '.staged');
  const configDir = join(dir, 'clustermesh');
  await mkdir(staged);
  await mkdir(configDir);
  await Promise.all(mocks.map((m) => local.writeClientConfig(join(staged, m.name))));
  const apiPort = await freePort();
  const agent = new AgentProcess(`http://127.0.0.1:${String(apiPort)}`, [
    'agent',
    '--cluster-name',
    LOCAL,
    '--cluster-id',
    String(LOCAL_ID),
    '--node-name',
    'bench-node',
    '--kvstore-opt',
    `etcd.address=${local.endpoints.join(',')}`,
    '--clustermesh-config',
    configDir,
    '--api-addr',
    `127.0.0.1:${String(apiPort)}`,
  ]);
  cleanups.push(() => agent.stop());
  await agent.waitHealthy();
  await sleep(1_000);
  const before = await agent.memoryAfterGc();
  const t = performance.now();
  // Renamed in: the agent never reads a half-written file.
  for (const m of mocks) await rename(join(staged, m.name), join(configDir, m.name));
  const names = new Set(mocks.map((m) => m.name));
  let last: { ready: number; nodes: number; endpoints: number; identities: number };
  for (;;) {
    const clusters = statusClusters(await agent.json('/v1/status')).filter(
      (c) => typeof c.name === 'string' && names.has(c.name),
    );
    const num = (v: unknown): number => (typeof v === 'number' ? v : 0);
    last = {
      ready: clusters.filter((c) => c.ready === true).length,
      nodes: clusters.reduce((a, c) => a + num(c['num-nodes']), 0),
      endpoints: clusters.reduce((a, c) => a + num(c['num-endpoints']), 0),
      identities: clusters.reduce((a, c) => a + num(c['num-identities']), 0),
    };
    if (
      last.ready === mocks.length &&
      last.nodes === want.nodes &&
      last.endpoints === want.endpoints &&
      last.identities === want.identities
    ) {
      break;
    }
    if (performance.now() - t > AGENT_SYNC_TIMEOUT_MS) {
      throw new Error(
        `agent not synced in time: ${JSON.stringify(last)}, want ${JSON.stringify(want)}\n` +
          agent.tail(),
      );
    }
    await sleep(250);
  }
  const syncSeconds = secs(t);
  const after = await agent.memoryAfterGc();
  await agent.stop();
  return { syncSeconds, ...last, before, after };
}

// ---------------------------------------------------------------------------------------------

export async function main(args: string[]): Promise<void> {
  const k = flag(args, 'clusters', 'positive integer', 50);
  const churnSeconds = flag(args, 'churn-seconds', 'positive integer', 300);
  const nodes = Math.min(flag(args, 'nodes', 'positive integer', 100), 65_535);
  const endpoints = Math.min(flag(args, 'endpoints', 'positive integer', 1000), 65_536);
  const identities = Math.min(flag(args, 'identities', 'positive integer', 100), 65_536 - 256);
  if (k > 254) throw new Error('--clusters: at most 254 (IDs 2..255)');
  const perCluster = nodes + identities + endpoints;
  const withAgent = !args.includes('--no-agent');
  const logIdx = args.indexOf('--mesh-log');
  const meshLog = logIdx >= 0 ? args[logIdx + 1] : undefined;

  const cleanups: (() => Promise<void>)[] = [];
  let heartbeat: NodeJS.Timeout | undefined;
  try {
    const tAll = performance.now();
    // --- the mock clusters ------------------------------------------------------------------
    let t = performance.now();
    const localOpts = { snapshotCount: 100_000, logLevel: 'error' };
    const [local, baselineEtcd] = await Promise.all([startEtcd(localOpts), startEtcd(localOpts)]);
    cleanups.push(
      () => local.destroy(),
      () => baselineEtcd.destroy(),
    );
    // The mocks stand for remote clusters on other machines: on this 2-core machine
    // their 250 etcd processes would otherwise take the CPU KVStoreMesh and its local
    // etcd need (the reference runs its mock on a machine of its own). Niced and with
    // one Go thread each; the local etcd and KVStoreMesh keep normal priority.
    const binDir = await mkdtemp(join(tmpdir(), 'bench-kvstoremesh-bin-'));
    cleanups.push(() => rm(binDir, { recursive: true, force: true }));
    const mockBinary = join(binDir, 'etcd-mock');
    await writeFile(
      mockBinary,
      `#!/bin/sh\nGOMAXPROCS=1 exec nice -n ${String(MOCK_NICE)} ${findEtcdBinary()} "$@"\n`,
    );
    await chmod(mockBinary, 0o755);
    const mocks: Mock[] = [];
    for (let i = 0; i < k; i += 10) {
      const started = await Promise.all(
        Array.from({ length: Math.min(10, k - i) }, (_, j) =>
          startEtcd({
            logLevel: 'error',
            name: mockName(i + j),
            heartbeatIntervalMs: 100,
            electionTimeoutMs: 1000,
            etcdBinary: mockBinary,
          }),
        ),
      );
      for (const [j, etcd] of started.entries()) {
        cleanups.push(() => etcd.destroy());
        mocks.push({
          name: mockName(i + j),
          id: i + j + 2,
          etcd,
          client: undefined,
          deletedEndpoints: new Set(),
          deletedIdentities: new Set(),
          rev: 0,
        });
      }
    }
    cleanups.push(async () => {
      for (const m of mocks) m.client?.close();
      await Promise.resolve();
    });
    const etcdStartS = secs(t);
    console.error(`started ${String(k)} mock etcds + 2 in ${etcdStartS.toFixed(1)}s`);

    t = performance.now();
    let written = 0;
    await pool(k, 8, async (i) => {
      const m = mocks[i];
      if (m === undefined) return;
      const n = await populate(m, nodes, endpoints, identities);
      written += n;
    });
    const populateS = secs(t);
    console.error(`populated ${String(written)} keys in ${populateS.toFixed(1)}s`);
    heartbeat = setInterval(() => {
      for (const m of mocks) void m.client?.put(HeartbeatPath).value(encodeHeartbeat()).exec();
    }, HEARTBEAT_MS);
    const mockPids = mocks.map((m) => m.etcd.pid);
    const mockIdle = sumStat(mockPids);

    // --- baseline: raw list of every mock + raw batched txns into a fresh etcd ---------------
    const baseClient = baselineEtcd.createClient();
    cleanups.push(async () => {
      baseClient.close();
      await Promise.resolve();
    });
    t = performance.now();
    const listed: Map<string, string>[] = new Array<Map<string, string>>(k);
    await pool(k, 16, async (i) => {
      const m = mocks[i];
      if (m !== undefined) listed[i] = await expectedCache(m);
    });
    const rawListS = secs(t);
    t = performance.now();
    const allPairs = listed.flatMap((m) => [...m.entries()]);
    const batches: [string, string][][] = [];
    for (let i = 0; i < allPairs.length; i += MAX_TXN_OPS) {
      batches.push(allPairs.slice(i, i + MAX_TXN_OPS));
    }
    await pool(batches.length, 8, async (i) => {
      const b = batches[i];
      if (b !== undefined) await txnPut(baseClient, b);
    });
    const rawWriteS = secs(t);
    const rawTotalS = rawListS + rawWriteS;
    if (allPairs.length !== k * perCluster) {
      throw new Error(
        `raw list saw ${String(allPairs.length)}, expected ${String(k * perCluster)}`,
      );
    }
    console.error(
      `baseline: list ${rawListS.toFixed(2)}s + write ${rawWriteS.toFixed(2)}s for ` +
        `${String(allPairs.length)} keys`,
    );
    await baselineEtcd.destroy();

    // --- KVStoreMesh -----------------------------------------------------------------------
    const dir = await mkdtemp(join(tmpdir(), 'bench-kvstoremesh-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await Promise.all(mocks.map((m) => m.etcd.writeClientConfig(join(dir, m.name))));
    const localClient = local.createClient();
    cleanups.push(async () => {
      localClient.close();
      await Promise.resolve();
    });
    const port = await freePort();
    t = performance.now();
    const mesh = new MeshProcess(
      `http://127.0.0.1:${String(port)}`,
      [
        'kvstoremesh',
        '--cluster-name',
        LOCAL,
        '--cluster-id',
        String(LOCAL_ID),
        '--kvstore-opt',
        `etcd.address=${local.endpoints.join(',')}`,
        '--clustermesh-config',
        dir,
        '--health-addr',
        `127.0.0.1:${String(port)}`,
      ],
      meshLog,
    );
    cleanups.push(() => mesh.stop());
    const bootSamples: Sample[] = [];
    const prevCpu = { ticks: 0, at: performance.now() };
    let readyS: number | undefined;
    let canariesS: number | undefined;
    let lastSample = 0;
    const wantCanaries = k * MeshResources.length;
    let canaries = 0;
    for (;;) {
      if (!mesh.running) throw new Error(`kvstoremesh exited\n${mesh.tail()}`);
      if (readyS === undefined) {
        try {
          if ((await mesh.get('/readyz')).status === 200) readyS = secs(t);
        } catch {
          // Not listening yet.
        }
      }
      if (canariesS === undefined) {
        canaries = await countPrefix(localClient, `${SyncedPrefix}/`);
        if (canaries >= wantCanaries) canariesS = secs(t);
      }
      if (readyS !== undefined && canariesS !== undefined) break;
      if (performance.now() - lastSample > SAMPLE_MS) {
        lastSample = performance.now();
        const s = await sampleMetrics(mesh, t, prevCpu);
        if (s !== undefined) {
          bootSamples.push(s);
          console.error(
            `  boot t=${String(s.t)}s canaries=${String(canaries)}/${String(wantCanaries)} ` +
              `queue=${String(s.queueSum)} cpu=${String(s.cpuPct)}% errors=${String(s.syncErrors)}`,
          );
        }
      }
      if (performance.now() - t > BOOTSTRAP_TIMEOUT_MS) {
        throw new Error(
          `not bootstrapped in time: ready=${String(readyS)} canaries=${String(canaries)}/` +
            `${String(wantCanaries)}\n${mesh.tail()}`,
        );
      }
      await sleep(100);
    }
    const bootStat = procStat(mesh.pid);
    const bootCpuS = bootStat.ticks / CLK_TCK;
    const bootMetrics = (await mesh.get('/metrics')).body;
    const bootstrapMetric = Math.max(
      0,
      ...metricSeries(bootMetrics, 'cilium_kvstoremesh_bootstrap_seconds'),
    );
    // Every canary of a cluster is written after its backlog, so the cache is complete.
    const cacheCounts = {
      nodes: await countPrefix(localClient, `${cacheResourcePrefix('nodes')}/`),
      identities: await countPrefix(localClient, `${cacheResourcePrefix('identities')}/`),
      ip: await countPrefix(localClient, `${cacheResourcePrefix('ip')}/`),
    };
    const cacheOk =
      cacheCounts.nodes === k * nodes &&
      cacheCounts.identities === k * identities &&
      cacheCounts.ip === k * endpoints;
    const bootS = Math.max(readyS, canariesS);
    console.error(
      `kvstoremesh: ready ${readyS.toFixed(2)}s, all ${String(wantCanaries)} canaries ` +
        `${canariesS.toFixed(2)}s, cache ${JSON.stringify(cacheCounts)} ` +
        `(${cacheOk ? 'as expected' : 'MISMATCH'}), CPU ${bootCpuS.toFixed(1)}s, ` +
        `RSS ${String(mib(bootStat.rss))} MiB`,
    );

    // --- one agent reading the cache before churn (KVStoreMesh running, idle) -------------
    let agentRes: AgentResult | undefined;
    if (withAgent) {
      const want = {
        nodes: await countPrefix(localClient, `${cacheResourcePrefix('nodes')}/`),
        identities: await countPrefix(localClient, `${cacheResourcePrefix('identities')}/`),
        endpoints: await countPrefix(localClient, `${cacheResourcePrefix('ip')}/`),
      };
      agentRes = await measureAgent(local, mocks, want, cleanups);
      console.error(
        `agent: synced ${String(agentRes.endpoints)} remote endpoints in ` +
          `${agentRes.syncSeconds.toFixed(1)}s, RSS ${String(mib(agentRes.before.vmRss))} → ` +
          `${String(mib(agentRes.after.vmRss))} MiB, heap ${String(mib(agentRes.before.heapUsed))} → ` +
          `${String(mib(agentRes.after.heapUsed))} MiB`,
      );
    }
    // --- churn -----------------------------------------------------------------------------
    const churnSamples: Sample[] = [];
    const localPid = local.pid;
    const churnStart = {
      mesh: procStat(mesh.pid),
      local: procStat(localPid),
      mocks: sumStat(mockPids),
      at: performance.now(),
    };
    prevCpu.ticks = churnStart.mesh.ticks;
    prevCpu.at = churnStart.at;
    const sampling = { on: true };
    const sampler = (async () => {
      while (sampling.on) {
        await sleep(SAMPLE_MS);
        const s = await sampleMetrics(mesh, churnStart.at, prevCpu);
        if (s !== undefined) churnSamples.push(s);
      }
    })();
    const churned = await churn(mocks, churnSeconds, nodes, endpoints, identities);
    const churnEnd = {
      mesh: procStat(mesh.pid),
      local: procStat(localPid),
      mocks: sumStat(mockPids),
      at: performance.now(),
    };
    // Convergence: the local cache holds exactly what the mocks hold.
    t = performance.now();
    // Counted in the mocks: concurrent churn writes of one key may land in either order.
    let expectedIp = 0;
    let expectedId = 0;
    await pool(k, 16, async (i) => {
      const c = mocks[i]?.client;
      if (c === undefined) return;
      const [ip, id] = await Promise.all([
        countPrefix(c, `${IPCachePrefix}/`),
        countPrefix(c, `${IdentitiesPrefix}/`),
      ]);
      expectedIp += ip;
      expectedId += id;
    });
    let countsS: number | undefined;
    for (;;) {
      const ip = await countPrefix(localClient, `${cacheResourcePrefix('ip')}/`);
      const id = await countPrefix(localClient, `${cacheResourcePrefix('identities')}/`);
      if (ip === expectedIp && id === expectedId) {
        countsS = secs(t);
        break;
      }
      if (performance.now() - t > CONVERGE_TIMEOUT_MS) {
        console.error(
          `counts not converged: ip ${String(ip)}/${String(expectedIp)}, identities ` +
            `${String(id)}/${String(expectedId)}`,
        );
        break;
      }
      await sleep(100);
    }
    let mismatches = 0;
    let compared = 0;
    for (let attempt = 0; attempt < 20; attempt++) {
      mismatches = 0;
      compared = 0;
      await pool(k, 8, async (i) => {
        const m = mocks[i];
        if (m === undefined) return;
        const [want, have] = await Promise.all([expectedCache(m), localCache(localClient, m)]);
        compared += want.size;
        for (const [key, v] of want) if (have.get(key) !== v) mismatches++;
        for (const key of have.keys()) if (!want.has(key)) mismatches++;
      });
      if (mismatches === 0) break;
      await sleep(1_000);
    }
    const convergedS = secs(t);
    sampling.on = false;
    await sampler;
    const final = await sampleMetrics(mesh, churnStart.at, prevCpu);
    if (final !== undefined) churnSamples.push(final);
    const churnWall = (churnEnd.at - churnStart.at) / 1000;
    const cpuPct = (a: CpuMem, b: CpuMem): number =>
      ((b.ticks - a.ticks) / CLK_TCK / churnWall) * 100;
    const meshCpu = cpuPct(churnStart.mesh, churnEnd.mesh);
    const localCpu = cpuPct(churnStart.local, churnEnd.local);
    const mocksCpu = cpuPct(churnStart.mocks, churnEnd.mocks);
    const maxOf = (xs: Sample[], f: (s: Sample) => number): number =>
      xs.length === 0 ? NaN : Math.max(...xs.map(f));
    const queueMax = maxOf(churnSamples, (s) => s.queueMax);
    const queueSumMax = maxOf(churnSamples, (s) => s.queueSum);
    const syncErrors = maxOf([...bootSamples, ...churnSamples], (s) => s.syncErrors);
    const failures = maxOf([...bootSamples, ...churnSamples], (s) => s.failures);
    const rssMax = maxOf(churnSamples, (s) => s.rss);
    const totalOps = churned.ops.node + churned.ops.endpoint + churned.ops.identity;
    const meshHwm = procStat(mesh.pid).hwm;
    const warnings = mesh.warnings;
    const errors = mesh.errors;
    await mesh.stop();
    const entries = k * perCluster;
    const agentEps = agentRes?.endpoints ?? NaN;
    const agentRssPerEp =
      agentRes === undefined ? NaN : (agentRes.after.vmRss - agentRes.before.vmRss) / agentEps;
    const agentHeapPerEp =
      agentRes === undefined
        ? NaN
        : (agentRes.after.heapUsed - agentRes.before.heapUsed) / agentEps;

    const rows: Row[] = [
      {
        metric: 'bootstrap: spawn → all canaries',
        ours: canariesS,
        raw: rawTotalS,
        unit: 's',
        higherIsBetter: false,
        goal: '<= 60 s (250 clusters)',
      },
      {
        metric: 'bootstrap: spawn → /readyz 200',
        ours: readyS,
        raw: rawTotalS,
        unit: 's',
        higherIsBetter: false,
      },
      {
        metric: 'bootstrap entries/s',
        ours: entries / bootS,
        raw: entries / rawTotalS,
        unit: 'keys/s',
        higherIsBetter: true,
      },
      {
        metric: 'churn: sync queue size max',
        ours: queueMax,
        raw: NaN,
        unit: 'keys',
        higherIsBetter: false,
        goal: `<= ${String(QUEUE_GOAL)}`,
      },
      {
        metric: 'sync errors total',
        ours: syncErrors,
        raw: NaN,
        unit: 'count',
        higherIsBetter: false,
        goal: '0',
      },
      {
        metric: 'remote cluster failures total',
        ours: failures,
        raw: NaN,
        unit: 'count',
        higherIsBetter: false,
        goal: '0',
      },
      {
        metric: 'churn: KVStoreMesh CPU',
        ours: meshCpu,
        raw: NaN,
        unit: '% of a core',
        higherIsBetter: false,
      },
      {
        metric: 'churn: KVStoreMesh RSS max',
        ours: mib(rssMax),
        raw: NaN,
        unit: 'MiB',
        higherIsBetter: false,
      },
      {
        metric: `agent: memory per remote endpoint (RSS, ${String(agentEps)} endpoints)`,
        ours: agentRssPerEp,
        raw: NaN,
        unit: 'B',
        higherIsBetter: false,
      },
      {
        metric: 'agent: heap per remote endpoint',
        ours: agentHeapPerEp,
        raw: NaN,
        unit: 'B',
        higherIsBetter: false,
      },
      {
        metric: 'churn end → cache identical',
        ours: convergedS,
        raw: NaN,
        unit: 's',
        higherIsBetter: false,
      },
    ];
    report('kvstoremesh', rows, {
      clusters: k,
      nodesPerCluster: nodes,
      endpointsPerCluster: endpoints,
      identitiesPerCluster: identities,
      churnSeconds,
      mock: `one single-member etcd per mock cluster (raft heartbeat 100 ms, GOMAXPROCS=1, nice ${String(MOCK_NICE)}), reference format written with raw batched txns`,
      kvstoremesh: 'child process: bin/clustermesh kvstoremesh (default flags, LOG_LEVEL=warn)',
      baseline: `raw etcd3 paged list (${String(PAGE)}/page, 16 clusters at once) + raw txns of ${String(MAX_TXN_OPS)} puts (8 in flight) into a fresh etcd`,
      mockEtcdStartSeconds: round(etcdStartS, 2),
      populateSeconds: round(populateS, 2),
      mockEtcdRssTotalMiB: mib(mockIdle.rss),
      rawListSeconds: round(rawListS),
      rawWriteSeconds: round(rawWriteS),
      readySeconds: round(readyS),
      allCanariesSeconds: round(canariesS),
      bootstrapSecondsMetric: bootstrapMetric,
      bootstrapCpuSeconds: round(bootCpuS, 2),
      bootstrapRssMiB: mib(bootStat.rss),
      bootstrapQueueMax: maxOf(bootSamples, (s) => s.queueMax),
      cacheAfterBootstrap: cacheCounts,
      cacheAfterBootstrapOk: cacheOk,
      churnOps: churned.ops,
      churnDeletes: churned.deletes,
      churnFailedWrites: churned.failed,
      churnOpsPerSecond: round(totalOps / churned.seconds, 1),
      churnTargetOpsPerSecond: round(k * (RATE.node + RATE.endpoint + RATE.identity), 1),
      churnMaxInflight: churned.maxInflight,
      churnQueueSumMax: queueSumMax,
      churnSamples: churnSamples.length,
      churnCpuMaxSamplePct: maxOf(churnSamples, (s) => s.cpuPct),
      kvstoremeshRssHwmMiB: mib(meshHwm),
      localEtcdCpuPct: round(localCpu, 1),
      mockEtcdsCpuPct: round(mocksCpu, 1),
      countsConvergedSeconds: countsS === undefined ? null : round(countsS),
      finalKeysCompared: compared,
      finalMismatches: mismatches,
      kvstoremeshLogWarnings: warnings,
      kvstoremeshLogErrors: errors,
      agent:
        agentRes === undefined
          ? null
          : {
              process:
                'bin/clustermesh agent of cluster1, one config file per remote naming the local etcd (cache)',
              syncSeconds: round(agentRes.syncSeconds, 2),
              remoteEndpoints: agentRes.endpoints,
              remoteNodes: agentRes.nodes,
              remoteIdentities: agentRes.identities,
              rssBeforeMiB: mib(agentRes.before.vmRss),
              rssAfterMiB: mib(agentRes.after.vmRss),
              heapUsedBeforeMiB: mib(agentRes.before.heapUsed),
              heapUsedAfterMiB: mib(agentRes.after.heapUsed),
              rssHwmMiB: mib(agentRes.after.vmHwm),
              rssPerEndpointBytes: Math.round(agentRssPerEp),
              heapPerEndpointBytes: Math.round(agentHeapPerEp),
            },
      wallSeconds: round(secs(tAll), 1),
      node: process.version,
    });
  } finally {
    clearInterval(heartbeat);
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${String(err)}`);
      }
    }
  }
}
