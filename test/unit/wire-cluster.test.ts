/**
 * Cluster configs, cluster name/ID rules, service exports and the status text against
 * Cilium's fixtures (test/fixtures/cilium/{cluster,serviceexports,status}.json).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { formatClusterMeshStatus } from '../../src/clustermesh/status-text.js';
import type { ClusterMeshStatus } from '../../src/clustermesh/status.js';
import {
  apiserverClusterConfig,
  clusterIdentityRange,
  clusterNameProblem,
  decodeClusterConfig,
  decodeMCSAPIServiceSpec,
  encodeClusterConfig,
  encodeMCSAPIServiceSpec,
  identityClusterId,
  kvstoremeshClusterConfig,
  serviceExportKeyName,
  validateClusterInfo,
  validateRemoteClusterConfig,
  type MaxConnectedClusters,
  type MCSAPIServiceSpec,
} from '../../src/keyspace/index.js';

const load = (name: string): unknown =>
  JSON.parse(readFileSync(new URL(`../fixtures/cilium/${name}`, import.meta.url), 'utf8'));

interface ClusterFixture {
  apiserverConfig: { id: number; mcs: boolean; value: string }[];
  kvstoremeshConfig: { src: string; dst: string }[];
  validateRemoteConfig: { config: string; local: MaxConnectedClusters; error?: string }[];
  clusterNames: { ok: string[]; error: [string, string][] };
  clusterInfo: { id: number; name: string; mcc: number; error?: string }[];
  identityClusterId: [number, number][];
  identityRanges: { clusterId: number; mcc: MaxConnectedClusters; min: number; max: number }[];
}

interface ExportsFixture {
  roundTrip: { spec: MCSAPIServiceSpec; key: string };
  validate: { spec: Record<string, unknown>; error?: string }[];
  validators: { expectedCluster?: string; key?: string; error?: string }[];
}

const cl = load('cluster.json') as ClusterFixture;
const ex = load('serviceexports.json') as ExportsFixture;
const st = load('status.json') as { status: ClusterMeshStatus; text: string[] };

function message(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    return (err as Error).message;
  }
  assert.fail('accepted');
}

void describe('wire: cluster config (clusterconfig.txtar, kvstoremesh_test.go)', () => {
  for (const c of cl.apiserverConfig) {
    it(`apiserver of cluster ${c.id}, MCS ${c.mcs} → ${c.value}`, () => {
      const config = apiserverClusterConfig({
        id: c.id,
        maxConnectedClusters: 255,
        serviceExportsEnabled: c.mcs,
      });
      assert.equal(encodeClusterConfig(config), c.value);
      assert.equal(encodeClusterConfig(decodeClusterConfig('c', c.value)), c.value);
    });
  }
  for (const c of cl.kvstoremeshConfig) {
    it(`KVStoreMesh mirrors ${c.src} as ${c.dst}`, () => {
      assert.equal(
        encodeClusterConfig(kvstoremeshClusterConfig(decodeClusterConfig('foo', c.src))),
        c.dst,
      );
    });
  }
  for (const c of cl.validateRemoteConfig) {
    it(`ValidateRemoteConfig ${c.config} @${c.local} → ${c.error ?? 'OK'}`, () => {
      const run = () => {
        validateRemoteClusterConfig(decodeClusterConfig('foo', c.config), {
          maxConnectedClusters: c.local,
        });
      };
      if (c.error === undefined) run();
      else assert.equal(message(run), c.error);
    });
  }
});

void describe('wire: cluster name and ID rules', () => {
  it('ValidateClusterName', () => {
    for (const name of cl.clusterNames.ok) assert.equal(clusterNameProblem(name), null, name);
    for (const [name, problem] of cl.clusterNames.error) {
      assert.equal(clusterNameProblem(name), problem, name);
    }
  });
  for (const c of cl.clusterInfo) {
    it(`ClusterInfo ${c.id}/${c.name}/${c.mcc} → ${c.error ?? 'OK'}`, () => {
      const run = () => {
        validateClusterInfo({ id: c.id, name: c.name, maxConnectedClusters: c.mcc });
      };
      if (c.error === undefined) run();
      else assert.equal(message(run), c.error);
    });
  }
  it('numeric identity cluster IDs and allocation ranges', () => {
    for (const [id, cid] of cl.identityClusterId)
      assert.equal(identityClusterId(id), cid, String(id));
    for (const r of cl.identityRanges) {
      assert.deepEqual(clusterIdentityRange(r.clusterId, r.mcc), { min: r.min, max: r.max });
    }
  });
});

void describe('wire: MCS-API service exports (mcsapiservicespec_test.go)', () => {
  it('round-trips the reference spec under its key', () => {
    const { spec, key } = ex.roundTrip;
    assert.equal(serviceExportKeyName(spec), key);
    assert.deepEqual(decodeMCSAPIServiceSpec(key, encodeMCSAPIServiceSpec(spec)), spec);
  });
  for (const v of ex.validate) {
    it(`validate ${JSON.stringify(v.spec)} → ${v.error ?? 'OK'}`, () => {
      const run = () => decodeMCSAPIServiceSpec('foo/bar/qux', JSON.stringify(v.spec));
      if (v.error === undefined) run();
      else
        assert.match(
          message(run),
          new RegExp(`: ${v.error.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`),
        );
    });
  }
  const minimal = ex.validate[1]?.spec;
  for (const v of ex.validators) {
    it(`validators key=${v.key ?? '-'} cluster=${v.expectedCluster ?? '-'} → ${v.error ?? 'OK'}`, () => {
      const run = () =>
        decodeMCSAPIServiceSpec(`foo/${v.key ?? 'bar/qux'}`, JSON.stringify(minimal), {
          ...(v.expectedCluster === undefined ? {} : { expectedCluster: v.expectedCluster }),
        });
      if (v.error === undefined) run();
      else assert.match(message(run), new RegExp(`: ${v.error}$`));
    });
  }
  it('reads a port without a number as port 0, as Go does', () => {
    const value = JSON.stringify({ ...minimal, ports: [{ name: 'http', protocol: 'TCP' }] });
    assert.deepEqual(decodeMCSAPIServiceSpec('foo/bar/qux', value).ports, [
      { name: 'http', protocol: 'TCP', port: 0 },
    ]);
  });
});

void describe('wire: status text (troubleshooting_clustermesh.rst)', () => {
  it('prints the documented example line for line', () => {
    assert.deepEqual(formatClusterMeshStatus(st.status, { verbose: true }), st.text);
  });
});
