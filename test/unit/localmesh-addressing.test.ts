/** The local mesh's address plan and its checks. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { clusterAddressing, nodeOfIP, validatePodCidrs } from '../../src/localmesh/addressing.js';
import { LocalMesh } from '../../src/localmesh/up.js';

void describe('local mesh addressing', () => {
  it('cluster c: nodes 127.c.0.n, a /24 per node, ClusterIPs and DNS in 127.c.128.0/17', () => {
    const a = clusterAddressing(3, 2);
    assert.equal(a.name, 'cluster3');
    assert.equal(a.podCIDR, '127.3.0.0/17');
    assert.equal(a.serviceCIDR, '127.3.128.0/17');
    assert.equal(a.dnsIP, '127.3.128.10');
    assert.equal(a.etcdIP, '127.3.128.2', 'cluster3.mesh.cilium.io stands for it');
    assert.deepEqual(a.nodes, [
      { name: 'cluster3-node1', ip: '127.3.0.1', podCIDR: '127.3.1.0/24' },
      { name: 'cluster3-node2', ip: '127.3.0.2', podCIDR: '127.3.2.0/24' },
    ]);
  });

  it('rejects IDs and node counts the plan cannot hold, with one line', () => {
    for (const [id, nodes] of [
      [0, 1],
      [256, 1],
      [1, 0],
      [1, 128],
      [1.5, 1],
    ] as const) {
      assert.throws(
        () => clusterAddressing(id, nodes),
        (err: unknown) => isClusterMeshError(err, ErrorCode.InvalidArgument),
        `${id}/${nodes}`,
      );
    }
    assert.equal(clusterAddressing(255, 127).nodes.at(-1)?.podCIDR, '127.255.127.0/24');
  });

  it('up --first-cluster-id must keep every cluster inside 1..255, with one line', () => {
    for (const [first, clusters] of [
      [0, 1],
      [254, 3],
      [2.5, 1],
    ] as const) {
      assert.throws(
        () =>
          new LocalMesh({
            clusters,
            firstClusterId: first,
            nodes: 1,
            stateDir: '/nonexistent',
            log: silentLogger,
          }),
        (err: unknown) =>
          isClusterMeshError(err, ErrorCode.InvalidArgument) &&
          err.message.startsWith(`--first-cluster-id ${first} with --clusters ${clusters}:`),
        `${first}+${clusters}`,
      );
    }
    // Valid: nothing starts until start().
    new LocalMesh({
      clusters: 3,
      firstClusterId: 253,
      nodes: 1,
      stateDir: '/nonexistent',
      log: silentLogger,
    });
  });

  it('pod CIDRs must not overlap: the first overlapping pair is named', () => {
    validatePodCidrs([
      { owner: 'a', cidr: '127.1.1.0/24' },
      { owner: 'b', cidr: '127.1.2.0/24' },
      { owner: 'c', cidr: '127.2.1.0/24' },
    ]);
    assert.throws(
      () =>
        validatePodCidrs([
          { owner: 'a', cidr: '127.1.1.0/24' },
          { owner: 'b', cidr: '127.1.0.0/17' },
        ]),
      /pod CIDR 127\.1\.1\.0\/24 of a overlaps 127\.1\.0\.0\/17 of b/,
    );
    assert.throws(() => {
      validatePodCidrs([{ owner: 'a', cidr: '127.1.1.0/33' }]);
    }, /invalid CIDR/);
  });

  it('maps a pod or node IP to its node; host addresses to none', () => {
    const { nodes } = clusterAddressing(1, 2);
    assert.equal(nodeOfIP(nodes, '127.1.2.7')?.name, 'cluster1-node2');
    assert.equal(nodeOfIP(nodes, '127.1.0.1')?.name, 'cluster1-node1');
    assert.equal(nodeOfIP(nodes, '127.1.1.0'), undefined, 'the network address');
    assert.equal(nodeOfIP(nodes, '127.2.1.7'), undefined, 'another cluster');
    assert.equal(nodeOfIP(nodes, '127.0.0.1'), undefined, 'the host');
  });
});
