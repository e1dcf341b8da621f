/**
 * Propagation benchmark: how long a change in cluster1's registry takes to reach
 * the ipcache of an agent in cluster2, against a raw two-hop etcd relay measured in
 * the same run on the same two etcd processes.
 *
 *   npm run bench -- propagation [--changes 1000] [--deletes N] [--warmup 50]
 *
 * ours: Registry.create(CiliumEndpoint) on etcd1 → apiserver (informer → SyncStore)
 *       → etcd1 `cilium/state/ip/v1/default/<ip>` → agent (WatchStore → IPCache),
 *       timed from the call to the IPCache `onChange` event for that IP.
 * raw:  etcd3 put on etcd1 → a watcher on etcd1 re-puts the value into etcd2 → a
 *       watcher on etcd2 sees it. Both paths are two kvstore writes and two watch
 *       deliveries; the raw one does no decoding, validation or bookkeeping.
 * Samples alternate (one raw, one ours) so both see the same load.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Etcd3, IKeyValue, Watcher } from 'etcd3';
import { Agent } from '../src/agent/module.js';
import { Apiserver } from '../src/apiserver/module.js';
import type { IPCacheEntry } from '../src/ipcache/ipcache.js';
import { ipcacheKey } from '../src/keyspace/index.js';
import { resolveKvstoreConfig } from '../src/kvstore/config.js';
import { EtcdBackend } from '../src/kvstore/etcd.js';
import { silentLogger } from '../src/lib/logger.js';
import { Registry } from '../src/registry/registry.js';
import { objectKey } from '../src/registry/codec.js';
import { kindInfo } from '../src/registry/kinds.js';
import type { RegistryObject } from '../src/registry/types.js';
import { startEtcd, type EtcdServer } from '../test/support/etcd.js';
import { until } from '../test/support/eventually.js';
import { flag, report, summarize, type Row } from './lib.js';

const WAIT_MS = 10_000;
const CLUSTER1 = 'cluster1';
const CLUSTER2 = 'cluster2';
/** An identity inside cluster1's range (65536..131071). */
const IDENTITY = 1 * 65536 + 100;
const NODE_IP = '10.1.0.1';

/** Data only: nothing ever connects to these addresses. */
function podIP(i: number): string {
  return `10.1.${String(1 + (i >> 8))}.${String(i & 255)}`;
}

function endpointName(i: number): string {
  return `bench-pod-${String(i)}`;
}

function endpoint(i: number): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumEndpoint',
    metadata: { name: endpointName(i), namespace: 'default' },
    status: {
      id: 1000 + i,
      identity: {
        id: IDENTITY,
        labels: ['k8s:app=bench', `k8s:io.cilium.k8s.policy.cluster=${CLUSTER1}`],
      },
      networking: { addressing: [{ ipv4: podIP(i) }], node: NODE_IP },
    },
  };
}

/**
 * When each named event happened (performance.now()), and promises for events not seen
 * yet. A deadline turns a lost event into an error instead of a hang. Names are unique
 * per run (an IP is created once and deleted once).
 */
class Marks {
  private readonly times = new Map<string, number>();
  private readonly pending = new Map<string, (t: number) => void>();

  mark(name: string): void {
    const t = performance.now();
    this.times.set(name, t);
    const resolve = this.pending.get(name);
    if (resolve === undefined) return;
    this.pending.delete(name);
    resolve(t);
  }

  when(name: string): Promise<number> {
    const t = this.times.get(name);
    if (t !== undefined) return Promise.resolve(t);
    return new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(name);
        reject(new Error(`timed out after ${String(WAIT_MS)}ms waiting for ${name}`));
      }, WAIT_MS);
      this.pending.set(name, (at) => {
        clearTimeout(timer);
        resolve(at);
      });
    });
  }
}

/**
 * The raw baseline: put on etcd1, relayed by a watcher on etcd1 into etcd2, observed
 * by a watcher on etcd2. `hop1` fires when the first watcher sees the write.
 */
class RawRelay {
  private readonly marks = new Marks();
  private w1: Watcher | undefined;
  private w2: Watcher | undefined;
  private static readonly SRC = 'bench/relay/src/';
  private static readonly DST = 'bench/relay/dst/';

  constructor(
    private readonly c1: Etcd3,
    private readonly c2: Etcd3,
  ) {}

  async start(): Promise<void> {
    this.w1 = await this.c1.watch().prefix(RawRelay.SRC).create();
    this.w2 = await this.c2.watch().prefix(RawRelay.DST).create();
    const suffix = (kv: IKeyValue, base: string): string => kv.key.toString().slice(base.length);
    this.w1.on('put', (kv) => {
      const s = suffix(kv, RawRelay.SRC);
      this.marks.mark(`src:put:${s}`);
      void this.c2
        .put(RawRelay.DST + s)
        .value(kv.value)
        .exec();
    });
    this.w1.on('delete', (kv) => {
      const s = suffix(kv, RawRelay.SRC);
      this.marks.mark(`src:delete:${s}`);
      void this.c2
        .delete()
        .key(RawRelay.DST + s)
        .exec();
    });
    this.w2.on('put', (kv) => {
      this.marks.mark(`dst:put:${suffix(kv, RawRelay.DST)}`);
    });
    this.w2.on('delete', (kv) => {
      this.marks.mark(`dst:delete:${suffix(kv, RawRelay.DST)}`);
    });
  }

  put(name: string, value: string): Promise<Stages> {
    return this.measure(`put:${name}`, () =>
      this.c1
        .put(RawRelay.SRC + name)
        .value(value)
        .exec(),
    );
  }

  delete(name: string): Promise<Stages> {
    return this.measure(`delete:${name}`, () =>
      this.c1
        .delete()
        .key(RawRelay.SRC + name)
        .exec(),
    );
  }

  private async measure(id: string, write: () => Promise<unknown>): Promise<Stages> {
    const t0 = performance.now();
    await write();
    const t2 = await this.marks.when(`dst:${id}`);
    const t1 = await this.marks.when(`src:${id}`);
    return { total: t2 - t0, hop1: t1 - t0, hop2: t2 - t1, tail: 0 };
  }

  async stop(): Promise<void> {
    await this.w1?.cancel();
    await this.w2?.cancel();
  }
}

/** Milliseconds of one change: end to end, and split at the etcd writes. */
interface Stages {
  /** From the first write call to the change being visible at the end of the path. */
  readonly total: number;
  /** First write → its watch event (ours: Registry call → registry key event on etcd1). */
  readonly hop1: number;
  /** → the second write's watch event (ours: apiserver → `cilium/state/ip/…` on etcd1). */
  readonly hop2: number;
  /** Ours only: that event → the agent's ipcache change (decode, validate, merge). */
  readonly tail: number;
}

type Samples = Record<keyof Stages, number[]>;

function emptySamples(): Samples {
  return { total: [], hop1: [], hop2: [], tail: [] };
}

export async function main(args: string[]): Promise<void> {
  const changes = Math.max(1, flag(args, 'changes', 'non-negative integer', 1000));
  const deletes = Math.min(
    changes,
    flag(args, 'deletes', 'non-negative integer', Math.ceil(changes / 2)),
  );
  const warmup = flag(
    args,
    'warmup',
    'non-negative integer',
    Math.min(50, Math.ceil(changes / 10)),
  );
  if (changes + warmup > 60_000) throw new Error('--changes + --warmup: at most 60000 pod IPs');

  const cleanups: (() => Promise<void>)[] = [];
  const cleanup = async (): Promise<void> => {
    for (const fn of cleanups.reverse()) {
      try {
        await fn();
      } catch (err) {
        console.error(`cleanup: ${String(err)}`);
      }
    }
  };
  try {
    const opts = { snapshotCount: 100_000, logLevel: 'error' };
    const [etcd1, etcd2]: EtcdServer[] = await Promise.all([startEtcd(opts), startEtcd(opts)]);
    if (etcd1 === undefined || etcd2 === undefined) throw new Error('etcd did not start');
    cleanups.push(
      () => etcd1.destroy(),
      () => etcd2.destroy(),
    );
    const dir = await mkdtemp(join(tmpdir(), 'bench-propagation-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));

    // Cluster1: its registry (written by this process) and its apiserver.
    const regBackend = new EtcdBackend({ endpoints: etcd1.endpoints });
    await regBackend.connect();
    cleanups.push(() => regBackend.close());
    const registry = new Registry(regBackend);
    await registry.apply([
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNode',
        metadata: { name: 'node1' },
        spec: {
          addresses: [{ type: 'InternalIP', ip: NODE_IP }],
          ipam: { podCIDRs: ['10.1.0.0/16'] },
        },
      },
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumIdentity',
        metadata: { name: String(IDENTITY) },
        'security-labels': {
          'k8s:app': 'bench',
          'k8s:io.cilium.k8s.policy.cluster': CLUSTER1,
        },
      },
    ]);
    const kv1 = await resolveKvstoreConfig(undefined, [
      `etcd.address=${etcd1.endpoints.join(',')}`,
    ]);
    const kv2 = await resolveKvstoreConfig(undefined, [
      `etcd.address=${etcd2.endpoints.join(',')}`,
    ]);
    const apiserver = new Apiserver({
      clusterName: CLUSTER1,
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore: kv1,
      log: silentLogger,
    });
    await apiserver.start();
    cleanups.push(() => apiserver.stop());
    await apiserver.waitReady();

    // Cluster2: one agent whose clustermesh config points at etcd1.
    await etcd1.writeClientConfig(join(dir, CLUSTER1));
    const agent = new Agent({
      clusterName: CLUSTER2,
      clusterId: 2,
      nodeName: 'bench-node',
      maxConnectedClusters: 255,
      kvstore: kv2,
      clustermeshConfig: dir,
      timing: { retryBaseMs: 100 },
      log: silentLogger,
    });
    await agent.start();
    cleanups.push(() => agent.stop());
    const remoteReady = (): boolean =>
      agent.clustermeshStatus().clusters.find((c) => c.name === CLUSTER1)?.ready === true;
    await until(remoteReady, {
      timeoutMs: 30_000,
      intervalMs: 20,
      message: 'cluster1 ready in the agent',
    });

    // Every event is marked: the agent's ipcache changes and, through the observer
    // below, the etcd writes on the way.
    const marks = new Marks();
    const unsubscribe = agent.views.ipcache.onChange((event, entry: IPCacheEntry) => {
      if (entry.cluster === CLUSTER1) marks.mark(`ipcache:${event}:${entry.cidr}`);
    });
    cleanups.push(() => {
      unsubscribe();
      return Promise.resolve();
    });

    // Observers of the middle of our path, on their own etcd3 connection: when the
    // registry write lands (hop 1) and when the apiserver's ipcache key lands (hop 2).
    const raw1 = etcd1.createClient();
    const raw2 = etcd2.createClient();
    const observer = etcd1.createClient();
    cleanups.push(() => {
      raw1.close();
      raw2.close();
      observer.close();
      return Promise.resolve();
    });
    const cepPrefix = objectKey(kindInfo('CiliumEndpoint'), 'default', '');
    const ipPrefix = `${ipcacheKey('')}/`;
    const watchers = await Promise.all(
      [cepPrefix, ipPrefix].map(async (prefix) => {
        const w = await observer.watch().prefix(prefix).create();
        const mark = (kind: string) => (kv: IKeyValue) =>
          marks.mark(`etcd:${kind}:${kv.key.toString()}`);
        w.on('put', mark('upsert'));
        w.on('delete', mark('delete'));
        return w;
      }),
    );
    cleanups.push(async () => {
      for (const w of watchers) await w.cancel();
    });

    const relay = new RawRelay(raw1, raw2);
    await relay.start();
    cleanups.push(() => relay.stop());

    /** One change through our path, split at the two etcd writes it causes. */
    const ours = async (
      kind: 'upsert' | 'delete',
      i: number,
      change: () => Promise<unknown>,
    ): Promise<Stages> => {
      const ip = podIP(i);
      const t0 = performance.now();
      await change();
      const t3 = await marks.when(`ipcache:${kind}:${ip}/32`);
      // The observer has its own connection: its events may trail the agent's.
      const t1 = await marks.when(`etcd:${kind}:${cepPrefix}${endpointName(i)}`);
      const t2 = await marks.when(`etcd:${kind}:${ipcacheKey(ip)}`);
      return { total: t3 - t0, hop1: t1 - t0, hop2: t2 - t1, tail: Math.max(0, t3 - t2) };
    };
    const create = (i: number): Promise<Stages> =>
      ours('upsert', i, () => registry.create(endpoint(i)));
    const remove = (i: number): Promise<Stages> =>
      ours('delete', i, async () => {
        if (!(await registry.delete('CiliumEndpoint', 'default', endpointName(i)))) {
          throw new Error(`endpoint ${endpointName(i)} was not there to delete`);
        }
      });

    const value = JSON.stringify(endpoint(0));
    const samples = {
      create: { raw: emptySamples(), ours: emptySamples() },
      delete: { raw: emptySamples(), ours: emptySamples() },
    };
    const record = (s: { raw: Samples; ours: Samples }, raw: Stages, ours: Stages): void => {
      for (const k of ['total', 'hop1', 'hop2', 'tail'] as const) {
        s.raw[k].push(raw[k]);
        s.ours[k].push(ours[k]);
      }
    };
    const t0 = performance.now();
    for (let i = 0; i < warmup + changes; i++) {
      const raw = await relay.put(String(i), value);
      const ours = await create(i);
      if (i >= warmup) record(samples.create, raw, ours);
    }
    for (let i = warmup; i < warmup + deletes; i++) {
      const raw = await relay.delete(String(i));
      const ours = await remove(i);
      record(samples.delete, raw, ours);
    }
    const elapsedS = (performance.now() - t0) / 1000;
    console.error(
      `propagation: ${String(warmup + changes)} creates (${String(warmup)} warm-up), ` +
        `${String(deletes)} deletes in ${elapsedS.toFixed(1)}s`,
    );

    const status = agent.clustermeshStatus().clusters.find((c) => c.name === CLUSTER1);
    const expected = warmup + changes - deletes;
    if (status?.['num-endpoints'] !== expected) {
      throw new Error(
        `agent holds ${String(status?.['num-endpoints'])} endpoints of cluster1, expected ${String(expected)}`,
      );
    }

    const rows: Row[] = [];
    const extra: Record<string, unknown> = {
      changes,
      deletes,
      warmup,
      baseline: 'raw two-hop relay: put etcd1 → watcher re-puts into etcd2 → watcher on etcd2',
      inProcess: 'registry writer, apiserver, agent and raw relay share one Node process',
      node: process.version,
    };
    const ms = (n: number): number => Number(n.toFixed(3));
    for (const op of ['create', 'delete'] as const) {
      const { raw, ours } = samples[op];
      if (ours.total.length === 0) continue;
      const total = { ours: summarize(ours.total), raw: summarize(raw.total) };
      rows.push(
        {
          metric: `${op}→ipcache p50`,
          ours: total.ours.p50,
          raw: total.raw.p50,
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          metric: `${op}→ipcache p99`,
          ours: total.ours.p99,
          raw: total.raw.p99,
          unit: 'ms',
          higherIsBetter: false,
          goal: '<= 3x',
        },
      );
      for (const hop of ['hop1', 'hop2'] as const) {
        const o = summarize(ours[hop]);
        const r = summarize(raw[hop]);
        rows.push(
          {
            metric: `${op} ${hop} p50`,
            ours: o.p50,
            raw: r.p50,
            unit: 'ms',
            higherIsBetter: false,
          },
          {
            metric: `${op} ${hop} p99`,
            ours: o.p99,
            raw: r.p99,
            unit: 'ms',
            higherIsBetter: false,
          },
        );
      }
      const tail = summarize(ours.tail);
      extra[`${op} agent tail`] = { p50: ms(tail.p50), p99: ms(tail.p99), unit: 'ms' };
      extra[`${op} mean`] = { ours: ms(total.ours.mean), raw: ms(total.raw.mean), unit: 'ms' };
    }
    report('propagation', rows, extra);
  } finally {
    await cleanup();
  }
}
