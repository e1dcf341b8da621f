/**
 * The connection checks of `clustermesh troubleshoot` against real etcd processes: a TLS
 * etcd with certificates from a test CA (subject, issuer, expiry, CA match), etcd auth
 * with a read-only user (the write probe is refused and writes nothing), a plaintext
 * etcd (reported, not failed) and a missing cluster config.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startEtcd as startProductEtcd, type EtcdServer } from '../../src/etcd/index.js';
import { parseEtcdConfig } from '../../src/kvstore/config.js';
import { checkConnection, WRITE_PROBE_KEY } from '../../src/troubleshoot/connection.js';
import type { Check } from '../../src/troubleshoot/check.js';
import { startEtcd } from '../support/etcd.js';
import { createCA, issueCert, loopbackServerCertOptions, writeTlsBundle } from '../support/tls.js';

const run = promisify(execFile);
const CLUSTER_CONFIG = JSON.stringify({
  id: 2,
  capabilities: { syncCanaries: true, maxConnectedClusters: 255 },
});

function byId(checks: readonly Check[]): Map<string, Check> {
  return new Map(checks.map((c) => [c.id, c]));
}

describe('troubleshoot connection checks (TLS etcd)', { timeout: 120_000 }, () => {
  let dir: string;
  let etcd: EtcdServer;
  let plain: EtcdServer;
  const files = {
    ca: '',
    rootCert: '',
    rootKey: '',
    roCert: '',
    roKey: '',
    shortCert: '',
    shortKey: '',
    otherCa: '',
  };

  const ctl = async (args: readonly string[]): Promise<string> =>
    (
      await run(
        'etcdctl',
        [
          `--endpoints=${etcd.clientUrl}`,
          `--cacert=${files.ca}`,
          `--cert=${files.rootCert}`,
          `--key=${files.rootKey}`,
          ...args,
        ],
        { env: { ...process.env, ETCDCTL_API: '3' } },
      )
    ).stdout;

  const configFile = async (
    name: string,
    endpoint: string,
    tls?: { ca: string; cert: string; key: string },
  ): Promise<string> => {
    const path = join(dir, `${name}.yaml`);
    const lines = [`endpoints:`, `  - ${endpoint}`];
    if (tls !== undefined) {
      lines.push(`trusted-ca-file: ${tls.ca}`, `cert-file: ${tls.cert}`, `key-file: ${tls.key}`);
    }
    await writeFile(path, `${lines.join('\n')}\n`);
    return path;
  };

  const check = async (path: string): Promise<Map<string, Check>> => {
    const { readFile } = await import('node:fs/promises');
    const cfg = parseEtcdConfig(await readFile(path, 'utf8'), path);
    const r = await checkConnection({
      cluster: 'cluster1',
      remote: 'cluster2',
      config: cfg,
      maxConnectedClusters: 255,
    });
    r.client?.close();
    return byId(r.checks);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-ts-tls-'));
    const ca = await createCA('mesh-ca', { validityDays: 365 });
    const other = await createCA('other-ca', { validityDays: 365 });
    const server = await writeTlsBundle(
      join(dir, 'server'),
      ca,
      await issueCert(ca, { ...loopbackServerCertOptions('etcd-server'), validityDays: 365 }),
      'server',
    );
    const root = await writeTlsBundle(
      join(dir, 'root'),
      ca,
      await issueCert(ca, { commonName: 'root', clientAuth: true, validityDays: 365 }),
      'client',
    );
    const ro = await writeTlsBundle(
      join(dir, 'ro'),
      ca,
      await issueCert(ca, { commonName: 'remote-cluster1', clientAuth: true, validityDays: 365 }),
      'client',
    );
    const short = await writeTlsBundle(
      join(dir, 'short'),
      ca,
      await issueCert(ca, { commonName: 'root', clientAuth: true, validityDays: 10 }),
      'client',
    );
    const otherBundle = await writeTlsBundle(join(dir, 'other'), other, root, 'client');
    Object.assign(files, {
      ca: server.caFile,
      rootCert: root.certFile,
      rootKey: root.keyFile,
      roCert: ro.certFile,
      roKey: ro.keyFile,
      shortCert: short.certFile,
      shortKey: short.keyFile,
      otherCa: otherBundle.caFile,
    });
    etcd = await startProductEtcd({
      name: 'ts-tls',
      tls: {
        caFile: server.caFile,
        serverCertFile: server.certFile,
        serverKeyFile: server.keyFile,
        clientCertFile: root.certFile,
        clientKeyFile: root.keyFile,
      },
    });
    plain = await startEtcd({ name: 'ts-plain' });
    await ctl(['put', 'cilium/cluster-config/cluster2', CLUSTER_CONFIG]);
  });

  after(async () => {
    await etcd.destroy();
    await plain.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('a TLS etcd sharing the CA: every step passes; version, cipher, subject, issuer, expiry are shown', async () => {
    const path = await configFile('good', etcd.clientUrl, {
      ca: files.ca,
      cert: files.rootCert,
      key: files.rootKey,
    });
    const c = await check(path);
    assert.deepEqual(
      [...c.keys()],
      [
        'connection.resolve',
        'connection.tcp',
        'connection.tls',
        'connection.etcd',
        'connection.auth',
        'connection.cluster-config',
      ],
    );
    const tls = c.get('connection.tls');
    assert.equal(tls?.status, 'ok', tls?.message);
    assert.match(tls.message, /^TLSv1\.[23] \S+; server CN=etcd-server \(DNS:localhost/);
    assert.match(tls.message, /issued by CN=mesh-ca, expires in 36[45] d; client CN=root/);
    assert.equal(c.get('connection.etcd')?.status, 'ok');
    assert.match(c.get('connection.etcd')?.message ?? '', /^etcd 3\.\d+\.\d+, cluster ID \d+/);
    // No etcd auth yet: anyone may write, which is worth a warning, not a failure.
    assert.equal(c.get('connection.auth')?.status, 'warn');
    assert.match(c.get('connection.cluster-config')?.message ?? '', /cluster ID 2/);
  });

  it('wrong CA: the TLS check fails with a CA-mismatch hint naming both CAs', async () => {
    const path = await configFile('wrong-ca', etcd.clientUrl, {
      ca: files.otherCa,
      cert: files.rootCert,
      key: files.rootKey,
    });
    const c = await check(path);
    const tls = c.get('connection.tls');
    assert.equal(tls?.status, 'fail', JSON.stringify(tls));
    assert.match(
      tls.message,
      /^CA mismatch at https:\/\/localhost:\d+: server certificate CN=etcd-server is issued by CN=mesh-ca, trusted-ca-file holds CN=other-ca/,
    );
    assert.match(tls.hint ?? '', /share a CA/);
    assert.equal(c.has('connection.etcd'), false, 'the chain stops at the failing step');
  });

  it('a client certificate expiring within 30 days is a warning', async () => {
    const path = await configFile('short', etcd.clientUrl, {
      ca: files.ca,
      cert: files.shortCert,
      key: files.shortKey,
    });
    const tls = (await check(path)).get('connection.tls');
    assert.equal(tls?.status, 'warn', JSON.stringify(tls));
    assert.match(tls.message, /expires in less than 30 days/);
    assert.match(tls.message, /client CN=root issued by CN=mesh-ca, expires in (9|10) d/);
  });

  it('etcd auth: a read-only user passes (the write probe is refused and writes nothing); a writer is warned', async () => {
    await ctl(['user', 'add', 'root', '--no-password']);
    await ctl(['user', 'grant-role', 'root', 'root']);
    await ctl(['role', 'add', 'cilium-remote']);
    await ctl(['role', 'grant-permission', 'cilium-remote', 'read', 'cilium/', '--prefix=true']);
    await ctl(['user', 'add', 'remote-cluster1', '--no-password']);
    await ctl(['user', 'grant-role', 'remote-cluster1', 'cilium-remote']);
    await ctl(['auth', 'enable']);
    try {
      const ro = await configFile('ro', etcd.clientUrl, {
        ca: files.ca,
        cert: files.roCert,
        key: files.roKey,
      });
      const c = await check(ro);
      const auth = c.get('connection.auth');
      assert.equal(auth?.status, 'ok', JSON.stringify(auth));
      assert.equal(auth.message, 'user remote-cluster1: reads allowed, writes refused (read-only)');
      assert.equal(c.get('connection.cluster-config')?.status, 'ok');
      // The probe wrote nothing, and a plain write of that user is refused too.
      assert.equal((await ctl(['get', WRITE_PROBE_KEY])).trim(), '');
      await assert.rejects(
        run('etcdctl', [
          `--endpoints=${etcd.clientUrl}`,
          `--cacert=${files.ca}`,
          `--cert=${files.roCert}`,
          `--key=${files.roKey}`,
          'put',
          'cilium/x',
          'y',
        ]),
        /permission denied/,
      );

      const writer = await configFile('rw', etcd.clientUrl, {
        ca: files.ca,
        cert: files.rootCert,
        key: files.rootKey,
      });
      const w = (await check(writer)).get('connection.auth');
      assert.equal(w?.status, 'warn', JSON.stringify(w));
      assert.match(w.message, /^user root: writes are allowed/);
      assert.equal((await ctl(['get', WRITE_PROBE_KEY])).trim(), '', 'not even for a writer');
    } finally {
      await ctl(['auth', 'disable']);
    }
  });

  it('plaintext etcd: reported as not encrypted, not failed; a missing cluster config fails', async () => {
    const path = await configFile('plain', plain.clientUrl);
    const c = await check(path);
    assert.equal(c.get('connection.tls')?.status, 'warn');
    assert.match(
      c.get('connection.tls')?.message ?? '',
      /^not encrypted: http:\/\/127\.0\.0\.1:\d+/,
    );
    assert.equal(c.get('connection.etcd')?.status, 'ok');
    const cfg = c.get('connection.cluster-config');
    assert.equal(cfg?.status, 'fail');
    assert.match(cfg.message, /remote cluster configuration required but not found/);
    assert.match(cfg.hint ?? '', /clustermesh-apiserver/);
  });
});
