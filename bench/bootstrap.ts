/**
 * Bootstrap benchmark: an agent of cluster2 connecting to a big cluster1. How long
 * from the clustermesh config file appearing until the agent holds every node,
 * identity and endpoint IP of cluster1, and how much memory that state costs.
 *
 *   npm run bench -- bootstrap [--endpoints 100000] [--identities 10000] [--nodes 1000]
 *                              [--agent-cpu-prof DIR]
 *
 * cluster1's etcd is filled directly in the reference's kvstore format (what its
 * clustermesh-apiserver would have written: nodes, identities, ipcache, cluster
 * config, sync canaries) with batched transactions. The agent runs as a separate
 * process (`bin/clustermesh agent`, preloaded with a SIGUSR2 → gc() hook), so its
 * memory is its own: RSS is read after a forced full GC before the config file is
 * written (agent running, empty config dir) and again once it is synced.
 *
 * Baseline: a raw etcd3 paged list (same page size as the agent, 256) of the three
 * prefixes the agent must read, concurrently — the least any reader has to do.
 */
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AgentProcess, procMemory } from './agent-process.js';
import type { Etcd3 } from 'etcd3';
import {
  MeshResources,
  NodeAddressType,
  apiserverCanaryKey,
  apiserverClusterConfig,
  clusterConfigKey,
  encodeClusterConfig,
  encodeIPIdentityPair,
  encodeNode,
  encodeSyncedCanary,
  formatLabelsForKVStore,
  identityKey,
  ipcacheKey,
  makeNode,
  nodeKey,
  nodesClusterPrefix,
  IdentitiesIdPrefix,
  IPCachePrefix,
} from '../src/keyspace/index.js';
import type { TxnOp } from '../src/kvstore/backend.js';
import { MAX_TXN_OPS } from '../src/kvstore/backend.js';
import { EtcdBackend } from '../src/kvstore/etcd.js';
import { startEtcd, type EtcdServer } from '../test/support/etcd.js';
import { until } from '../test/support/eventually.js';
import { freePort } from '../test/support/ports.js';
import { flag, pool, rawPagedList, report, stringFlag, type Row } from './lib.js';

const CLUSTER1 = 'cluster1';
const CLUSTER1_ID = 1;
const CLUSTER2 = 'cluster2';
/** First identity of cluster1 used here (its range is 65536..131071; < 256 locally is reserved). */
const IDENTITY_BASE = CLUSTER1_ID * 65536 + 256;
const PAGE = 256;
const SYNC_TIMEOUT_MS = 180_000;
const POLL_MS = 25;

// Data only: nothing ever connects to these addresses.
function nodeIP(n: number): string {
  const m = n + 1;
  return `10.1.${String(m >> 8)}.${String(m & 255)}`;
}

function podIP(i: number): string {
  return `10.${String(100 + (i >> 16))}.${String((i >> 8) & 255)}.${String(i & 255)}`;
}

/** The keys and values cluster1's clustermesh-apiserver would have written. */
function* state(endpoints: number, identities: number, nodes: number): Generator<TxnOp> {
  for (let n = 0; n < nodes; n++) {
    const name = `node-${String(n)}`;
    const node = makeNode({
      Name: name,
      Cluster: CLUSTER1,
      ClusterID: CLUSTER1_ID,
      IPAddresses: [{ Type: NodeAddressType.InternalIP, IP: nodeIP(n) }],
      IPv4AllocCIDR: `10.${String(100 + (n >> 8))}.${String(n & 255)}.0/24`,
      Source: 'custom-resource',
    });
    yield { kind: 'put', key: nodeKey(CLUSTER1, name), value: encodeNode(node) };
  }
  for (let k = 0; k < identities; k++) {
    const value = formatLabelsForKVStore({
      'k8s:app': `app-${String(k)}`,
      'k8s:io.kubernetes.pod.namespace': 'default',
      'k8s:io.cilium.k8s.policy.cluster': CLUSTER1,
    });
    yield { kind: 'put', key: identityKey(IDENTITY_BASE + k), value };
  }
  for (let i = 0; i < endpoints; i++) {
    const ip = podIP(i);
    const value = encodeIPIdentityPair({
      IP: ip,
      Mask: null,
      HostIP: nodeIP(i % nodes),
      ID: IDENTITY_BASE + (i % identities),
      Key: 0,
      Metadata: '',
      K8sNamespace: 'default',
      K8sPodName: `app-${String(i % identities)}-${String(i)}`,
    });
    yield { kind: 'put', key: ipcacheKey(ip), value };
  }
  const config = apiserverClusterConfig({
    id: CLUSTER1_ID,
    maxConnectedClusters: 255,
    serviceExportsEnabled: false,
  });
  yield { kind: 'put', key: clusterConfigKey(CLUSTER1), value: encodeClusterConfig(config) };
}

async function populate(
  etcd: EtcdServer,
  endpoints: number,
  identities: number,
  nodes: number,
): Promise<{ keys: number; ipcacheBytes: number }> {
  const backend = new EtcdBackend({ endpoints: etcd.endpoints });
  await backend.connect();
  try {
    const batches: TxnOp[][] = [];
    let batch: TxnOp[] = [];
    let ipcacheBytes = 0;
    for (const op of state(endpoints, identities, nodes)) {
      if (op.kind === 'put' && op.key.startsWith(IPCachePrefix)) {
        ipcacheBytes += Buffer.byteLength(op.key) + Buffer.byteLength(op.value);
      }
      batch.push(op);
      if (batch.length === MAX_TXN_OPS) {
        batches.push(batch);
        batch = [];
      }
    }
    if (batch.length > 0) batches.push(batch);
    await pool(batches.length, 8, async (i) => {
      const b = batches[i];
      if (b !== undefined) await backend.txn(b);
    });
    // The canaries last, as the apiserver writes them once everything else is written.
    const now = encodeSyncedCanary();
    await backend.txn(
      MeshResources.map((r) => ({ kind: 'put', key: apiserverCanaryKey(CLUSTER1, r), value: now })),
    );
    return { keys: batches.reduce((n, b) => n + b.length, 0) + MeshResources.length, ipcacheBytes };
  } finally {
    await backend.close();
  }
}

const PREFIXES = [
  `${nodesClusterPrefix(CLUSTER1)}/`,
  `${IdentitiesIdPrefix}/`,
  `${IPCachePrefix}/`,
] as const;

// Parses what the agent would: JSON objects (identity values are plain label strings).
const parseObject = (value: string): unknown => (value.startsWith('{') ? JSON.parse(value) : value);

/** Best of `rounds` concurrent lists of the three prefixes; returns [seconds, keys]. */

async function rawList(
  client: Etcd3,
  rounds: number,
  parse: boolean,
  page = PAGE,
): Promise<[number, number]> {
  let best = Infinity;
  let keys = 0;
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now();
    const counts = await Promise.all(
      PREFIXES.map((p) => rawPagedList(client, p, page, parse ? parseObject : undefined)),
    );
    best = Math.min(best, (performance.now() - t0) / 1000);
    keys = counts.reduce((a, b) => a + b, 0);
  }
  return [best, keys];
}

interface ClusterView {
  name: string;
  connected: boolean;
  ready: boolean;
  'num-nodes': number;
  'num-endpoints': number;
  'num-identities': number;
  synced?: Record<string, boolean>;
}

function clusterView(status: unknown, name: string): ClusterView | undefined {
  if (typeof status !== 'object' || status === null || !('clustermesh' in status)) return;
  const cm: unknown = status.clustermesh;
  if (typeof cm !== 'object' || cm === null || !('clusters' in cm)) return;
  const clusters: unknown = cm.clusters;
  if (!Array.isArray(clusters)) return;
  for (const c of clusters as unknown[]) {
    if (typeof c === 'object' && c !== null && 'name' in c && c.name === name) {
      return c as ClusterView;
    }
  }
  return undefined;
}

export async function main(args: string[]): Promise<void> {
  const endpoints = flag(args, 'endpoints', 'positive integer', 100_000);
  const identities = Math.min(flag(args, 'identities', 'positive integer', 10_000), 65_536 - 256);
  const nodes = Math.min(flag(args, 'nodes', 'positive integer', 1000), 65_535);
  if (endpoints > 150 * 65_536) throw new Error('--endpoints: at most 9830400');

  const cleanups: (() => Promise<void>)[] = [];
  try {
    const opts = { snapshotCount: 100_000, logLevel: 'error' };
    const [etcd1, etcd2] = await Promise.all([startEtcd(opts), startEtcd(opts)]);
    cleanups.push(
      () => etcd1.destroy(),
      () => etcd2.destroy(),
    );
    const dir = await mkdtemp(join(tmpdir(), 'bench-bootstrap-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    let t = performance.now();
    const written = await populate(etcd1, endpoints, identities, nodes);
    const populateS = (performance.now() - t) / 1000;
    console.error(
      `populated ${String(written.keys)} keys in ${populateS.toFixed(1)}s (direct txns)`,
    );

    // Baseline first (one warm-up round), so both read an etcd with warm caches.
    const client = etcd1.createClient();
    let raw: [number, number];
    let rawParsed: [number, number];
    let rawBig: [number, number];
    try {
      await rawList(client, 1, false);
      raw = await rawList(client, 2, false);
      rawParsed = await rawList(client, 1, true);
      // etcd 3.4 collects every revision of the remaining range for each page, so the
      // page size decides much of the cost: the same list with bigger pages, for scale.
      rawBig = await rawList(client, 1, false, 1024);
    } finally {
      client.close();
    }
    const expectedKeys = endpoints + identities + nodes;
    if (raw[1] !== expectedKeys) {
      throw new Error(`raw list saw ${String(raw[1])} keys, expected ${String(expectedKeys)}`);
    }
    console.error(
      `raw paged list: ${raw[0].toFixed(2)}s (with JSON.parse ${rawParsed[0].toFixed(2)}s)`,
    );

    const apiPort = await freePort();
    // `--agent-cpu-prof DIR`: a V8 CPU profile of the agent, written when it exits.
    const profDir = stringFlag(args, 'agent-cpu-prof');
    const nodeArgs = profDir === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
    const agent = new AgentProcess(
      `http://127.0.0.1:${String(apiPort)}`,
      [
        'agent',
        '--cluster-name',
        CLUSTER2,
        '--cluster-id',
        '2',
        '--node-name',
        'bench-node',
        '--kvstore-opt',
        `etcd.address=${etcd2.endpoints.join(',')}`,
        '--clustermesh-config',
        dir,
        '--api-addr',
        `127.0.0.1:${String(apiPort)}`,
        '--clustermesh-retry-base',
        '100ms',
      ],
      nodeArgs,
    );
    cleanups.push(() => agent.stop());
    await agent.waitHealthy();
    // Let start-up work (module loading, first watches) settle before the reference reading.
    await new Promise((r) => setTimeout(r, 1_000));
    const before = await agent.memoryAfterGc();

    // Written next to the directory and renamed in: the agent never sees a half-written file.
    const staged = join(tmpdir(), `bench-bootstrap-${String(process.pid)}-${CLUSTER1}`);
    cleanups.push(() => rm(staged, { force: true }));
    await etcd1.writeClientConfig(staged);
    t = performance.now();
    await rename(staged, join(dir, CLUSTER1));
    let connectedS: number | undefined;
    let readyS: number | undefined;
    const syncedS: Record<string, number> = {};
    let last: ClusterView | undefined;
    await until(
      async () => {
        const res = await agent.get('/v1/status');
        last = clusterView(JSON.parse(res.body), CLUSTER1);
        const now = (performance.now() - t) / 1000;
        if (last?.connected === true) connectedS ??= now;
        if (last?.ready === true) readyS ??= now;
        for (const [k, v] of Object.entries(last?.synced ?? {})) {
          if (v) syncedS[k] ??= Number(now.toFixed(3));
        }
        return (
          last?.ready === true &&
          last['num-nodes'] === nodes &&
          last['num-identities'] === identities &&
          last['num-endpoints'] === endpoints
        );
      },
      {
        timeoutMs: SYNC_TIMEOUT_MS,
        intervalMs: POLL_MS,
        message: () => `agent synced: ${JSON.stringify(last)}\n${agent.tail()}`,
      },
    );
    const syncS = (performance.now() - t) / 1000;
    const peak = procMemory(agent.pid);
    const after = await agent.memoryAfterGc();
    console.error(
      `agent synced in ${syncS.toFixed(2)}s (connected ${String(connectedS?.toFixed(2))}s, ` +
        `ready ${String(readyS?.toFixed(2))}s)`,
    );

    const entries = endpoints + identities + nodes;
    const rssDelta = after.vmRss - before.vmRss;
    const heapDelta = after.heapUsed - before.heapUsed;
    const rows: Row[] = [
      {
        metric: 'config written → synced',
        ours: syncS,
        raw: raw[0],
        unit: 's',
        higherIsBetter: false,
      },
      {
        metric: 'entries/s',
        ours: entries / syncS,
        raw: entries / raw[0],
        unit: 'keys/s',
        higherIsBetter: true,
      },
      {
        // raw: the endpoint's own key + value bytes in etcd, for scale.
        metric: 'memory per remote endpoint',
        ours: rssDelta / endpoints,
        raw: written.ipcacheBytes / endpoints,
        unit: 'B',
        higherIsBetter: false,
        goal: '<= 1024 B',
      },
    ];
    const mib = (n: number): number => Number((n / 1024 / 1024).toFixed(1));
    report('bootstrap', rows, {
      endpoints,
      identities,
      nodes,
      populate: 'direct batched txns in the reference kvstore format (no apiserver)',
      populateSeconds: Number(populateS.toFixed(2)),
      agent: 'separate process: bin/clustermesh agent, RSS after forced full GC (SIGUSR2 → gc())',
      baseline: `raw etcd3 paged list (${String(PAGE)}/page, 3 prefixes concurrently, best of 2 after a warm-up)`,
      rawListWithJsonParseSeconds: Number(rawParsed[0].toFixed(3)),
      connectedSeconds: connectedS === undefined ? null : Number(connectedS.toFixed(3)),
      readySeconds: readyS === undefined ? null : Number(readyS.toFixed(3)),
      syncedSeconds: syncedS,
      rawListPage1024Seconds: Number(rawBig[0].toFixed(3)),
      rssBeforeMiB: mib(before.vmRss),
      rssAfterMiB: mib(after.vmRss),
      rssPeakDuringSyncMiB: mib(peak.hwm),
      rssNoGcAtSyncMiB: mib(peak.rss),
      heapUsedBeforeMiB: mib(before.heapUsed),
      heapUsedAfterMiB: mib(after.heapUsed),
      heapTotalBeforeMiB: mib(before.heapTotal),
      heapTotalAfterMiB: mib(after.heapTotal),
      externalBeforeMiB: mib(before.external),
      externalAfterMiB: mib(after.external),
      heapUsedPerEndpointBytes: Math.round(heapDelta / endpoints),
      rssPerEntryBytes: Math.round(rssDelta / entries),
      node: process.version,
    });
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${String(err)}`);
      }
    }
  }
}
