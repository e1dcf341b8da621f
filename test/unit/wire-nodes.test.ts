/**
 * Nodes against Cilium's fixtures (test/fixtures/cilium/nodes.json): CiliumNode →
 * kvstore bytes as the reference apiserver writes them, and the reference's
 * validators accepting and rejecting the same values with the same reasons.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { nodeFromCiliumNode } from '../../src/convert/cilium.js';
import { decodeNode, encodeNode, nodeKeyNameOf, NodesPrefix } from '../../src/keyspace/index.js';
import type { CiliumNode } from '../../src/registry/types.js';

interface NodeFields {
  readonly Cluster?: string;
  readonly Name?: string;
  readonly ClusterID?: number;
}

interface Fixture {
  readonly cluster: { readonly name: string; readonly id: number };
  readonly ciliumNodes: readonly { object: CiliumNode; key: string; value: string }[];
  readonly validate: readonly {
    node: NodeFields;
    localClusterId: number;
    error?: string;
  }[];
  readonly validators: readonly {
    node: NodeFields;
    key?: string;
    expectedCluster?: string;
    expectedClusterId?: number;
    error?: string;
  }[];
  readonly remoteClusterRun: readonly { key: string; value: string; clusterId: number }[];
}

const fx = JSON.parse(
  readFileSync(new URL('../fixtures/cilium/nodes.json', import.meta.url), 'utf8'),
) as Fixture;

/** The reason of an InvalidEntry error: the text after `invalid node entry "<key>": `. */
function reason(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    const m = /^invalid node entry "[^"]*": (.*)$/.exec((err as Error).message);
    assert.ok(m !== null, `unexpected error text: ${(err as Error).message}`);
    return m[1] ?? '';
  }
  assert.fail('accepted');
}

void describe('wire: nodes (ciliumnodes.txtar)', () => {
  for (const c of fx.ciliumNodes) {
    it(`${c.object.metadata.name} is written byte for byte and reads back`, () => {
      const node = nodeFromCiliumNode(c.object, fx.cluster);
      assert.equal(`${NodesPrefix}/${nodeKeyNameOf(node)}`, c.key);
      assert.equal(encodeNode(node), c.value);
      const back = decodeNode(nodeKeyNameOf(node), c.value, { localClusterId: fx.cluster.id });
      assert.deepEqual(back, node);
      assert.equal(encodeNode(back), c.value);
    });
  }

  it('skips an unparsable address or health IP instead of dropping the node', () => {
    const base = fx.ciliumNodes[0];
    assert.ok(base !== undefined, 'base !== undefined');
    const spec = base.object.spec;
    const bad: CiliumNode = {
      ...base.object,
      spec: {
        ...spec,
        addresses: [{ ip: 'not-an-ip', type: 'InternalIP' }, ...(spec.addresses ?? [])],
        health: { ipv4: 'nope', ipv6: spec.health?.ipv6 ?? '' },
        ipam: { podCIDRs: ['bogus/99', ...(spec.ipam?.podCIDRs ?? [])] },
      },
    };
    const expected = c0Value().replace('"IPv4HealthIP":"10.244.0.134"', '"IPv4HealthIP":""');
    assert.equal(encodeNode(nodeFromCiliumNode(bad, fx.cluster)), expected);
  });

  it('takes the WireGuard key from the legacy annotation, and pool CIDRs as secondary', () => {
    const base = fx.ciliumNodes[1];
    assert.ok(base !== undefined, 'base !== undefined');
    const node = nodeFromCiliumNode(
      {
        ...base.object,
        metadata: {
          ...base.object.metadata,
          annotations: { 'io.cilium.network.wg-pub-key': 'legacy=' },
        },
        spec: {
          ...base.object.spec,
          nodeidentity: 7,
          ipam: {
            podCIDRs: ['10.244.1.0/24'],
            pools: { allocated: [{ pool: 'extra', cidrs: ['10.250.0.0/26', 'fd00:99::/96'] }] },
          },
        },
      },
      fx.cluster,
    );
    assert.equal(node.WireguardPubKey, 'legacy=');
    assert.equal(node.NodeIdentity, 7);
    assert.equal(node.IPv4AllocCIDR, '10.244.1.0/24');
    assert.deepEqual(node.IPv4SecondaryAllocCIDRs, ['10.250.0.0/26']);
    assert.equal(node.IPv6AllocCIDR, 'fd00:99::/96');
    // The primary annotation wins over the alias.
    const both = nodeFromCiliumNode(
      {
        ...base.object,
        metadata: {
          ...base.object.metadata,
          annotations: {
            'io.cilium.network.wg-pub-key': 'legacy=',
            'network.cilium.io/wg-pub-key': 'primary=',
          },
        },
      },
      fx.cluster,
    );
    assert.equal(both.WireguardPubKey, 'primary=');
  });
});

void describe('wire: Node.validate and the node validators', () => {
  for (const v of fx.validate) {
    it(`${JSON.stringify(v.node)} → ${v.error ?? 'OK'}`, () => {
      const value = JSON.stringify(v.node);
      const key = `${v.node.Cluster ?? ''}/${v.node.Name ?? ''}`;
      const run = () => decodeNode(key, value, { localClusterId: v.localClusterId });
      if (v.error === undefined) run();
      else assert.equal(reason(run), v.error);
    });
  }
  for (const v of fx.validators) {
    const label = `${JSON.stringify(v.node)} key=${v.key ?? '-'} cluster=${v.expectedCluster ?? '-'} id=${v.expectedClusterId ?? '-'}`;
    it(`${label} → ${v.error ?? 'OK'}`, () => {
      const cluster = v.node.Cluster ?? '';
      // The reference's key is relative to `<prefix>/<cluster>/`; ours includes the cluster.
      const key = `${cluster}/${v.key ?? v.node.Name ?? ''}`;
      const run = () =>
        decodeNode(key, JSON.stringify(v.node), {
          ...(v.expectedCluster === undefined ? {} : { expectedCluster: v.expectedCluster }),
          ...(v.expectedClusterId === undefined ? {} : { expectedClusterId: v.expectedClusterId }),
        });
      if (v.error === undefined) run();
      else assert.equal(reason(run), v.error);
    });
  }
  for (const r of fx.remoteClusterRun) {
    it(`accepts lowercase field names as Go does: ${r.value}`, () => {
      const node = decodeNode(r.key, r.value, {
        localClusterId: 99,
        expectedCluster: 'foo',
        expectedClusterId: r.clusterId,
      });
      assert.equal(node.Name, 'bar');
      assert.equal(node.Cluster, 'foo');
      assert.equal(node.ClusterID, r.clusterId);
    });
  }
  it('lets the later of two case variants win, as Go does', () => {
    assert.equal(decodeNode('foo/bar', '{"name":"x","Name":"bar","cluster":"foo"}').Name, 'bar');
    assert.equal(
      reason(() => decodeNode('foo/bar', '{"Name":"bar","NAME":"x","cluster":"foo"}')),
      'name does not match key: got x, expected bar',
    );
  });
});

function c0Value(): string {
  const c = fx.ciliumNodes[0];
  assert.ok(c !== undefined, 'c !== undefined');
  return c.value;
}
