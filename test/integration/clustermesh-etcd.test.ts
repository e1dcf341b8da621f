/**
 * The remote-cluster controller against a real etcd: connect through an etcd client
 * config file in the clustermesh config directory, lose the remote (etcd stopped),
 * get it back, and see it replaced by a fresh etcd (wipe).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ClusterMesh } from '../../src/clustermesh/clustermesh.js';
import type { RemoteClusterStatus } from '../../src/clustermesh/status.js';
import { formatClusterMeshStatus } from '../../src/clustermesh/status-text.js';
import { EtcdRemoteTiming, NodesRemoteCluster, seedRemoteCluster } from '../support/clustermesh.js';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';

describe('ClusterMesh against a real etcd', () => {
  let etcd: EtcdServer;
  let dir: string;
  let mesh: ClusterMesh;
  const logics: NodesRemoteCluster[] = [];

  const status = (): RemoteClusterStatus => {
    const s = mesh.status().clusters.find((c) => c.name === 'c2');
    assert.ok(s, 's');
    return s;
  };

  const logic = (): NodesRemoteCluster => {
    const l = logics[0];
    assert.ok(l, 'l');
    return l;
  };

  async function seed(id: number, nodes: string[]): Promise<void> {
    const w = new EtcdBackend({ endpoints: etcd.endpoints, callTimeoutMs: 2_000 });
    try {
      await seedRemoteCluster(w, 'c2', id, { nodes });
    } finally {
      await w.close();
    }
  }

  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), 'clustermesh-config-'));
    await seed(2, ['n1', 'n2']);
    await etcd.writeClientConfig(join(dir, 'c2'));
    mesh = new ClusterMesh({
      local: { name: 'c1', id: 1, maxConnectedClusters: 255 },
      configDir: dir,
      newLogic: (name) => {
        const l = new NodesRemoteCluster(name);
        logics.push(l);
        return l;
      },
      timing: EtcdRemoteTiming,
      rescanIntervalMs: 200,
    });
    await mesh.start();
  });

  after(async () => {
    await mesh.stop();
    await etcd.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('connects through the config file and becomes ready', async () => {
    await eventually(() => {
      assert.equal(status().ready, true, JSON.stringify(status()));
    }, 10_000);
    const s = status();
    assert.equal(s['num-nodes'], 2);
    assert.match(
      s.status,
      /^etcd: 1\/1 connected, .*has-quorum=true: http:\/\/127\.0\.0\.1:\d+, ID: [0-9a-f]+$/,
    );
    assert.equal(s.config?.['cluster-id'], 2);
    assert.equal(s.config['sync-canaries'], false);
    assert.equal(s['num-failures'], 0);
    assert.deepEqual(formatClusterMeshStatus(mesh.status()), [
      'ClusterMesh:   1/1 remote clusters ready, 0 global-services',
    ]);
  });

  it('reports the outage when etcd stops and keeps the state', async () => {
    await etcd.stop();
    await eventually(() => {
      const s = status();
      assert.equal(s.connected, false);
      assert.equal(s.ready, false);
      assert.ok(s['num-failures'] >= 1, "s['num-failures'] >= 1");
      assert.ok(s['last-failure'] !== undefined, "s['last-failure'] !== undefined");
      assert.match(s.status, /unreachable|timed out/);
    }, 10_000);
    assert.equal(status()['num-nodes'], 2, 'nodes kept while disconnected');
    assert.equal(logic().drains, 0);
    const text = formatClusterMeshStatus(mesh.status());
    assert.equal(text[0], 'ClusterMesh:   0/1 remote clusters ready, 0 global-services');
    assert.match(
      text[1] ?? '',
      /^ {3}c2: not-ready, 2 nodes, .* reconnections \(last: \d+s ago\)$/,
    );
  });

  it('reconnects when etcd is back, without draining', async () => {
    await etcd.start();
    await eventually(() => {
      assert.equal(status().ready, true, JSON.stringify(status()));
    }, 15_000);
    assert.equal(status()['num-nodes'], 2);
    assert.equal(logic().drains, 0);
    assert.ok(logic().runs >= 2, 'logic().runs >= 2');
  });

  it('drains and re-reads a wiped etcd that comes back with another cluster ID', async () => {
    await etcd.wipe();
    await seed(3, ['m1']);
    await eventually(() => {
      const s = status();
      assert.equal(s.ready, true, JSON.stringify(s));
      assert.equal(s.config?.['cluster-id'], 3);
      assert.equal(s['num-nodes'], 1);
    }, 15_000);
    assert.equal(logic().drains, 1);
    assert.equal(mesh.idsManager.idOf('c2'), 3);
  });
});
