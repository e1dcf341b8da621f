/**
 * What TLS and etcd users cost, each against plaintext measured in the same run:
 *
 *   npm run bench -- tls [--clusters 50] [--nodes 10] [--endpoints 200] [--identities 10]
 *                        [--up-samples 3] [--rounds 9] [--changes 300] [--part boot|up|prop]
 *
 * 1. KVStoreMesh bootstrap with K remote clusters (default 50): K mock etcds, each holding
 *    nodes, identities, endpoints, its cluster config, heartbeat and sync canaries. TLS:
 *    every mock runs with its own CA, client certificate auth and Cilium's etcdinit users,
 *    and KVStoreMesh dials `https://<mock>.mesh.cilium.io` (host aliases) as `remote`, its
 *    local etcd as `admin-cluster1`. Timed from KVStoreMesh's start until it is ready (every
 *    mock's data cached). Goal: TLS ≤ 1.3× plaintext.
 * 2. `up` 2 × 2 (etcd) ready: LocalMesh.start() in this process, TLS against `--insecure`.
 *    Goal: TLS ≤ 3 s.
 * 3. Propagation, both modes in one run at the same moment: one agent connected to a TLS mock
 *    (dialled as `remote` through its host alias) and a plaintext mock; an ipcache entry put
 *    into a mock (as its admin) until the agent's ipcache has it, the samples alternating
 *    between the mocks. `--rounds` rounds of `--changes` samples per mode; per round a p50 and
 *    p99 per mode; reported: their medians over the rounds, and the median of the per-round
 *    TLS/plaintext p99 ratios. Goal ≤ 1.2×.
 *
 * Part 2 holds the `up` lock (fixed 127.c.x addresses).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import { Agent } from '../src/agent/module.js';
import { clusterCertFiles, meshHostname, writeClusterCerts } from '../src/certs/index.js';
import { writeRemoteConfig } from '../src/clustermesh/remote-config.js';
import { startEtcd, type EtcdServer } from '../src/etcd/index.js';
import { etcdAuthPlan, initEtcdAuth } from '../src/etcd/users.js';
import {
  HeartbeatPath,
  MeshResources,
  NodeAddressType,
  apiserverCanaryKey,
  apiserverClusterConfig,
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
} from '../src/keyspace/index.js';
import { MAX_TXN_OPS } from '../src/kvstore/backend.js';
import { createBackend, resolveKvstoreConfig, type KvstoreConfig } from '../src/kvstore/config.js';
import { KvstoreMesh } from '../src/kvstoremesh/module.js';
import { silentLogger } from '../src/lib/logger.js';
import { readCredentials, writeAccessFiles } from '../src/localmesh/secure-etcd.js';
import { LocalMesh } from '../src/localmesh/up.js';
import { acquireUpLock, releaseUpLock } from '../test/support/up-lock.js';
import { flag, pool, report, stringFlag, summarize, type Row } from './lib.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface Mock {
  readonly name: string;
  readonly id: number;
  readonly etcd: EtcdServer;
  readonly dir: string;
}

interface Sizes {
  readonly nodes: number;
  readonly endpoints: number;
  readonly identities: number;
}

function mockName(i: number): string {
  return `mock-${String(i + 1).padStart(3, '0')}`;
}

function adminClient(m: Mock, tls: boolean): Etcd3 {
  const name = meshHostname(m.name);
  return m.etcd.createClient(
    tls
      ? { grpcOptions: { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name } }
      : {},
  );
}

async function startMock(base: string, i: number, tls: boolean): Promise<Mock> {
  const name = mockName(i);
  const id = i + 2;
  const dir = join(base, name);
  if (!tls)
    return {
      name,
      id,
      dir,
      etcd: await startEtcd({ name, heartbeatIntervalMs: 100, electionTimeoutMs: 1000 }),
    };
  const files = await writeClusterCerts(dir, { cluster: name });
  const etcd = await startEtcd({
    name,
    heartbeatIntervalMs: 100,
    electionTimeoutMs: 1000,
    tlsServerName: meshHostname(name),
    tls: {
      caFile: files.caFile,
      serverCertFile: files.server.certFile,
      serverKeyFile: files.server.keyFile,
      clientCertFile: files.clients.admin.certFile,
      clientKeyFile: files.clients.admin.keyFile,
    },
  });
  const m = { name, id, dir, etcd };
  const c = adminClient(m, true);
  try {
    await initEtcdAuth(c, etcdAuthPlan(name));
  } finally {
    c.close();
  }
  return m;
}

async function populate(m: Mock, tls: boolean, s: Sizes): Promise<void> {
  const pairs: [string, string][] = [];
  const ip = (a: number, n: number): string =>
    `${String(a)}.${String(m.id)}.${String(n >> 8)}.${String(n & 255)}`;
  for (let n = 0; n < s.nodes; n++) {
    const node = makeNode({
      Name: `node-${String(n)}`,
      Cluster: m.name,
      ClusterID: m.id,
      IPAddresses: [{ Type: NodeAddressType.InternalIP, IP: ip(100, n) }],
      IPv4AllocCIDR: `10.${String(m.id)}.${String(n & 255)}.0/24`,
      Source: 'custom-resource',
    });
    pairs.push([nodeKey(m.name, node.Name), encodeNode(node)]);
  }
  const idBase = m.id * 65536 + 256;
  for (let k = 0; k < s.identities; k++) {
    pairs.push([
      identityKey(idBase + k),
      formatLabelsForKVStore({
        'k8s:app': `app-${String(k)}`,
        'k8s:io.kubernetes.pod.namespace': 'default',
        'k8s:io.cilium.k8s.policy.cluster': m.name,
      }),
    ]);
  }
  for (let e = 0; e < s.endpoints; e++) {
    pairs.push([
      ipcacheKey(ip(10, e)),
      encodeIPIdentityPair({
        IP: ip(10, e),
        Mask: null,
        HostIP: ip(100, e % s.nodes),
        ID: idBase + (e % s.identities),
        Key: 0,
        Metadata: '',
        K8sNamespace: 'default',
        K8sPodName: `app-${String(e)}`,
      }),
    ]);
  }
  pairs.push([
    clusterConfigKey(m.name),
    encodeClusterConfig(
      apiserverClusterConfig({ id: m.id, maxConnectedClusters: 255, serviceExportsEnabled: false }),
    ),
  ]);
  pairs.push([HeartbeatPath, encodeHeartbeat()]);
  const now = encodeSyncedCanary();
  for (const r of MeshResources) pairs.push([apiserverCanaryKey(m.name, r), now]);
  const c = adminClient(m, tls);
  try {
    for (let i = 0; i < pairs.length; i += MAX_TXN_OPS) {
      await c.kv.txn({
        success: pairs.slice(i, i + MAX_TXN_OPS).map(([key, value]) => ({
          request_put: { key: Buffer.from(key), value: Buffer.from(value) },
        })),
      });
    }
  } finally {
    c.close();
  }
}

/** Seconds from KVStoreMesh's start until ready, with K mocks in `tls` mode. */
async function bootstrapOnce(k: number, tls: boolean, s: Sizes): Promise<number> {
  const base = await mkdtemp(join(tmpdir(), `bench-tls-${tls ? 'tls' : 'plain'}-`));
  const mocks: Mock[] = [];
  let local: EtcdServer | undefined;
  let km: KvstoreMesh | undefined;
  try {
    await pool(k, 4, async (i) => {
      const m = await startMock(base, i, tls);
      mocks.push(m);
      await populate(m, tls, s);
    });
    const localMock = await startMock(base, -1, tls);
    local = localMock.etcd;
    const configDir = join(base, 'kvstoremesh');
    let kvstore: KvstoreConfig;
    if (tls) {
      const { configs } = await writeAccessFiles(
        localMock.dir,
        localMock.name,
        '127.0.0.1',
        local.member.clientPort,
      );
      kvstore = await resolveKvstoreConfig('etcd', [`etcd.config=${configs.admin}`]);
      for (const m of mocks) {
        await writeRemoteConfig(configDir, {
          cluster: m.name,
          endpoint: `https://${meshHostname(m.name)}:${String(m.etcd.member.clientPort)}`,
          aliasIp: '127.0.0.1',
          tls: await readCredentials(clusterCertFiles(m.dir, m.name), 'remote'),
        });
      }
    } else {
      kvstore = await resolveKvstoreConfig('etcd', [`etcd.address=${local.clientUrl}`]);
      for (const m of mocks)
        await writeRemoteConfig(configDir, { cluster: m.name, endpoint: m.etcd.clientUrl });
    }
    // The local cluster is mock-000 (ID 1): its name only labels the cache.
    km = new KvstoreMesh({
      clusterName: localMock.name,
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore,
      clustermeshConfig: configDir,
      perClusterReadyTimeoutMs: 120_000,
      globalReadyTimeoutMs: 300_000,
      log: silentLogger,
    });
    const t0 = performance.now();
    await km.start();
    while (!km.ready) {
      if (performance.now() - t0 > 300_000) throw new Error('KVStoreMesh not ready after 300 s');
      await sleep(10);
    }
    const status = km.status();
    const ready = status.clusters.filter((c) => c.ready).length;
    if (ready !== k)
      throw new Error(
        `only ${String(ready)}/${String(k)} clusters ready (${tls ? 'TLS' : 'plain'})`,
      );
    return (performance.now() - t0) / 1000;
  } finally {
    await km?.stop();
    await Promise.all(mocks.map((m) => m.etcd.destroy()));
    await local?.destroy();
    await rm(base, { recursive: true, force: true });
  }
}

/** Milliseconds until `up` 2 × 2 is ready. */
async function upOnce(tls: boolean): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), `bench-tls-up-`));
  const mesh = new LocalMesh({
    clusters: 2,
    nodes: 2,
    kvstore: 'etcd',
    stateDir: join(dir, 'state'),
    tls,
    log: silentLogger,
  });
  try {
    const t0 = performance.now();
    await mesh.start();
    return performance.now() - t0;
  } finally {
    await mesh.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * Propagation, TLS against plaintext in one process at the same moment: one agent (its own
 * plaintext etcd) connected to two mock remote clusters, `mock-tls` (TLS, client
 * certificates, users; the agent dials `https://mock-tls.mesh.cilium.io` as `remote`, the
 * writer is its admin over TLS) and `mock-plain` (plaintext). Each sample puts an ipcache
 * entry into one mock and waits until the agent's ipcache has it; samples alternate between
 * the mocks (which goes first alternates too), so load swings hit both modes alike. Returns
 * the samples per round.
 */
async function propagationRounds(
  rounds: number,
  changes: number,
): Promise<{ tls: number[][]; plain: number[][] }> {
  const base = await mkdtemp(join(tmpdir(), 'bench-tls-prop-'));
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const sizes: Sizes = { nodes: 2, endpoints: 2, identities: 2 };
    const mocks = { tls: await startMock(base, 0, true), plain: await startMock(base, 1, false) };
    cleanups.push(
      () => mocks.tls.etcd.destroy(),
      () => mocks.plain.etcd.destroy(),
    );
    await populate(mocks.tls, true, sizes);
    await populate(mocks.plain, false, sizes);
    const local = await startEtcd({ name: 'local' });
    cleanups.push(() => local.destroy());
    const configDir = join(base, 'clustermesh');
    const tlsPort = mocks.tls.etcd.member.clientPort;
    await writeRemoteConfig(configDir, {
      cluster: mocks.tls.name,
      endpoint: `https://${meshHostname(mocks.tls.name)}:${String(tlsPort)}`,
      aliasIp: '127.0.0.1',
      tls: await readCredentials(clusterCertFiles(mocks.tls.dir, mocks.tls.name), 'remote'),
    });
    await writeRemoteConfig(configDir, {
      cluster: mocks.plain.name,
      endpoint: mocks.plain.etcd.clientUrl,
    });
    const agent = new Agent({
      clusterName: 'cluster1',
      clusterId: 1,
      nodeName: 'bench-node',
      maxConnectedClusters: 255,
      kvstore: await resolveKvstoreConfig('etcd', [`etcd.address=${local.clientUrl}`]),
      clustermeshConfig: configDir,
      // The mocks write their heartbeat once: it must not go stale during the run.
      timing: { retryBaseMs: 100, heartbeatIntervalMs: 3_600_000 },
      log: silentLogger,
    });
    await agent.start();
    cleanups.push(() => agent.stop());
    const t0 = performance.now();
    while (
      !agent.clustermeshStatus().clusters.every((c) => c.ready) ||
      agent.clustermeshStatus().clusters.length !== 2
    ) {
      if (performance.now() - t0 > 60_000) {
        throw new Error(`mocks not ready: ${JSON.stringify(agent.clustermeshStatus())}`);
      }
      await sleep(20);
    }
    // Writers as each mock's apiserver would write: its admin, over TLS for mock-tls.
    const { configs } = await writeAccessFiles(mocks.tls.dir, mocks.tls.name, '127.0.0.1', tlsPort);
    const writers = {
      tls: await createBackend(
        await resolveKvstoreConfig('etcd', [`etcd.config=${configs.admin}`]),
        {
          log: silentLogger,
        },
      ),
      plain: await createBackend(
        await resolveKvstoreConfig('etcd', [`etcd.address=${mocks.plain.etcd.clientUrl}`]),
        { log: silentLogger },
      ),
    };
    cleanups.push(
      () => writers.tls.close(),
      () => writers.plain.close(),
    );

    const once = async (mode: 'tls' | 'plain', i: number): Promise<number> => {
      const m = mocks[mode];
      const ip = `10.${String(m.id)}.${String((i >> 8) & 255)}.${String(i & 255)}`;
      const cidr = `${ip}/32`;
      const seen = new Promise<number>((resolve) => {
        const off = agent.views.ipcache.onChange((event, entry) => {
          if (event === 'upsert' && entry.cidr === cidr) {
            off();
            resolve(performance.now());
          }
        });
      });
      const start = performance.now();
      await writers[mode].put(
        ipcacheKey(ip),
        encodeIPIdentityPair({
          IP: ip,
          Mask: null,
          HostIP: `100.${String(m.id)}.0.0`,
          ID: m.id * 65536 + 256,
          Key: 0,
          Metadata: '',
          K8sNamespace: 'default',
          K8sPodName: `bench-${String(i)}`,
        }),
      );
      const at = await Promise.race([seen, sleep(10_000).then(() => Number.NaN)]);
      if (Number.isNaN(at)) throw new Error(`${mode} change ${String(i)} not propagated in 10 s`);
      return at - start;
    };
    // Warm-up: first writes pay for lazy setup on both sides.
    for (let i = 0; i < 20; i++) {
      await once('tls', 60_000 + i);
      await once('plain', 60_000 + i);
    }
    const out = { tls: [] as number[][], plain: [] as number[][] };
    for (let r = 0; r < rounds; r++) {
      const round = { tls: [] as number[], plain: [] as number[] };
      for (let i = 0; i < changes; i++) {
        const n = r * changes + i;
        const order = n % 2 === 0 ? (['tls', 'plain'] as const) : (['plain', 'tls'] as const);
        for (const mode of order) {
          round[mode].push(await once(mode, n));
          await sleep(2);
        }
      }
      out.tls.push(round.tls);
      out.plain.push(round.plain);
      console.error(
        `propagation round ${String(r + 1)}/${String(rounds)}: p99 TLS ${summarize(round.tls).p99.toFixed(2)} ms, plaintext ${summarize(round.plain).p99.toFixed(2)} ms`,
      );
    }
    return out;
  } finally {
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await rm(base, { recursive: true, force: true });
  }
}

export async function main(args: string[]): Promise<void> {
  const k = flag(args, 'clusters', 'positive integer', 50);
  const sizes: Sizes = {
    nodes: flag(args, 'nodes', 'positive integer', 10),
    endpoints: flag(args, 'endpoints', 'positive integer', 200),
    identities: flag(args, 'identities', 'positive integer', 10),
  };
  const upSamples = flag(args, 'up-samples', 'positive integer', 3);
  const changes = flag(args, 'changes', 'positive integer', 300);
  const rounds = flag(args, 'rounds', 'positive integer', 9);
  const part = stringFlag(args, 'part');
  if (part !== undefined && part !== 'boot' && part !== 'up' && part !== 'prop') {
    throw new Error(`--part ${part}: expected boot, up or prop`);
  }

  // 1. KVStoreMesh bootstrap: plaintext first, then TLS, then plaintext again (the mean of
  // the two plaintext runs is the baseline: it brackets the TLS run in time).
  let plain1 = Number.NaN;
  let plain2 = Number.NaN;
  let tlsBoot = Number.NaN;
  if (part === undefined || part === 'boot') {
    console.error(`KVStoreMesh bootstrap, K=${String(k)} …`);
    plain1 = await bootstrapOnce(k, false, sizes);
    tlsBoot = await bootstrapOnce(k, true, sizes);
    plain2 = await bootstrapOnce(k, false, sizes);
  }
  const plainBoot = (plain1 + plain2) / 2;

  // 2. under the up lock.
  const ready: Record<'tls' | 'plain', number[]> = { tls: [], plain: [] };
  const upPart = part === undefined || part === 'up';
  const lockHeld = process.env.CLUSTERMESH_UP_LOCK_HELD === '1';
  if (upPart && !lockHeld) await acquireUpLock();
  try {
    for (let i = 0; upPart && i < upSamples; i++) {
      for (const mode of ['plain', 'tls'] as const) {
        console.error(`up 2 × 2 (${mode}), sample ${String(i + 1)}/${String(upSamples)} …`);
        ready[mode].push(await upOnce(mode === 'tls'));
      }
    }
  } finally {
    if (upPart && !lockHeld) await releaseUpLock();
  }

  // 3. Propagation: both modes in one agent, interleaved; per round a p50 and p99 per mode,
  // reported as the median over the rounds (one unlucky stall moves one round, not the result).
  const prop: { tls: number[][]; plain: number[][] } = { tls: [], plain: [] };
  if (part === undefined || part === 'prop') {
    console.error(`propagation, ${String(rounds)} rounds × ${String(changes)} changes per mode …`);
    Object.assign(prop, await propagationRounds(rounds, changes));
  }
  const median = (xs: number[]): number =>
    [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? Number.NaN;
  const perRound = (mode: 'tls' | 'plain', q: 'p50' | 'p99'): number =>
    median(prop[mode].map((r) => summarize(r)[q]));
  const ratioOfRounds = (q: 'p50' | 'p99'): number =>
    median(prop.tls.map((r, i) => summarize(r)[q] / summarize(prop.plain[i] ?? [])[q]));
  const pTls = { p50: perRound('tls', 'p50'), p99: perRound('tls', 'p99') };
  const pPlain = { p50: perRound('plain', 'p50'), p99: perRound('plain', 'p99') };
  const rows: Row[] = [
    {
      metric: `KVStoreMesh bootstrap K=${String(k)}`,
      ours: tlsBoot,
      raw: plainBoot,
      unit: 's',
      higherIsBetter: false,
      goal: '≤ 1.3x',
    },
    {
      metric: 'up 2x2 ready (median)',
      ours: median(ready.tls),
      raw: median(ready.plain),
      unit: 'ms',
      higherIsBetter: false,
      goal: 'TLS ≤ 3000 ms',
    },
    {
      metric: 'propagation p50 (median of rounds)',
      ours: pTls.p50,
      raw: pPlain.p50,
      unit: 'ms',
      higherIsBetter: false,
    },
    {
      metric: 'propagation p99 (median of rounds)',
      ours: pTls.p99,
      raw: pPlain.p99,
      unit: 'ms',
      higherIsBetter: false,
    },
    {
      // Each round measures both modes at the same moment: the median of the per-round
      // ratios is the comparison that machine load does not skew.
      metric: 'propagation p99 TLS/plain (median of round ratios)',
      ours: ratioOfRounds('p99'),
      raw: 1,
      unit: '×',
      higherIsBetter: false,
      goal: '≤ 1.2x',
    },
  ];
  report(
    'tls',
    rows,
    {
      clusters: k,
      ...sizes,
      upSamples,
      rounds,
      changes,
      plainBootRuns: [plain1, plain2],
      // Per-round ratios: their median is the robust answer, their spread the noise.
      propagationP50RatioOfRounds: Number(ratioOfRounds('p50').toFixed(3)),
      propagationP99RatioOfRounds: Number(ratioOfRounds('p99').toFixed(3)),
      propagationP99Rounds: {
        tls: prop.tls.map((r) => Number(summarize(r).p99.toFixed(2))),
        plain: prop.plain.map((r) => Number(summarize(r).p99.toFixed(2))),
      },
    },
    ['TLS', 'plaintext'],
  );
}
