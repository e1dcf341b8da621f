/**
 * KVStoreMesh in-process between two real etcds: a remote one (what a remote
 * clustermesh-apiserver writes) and a local one (the cache). The remote goes away,
 * comes back with changes, is wiped and refilled, and is finally removed.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { KvstoreMesh } from '../../src/kvstoremesh/module.js';
import {
  expectedCache,
  sampleRemoteState,
  seedRemoteState,
  writeRemoteCanaries,
} from '../support/kvstoremesh.js';
import { silentLogger } from '../../src/lib/logger.js';
import { EtcdRemoteTiming } from '../support/clustermesh.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';

describe('KVStoreMesh between two real etcds', { timeout: 60_000 }, () => {
  let remoteEtcd: EtcdServer;
  let localEtcd: EtcdServer;
  let dir: string;
  let km: KvstoreMesh;
  let local: EtcdBackend;
  let state: Map<string, string>;

  const remoteClient = (): EtcdBackend =>
    new EtcdBackend({ endpoints: remoteEtcd.endpoints, callTimeoutMs: 2_000 });

  async function withRemote(fn: (b: EtcdBackend) => Promise<void>): Promise<void> {
    const b = remoteClient();
    try {
      await fn(b);
    } finally {
      await b.close();
    }
  }

  async function snapshot(prefix: string): Promise<Map<string, string>> {
    const { kvs } = await local.list(prefix);
    return new Map(kvs.map((kv) => [kv.key, kv.value]));
  }

  const status = (): { connected: boolean; ready: boolean; 'num-failures': number } => {
    const s = km.status().clusters.find((c) => c.name === 'c2');
    assert.ok(s, 's');
    return s;
  };

  before(async () => {
    [remoteEtcd, localEtcd] = await Promise.all([
      startEtcd({ name: 'etcd-c2' }),
      startEtcd({ name: 'etcd-local' }),
    ]);
    dir = await mkdtemp(join(tmpdir(), 'kvstoremesh-config-'));
    state = sampleRemoteState('c2', 2, 300);
    await withRemote((b) => seedRemoteState(b, 'c2', 2, state));
    await remoteEtcd.writeClientConfig(join(dir, 'c2'));
    local = new EtcdBackend({ endpoints: localEtcd.endpoints, callTimeoutMs: 2_000 });
    km = new KvstoreMesh({
      clusterName: 'c1',
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore: {
        kind: 'etcd',
        etcd: { endpoints: localEtcd.endpoints },
        // Bootstrap slower than steady state: the switch happens once ready.
        bootstrapQps: 500,
        qps: 0,
        maxInflight: 0,
        listLimit: 100,
      },
      clustermeshConfig: dir,
      healthAddr: '127.0.0.1:0',
      remote: { drainGracePeriodMs: 500, drainRetryBaseMs: 100 },
      timing: { ...EtcdRemoteTiming, configDeadlineMs: 2_000 },
      rescanIntervalMs: 200,
      log: silentLogger,
    });
    await km.start();
  });

  after(async () => {
    await km.stop();
    await local.close();
    await Promise.all([remoteEtcd.destroy(), localEtcd.destroy()]);
    await rm(dir, { recursive: true, force: true });
  });

  it('caches the remote cluster and becomes ready', async () => {
    await km.waitReady(15_000);
    assert.deepEqual(await snapshot('cilium/cache/'), expectedCache('c2', state));
    assert.equal((await snapshot('cilium/synced/c2/')).size, 5);
    assert.match(
      (await local.get('cilium/cluster-config/c2'))?.value ?? '',
      /^\{"id":2,"capabilities":\{"syncedCanaries":true,"cached":true,/,
    );
    assert.equal((await fetch(`${km.healthUrl ?? ''}/readyz`)).status, 200);
  });

  it('keeps the cache while the remote etcd is down and converges when it is back', async () => {
    const cached = await snapshot('cilium/');
    await remoteEtcd.stop();
    await eventually(() => {
      assert.equal(status().connected, false);
    }, 10_000);
    assert.deepEqual(await snapshot('cilium/'), cached, 'nothing deleted during the outage');

    await remoteEtcd.start();
    await withRemote(async (b) => {
      await b.delete('cilium/state/nodes/v1/c2/node-7');
      await b.put('cilium/state/nodes/v1/c2/node-new', '{"Name":"node-new"}');
      await b.put('cilium/state/ip/v1/default/10.2.1.5', '{"IP":"10.2.1.5","ID":131099}');
    });
    state.delete('cilium/state/nodes/v1/c2/node-7');
    state.set('cilium/state/nodes/v1/c2/node-new', '{"Name":"node-new"}');
    state.set('cilium/state/ip/v1/default/10.2.1.5', '{"IP":"10.2.1.5","ID":131099}');
    await eventually(async () => {
      assert.equal(status().ready, true);
      assert.deepEqual(await snapshot('cilium/cache/'), expectedCache('c2', state));
    }, 15_000);
    assert.ok(status()['num-failures'] >= 1, "status()['num-failures'] >= 1");
    assert.equal((await snapshot('cilium/synced/c2/')).size, 5);
  });

  it('re-reads a wiped remote only once its canaries are back, leaving nothing stale', async () => {
    const cached = await snapshot('cilium/');
    await remoteEtcd.wipe();
    state = sampleRemoteState('c2', 2, 5);
    await withRemote((b) => seedRemoteState(b, 'c2', 2, state, { canaries: false }));
    await eventually(() => {
      assert.equal(status().connected, true);
    }, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await snapshot('cilium/'), cached, 'cache kept without remote canaries');

    await withRemote((b) => writeRemoteCanaries(b, 'c2'));
    await eventually(async () => {
      assert.deepEqual(await snapshot('cilium/cache/'), expectedCache('c2', state));
    }, 15_000);
  });

  it('deletes the cache of a removed cluster after the grace period', async () => {
    await unlink(join(dir, 'c2'));
    await eventually(async () => {
      assert.equal(await local.get('cilium/cluster-config/c2'), undefined);
    }, 10_000);
    await eventually(async () => {
      assert.equal((await snapshot('cilium/cache/')).size, 0);
      assert.equal((await snapshot('cilium/synced/')).size, 0);
    }, 10_000);
    assert.deepEqual(km.status().clusters, []);
  });
});
