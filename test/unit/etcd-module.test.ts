import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { findEtcdBinary } from '../../src/etcd/index.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';

const ETCD_MODULE = fileURLToPath(new URL('../../src/etcd/index.ts', import.meta.url));

void describe('src/etcd', () => {
  it('reports a missing etcd binary with ERR_ETCD_NOT_FOUND', () => {
    assert.throws(
      () => findEtcdBinary('/nonexistent/etcd'),
      (err: unknown) =>
        isClusterMeshError(err, ErrorCode.EtcdNotFound) &&
        err.message.includes('/nonexistent/etcd'),
    );
  });

  // `clustermesh up` starts etcd through this module; test certificates (x509 and its
  // reflect-metadata polyfill, which defines Reflect.getMetadata) must stay out of it.
  it('loads without the test TLS libraries', () => {
    const script =
      `await import(${JSON.stringify(ETCD_MODULE)});` +
      'process.stdout.write(typeof Reflect.getMetadata);';
    const r = spawnSync(
      process.execPath,
      ['--import', 'tsx', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'undefined');
  });
});
