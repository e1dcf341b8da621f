import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { kvstoreContract } from '../../src/testing/kvstore-contract.js';

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
