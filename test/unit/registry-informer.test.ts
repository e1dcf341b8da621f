import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Backend, WatchEvent } from '../../src/kvstore/backend.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { ClusterMeshError, ErrorCode } from '../../src/lib/errors.js';
import { createInformer } from '../../src/registry/informer.js';
import { Registry } from '../../src/registry/registry.js';
import type { Service } from '../../src/registry/objects.js';
import type {
  CiliumNode,
  Informer,
  ObjectEvent,
  RegistryObject,
} from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';

function node(name: string, ip = '127.1.0.1'): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: { name },
    spec: { addresses: [{ type: 'InternalIP', ip }] },
  };
}

function service(name: string, namespace: string): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace },
    spec: { ports: [{ port: 80 }] },
  };
}

/** `added node-1 127.1.0.1 (old: -)` lines, the easiest thing to compare. */
function describeNodeEvent(ev: ObjectEvent<CiliumNode>): string {
  const ip = (n: CiliumNode): string => n.spec.addresses?.[0]?.ip ?? '?';
  const old = ev.type === 'deleted' || ev.old === undefined ? '-' : ip(ev.old);
  return `${ev.type} ${ev.object.metadata.name} ${ip(ev.object)} (old: ${old})`;
}

interface Harness {
  readonly events: string[];
  readonly synced: number[];
  readonly stop: () => Promise<void>;
}

function watchNodes(backend: Backend): Harness & { informer: Informer<CiliumNode> } {
  const events: string[] = [];
  const synced: number[] = [];
  const informer = createInformer(backend, 'CiliumNode', {
    onEvent: (ev) => {
      events.push(describeNodeEvent(ev));
      if (ev.type !== 'deleted') {
        // Every delivered object carries its mod revision.
        assert.match(ev.object.metadata.resourceVersion ?? '', /^\d+$/);
      }
    },
    onSynced: () => synced.push(events.length),
  });
  const ac = new AbortController();
  const done = informer.run(ac.signal);
  return {
    events,
    synced,
    informer,
    stop: async () => {
      ac.abort();
      await done;
    },
  };
}

void describe('registry informer', () => {
  it('delivers the initial list, then onSynced once, then added/modified/deleted with old', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    await registry.apply([node('node-1'), node('node-2', '127.1.0.2')]);
    const h = watchNodes(backend);
    await eventually(() => assert.deepEqual(h.synced, [2]), 5000);
    assert.equal(h.informer.hasSynced, true);
    assert.deepEqual(h.events, [
      'added node-1 127.1.0.1 (old: -)',
      'added node-2 127.1.0.2 (old: -)',
    ]);

    await registry.apply([node('node-1', '127.1.0.9')]);
    await registry.apply([node('node-3', '127.1.0.3')]);
    await registry.delete('CiliumNode', undefined, 'node-2');
    await eventually(() => assert.equal(h.events.length, 5), 5000);
    assert.deepEqual(h.events.slice(2), [
      'modified node-1 127.1.0.9 (old: 127.1.0.1)',
      'added node-3 127.1.0.3 (old: -)',
      'deleted node-2 127.1.0.2 (old: -)',
    ]);
    assert.deepEqual(
      h.informer
        .list()
        .map((n) => n.metadata.name)
        .sort(),
      ['node-1', 'node-3'],
    );
    assert.equal(h.informer.get(undefined, 'node-1')?.spec.addresses?.[0]?.ip, '127.1.0.9');
    const rv = (await backend.get('registry/ciliumnodes/node-1'))?.modRevision;
    assert.equal(h.informer.get(undefined, 'node-1')?.metadata.resourceVersion, String(rv));
    assert.deepEqual(h.synced, [2]);
    await h.stop();
  });

  it('skips invalid values and keeps the last valid object', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    await registry.apply([node('node-1')]);
    // Invalid from the start: never delivered.
    await backend.put('registry/ciliumnodes/broken', '{not json');
    const h = watchNodes(backend);
    await eventually(() => assert.deepEqual(h.synced, [1]), 5000);

    await backend.put('registry/ciliumnodes/node-1', JSON.stringify(node('node-1', '999.1.0.1')));
    await registry.apply([node('node-2')]);
    await eventually(() => assert.equal(h.events.length, 2), 5000);
    assert.equal(h.informer.get(undefined, 'node-1')?.spec.addresses?.[0]?.ip, '127.1.0.1');

    await backend.delete('registry/ciliumnodes/node-1');
    await backend.delete('registry/ciliumnodes/broken');
    await eventually(() => assert.equal(h.events.length, 3), 5000);
    assert.deepEqual(h.events, [
      'added node-1 127.1.0.1 (old: -)',
      'added node-2 127.1.0.1 (old: -)',
      // The delete reports the last valid object.
      'deleted node-1 127.1.0.1 (old: -)',
    ]);
    await h.stop();
  });

  it('watches one namespace when asked, and survives a throwing handler', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    await registry.apply([service('a', 'prod'), service('b', 'dev')]);
    const seen: string[] = [];
    const informer = createInformer<Service>(
      backend,
      'Service',
      {
        onEvent: (ev) => {
          seen.push(`${ev.type} ${ev.object.metadata.namespace ?? ''}/${ev.object.metadata.name}`);
          throw new Error('handler bug');
        },
      },
      { namespace: 'prod' },
    );
    const ac = new AbortController();
    const done = informer.run(ac.signal);
    await registry.apply([service('c', 'prod'), service('d', 'dev')]);
    await eventually(() => assert.deepEqual(seen, ['added prod/a', 'added prod/c']), 5000);
    assert.equal(informer.get('prod', 'c')?.spec.ports[0]?.protocol, 'TCP');
    assert.equal(informer.get('dev', 'd'), undefined);
    ac.abort();
    await done;
  });

  it('converges after a wiped store without a second onSynced', async () => {
    const store = new MemoryStore();
    const backend = new MemoryBackend(store);
    const registry = new Registry(backend);
    await registry.apply([node('node-1'), node('node-2')]);
    const h = watchNodes(backend);
    await eventually(() => assert.deepEqual(h.synced, [2]), 5000);
    store.wipe();
    const other = new Registry(new MemoryBackend(store));
    await other.apply([node('node-2', '127.1.0.22'), node('node-3')]);
    await eventually(
      () =>
        assert.deepEqual(
          h.informer
            .list()
            .map((n) => `${n.metadata.name} ${n.spec.addresses?.[0]?.ip ?? ''}`)
            .sort(),
          ['node-2 127.1.0.22', 'node-3 127.1.0.1'],
        ),
      10_000,
    );
    assert.ok(h.events.includes('deleted node-1 127.1.0.1 (old: -)'), h.events.join('\n'));
    assert.deepEqual(h.synced, [2]);
    await h.stop();
  });

  it('restarts a failed stream and diffs its first list against the cache', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    await registry.apply([node('node-1'), node('node-2')]);
    let calls = 0;
    // A backend whose first list-and-watch breaks after the initial list, while node-2 is
    // deleted and node-3 created: the restarted stream knows nothing of what came before.
    const flaky: Backend = Object.assign(Object.create(backend) as Backend, {
      listAndWatch: (prefix: string, signal: AbortSignal): AsyncIterable<WatchEvent> => {
        calls++;
        const inner = backend.listAndWatch(prefix, signal);
        if (calls > 1) return inner;
        return (async function* () {
          for await (const ev of inner) {
            yield ev;
            if (ev.kind === 'listDone') {
              await registry.delete('CiliumNode', undefined, 'node-2');
              await registry.apply([node('node-3')]);
              throw new ClusterMeshError(ErrorCode.KvstoreOperation, 'stream broke');
            }
          }
        })();
      },
    });
    const h = watchNodes(flaky);
    await eventually(() => assert.equal(h.events.length, 4), 5000);
    assert.deepEqual(h.events, [
      'added node-1 127.1.0.1 (old: -)',
      'added node-2 127.1.0.1 (old: -)',
      'added node-3 127.1.0.1 (old: -)',
      'deleted node-2 127.1.0.1 (old: -)',
    ]);
    assert.equal(calls, 2);
    assert.deepEqual(h.synced, [2]);
    await h.stop();
  });
});
