/**
 * The certificates a remote's config names, read for `status --verbose`: a short-lived
 * client certificate and a CA bundle (two CAs, as during a CA rotation), their expiry dates,
 * the verbose line and the warnings under 30 days (also without --verbose), and an expired one.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createCA, issueCert } from '../../src/certs/index.js';
import { readRemoteCertificates } from '../../src/clustermesh/remote-certs.js';
import type { RemoteClusterStatus } from '../../src/clustermesh/status.js';
import { formatClusterMeshStatus } from '../../src/clustermesh/status-text.js';

const DAY = 86_400_000;

function remote(certs: RemoteClusterStatus['certificates']): RemoteClusterStatus {
  return {
    name: 'c2',
    connected: true,
    ready: true,
    status: 'etcd: 1/1 connected',
    'num-nodes': 1,
    'num-endpoints': 0,
    'num-identities': 0,
    'num-shared-services': 0,
    'num-failures': 0,
    synced: { nodes: true, endpoints: true, identities: true, services: true },
    ...(certs === undefined ? {} : { certificates: certs }),
  };
}

describe('remote certificates in the agent status', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'remote-certs-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the cert-file and every CA of trusted-ca-file with their expiry', async () => {
    const oldCa = await createCA('old-ca', { validityDays: 400 });
    const newCa = await createCA('new-ca', { validityDays: 3650 });
    const now = Date.now();
    const leaf = await issueCert(newCa, {
      commonName: 'remote',
      clientAuth: true,
      notAfter: new Date(now + 5 * DAY + 60_000),
    });
    await writeFile(join(dir, 'c2.crt'), leaf.cert);
    await writeFile(join(dir, 'c2.key'), leaf.key);
    await writeFile(join(dir, 'c2-ca.crt'), oldCa.cert + newCa.cert);
    await writeFile(
      join(dir, 'c2'),
      'endpoints:\n  - https://c2.mesh.cilium.io:2379\ntrusted-ca-file: c2-ca.crt\ncert-file: c2.crt\nkey-file: c2.key\n',
    );
    const certs = await readRemoteCertificates(join(dir, 'c2'));
    assert.deepEqual(
      certs.map((c) => `${c.file} ${c.subject}`),
      ['cert-file remote', 'trusted-ca-file old-ca', 'trusted-ca-file new-ca'],
    );
    const leafAfter = Date.parse(certs[0]?.['not-after'] ?? '');
    // X.509 keeps whole seconds.
    assert.ok(Math.abs(leafAfter - (now + 5 * DAY + 60_000)) < 2000, `${certs[0]?.['not-after']}`);

    const at = new Date(now);
    const verbose = formatClusterMeshStatus(
      { clusters: [remote(certs)] },
      { verbose: true, now: at },
    );
    const line = verbose.find((l) => l.includes('certificates:'));
    assert.match(
      line ?? '',
      /^ {3}└ {2}certificates: cert-file CN=remote expires \d{4}-\d\d-\d\d \(5 days\), trusted-ca-file CN=old-ca expires \d{4}-\d\d-\d\d \((399|400) days\), trusted-ca-file CN=new-ca expires/,
    );
    const warnings = verbose.filter((l) => l.includes('⚠️'));
    assert.deepEqual(warnings.length, 1, verbose.join('\n'));
    assert.match(
      warnings[0] ?? '',
      /^ {3}⚠️ {2}c2: certificate cert-file \(CN=remote\) expires in 5 days \(\d{4}-\d\d-\d\d\): renew with "clustermesh certs rotate --cluster c2"$/,
    );
    // Without --verbose a ready cluster shows only the warning.
    const plain = formatClusterMeshStatus({ clusters: [remote(certs)] }, { now: at });
    assert.deepEqual(plain.slice(1), warnings);
    // Six days later it has expired.
    const later = formatClusterMeshStatus(
      { clusters: [remote(certs)] },
      { now: new Date(now + 6 * DAY) },
    );
    assert.match(later.join('\n'), /❌ {2}c2: certificate cert-file \(CN=remote\) expired on /);
  });

  it('a plaintext remote, a missing file or garbage shows no certificates', async () => {
    await writeFile(join(dir, 'plain'), 'endpoints:\n  - http://127.0.0.1:2379\n');
    assert.deepEqual(await readRemoteCertificates(join(dir, 'plain')), []);
    assert.deepEqual(await readRemoteCertificates(join(dir, 'missing')), []);
    await writeFile(join(dir, 'bad.crt'), 'garbage');
    await writeFile(
      join(dir, 'bad'),
      'endpoints:\n  - https://c3.mesh.cilium.io:2379\ntrusted-ca-file: bad.crt\n',
    );
    assert.deepEqual(await readRemoteCertificates(join(dir, 'bad')), []);
    const none = formatClusterMeshStatus({ clusters: [remote(undefined)] }, { verbose: true });
    assert.ok(!none.some((l) => l.includes('certificates')), none.join('\n'));
  });
});
