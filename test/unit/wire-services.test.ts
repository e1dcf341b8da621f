/**
 * Global services against Cilium's fixtures (test/fixtures/cilium/services.json):
 * Service + EndpointSlice → ClusterService bytes as the reference exports them
 * (headless ones and terminating-but-serving endpoints included), and the reference's
 * ClusterService validators accepting and rejecting the same values.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  clusterServiceKeyName,
  decodeClusterService,
  encodeClusterService,
  globalServiceSettings,
  globalSyncEndpointSlices,
  makeClusterService,
  ServicesPrefix,
} from '../../src/keyspace/index.js';
import type { EndpointSlice, Service } from '../../src/registry/objects.js';
import { serviceToClusterService } from '../../src/service/local-services.js';
import { ServiceTable } from '../../src/service/table.js';

interface SvcFields {
  readonly cluster?: string;
  readonly namespace?: string;
  readonly name?: string;
  readonly clusterID?: number;
  readonly frontends?: unknown;
  readonly backends?: unknown;
}

interface Fixture {
  readonly cluster: { readonly name: string; readonly id: number };
  readonly serviceSync: {
    service: Service;
    endpointSlice: EndpointSlice;
    key: string;
    withoutSlices: string;
    withSlices: string;
  };
  readonly validate: readonly { svc: SvcFields; error?: string }[];
  readonly validators: readonly {
    svc: SvcFields;
    key?: string;
    expectedCluster?: string;
    expectedClusterId?: number;
    error?: string;
  }[];
  readonly remoteClusterRun: readonly { key: string; value: string; clusterId: number }[];
}

const fx = JSON.parse(
  readFileSync(new URL('../fixtures/cilium/services.json', import.meta.url), 'utf8'),
) as Fixture;
const { service, endpointSlice } = fx.serviceSync;

function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    const m = /^invalid service entry "[^"]*": (.*)$/.exec((err as Error).message);
    assert.ok(m !== null, `unexpected error text: ${(err as Error).message}`);
    return m[1] ?? '';
  }
  assert.fail('accepted');
}

function exported(svc: Service, slices: readonly EndpointSlice[]): string {
  assert.equal(globalServiceSettings(svc.metadata.annotations).shared, true);
  const cs = serviceToClusterService(svc, slices, fx.cluster);
  assert.ok(cs !== undefined, 'cs !== undefined');
  assert.equal(`${ServicesPrefix}/${clusterServiceKeyName(cs)}`, fx.serviceSync.key);
  return encodeClusterService(cs);
}

function unnamed<T extends { name?: string | undefined }>(ports: readonly T[]): T[] {
  return ports.map(({ name: _n, ...rest }) => rest as T);
}

void describe('wire: services (servicesync.txtar)', () => {
  it('exports the service before and after its slice byte for byte', () => {
    assert.equal(exported(service, []), fx.serviceSync.withoutSlices);
    // The not-ready, not-serving endpoint 10.244.1.2 is left out.
    assert.equal(exported(service, [endpointSlice]), fx.serviceSync.withSlices);
  });

  it('reads what it wrote back to the same bytes', () => {
    const cs = decodeClusterService('cluster3/test/echo', fx.serviceSync.withSlices, {
      localClusterId: 9,
    });
    assert.equal(encodeClusterService(cs), fx.serviceSync.withSlices);
  });

  it('exports unnamed ports under the "" key', () => {
    const svc: Service = {
      ...service,
      spec: { ...service.spec, ports: unnamed(service.spec.ports) },
    };
    const slice: EndpointSlice = { ...endpointSlice, ports: unnamed(endpointSlice.ports) };
    assert.equal(exported(svc, [slice]), fx.serviceSync.withSlices.replaceAll('"http":', '"":'));
  });

  it('exports a headless global service with "frontends":{}, its backends and hostnames', () => {
    const svc: Service = {
      ...service,
      spec: { ...service.spec, clusterIP: 'None', clusterIPs: ['None'] },
    };
    const slice: EndpointSlice = {
      ...endpointSlice,
      endpoints: endpointSlice.endpoints.map((e, i) =>
        i === 0 ? { ...e, hostname: 'echo-0' } : e,
      ),
    };
    assert.equal(
      exported(svc, [slice]),
      fx.serviceSync.withSlices
        .replace(
          '"frontends":{"10.96.50.104":{"http":{"Protocol":"TCP","Port":80}}}',
          '"frontends":{}',
        )
        .replace('"hostnames":{}', '"hostnames":{"10.244.1.1":"echo-0"}'),
    );
    // Headless is where endpoint-slice sync is on by default.
    assert.equal(globalSyncEndpointSlices(svc.metadata.annotations, true), true);
  });

  it('exports terminating endpoints that still serve, as ParseEndpointSliceV1 keeps them', () => {
    const slice: EndpointSlice = {
      ...endpointSlice,
      endpoints: [
        {
          addresses: ['10.244.1.1'],
          conditions: { ready: false, serving: true, terminating: true },
        },
        {
          addresses: ['10.244.1.2'],
          conditions: { ready: false, serving: false, terminating: true },
        },
        // No conditions at all: ready, as the API defines a missing condition.
        { addresses: ['10.244.1.3'] },
      ],
    };
    const cs = serviceToClusterService(service, [slice], fx.cluster);
    assert.deepEqual(Object.keys(cs?.backends ?? {}), ['10.244.1.1', '10.244.1.3']);
  });

  it('round-trips NewClusterService("foo","bar") in cluster "default"', () => {
    const x = makeClusterService({ cluster: 'default', namespace: 'bar', name: 'foo' });
    assert.equal(clusterServiceKeyName(x), 'default/bar/foo');
    assert.deepEqual(decodeClusterService('default/bar/foo', encodeClusterService(x)), x);
  });
});

void describe('wire: ClusterService.validate and validators', () => {
  for (const v of fx.validate) {
    it(`${JSON.stringify(v.svc)} → ${v.error ?? 'OK'}`, () => {
      const key = `${v.svc.cluster ?? ''}/${v.svc.namespace ?? ''}/${v.svc.name ?? ''}`;
      const run = () => decodeClusterService(key, JSON.stringify(v.svc));
      if (v.error === undefined) {
        const cs = run();
        // Missing maps are empty, as Go's NewClusterService leaves them.
        if (v.svc.frontends === undefined) assert.deepEqual(cs.frontends, {});
        if (v.svc.backends === undefined) assert.deepEqual(cs.backends, {});
      } else {
        assert.equal(reason(run), v.error);
      }
    });
  }
  for (const v of fx.validators) {
    const label = `key=${v.key ?? '-'} cluster=${v.expectedCluster ?? '-'} id=${v.expectedClusterId ?? '-'}`;
    it(`${JSON.stringify(v.svc)} ${label} → ${v.error ?? 'OK'}`, () => {
      const key = `${v.svc.cluster ?? ''}/${v.key ?? `${v.svc.namespace ?? ''}/${v.svc.name ?? ''}`}`;
      const run = () =>
        decodeClusterService(key, JSON.stringify(v.svc), {
          ...(v.expectedCluster === undefined ? {} : { expectedCluster: v.expectedCluster }),
          ...(v.expectedClusterId === undefined ? {} : { expectedClusterId: v.expectedClusterId }),
        });
      if (v.error === undefined) run();
      else assert.equal(reason(run), v.error);
    });
  }
  for (const r of fx.remoteClusterRun) {
    it(`accepts a service without frontends or backends: ${r.value}`, () => {
      const cs = decodeClusterService(r.key, r.value, {
        localClusterId: 99,
        expectedCluster: 'foo',
        expectedClusterId: r.clusterId,
      });
      assert.deepEqual([cs.namespace, cs.name, cs.clusterID], ['baz', 'bar', r.clusterId]);
      assert.deepEqual(cs.frontends, {});
    });
  }
  it('accepts a zoned IPv6 backend (netip.ParseAddr) and field names in any case', () => {
    const cs = decodeClusterService(
      'foo/bar/qux',
      '{"Cluster":"foo","NAMESPACE":"bar","name":"qux","backends":{"fe80::1%eth0":{"":{"protocol":"TCP","port":80}}}}',
    );
    assert.deepEqual(cs.backends, { 'fe80::1%eth0': { '': { Protocol: 'TCP', Port: 80 } } });
  });
});

void describe('wire: agents import headless global services', () => {
  it('keeps a remote entry without frontends and lists its backends and hostnames', () => {
    const table = new ServiceTable('c1');
    table.upsertRemote(
      makeClusterService({
        cluster: 'c2',
        namespace: 'test',
        name: 'echo',
        backends: { '10.2.1.1': { http: { Protocol: 'TCP', Port: 8080 } } },
        hostnames: { '10.2.1.1': 'echo-0' },
        includeExternal: true,
        shared: true,
        clusterID: 2,
      }),
    );
    assert.equal(table.numGlobalServices, 1);
    assert.deepEqual(table.clusterBackendsOf('test/echo'), [
      {
        cluster: 'c2',
        backends: [
          { ip: '10.2.1.1', hostname: 'echo-0', ports: { http: { Protocol: 'TCP', Port: 8080 } } },
        ],
      },
    ]);
    // No local frontend: nothing to load-balance, but the backends are known.
    assert.deepEqual(table.frontendsOf('test/echo'), []);
  });

  it('requires service.cilium.io/global itself for endpoint-slice sync', () => {
    assert.equal(globalSyncEndpointSlices({ 'io.cilium/global-service': 'true' }, true), false);
    assert.equal(
      globalSyncEndpointSlices({ 'service.cilium.io/global-sync-endpoint-slices': 'true' }, false),
      false,
    );
    assert.equal(
      globalSyncEndpointSlices(
        {
          'service.cilium.io/global': 'TRUE',
          'service.cilium.io/global-sync-endpoint-slices': 'true',
        },
        false,
      ),
      true,
    );
  });
});
