/**
 * The watch cache a Kubernetes watch resumes from (replay after a resourceVersion, expiry
 * once the history moved past it) and the API's field validation modes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateFor } from '../../src/kubeapi/objects.js';
import { ResourceTable } from '../../src/kubeapi/resources.js';
import { ApiError } from '../../src/kubeapi/status.js';
import { KindWatchCache, type CacheEvent } from '../../src/kubeapi/watch-cache.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { silentLogger } from '../../src/lib/logger.js';
import { kindInfo } from '../../src/registry/kinds.js';
import { Registry } from '../../src/registry/registry.js';
import { eventually } from '../support/eventually.js';

function cm(name: string, value: string): Parameters<Registry['apply']>[0][number] {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name, namespace: 'default' },
    data: { v: value },
  };
}

void describe('kubeapi watch cache', () => {
  void it('replays the events after a resourceVersion, then follows live ones; older ones expire', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    await registry.apply([cm('a', '0')]);
    const cache = new KindWatchCache(backend, kindInfo('ConfigMap'), {
      log: silentLogger,
      historyLimit: 3,
    });
    const stop = new AbortController();
    const running = cache.run(stop.signal);
    try {
      await cache.whenReady();
      assert.deepEqual(
        cache.snapshot().map((o) => o.metadata.name),
        ['a'],
      );
      const start = cache.revision;
      await registry.apply([cm('a', '1')]);
      await registry.apply([cm('b', '1')]);
      await registry.delete('ConfigMap', 'default', 'b');
      await eventually(() => assert.equal(cache.revision, start + 3));

      const seen: CacheEvent[] = [];
      const unsubscribe = cache.subscribe(start, (ev) => seen.push(ev));
      assert.ok(unsubscribe !== undefined, 'within the history');
      assert.deepEqual(
        seen.map(
          (e) => `${e.type} ${e.object.metadata.name} ${e.object.metadata.resourceVersion ?? ''}`,
        ),
        [`MODIFIED a ${start + 1}`, `ADDED b ${start + 2}`, `DELETED b ${start + 3}`],
      );
      assert.deepEqual(seen[0]?.previous?.metadata.resourceVersion, String(start));
      await registry.apply([cm('a', '2')]);
      await eventually(() => assert.equal(seen.length, 4));
      unsubscribe();

      // History of 3 events, trimmed past twice that: the oldest revisions expire.
      for (let i = 3; i < 10; i++) await registry.apply([cm('a', String(i))]);
      await eventually(() => assert.equal(cache.revision, start + 11));
      assert.ok(cache.floor > start, 'the history moved on');
      assert.equal(
        cache.subscribe(start, () => undefined),
        undefined,
        'expired',
      );
      const recent = cache.subscribe(cache.revision, () => undefined);
      assert.ok(recent !== undefined, 'the current revision can be watched');
      recent();
    } finally {
      stop.abort();
      await running;
      await backend.close();
    }
  });
});

void describe('kubeapi field validation', () => {
  const table = new ResourceTable();
  const cnp = table.find('cilium.io', 'v2', 'ciliumnetworkpolicies');
  const doc = (): Record<string, unknown> => ({
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name: 'p', namespace: 'default' },
    spec: { endpointSelector: {}, ingresss: [] },
  });

  void it('Strict refuses an unknown field (400), Warn drops it with a warning, Ignore drops it', () => {
    assert.ok(cnp !== undefined, 'served');
    assert.throws(
      () => validateFor(cnp, doc(), 'Strict'),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 400 &&
        err.message ===
          'CiliumNetworkPolicy in version "v2" cannot be handled as a CiliumNetworkPolicy: strict decoding error: unknown field "spec.ingresss"',
    );
    const warned = validateFor(cnp, doc(), 'Warn');
    assert.deepEqual(warned.warnings, ['unknown field "spec.ingresss"']);
    assert.equal('ingresss' in (warned.object.spec as Record<string, unknown>), false);
    assert.deepEqual(validateFor(cnp, doc(), 'Ignore').warnings, []);
  });

  void it('answers 422 with the field and value for an invalid field, Required value for a missing one', () => {
    const svc = table.find('', 'v1', 'services');
    assert.ok(svc !== undefined, 'served');
    const bad = {
      metadata: { name: 'x', namespace: 'default' },
      spec: { ports: [{ port: 70000 }] },
    };
    assert.throws(
      () => validateFor(svc, bad, 'Strict'),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 422 &&
        err.message ===
          'Service "x" is invalid: spec.ports[0].port: Invalid value: 70000: must be <= 65535',
    );
    const dep = table.find('apps', 'v1', 'deployments');
    assert.ok(dep !== undefined, 'served');
    assert.throws(
      () => validateFor(dep, { metadata: { name: 'd', namespace: 'default' }, spec: {} }, 'Strict'),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 422 &&
        /^Deployment "d" is invalid: spec\.\w+: Required value$/.test(err.message),
    );
  });
});
