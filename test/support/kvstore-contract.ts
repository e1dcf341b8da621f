import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it, after } from 'node:test';
import type { Backend, WatchEvent } from '../../src/kvstore/backend.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { eventually, until } from './eventually.js';

/**
 * What a contract run needs from a backend under test: fresh client connections
 * and the server-side faults a real deployment sees.
 */
export interface ContractHarness {
  newBackend(opts?: { leaseTtlSeconds?: number; listLimit?: number }): Promise<Backend>;
  /** Server down (data kept) until `start()`. */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Server replaced by an empty one (new cluster ID) at the same address. */
  wipe(): Promise<void>;
  /** Compacts history up to the current revision. */
  compact(): Promise<void>;
  /** Revokes a lease behind the owner's back (as expiry would). */
  revokeLease(id: string): Promise<void>;
  /** Seconds a lease must at least live (etcd rejects shorter TTLs). */
  readonly minLeaseTtlSeconds: number;
}

/** Consumes a list-and-watch stream in the background into a map. */
export class StreamMirror {
  readonly state = new Map<string, string>();
  readonly events: WatchEvent[] = [];
  private readonly ac = new AbortController();
  private readonly done: Promise<void>;
  private readonly listeners = new Set<() => void>();
  private iterator: AsyncIterator<WatchEvent>;
  private paused = false;
  private resume: (() => void) | undefined;

  constructor(backend: Backend, prefix: string, opts: { manual?: boolean } = {}) {
    this.iterator = backend.listAndWatch(prefix, this.ac.signal)[Symbol.asyncIterator]();
    this.paused = opts.manual === true;
    this.done = this.run();
  }

  private async run(): Promise<void> {
    for (;;) {
      if (this.paused) {
        await new Promise<void>((r) => {
          this.resume = r;
        });
      }
      const r = await this.iterator.next();
      if (r.done === true) return;
      this.apply(r.value);
    }
  }

  private apply(ev: WatchEvent): void {
    this.events.push(ev);
    if (ev.kind === 'upsert') this.state.set(ev.key, ev.value);
    else if (ev.kind === 'delete') this.state.delete(ev.key);
    for (const listener of [...this.listeners]) listener();
  }

  /** Pulls events one at a time until `pred` holds (manual mode). */
  async pullUntil(pred: (ev: WatchEvent) => boolean): Promise<void> {
    for (;;) {
      const r = await this.iterator.next();
      if (r.done === true) throw new Error('stream ended');
      this.apply(r.value);
      if (pred(r.value)) return;
    }
  }

  /** Switches from manual pulling to background consumption. */
  release(): void {
    this.paused = false;
    this.resume?.();
  }

  /** Calls `listener` after every applied event; returns the unsubscribe. */
  onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Waits until `pred` holds, re-checking after every event. */
  async waitFor(pred: () => boolean, timeoutMs = 20_000, what = 'condition'): Promise<void> {
    await until(pred, {
      timeoutMs,
      intervalMs: 200,
      message: what,
      wake: (notify) => this.onChange(notify),
    });
  }

  count(kind: WatchEvent['kind']): number {
    return this.events.filter((e) => e.kind === kind).length;
  }

  async stop(): Promise<void> {
    this.ac.abort();
    this.release();
    await this.done;
  }
}

export function sameState(a: ReadonlyMap<string, string>, b: ReadonlyMap<string, string>): boolean {
  if (a.size !== b.size) return false;
  for (const [k, v] of a) if (b.get(k) !== v) return false;
  return true;
}

export async function snapshot(backend: Backend, prefix: string): Promise<Map<string, string>> {
  const { kvs } = await backend.list(prefix);
  return new Map(kvs.map((kv) => [kv.key, kv.value]));
}

function uniquePrefix(): string {
  return `contract/${randomBytes(4).toString('hex')}/`;
}

/** The kvstore contract: every backend must pass all of it. */
export function kvstoreContract(name: string, harness: () => ContractHarness): void {
  describe(`kvstore contract: ${name}`, () => {
    const opened: Backend[] = [];
    const open = async (opts?: Parameters<ContractHarness['newBackend']>[0]): Promise<Backend> => {
      const b = await harness().newBackend(opts);
      opened.push(b);
      return b;
    };
    after(async () => {
      for (const b of opened) await b.close();
    });

    it('get returns what put wrote, undefined for a missing key', async () => {
      const kv = await open();
      const p = uniquePrefix();
      assert.equal(await kv.get(`${p}missing`), undefined);
      await kv.put(`${p}a`, 'one');
      const got = await kv.get(`${p}a`);
      assert.equal(got?.value, 'one');
      assert.equal(got.lease, undefined);
      await kv.put(`${p}a`, 'two');
      const again = await kv.get(`${p}a`);
      assert.ok(again !== undefined, 'again !== undefined');
      assert.equal(again.value, 'two');
      assert.ok(again.modRevision > got.modRevision, 'modRevision grows');
      assert.equal(again.createRevision, got.createRevision);
    });

    it('createOnly writes only a missing key', async () => {
      const kv = await open();
      const p = uniquePrefix();
      assert.equal(await kv.createOnly(`${p}k`, 'first'), true);
      assert.equal(await kv.createOnly(`${p}k`, 'second'), false);
      assert.equal((await kv.get(`${p}k`))?.value, 'first');
    });

    it('updateIfDifferent skips identical values', async () => {
      const kv = await open();
      const p = uniquePrefix();
      assert.equal(await kv.updateIfDifferent(`${p}k`, 'v1'), true);
      const rev = (await kv.get(`${p}k`))?.modRevision;
      assert.equal(await kv.updateIfDifferent(`${p}k`, 'v1'), false);
      assert.equal((await kv.get(`${p}k`))?.modRevision, rev, 'no write for an identical value');
      assert.equal(await kv.updateIfDifferent(`${p}k`, 'v2'), true);
      assert.equal((await kv.get(`${p}k`))?.value, 'v2');
    });

    it('delete and deletePrefix report what they removed', async () => {
      const kv = await open();
      const p = uniquePrefix();
      await kv.put(`${p}x/1`, '1');
      await kv.put(`${p}x/2`, '2');
      await kv.put(`${p}xy`, '3');
      await kv.put(`${p}y`, '4');
      assert.equal(await kv.delete(`${p}y`), true);
      assert.equal(await kv.delete(`${p}y`), false);
      assert.equal(await kv.deletePrefix(`${p}x/`), 2);
      const left = await snapshot(kv, p);
      assert.deepEqual([...left.keys()], [`${p}xy`]);
    });

    it('lists in pages, in key order, at one revision', async () => {
      const kv = await open({ listLimit: 3 });
      const p = uniquePrefix();
      const keys = Array.from({ length: 10 }, (_, i) => `${p}k${String(i).padStart(2, '0')}`);
      for (const k of [...keys].reverse()) await kv.put(k, k.toUpperCase());
      await kv.put(`${p.slice(0, -1)}-outside`, 'x');
      const first = await kv.listPage(p);
      assert.deepEqual(
        first.kvs.map((x) => x.key),
        keys.slice(0, 3),
      );
      assert.equal(first.more, true);
      const second = await kv.listPage(p, { startAfter: keys[2], revision: first.revision });
      assert.deepEqual(
        second.kvs.map((x) => x.key),
        keys.slice(3, 6),
      );
      const all = await kv.list(p);
      assert.deepEqual(
        all.kvs.map((x) => x.key),
        keys,
      );
      assert.equal(all.kvs[4]?.value, keys[4]?.toUpperCase());
      const last = await kv.listPage(p, { startAfter: keys[8], limit: 5 });
      assert.equal(last.more, false);
      assert.deepEqual(
        last.kvs.map((x) => x.key),
        [keys[9]],
      );
    });

    it('reads at a past revision', async () => {
      const kv = await open();
      const p = uniquePrefix();
      await kv.put(`${p}a`, 'old');
      const rev = (await kv.listPage(p)).revision;
      await kv.put(`${p}a`, 'new');
      await kv.put(`${p}b`, 'later');
      const past = await kv.listPage(p, { revision: rev });
      assert.deepEqual(
        past.kvs.map((x) => [x.key, x.value]),
        [[`${p}a`, 'old']],
      );
    });

    it('applies a transaction atomically at one revision', async () => {
      const kv = await open();
      const p = uniquePrefix();
      await kv.put(`${p}gone`, 'x');
      await kv.txn([
        { kind: 'put', key: `${p}a`, value: '1' },
        { kind: 'put', key: `${p}b`, value: '2', lease: true },
        { kind: 'delete', key: `${p}gone` },
      ]);
      const a = await kv.get(`${p}a`);
      const b = await kv.get(`${p}b`);
      assert.equal(a?.modRevision, b?.modRevision);
      assert.notEqual(b?.lease, undefined);
      assert.equal(await kv.get(`${p}gone`), undefined);
    });

    it('txnIf applies only when every mod revision still matches', async () => {
      const kv = await open();
      const p = uniquePrefix();
      await kv.put(`${p}a`, '1');
      const rev = (await kv.get(`${p}a`))?.modRevision ?? -1;
      // Expected revisions match (and b must not exist): applied atomically.
      assert.equal(
        await kv.txnIf(
          [
            { key: `${p}a`, modRevision: rev },
            { key: `${p}b`, modRevision: 0 },
          ],
          [
            { kind: 'put', key: `${p}a`, value: '2' },
            { kind: 'put', key: `${p}b`, value: 'new' },
          ],
        ),
        true,
      );
      assert.equal((await kv.get(`${p}a`))?.value, '2');
      // A stale revision: nothing applied.
      assert.equal(
        await kv.txnIf(
          [{ key: `${p}a`, modRevision: rev }],
          [
            { kind: 'put', key: `${p}a`, value: 'lost-update' },
            { kind: 'delete', key: `${p}b` },
          ],
        ),
        false,
      );
      assert.equal((await kv.get(`${p}a`))?.value, '2');
      assert.equal((await kv.get(`${p}b`))?.value, 'new');
      // "Must not exist" fails for an existing key.
      assert.equal(
        await kv.txnIf([{ key: `${p}b`, modRevision: 0 }], [{ kind: 'delete', key: `${p}b` }]),
        false,
      );
    });

    it('attaches at most 1,000 keys to one lease', async () => {
      const h = harness();
      const kv = await open({ leaseTtlSeconds: Math.max(60, h.minLeaseTtlSeconds) });
      const p = uniquePrefix();
      const keys = Array.from({ length: 1001 }, (_, i) => `${p}${i}`);
      for (let i = 0; i < keys.length; i += 100) {
        await kv.txn(
          keys.slice(i, i + 100).map((key) => ({ kind: 'put', key, value: 'v', lease: true })),
        );
      }
      assert.equal(kv.status().leases, 2);
      const leases = new Set((await kv.list(p)).kvs.map((x) => x.lease));
      assert.equal(leases.size, 2);
      // Writing a key again keeps it on its lease instead of counting it twice.
      await kv.put(keys[0] ?? '', 'again', { lease: true });
      assert.equal(kv.status().leases, 2);
    });

    it('keys of a closed client expire with its lease', async () => {
      const h = harness();
      const kv = await h.newBackend({ leaseTtlSeconds: h.minLeaseTtlSeconds });
      const reader = await open();
      const p = uniquePrefix();
      await kv.put(`${p}leased`, 'v', { lease: true });
      await kv.put(`${p}plain`, 'v');
      await kv.close(); // keepalive stops; the lease is not revoked
      assert.equal((await reader.get(`${p}leased`))?.value, 'v');
      await eventually(
        async () => {
          assert.equal(await reader.get(`${p}leased`), undefined);
        },
        { timeoutMs: (h.minLeaseTtlSeconds + 10) * 1000 },
      );
      assert.equal((await reader.get(`${p}plain`))?.value, 'v');
    });

    it('an answer written with keepLease keeps the owner’s lease: the key still expires with it', async () => {
      const h = harness();
      const owner = await h.newBackend({ leaseTtlSeconds: h.minLeaseTtlSeconds });
      const answerer = await open();
      const p = uniquePrefix();
      await owner.put(`${p}reg`, 'request', { lease: true });
      const before = await answerer.get(`${p}reg`);
      assert.ok(before?.lease !== undefined, 'the request is on the owner’s lease');
      const applied = await answerer.txnIf(
        [{ key: `${p}reg`, modRevision: before.modRevision }],
        [{ kind: 'put', key: `${p}reg`, value: 'answer', keepLease: true }],
      );
      assert.equal(applied, true);
      const after = await answerer.get(`${p}reg`);
      assert.deepEqual([after?.value, after?.lease], ['answer', before.lease]);
      await owner.close(); // keepalive stops; the lease is not revoked
      await eventually(
        async () => {
          assert.equal(await answerer.get(`${p}reg`), undefined);
        },
        { timeoutMs: (h.minLeaseTtlSeconds + 10) * 1000 },
      );
    });

    it('reports keys whose lease was lost, and writes them again under a new lease', async () => {
      const h = harness();
      const kv = await open({ leaseTtlSeconds: Math.max(h.minLeaseTtlSeconds, 3) });
      const p = uniquePrefix();
      await kv.put(`${p}a`, '1', { lease: true });
      await kv.put(`${p}b`, '2', { lease: true });
      const lease = (await kv.get(`${p}a`))?.lease;
      assert.ok(lease !== undefined, 'lease !== undefined');
      const lost = new Promise<readonly string[]>((resolve) => {
        kv.onLeaseLost(resolve);
      });
      await h.revokeLease(lease);
      const keys = await lost;
      assert.deepEqual([...keys].sort(), [`${p}a`, `${p}b`]);
      await kv.put(`${p}a`, '1', { lease: true });
      const again = await kv.get(`${p}a`);
      assert.notEqual(again?.lease, undefined);
      assert.notEqual(again?.lease, lease);
    });

    it('a lock is held by one owner at a time', async () => {
      const a = await open();
      const b = await open();
      const p = uniquePrefix();
      const order: string[] = [];
      const la = await a.lock(`${p}lock`);
      order.push('a-acquired');
      const pb = b.lock(`${p}lock`).then((l) => {
        order.push('b-acquired');
        return l;
      });
      await new Promise((r) => setTimeout(r, 300));
      order.push('a-release');
      await la.release();
      const lb = await pb;
      await lb.release();
      assert.deepEqual(order, ['a-acquired', 'a-release', 'b-acquired']);
    });

    it('list-and-watch: list, one listDone, then changes in order; the prefix is respected', async () => {
      const kv = await open({ listLimit: 2 });
      const p = uniquePrefix();
      for (let i = 0; i < 5; i++) await kv.put(`${p}c1/${i}`, `v${i}`);
      await kv.put(`${p}c10/x`, 'other cluster');
      const m = new StreamMirror(kv, `${p}c1/`);
      try {
        await m.waitFor(() => m.count('listDone') === 1, 10_000, 'listDone');
        assert.equal(m.state.size, 5);
        assert.equal(m.count('upsert'), 5);
        await kv.put(`${p}c1/5`, 'v5');
        await kv.put(`${p}c1/0`, 'changed');
        await kv.delete(`${p}c1/1`);
        await kv.put(`${p}c10/y`, 'ignored');
        await m.waitFor(() => !m.state.has(`${p}c1/1`), 10_000, 'delete event');
        assert.deepEqual(
          m.events.slice(6).map((e) => (e.kind === 'listDone' ? e.kind : `${e.kind} ${e.key}`)),
          [`upsert ${p}c1/5`, `upsert ${p}c1/0`, `delete ${p}c1/1`],
        );
        assert.equal(m.state.get(`${p}c1/0`), 'changed');
        assert.ok(
          ![...m.state.keys()].some((k) => k.startsWith(`${p}c10/`)),
          '![...m.state.keys()].some((k) => k.startsWith(`${p}c10/`))',
        );
        assert.equal(m.count('listDone'), 1);
      } finally {
        await m.stop();
      }
    });

    it('list-and-watch survives a server restart with changes after it', async () => {
      const h = harness();
      const kv = await open();
      const writer = await open();
      const p = uniquePrefix();
      for (let i = 0; i < 20; i++) await writer.put(`${p}${i}`, `v${i}`);
      const m = new StreamMirror(kv, p);
      try {
        await m.waitFor(() => m.count('listDone') === 1, 10_000, 'listDone');
        await h.stop();
        await h.start();
        await eventually(async () => {
          await writer.put(`${p}new`, 'after-restart');
        });
        for (let i = 0; i < 5; i++) await writer.delete(`${p}${i}`);
        await writer.put(`${p}10`, 'changed');
        const want = await snapshot(writer, p);
        await m.waitFor(() => sameState(m.state, want), 30_000, 'convergence after restart');
      } finally {
        await m.stop();
      }
    });

    it('list-and-watch converges after compaction past its revision', async () => {
      const h = harness();
      const kv = await open({ listLimit: 3 });
      const writer = await open();
      const p = uniquePrefix();
      for (let i = 0; i < 10; i++) await writer.put(`${p}${i}`, `v${i}`);
      const m = new StreamMirror(kv, p, { manual: true });
      try {
        // Mid-list: the next page is read at a revision that gets compacted away.
        await m.pullUntil(() => m.events.length === 2);
        await writer.delete(`${p}8`);
        await writer.put(`${p}9`, 'changed-during-list');
        await h.compact();
        // After listDone, the watch starts only when pulled: compact past its start.
        await m.pullUntil((e) => e.kind === 'listDone');
        await writer.delete(`${p}0`);
        await writer.put(`${p}new`, 'added');
        await h.compact();
        m.release();
        const want = await snapshot(writer, p);
        // Two listDone: the interrupted first list emits none, the two re-lists one each.
        await m.waitFor(
          () => m.count('listDone') === 2 && sameState(m.state, want),
          20_000,
          'convergence after compaction',
        );
      } finally {
        await m.stop();
      }
    });

    it('list-and-watch detects a wiped server at the same address and converges', async () => {
      const h = harness();
      const kv = await open();
      const p = uniquePrefix();
      for (let i = 0; i < 10; i++) await kv.put(`${p}${i}`, `v${i}`);
      const before = kv.status().clusterId;
      const errors: Error[] = [];
      kv.onStatusError((e) => errors.push(e));
      const m = new StreamMirror(kv, p);
      try {
        await m.waitFor(() => m.count('listDone') === 1, 10_000, 'listDone');
        await h.wipe();
        const writer = await open();
        await eventually(async () => {
          await writer.put(`${p}3`, 'after-wipe');
        });
        await writer.put(`${p}other`, 'new');
        const want = await snapshot(writer, p);
        assert.equal(want.size, 2);
        await m.waitFor(() => sameState(m.state, want), 30_000, 'convergence after wipe');
        assert.ok(
          errors.some((e) => isClusterMeshError(e, ErrorCode.EtcdClusterIdMismatch)),
          'cluster ID change reported',
        );
        assert.notEqual(kv.status().clusterId, before);
      } finally {
        await m.stop();
      }
    });

    it('list-and-watch with stopOnClusterChange ends on a wiped server without deleting', async () => {
      const h = harness();
      const kv = await open();
      const p = uniquePrefix();
      for (let i = 0; i < 5; i++) await kv.put(`${p}${i}`, `v${i}`);
      const ac = new AbortController();
      const events: WatchEvent[] = [];
      const consumed = (async (): Promise<unknown> => {
        try {
          for await (const ev of kv.listAndWatch(p, ac.signal, { stopOnClusterChange: true })) {
            events.push(ev);
            if (ev.kind === 'listDone') {
              await h.wipe();
              const writer = await open();
              await eventually(async () => {
                await writer.put(`${p}new`, 'x');
              });
            }
          }
          return undefined;
        } catch (err) {
          return err;
        }
      })();
      const err = await consumed;
      ac.abort();
      assert.ok(isClusterMeshError(err, ErrorCode.EtcdClusterIdMismatch), String(err));
      assert.equal(events.filter((e) => e.kind === 'delete').length, 0);
      assert.equal(events.filter((e) => e.kind === 'upsert').length, 5);
    });

    it('status reports the connection and close stops everything', async () => {
      const h = harness();
      const kv = await h.newBackend();
      await kv.put(`${uniquePrefix()}x`, 'y');
      const st = kv.status();
      assert.equal(st.connected, true);
      assert.ok(st.endpoints.length >= 1, 'st.endpoints.length >= 1');
      assert.ok(
        st.clusterId !== undefined && st.clusterId !== '',
        "st.clusterId !== undefined && st.clusterId !== ''",
      );
      const m = new StreamMirror(kv, uniquePrefix());
      await m.waitFor(() => m.count('listDone') === 1, 10_000, 'listDone');
      await kv.close();
      await m.stop();
      assert.equal(kv.status().connected, false);
      await assert.rejects(kv.get('x'), (e: unknown) =>
        isClusterMeshError(e, ErrorCode.KvstoreClosed),
      );
    });
  });
}
