import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import type { KvstoreConfig } from '../../src/kvstore/config.js';
import { KvstoreHook, connectKvstore } from '../../src/kvstore/connect.js';
import { isClusterMeshError, ErrorCode } from '../../src/lib/errors.js';
import { Bootstrap, HttpHook, waitUntil } from '../../src/lib/daemon.js';
import { silentLogger } from '../../src/lib/logger.js';

const memory: KvstoreConfig = { kind: 'memory', qps: 0, maxInflight: 0, listLimit: 0 };

describe('daemon plumbing', () => {
  it('waitUntil resolves once the condition holds', async () => {
    let done = false;
    setTimeout(() => {
      done = true;
    }, 50);
    await waitUntil(() => done, 'thing', 5_000);
    assert.equal(done, true);
  });

  it('waitUntil times out with ERR_TIMEOUT and stops on abort with ERR_ABORTED', async () => {
    await assert.rejects(
      waitUntil(() => false, 'thing', 50),
      (err) => isClusterMeshError(err, ErrorCode.Timeout) && /thing not ready/.test(err.message),
    );
    const ac = new AbortController();
    setTimeout(() => {
      ac.abort();
    }, 20);
    const t0 = Date.now();
    await assert.rejects(
      waitUntil(() => false, 'thing', 60_000, ac.signal),
      (err) => isClusterMeshError(err, ErrorCode.Aborted),
    );
    assert.ok(Date.now() - t0 < 5_000, 'Date.now() - t0 < 5_000');
  });

  it('Bootstrap latches readiness and exports its duration', async () => {
    const registry = new Registry();
    const b = new Bootstrap(registry, 'cilium_test', 'c1');
    assert.equal(b.ready, false);
    await new Promise((r) => setTimeout(r, 30));
    const seconds = b.markReady();
    assert.equal(b.ready, true);
    assert.ok(seconds >= 0.02, `bootstrap took ${seconds}s`);
    const text = await registry.metrics();
    const exported = /cilium_test_bootstrap_seconds\{source_cluster="c1"\} (\S+)/.exec(text)?.[1];
    assert.equal(Number(exported), seconds);
  });

  it('KvstoreHook connects on start and closes on stop', async () => {
    const hook = new KvstoreHook(memory, { log: silentLogger, memoryStoreName: 'plumbing' });
    assert.equal(hook.backend, undefined);
    assert.throws(() => hook.require(), /kvstore not started/);
    await hook.start();
    assert.equal(hook.status()?.connected, true);
    await hook.require().put('k', 'v');
    await hook.stop();
    assert.equal(hook.status()?.connected, false);
  });

  it('connectKvstore gives up on a kvstore that does not answer', async () => {
    const etcd: KvstoreConfig = {
      ...memory,
      kind: 'etcd',
      etcd: { endpoints: ['http://127.0.0.1:9'] },
    };
    await assert.rejects(connectKvstore(etcd, { log: silentLogger, timeoutMs: 300 }), (err) =>
      isClusterMeshError(err),
    );
  });

  it('HttpHook serves its routes while started, and nothing without an address', async () => {
    const off = new HttpHook('off', undefined, '--x', {});
    await off.start();
    assert.equal(off.url, undefined);
    const hook = new HttpHook('h', '127.0.0.1:0', '--x', { '/hi': () => ({ body: 'hi\n' }) });
    await hook.start();
    const url = hook.url;
    assert.ok(url !== undefined, 'url !== undefined');
    assert.equal(await (await fetch(`${url}/hi`)).text(), 'hi\n');
    await hook.stop();
    await assert.rejects(fetch(`${url}/hi`));
  });
});
