/**
 * KVStoreMesh over the life of its remote clusters, on in-memory kvstores: outages
 * and reconnects keep the cache, a wiped remote is re-read only behind its canaries,
 * removal withdraws the config and deletes the cache after the grace period, a
 * cluster-ID change rebuilds the cache, readiness timeouts, and restarts.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import {
  KvstoreMeshHarness,
  expectedCache,
  sampleRemoteState,
  seedRemoteState,
  writeRemoteCanaries,
  type RecordedEvent,
} from '../support/kvstoremesh.js';
import { eventually } from '../support/eventually.js';

const harnesses: KvstoreMeshHarness[] = [];
async function harness(): Promise<KvstoreMeshHarness> {
  const h = await KvstoreMeshHarness.create();
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function deletions(events: readonly RecordedEvent[]): RecordedEvent[] {
  return events.filter((e) => e.kind === 'delete');
}

/** Everything KVStoreMesh keeps locally about `c` (config, canaries, cache). */
async function allOf(h: KvstoreMeshHarness, c: string): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const [k, v] of await h.snapshot('cilium/')) {
    if (
      k === `cilium/cluster-config/${c}` ||
      k.startsWith(`cilium/synced/${c}/`) ||
      new RegExp(`^cilium/cache/[a-z]+/v1/${c}/`).test(k)
    ) {
      out.set(k, v);
    }
  }
  return out;
}

void describe('kvstoremesh: remote cluster lifecycle', () => {
  it('keeps the cache through an outage and converges on changes made meanwhile', async () => {
    const h = await harness();
    const remote = h.client('c2');
    const state = sampleRemoteState('c2', 2, 3);
    await seedRemoteState(remote, 'c2', 2, state);
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    const rec = h.record();
    await rec.listed;
    const before = await h.snapshot('cilium/');

    await h.cutOff('c2');
    await eventually(() => {
      assert.equal(h.status('c2').connected, false);
    }, 5_000);
    // Changes the cache cannot see while cut off.
    await remote.delete('cilium/state/nodes/v1/c2/node-2');
    await remote.put('cilium/state/nodes/v1/c2/node-9', '{"Name":"node-9"}');
    await remote.put('cilium/state/ip/v1/default/10.2.1.5', '{"IP":"10.2.1.5","ID":131074}');
    state.delete('cilium/state/nodes/v1/c2/node-2');
    state.set('cilium/state/nodes/v1/c2/node-9', '{"Name":"node-9"}');
    state.set('cilium/state/ip/v1/default/10.2.1.5', '{"IP":"10.2.1.5","ID":131074}');
    await sleep(300);
    assert.deepEqual(await h.snapshot('cilium/'), before, 'nothing touched while disconnected');
    assert.equal(h.status('c2')['num-nodes'], 3, 'counts kept while disconnected');

    h.letBack('c2');
    await eventually(async () => {
      assert.equal(h.status('c2').ready, true);
      assert.deepEqual(await h.snapshot('cilium/cache/'), expectedCache('c2', state));
    }, 5_000);
    await rec.stop();
    // Only what disappeared remotely was deleted: no canary, config or other key.
    assert.deepEqual(
      deletions(rec.events).map((e) => e.key),
      ['cilium/cache/nodes/v1/c2/node-2'],
    );
    assert.ok(h.status('c2')['num-failures'] >= 1, "h.status('c2')['num-failures'] >= 1");
  });

  it('keeps the cache while a wiped remote repopulates, until its canaries are back', async () => {
    const h = await harness();
    const remote = h.client('c2');
    await seedRemoteState(remote, 'c2', 2, sampleRemoteState('c2', 2, 2));
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    const before = await h.snapshot('cilium/');

    // The remote etcd restarts empty (new etcd cluster ID), its apiserver refills it.
    h.store('c2').wipe();
    // A fresh client: the old one is pinned to the etcd that is gone.
    const refill = h.client('c2');
    const next = sampleRemoteState('c2', 2, 1);
    next.set('cilium/state/nodes/v1/c2/node-7', '{"Name":"node-7"}');
    await seedRemoteState(refill, 'c2', 2, next, { canaries: false });
    await eventually(() => {
      assert.ok(h.status('c2')['num-failures'] >= 1, "h.status('c2')['num-failures'] >= 1");
    }, 5_000);
    await sleep(300);
    assert.deepEqual(await h.snapshot('cilium/'), before, 'cache kept without remote canaries');

    await writeRemoteCanaries(refill, 'c2');
    await eventually(async () => {
      assert.deepEqual(await h.snapshot('cilium/cache/'), expectedCache('c2', next));
      assert.equal(h.status('c2').ready, true);
    }, 5_000);
  });

  it('on removal withdraws the config first and deletes the cache after the grace period', async () => {
    const h = await harness();
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2));
    await seedRemoteState(h.client('c3'), 'c3', 3, sampleRemoteState('c3', 3));
    await h.configure('c2');
    await h.configure('c3');
    const GRACE = 800;
    await (await h.start({ remote: { drainGracePeriodMs: GRACE } })).waitReady(5_000);
    const c3Before = await allOf(h, 'c3');
    assert.equal((await allOf(h, 'c2')).size, 11); // config + 5 canaries + 5 keys (not the identity value key)
    const rec = h.record();
    await rec.listed;

    await h.unconfigure('c2');
    await eventually(async () => {
      assert.equal(await h.local.get('cilium/cluster-config/c2'), undefined);
    }, 5_000);
    // Within the grace period the cache is still there for agents still reading it.
    assert.equal((await allOf(h, 'c2')).size, 10);
    await eventually(async () => {
      assert.equal((await allOf(h, 'c2')).size, 0);
    }, 5_000);
    await rec.stop();

    const dels = deletions(rec.events);
    const config = dels.find((e) => e.key === 'cilium/cluster-config/c2');
    assert.ok(config !== undefined, 'config !== undefined');
    assert.equal(dels[0]?.key, 'cilium/cluster-config/c2', 'config withdrawn first');
    const data = dels.filter((e) => e.key !== 'cilium/cluster-config/c2');
    assert.equal(data.length, 10);
    for (const e of data) {
      assert.ok(e.at - config.at >= GRACE - 20, `${e.key} deleted ${e.at - config.at}ms after`);
    }
    // Canaries go before the data, so no reader trusts a half-deleted cache.
    const lastCanary = Math.max(
      ...data.map((e, i) => (e.key.startsWith('cilium/synced/') ? i : -1)),
    );
    const firstData = data.findIndex((e) => e.key.startsWith('cilium/cache/'));
    assert.ok(lastCanary < firstData, 'lastCanary < firstData');
    assert.deepEqual(await allOf(h, 'c3'), c3Before, 'other clusters untouched');
    assert.deepEqual(
      h
        .mesh()
        .status()
        .clusters.map((c) => c.name),
      ['c3'],
    );

    // Configured again: mirrored again.
    await h.configure('c2');
    await eventually(async () => {
      assert.equal((await allOf(h, 'c2')).size, 11);
    }, 5_000);
  });

  it('keeps the cache of a removed cluster with drain on disconnection disabled', async () => {
    const h = await harness();
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2));
    await h.configure('c2');
    await (
      await h.start({ disableDrainOnDisconnection: true, remote: { drainGracePeriodMs: 10 } })
    ).waitReady(5_000);
    const before = await allOf(h, 'c2');
    await h.unconfigure('c2');
    await eventually(() => {
      assert.equal(h.mesh().status().clusters.length, 0);
    }, 5_000);
    await sleep(200);
    assert.deepEqual(await allOf(h, 'c2'), before);
  });

  it('rebuilds the cache when the remote cluster ID changes', async () => {
    const h = await harness();
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2));
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    const rec = h.record();
    await rec.listed;

    // Same name, new incarnation: a fresh etcd, cluster ID 5, other data.
    h.store('c2').wipe();
    const next = sampleRemoteState('c2', 5);
    await seedRemoteState(h.client('c2'), 'c2', 5, next);
    await eventually(async () => {
      assert.equal(h.status('c2').config?.['cluster-id'], 5);
      assert.equal(h.status('c2').ready, true);
      assert.deepEqual(await h.snapshot('cilium/cache/'), expectedCache('c2', next));
      assert.match((await h.local.get('cilium/cluster-config/c2'))?.value ?? '', /^\{"id":5,/);
    }, 5_000);
    await rec.stop();
    const canary = 'cilium/synced/c2/cilium/cache/nodes/v1';
    const deleted = rec.events.findIndex((e) => e.kind === 'delete' && e.key === canary);
    const rewritten = rec.events.findIndex((e, i) => i > deleted && e.key === canary);
    const oldNode = rec.events.findIndex(
      (e) => e.kind === 'delete' && e.key === 'cilium/cache/nodes/v1/c2/node-1',
    );
    const newNode = rec.events.findIndex(
      (e) => e.kind === 'upsert' && e.key === 'cilium/cache/nodes/v1/c2/node-1',
    );
    assert.ok(deleted >= 0 && deleted < oldNode, 'old canary deleted, then the old data');
    assert.ok(oldNode < newNode && newNode < rewritten, 'new data, then the new canary');
    // The config was replaced in place, never withdrawn.
    assert.equal(
      rec.events.some((e) => e.kind === 'delete' && e.key === 'cilium/cluster-config/c2'),
      false,
    );
  });

  it('takes over its cache after a restart and deletes leftovers before the canaries', async () => {
    const h = await harness();
    const remote = h.client('c2');
    const state = sampleRemoteState('c2', 2, 3);
    await seedRemoteState(remote, 'c2', 2, state);
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    const cached = await h.snapshot('cilium/');
    await h.mesh().stop();
    assert.deepEqual(await h.snapshot('cilium/'), cached, 'stop deletes nothing');

    await remote.delete('cilium/state/nodes/v1/c2/node-3');
    state.delete('cilium/state/nodes/v1/c2/node-3');
    const rec = h.record();
    await rec.listed;
    await (await h.start()).waitReady(5_000);
    await rec.stop();
    assert.deepEqual(await h.snapshot('cilium/cache/'), expectedCache('c2', state));
    const gone = rec.events.findIndex(
      (e) => e.kind === 'delete' && e.key === 'cilium/cache/nodes/v1/c2/node-3',
    );
    const canary = rec.events.findIndex(
      (e) => e.kind === 'upsert' && e.key === 'cilium/synced/c2/cilium/cache/nodes/v1',
    );
    assert.ok(gone >= 0 && gone < canary, 'leftover deleted before the canary');
  });
});

void describe('kvstoremesh: readiness', () => {
  it('is ready at once without remote clusters', async () => {
    const h = await harness();
    const km = await h.start({ healthAddr: '127.0.0.1:0' });
    await km.waitReady(1_000);
    assert.equal((await fetch(`${km.healthUrl ?? ''}/readyz`)).status, 200);
  });

  it('does not wait for a cluster that did not connect within the per-cluster timeout', async () => {
    const h = await harness();
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2));
    await h.configure('c2');
    await h.configure('c3');
    await h.cutOff('c3');
    const t0 = Date.now();
    const km = await h.start({ healthAddr: '127.0.0.1:0', perClusterReadyTimeoutMs: 600 });
    await eventually(() => {
      assert.equal(h.status('c2').ready, true);
    }, 5_000);
    assert.equal(km.ready, false);
    assert.equal((await fetch(`${km.healthUrl ?? ''}/readyz`)).status, 500);
    assert.deepEqual(km.pendingClusters(), ['c3']);
    await km.waitReady(5_000);
    assert.ok(Date.now() - t0 >= 550, `ready after ${Date.now() - t0}ms`);
    assert.equal((await fetch(`${km.healthUrl ?? ''}/readyz`)).status, 200);
    assert.equal(h.status('c3').ready, false);

    // Latched: a cluster that connects late, or a new one, does not make it unready.
    h.letBack('c3');
    await h.configure('c4');
    await sleep(200);
    assert.equal(km.ready, true);
  });

  it('waits for a connected cluster to sync, up to the global timeout', async () => {
    const h = await harness();
    // Connects, but its apiserver never writes canaries: the cache never syncs.
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2), {
      canaries: false,
    });
    await h.configure('c2');
    const t0 = Date.now();
    const km = await h.start({ perClusterReadyTimeoutMs: 100, globalReadyTimeoutMs: 800 });
    await eventually(() => {
      assert.equal(h.status('c2').connected, true);
    }, 5_000);
    await sleep(300);
    assert.equal(km.ready, false, 'a connected cluster is waited for past the per-cluster timeout');
    await km.waitReady(5_000);
    assert.ok(Date.now() - t0 >= 750, `ready after ${Date.now() - t0}ms`);
    assert.equal(h.status('c2').ready, false);
  });
});
