/**
 * A wrong certificate never reaches the registration key: etcd refuses the handshake. The
 * apiserver counts and logs it from etcd's own log line; here with real etcd processes
 * (two clusters' CAs) and the real `etcdctl` as the client holding the other CA's
 * certificate, and the line format pinned to what this machine's etcd writes.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { appendFile, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Registry as MetricsRegistry } from 'prom-client';
import { ExternalWorkloadController } from '../../src/externalworkload/controller.js';
import {
  RefusalBursts,
  followRejectedConnections,
  parseRejectedConnection,
  type RejectedConnection,
} from '../../src/externalworkload/tls-refusals.js';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { eventually } from '../support/eventually.js';
import { startEtcd } from '../support/etcd.js';

const run = promisify(execFile);

const LINE =
  '{"level":"warn","ts":"2026-12-05T17:24:27.789Z","caller":"embed/config_logging.go:287","msg":"rejected connection","remote-addr":"127.0.0.1:44796","server-name":"","error":"tls: failed to verify client certificate: x509: certificate signed by unknown authority"}';

describe('external workloads: certificates etcd refuses', () => {
  it('reads etcd’s rejected-connection line, and nothing else', () => {
    assert.deepEqual(parseRejectedConnection(LINE), {
      remoteAddr: '127.0.0.1:44796',
      error:
        'tls: failed to verify client certificate: x509: certificate signed by unknown authority',
      ts: '2026-12-05T17:24:27.789Z',
    });
    assert.equal(
      parseRejectedConnection('{"level":"info","msg":"ready to serve client requests"}'),
      undefined,
    );
    assert.equal(parseRejectedConnection('panic: rejected connection (not JSON)'), undefined);
    assert.equal(parseRejectedConnection('{"msg":"rejected connections total"}'), undefined);
  });

  it('counts a client’s retried handshakes as one refusal', () => {
    const b = new RefusalBursts(5000);
    const r = (port: number, error = 'tls: bad'): RejectedConnection => ({
      remoteAddr: `127.0.0.1:${port}`,
      error,
      ts: '',
    });
    assert.equal(b.isNew(r(1), 0), true);
    assert.equal(b.isNew(r(2), 1000), false, 'the same client retrying');
    assert.equal(b.isNew(r(3), 4500), false, 'still retrying, 3.5 s later');
    assert.equal(b.isNew(r(4, 'tls: other'), 4600), true, 'another error is another client');
    assert.equal(b.isNew(r(5), 10_000), true, 'a pause longer than the burst: a new attempt');
  });

  it('follows a log from its end: earlier lines are not counted, partial lines wait', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cm-ew-tls-'));
    const file = join(dir, 'etcd.log');
    await writeFile(file, `${LINE}\n`);
    const seen: RejectedConnection[] = [];
    const ac = new AbortController();
    const following = followRejectedConnections(
      { file, intervalMs: 20, onRefusal: (r) => seen.push(r) },
      ac.signal,
    );
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const other = LINE.replace('127.0.0.1:44796', '127.0.0.9:1').replace('ts":"', 'ts":"x');
      await appendFile(file, other.slice(0, 50));
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(seen.length, 0, 'the old line and a half-written one are not counted');
      await appendFile(file, `${other.slice(50)}\n`);
      await eventually(() => {
        assert.deepEqual(
          seen.map((s) => s.remoteAddr),
          ['127.0.0.9:1'],
        );
      });
    } finally {
      ac.abort();
      await following;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('the apiserver logs and counts a client certificate of another CA that a real etcd refused', async () => {
    const mine = await startEtcd({ tls: true });
    const theirs = await startEtcd({ tls: true });
    const lines: string[] = [];
    const log = pino(
      { level: 'info' },
      new Writable({
        write(chunk: Buffer, _enc, done) {
          lines.push(chunk.toString());
          done();
        },
      }),
    );
    const backend = new MemoryBackend(sharedMemoryStore('ew-tls'));
    const metrics = new MetricsRegistry();
    const ctl = new ExternalWorkloadController({
      backend,
      cluster: { name: 'cluster1', id: 1 },
      log,
      metrics,
      etcdLogFile: mine.logFile,
    });
    const ac = new AbortController();
    const running = ctl.run(ac.signal);
    try {
      const tls = theirs.tls;
      const ca = mine.tls?.caFile;
      assert.ok(tls !== undefined && ca !== undefined, 'both etcds run with TLS');
      await new Promise((resolve) => setTimeout(resolve, 300));
      const r = await run(
        'etcdctl',
        [
          `--endpoints=${mine.clientUrl}`,
          `--cacert=${ca}`,
          `--cert=${tls.certFile}`,
          `--key=${tls.keyFile}`,
          '--dial-timeout=3s',
          '--command-timeout=4s',
          'get',
          'x',
        ],
        { env: { ...process.env, ETCDCTL_API: '3' } },
      ).then(
        () => 0,
        (err: unknown) => (err as { code?: number }).code ?? -1,
      );
      assert.notEqual(r, 0, 'etcdctl with the other CA’s certificate fails');
      await eventually(async () => {
        assert.deepEqual((await ctl.counts()).refused, { 'bad-certificate': 1 });
      });
      const text = await metrics.metrics();
      assert.match(
        text,
        /cilium_clustermesh_apiserver_external_workload_registrations_total\{outcome="refused",reason="bad-certificate"\} 1/,
      );
      const warn = lines.find((l) => l.includes('connection refused by etcd'));
      assert.ok(warn !== undefined, `the refusal is logged:\n${lines.join('')}`);
      assert.match(warn, /"remote":"127\.0\.0\.1:\d+"/);
      assert.match(warn, /certificate signed by unknown authority/);
      assert.equal((await backend.list('cilium/state/noderegister/v1/')).kvs.length, 0, 'no state');
    } finally {
      ac.abort();
      await running;
      await backend.close();
      await mine.destroy();
      await theirs.destroy();
    }
  });
});
