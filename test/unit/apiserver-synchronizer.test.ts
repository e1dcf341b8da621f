import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { endpointConverter, identityConverter } from '../../src/apiserver/converters.js';
import {
  createSynchronizer,
  type Converter,
  type SourceHandlers,
} from '../../src/apiserver/synchronizer.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { silentLogger } from '../../src/lib/logger.js';
import { KvstoreMetrics } from '../../src/metrics/kvstore.js';
import type { CiliumEndpoint, CiliumIdentity } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';
import { snapshot } from '../support/kvstore-contract.js';

const CLUSTER = { name: 'cluster1', id: 1 };

/** Events `key=value` (or `key=` to delete); `boom` makes the converter throw. */
const converter: Converter<string> = {
  describe: (ev) => ev,
  convert: (ev) => {
    if (ev === 'boom') throw new Error('cannot convert');
    const [key = '', value = ''] = ev.split('=');
    return [{ key, value: value === '' ? undefined : value }];
  },
};

void describe('apiserver synchronizer', () => {
  it('applies converted events in order, skips what cannot be converted, then writes the canary', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const metrics = new KvstoreMetrics('test', CLUSTER.name);
    let handlers: SourceHandlers<string> | undefined;
    const sync = createSynchronizer(
      { backend, cluster: CLUSTER, log: silentLogger, metrics },
      {
        name: 'test',
        prefix: 'test/v1',
        source: (h) => {
          handlers = h;
          return { run: () => Promise.resolve() };
        },
        converter,
      },
    );
    const ac = new AbortController();
    const running = sync.run(ac.signal);
    try {
      assert.ok(handlers !== undefined, 'the source is created when the synchronizer runs');
      for (const ev of ['a=1', 'b=2', 'boom', 'a=', 'c=3']) handlers.onEvent(ev);
      assert.equal(sync.store.isSynced, false);
      handlers.onSynced();
      await eventually(() => {
        assert.equal(sync.store.isSynced, true);
      });
      assert.deepEqual(Object.fromEntries(await snapshot(backend, 'test/v1/')), {
        'test/v1/b': '2',
        'test/v1/c': '3',
      });
      assert.ok(
        (await backend.get('cilium/synced/cluster1/test/v1')) !== undefined,
        "(await backend.get('cilium/synced/cluster1/test/v1')) !== undefined",
      );
    } finally {
      ac.abort();
      await running;
      metrics.close();
      // Its leases' keep-alive timers would keep the test process alive.
      await backend.close();
    }
  });
});

void describe('apiserver converters', () => {
  const identity = (name: string, labels?: Record<string, string>): CiliumIdentity =>
    ({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumIdentity',
      metadata: { name },
      ...(labels === undefined ? {} : { 'security-labels': labels }),
    }) as CiliumIdentity;

  it('writes an identity as its label string and withdraws one without labels', () => {
    const c = identityConverter();
    assert.deepEqual(
      [
        ...c.convert(
          { type: 'added', object: identity('66000', { 'k8s:app': 'x' }) },
          silentLogger,
        ),
      ],
      [{ key: '66000', value: 'k8s:app=x;' }],
    );
    assert.deepEqual(
      [...c.convert({ type: 'modified', object: identity('66000', {}) }, silentLogger)],
      [{ key: '66000', value: undefined }],
    );
  });

  it('gives an endpoint IP to its first claimant until it lets go', () => {
    const c = endpointConverter();
    const cep = (name: string, ip: string): CiliumEndpoint => ({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEndpoint',
      metadata: { name, namespace: 'default' },
      status: { identity: { id: 66000 }, networking: { addressing: [{ ipv4: ip }] } },
    });
    const owner = (ups: Iterable<{ key: string; value: string | undefined }>): string[] =>
      [...ups].map(({ key, value }) => {
        const pod =
          value === undefined ? '-' : (JSON.parse(value) as { K8sPodName: string }).K8sPodName;
        return `${key}:${pod}`;
      });
    assert.deepEqual(
      owner(c.convert({ type: 'added', object: cep('a', '10.0.0.1') }, silentLogger)),
      ['10.0.0.1:a'],
    );
    // b claims the same IP: a keeps it (the store skips the unchanged value).
    assert.deepEqual(
      owner(c.convert({ type: 'added', object: cep('b', '10.0.0.1') }, silentLogger)),
      ['10.0.0.1:a'],
    );
    assert.deepEqual(
      owner(c.convert({ type: 'deleted', object: cep('a', '10.0.0.1') }, silentLogger)),
      ['10.0.0.1:b'],
    );
    assert.deepEqual(
      owner(c.convert({ type: 'deleted', object: cep('b', '10.0.0.1') }, silentLogger)),
      ['10.0.0.1:-'],
    );
  });
});
