import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  USER_ROLES,
  clusterUsers,
  readCertificateInfo,
  rotateClusterCerts,
  writeClusterCerts,
  type ClusterCertFiles,
} from '../../src/certs/index.js';
import { etcdAuthPlan } from '../../src/etcd/users.js';
import {
  applyHostAliases,
  parseHostAliases,
  withHostAlias,
  withoutHostAlias,
} from '../../src/kvstore/host-aliases.js';
import { isClusterMeshError, ErrorCode } from '../../src/lib/errors.js';

let dir: string;
let files: ClusterCertFiles;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'certs-unit-'));
  files = await writeClusterCerts(join(dir, 'c1'), {
    cluster: 'cluster1',
    addresses: ['127.1.128.2'],
  });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function x509(path: string): Promise<X509Certificate> {
  return new X509Certificate(await readFile(path));
}

void describe('src/certs: a cluster’s certificates', () => {
  it('the server certificate covers *.mesh.cilium.io, the cluster name, the Service and its addresses', async () => {
    const server = await x509(files.server.certFile);
    const ca = await x509(files.caFile);
    assert.ok(server.verify(ca.publicKey), 'server certificate signed by the cluster CA');
    assert.ok(server.checkIssued(ca), 'issued by the CA');
    for (const host of [
      'cluster1.mesh.cilium.io',
      'cluster7.mesh.cilium.io',
      'clustermesh-apiserver.kube-system.svc',
    ]) {
      assert.notEqual(server.checkHost(host), undefined, `server certificate covers ${host}`);
    }
    assert.equal(server.checkHost('mesh.cilium.io'), undefined, 'the bare domain is not covered');
    assert.equal(server.checkIP('127.1.128.2'), '127.1.128.2');
    assert.equal(server.checkIP('127.0.0.1'), '127.0.0.1');
    assert.equal(server.checkIP('127.2.128.2'), undefined, 'another cluster’s address is not');
    const info = await readCertificateInfo(files.server.certFile);
    assert.ok(info.dnsNames.includes('*.mesh.cilium.io'), info.dnsNames.join(','));
  });

  it('one client certificate per etcd user, the CN being the user, keys 0600', async () => {
    const ca = await x509(files.caFile);
    const users = clusterUsers('cluster1');
    assert.deepEqual(
      USER_ROLES.map((r) => users[r]),
      ['admin-cluster1', 'remote', 'local-cluster1', 'externalworkload'],
    );
    for (const role of USER_ROLES) {
      const c = await x509(files.clients[role].certFile);
      assert.equal(c.subject, `CN=${users[role]}`);
      assert.ok(c.verify(ca.publicKey), `${role} certificate signed by the CA`);
      assert.equal((await stat(files.clients[role].keyFile)).mode & 0o777, 0o600);
      assert.equal((await stat(files.clients[role].certFile)).mode & 0o777, 0o644);
    }
    assert.equal((await stat(files.caKeyFile)).mode & 0o777, 0o600);
    assert.equal((await stat(files.server.keyFile)).mode & 0o777, 0o600);
  });

  it('validity defaults to 365 days', async () => {
    const info = await readCertificateInfo(files.clients.remote.certFile);
    const days = (info.notAfter.getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 364 && days <= 365, `validity ${days} days`);
  });

  it('rotation issues new leaves from the same CA; enabling again keeps the CA', async () => {
    const caBefore = await readFile(files.caFile, 'utf8');
    const remoteBefore = await readFile(files.clients.remote.certFile, 'utf8');
    const serverBefore = await readFile(files.server.certFile, 'utf8');
    await rotateClusterCerts(files.dir, { cluster: 'cluster1', addresses: ['127.1.128.2'] });
    assert.equal(await readFile(files.caFile, 'utf8'), caBefore, 'CA unchanged');
    assert.notEqual(await readFile(files.clients.remote.certFile, 'utf8'), remoteBefore);
    assert.notEqual(await readFile(files.server.certFile, 'utf8'), serverBefore);
    const ca = await x509(files.caFile);
    assert.ok(
      (await x509(files.clients.remote.certFile)).verify(ca.publicKey),
      'rotated cert signed by the same CA',
    );
    await writeClusterCerts(files.dir, { cluster: 'cluster1' });
    assert.equal(await readFile(files.caFile, 'utf8'), caBefore, 'enable again keeps the CA');
  });

  it('rotation without a CA is one line naming the fix', async () => {
    await assert.rejects(
      rotateClusterCerts(join(dir, 'none'), { cluster: 'cluster9' }),
      (err: unknown) =>
        isClusterMeshError(err, ErrorCode.ConfigNotFound) && /mesh enable/.test(err.message),
    );
  });

  it('a missing certificate file is a one-line error', async () => {
    await assert.rejects(
      readCertificateInfo(join(dir, 'missing.crt')),
      (err: unknown) =>
        isClusterMeshError(err, ErrorCode.ConfigNotFound) && /not found/.test(err.message),
    );
  });
});

void describe('host aliases (the seeds’ hostAliases)', () => {
  it('maps the endpoint to the IP and keeps the name for TLS', () => {
    const r = applyHostAliases(
      ['https://cluster2.mesh.cilium.io:2379'],
      new Map([['cluster2.mesh.cilium.io', '127.2.128.2']]),
    );
    assert.deepEqual(r, {
      endpoints: ['https://127.2.128.2:2379'],
      serverName: 'cluster2.mesh.cilium.io',
    });
    const none = applyHostAliases(['https://cluster3.mesh.cilium.io:2379'], new Map());
    assert.deepEqual(none, {
      endpoints: ['https://cluster3.mesh.cilium.io:2379'],
      serverName: undefined,
    });
  });

  it('adds, replaces and removes names', () => {
    let a = withHostAlias([], 'cluster2.mesh.cilium.io', '127.2.128.2');
    a = withHostAlias(a, 'cluster3.mesh.cilium.io', '127.3.128.2');
    a = withHostAlias(a, 'cluster2.mesh.cilium.io', '127.9.128.2');
    assert.deepEqual(a, [
      { ip: '127.3.128.2', hostnames: ['cluster3.mesh.cilium.io'] },
      { ip: '127.9.128.2', hostnames: ['cluster2.mesh.cilium.io'] },
    ]);
    assert.deepEqual(withoutHostAlias(a, 'cluster3.mesh.cilium.io'), [
      { ip: '127.9.128.2', hostnames: ['cluster2.mesh.cilium.io'] },
    ]);
  });

  it('a bad file is one line naming the field', () => {
    assert.throws(
      () => parseHostAliases('- ip: nope\n  hostnames: [a]\n', '/x/hostaliases.yaml'),
      (err: unknown) =>
        isClusterMeshError(err, ErrorCode.InvalidConfig) &&
        /0\.ip: not an IP address/.test(err.message),
    );
  });
});

void describe('etcd users and roles (etcdinit)', () => {
  it('remote reads exactly what another cluster reads; admin is root', () => {
    const plan = etcdAuthPlan('cluster1');
    const remote = plan.roles.find((r) => r.name === 'remote');
    assert.deepEqual(remote?.permissions, [
      { perm: 'Read', prefix: 'cilium/.heartbeat' },
      { perm: 'Read', prefix: 'cilium/state/' },
      { perm: 'Read', key: 'cilium/cluster-config/cluster1' },
      { perm: 'Read', prefix: 'cilium/synced/cluster1/' },
    ]);
    assert.deepEqual(
      plan.users.map((u) => `${u.name}:${u.role}`),
      [
        'root:root',
        'admin-cluster1:root',
        'externalworkload:externalworkload',
        'local-cluster1:local',
        'remote:remote',
      ],
    );
  });
});
