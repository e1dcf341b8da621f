/**
 * The MCS-API operator between two real etcds, in-process: cluster1 exports `hello`,
 * cluster2 only imports it. A remote outage keeps cluster1's contribution in cluster2; an
 * operator restart rewrites nothing (the import and its derived Service keep their
 * resource versions), also when the exporting cluster is unreachable during the restart.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Apiserver } from '../../src/apiserver/module.js';
import type { KvstoreConfig } from '../../src/kvstore/config.js';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { silentLogger } from '../../src/lib/logger.js';
import { derivedServiceName } from '../../src/mcsapi/types.js';
import { Operator } from '../../src/operator/module.js';
import { Registry } from '../../src/registry/registry.js';
import { EtcdRemoteTiming } from '../support/clustermesh.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';

const DERIVED = derivedServiceName('default', 'hello');

function kvstore(etcd: EtcdServer): KvstoreConfig {
  return {
    kind: 'etcd',
    etcd: { endpoints: etcd.endpoints },
    bootstrapQps: 0,
    qps: 0,
    maxInflight: 0,
    listLimit: 100,
  };
}

describe('MCS-API operator between two real etcds', { timeout: 120_000 }, () => {
  let etcd1: EtcdServer;
  let etcd2: EtcdServer;
  let dir1: string;
  let dir2: string;
  let api1: Apiserver;
  let api2: Apiserver;
  let op2: Operator | undefined;
  let b1: EtcdBackend;
  let b2: EtcdBackend;
  let reg2: Registry;

  const operator2 = (): Operator =>
    new Operator({
      clusterName: 'cluster2',
      clusterId: 2,
      maxConnectedClusters: 255,
      kvstore: kvstore(etcd2),
      clustermeshConfig: dir2,
      remoteSyncTimeoutMs: 1_000,
      timing: EtcdRemoteTiming,
      log: silentLogger,
    });

  /** The resource versions of cluster2's import and derived Service. */
  async function versions(): Promise<[string | undefined, string | undefined]> {
    const si = await reg2.get('ServiceImport', 'default', 'hello');
    const svc = await reg2.get('Service', 'default', DERIVED);
    return [si?.metadata.resourceVersion, svc?.metadata.resourceVersion];
  }

  before(async () => {
    [etcd1, etcd2] = await Promise.all([
      startEtcd({ name: 'etcd-mcs-c1' }),
      startEtcd({ name: 'etcd-mcs-c2' }),
    ]);
    dir1 = await mkdtemp(join(tmpdir(), 'mcs-c1-'));
    dir2 = await mkdtemp(join(tmpdir(), 'mcs-c2-'));
    await etcd2.writeClientConfig(join(dir1, 'cluster2'));
    await etcd1.writeClientConfig(join(dir2, 'cluster1'));
    b1 = new EtcdBackend({ endpoints: etcd1.endpoints, callTimeoutMs: 2_000 });
    b2 = new EtcdBackend({ endpoints: etcd2.endpoints, callTimeoutMs: 2_000 });
    reg2 = new Registry(b2);
    await new Registry(b1).apply([
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'hello', namespace: 'default' },
        spec: { clusterIP: '127.1.128.20', ports: [{ name: 'tcp', port: 42 }] },
      },
      {
        apiVersion: 'multicluster.x-k8s.io/v1beta1',
        kind: 'ServiceExport',
        metadata: { name: 'hello', namespace: 'default' },
      },
    ]);
    const common = { maxConnectedClusters: 255 as const, log: silentLogger };
    api1 = new Apiserver({
      ...common,
      clusterName: 'cluster1',
      clusterId: 1,
      kvstore: kvstore(etcd1),
    });
    api2 = new Apiserver({
      ...common,
      clusterName: 'cluster2',
      clusterId: 2,
      kvstore: kvstore(etcd2),
    });
    await Promise.all([api1.start(), api2.start()]);
    op2 = operator2();
    await op2.start();
  });

  after(async () => {
    await op2?.stop();
    await Promise.all([api1.stop(), api2.stop()]);
    await Promise.all([b1.close(), b2.close()]);
    await Promise.all([etcd1.destroy(), etcd2.destroy()]);
    await rm(dir1, { recursive: true, force: true });
    await rm(dir2, { recursive: true, force: true });
  });

  it("imports cluster1's export into cluster2 (namespace exists, no local Service)", async () => {
    await eventually(async () => {
      const si = await reg2.get('ServiceImport', 'default', 'hello');
      assert.deepEqual(si?.status?.clusters, [{ cluster: 'cluster1' }]);
      assert.deepEqual(si.spec.ports, [{ name: 'tcp', protocol: 'TCP', port: 42 }]);
      const svc = await reg2.get('Service', 'default', DERIVED);
      assert.equal(svc?.metadata.annotations?.['service.cilium.io/global'], 'true');
      assert.equal(svc.metadata.ownerReferences?.[0]?.uid, si.metadata.uid);
    }, 30_000);
  });

  it('an operator restart rewrites nothing', async () => {
    const before = await versions();
    await op2?.stop();
    op2 = operator2();
    await op2.start();
    await op2.waitReady(30_000);
    assert.deepEqual(await versions(), before);
  });

  it('a remote outage keeps its contribution, also across an operator restart', async () => {
    const before = await versions();
    await etcd1.stop();
    await eventually(() => {
      assert.equal(op2?.clustermeshStatus().clusters[0]?.connected, false);
    }, 20_000);
    await op2?.stop();
    op2 = operator2();
    await op2.start();
    await op2.waitReady(30_000);
    // Past the remote sync timeout: the operator runs without cluster1's state.
    await new Promise((r) => setTimeout(r, 1_500));
    assert.deepEqual(await versions(), before, 'import and derived Service untouched');

    await etcd1.start();
    await eventually(() => {
      assert.equal(op2?.clustermeshStatus().clusters[0]?.ready, true);
    }, 30_000);
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(await versions(), before, 'nothing rewritten once cluster1 is back');
  });

  it('deleting the last export removes the import and the derived Service', async () => {
    await new Registry(b1).delete('ServiceExport', 'default', 'hello');
    await eventually(async () => {
      assert.deepEqual(await versions(), [undefined, undefined]);
    }, 30_000);
  });
});
