import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ClusterIdsManager } from '../../src/clustermesh/idsmgr.js';
import type { ClusterMeshStatus, RemoteClusterStatus } from '../../src/clustermesh/status.js';
import { formatClusterMeshStatus, humanDuration } from '../../src/clustermesh/status-text.js';
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
      '   c3: not-ready, 0 nodes, 0 endpoints, 0 identities, 0 services, 4 reconnections (last: 12s ago)',
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
            'service-exports-enabled': null,
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
      'KVStoreMesh:  1/2 clusters ready',
      '   c2: ready, 3 nodes, 10 endpoints, 4 identities, 1 services, 2 MCS-API service exports, 0 reconnections (last: never)',
      '   └  etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: https://c:2379, ID: 1a',
      '   └  remote configuration: expected=true, retrieved=true, cluster-id=2, kvstoremesh=true, sync-canaries=true, service-exports=unsupported',
      '   └  synchronization status: nodes=true, endpoints=true, identities=true, services=true, service-exports=true',
      '   c9: not-ready, 3 nodes, 10 endpoints, 4 identities, 1 services, 0 reconnections (last: never)',
      '   └  etcd: 1/1 connected, leases=0, lock leases=0, has-quorum=true: https://c:2379, ID: 1a',
      '   └  remote configuration: expected=unknown, retrieved=unknown',
      '   └  synchronization status: nodes=true, endpoints=true, identities=true, services=true',
    ]);
  });

  it('formats durations like Kubernetes HumanDuration', () => {
    const s = 1000;
    const m = 60 * s;
    const h = 60 * m;
    const d = 24 * h;
    const cases: [number, string][] = [
      [-5 * s, '<invalid>'],
      [-1500, '0s'],
      [0, '0s'],
      [119 * s, '119s'],
      [2 * m, '2m'],
      [2 * m + 5 * s, '2m5s'],
      [10 * m, '10m'],
      [179 * m, '179m'],
      [3 * h, '3h'],
      [3 * h + 20 * m, '3h20m'],
      [8 * h, '8h'],
      [47 * h, '47h'],
      [2 * d, '2d'],
      [2 * d + 5 * h, '2d5h'],
      [8 * d, '8d'],
      [729 * d, '729d'],
      [730 * d, '2y'],
      [731 * d, '2y1d'],
      [8 * 365 * d, '8y'],
    ];
    for (const [ms, want] of cases) assert.equal(humanDuration(ms), want, `${ms}ms`);
  });
});
