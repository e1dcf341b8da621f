import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { Registry, resultLine } from '../../src/registry/registry.js';
import type { Service } from '../../src/registry/objects.js';
import type { CiliumNode, RegistryObject } from '../../src/registry/types.js';

function setup(now = new Date('2026-01-02T03:04:05.678Z')): {
  backend: MemoryBackend;
  registry: Registry;
} {
  const backend = new MemoryBackend(new MemoryStore());
  return { backend, registry: new Registry(backend, { now: () => now }) };
}

function service(name: string, port = 80, extra: Record<string, unknown> = {}): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name },
    spec: { ports: [{ port }], selector: { name } },
    ...extra,
  };
}

function node(name: string, ip = '127.1.0.1'): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: { name },
    spec: { addresses: [{ type: 'InternalIP', ip }] },
  };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

void describe('registry store', () => {
  it('stores under registry/<resource>/[<namespace>/]<name> without resourceVersion', async () => {
    const { backend, registry } = setup();
    await registry.apply([service('rebel-base'), node('node-1')]);
    const { kvs } = await backend.list('registry/');
    assert.deepEqual(
      kvs.map((kv) => kv.key),
      ['registry/ciliumnodes/node-1', 'registry/services/default/rebel-base'],
    );
    const stored = JSON.parse(kvs[1]?.value ?? '') as RegistryObject;
    assert.equal(stored.metadata.resourceVersion, undefined);
    assert.match(stored.metadata.uid ?? '', UUID);
    assert.equal(stored.metadata.creationTimestamp, '2026-01-02T03:04:05Z');
    assert.equal(stored.metadata.generation, 1);
  });

  it('apply: created, then configured, then unchanged; keeps uid and creationTimestamp', async () => {
    const { backend, registry } = setup();
    const first = await registry.apply([service('rebel-base'), node('node-1')]);
    assert.deepEqual(
      first.map((r) => resultLine(r.info, r.object.metadata.name, r.action)),
      ['service/rebel-base created', 'ciliumnode/node-1 created'],
    );
    const before = await registry.get('Service', 'default', 'rebel-base');
    assert.ok(before, 'before');
    const rev = (await backend.get('registry/services/default/rebel-base'))?.modRevision;

    const second = await registry.apply([service('rebel-base', 8080), node('node-1')]);
    assert.deepEqual(
      second.map((r) => r.action),
      ['configured', 'unchanged'],
    );
    const after = await registry.get('Service', 'default', 'rebel-base');
    assert.ok(after, 'after');
    assert.equal(after.metadata.uid, before.metadata.uid);
    assert.equal(after.metadata.creationTimestamp, before.metadata.creationTimestamp);
    assert.equal(after.metadata.generation, 2);
    assert.equal(after.spec.ports[0]?.port, 8080);
    assert.notEqual(after.metadata.resourceVersion, String(rev));

    // Unchanged means not written at all: the mod revision stays.
    const kvBefore = await backend.get('registry/ciliumnodes/node-1');
    assert.deepEqual(
      (await registry.apply([node('node-1')])).map((r) => r.action),
      ['unchanged'],
    );
    assert.equal(
      (await backend.get('registry/ciliumnodes/node-1'))?.modRevision,
      kvBefore?.modRevision,
    );
  });

  it('apply keeps a stored status when the manifest has none', async () => {
    const { registry } = setup();
    await registry.apply([service('a')]);
    await registry.patch('Service', 'default', 'a', (s) => ({
      ...s,
      status: { loadBalancer: { ingress: [{ ip: '127.1.128.1' }] } },
    }));
    const r = await registry.apply([service('a')]);
    assert.equal(r[0]?.action, 'unchanged');
    const s = await registry.get('Service', 'default', 'a');
    assert.deepEqual(s?.status, { loadBalancer: { ingress: [{ ip: '127.1.128.1' }] } });
  });

  it('apply keeps an allocated ClusterIP when the manifest names none, not a given one', async () => {
    const { registry } = setup();
    await registry.apply([service('web')]);
    await registry.patch<Service>('Service', 'default', 'web', (s) => ({
      ...s,
      spec: { ...s.spec, clusterIP: '127.1.128.7', clusterIPs: ['127.1.128.7'] },
    }));
    const [again] = await registry.apply([service('web', 8080)]);
    assert.equal(again?.action, 'configured');
    const kept = await registry.get<Service>('Service', 'default', 'web');
    assert.ok(kept !== undefined, 'stored');
    assert.equal(kept.spec.clusterIP, '127.1.128.7');
    assert.deepEqual(kept.spec.clusterIPs, ['127.1.128.7']);
    assert.equal(kept.spec.ports[0]?.port, 8080);
    const [same] = await registry.apply([service('web', 8080)]);
    assert.equal(same?.action, 'unchanged', 'the allocation is not a change');
    const given = service('web', 8080);
    (given.spec as Record<string, unknown>).clusterIP = '127.1.128.9';
    await registry.apply([given]);
    const replaced = await registry.get<Service>('Service', 'default', 'web');
    assert.equal(replaced?.spec.clusterIP, '127.1.128.9');
  });

  it('resourceVersion is the mod revision of the key', async () => {
    const { backend, registry } = setup();
    const created = await registry.create(node('node-1'));
    const kv = await backend.get('registry/ciliumnodes/node-1');
    assert.equal(created.metadata.resourceVersion, String(kv?.modRevision));
    const listed = await registry.list('CiliumNode');
    assert.equal(listed[0]?.metadata.resourceVersion, String(kv?.modRevision));
  });

  it('validates everything before writing anything', async () => {
    const { backend, registry } = setup();
    const bad = service('c', 80, { spec: { ports: [{ port: 'http' }] } });
    await assert.rejects(registry.apply([service('a'), node('node-1'), bad]), (e: unknown) => {
      assert.ok(
        isClusterMeshError(e, ErrorCode.InvalidArgument),
        'isClusterMeshError(e, ErrorCode.InvalidArgument)',
      );
      assert.equal(
        e.message,
        'Service default/c: spec.ports[0].port: expected number, received string',
      );
      return true;
    });
    assert.deepEqual((await backend.list('registry/')).kvs, []);
  });

  it('writes large applies in transactions of at most 128 objects', async () => {
    const { backend, registry } = setup();
    const sizes: number[] = [];
    const txn = backend.txn.bind(backend);
    backend.txn = (ops) => {
      sizes.push(ops.length);
      return txn(ops);
    };
    const nodes = Array.from({ length: 300 }, (_, i) => node(`node-${i}`));
    const results = await registry.apply(nodes);
    assert.equal(results.filter((r) => r.action === 'created').length, 300);
    assert.deepEqual(sizes, [128, 128, 44]);
    assert.equal((await registry.list('CiliumNode')).length, 300);
  });

  it('the same object twice in one apply: the second sees the first', async () => {
    const { registry } = setup();
    const r = await registry.apply([
      node('n', '127.1.0.1'),
      node('n', '127.1.0.2'),
      node('n', '127.1.0.2'),
    ]);
    assert.deepEqual(
      r.map((x) => x.action),
      ['created', 'configured', 'unchanged'],
    );
    const n = await registry.get('CiliumNode', undefined, 'n');
    assert.equal(n?.spec.addresses?.[0]?.ip, '127.1.0.2');
  });

  it('create fails with ERR_CONFLICT when the object exists', async () => {
    const { registry } = setup();
    await registry.create(service('a'));
    await assert.rejects(registry.create(service('a')), (e: unknown) => {
      assert.ok(
        isClusterMeshError(e, ErrorCode.Conflict),
        'isClusterMeshError(e, ErrorCode.Conflict)',
      );
      assert.equal(e.message, 'services "a" already exists');
      return true;
    });
  });

  it('update: optimistic concurrency on resourceVersion, not found, unconditional without it', async () => {
    const { registry } = setup();
    const v1 = await registry.create(node('node-1'));
    const v2 = await registry.update<CiliumNode>({
      ...(v1 as CiliumNode),
      spec: { addresses: [{ type: 'InternalIP', ip: '127.1.0.9' }] },
    });
    assert.notEqual(v2.metadata.resourceVersion, v1.metadata.resourceVersion);
    assert.equal(v2.metadata.uid, v1.metadata.uid);
    // A writer holding the old version loses.
    await assert.rejects(registry.update(v1), (e: unknown) => {
      assert.ok(
        isClusterMeshError(e, ErrorCode.Conflict),
        'isClusterMeshError(e, ErrorCode.Conflict)',
      );
      assert.match(
        e.message,
        /^Operation cannot be fulfilled on ciliumnodes "node-1": the object has been modified/,
      );
      return true;
    });
    // Without a resourceVersion the update is unconditional.
    const v3 = await registry.update(node('node-1', '127.1.0.3'));
    assert.equal((v3 as CiliumNode).spec.addresses?.[0]?.ip, '127.1.0.3');
    await assert.rejects(
      registry.update(node('ghost')),
      (e: unknown) =>
        isClusterMeshError(e, ErrorCode.KeyNotFound) &&
        e.message === 'ciliumnodes "ghost" not found',
    );
  });

  it('patch retries on conflict until its change lands', async () => {
    const { registry } = setup();
    await registry.create(service('a'));
    let calls = 0;
    const patched = await registry.patch<Service>('Service', 'default', 'a', (s) => {
      calls++;
      if (calls === 1) {
        // Someone else writes between our read and our write.
        void registry.update(service('a', 81)).catch(() => undefined);
      }
      return { ...s, status: { conditions: [{ type: 'Ready', status: 'True' }] } };
    });
    assert.ok(patched, 'patched');
    // The first attempt hit the conflict; the second built on the other writer's change.
    assert.equal(calls, 2);
    const s = await registry.get('Service', 'default', 'a');
    assert.deepEqual(s?.status, { conditions: [{ type: 'Ready', status: 'True' }] });
    assert.equal(s.spec.ports[0]?.port, 81);
    assert.equal(await registry.patch('Service', 'default', 'missing', (x) => x), undefined);
  });

  it('concurrent patches in one process do not lose updates', async () => {
    const { registry } = setup();
    await registry.create({ ...service('counter'), status: { n: 0 } });
    await Promise.all(
      Array.from({ length: 20 }, () =>
        registry.patch('Service', 'default', 'counter', (s) => ({
          ...s,
          status: { n: (s.status as { n: number }).n + 1 },
        })),
      ),
    );
    const s = await registry.get('Service', 'default', 'counter');
    assert.deepEqual(s?.status, { n: 20 });
  });

  it('delete returns whether the object existed; get and list see it gone', async () => {
    const { registry } = setup();
    await registry.apply([service('a'), service('b'), node('n')]);
    assert.equal(await registry.delete('Service', 'default', 'a'), true);
    assert.equal(await registry.delete('Service', 'default', 'a'), false);
    assert.equal(await registry.get('Service', 'default', 'a'), undefined);
    assert.deepEqual(
      (await registry.list('Service')).map((s) => s.metadata.name),
      ['b'],
    );
    assert.deepEqual(await registry.list('Service', 'other'), []);
  });

  it('list skips invalid stored values; get reports them as ERR_INVALID_ENTRY', async () => {
    const { backend, registry } = setup();
    await registry.apply([node('good')]);
    await backend.put(
      'registry/ciliumnodes/bad',
      '{"apiVersion":"cilium.io/v2","kind":"CiliumNode"}',
    );
    await backend.put('registry/ciliumnodes/other', JSON.stringify(node('mismatch')));
    assert.deepEqual(
      (await registry.list('CiliumNode')).map((n) => n.metadata.name),
      ['good'],
    );
    await assert.rejects(
      registry.get('CiliumNode', undefined, 'bad'),
      (e: unknown) =>
        isClusterMeshError(e, ErrorCode.InvalidEntry) && /metadata: required/.test(e.message),
    );
    await assert.rejects(registry.get('CiliumNode', undefined, 'other'), /does not match its key/);
    // Applying over an unreadable value repairs it.
    const [r] = await registry.apply([node('bad')]);
    assert.equal(r?.action, 'created');
    assert.ok(
      await registry.get('CiliumNode', undefined, 'bad'),
      "await registry.get('CiliumNode', undefined, 'bad')",
    );
  });

  it('rejects unknown kinds', async () => {
    const { registry } = setup();
    await assert.rejects(
      registry.list('Gizmo'),
      (e: unknown) =>
        isClusterMeshError(e, ErrorCode.InvalidArgument) && /unknown kind "Gizmo"/.test(e.message),
    );
  });
});
