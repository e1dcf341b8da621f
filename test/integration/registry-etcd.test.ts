/**
 * The registry on a real etcd: resourceVersion is etcd's mod revision, and an informer
 * survives etcd being killed, restarted and compacted, converging on the store's state.
 */
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { createInformer } from '../../src/registry/informer.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';

function node(name: string, ip = '127.1.0.1'): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: { name },
    spec: { addresses: [{ type: 'InternalIP', ip }] },
  };
}

/** Retries while etcd is coming back. */
const WHILE_ETCD_RETURNS = { timeoutMs: 10_000, intervalMs: 100 };

let etcd: EtcdServer;
let admin: Etcd3;
const backends: EtcdBackend[] = [];

async function open(): Promise<EtcdBackend> {
  const b = new EtcdBackend({ endpoints: etcd.endpoints, callTimeoutMs: 2000 });
  backends.push(b);
  await b.connect();
  return b;
}

before(async () => {
  etcd = await startEtcd();
  admin = etcd.createClient();
});
after(async () => {
  for (const b of backends) await b.close();
  admin.close();
  await etcd.destroy();
});

void describe('registry on etcd', () => {
  it('resourceVersion is the etcd mod revision; create conflicts are exact', async () => {
    const registry = new Registry(await open());
    const created = await registry.create(node('rv-node'));
    const res = await admin.kv.range({ key: Buffer.from('registry/ciliumnodes/rv-node') });
    assert.equal(created.metadata.resourceVersion, String(res.kvs[0]?.mod_revision));
    const stored = JSON.parse(res.kvs[0]?.value.toString() ?? '') as RegistryObject;
    assert.equal(stored.metadata.resourceVersion, undefined);
    await assert.rejects(registry.create(node('rv-node')), (e: unknown) =>
      isClusterMeshError(e, ErrorCode.Conflict),
    );
    const updated = await registry.update(node('rv-node', '127.1.0.2'));
    assert.ok(
      Number(updated.metadata.resourceVersion) > Number(created.metadata.resourceVersion),
      'Number(updated.metadata.resourceVersion) > Number(created.metadata.resourceVersion)',
    );
    // A writer still holding the first version loses.
    const stale = { ...node('rv-node', '127.1.0.3'), metadata: created.metadata };
    await assert.rejects(registry.update(stale), (e: unknown) =>
      isClusterMeshError(e, ErrorCode.Conflict),
    );
  });

  it('an informer survives a killed, restarted and compacted etcd and converges', async () => {
    const writer = new Registry(await open());
    await writer.apply([node('node-1'), node('node-2'), node('node-3')]);
    const watcherBackend = await open();
    const events: string[] = [];
    let synced = 0;
    const informer = createInformer(watcherBackend, 'CiliumNode', {
      onEvent: (ev) => {
        if (ev.object.metadata.name.startsWith('node-')) {
          events.push(`${ev.type} ${ev.object.metadata.name}`);
        }
      },
      onSynced: () => {
        synced++;
      },
    });
    const ac = new AbortController();
    const running = informer.run(ac.signal);
    try {
      await eventually(() => assert.equal(synced, 1), 10_000);
      assert.deepEqual(events.sort(), ['added node-1', 'added node-2', 'added node-3']);
      events.length = 0;

      await etcd.kill();
      await sleep(300);
      await etcd.start();
      // Changes right after the restart, then a compaction: the informer's watch cannot
      // resume from its old revision and has to re-list and diff.
      await eventually(() => writer.delete('CiliumNode', undefined, 'node-2'), WHILE_ETCD_RETURNS);
      await eventually(
        () => writer.apply([node('node-1', '127.1.0.11'), node('node-4')]),
        WHILE_ETCD_RETURNS,
      );
      const { header } = await eventually(
        () => admin.kv.range({ key: Buffer.from('registry/') }),
        WHILE_ETCD_RETURNS,
      );
      await eventually(
        () => admin.kv.compact({ revision: header.revision, physical: true }),
        WHILE_ETCD_RETURNS,
      );

      const state = (): string[] =>
        informer
          .list()
          .filter((n) => n.metadata.name.startsWith('node-'))
          .map((n) => `${n.metadata.name} ${n.spec.addresses?.[0]?.ip ?? ''}`)
          .sort();
      await eventually(
        () =>
          assert.deepEqual(state(), ['node-1 127.1.0.11', 'node-3 127.1.0.1', 'node-4 127.1.0.1']),
        15_000,
      );
      assert.deepEqual(events.sort(), ['added node-4', 'deleted node-2', 'modified node-1']);
      assert.equal(synced, 1);
      // The cached resourceVersions are the current mod revisions.
      const res = await admin.kv.range({ key: Buffer.from('registry/ciliumnodes/node-1') });
      assert.equal(
        informer.get(undefined, 'node-1')?.metadata.resourceVersion,
        String(res.kvs[0]?.mod_revision),
      );
      // And it keeps watching.
      await writer.apply([node('node-5')]);
      await eventually(
        () => assert.ok(events.includes('added node-5'), "events.includes('added node-5')"),
        10_000,
      );
    } finally {
      ac.abort();
      await running;
    }
  });
});
