/**
 * The export half of MCS-API: ServiceExport + Service → MCSAPIServiceSpec bytes under
 * `cilium/state/serviceexports/v1/<cluster>/<ns>/<name>` (Cilium's field order, omitempty
 * fields left out), the Valid condition's KEP reasons, and the apiserver's store.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { serviceExportConverter } from '../../src/apiserver/converters.js';
import { allSynchronizers } from '../../src/apiserver/module.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { encodeMCSAPIServiceSpec } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { exportSpec, validCondition } from '../../src/mcsapi/export.js';
import { KvstoreMetrics } from '../../src/metrics/kvstore.js';
import type { Service, ServiceExport } from '../../src/registry/objects.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';
import { registryObjects } from '../../src/registry/source.js';

const CLUSTER = { name: 'cluster1', id: 1 };

function svcExport(spec?: ServiceExport['spec']): ServiceExport {
  return {
    apiVersion: 'multicluster.x-k8s.io/v1beta1',
    kind: 'ServiceExport',
    metadata: {
      name: 'hello',
      namespace: 'default',
      uid: 'u1',
      creationTimestamp: '2026-12-01T10:00:00Z',
    },
    ...(spec === undefined ? {} : { spec }),
  };
}

function service(spec: Partial<Service['spec']>): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'hello', namespace: 'default' },
    spec: { type: 'ClusterIP', ports: [], ...spec },
  };
}

function encoded(se: ServiceExport, svc: Service | undefined): string | undefined {
  const r = exportSpec('cluster1', se, svc);
  return r.valid ? encodeMCSAPIServiceSpec(r.spec) : undefined;
}

describe('MCS-API export converter', () => {
  it('writes a ClusterIP export in Cilium bytes (field order, defaults, no empty fields)', () => {
    assert.equal(
      encoded(
        svcExport(),
        service({
          clusterIP: '127.1.128.20',
          ports: [
            { name: 'tcp', port: 42, protocol: 'TCP' },
            { name: 'udp', port: 42, protocol: 'UDP' },
          ],
        }),
      ),
      '{"cluster":"cluster1","name":"hello","namespace":"default",' +
        '"exportCreationTimestamp":"2026-12-01T10:00:00Z",' +
        '"ports":[{"name":"tcp","protocol":"TCP","port":42},{"name":"udp","protocol":"UDP","port":42}],' +
        '"type":"ClusterSetIP","sessionAffinity":"None","ipFamilies":["IPv4"],' +
        '"internalTrafficPolicy":"Cluster"}',
    );
  });

  it('writes headless, ClientIP affinity with its config, appProtocol, exported labels and annotations, trafficDistribution', () => {
    assert.equal(
      encoded(
        svcExport({
          exportedLabels: { 'dummy-label': 'true' },
          exportedAnnotations: { 'dummy-annotation': 'true' },
        }),
        service({
          clusterIP: 'None',
          sessionAffinity: 'ClientIP',
          sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } },
          trafficDistribution: 'PreferClose',
          ports: [{ port: 80, protocol: 'TCP', appProtocol: 'http' } as never],
        }),
      ),
      '{"cluster":"cluster1","name":"hello","namespace":"default",' +
        '"annotations":{"dummy-annotation":"true"},"labels":{"dummy-label":"true"},' +
        '"exportCreationTimestamp":"2026-12-01T10:00:00Z",' +
        '"ports":[{"protocol":"TCP","appProtocol":"http","port":80}],' +
        '"type":"Headless","sessionAffinity":"ClientIP",' +
        '"sessionAffinityConfig":{"clientIP":{"timeoutSeconds":10}},"ipFamilies":["IPv4"],' +
        '"internalTrafficPolicy":"Cluster","trafficDistribution":"PreferClose"}',
    );
  });

  it('defaults the ClientIP timeout to the API server default (10800 s)', () => {
    const r = exportSpec('cluster1', svcExport(), service({ sessionAffinity: 'ClientIP' }));
    assert.ok(r.valid, 'r.valid');
    assert.deepEqual(r.spec.sessionAffinityConfig, { clientIP: { timeoutSeconds: 10800 } });
  });

  it('reports Valid=False NoService and InvalidServiceType, Valid=True Valid otherwise', () => {
    assert.deepEqual(validCondition(exportSpec('cluster1', svcExport(), undefined)), {
      type: 'Valid',
      status: 'False',
      reason: 'NoService',
      message: "Service doesn't exist",
    });
    const external = service({ type: 'ExternalName', externalName: 'example.com' });
    assert.deepEqual(validCondition(exportSpec('cluster1', svcExport(), external)), {
      type: 'Valid',
      status: 'False',
      reason: 'InvalidServiceType',
      message: 'Service type ExternalName is not supported',
    });
    assert.deepEqual(validCondition(exportSpec('cluster1', svcExport(), service({}))), {
      type: 'Valid',
      status: 'True',
      reason: 'Valid',
      message: 'ServiceExport is valid',
    });
    // A namespace annotated clustermesh.cilium.io/global=false keeps its Services home.
    const local = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'default', annotations: { 'clustermesh.cilium.io/global': 'false' } },
    } as const;
    assert.deepEqual(validCondition(exportSpec('cluster1', svcExport(), service({}), local)), {
      type: 'Valid',
      status: 'False',
      reason: 'NamespaceNotGlobal',
      message: 'Namespace default is not marked for global export',
    });
    const global = {
      ...local,
      metadata: { name: 'default', annotations: { 'clustermesh.cilium.io/global': 'true' } },
    };
    assert.equal(exportSpec('cluster1', svcExport(), service({}), global).valid, true);
    assert.equal(
      exportSpec('cluster1', svcExport(), service({}), { ...local, metadata: { name: 'default' } })
        .valid,
      true,
    );
  });

  it('converts join events to key updates: written while valid, deleted otherwise', () => {
    const conv = serviceExportConverter(CLUSTER);
    const key = 'cluster1/default/hello';
    const ev = (se: ServiceExport | undefined, svc: Service | undefined) => [
      ...conv.convert(
        { namespace: 'default', name: 'hello', serviceExport: se, service: svc },
        silentLogger,
      ),
    ];
    assert.equal(ev(svcExport(), service({}))[0]?.key, key);
    assert.notEqual(ev(svcExport(), service({}))[0]?.value, undefined);
    assert.deepEqual(ev(svcExport(), undefined), [{ key, value: undefined }]);
    assert.deepEqual(ev(undefined, service({})), [{ key, value: undefined }]);
    assert.deepEqual(ev(svcExport(), service({ type: 'ExternalName', externalName: 'x.io' })), [
      { key, value: undefined },
    ]);
    const notGlobal = conv.convert(
      {
        namespace: 'default',
        name: 'hello',
        serviceExport: svcExport(),
        service: service({}),
        namespaceObject: {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: { name: 'default', annotations: { 'clustermesh.cilium.io/global': 'false' } },
        },
      },
      silentLogger,
    );
    assert.deepEqual([...notGlobal], [{ key, value: undefined }]);
  });

  it('the apiserver mirrors exports with the sync canary and withdraws them with their Service', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const metrics = new KvstoreMetrics('test', CLUSTER.name);
    const sync = allSynchronizers(
      { backend, cluster: CLUSTER, log: silentLogger, metrics },
      registryObjects(backend),
    ).find((s) => s.name === 'serviceexports');
    assert.ok(sync !== undefined, 'sync !== undefined');
    const registry = new Registry(backend, { now: () => new Date('2026-12-01T10:00:00.700Z') });
    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'hello', namespace: 'default' },
        spec: { clusterIP: '127.1.128.20', ports: [{ port: 80 }] },
      },
      {
        apiVersion: 'multicluster.x-k8s.io/v1beta1',
        kind: 'ServiceExport',
        metadata: { name: 'hello', namespace: 'default' },
      },
      {
        apiVersion: 'multicluster.x-k8s.io/v1beta1',
        kind: 'ServiceExport',
        metadata: { name: 'missing', namespace: 'default' },
      },
    ]);
    const ac = new AbortController();
    const done = sync.run(ac.signal);
    const key = 'cilium/state/serviceexports/v1/cluster1/default/hello';
    try {
      await eventually(async () => {
        assert.notEqual(
          await backend.get('cilium/synced/cluster1/cilium/state/serviceexports/v1'),
          undefined,
        );
        assert.equal(
          (await backend.get(key))?.value,
          '{"cluster":"cluster1","name":"hello","namespace":"default",' +
            '"exportCreationTimestamp":"2026-12-01T10:00:00Z","ports":[{"protocol":"TCP","port":80}],' +
            '"type":"ClusterSetIP","sessionAffinity":"None","ipFamilies":["IPv4"],' +
            '"internalTrafficPolicy":"Cluster"}',
        );
      }, 5_000);
      assert.equal(
        await backend.get('cilium/state/serviceexports/v1/cluster1/default/missing'),
        undefined,
      );
      // The namespace leaves the clusterset: the export is withdrawn, and comes back.
      const ns = (global: string): RegistryObject => ({
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name: 'default', annotations: { 'clustermesh.cilium.io/global': global } },
      });
      await registry.apply([ns('false')]);
      await eventually(async () => {
        assert.equal(await backend.get(key), undefined);
      }, 5_000);
      await registry.apply([ns('true')]);
      await eventually(async () => {
        assert.notEqual(await backend.get(key), undefined);
      }, 5_000);
      await registry.delete('Service', 'default', 'hello');
      await eventually(async () => {
        assert.equal(await backend.get(key), undefined);
      }, 5_000);
    } finally {
      ac.abort();
      await done;
      metrics.close();
      await backend.close();
    }
  });
});
