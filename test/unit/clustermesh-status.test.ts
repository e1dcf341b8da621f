import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterIdsManager } from '../../src/clustermesh/idsmgr.js';
import {
  clusterMeshStatusJson,
  type ClusterMeshStatus,
  type RemoteClusterStatus,
} from '../../src/clustermesh/status.js';
import { formatClusterMeshStatus, goDuration } from '../../src/clustermesh/status-text.js';
import { ClusterMeshError, ErrorCode } from '../../src/lib/errors.js';

describe('ClusterIdsManager', () => {
  it('reserves, refuses duplicates, 0 and the local ID, and releases', () => {
    const m = new ClusterIdsManager(1);
    assert.throws(() => {
      m.reserve('c2', 0);
    }, /^ClusterMeshError: clusterID 0 is reserved$/);
    assert.throws(
      () => {
        m.reserve('c2', 1);
      },
      (err: unknown) =>
        err instanceof ClusterMeshError &&
        err.code === ErrorCode.InvalidConfig &&
        err.message === 'clusterID 1 is assigned to the local cluster',
    );
    m.reserve('c2', 2);
    m.reserve('c2', 2); // idempotent
    assert.throws(() => {
      m.reserve('c3', 2);
    }, /clusterID 2 is already used/);
    assert.equal(m.holderOf(2), 'c2');
    assert.equal(m.idOf('c3'), undefined);

    // Moving to another ID frees the old one only once the new one is granted.
    m.reserve('c3', 3);
    assert.throws(() => {
      m.reserve('c2', 3);
    }, /clusterID 3 is already used/);
    assert.equal(m.idOf('c2'), 2);
    m.reserve('c2', 4);
    assert.equal(m.holderOf(2), undefined);
    m.reserve('c3', 2);

    m.release('c3');
    m.release('c3');
    assert.equal(m.holderOf(2), undefined);
    m.reserve('c5', 2);
  });
});

function cluster(over: Partial<RemoteClusterStatus> & { name: string }): RemoteClusterStatus {
  return {
    connected: true,
    ready: true,
    status: 'etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: https://c:2379, ID: 1a',
    config: {
      required: true,
      retrieved: true,
      'cluster-id': 2,
      kvstoremesh: false,
      'sync-canaries': true,
    },
    'num-nodes': 3,
    'num-endpoints': 10,
    'num-identities': 4,
    'num-shared-services': 1,
    'num-failures': 0,
    synced: { nodes: true, endpoints: true, identities: true, services: true },
    ...over,
  };
}

describe('status text', () => {
  const now = new Date('2025-01-01T12:00:00Z');
  const status: ClusterMeshStatus = {
    clusters: [
      cluster({ name: 'c2' }),
      cluster({
        name: 'c3',
        connected: false,
        ready: false,
        status: 'clusterID 2 is already used',
        'num-nodes': 0,
        'num-endpoints': 0,
        'num-identities': 0,
        'num-shared-services': 0,
        'num-failures': 4,
        'last-failure': '2025-01-01T11:59:48.000Z',
        config: {
          required: true,
          retrieved: false,
          'cluster-id': 0,
          kvstoremesh: false,
          'sync-canaries': false,
        },
        synced: { nodes: false, endpoints: false, identities: false, services: false },
      }),
    ],
    'num-global-services': 5,
  };

  it('prints only non-ready clusters by default', () => {
    assert.deepEqual(formatClusterMeshStatus(status, { now }), [
      'ClusterMesh:   1/2 remote clusters ready, 5 global-services',
      '   c3: not-ready, 0 nodes, 0 endpoints, 0 identities, 0 services, 0 MCS-API service exports, 4 reconnections (last: 12s ago)',
      '   └  clusterID 2 is already used',
      '   └  remote configuration: expected=true, retrieved=false',
      '   └  synchronization status: nodes=false, endpoints=false, identities=false, services=false',
    ]);
  });

  it('prints every cluster when verbose, with service exports where present', () => {
    const withExports: ClusterMeshStatus = {
      clusters: [
        cluster({
          name: 'c2',
          config: {
            required: true,
            retrieved: true,
            'cluster-id': 2,
            kvstoremesh: true,
            'sync-canaries': true,
          },
          'num-service-exports': 2,
          synced: {
            nodes: true,
            endpoints: true,
            identities: true,
            services: true,
            'service-exports': true,
          },
        }),
      ],
    };
    const { config: _c, ...noConfig } = cluster({ name: 'c9', ready: false });
    const lines = formatClusterMeshStatus(
      { clusters: [...withExports.clusters, noConfig] },
      { now, verbose: true, kind: 'kvstoremesh' },
    );
    assert.deepEqual(lines, [
      'KVStoreMesh:   1/2 remote clusters ready',
      '   c2: ready, 3 nodes, 10 endpoints, 4 identities, 1 services, 2 MCS-API service exports, 0 reconnections (last: never)',
      '   └  etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: https://c:2379, ID: 1a',
      '   └  remote configuration: expected=true, retrieved=true, cluster-id=2, kvstoremesh=true, sync-canaries=true, service-exports=unsupported',
      '   └  synchronization status: nodes=true, endpoints=true, identities=true, services=true, service-exports=true',
      '   c9: not-ready, 3 nodes, 10 endpoints, 4 identities, 1 services, 0 MCS-API service exports, 0 reconnections (last: never)',
      '   └  etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: https://c:2379, ID: 1a',
      '   └  remote configuration: expected=unknown, retrieved=unknown',
      '   └  synchronization status: nodes=true, endpoints=true, identities=true, services=true',
    ]);
    // Brief by default for KVStoreMesh: a ready cluster is its first line only.
    assert.deepEqual(formatClusterMeshStatus(withExports, { now, kind: 'kvstoremesh' }), [
      'KVStoreMesh:   1/1 remote clusters ready',
      '   c2: ready, 3 nodes, 10 endpoints, 4 identities, 1 services, 2 MCS-API service exports, 0 reconnections (last: never)',
    ]);
  });

  it('prints service-exports= from the config once retrieved (1.17+ format)', () => {
    const text = (enabled: boolean | undefined) => {
      const base = cluster({ name: 'c2' });
      const cfg = {
        required: true,
        retrieved: true,
        'cluster-id': 2,
        kvstoremesh: false,
        'sync-canaries': true,
        ...(enabled === undefined ? {} : { 'service-exports-enabled': enabled }),
      };
      return formatClusterMeshStatus(
        { clusters: [{ ...base, config: cfg }] },
        { now, verbose: true },
      )[3];
    };
    assert.match(text(true) ?? '', /, service-exports=enabled$/);
    assert.match(text(false) ?? '', /, service-exports=disabled$/);
    assert.match(text(undefined) ?? '', /, service-exports=unsupported$/);
  });

  it('writes the reference JSON: omitempty everywhere except last-failure', () => {
    const json = clusterMeshStatusJson({
      clusters: [
        cluster({
          name: 'c3',
          connected: true,
          ready: false,
          'num-nodes': 0,
          config: {
            required: true,
            retrieved: false,
            'cluster-id': 0,
            kvstoremesh: false,
            'sync-canaries': false,
          },
          synced: { nodes: false, endpoints: true, identities: false, services: false },
        }),
      ],
    });
    assert.equal(
      JSON.stringify(json),
      '{"clusters":[{"name":"c3","connected":true,"status":"etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: https://c:2379, ID: 1a",' +
        '"config":{"required":true},"num-endpoints":10,"num-identities":4,"num-shared-services":1,' +
        '"last-failure":"0001-01-01T00:00:00.000Z","synced":{"endpoints":true}}]}',
    );
    const failed = clusterMeshStatusJson({
      clusters: [
        cluster({
          name: 'c2',
          'last-failure': '2025-01-01T11:59:48.000Z',
          config: {
            required: true,
            retrieved: true,
            'cluster-id': 2,
            kvstoremesh: false,
            'sync-canaries': true,
            'service-exports-enabled': false,
          },
        }),
      ],
      'num-global-services': 2,
    });
    const [c] = failed.clusters as (Record<string, unknown> | undefined)[];
    assert.ok(c !== undefined, 'c !== undefined');
    assert.equal(c['last-failure'], '2025-01-01T11:59:48.000Z');
    // A pointer in the reference: false is written.
    assert.deepEqual(c.config, {
      'cluster-id': 2,
      required: true,
      retrieved: true,
      'service-exports-enabled': false,
      'sync-canaries': true,
    });
    assert.equal(failed['num-global-services'], 2);
  });

  it('formats the last failure like Go Duration.String, truncated to seconds', () => {
    const cases: [number, string][] = [
      [0, '0s'],
      [999, '0s'],
      [5_000, '5s'],
      [90_000, '1m30s'],
      [120_000, '2m0s'],
      [3_600_000, '1h0m0s'],
      [3_725_000, '1h2m5s'],
      [100 * 3_600_000, '100h0m0s'],
      [-5_000, '-5s'],
    ];
    for (const [ms, want] of cases) assert.equal(goDuration(ms), want, `${ms}ms`);
  });
});
