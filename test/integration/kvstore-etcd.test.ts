import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { createBackend, resolveKvstoreConfig } from '../../src/kvstore/config.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { kvstoreContract } from '../support/kvstore-contract.js';

let etcd: EtcdServer;
let admin: Etcd3;

before(async () => {
  etcd = await startEtcd();
  admin = etcd.createClient();
});
after(async () => {
  admin.close();
  await etcd.destroy();
});

kvstoreContract('etcd', () => ({
  newBackend: async (opts) => {
    const b = new EtcdBackend({ endpoints: etcd.endpoints, ...opts });
    await b.connect();
    return b;
  },
  stop: () => etcd.stop(),
  start: () => etcd.start(),
  wipe: async () => {
    admin.close();
    await etcd.wipe();
    admin = etcd.createClient();
  },
  compact: async () => {
    const res = await admin.kv.range({ key: Buffer.from('compact-probe') });
    await admin.kv.compact({ revision: res.header.revision, physical: true });
  },
  revokeLease: async (id) => {
    await admin.leaseClient.leaseRevoke({ ID: id });
  },
  minLeaseTtlSeconds: 2,
}));

describe('etcd backend: configuration and errors', () => {
  it('connects through --kvstore-opt etcd.address', async () => {
    const cfg = await resolveKvstoreConfig(undefined, [`etcd.address=${etcd.clientUrl}`]);
    assert.equal(cfg.kind, 'etcd');
    const b = await createBackend(cfg);
    try {
      await b.put('cfg/a', '1');
      assert.equal((await b.get('cfg/a'))?.value, '1');
    } finally {
      await b.close();
    }
  });

  it('an unreachable etcd is a one-line ERR_KVSTORE_UNREACHABLE', async () => {
    const b = new EtcdBackend({ endpoints: ['http://127.0.0.1:1'], callTimeoutMs: 3000 });
    try {
      await assert.rejects(b.connect(), (e: unknown) => {
        assert.ok(isClusterMeshError(e, ErrorCode.KvstoreUnreachable), String(e));
        assert.ok(!e.message.includes('\n'), "!e.message.includes('\\n')");
        assert.match(e.message, /etcd at http:\/\/127\.0\.0\.1:1 unreachable/);
        return true;
      });
      assert.equal(b.status().connected, false);
    } finally {
      await b.close();
    }
  });
});
