/**
 * kvstore benchmark: our etcd backend and stores against raw etcd3 calls on the
 * same etcd process in the same run.
 *
 *   npm run bench -- kvstore [--keys 100000] [--puts 10000] [--latency 1000]
 */
import type { Etcd3 } from 'etcd3';
import { EtcdBackend } from '../src/kvstore/etcd.js';
import { SyncStore } from '../src/store/syncstore.js';
import { startEtcd } from '../test/support/etcd.js';
import { flag, pool, rawPagedList, report, summarize, type Row } from './lib.js';

const VALUE = JSON.stringify({
  IP: '10.1.2.3',
  Mask: null,
  HostIP: '192.168.1.10',
  ID: 65538,
  Key: 0,
  Metadata: 'cilium-global:default:node1:1234',
  K8sNamespace: 'default',
  K8sPodName: 'rebel-base-6b4b7c6c5d-abcde',
});

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function putsPerSecond(n: number, put: (i: number) => Promise<void>): Promise<number> {
  const s = await timed(() => pool(n, 64, put));
  return n / s;
}

/**
 * put → event latency, one put at a time, alternating between raw etcd3 (put +
 * watcher) and ours (backend.put + listAndWatch) so both see the same heap and load.
 */
async function latencies(
  client: Etcd3,
  backend: EtcdBackend,
  n: number,
): Promise<{ raw: number[]; ours: number[] }> {
  const rawPrefix = 'bench/lat-raw/';
  const oursPrefix = 'bench/lat-ours/';
  const watcher = await client.watch().prefix(rawPrefix).create();
  let waiting: { key: string; resolve: () => void } | undefined;
  watcher.on('put', (kv) => {
    if (waiting !== undefined && kv.key.toString() === waiting.key) waiting.resolve();
  });
  const ac = new AbortController();
  const it = backend.listAndWatch(oursPrefix, ac.signal)[Symbol.asyncIterator]();
  for (;;) {
    const r = await it.next();
    if (r.done === true || r.value.kind === 'listDone') break;
  }
  const raw: number[] = [];
  const ours: number[] = [];
  for (let i = 0; i < n; i++) {
    const rawKey = `${rawPrefix}${i}`;
    let t0 = performance.now();
    await new Promise<void>((resolve) => {
      waiting = { key: rawKey, resolve };
      void client.put(rawKey).value(VALUE).exec();
    });
    raw.push(performance.now() - t0);

    const oursKey = `${oursPrefix}${i}`;
    t0 = performance.now();
    const put = backend.put(oursKey, VALUE);
    for (;;) {
      const r = await it.next();
      if (r.done === true) throw new Error('watch ended');
      if (r.value.kind === 'upsert' && r.value.key === oursKey) break;
    }
    ours.push(performance.now() - t0);
    await put;
  }
  await watcher.cancel();
  ac.abort();
  await it.return?.();
  return { raw, ours };
}

export async function main(args: string[]): Promise<void> {
  const keys = flag(args, 'keys', 'positive', 100_000);
  const puts = flag(args, 'puts', 'positive', 10_000);
  const latencyN = flag(args, 'latency', 'positive', 1000);
  const etcd = await startEtcd({ snapshotCount: 100_000, logLevel: 'error' });
  const raw = etcd.createClient();
  const ours = new EtcdBackend({ endpoints: etcd.endpoints });
  await ours.connect();
  const rows: Row[] = [];
  try {
    // 1. Single puts, 64 in flight. Alternate twice and keep each side's best run.
    let rawPut = 0;
    let oursPut = 0;
    for (let round = 0; round < 2; round++) {
      rawPut = Math.max(
        rawPut,
        await putsPerSecond(puts, async (i) => {
          await raw.put(`bench/put-raw/${round}/${i}`).value(VALUE).exec();
        }),
      );
      oursPut = Math.max(
        oursPut,
        await putsPerSecond(puts, (i) => ours.put(`bench/put-ours/${round}/${i}`, VALUE)),
      );
    }
    rows.push({
      metric: 'single puts (64 in flight)',
      ours: oursPut,
      raw: rawPut,
      unit: 'puts/s',
      higherIsBetter: true,
    });
    console.error(`puts: ours ${oursPut.toFixed(0)}/s raw ${rawPut.toFixed(0)}/s`);

    // 2. Initial sync of `keys` keys: SyncStore (batched, leased, canary) vs raw single puts.
    const rawSyncS = await timed(() =>
      pool(keys, 64, async (i) => {
        await raw.put(`bench/sync-raw/${i}`).value(VALUE).exec();
      }),
    );
    const store = new SyncStore({
      backend: ours,
      sourceCluster: 'bench',
      prefix: 'bench/sync-ours',
      workers: 8,
    });
    const ac = new AbortController();
    const running = store.run(ac.signal);
    const oursSyncS = await timed(
      () =>
        new Promise<void>((resolve) => {
          for (let i = 0; i < keys; i++) store.upsertKey(String(i), VALUE);
          store.synced(resolve);
        }),
    );
    ac.abort();
    await running;
    rows.push({
      metric: `initial sync of ${keys} keys`,
      ours: keys / oursSyncS,
      raw: keys / rawSyncS,
      unit: 'keys/s',
      higherIsBetter: true,
      goal: '> raw',
    });
    console.error(`sync: ours ${oursSyncS.toFixed(1)}s raw ${rawSyncS.toFixed(1)}s`);

    // 3. Paged list of the synced keys at the same page size, best of 3 alternating.
    let rawList = 0;
    let oursList = 0;
    for (let round = 0; round < 3; round++) {
      let n = 0;
      const r = await timed(async () => {
        n = await rawPagedList(raw, 'bench/sync-ours/', 256);
      });
      rawList = Math.max(rawList, n / r);
      const o = await timed(async () => {
        n = (await ours.list('bench/sync-ours/')).kvs.length;
      });
      oursList = Math.max(oursList, n / o);
    }
    rows.push({
      metric: 'paged list (256/page)',
      ours: oursList,
      raw: rawList,
      unit: 'keys/s',
      higherIsBetter: true,
      goal: '>= 0.9x',
    });

    // 4. put → watch event latency, sequential.
    const lat = await latencies(raw, ours, latencyN);
    const rawLat = summarize(lat.raw);
    const oursLat = summarize(lat.ours);
    rows.push({
      metric: 'put→watch p50',
      ours: oursLat.p50,
      raw: rawLat.p50,
      unit: 'ms',
      higherIsBetter: false,
      goal: '<= 1.2x',
    });
    rows.push({
      metric: 'put→watch p99',
      ours: oursLat.p99,
      raw: rawLat.p99,
      unit: 'ms',
      higherIsBetter: false,
      goal: '<= 1.2x',
    });

    report('kvstore', rows, {
      keys,
      puts,
      latencySamples: latencyN,
      etcd: '3.4',
      node: process.version,
    });
  } finally {
    await ours.close();
    raw.close();
    await etcd.destroy();
  }
}
