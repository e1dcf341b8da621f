import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Apiserver } from '../../src/apiserver/module.js';
import { IPOwners } from '../../src/ipcache/owners.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import type { IPIdentityPair } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Registry } from '../../src/registry/registry.js';
import { eventually } from '../support/eventually.js';

const pair = (ip: string, id: number, pod: string): IPIdentityPair => ({
  IP: ip,
  Mask: null,
  HostIP: '127.1.0.1',
  ID: id,
  Key: 0,
  Metadata: '',
  K8sNamespace: 'default',
  K8sPodName: pod,
});

describe('IPOwners', () => {
  it('the first claimant owns an IP; the next takes over on release', () => {
    const o = new IPOwners();
    assert.deepEqual(o.update('ns/a', [pair('10.0.0.1', 65537, 'a')]), [
      { ip: '10.0.0.1', winner: pair('10.0.0.1', 65537, 'a') },
    ]);
    // b claims the same IP: a still wins.
    assert.equal(o.update('ns/b', [pair('10.0.0.1', 65538, 'b')])[0]?.winner?.K8sPodName, 'a');
    // a moves away: b takes over; a's new IP is published.
    const moved = o.update('ns/a', [pair('10.0.0.2', 65537, 'a')]);
    assert.deepEqual(moved.map((m) => [m.ip, m.winner?.K8sPodName]).sort(), [
      ['10.0.0.1', 'b'],
      ['10.0.0.2', 'a'],
    ]);
    // b deleted: 10.0.0.1 has no owner left.
    assert.deepEqual(o.update('ns/b', []), [{ ip: '10.0.0.1', winner: undefined }]);
    assert.equal(o.winner('10.0.0.2')?.K8sPodName, 'a');
  });
});

describe('apiserver', () => {
  it('refuses invalid cluster names and IDs with the reference reasons', () => {
    const base = {
      clusterName: 'c1',
      clusterId: 1,
      maxConnectedClusters: 255 as const,
      kvstore: { kind: 'memory' as const, qps: 0, maxInflight: 0, listLimit: 256 },
      log: silentLogger,
    };
    assert.throws(
      () => new Apiserver({ ...base, clusterName: 'Bad_Name' }),
      /lower case alphanumeric/,
    );
    assert.throws(() => new Apiserver({ ...base, clusterName: 'x'.repeat(33) }), /32 characters/);
    assert.throws(() => new Apiserver({ ...base, clusterId: 0 }), /ClusterID 0 is reserved/);
    assert.throws(() => new Apiserver({ ...base, clusterId: 256 }), /256/);
  });

  it('mirrors the registry, becomes ready after its canaries, and restores a deleted cluster config', async () => {
    const store = sharedMemoryStore('apiserver-unit');
    const kv = new MemoryBackend(store);
    await new Registry(kv).apply([
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumEndpoint',
        metadata: { name: 'a', namespace: 'default' },
        status: {
          identity: { id: 65537 },
          networking: { addressing: [{ ipv4: '10.0.0.1' }], node: '127.1.0.1' },
        },
      },
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumEndpoint',
        metadata: { name: 'b', namespace: 'default' },
        status: {
          identity: { id: 65538 },
          networking: { addressing: [{ ipv4: '10.0.0.1' }], node: '127.1.0.2' },
        },
      },
    ]);
    const server = new Apiserver({
      clusterName: 'c1',
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore: { kind: 'memory', qps: 0, maxInflight: 0, listLimit: 256 },
      memoryStoreName: 'apiserver-unit',
      clusterConfigIntervalMs: 100,
      heartbeatIntervalMs: 100,
      log: silentLogger,
    });
    try {
      await server.start();
      await server.waitReady(5000);
      // Two endpoints claim one IP: the first owner (a) is published.
      const v = JSON.parse(
        (await kv.get('cilium/state/ip/v1/default/10.0.0.1'))?.value ?? '{}',
      ) as {
        K8sPodName?: string;
      };
      assert.equal(v.K8sPodName, 'a');
      await new Registry(kv).delete('CiliumEndpoint', 'default', 'a');
      await eventually(async () => {
        const w = JSON.parse(
          (await kv.get('cilium/state/ip/v1/default/10.0.0.1'))?.value ?? '{}',
        ) as {
          K8sPodName?: string;
        };
        assert.equal(w.K8sPodName, 'b');
      });
      await kv.delete('cilium/cluster-config/c1');
      await eventually(async () => {
        assert.equal(
          (await kv.get('cilium/cluster-config/c1'))?.value,
          '{"id":1,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":true}}',
        );
      });
      const beat1 = (await kv.get('cilium/.heartbeat'))?.modRevision ?? 0;
      await eventually(async () => {
        assert.ok(
          ((await kv.get('cilium/.heartbeat'))?.modRevision ?? 0) > beat1,
          'heartbeat rewritten',
        );
      });
    } finally {
      await server.stop();
      await kv.close();
      store.close();
    }
  });
  it('reverts a changed or deleted cluster config at once, as Cilium watches it, not at the next period', async () => {
    const store = sharedMemoryStore('apiserver-unit-enforce');
    const kv = new MemoryBackend(store);
    const server = new Apiserver({
      clusterName: 'c1',
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore: { kind: 'memory', qps: 0, maxInflight: 0, listLimit: 256 },
      memoryStoreName: 'apiserver-unit-enforce',
      // The periodic rewrite cannot be what restores it within this test.
      clusterConfigIntervalMs: 10 * 60_000,
      log: silentLogger,
    });
    const want =
      '{"id":1,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":true}}';
    const restored = (): Promise<void> =>
      eventually(async () => {
        assert.equal((await kv.get('cilium/cluster-config/c1'))?.value, want);
      }, 2000);
    try {
      await server.start();
      await server.waitReady(5000);
      await kv.put('cilium/cluster-config/c1', '{"id":7}');
      await restored();
      await kv.delete('cilium/cluster-config/c1');
      await restored();
      // Another cluster's config is none of its business.
      await kv.put('cilium/cluster-config/c2', '{"id":2}');
      await new Promise((r) => setTimeout(r, 200));
      assert.equal((await kv.get('cilium/cluster-config/c2'))?.value, '{"id":2}');
    } finally {
      await server.stop();
      await kv.close();
      store.close();
    }
  });
});
