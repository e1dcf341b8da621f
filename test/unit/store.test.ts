import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { SyncStore } from '../../src/store/syncstore.js';
import { WriteBatcher } from '../../src/store/write-batcher.js';
import { WatchStore, type WatchStoreObserver } from '../../src/store/watchstore.js';
import {
  ImmediateWatchStoreManager,
  SyncedWatchStoreManager,
} from '../../src/store/watchstoremgr.js';
import { eventually } from '../support/eventually.js';
import { snapshot } from '../support/kvstore-contract.js';

const PREFIX = 'cilium/state/nodes/v1';
const CANARY = 'cilium/synced/c1/cilium/state/nodes/v1';

interface Harness {
  store: MemoryStore;
  backend: MemoryBackend;
  sync: SyncStore;
  ac: AbortController;
  done: Promise<void>;
  stop(): Promise<void>;
}

function startSync(
  opts: { store?: MemoryStore; lease?: boolean; leaseTtl?: number } = {},
): Harness {
  const store = opts.store ?? new MemoryStore();
  const backend = new MemoryBackend(store, { leaseTtlSeconds: opts.leaseTtl ?? 60 });
  const sync = new SyncStore({
    backend,
    sourceCluster: 'c1',
    prefix: PREFIX,
    lease: opts.lease,
    retryInitialMs: 5,
    retryMaxMs: 100,
  });
  const ac = new AbortController();
  const done = sync.run(ac.signal);
  return {
    store,
    backend,
    sync,
    ac,
    done,
    stop: async () => {
      ac.abort();
      await done;
      await backend.close();
    },
  };
}

async function flushed(h: Harness): Promise<void> {
  await eventually(() => {
    assert.equal(h.sync.queueSize, 0);
  }, 5000);
}

describe('SyncStore', () => {
  it('writes upserts under the prefix with a lease, and deletes', async () => {
    const h = startSync();
    try {
      h.sync.upsertKey('c1/node-a', '{"a":1}');
      h.sync.upsertKey('c1/node-b', '{"b":1}');
      await flushed(h);
      const a = await h.backend.get(`${PREFIX}/c1/node-a`);
      assert.equal(a?.value, '{"a":1}');
      assert.notEqual(a.lease, undefined);
      h.sync.deleteKey('c1/node-a');
      h.sync.deleteKey('never-existed');
      await flushed(h);
      assert.deepEqual(
        [...(await snapshot(h.backend, `${PREFIX}/`)).keys()],
        [`${PREFIX}/c1/node-b`],
      );
    } finally {
      await h.stop();
    }
  });

  it('writes without a lease when asked', async () => {
    const h = startSync({ lease: false });
    try {
      h.sync.upsertKey('k', 'v');
      await flushed(h);
      assert.equal((await h.backend.get(`${PREFIX}/k`))?.lease, undefined);
    } finally {
      await h.stop();
    }
  });

  it('coalesces bursts and skips identical values', async () => {
    const h = startSync();
    try {
      const rev0 = h.store.currentRevision;
      for (let i = 0; i < 200; i++) h.sync.upsertKey('hot', `v${i}`);
      await flushed(h);
      assert.equal((await h.backend.get(`${PREFIX}/hot`))?.value, 'v199');
      const writes = h.store.currentRevision - rev0;
      assert.ok(writes <= 2, `200 upserts of one key coalesced into ${writes} writes`);
      const rev1 = h.store.currentRevision;
      h.sync.upsertKey('hot', 'v199');
      await flushed(h);
      assert.equal(h.store.currentRevision, rev1, 'identical value not written');
    } finally {
      await h.stop();
    }
  });

  it('batches many keys into transactions', async () => {
    const h = startSync();
    try {
      const rev0 = h.store.currentRevision;
      for (let i = 0; i < 1000; i++) h.sync.upsertKey(`k${i}`, `v${i}`);
      await flushed(h);
      assert.equal((await h.backend.list(`${PREFIX}/`)).kvs.length, 1000);
      const writes = h.store.currentRevision - rev0;
      assert.ok(writes <= 20, `1000 keys written in ${writes} transactions`);
    } finally {
      await h.stop();
    }
  });

  it('writes the canary only after the backlog is flushed, retrying through an outage', async () => {
    const h = startSync();
    try {
      h.store.setAvailable(false);
      for (let i = 0; i < 10; i++) h.sync.upsertKey(`k${i}`, `v${i}`);
      let called = 0;
      h.sync.synced(() => called++);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(h.sync.isSynced, false);
      assert.ok(h.sync.syncErrors > 0, 'failed writes counted');
      h.store.setAvailable(true);
      await eventually(() => {
        assert.equal(h.sync.isSynced, true);
      }, 5000);
      const canary = await h.backend.get(CANARY);
      assert.match(canary?.value ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const { kvs } = await h.backend.list(`${PREFIX}/`);
      assert.equal(kvs.length, 10);
      for (const kv of kvs)
        assert.ok(
          kv.modRevision < (canary?.modRevision ?? 0),
          'kv.modRevision < (canary?.modRevision ?? 0)',
        );
      assert.equal(called, 1);
      h.sync.synced(() => called++);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(called, 1, 'synced() acts only once');
    } finally {
      await h.stop();
    }
  });

  it('deletes leftovers of a previous run before writing the canary', async () => {
    const store = new MemoryStore();
    const old = new MemoryBackend(store);
    for (const n of ['a', 'b', 'c']) await old.put(`${PREFIX}/${n}`, 'old');
    await old.put('cilium/state/nodes/v1x/unrelated', 'keep');
    await old.close();
    const h = startSync({ store });
    try {
      h.sync.upsertKey('b', 'new');
      h.sync.upsertKey('d', 'new');
      h.sync.synced();
      await eventually(() => {
        assert.equal(h.sync.isSynced, true);
      }, 5000);
      const state = await snapshot(h.backend, `${PREFIX}/`);
      assert.deepEqual(
        [...state.entries()],
        [
          [`${PREFIX}/b`, 'new'],
          [`${PREFIX}/d`, 'new'],
        ],
      );
      assert.equal((await h.backend.get('cilium/state/nodes/v1x/unrelated'))?.value, 'keep');
    } finally {
      await h.stop();
    }
  });

  it('writes keys again when their lease is lost', async () => {
    const h = startSync({ leaseTtl: 1 });
    try {
      h.sync.upsertKey('k', 'v');
      h.sync.synced();
      await eventually(() => {
        assert.equal(h.sync.isSynced, true);
      });
      const lease = (await h.backend.get(`${PREFIX}/k`))?.lease;
      assert.ok(lease !== undefined, 'lease !== undefined');
      h.store.revokeLease(lease);
      assert.equal(await h.backend.get(`${PREFIX}/k`), undefined);
      await eventually(async () => {
        const kv = await h.backend.get(`${PREFIX}/k`);
        assert.equal(kv?.value, 'v');
        assert.notEqual(kv.lease, lease);
        assert.notEqual(await h.backend.get(CANARY), undefined);
      }, 10_000);
    } finally {
      await h.stop();
    }
  });

  it('rewrites everything, canary last, when the etcd behind it is replaced', async () => {
    const h = startSync();
    try {
      for (let i = 0; i < 5; i++) h.sync.upsertKey(`k${i}`, `v${i}`);
      h.sync.synced();
      await eventually(() => {
        assert.equal(h.sync.isSynced, true);
      });
      h.store.wipe();
      // A reader of the new store sees, in revision order, all data before the canary.
      const reader = new MemoryBackend(h.store);
      const ac = new AbortController();
      const keysAtCanary = (async (): Promise<number> => {
        const seen = new Set<string>();
        for await (const ev of reader.listAndWatch('cilium/', ac.signal)) {
          if (ev.kind !== 'upsert') continue;
          if (ev.key === CANARY) return seen.size;
          seen.add(ev.key);
        }
        return -1;
      })();
      // The writer notices the new store on its next answer from it.
      h.sync.upsertKey('k5', 'v5');
      assert.equal(await keysAtCanary, 6);
      ac.abort();
      await reader.close();
    } finally {
      await h.stop();
    }
  });
});

class Recorder implements WatchStoreObserver<string> {
  readonly log: string[] = [];
  onUpdate(name: string, entry: string): void {
    this.log.push(`update ${name}=${entry}`);
  }
  onDelete(name: string, entry: string): void {
    this.log.push(`delete ${name}=${entry}`);
  }
}

const decodeUpper = (name: string, value: string): string => {
  if (value.startsWith('bad')) throw new Error(`invalid value for ${name}`);
  return value.toUpperCase();
};

describe('WriteBatcher', () => {
  it('merges the writes of many stores into few bounded transactions', async () => {
    const store = new MemoryStore();
    const backend = new MemoryBackend(store, { leaseTtlSeconds: 60 });
    let inflight = 0;
    let maxInflight = 0;
    let txns = 0;
    const txn = backend.txn.bind(backend);
    backend.txn = async (ops) => {
      txns++;
      inflight++;
      maxInflight = Math.max(maxInflight, inflight);
      try {
        await new Promise((r) => setTimeout(r, 5));
        await txn(ops);
      } finally {
        inflight--;
      }
    };
    const writer = new WriteBatcher({ backend, maxInflight: 2 });
    const ac = new AbortController();
    const stores = Array.from(
      { length: 50 },
      (_, i) =>
        new SyncStore({
          backend,
          writer,
          sourceCluster: `c${String(i)}`,
          prefix: `cilium/cache/ip/v1/c${String(i)}`,
          syncedKey: 'cilium/cache/ip/v1',
        }),
    );
    const done = Promise.all(stores.map((s) => s.run(ac.signal)));
    try {
      for (const s of stores) {
        for (let k = 0; k < 20; k++) s.upsertKey(`10.0.0.${String(k)}`, `v${String(k)}`);
        s.synced();
      }
      await eventually(() => {
        for (const s of stores) assert.equal(s.isSynced, true);
      }, 5000);
      assert.equal((await backend.list('cilium/cache/ip/v1/')).kvs.length, 1000);
      assert.ok(maxInflight <= 2, `at most 2 transactions at once, saw ${String(maxInflight)}`);
      assert.ok(txns <= 20, `1000 keys of 50 stores in ${String(txns)} transactions`);
      assert.equal(writer.pending, 0);
    } finally {
      ac.abort();
      await done;
      await backend.close();
    }
  });

  it('a refused request does not fail the requests merged with it', async () => {
    const store = new MemoryStore();
    const backend = new MemoryBackend(store, { leaseTtlSeconds: 60 });
    const txn = backend.txn.bind(backend);
    backend.txn = async (ops) => {
      if (ops.some((op) => op.key === 'bad')) throw new Error('refused');
      await txn(ops);
    };
    const put = backend.put.bind(backend);
    backend.put = async (key, value, opts) => {
      if (key === 'bad') throw new Error('refused');
      await put(key, value, opts);
    };
    const writer = new WriteBatcher({ backend, maxInflight: 1 });
    const first = writer.write([{ kind: 'put', key: 'a', value: '1' }]);
    const results = await Promise.allSettled([
      writer.write([{ kind: 'put', key: 'b', value: '2' }]),
      writer.write([{ kind: 'put', key: 'bad', value: '3' }]),
      writer.write([
        { kind: 'put', key: 'c', value: '4' },
        { kind: 'put', key: 'd', value: '5' },
      ]),
    ]);
    await first;
    assert.deepEqual(
      results.map((r) => r.status),
      ['fulfilled', 'rejected', 'fulfilled'],
    );
    assert.deepEqual((await backend.list('')).kvs.map((kv) => kv.key).sort(), ['a', 'b', 'c', 'd']);
    await backend.close();
  });
});

describe('WatchStore', () => {
  it('lists, watches, and fires on-sync callbacks once per lifetime', async () => {
    const store = new MemoryStore();
    const kv = new MemoryBackend(store);
    await kv.put('p/a', 'x');
    await kv.put('p/b', 'y');
    await kv.put('pz/other', 'no');
    const rec = new Recorder();
    let syncs = 0;
    const ws = new WatchStore({
      clusterName: 'c2',
      decode: decodeUpper,
      observer: rec,
      onSync: [() => syncs++],
    });
    const ac = new AbortController();
    const watching = ws.watch(kv, 'p', ac.signal);
    await eventually(() => {
      assert.equal(ws.synced, true);
    });
    assert.deepEqual(rec.log, ['update a=X', 'update b=Y']);
    assert.equal(ws.numEntries, 2);
    await kv.put('p/c', 'z');
    await kv.delete('p/a');
    await eventually(() => {
      assert.equal(ws.numEntries, 2);
      assert.equal(ws.get('c'), 'Z');
    });
    assert.deepEqual(rec.log.slice(2), ['update c=Z', 'delete a=X']);
    await assert.rejects(ws.watch(kv, 'p', ac.signal), /already running/);
    ac.abort();
    await watching;
    assert.equal(ws.synced, false);
    assert.equal(ws.numEntries, 2, 'entries kept after the watch ends');
    assert.equal(syncs, 1);
    await kv.close();
  });

  it('keeps the last valid value when an update is invalid, and counts it', async () => {
    const kv = new MemoryBackend(new MemoryStore());
    await kv.put('p/a', 'good');
    const rec = new Recorder();
    const ws = new WatchStore({ clusterName: 'c2', decode: decodeUpper, observer: rec });
    const ac = new AbortController();
    const watching = ws.watch(kv, 'p/', ac.signal);
    await eventually(() => {
      assert.equal(ws.synced, true);
    });
    await kv.put('p/a', 'bad-update');
    await kv.put('p/new', 'bad-new');
    await kv.put('p/ok', 'fine');
    await eventually(() => {
      assert.equal(ws.get('ok'), 'FINE');
    });
    assert.equal(ws.get('a'), 'GOOD');
    assert.equal(ws.get('new'), undefined);
    assert.equal(ws.invalidEntries, 2);
    assert.deepEqual(rec.log, ['update a=GOOD', 'update ok=FINE']);
    ac.abort();
    await watching;
    await kv.close();
  });

  it('after a reconnect removes only what disappeared; drain deletes the rest', async () => {
    const store = new MemoryStore();
    const kv = new MemoryBackend(store);
    for (const n of ['a', 'b', 'c']) await kv.put(`p/${n}`, n);
    const rec = new Recorder();
    let syncs = 0;
    const ws = new WatchStore({
      clusterName: 'c2',
      decode: decodeUpper,
      observer: rec,
      onSync: [() => syncs++],
    });
    let ac = new AbortController();
    let watching = ws.watch(kv, 'p', ac.signal);
    await eventually(() => {
      assert.equal(ws.synced, true);
    });
    ac.abort();
    await watching;
    // Changes while disconnected.
    await kv.delete('p/a');
    await kv.put('p/b', 'b2');
    await kv.put('p/d', 'd');
    rec.log.length = 0;
    ac = new AbortController();
    watching = ws.watch(kv, 'p', ac.signal);
    await eventually(() => {
      assert.equal(ws.synced, true);
    });
    assert.deepEqual([...rec.log].sort(), [
      'delete a=A',
      'update b=B2',
      'update c=C',
      'update d=D',
    ]);
    assert.equal(syncs, 1, 'on-sync callbacks do not fire again on reconnect');
    ac.abort();
    await watching;
    rec.log.length = 0;
    ws.drain();
    assert.equal(ws.numEntries, 0);
    assert.deepEqual([...rec.log].sort(), ['delete b=B2', 'delete c=C', 'delete d=D']);
    await kv.close();
  });
});

describe('WatchStoreManager', () => {
  it('starts a watch only when its canary appears', async () => {
    const kv = new MemoryBackend(new MemoryStore());
    const mgr = new SyncedWatchStoreManager(kv, 'c2');
    const started: string[] = [];
    const fn =
      (name: string) =>
      async (signal: AbortSignal): Promise<void> => {
        started.push(name);
        await new Promise<void>((r) => signal.addEventListener('abort', () => r(), { once: true }));
      };
    mgr.register('cilium/state/nodes/v1', fn('nodes'));
    mgr.register('cilium/state/ip/v1', fn('ip'));
    const ac = new AbortController();
    const running = mgr.run(ac.signal);
    await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(started, []);
    await kv.put('cilium/synced/c3/cilium/state/nodes/v1', 'other cluster');
    await kv.put('cilium/synced/c2/cilium/state/nodes/v1', '2026-01-01T00:00:00Z');
    await eventually(() => {
      assert.deepEqual(started, ['nodes']);
    });
    await kv.put('cilium/synced/c2/cilium/state/nodes/v1', '2026-01-01T00:01:00Z');
    await kv.put('cilium/synced/c2/cilium/state/ip/v1', '2026-01-01T00:00:00Z');
    await eventually(() => {
      assert.deepEqual(started, ['nodes', 'ip']);
    });
    ac.abort();
    await running;
    await kv.close();
  });

  it('the immediate variant starts every watch at once', async () => {
    const mgr = new ImmediateWatchStoreManager(
      (await import('../../src/lib/logger.js')).silentLogger,
    );
    const started: string[] = [];
    mgr.register('a', () => {
      started.push('a');
      return Promise.resolve();
    });
    mgr.register('b', () => {
      started.push('b');
      return Promise.resolve();
    });
    await mgr.run(new AbortController().signal);
    assert.deepEqual(started, ['a', 'b']);
    assert.throws(() => {
      mgr.register('c', () => Promise.resolve());
    }, /register after run/);
  });
});
