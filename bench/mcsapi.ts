/**
 * MCS-API timings on a running local mesh (LocalMesh in this process, one operator and one
 * DNS server per cluster, as `clustermesh up` runs them):
 *
 * latency: a Service and its ServiceExport applied together to one cluster (the exporting
 *          cluster rotates). Per cluster, from the apply call until its ServiceImport
 *          carries a clusterset IP and then until its DNS server answers
 *          `<svc>.<ns>.svc.clusterset.local` with that IP (a watch of the cluster's
 *          ServiceImports says when to ask; the project's resolver asks). Baseline: a plain
 *          watch of the exporting kvstore sees the export key
 *          `cilium/state/serviceexports/v1/<cluster>/<ns>/<name>`, which is where every
 *          remote operator reads it, so the ratio is the operator's (and DNS's) share.
 * scale:   `--exports` Services+ServiceExports split over the clusters, applied in batches
 *          to each cluster's registry at once; until every cluster holds every
 *          ServiceImport with its clusterset IP (baseline: until every export key is
 *          written), and the process's heap and RSS growth. Everything runs in this
 *          process, so the growth is the whole mesh's (apiservers, agents, DNS, in-memory
 *          kvstores), not the operators' alone: an upper bound for them. Then one
 *          operator's own share: a second operator of cluster1 started in this process
 *          once everything is synced; the heap it holds after its first pass, and how long
 *          that pass (a cold start over N exports) took.
 *
 * `npm run bench -- mcsapi [--kvstore memory|etcd] [--samples N (20)] [--exports N (10000)]
 * [--nodes N (1)] [--batch N (250)] [--proxy true]`; the agents' ClusterIP proxy is off
 * unless asked for (one listening socket per frontend would exceed the open-file limit at
 * 10,000 exports); run with `node --expose-gc --import tsx bench/run.ts
 * mcsapi` for heap figures after a forced collection. `up` binds fixed loopback addresses,
 * so the mesh runs under the lock e2e tests take.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { resolveA } from '../src/dns/client.js';
import { ServiceExportsPrefix } from '../src/keyspace/index.js';
import type { Backend } from '../src/kvstore/backend.js';
import { createBackend, resolveKvstoreConfig } from '../src/kvstore/config.js';
import { sleep } from '../src/lib/abort.js';
import { silentLogger } from '../src/lib/logger.js';
import { kvstoreOptsOf, type MeshStateCluster } from '../src/localmesh/mesh-state.js';
import { LocalMesh } from '../src/localmesh/up.js';
import { MCS_API_VERSION } from '../src/mcsapi/types.js';
import { Operator } from '../src/operator/module.js';
import { resourcePrefix } from '../src/registry/codec.js';
import { kindInfo } from '../src/registry/kinds.js';
import { Registry } from '../src/registry/registry.js';
import type { RegistryObject } from '../src/registry/types.js';
import { acquireUpLock, releaseUpLock } from '../test/support/up-lock.js';
import { flag, report, stringFlag, summarize } from './lib.js';

const CLUSTERS = 4;
const NAMESPACE = 'default';
const ZONE = 'clusterset.local';
const WAIT_MS = 30_000;

interface ClusterClient {
  readonly name: string;
  readonly dns: string;
  readonly backend: Backend;
  readonly registry: Registry;
  /** name → clusterset IPs of its ServiceImport, as a watch of this cluster sees them. */
  readonly imports: Map<string, readonly string[]>;
  /** Export keys of this cluster's kvstore seen by a plain watch. */
  readonly exported: Set<string>;
  readonly onImport: Set<(name: string, ips: readonly string[]) => void>;
  readonly onExport: Set<(key: string) => void>;
}

async function clientOf(cluster: MeshStateCluster): Promise<ClusterClient> {
  const { name, kvstore: url, dns } = cluster;
  // TLS meshes name the admin's etcd config; plaintext ones the address.
  const opts = kvstoreOptsOf(cluster);
  const memory = 'memory://';
  const backend = url.startsWith(memory)
    ? await createBackend(await resolveKvstoreConfig('memory', []), {
        log: silentLogger,
        memoryStoreName: url.slice(memory.length),
      })
    : await createBackend(await resolveKvstoreConfig('etcd', opts), {
        log: silentLogger,
      });
  return {
    name,
    dns,
    backend,
    registry: new Registry(backend, { log: silentLogger }),
    imports: new Map(),
    exported: new Set(),
    onImport: new Set(),
    onExport: new Set(),
  };
}

/** Two watches per cluster, resolving once both have listed. */
function watch(
  c: ClusterClient,
  signal: AbortSignal,
): { listed: Promise<void>; done: Promise<void> } {
  let listed = 0;
  let markListed!: () => void;
  const listedP = new Promise<void>((resolve) => (markListed = resolve));
  const listDone = (): void => {
    if (++listed === 2) markListed();
  };
  const importPrefix = resourcePrefix(kindInfo('ServiceImport'));
  const imports = (async () => {
    for await (const ev of c.backend.listAndWatch(importPrefix, signal)) {
      if (ev.kind === 'listDone') listDone();
      else if (ev.kind === 'delete') c.imports.delete(ev.key.slice(ev.key.lastIndexOf('/') + 1));
      else {
        const obj = JSON.parse(ev.value) as {
          metadata: { name: string };
          spec?: { ips?: string[] };
        };
        const ips = obj.spec?.ips ?? [];
        c.imports.set(obj.metadata.name, ips);
        for (const l of c.onImport) l(obj.metadata.name, ips);
      }
    }
  })();
  const exports = (async () => {
    for await (const ev of c.backend.listAndWatch(`${ServiceExportsPrefix}/`, signal)) {
      if (ev.kind === 'listDone') listDone();
      else if (ev.kind === 'upsert' && !c.exported.has(ev.key)) {
        c.exported.add(ev.key);
        for (const l of c.onExport) l(ev.key);
      }
    }
  })();
  return { listed: listedP, done: Promise.all([imports, exports]).then(() => undefined) };
}

function service(name: string): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: NAMESPACE },
    spec: { type: 'ClusterIP', ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
  };
}

function serviceExport(name: string): RegistryObject {
  return {
    apiVersion: MCS_API_VERSION,
    kind: 'ServiceExport',
    metadata: { name, namespace: NAMESPACE },
  };
}

function exportKey(cluster: string, name: string): string {
  return `${ServiceExportsPrefix}/${cluster}/${NAMESPACE}/${name}`;
}

/** Resolves with the time `name`'s import first carries a clusterset IP in `c`, and the IP. */
function importReady(c: ClusterClient, name: string): Promise<{ t: number; ip: string }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.onImport.delete(listener);
      reject(
        new Error(`${c.name}: no ServiceImport ${name} with an IP after ${String(WAIT_MS)} ms`),
      );
    }, WAIT_MS);
    const listener = (n: string, ips: readonly string[]): void => {
      const ip = ips[0];
      if (n !== name || ip === undefined) return;
      clearTimeout(timer);
      c.onImport.delete(listener);
      resolve({ t: performance.now(), ip });
    };
    c.onImport.add(listener);
  });
}

function exportSeen(c: ClusterClient, key: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      c.onExport.delete(listener);
      reject(new Error(`${c.name}: export key ${key} not seen after ${String(WAIT_MS)} ms`));
    }, WAIT_MS);
    const listener = (k: string): void => {
      if (k !== key) return;
      clearTimeout(timer);
      c.onExport.delete(listener);
      resolve(performance.now());
    };
    c.onExport.add(listener);
  });
}

/** Asks `c`'s DNS until it answers `name` with `ip`; the DNS source has its own watch, so it may lag the import by a little. */
async function dnsAnswers(c: ClusterClient, name: string, ip: string): Promise<number> {
  const fqdn = `${name}.${NAMESPACE}.svc.${ZONE}.`;
  const deadline = performance.now() + WAIT_MS;
  for (;;) {
    const got = await resolveA(fqdn, { server: c.dns, timeoutMs: 1000 }).catch((): string[] => []);
    if (got.includes(ip)) return performance.now();
    if (performance.now() > deadline)
      throw new Error(`${c.name}: DNS never answered ${fqdn} with ${ip}`);
    await sleep(1);
  }
}

interface LatencySamples {
  /** Per cluster per export: apply → ServiceImport with an IP, ms. */
  readonly imported: number[];
  /** Per cluster per export: apply → DNS answers with that IP, ms. */
  readonly answered: number[];
  /** Per export: apply → the last cluster answers, ms. */
  readonly everyCluster: number[];
  /** Per export: apply → a plain watch of the exporting kvstore sees the export key, ms. */
  readonly keyWatched: number[];
  /** Per export: the last cluster's answer − the first cluster's, ms. */
  readonly spread: number[];
}

async function latencyBench(
  clients: readonly ClusterClient[],
  samples: number,
): Promise<LatencySamples> {
  const out: LatencySamples = {
    imported: [],
    answered: [],
    everyCluster: [],
    keyWatched: [],
    spread: [],
  };
  for (let k = 0; k < samples; k++) {
    const exporter = clients[k % clients.length];
    if (exporter === undefined) throw new Error('unreachable');
    const name = `lat-${String(k)}`;
    const key = exportSeen(exporter, exportKey(exporter.name, name));
    const perCluster = clients.map(async (c) => {
      const imp = await importReady(c, name);
      return { imported: imp.t, answered: await dnsAnswers(c, name, imp.ip) };
    });
    const t0 = performance.now();
    await exporter.registry.apply([service(name), serviceExport(name)]);
    const done = await Promise.all(perCluster);
    out.keyWatched.push((await key) - t0);
    for (const d of done) {
      out.imported.push(d.imported - t0);
      out.answered.push(d.answered - t0);
    }
    out.everyCluster.push(Math.max(...done.map((d) => d.answered)) - t0);
    out.spread.push(
      Math.max(...done.map((d) => d.answered)) - Math.min(...done.map((d) => d.answered)),
    );
    // Each sample starts from a quiet mesh.
    await sleep(100);
  }
  return out;
}

/**
 * One operator's memory and cold start with everything synced: a second operator of
 * `cluster` started in this process against the same kvstore and clustermesh config
 * (it finds every object already right and writes nothing); the heap it retains once its
 * first pass is done, after forced collections (needs --expose-gc), is its share.
 */
async function operatorFootprint(
  cluster: MeshStateCluster,
  stateDir: string,
): Promise<{ heapBytes: number; coldStartMs: number; gc: boolean }> {
  const memoryPrefix = 'memory://';
  const kv = cluster.kvstore.startsWith(memoryPrefix)
    ? await resolveKvstoreConfig('memory', [])
    : await resolveKvstoreConfig('etcd', [`etcd.address=${cluster.kvstore}`]);
  const heap0 = memory().heap;
  const op = new Operator({
    clusterName: cluster.name,
    clusterId: cluster.id,
    maxConnectedClusters: 255,
    kvstore: kv,
    memoryStoreName: cluster.kvstore.startsWith(memoryPrefix)
      ? cluster.kvstore.slice(memoryPrefix.length)
      : undefined,
    clustermeshConfig: join(stateDir, cluster.name, 'clustermesh'),
    log: silentLogger,
  });
  const t0 = performance.now();
  try {
    await op.start();
    await op.waitReady(30 * 60_000);
    const coldStartMs = performance.now() - t0;
    await sleep(500);
    const heapBytes = memory().heap - heap0;
    return { heapBytes, coldStartMs, gc: (globalThis as { gc?: unknown }).gc !== undefined };
  } finally {
    await op.stop();
  }
}

interface ScaleResult {
  readonly exports: number;
  readonly writeMs: number;
  readonly exportedMs: number;
  readonly syncedMs: number;
  readonly heapDelta: number;
  readonly rssDelta: number;
  /** Bytes of keys and values the exports added to all kvstores together. */
  readonly storedDelta: number;
  /** Clusters whose DNS did not answer a sampled import after the sync. */
  readonly dnsMisses: number;
  readonly gc: boolean;
}

function memory(): { heap: number; rss: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

async function storedBytes(clients: readonly ClusterClient[]): Promise<number> {
  let n = 0;
  for (const c of clients) {
    for (const kv of (await c.backend.list('')).kvs) n += kv.key.length + kv.value.length;
  }
  return n;
}

async function scaleBench(
  clients: readonly ClusterClient[],
  exports: number,
  batch: number,
): Promise<ScaleResult> {
  const per = Math.ceil(exports / clients.length);
  const names = clients.map((c, ci) =>
    Array.from(
      { length: Math.min(per, exports - ci * per) },
      (_, i) => `scale-${String(ci + 1)}-${String(i)}`,
    ),
  );
  const total = names.reduce((n, l) => n + l.length, 0);
  // Counted as events arrive: a poll would lag behind a busy event loop by its whole turn.
  const ready = clients.map(() => new Set<string>());
  let exported = 0;
  let exportedAt = NaN;
  let syncedAt = NaN;
  let markSynced!: () => void;
  const synced = new Promise<void>((resolve) => (markSynced = resolve));
  const listeners = clients.map((c, ci) => {
    const onImport = (name: string, ips: readonly string[]): void => {
      const set = ready[ci];
      if (set === undefined || !name.startsWith('scale-') || ips.length === 0) return;
      set.add(name);
      if (set.size === total && ready.every((r) => r.size === total)) {
        syncedAt = performance.now();
        markSynced();
      }
    };
    const onExport = (key: string): void => {
      if (key.includes('/scale-') && ++exported === total) exportedAt = performance.now();
    };
    c.onImport.add(onImport);
    c.onExport.add(onExport);
    return () => {
      c.onImport.delete(onImport);
      c.onExport.delete(onExport);
    };
  });
  await sleep(1000);
  const stored0 = await storedBytes(clients);
  const before = memory();
  const t0 = performance.now();
  const progress = setInterval(() => {
    const s = ((performance.now() - t0) / 1000).toFixed(0);
    console.error(
      `scale ${s} s: exported ${String(exported)}, imports ${ready.map((r) => r.size).join('/')} of ${String(total)}`,
    );
  }, 10_000);
  let writeMs: number;
  try {
    await Promise.all(
      clients.map(async (c, ci) => {
        const list = names[ci] ?? [];
        for (let i = 0; i < list.length; i += batch) {
          await c.registry.apply(
            list.slice(i, i + batch).flatMap((n) => [service(n), serviceExport(n)]),
          );
        }
      }),
    );
    writeMs = performance.now() - t0;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      synced,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          reject(
            new Error(`scale: imports ${ready.map((r) => r.size).join('/')} of ${String(total)}`),
          );
        }, 30 * 60_000);
      }),
    ]).finally(() => clearTimeout(timer));
  } finally {
    clearInterval(progress);
    for (const off of listeners) off();
  }
  const syncedMs = syncedAt - t0;
  const exportedMs = exportedAt - t0;
  // One answer per cluster: the zone serves what the imports say. A miss is reported, not
  // thrown, so a long run still prints what it measured.
  const dnsMisses: string[] = [];
  for (const c of clients) {
    const last = (names[(clients.indexOf(c) + 1) % clients.length] ?? []).at(-1);
    const ip = last === undefined ? undefined : c.imports.get(last)?.[0];
    if (last === undefined || ip === undefined) continue;
    await dnsAnswers(c, last, ip).catch((err: unknown) => {
      dnsMisses.push(String(err));
    });
  }
  if (dnsMisses.length > 0) console.error(dnsMisses.join('\n'));
  await sleep(1000);
  const after = memory();
  const stored1 = await storedBytes(clients);
  return {
    exports: total,
    writeMs,
    exportedMs,
    syncedMs,
    heapDelta: after.heap - before.heap,
    rssDelta: after.rss - before.rss,
    storedDelta: stored1 - stored0,
    dnsMisses: dnsMisses.length,
    gc: (globalThis as { gc?: unknown }).gc !== undefined,
  };
}

export async function main(args: string[]): Promise<void> {
  const kvstore = stringFlag(args, 'kvstore') ?? 'memory';
  if (kvstore !== 'memory' && kvstore !== 'etcd') throw new Error('--kvstore: memory or etcd');
  const samples = flag(args, 'samples', 'non-negative integer', 20);
  const exports = flag(args, 'exports', 'non-negative integer', 10_000);
  const nodes = flag(args, 'nodes', 'positive integer', 1);
  const batch = flag(args, 'batch', 'positive integer', 250);
  // Off by default: the ClusterIP proxy holds a listening socket per frontend (50,000 for
  // 10,000 exports over 4 clusters), beyond the open-file limit; agents still run.
  const proxy = stringFlag(args, 'proxy') === 'true';

  const lock0 = performance.now();
  await acquireUpLock();
  const lockWaitMs = performance.now() - lock0;
  const dir = await mkdtemp(join(tmpdir(), 'cm-mcsapi-bench-'));
  const mesh = new LocalMesh({
    clusters: CLUSTERS,
    nodes,
    kvstore,
    stateDir: join(dir, 'state'),
    log: silentLogger,
    serviceProxy: proxy,
  });
  const clients: ClusterClient[] = [];
  const watching = new AbortController();
  const watches: Promise<void>[] = [];
  try {
    const t0 = performance.now();
    const state = await mesh.start();
    const startMs = performance.now() - t0;
    for (const c of state.clusters) clients.push(await clientOf(c));
    const started = clients.map((c) => watch(c, watching.signal));
    watches.push(...started.map((w) => w.done));
    await Promise.all(started.map((w) => w.listed));

    const lat = samples > 0 ? await latencyBench(clients, samples) : undefined;
    const scale = exports > 0 ? await scaleBench(clients, exports, batch) : undefined;
    const first = state.clusters[0];
    const footprint =
      scale !== undefined && first !== undefined
        ? await operatorFootprint(first, join(dir, 'state'))
        : undefined;

    const rows = [];
    if (lat !== undefined) {
      const every = summarize(lat.everyCluster);
      const key = summarize(lat.keyWatched);
      const answered = summarize(lat.answered);
      const imported = summarize(lat.imported);
      rows.push(
        {
          metric: 'export→DNS, all clusters p50',
          ours: every.p50,
          raw: key.p50,
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          metric: 'export→DNS, all clusters p99',
          ours: every.p99,
          raw: key.p99,
          unit: 'ms',
          higherIsBetter: false,
          goal: '<= 500 ms',
        },
        {
          metric: 'export→DNS, per cluster p50',
          ours: answered.p50,
          raw: key.p50,
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          metric: 'export→import, per cluster p99',
          ours: imported.p99,
          raw: key.p99,
          unit: 'ms',
          higherIsBetter: false,
        },
      );
    }
    if (scale !== undefined) {
      const n = scale.exports;
      rows.push(
        {
          metric: `${String(n)} exports → imports everywhere`,
          ours: scale.syncedMs / 1000,
          raw: scale.exportedMs / 1000,
          unit: 's',
          higherIsBetter: false,
        },
        {
          metric: 'imports/s per cluster',
          ours: n / (scale.syncedMs / 1000),
          raw: n / (scale.exportedMs / 1000),
          unit: 'imports/s',
          higherIsBetter: true,
        },
        // Against the bytes the exports added to the kvstores (every cluster's imports,
        // derived Services, …): what any reader holding that state as JSON would pay.
        {
          metric: 'heap growth per export',
          ours: scale.heapDelta / n,
          raw: scale.storedDelta / n,
          unit: 'B',
          higherIsBetter: false,
        },
        ...(footprint === undefined
          ? []
          : [
              {
                metric: 'one operator: heap after its first pass',
                ours: footprint.heapBytes / 2 ** 20,
                raw: scale.storedDelta / CLUSTERS / 2 ** 20,
                unit: 'MiB',
                higherIsBetter: false,
              },
              {
                metric: 'one operator: cold start to synced',
                ours: footprint.coldStartMs / 1000,
                raw: scale.exportedMs / 1000,
                unit: 's',
                higherIsBetter: false,
              },
            ]),
        {
          metric: 'RSS growth per export',
          ours: scale.rssDelta / n,
          raw: scale.storedDelta / n,
          unit: 'B',
          higherIsBetter: false,
        },
      );
    }
    report(
      'mcsapi',
      rows,
      {
        kvstore: state.kvstore,
        clusters: CLUSTERS,
        nodes,
        proxy,
        samples,
        lockWaitMs: Math.round(lockWaitMs),
        startMs: Math.round(startMs),
        ...(lat === undefined
          ? {}
          : {
              spreadP50Ms: Number(summarize(lat.spread).p50.toFixed(3)),
              everyClusterMs: lat.everyCluster.map((v) => Number(v.toFixed(1))),
            }),
        ...(scale === undefined
          ? {}
          : {
              scale: {
                exports: scale.exports,
                batch,
                writeMs: Math.round(scale.writeMs),
                exportedMs: Math.round(scale.exportedMs),
                syncedMs: Math.round(scale.syncedMs),
                heapDeltaMiB: Number((scale.heapDelta / 2 ** 20).toFixed(1)),
                rssDeltaMiB: Number((scale.rssDelta / 2 ** 20).toFixed(1)),
                storedDeltaMiB: Number((scale.storedDelta / 2 ** 20).toFixed(1)),
                gc: scale.gc,
                dnsMisses: scale.dnsMisses,
                ...(footprint === undefined
                  ? {}
                  : {
                      operatorHeapMiB: Number((footprint.heapBytes / 2 ** 20).toFixed(1)),
                      operatorColdStartMs: Math.round(footprint.coldStartMs),
                      operatorGc: footprint.gc,
                    }),
              },
            }),
      },
      ['clustermesh', 'export key watched'],
    );
  } finally {
    watching.abort();
    await Promise.allSettled(watches);
    for (const c of clients) await c.backend.close();
    await mesh.stop();
    await rm(dir, { recursive: true, force: true });
    await releaseUpLock();
  }
}
