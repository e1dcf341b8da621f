/**
 * KVStoreMesh end to end: three clusters, each with etcd, apiserver, KVStoreMesh and an
 * agent, all separate processes. KVStoreMesh dials the other clusters; agents dial
 * only their own etcd and read the cache, with every validator still applied.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';
import { connectedPorts, getJson, ProcessMesh, type MeshCluster } from '../support/mesh.js';

interface NodeJson {
  readonly Name: string;
  readonly Cluster: string;
}
interface IPJson {
  readonly cidr: string;
  readonly cluster: string;
}
interface RemoteStatus {
  readonly name: string;
  readonly ready: boolean;
  readonly status: string;
  readonly config?: { readonly kvstoremesh: boolean };
  readonly 'num-nodes': number;
  readonly 'num-endpoints': number;
  readonly 'num-identities': number;
}

function objects(c: MeshCluster): RegistryObject[] {
  return [
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNode',
      metadata: { name: 'node-1' },
      spec: {
        addresses: [{ type: 'InternalIP', ip: `127.${c.id}.0.1` }],
        ipam: { podCIDRs: [`127.${c.id}.1.0/24`] },
      },
    },
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumIdentity',
      metadata: { name: String(c.id * 65536 + 1) },
      'security-labels': {
        'k8s:app': 'rebel-base',
        'k8s:io.cilium.k8s.policy.cluster': c.name,
      },
    },
    {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEndpoint',
      metadata: { name: 'rebel-base-a', namespace: 'default' },
      status: {
        identity: { id: c.id * 65536 + 1 },
        networking: { addressing: [{ ipv4: `127.${c.id}.1.5` }], node: `127.${c.id}.0.1` },
      },
    },
  ];
}

const nodesOf = async (c: MeshCluster): Promise<string[]> =>
  (await getJson<NodeJson[]>(`${c.agentUrl}/v1/nodes`)).map((n) => `${n.Cluster}/${n.Name}`);
const ipsOf = async (c: MeshCluster): Promise<string[]> =>
  (await getJson<IPJson[]>(`${c.agentUrl}/v1/ipcache`)).map((e) => `${e.cluster}:${e.cidr}`);
const statusOf = async (c: MeshCluster): Promise<RemoteStatus[]> =>
  (await getJson<{ clusters: RemoteStatus[] }>(`${c.agentUrl}/v1/clustermesh`)).clusters;

describe('KVStoreMesh: agents read a local cache', { timeout: 240_000 }, () => {
  let mesh: ProcessMesh;
  let all: MeshCluster[];

  before(async () => {
    mesh = await ProcessMesh.start(
      [
        { name: 'cluster1', id: 1 },
        { name: 'cluster2', id: 2 },
        { name: 'cluster3', id: 3 },
      ],
      { kvstoremesh: true },
    );
    all = [mesh.get('cluster1'), mesh.get('cluster2'), mesh.get('cluster3')];
    for (const c of all) await c.registry.apply(objects(c));
  });

  after(async () => {
    await mesh.destroy();
  });

  it('agents see every cluster through the cache, as in direct mode', async () => {
    for (const c of all) {
      await eventually(async () => {
        const st = await statusOf(c);
        assert.equal(st.length, 2);
        for (const r of st) {
          assert.equal(r.ready, true, `${c.name} → ${r.name}: ${r.status}`);
          assert.equal(r.config?.kvstoremesh, true);
          assert.deepEqual([r['num-nodes'], r['num-endpoints'], r['num-identities']], [1, 1, 1]);
        }
      }, 30_000);
      assert.deepEqual(await nodesOf(c), ['cluster1/node-1', 'cluster2/node-1', 'cluster3/node-1']);
      assert.deepEqual(await ipsOf(c), [
        'cluster1:127.1.1.5/32',
        'cluster2:127.2.1.5/32',
        'cluster3:127.3.1.5/32',
      ]);
    }
  });

  it('the cache holds the remote keys verbatim, and agents dial only their own etcd', async () => {
    const [c1, c2] = all as [MeshCluster, MeshCluster, MeshCluster];
    const original = await c2.backend.get('cilium/state/nodes/v1/cluster2/node-1');
    const cached = await c1.backend.get('cilium/cache/nodes/v1/cluster2/node-1');
    assert.ok(original !== undefined, 'original !== undefined');
    assert.equal(cached?.value, original.value);
    assert.equal(
      (await c1.backend.get('cilium/cache/identities/v1/cluster2/id/131073'))?.value,
      (await c2.backend.get('cilium/state/identities/v1/id/131073'))?.value,
    );
    assert.equal(
      (await c1.backend.get('cilium/cache/ip/v1/cluster2/127.2.1.5'))?.value,
      (await c2.backend.get('cilium/state/ip/v1/default/127.2.1.5'))?.value,
    );
    assert.match(
      (await c1.backend.get('cilium/synced/cluster2/cilium/cache/nodes/v1'))?.value ?? '',
      /^\d{4}-/,
    );
    const cfg = JSON.parse(
      (await c1.backend.get('cilium/cluster-config/cluster2'))?.value ?? '{}',
    ) as {
      capabilities: { cached?: boolean };
    };
    assert.equal(cfg.capabilities.cached, true);
    for (const c of all) {
      const pid = c.agent.pid;
      assert.ok(pid !== undefined, 'pid !== undefined');
      const ports = await connectedPorts(pid);
      assert.ok(ports.has(c.etcd.member.clientPort), `${c.name} agent talks to its own etcd`);
      for (const other of all) {
        if (other === c) continue;
        assert.equal(
          ports.has(other.etcd.member.clientPort),
          false,
          `${c.name} agent → ${other.name} etcd`,
        );
        assert.equal(ports.has(other.proxy.port), false, `${c.name} agent → ${other.name} proxy`);
      }
    }
  });

  it('KVStoreMesh restarted: agents keep their state and converge', async () => {
    const c1 = all[0] as MeshCluster;
    const c2 = all[1] as MeshCluster;
    const kvsm = c1.kvstoremesh;
    assert.ok(kvsm !== undefined, 'kvsm !== undefined');
    await kvsm.stop('SIGKILL');
    await c2.registry.apply([
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumEndpoint',
        metadata: { name: 'rebel-base-b', namespace: 'default' },
        status: {
          identity: { id: 131073 },
          networking: { addressing: [{ ipv4: '127.2.1.6' }], node: '127.2.0.1' },
        },
      },
    ]);
    // Without KVStoreMesh the cache is frozen but nothing is lost.
    await new Promise((r) => setTimeout(r, 1000));
    assert.ok(
      (await ipsOf(c1)).includes('cluster2:127.2.1.5/32'),
      "(await ipsOf(c1)).includes('cluster2:127.2.1.5/32')",
    );
    kvsm.start();
    await eventually(async () => {
      assert.deepEqual(
        (await ipsOf(c1)).filter((x) => x.startsWith('cluster2:')),
        ['cluster2:127.2.1.5/32', 'cluster2:127.2.1.6/32'],
      );
    }, 30_000);
  });

  it('a remote etcd restarted with changes: converges through the cache', async () => {
    const c1 = all[0] as MeshCluster;
    const c3 = all[2] as MeshCluster;
    await c3.etcd.stop();
    await new Promise((r) => setTimeout(r, 1500));
    assert.ok(
      (await nodesOf(c1)).includes('cluster3/node-1'),
      "(await nodesOf(c1)).includes('cluster3/node-1')",
    );
    await c3.etcd.start();
    await c3.registry.delete('CiliumEndpoint', 'default', 'rebel-base-a');
    await eventually(async () => {
      assert.deepEqual(
        (await ipsOf(c1)).filter((x) => x.startsWith('cluster3:')),
        [],
      );
      assert.ok(
        (await nodesOf(c1)).includes('cluster3/node-1'),
        "(await nodesOf(c1)).includes('cluster3/node-1')",
      );
    }, 30_000);
  });

  it('spoofed entries in a remote are cached as-is but never reach agents', async () => {
    const c1 = all[0] as MeshCluster;
    const c2 = all[1] as MeshCluster;
    await c2.backend.put(
      'cilium/state/ip/v1/default/127.2.9.9',
      '{"IP":"127.2.9.9","Mask":null,"HostIP":"127.2.0.1","ID":196609,"Key":0,"Metadata":""}',
    );
    await c2.backend.put(
      'cilium/state/ip/v1/default/127.2.9.6',
      '{"IP":"127.2.9.6","Mask":null,"HostIP":"127.2.0.1","ID":131073,"Key":0,"Metadata":""}',
    );
    await eventually(async () => {
      assert.ok(
        (await ipsOf(c1)).includes('cluster2:127.2.9.6/32'),
        "(await ipsOf(c1)).includes('cluster2:127.2.9.6/32')",
      );
    }, 20_000);
    assert.notEqual(await c1.backend.get('cilium/cache/ip/v1/cluster2/127.2.9.9'), undefined);
    assert.equal((await ipsOf(c1)).includes('cluster2:127.2.9.9/32'), false);
  });

  it('a remote removed from the config disappears from agents after the grace period', async () => {
    const c1 = all[0] as MeshCluster;
    await mesh.disconnect(c1, 'cluster2');
    await eventually(async () => {
      assert.deepEqual(
        (await nodesOf(c1)).filter((n) => n.startsWith('cluster2/')),
        [],
      );
      assert.equal(await c1.backend.get('cilium/cache/nodes/v1/cluster2/node-1'), undefined);
    }, 30_000);
  });
});
