import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatClusterView, hintFor } from '../../src/localmesh/mesh-status.js';

void describe('mesh status: refused credentials explained with a hint', () => {
  it('each TLS refusal gets its own hint; expiry warnings under 30 days', () => {
    const cases: [string, RegExp][] = [
      [
        'etcd at https://cluster2.mesh.cilium.io:2379: TLS handshake failed: bad certificate (the server rejected the client certificate); the client certificate expired on 2026-01-01',
        /expired.*certs rotate --cluster cluster2/,
      ],
      [
        'TLS handshake failed: unable to verify the first certificate (the server certificate is not trusted by the configured CA)',
        /CA in the config does not match cluster2/,
      ],
      [
        'TLS handshake failed: bad certificate (the server rejected the client certificate); the client certificate (issuer CN=x) is not signed by the CA in trusted-ca-file (CN=y)',
        /cluster2's etcd rejected the client certificate/,
      ],
      ['key-file /x/cluster2.etcd-client.key: not found', /incomplete/],
      [
        'ListPrefix cilium/state: 7 PERMISSION_DENIED: etcdserver: permission denied',
        /refused the user/,
      ],
    ];
    for (const [status, hint] of cases)
      assert.match(hintFor(status, 'cluster2') ?? '', hint, status);

    const soon = new Date(Date.now() + 10 * 86_400_000);
    const out = formatClusterView({
      record: {
        version: 1,
        name: 'cluster1',
        id: 1,
        kvstore: 'https://cluster1.mesh.cilium.io:2379',
        etcdIP: '127.1.128.2',
        tls: true,
        configDir: '/x',
        agents: [{ node: 'n1', api: 'http://127.0.0.1:1' }],
        enabled: true,
      },
      configured: ['cluster2'],
      agents: [
        {
          node: 'n1',
          globalServices: 1,
          remotes: [
            {
              name: 'cluster2',
              connected: false,
              ready: false,
              status: 'key-file /x/cluster2.etcd-client.key: not found',
            },
          ],
        },
      ],
      certificates: [{ file: 'remote.crt', subject: 'remote', notAfter: soon, daysLeft: 9 }],
    });
    assert.match(
      out,
      /⚠️ {2}1\/1 nodes are not connected to all clusters \[min:0 \/ avg:0\.0 \/ max:0\]/,
    );
    assert.match(out, / {2}- cluster2: 1\/1 configured, 0\/1 connected/);
    assert.match(
      out,
      /❌ cluster1\/n1 is not connected to cluster cluster2: key-file .*not found\n💡 /,
    );
    assert.match(out, /⚠️ {2}certificate remote\.crt of cluster1 expires in 9 days/);
  });
});
