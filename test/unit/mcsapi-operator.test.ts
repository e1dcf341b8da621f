/**
 * The operator's import controller on a memory registry, with remote exports injected into
 * its global view: ServiceExport conditions, the ServiceImport and derived Service, the
 * KEP port rule on the mirrored slices, the headless flip, namespaces, and removal.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { makeClusterService, type MCSAPIServiceSpec } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { derivedServiceName } from '../../src/mcsapi/types.js';
import { Operator } from '../../src/operator/module.js';
import type { EndpointSlice } from '../../src/registry/objects.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';

const STORE = 'mcsapi-operator-unit';
const DERIVED = derivedServiceName('default', 'hello');

function remote(cluster: string, over: Partial<MCSAPIServiceSpec> = {}): MCSAPIServiceSpec {
  return {
    cluster,
    name: 'hello',
    namespace: 'default',
    // Older than anything the registry creates now: the remote wins conflicts.
    exportCreationTimestamp: '2026-01-01T00:00:00Z',
    ports: [{ name: 'tcp', protocol: 'TCP', port: 42 }],
    type: 'ClusterSetIP',
    sessionAffinity: 'None',
    ipFamilies: ['IPv4'],
    internalTrafficPolicy: 'Cluster',
    ...over,
  };
}

function service(ports: { name: string; port: number }[], clusterIP?: string): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'hello', namespace: 'default' },
    spec: { ...(clusterIP === undefined ? {} : { clusterIP }), ports },
  };
}

const slice: RegistryObject = {
  apiVersion: 'discovery.k8s.io/v1',
  kind: 'EndpointSlice',
  metadata: {
    name: 'hello-abcde',
    namespace: 'default',
    labels: { 'kubernetes.io/service-name': 'hello' },
  },
  addressType: 'IPv4',
  endpoints: [{ addresses: ['127.1.1.5'] }],
  ports: [
    { name: 'tcp', port: 8042, protocol: 'TCP' },
    { name: 'tcp2', port: 8043, protocol: 'TCP' },
  ],
};

const svcExport: RegistryObject = {
  apiVersion: 'multicluster.x-k8s.io/v1beta1',
  kind: 'ServiceExport',
  metadata: { name: 'hello', namespace: 'default' },
};

describe('MCS-API operator (memory registry, injected remote exports)', { timeout: 60_000 }, () => {
  const kv = new MemoryBackend(sharedMemoryStore(STORE));
  const registry = new Registry(kv);
  let op: Operator;

  const conditions = async (): Promise<Record<string, string>> => {
    const se = await registry.get('ServiceExport', 'default', 'hello');
    return Object.fromEntries(
      (se?.status?.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]),
    );
  };
  const mirrored = async (): Promise<EndpointSlice[]> =>
    (await registry.list('EndpointSlice', 'default')).filter(
      (s) => s.metadata.labels?.['multicluster.kubernetes.io/service-name'] === 'hello',
    );

  before(async () => {
    op = new Operator({
      clusterName: 'cluster1',
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore: { kind: 'memory', qps: 0, maxInflight: 0, listLimit: 256 },
      memoryStoreName: STORE,
      healthAddr: '127.0.0.1:0',
      log: silentLogger,
    });
    await op.start();
    await op.waitReady(10_000);
  });

  after(async () => {
    await op.stop();
    await kv.close();
  });

  it('a ServiceExport without its Service: Valid=False NoService, no import', async () => {
    await registry.apply([svcExport]);
    await eventually(async () => {
      assert.deepEqual(await conditions(), { Valid: 'False/NoService', Ready: 'False/Pending' });
    }, 5_000);
    assert.deepEqual(await registry.list('ServiceImport'), []);
  });

  it('Connectivity to exported services with same port name but different port numbers on each cluster should only route traffic to the cluster that exposes the port', async () => {
    op.global.upsert(remote('cluster2'));
    await registry.apply([service([{ name: 'tcp', port: 4242 }], '127.1.128.20'), slice]);
    await eventually(async () => {
      assert.deepEqual(await conditions(), {
        Valid: 'True/Valid',
        Ready: 'True/Ready',
        Conflict: 'True/PortConflict',
      });
      const si = await registry.get('ServiceImport', 'default', 'hello');
      assert.deepEqual(si?.spec.ports, [{ name: 'tcp', protocol: 'TCP', port: 42 }]);
      assert.deepEqual(si.status?.clusters, [{ cluster: 'cluster1' }, { cluster: 'cluster2' }]);
      // cluster2's older tcp/42 won: this cluster's tcp/4242 backends are not mirrored.
      assert.deepEqual(await mirrored(), []);
    }, 5_000);
  });

  it('Connectivity to exported services with different port name on each cluster should route traffic to each port only to the cluster that exposes it', async () => {
    await registry.apply([service([{ name: 'tcp2', port: 4242 }], '127.1.128.20')]);
    await eventually(async () => {
      const si = await registry.get('ServiceImport', 'default', 'hello');
      assert.deepEqual(si?.spec.ports, [
        { name: 'tcp', protocol: 'TCP', port: 42 },
        { name: 'tcp2', protocol: 'TCP', port: 4242 },
      ]);
      const slices = await mirrored();
      assert.equal(slices.length, 1);
      assert.equal(slices.at(0)?.metadata.name, `${DERIVED}-hello-abcde`);
      assert.deepEqual(slices.at(0)?.ports, [{ name: 'tcp2', port: 8043, protocol: 'TCP' }]);
      const derived = await registry.get('Service', 'default', DERIVED);
      assert.deepEqual(
        derived?.spec.ports.map((p) => `${p.name ?? ''}:${p.port}`),
        ['tcp:42', 'tcp2:4242'],
      );
      assert.equal(derived.spec.selector, undefined);
    }, 5_000);
  });

  it('EPS-1: remote endpoints of a ClusterSetIP import get an MCS EndpointSlice per source cluster', async () => {
    op.global.upsertService(
      makeClusterService({
        cluster: 'cluster2',
        namespace: 'default',
        name: DERIVED,
        frontends: { '127.2.128.9': { tcp: { Protocol: 'TCP', Port: 42 } } },
        backends: { '127.2.1.7': { tcp: { Protocol: 'TCP', Port: 8042 } } },
        includeExternal: true,
        shared: true,
        clusterID: 2,
      }),
    );
    await eventually(async () => {
      const remote = (await mirrored()).filter(
        (s) => s.metadata.labels?.['multicluster.kubernetes.io/source-cluster'] === 'cluster2',
      );
      assert.equal(remote.length, 1);
      const l = remote[0]?.metadata.labels ?? {};
      assert.equal(l['kubernetes.io/service-name'], DERIVED);
      assert.equal(
        l['endpointslice.kubernetes.io/managed-by'],
        'endpointslice-mesh-controller.cilium.io',
      );
      assert.deepEqual(
        remote[0]?.endpoints.map((e) => e.addresses),
        [['127.2.1.7']],
      );
      assert.deepEqual(remote[0].ports, [{ name: 'tcp', port: 8042, protocol: 'TCP' }]);
    }, 5_000);
    op.global.deleteService('cluster2', 'default', DERIVED);
    await eventually(async () => {
      const remote = (await mirrored()).filter(
        (s) => s.metadata.labels?.['multicluster.kubernetes.io/source-cluster'] === 'cluster2',
      );
      assert.deepEqual(remote, []);
    }, 5_000);
  });

  it('serves readiness and the exports gauge', async () => {
    assert.equal((await fetch(`${op.healthUrl ?? ''}/readyz`)).status, 200);
    const text = await (await fetch(`${op.healthUrl ?? ''}/metrics`)).text();
    assert.match(
      text,
      /^cilium_operator_clustermesh_global_service_exports\{source_cluster="cluster1"\} 1$/m,
    );
  });

  it('a headlessness flip recreates the derived Service; the oldest export decides the type', async () => {
    const before = await registry.get('Service', 'default', DERIVED);
    op.global.upsert(remote('cluster2', { type: 'Headless' }));
    await eventually(async () => {
      const si = await registry.get('ServiceImport', 'default', 'hello');
      assert.equal(si?.spec.type, 'Headless');
      assert.equal(si.spec.ips, undefined);
      // Conformance reads ipFamilies for Headless imports too.
      assert.deepEqual(si.spec.ipFamilies, ['IPv4']);
      const derived = await registry.get('Service', 'default', DERIVED);
      assert.equal(derived?.spec.clusterIP, 'None');
      assert.notEqual(derived.metadata.uid, before?.metadata.uid);
      assert.match((await conditions()).Conflict ?? '', /^True\/PortConflict,TypeConflict$/);
    }, 5_000);
  });

  it('an import in a namespace that does not exist here waits for the namespace', async () => {
    op.global.upsert(remote('cluster2', { namespace: 'team-b' }));
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(await registry.list('ServiceImport', 'team-b'), []);
    await registry.apply([{ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'team-b' } }]);
    await eventually(async () => {
      const si = await registry.list('ServiceImport', 'team-b');
      assert.deepEqual(
        si.map((s) => s.metadata.name),
        ['hello'],
      );
    }, 5_000);
  });

  it('a namespace annotated clustermesh.cilium.io/global=false imports nothing and exports nothing', async () => {
    const ns = (global: string): RegistryObject => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'team-b', annotations: { 'clustermesh.cilium.io/global': global } },
    });
    await registry.apply([
      ns('false'),
      { ...service([{ name: 'tcp', port: 42 }]), metadata: { name: 'hello', namespace: 'team-b' } },
      { ...svcExport, metadata: { name: 'hello', namespace: 'team-b' } },
    ]);
    await eventually(async () => {
      assert.deepEqual(await registry.list('ServiceImport', 'team-b'), []);
      const se = await registry.get('ServiceExport', 'team-b', 'hello');
      const valid = se?.status?.conditions?.find((c) => c.type === 'Valid');
      assert.equal(`${valid?.status}/${valid?.reason}`, 'False/NamespaceNotGlobal');
      assert.equal(valid?.message, 'Namespace team-b is not marked for global export');
    }, 5_000);
    await registry.apply([ns('true')]);
    await eventually(async () => {
      const si = await registry.get('ServiceImport', 'team-b', 'hello');
      assert.deepEqual(si?.status?.clusters, [{ cluster: 'cluster1' }, { cluster: 'cluster2' }]);
    }, 5_000);
    await registry.delete('ServiceExport', 'team-b', 'hello');
  });

  it('the last export gone: import, derived Service and MCS slices are deleted', async () => {
    op.global.delete('cluster2', 'default', 'hello');
    await registry.delete('ServiceExport', 'default', 'hello');
    await eventually(async () => {
      assert.equal(await registry.get('ServiceImport', 'default', 'hello'), undefined);
      assert.equal(await registry.get('Service', 'default', DERIVED), undefined);
      assert.deepEqual(await mirrored(), []);
    }, 5_000);
  });
});
