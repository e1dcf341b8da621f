import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import type { EndpointSlice, Service } from '../../src/registry/objects.js';
import { Registry } from '../../src/registry/registry.js';
import {
  ServiceSliceIndex,
  joinServices,
  type ServiceJoinEvent,
} from '../../src/registry/service-join.js';
import { eventually } from '../support/eventually.js';
import { registryObjects } from '../../src/registry/source.js';

function service(name: string, namespace = 'default'): Service {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { type: 'ClusterIP', clusterIP: '127.1.128.1', ports: [{ port: 80, protocol: 'TCP' }] },
  };
}

function slice(name: string, serviceName: string, ip = '127.1.1.1', namespace = 'default') {
  const s: EndpointSlice = {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    endpoints: [{ addresses: [ip] }],
    ports: [],
  };
  return s;
}

/** `<ns>/<name>: <service or -> [slice names]`, to compare changes at a glance. */
function summary(ev: ServiceJoinEvent): string {
  const names = ev.slices.map((s) => s.metadata.name).join(',');
  return `${ev.namespace}/${ev.name}: ${ev.service === undefined ? '-' : 'svc'} [${names}]`;
}

void describe('ServiceSliceIndex', () => {
  it('files slices under the Service their label names, seen before or after it', () => {
    const index = new ServiceSliceIndex();
    assert.deepEqual(index.onSlice({ type: 'added', object: slice('a-2', 'a') }).map(summary), [
      'default/a: - [a-2]',
    ]);
    assert.equal(
      summary(index.onService({ type: 'added', object: service('a') })),
      'default/a: svc [a-2]',
    );
    // Slices come in name order whatever order they arrived in.
    assert.deepEqual(index.onSlice({ type: 'added', object: slice('a-1', 'a') }).map(summary), [
      'default/a: svc [a-1,a-2]',
    ]);
    // A Service of the same name in another namespace has none of them.
    assert.equal(
      summary(index.onService({ type: 'added', object: service('a', 'other') })),
      'other/a: svc []',
    );
  });

  it('moves a relabelled slice and reports both Services', () => {
    const index = new ServiceSliceIndex();
    index.onService({ type: 'added', object: service('a') });
    index.onService({ type: 'added', object: service('b') });
    index.onSlice({ type: 'added', object: slice('s', 'a') });
    assert.deepEqual(index.onSlice({ type: 'modified', object: slice('s', 'b') }).map(summary), [
      'default/a: svc []',
      'default/b: svc [s]',
    ]);
    // The delete event's object may carry the old label: the slice leaves where it was filed.
    assert.deepEqual(index.onSlice({ type: 'deleted', object: slice('s', 'a') }).map(summary), [
      'default/b: svc []',
    ]);
  });

  it('reports a deleted Service without its object, keeping its slices for a re-create', () => {
    const index = new ServiceSliceIndex();
    index.onService({ type: 'added', object: service('a') });
    index.onSlice({ type: 'added', object: slice('s', 'a') });
    assert.equal(
      summary(index.onService({ type: 'deleted', object: service('a') })),
      'default/a: - [s]',
    );
    assert.equal(
      summary(index.onService({ type: 'added', object: service('a') })),
      'default/a: svc [s]',
    );
  });

  it('ignores a slice without a Service label', () => {
    const index = new ServiceSliceIndex();
    const unlabelled: EndpointSlice = { ...slice('s', 'a'), metadata: { name: 's' } };
    assert.deepEqual(index.onSlice({ type: 'added', object: unlabelled }), []);
  });
});

void describe('joinServices', () => {
  it('follows the registry and is synced once both kinds are listed', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    await registry.apply([service('a'), slice('a-1', 'a', '127.1.1.1')]);
    const seen: string[] = [];
    let synced = 0;
    const join = joinServices(registryObjects(backend), {
      onEvent: (ev) => seen.push(summary(ev)),
      onSynced: () => {
        synced++;
      },
    });
    assert.equal(join.hasSynced, false);
    const ac = new AbortController();
    const running = join.run(ac.signal);
    try {
      await eventually(() => {
        assert.equal(join.hasSynced, true);
      });
      assert.equal(synced, 1);
      assert.equal(seen.at(-1), 'default/a: svc [a-1]');
      await registry.apply([slice('a-0', 'a', '127.1.1.2')]);
      await eventually(() => {
        assert.equal(seen.at(-1), 'default/a: svc [a-0,a-1]');
      });
      await registry.delete('Service', 'default', 'a');
      await eventually(() => {
        assert.equal(seen.at(-1), 'default/a: - [a-0,a-1]');
      });
    } finally {
      ac.abort();
      await running;
    }
  });
});
