import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { LeasePool } from '../../src/kvstore/session.js';
import { silentLogger } from '../../src/lib/logger.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { kvstoreContract } from '../support/kvstore-contract.js';

const store = new MemoryStore();

kvstoreContract('memory', () => ({
  newBackend: (opts) => Promise.resolve(new MemoryBackend(store, opts)),
  stop: () => {
    store.setAvailable(false);
    return Promise.resolve();
  },
  start: () => {
    store.setAvailable(true);
    return Promise.resolve();
  },
  wipe: () => {
    store.wipe();
    return Promise.resolve();
  },
  compact: () => {
    store.compact(store.currentRevision);
    return Promise.resolve();
  },
  revokeLease: (id) => {
    store.revokeLease(id);
    return Promise.resolve();
  },
  minLeaseTtlSeconds: 1,
}));

describe('LeasePool', () => {
  it('grants the next lease while the current one fills, and releases every lease on close', async () => {
    const granted: { id: string; released: boolean }[] = [];
    let started = 0;
    const pool = new LeasePool(
      async () => {
        started++;
        await new Promise((r) => setTimeout(r, 5));
        const h = { id: String(granted.length + 1), released: false };
        granted.push(h);
        return {
          id: h.id,
          onLost: () => undefined,
          release: () => {
            h.released = true;
          },
          revoke: () => Promise.resolve(),
        };
      },
      60,
      silentLogger,
      100,
    );
    const byLease = new Map<string, number>();
    for (let i = 0; i < 250; i++) {
      // The lease a key at a boundary needs was requested when its predecessor was half full.
      if (i === 100 || i === 200) assert.equal(started, i / 100 + 1);
      const id = await pool.leaseFor(`k${String(i)}`);
      byLease.set(id, (byLease.get(id) ?? 0) + 1);
    }
    assert.deepEqual([...byLease.values()], [100, 100, 50]);
    assert.ok(granted.length <= 4, `${String(granted.length)} leases granted`);
    await pool.close();
    assert.ok(
      granted.every((h) => h.released),
      'granted.every((h) => h.released)',
    );
  });
});
