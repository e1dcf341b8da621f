import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { clusterServiceFromService } from '../../src/apiserver/converters.js';
import { allSynchronizers } from '../../src/apiserver/module.js';
import type { Synchronizer } from '../../src/apiserver/synchronizer.js';
import type { Backend, ListAndWatchOptions, WatchEvent } from '../../src/kvstore/backend.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { encodeClusterService } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { KvstoreMetrics } from '../../src/metrics/kvstore.js';
import type {
  Endpoint,
  EndpointPort,
  EndpointSlice,
  Service,
  ServicePort,
} from '../../src/registry/objects.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';
import { snapshot } from '../support/kvstore-contract.js';
import { registryObjects } from '../../src/registry/source.js';

const CLUSTER = { name: 'cluster1', id: 1 };
const PREFIX = 'cilium/state/services/v1/';
const CANARY = 'cilium/synced/cluster1/cilium/state/services/v1';
const GLOBAL = { 'service.cilium.io/global': 'true' };

function key(name: string, namespace = 'default'): string {
  return `${PREFIX}cluster1/${namespace}/${name}`;
}

interface ServiceOptions {
  readonly namespace?: string;
  readonly annotations?: Record<string, string>;
  readonly labels?: Record<string, string>;
  readonly type?: string;
  readonly clusterIP?: string;
  readonly clusterIPs?: string[];
  readonly ports?: Partial<ServicePort>[];
  readonly selector?: Record<string, string>;
  readonly externalName?: string;
}

function service(name: string, o: ServiceOptions = {}): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name,
      namespace: o.namespace ?? 'default',
      ...(o.annotations === undefined ? {} : { annotations: o.annotations }),
      ...(o.labels === undefined ? {} : { labels: o.labels }),
    },
    spec: {
      ...(o.type === undefined ? {} : { type: o.type }),
      ...(o.clusterIP === undefined ? {} : { clusterIP: o.clusterIP }),
      ...(o.clusterIPs === undefined ? {} : { clusterIPs: o.clusterIPs }),
      ...(o.externalName === undefined ? {} : { externalName: o.externalName }),
      ports: o.ports ?? [{ port: 80 }],
      selector: o.selector ?? { name },
    },
  };
}

function slice(
  name: string,
  serviceName: string,
  endpoints: Endpoint[],
  ports: Partial<EndpointPort>[] = [{ port: 8080 }],
  o: { namespace?: string; addressType?: string } = {},
): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: o.namespace ?? 'default',
      labels: { 'kubernetes.io/service-name': serviceName },
    },
    addressType: o.addressType ?? 'IPv4',
    endpoints,
    ports,
  };
}

function ready(ip: string, hostname?: string): Endpoint {
  return {
    addresses: [ip],
    conditions: { ready: true },
    ...(hostname === undefined ? {} : { hostname }),
  };
}

function notReady(ip: string): Endpoint {
  return { addresses: [ip], conditions: { ready: false } };
}

/** A global Service `rebel-base` with one slice: two ready endpoints and one not ready. */
const rebelBase = (annotations: Record<string, string> = GLOBAL): RegistryObject[] => [
  service('rebel-base', {
    annotations,
    labels: { app: 'rebel-base' },
    clusterIP: '127.1.128.20',
  }),
  slice('rebel-base-abc12', 'rebel-base', [
    ready('127.1.1.5', 'rebel-base-0'),
    { addresses: ['127.1.2.7'] },
    notReady('127.1.1.9'),
  ]),
];

const REBEL_BASE_JSON =
  '{"cluster":"cluster1","namespace":"default","name":"rebel-base",' +
  '"frontends":{"127.1.128.20":{"":{"Protocol":"TCP","Port":80}}},' +
  '"backends":{"127.1.1.5":{"":{"Protocol":"TCP","Port":8080}},"127.1.2.7":{"":{"Protocol":"TCP","Port":8080}}},' +
  '"hostnames":{"127.1.1.5":"rebel-base-0"},' +
  '"labels":{"app":"rebel-base"},"selector":{"name":"rebel-base"},' +
  '"includeExternal":true,"shared":true,"clusterID":1}';

/** The JSON for `rebel-base` with other backends (ports 8080/TCP, no hostnames). */
function rebelBaseWith(backendIPs: string[]): string {
  const backends = backendIPs.map((ip) => `"${ip}":{"":{"Protocol":"TCP","Port":8080}}`).join(',');
  return (
    '{"cluster":"cluster1","namespace":"default","name":"rebel-base",' +
    '"frontends":{"127.1.128.20":{"":{"Protocol":"TCP","Port":80}}},' +
    `"backends":{${backends}},"hostnames":{},` +
    '"labels":{"app":"rebel-base"},"selector":{"name":"rebel-base"},' +
    '"includeExternal":true,"shared":true,"clusterID":1}'
  );
}

interface Harness {
  readonly backend: Backend;
  readonly registry: Registry;
  readonly sync: Synchronizer;
  /** The exported services and the canary, by full key. */
  readonly state: () => Promise<Record<string, string>>;
  /** Resolves once the canary exists. */
  readonly synced: () => Promise<void>;
  readonly stop: () => Promise<void>;
}

function newBackend(): MemoryBackend {
  return new MemoryBackend(new MemoryStore());
}

function start(backend: Backend): Harness {
  const metrics = new KvstoreMetrics('test', CLUSTER.name);
  const sync = allSynchronizers(
    { backend, cluster: CLUSTER, log: silentLogger, metrics },
    registryObjects(backend),
  ).find((s) => s.name === 'services');
  assert.ok(sync !== undefined, 'the apiserver wires a services synchronizer');
  const ac = new AbortController();
  const done = sync.run(ac.signal);
  const state = async (): Promise<Record<string, string>> => {
    const services = await snapshot(backend, PREFIX);
    const canary = await backend.get(CANARY);
    return Object.fromEntries([
      ...services,
      ...(canary === undefined ? [] : [[CANARY, '<timestamp>'] as const]),
    ]);
  };
  return {
    backend,
    registry: new Registry(backend),
    sync,
    state,
    synced: () =>
      eventually(async () => {
        assert.ok((await backend.get(CANARY)) !== undefined, 'canary not written yet');
      }),
    stop: async () => {
      ac.abort();
      await done;
      metrics.close();
      // Its leases' keep-alive timers would keep the test process alive.
      await backend.close();
    },
  };
}

/** Waits until the kvstore holds exactly `expected` (services and canary). */
async function expectState(h: Harness, expected: Record<string, string>): Promise<void> {
  await eventually(async () => {
    assert.deepEqual(await h.state(), expected);
  }, 5_000);
}

/**
 * A global Service whose export proves the synchronizer processed every Service event
 * applied before (or with) it: the Service informer delivers events in revision order.
 */
const sentinel = (n: number): RegistryObject =>
  service(`sentinel-${n}`, { annotations: GLOBAL, clusterIP: `127.1.128.${100 + n}` });

async function waitForKey(h: Harness, k: string): Promise<void> {
  await eventually(async () => {
    assert.ok((await h.backend.get(k)) !== undefined, `${k} not written yet`);
  }, 5_000);
}

void describe('apiserver services synchronizer', () => {
  it('exports a global Service with its ready backends (shared by default)', async () => {
    const backend = newBackend();
    await new Registry(backend).apply(rebelBase());
    const h = start(backend);
    try {
      await h.synced();
      assert.deepEqual(await h.state(), {
        [key('rebel-base')]: REBEL_BASE_JSON,
        [CANARY]: '<timestamp>',
      });
      assert.equal(h.sync.name, 'services');
      assert.equal(h.sync.store.isSynced, true);
    } finally {
      await h.stop();
    }
  });

  it('does not export global + shared=false, and withdraws a Service switched to it', async () => {
    const backend = newBackend();
    await new Registry(backend).apply([
      ...rebelBase(),
      service('unshared', {
        annotations: { ...GLOBAL, 'service.cilium.io/shared': 'false' },
        clusterIP: '127.1.128.21',
      }),
    ]);
    const h = start(backend);
    try {
      await h.synced();
      assert.deepEqual(await h.state(), {
        [key('rebel-base')]: REBEL_BASE_JSON,
        [CANARY]: '<timestamp>',
      });
      await h.registry.apply(rebelBase({ ...GLOBAL, 'service.cilium.io/shared': 'False' }));
      await expectState(h, { [CANARY]: '<timestamp>' });
      // Shared again (explicitly, case-insensitive): exported again.
      await h.registry.apply(rebelBase({ ...GLOBAL, 'service.cilium.io/shared': 'TRUE' }));
      await expectState(h, { [key('rebel-base')]: REBEL_BASE_JSON, [CANARY]: '<timestamp>' });
    } finally {
      await h.stop();
    }
  });

  it('reads the legacy annotations, and the new names win when both are set', async () => {
    const backend = newBackend();
    await new Registry(backend).apply([
      service('legacy', {
        annotations: { 'io.cilium/global-service': 'true' },
        clusterIP: '127.1.128.30',
      }),
      service('legacy-unshared', {
        annotations: { 'io.cilium/global-service': 'true', 'io.cilium/shared-service': 'false' },
        clusterIP: '127.1.128.31',
      }),
      // New global=false beats legacy global=true.
      service('new-not-global', {
        annotations: { 'service.cilium.io/global': 'false', 'io.cilium/global-service': 'true' },
        clusterIP: '127.1.128.32',
      }),
      // New shared=true beats legacy shared=false.
      service('new-shared', {
        annotations: {
          'service.cilium.io/global': 'true',
          'service.cilium.io/shared': 'true',
          'io.cilium/shared-service': 'false',
        },
        clusterIP: '127.1.128.33',
      }),
      // New shared=false beats legacy shared=true.
      service('new-unshared', {
        annotations: {
          'io.cilium/global-service': 'true',
          'service.cilium.io/shared': 'false',
          'io.cilium/shared-service': 'true',
        },
        clusterIP: '127.1.128.34',
      }),
    ]);
    const h = start(backend);
    try {
      await h.synced();
      const bare = (name: string, ip: string): string =>
        `{"cluster":"cluster1","namespace":"default","name":"${name}",` +
        `"frontends":{"${ip}":{"":{"Protocol":"TCP","Port":80}}},"backends":{},"hostnames":{},` +
        `"labels":{},"selector":{"name":"${name}"},"includeExternal":true,"shared":true,"clusterID":1}`;
      assert.deepEqual(await h.state(), {
        [key('legacy')]: bare('legacy', '127.1.128.30'),
        [key('new-shared')]: bare('new-shared', '127.1.128.33'),
        [CANARY]: '<timestamp>',
      });
    } finally {
      await h.stop();
    }
  });

  it('exports nothing for non-global and ExternalName Services; headless and IP-less ones without frontends', async () => {
    const backend = newBackend();
    const objects = [
      service('plain', { clusterIP: '127.1.128.40' }),
      service('not-global', {
        annotations: { 'service.cilium.io/global': 'no' },
        clusterIP: '127.1.128.41',
      }),
      service('external', {
        annotations: GLOBAL,
        type: 'ExternalName',
        externalName: 'db.example.com',
      }),
      service('headless', { annotations: GLOBAL, clusterIP: 'None' }),
      service('unallocated', { annotations: GLOBAL }),
    ];
    await new Registry(backend).apply([
      ...objects,
      ...['plain', 'not-global', 'external', 'headless', 'unallocated'].map((s) =>
        slice(`${s}-1`, s, [ready('127.1.1.50')]),
      ),
    ]);
    const h = start(backend);
    // Headless (and not yet allocated) global Services are exported as the reference
    // does: `"frontends":{}` with their backends, for cross-cluster DNS and MCS-API.
    const noFrontends = (name: string) =>
      `{"cluster":"cluster1","namespace":"default","name":"${name}","frontends":{},"backends":{"127.1.1.50":{"":{"Protocol":"TCP","Port":8080}}},"hostnames":{},"labels":{},"selector":{"name":"${name}"},"includeExternal":true,"shared":true,"clusterID":1}`;
    try {
      await h.synced();
      assert.deepEqual(await h.state(), {
        [key('headless')]: noFrontends('headless'),
        [key('unallocated')]: noFrontends('unallocated'),
        [CANARY]: '<timestamp>',
      });

      // Created later: the same.
      await h.registry.apply([
        service('plain-2', { clusterIP: '127.1.128.42' }),
        service('headless-2', { annotations: GLOBAL, clusterIP: 'None' }),
        sentinel(1),
      ]);
      await waitForKey(h, key('sentinel-1'));
      await waitForKey(h, key('headless-2'));
      assert.deepEqual(Object.keys(await h.state()).sort(), [
        key('headless'),
        key('headless-2'),
        key('sentinel-1'),
        key('unallocated'),
        CANARY,
      ]);
      assert.match((await h.state())[key('headless-2')] ?? '', /"frontends":\{\},"backends":\{\}/);

      // Once a ClusterIP is allocated, the global Service is exported with its backends.
      await h.registry.apply([
        service('unallocated', { annotations: GLOBAL, clusterIP: '127.1.128.43' }),
      ]);
      await waitForKey(h, key('unallocated'));
      assert.match(
        (await h.state())[key('unallocated')] ?? '',
        /"backends":\{"127\.1\.1\.50":\{"":\{"Protocol":"TCP","Port":8080\}\}\}/,
      );
    } finally {
      await h.stop();
    }
  });

  it('deletes the key when the annotation is removed or the Service deleted', async () => {
    const backend = newBackend();
    await new Registry(backend).apply([
      ...rebelBase(),
      service('x-wing', { annotations: GLOBAL, clusterIP: '127.1.128.50' }),
    ]);
    const h = start(backend);
    try {
      await h.synced();
      assert.deepEqual(Object.keys(await h.state()).sort(), [
        key('rebel-base'),
        key('x-wing'),
        CANARY,
      ]);
      await h.registry.apply(rebelBase({}));
      await expectState(h, {
        [key('x-wing')]: (await h.state())[key('x-wing')] ?? '',
        [CANARY]: '<timestamp>',
      });
      await h.registry.delete('Service', 'default', 'x-wing');
      await expectState(h, { [CANARY]: '<timestamp>' });
      // Annotated again: back, with the backends of its slice that never went away.
      await h.registry.apply(rebelBase());
      await expectState(h, { [key('rebel-base')]: REBEL_BASE_JSON, [CANARY]: '<timestamp>' });
      // A Service deleted while its slice stays: withdrawn.
      await h.registry.delete('Service', 'default', 'rebel-base');
      await expectState(h, { [CANARY]: '<timestamp>' });
    } finally {
      await h.stop();
    }
  });

  it('follows EndpointSlice changes: endpoints added, removed, turning not ready, slice deleted', async () => {
    const backend = newBackend();
    await new Registry(backend).apply(rebelBase());
    const h = start(backend);
    const apply = (endpoints: Endpoint[]) =>
      h.registry.apply([slice('rebel-base-abc12', 'rebel-base', endpoints)]);
    try {
      await h.synced();
      assert.equal((await h.state())[key('rebel-base')], REBEL_BASE_JSON);

      // Added (and the formerly not-ready one became ready).
      await apply([ready('127.1.1.5'), ready('127.1.2.7'), ready('127.1.1.9'), ready('127.1.3.2')]);
      await expectState(h, {
        [key('rebel-base')]: rebelBaseWith(['127.1.1.5', '127.1.1.9', '127.1.2.7', '127.1.3.2']),
        [CANARY]: '<timestamp>',
      });

      // Removed, one turned not ready, one terminating but still serving, which the
      // reference keeps exporting (ParseEndpointSliceV1).
      await apply([
        ready('127.1.1.5'),
        notReady('127.1.1.9'),
        {
          addresses: ['127.1.3.2'],
          conditions: { ready: false, serving: true, terminating: true },
        },
      ]);
      await expectState(h, {
        [key('rebel-base')]: rebelBaseWith(['127.1.1.5', '127.1.3.2']),
        [CANARY]: '<timestamp>',
      });

      // The slice goes away: exported without backends (remote clusters then see none).
      await h.registry.delete('EndpointSlice', 'default', 'rebel-base-abc12');
      await expectState(h, {
        [key('rebel-base')]: rebelBaseWith([]),
        [CANARY]: '<timestamp>',
      });
    } finally {
      await h.stop();
    }
  });

  it('moves a relabelled slice to its new Service and ignores other namespaces', async () => {
    const backend = newBackend();
    await new Registry(backend).apply([
      ...rebelBase(),
      service('rebel-base', { namespace: 'other', annotations: GLOBAL, clusterIP: '127.1.128.60' }),
      service('tie-fighter', { annotations: GLOBAL, clusterIP: '127.1.128.61' }),
    ]);
    const h = start(backend);
    try {
      await h.synced();
      assert.match((await h.state())[key('rebel-base', 'other')] ?? '', /"backends":\{\}/);
      assert.match((await h.state())[key('tie-fighter')] ?? '', /"backends":\{\}/);
      await h.registry.apply([
        slice('rebel-base-abc12', 'tie-fighter', [ready('127.1.1.5'), ready('127.1.2.7')]),
      ]);
      await eventually(async () => {
        const s = await h.state();
        assert.equal(s[key('rebel-base')], rebelBaseWith([]));
        assert.match(s[key('tie-fighter')] ?? '', /"backends":\{"127\.1\.1\.5":.*"127\.1\.2\.7":/);
        assert.match(s[key('rebel-base', 'other')] ?? '', /"backends":\{\}/);
      }, 5_000);
    } finally {
      await h.stop();
    }
  });

  it('merges several slices (IPv4 and IPv6), keeps named ports and dual-stack frontends', async () => {
    const backend = newBackend();
    const ports = [
      { name: 'http', port: 8080, protocol: 'TCP' as const },
      { name: 'dns', port: 5353, protocol: 'UDP' as const },
    ];
    await new Registry(backend).apply([
      service('echo', {
        annotations: GLOBAL,
        clusterIPs: ['127.1.128.70', 'fd00:10:96::70'],
        clusterIP: '127.1.128.70',
        labels: { tier: 'edge' },
        selector: { app: 'echo' },
        ports: [
          { name: 'http', port: 80, protocol: 'TCP' },
          { name: 'dns', port: 53, protocol: 'UDP' },
        ],
      }),
      slice('echo-v4-b', 'echo', [ready('127.1.2.7', 'echo-1')], ports),
      slice('echo-v4-a', 'echo', [ready('127.1.1.5', 'echo-0'), notReady('127.1.1.6')], ports),
      slice('echo-v6', 'echo', [ready('fd00:0:0:1::5')], [{ name: 'http', port: 8080 }], {
        addressType: 'IPv6',
      }),
      // The same address in two slices keeps the ports of both.
      slice('echo-v4-c', 'echo', [ready('127.1.2.7')], [{ name: 'metrics', port: 9090 }]),
    ]);
    const h = start(backend);
    try {
      await h.synced();
      const both = '{"dns":{"Protocol":"UDP","Port":5353},"http":{"Protocol":"TCP","Port":8080}}';
      assert.deepEqual(await h.state(), {
        [key('echo')]:
          '{"cluster":"cluster1","namespace":"default","name":"echo",' +
          '"frontends":{"127.1.128.70":{"dns":{"Protocol":"UDP","Port":53},"http":{"Protocol":"TCP","Port":80}},' +
          '"fd00:10:96::70":{"dns":{"Protocol":"UDP","Port":53},"http":{"Protocol":"TCP","Port":80}}},' +
          `"backends":{"127.1.1.5":${both},` +
          '"127.1.2.7":{"dns":{"Protocol":"UDP","Port":5353},"http":{"Protocol":"TCP","Port":8080},"metrics":{"Protocol":"TCP","Port":9090}},' +
          '"fd00:0:0:1::5":{"http":{"Protocol":"TCP","Port":8080}}},' +
          '"hostnames":{"127.1.1.5":"echo-0","127.1.2.7":"echo-1"},' +
          '"labels":{"tier":"edge"},"selector":{"app":"echo"},' +
          '"includeExternal":true,"shared":true,"clusterID":1}',
        [CANARY]: '<timestamp>',
      });
    } finally {
      await h.stop();
    }
  });

  it('writes the canary only after both informers synced and the initial set is written', async () => {
    const backend = newBackend();
    await new Registry(backend).apply(rebelBase());
    // Hold back the EndpointSlice list so that only the Service informer has synced.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const listAndWatch = backend.listAndWatch.bind(backend);
    backend.listAndWatch = async function* (
      prefix: string,
      signal: AbortSignal,
      opts?: ListAndWatchOptions,
    ): AsyncIterable<WatchEvent> {
      if (prefix.startsWith('registry/endpointslices/')) await gate;
      yield* listAndWatch(prefix, signal, opts);
    };
    // Every write under cilium/, in order.
    const watch = new AbortController();
    const writes: string[] = [];
    const watching = (async () => {
      for await (const ev of listAndWatch('cilium/', watch.signal)) {
        if (ev.kind === 'upsert') {
          writes.push(ev.key === CANARY ? 'canary' : `${ev.key} => ${ev.value}`);
        }
      }
    })();
    const h = start(backend);
    try {
      await waitForKey(h, key('rebel-base'));
      await new Promise((r) => setTimeout(r, 200));
      assert.deepEqual(await h.state(), { [key('rebel-base')]: rebelBaseWith([]) });
      assert.equal(h.sync.store.isSynced, false);

      release();
      await h.synced();
      await eventually(() => assert.equal(writes.at(-1), 'canary'), 5_000);
      assert.deepEqual(writes, [
        `${key('rebel-base')} => ${rebelBaseWith([])}`,
        `${key('rebel-base')} => ${REBEL_BASE_JSON}`,
        'canary',
      ]);
    } finally {
      watch.abort();
      await watching;
      await h.stop();
    }
  });

  it('deletes at sync what a previous run exported and is no longer shared', async () => {
    const backend = newBackend();
    await backend.put(key('gone'), '{"stale":true}');
    await backend.put(key('rebel-base'), '{"stale":true}');
    await new Registry(backend).apply(rebelBase());
    const h = start(backend);
    try {
      await h.synced();
      assert.deepEqual(await h.state(), {
        [key('rebel-base')]: REBEL_BASE_JSON,
        [CANARY]: '<timestamp>',
      });
    } finally {
      await h.stop();
    }
  });

  it('does not rewrite a key when a change leaves the export identical', async () => {
    const backend = newBackend();
    await new Registry(backend).apply([
      ...rebelBase(),
      service('x-wing', { annotations: GLOBAL, clusterIP: '127.1.128.50' }),
    ]);
    const h = start(backend);
    try {
      await h.synced();
      const before = await backend.get(key('rebel-base'));
      // Irrelevant changes: another not-ready endpoint, an unrelated annotation. The
      // x-wing slice in the same transactions proves both were processed.
      await h.registry.apply([
        slice('rebel-base-abc12', 'rebel-base', [
          ready('127.1.1.5', 'rebel-base-0'),
          { addresses: ['127.1.2.7'] },
          notReady('127.1.1.9'),
          notReady('127.1.1.10'),
        ]),
        slice('x-wing-1', 'x-wing', [ready('127.1.5.5')]),
      ]);
      await h.registry.apply([
        service('rebel-base', {
          annotations: { ...GLOBAL, note: 'unrelated' },
          labels: { app: 'rebel-base' },
          clusterIP: '127.1.128.20',
        }),
        sentinel(2),
      ]);
      await waitForKey(h, key('sentinel-2'));
      await eventually(async () => {
        assert.match((await h.state())[key('x-wing')] ?? '', /127\.1\.5\.5/);
      }, 5_000);
      const after = await backend.get(key('rebel-base'));
      assert.equal(after?.value, REBEL_BASE_JSON);
      assert.equal(after.modRevision, before?.modRevision);
    } finally {
      await h.stop();
    }
  });
});

void describe('clusterServiceFromService', () => {
  const svc: Service = {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'rebel-base', namespace: 'default', annotations: GLOBAL },
    spec: { type: 'ClusterIP', clusterIP: '127.1.128.20', ports: [{ port: 80, protocol: 'TCP' }] },
  };
  const mk = (name: string, ip: string, hostname: string): EndpointSlice => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'rebel-base' },
    },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip], hostname }],
    ports: [{ port: 8080, protocol: 'TCP' }],
  });

  it('is independent of the order of the slices', () => {
    // Same address in both slices with different hostnames: the first slice by name wins.
    const a = mk('a', '127.1.1.5', 'from-a');
    const b = mk('b', '127.1.1.5', 'from-b');
    const one = clusterServiceFromService(svc, [a, b], CLUSTER);
    const two = clusterServiceFromService(svc, [b, a], CLUSTER);
    assert.ok(one !== undefined && two !== undefined, 'one !== undefined && two !== undefined');
    assert.equal(encodeClusterService(one), encodeClusterService(two));
    assert.deepEqual(one.hostnames, { '127.1.1.5': 'from-a' });
  });

  it('skips FQDN slices and ports without a number; an empty selector is {}', () => {
    const { selector: _selector, ...spec } = { ...svc.spec, selector: undefined };
    const fqdn: EndpointSlice = {
      ...mk('f', 'db.example.com', 'db'),
      addressType: 'FQDN',
    };
    const noPort: EndpointSlice = { ...mk('p', '127.1.1.6', 'p'), ports: [{ protocol: 'TCP' }] };
    const out = clusterServiceFromService({ ...svc, spec }, [fqdn, noPort], CLUSTER);
    assert.ok(out !== undefined, 'out !== undefined');
    assert.deepEqual(out.backends, { '127.1.1.6': {} });
    assert.deepEqual(out.selector, {});
    assert.equal(out.clusterID, 1);
  });
});
