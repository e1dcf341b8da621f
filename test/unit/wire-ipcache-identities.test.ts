/**
 * ipcache entries and identities against Cilium's fixtures
 * (test/fixtures/cilium/{ipcache,identities}.json): what the reference apiserver
 * writes for CiliumEndpoints and CiliumIdentities, byte for byte, and the remote-data
 * validators accepting and rejecting the same entries with the same reasons.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  ipcacheEntriesFromEndpoint,
  labelStringFromCiliumIdentity,
} from '../../src/convert/cilium.js';
import { IPOwners } from '../../src/ipcache/owners.js';
import {
  decodeIdentity,
  decodeIPIdentityPair,
  encodeIPIdentityPair,
  ipIdentityPairKeyName,
  IPCachePrefix,
  parseIdentityKeySuffix,
  validateRemoteIdentity,
  validateRemoteIPCacheIdentity,
  type IPIdentityPair,
} from '../../src/keyspace/index.js';
import { ClusterMeshError } from '../../src/lib/errors.js';
import type { CiliumEndpoint, CiliumIdentity } from '../../src/registry/types.js';

const load = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/cilium/${name}`, import.meta.url), 'utf8'));

interface IPCacheFixture {
  readonly endpoints: readonly { object: CiliumEndpoint; entries: Record<string, string> }[];
  readonly prefixString: readonly { IP: string; Mask: string | null; key: string }[];
  readonly identityValidator: { clusterId: number; ok: number[]; error: number[] };
  readonly remoteClusterRun: readonly {
    key: string;
    value: string;
    id: number;
    clusterId: number;
  }[];
}

interface IdentitiesFixture {
  readonly identities: readonly {
    name: string;
    securityLabels: Record<string, string>;
    key: string;
    value: string;
  }[];
  readonly clusterIdValidator: { clusterId: number; ok: number[]; error: number[] };
  readonly clusterNameValidator: {
    cluster: string;
    id: number;
    cases: readonly { value: string; kind: 'upsert' | 'delete'; error?: string }[];
  };
  readonly remoteClusterRun: readonly { id: string; value: string; clusterId: number }[];
}

const ip = load('ipcache.json') as IPCacheFixture;
const ids = load('identities.json') as IdentitiesFixture;

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ClusterMeshError, String(err));
    return err.message;
  }
  assert.fail('accepted');
}

const keyOf = (e: IPIdentityPair) => `${IPCachePrefix}/${ipIdentityPairKeyName(e)}`;

void describe('wire: ipcache (ciliumendpoints.txtar)', () => {
  for (const ep of ip.endpoints) {
    it(`${ep.object.metadata.name} gives one entry per address, byte for byte`, () => {
      const entries = ipcacheEntriesFromEndpoint(ep.object);
      assert.deepEqual(
        Object.fromEntries(entries.map((e) => [keyOf(e), encodeIPIdentityPair(e)])),
        ep.entries,
      );
      for (const [key, value] of Object.entries(ep.entries)) {
        const suffix = key.slice(`${IPCachePrefix}/`.length);
        assert.equal(encodeIPIdentityPair(decodeIPIdentityPair(suffix, value)), value);
      }
    });
  }

  const cep = ip.endpoints[0]?.object;
  assert.ok(cep !== undefined, 'cep !== undefined');

  it('writes an endpoint without identity with ID 0, and a non-IP node as ""', () => {
    const { identity: _i, ...status } = cep.status;
    const noId: CiliumEndpoint = {
      ...cep,
      status: {
        ...status,
        networking: { addressing: [{ ipv4: '10.244.1.79' }], node: 'kind-worker' },
      },
    };
    assert.deepEqual(ipcacheEntriesFromEndpoint(noId).map(encodeIPIdentityPair), [
      '{"IP":"10.244.1.79","Mask":null,"HostIP":"","ID":0,"Key":0,"Metadata":"","K8sNamespace":"foo","K8sPodName":"cep-001"}',
    ]);
  });

  it('writes no named ports, as the reference apiserver does not', () => {
    const named: CiliumEndpoint = {
      ...cep,
      status: { ...cep.status, 'named-ports': [{ name: 'http', port: 80, protocol: 'TCP' }] },
    };
    for (const e of ipcacheEntriesFromEndpoint(named)) {
      assert.equal(encodeIPIdentityPair(e).includes('NamedPorts'), false);
    }
  });

  it('never leaves IPOwners half-updated by an entry that cannot be encoded', () => {
    const owners = new IPOwners();
    const good = ipcacheEntriesFromEndpoint(cep);
    owners.update('foo/cep-001', good);
    const bad = [good[0], { ...good[1], HostIP: 'not-an-ip' }] as IPIdentityPair[];
    assert.throws(() => owners.update('foo/cep-001', [{ ...good[0], IP: 'x' } as IPIdentityPair]));
    assert.throws(() => owners.update('foo/cep-001', bad));
    // Still the entries of the last successful update.
    for (const e of good) assert.deepEqual(owners.winner(e.IP), e);
  });

  for (const p of ip.prefixString) {
    it(`PrefixString ${p.IP} mask ${p.Mask ?? 'null'} → ${p.key}`, () => {
      assert.equal(ipIdentityPairKeyName({ IP: p.IP, Mask: p.Mask }), p.key);
    });
  }

  it('rejects a value whose PrefixString differs from its key', () => {
    assert.match(
      message(() => decodeIPIdentityPair('10.0.0.2', '{"IP":"10.0.0.1","ID":5}')),
      /IP address does not match key: expected 10\.0\.0\.2, got 10\.0\.0\.1$/,
    );
  });

  it('identity validator of cluster 5', () => {
    const ref = { clusterId: ip.identityValidator.clusterId };
    for (const id of ip.identityValidator.ok) validateRemoteIPCacheIdentity(id, ref);
    for (const id of ip.identityValidator.error) {
      assert.equal(
        message(() => {
          validateRemoteIPCacheIdentity(id, ref);
        }),
        `ID ${id} does not belong to the allocation range of cluster ID 5`,
      );
    }
  });

  for (const r of ip.remoteClusterRun) {
    it(`reads the hand-written remote entry ${r.value}`, () => {
      const pair = decodeIPIdentityPair(r.key, r.value);
      assert.equal(pair.ID, r.id);
      assert.equal(pair.HostIP, '');
      validateRemoteIPCacheIdentity(pair.ID, { clusterId: r.clusterId });
    });
  }
});

void describe('wire: identities (ciliumidentitites.txtar)', () => {
  for (const i of ids.identities) {
    it(`identity ${i.name} → ${i.value}`, () => {
      const ci: CiliumIdentity = {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumIdentity',
        metadata: { name: i.name },
        'security-labels': i.securityLabels,
      };
      assert.equal(labelStringFromCiliumIdentity(ci), i.value);
      assert.equal(i.key, `cilium/state/identities/v1/id/${i.name}`);
    });
  }

  it('cluster-ID validator of cluster 5 (upserts and deletes)', () => {
    const v = ids.clusterIdValidator;
    const labels = 'k8s:io.cilium.k8s.policy.cluster=foo;';
    for (const kind of ['upsert', 'delete'] as const) {
      for (const id of v.ok) {
        validateRemoteIdentity(kind, decodeIdentity(String(id), labels), {
          clusterName: 'foo',
          clusterId: v.clusterId,
        });
      }
      for (const id of v.error) {
        assert.equal(
          message(() => {
            validateRemoteIdentity(kind, decodeIdentity(String(id), labels), {
              clusterName: 'foo',
              clusterId: v.clusterId,
            });
          }),
          `ID ${id} does not belong to the allocation range of cluster ID 5`,
        );
      }
    }
  });

  for (const c of ids.clusterNameValidator.cases) {
    it(`cluster-name validator: ${c.kind} ${JSON.stringify(c.value)} → ${c.error ?? 'OK'}`, () => {
      const v = ids.clusterNameValidator;
      // The reference runs the name validator alone on ID 100; here it is combined
      // with the range check, so the same identity index is placed in cluster 1's range.
      const run = () => {
        validateRemoteIdentity(c.kind, decodeIdentity(String(65536 + v.id), c.value), {
          clusterName: v.cluster,
          clusterId: 1,
        });
      };
      if (c.error === undefined) run();
      else assert.equal(message(run), c.error);
    });
  }

  for (const r of ids.remoteClusterRun) {
    it(`reads the remote identity id/${r.id} of cluster ${r.clusterId}`, () => {
      const identity = decodeIdentity(r.id, r.value);
      validateRemoteIdentity('upsert', identity, { clusterName: 'foo', clusterId: r.clusterId });
      assert.deepEqual(
        identity.labels.map((l) => `${l.source}:${l.key}=${l.value}`),
        ['unspec:key1=value1', 'unspec:key2=value2', 'k8s:io.cilium.k8s.policy.cluster=foo'],
      );
    });
  }

  it('parses identity keys with ParseUint: leading zeros are accepted', () => {
    assert.deepEqual(parseIdentityKeySuffix('id/0123'), { kind: 'id', id: 123 });
    assert.deepEqual(parseIdentityKeySuffix('id/4294967296'), {
      kind: 'other',
      suffix: 'id/4294967296',
    });
    assert.deepEqual(parseIdentityKeySuffix('id/-1'), { kind: 'other', suffix: 'id/-1' });
  });
});
