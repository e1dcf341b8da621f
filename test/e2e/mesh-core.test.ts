/**
 * The mesh core end to end: three clusters, each with its own etcd, an apiserver
 * process and an agent process, joined through config directories. Scenarios run
 * in order on one mesh (each leaves it converged for the next).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';
import { getJson, ProcessMesh, type MeshCluster } from '../support/mesh.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface NodeJson {
  readonly Name: string;
  readonly Cluster: string;
  readonly ClusterID: number;
  readonly Source: string;
}
interface IdentityJson {
  readonly id: number;
  readonly labels: readonly string[];
}
interface IPJson {
  readonly cidr: string;
  readonly identity: number;
  readonly hostIP: string;
  readonly cluster: string;
}
interface RemoteStatus {
  readonly name: string;
  readonly connected: boolean;
  readonly ready: boolean;
  readonly status: string;
  readonly 'num-nodes': number;
  readonly 'num-endpoints': number;
  readonly 'num-identities': number;
  readonly 'num-failures': number;
  readonly synced: Record<string, boolean>;
}
interface MeshStatus {
  readonly clusters: readonly RemoteStatus[];
}

function node(c: MeshCluster, n: number): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: { name: `node-${n}` },
    spec: {
      addresses: [{ type: 'InternalIP', ip: `127.${c.id}.0.${n}` }],
      ipam: { podCIDRs: [`127.${c.id}.${n}.0/24`] },
    },
  };
}

function identity(c: MeshCluster, local: number, app: string): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumIdentity',
    metadata: { name: String(c.id * 65536 + local) },
    'security-labels': {
      'k8s:app': app,
      'k8s:io.cilium.k8s.policy.cluster': c.name,
      'k8s:io.kubernetes.pod.namespace': 'default',
    },
  };
}

function endpoint(
  c: MeshCluster,
  name: string,
  ip: string,
  id: number,
  nodeN: number,
): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumEndpoint',
    metadata: { name, namespace: 'default' },
    status: {
      id: 100,
      identity: { id, labels: [] },
      networking: { addressing: [{ ipv4: ip }], node: `127.${c.id}.0.${nodeN}` },
    },
  };
}

function baseObjects(c: MeshCluster): RegistryObject[] {
  return [
    node(c, 1),
    node(c, 2),
    identity(c, 1, 'rebel-base'),
    identity(c, 2, 'x-wing'),
    endpoint(c, 'rebel-base-a', `127.${c.id}.1.5`, c.id * 65536 + 1, 1),
    endpoint(c, 'x-wing', `127.${c.id}.2.7`, c.id * 65536 + 2, 2),
  ];
}

const nodesOf = (c: MeshCluster): Promise<NodeJson[]> => getJson(`${c.agentUrl}/v1/nodes`);
const idsOf = (c: MeshCluster): Promise<IdentityJson[]> => getJson(`${c.agentUrl}/v1/identities`);
const ipsOf = (c: MeshCluster): Promise<IPJson[]> => getJson(`${c.agentUrl}/v1/ipcache`);
const statusOf = (c: MeshCluster): Promise<MeshStatus> => getJson(`${c.agentUrl}/v1/clustermesh`);

function remote(st: MeshStatus, name: string): RemoteStatus {
  const r = st.clusters.find((x) => x.name === name);
  assert.ok(r !== undefined, `no status for ${name}: ${JSON.stringify(st)}`);
  return r;
}

describe('mesh core: three clusters, real etcd, separate processes', { timeout: 240_000 }, () => {
  let mesh: ProcessMesh;
  let c1: MeshCluster;
  let c2: MeshCluster;
  let c3: MeshCluster;
  let all: MeshCluster[];

  before(async () => {
    mesh = await ProcessMesh.start([
      { name: 'cluster1', id: 1 },
      { name: 'cluster2', id: 2 },
      { name: 'cluster3', id: 3 },
    ]);
    c1 = mesh.get('cluster1');
    c2 = mesh.get('cluster2');
    c3 = mesh.get('cluster3');
    all = [c1, c2, c3];
    for (const c of all) await c.registry.apply(baseObjects(c));
  });

  after(async () => {
    await mesh.destroy();
  });

  it('every agent sees the nodes, identities and IPs of all three clusters', async () => {
    for (const c of all) {
      await eventually(async () => {
        const st = await statusOf(c);
        assert.equal(st.clusters.length, 2);
        for (const r of st.clusters) {
          assert.equal(r.ready, true, `${c.name} → ${r.name}: ${r.status}`);
          assert.equal(r['num-nodes'], 2);
          assert.equal(r['num-endpoints'], 2);
          assert.equal(r['num-identities'], 2);
          assert.deepEqual(r.synced, {
            nodes: true,
            endpoints: true,
            identities: true,
            services: true,
          });
        }
      }, 30_000);
      const nodes = await nodesOf(c);
      assert.deepEqual(
        nodes.map((n) => `${n.Cluster}/${n.Name}:${n.ClusterID}:${n.Source}`),
        all.flatMap((o) =>
          [1, 2].map(
            (n) =>
              `${o.name}/node-${n}:${o.id}:${
                o === c ? (n === 1 ? 'local' : 'custom-resource') : 'clustermesh'
              }`,
          ),
        ),
      );
      const ids = await idsOf(c);
      assert.deepEqual(
        ids.map((i) => i.id),
        [65537, 65538, 131073, 131074, 196609, 196610],
      );
      for (const i of ids) {
        const cluster = all[Math.floor(i.id / 65536) - 1];
        assert.ok(
          i.labels.includes(`k8s:io.cilium.k8s.policy.cluster=${cluster?.name ?? '?'}`),
          `identity ${i.id} labels: ${i.labels.join(';')}`,
        );
      }
      const ips = await ipsOf(c);
      assert.deepEqual(
        ips.map((e) => `${e.cidr} ${e.identity} ${e.hostIP} ${e.cluster}`),
        all.flatMap((o) => [
          `127.${o.id}.1.5/32 ${o.id * 65536 + 1} 127.${o.id}.0.1 ${o.name}`,
          `127.${o.id}.2.7/32 ${o.id * 65536 + 2} 127.${o.id}.0.2 ${o.name}`,
        ]),
      );
    }
  });

  it('the CLI shows the same views: status 2/2 ready, node list, -o json', async () => {
    const { stdout } = await run(BIN, ['-H', c1.agentUrl, 'status'], { env: { ...process.env } });
    assert.match(stdout, /^ClusterMesh: {3}2\/2 remote clusters ready, 0 global-services$/m);
    const list = await run(BIN, ['-H', c1.agentUrl, 'node', 'list']);
    assert.match(
      list.stdout,
      /^cluster2\/node-1\s+127\.2\.0\.1\s+127\.2\.1\.0\/24\s+clustermesh$/m,
    );
    const json = await run(BIN, ['-H', c2.agentUrl, 'status', '-o', 'json']);
    const parsed = JSON.parse(json.stdout) as MeshStatus;
    assert.deepEqual(
      parsed.clusters.map((r) => [r.name, r.ready]),
      [
        ['cluster1', true],
        ['cluster3', true],
      ],
    );
  });

  it('writes the reference keys and JSON byte for byte', async () => {
    const get = async (key: string): Promise<string | undefined> =>
      (await c1.backend.get(key))?.value;
    assert.equal(
      await get('cilium/state/nodes/v1/cluster1/node-1'),
      '{"Name":"node-1","Cluster":"cluster1","IPAddresses":[{"Type":"InternalIP","IP":"127.1.0.1"}],' +
        '"IPv4AllocCIDR":{"IP":"127.1.1.0","Mask":"////AA=="},"IPv4SecondaryAllocCIDRs":null,' +
        '"IPv6AllocCIDR":null,"IPv6SecondaryAllocCIDRs":null,"IPv4HealthIP":"","IPv6HealthIP":"",' +
        '"IPv4IngressIP":"","IPv6IngressIP":"","ClusterID":1,"Source":"custom-resource",' +
        '"EncryptionKey":0,"Labels":null,"Annotations":null,"NodeIdentity":0,"WireguardPubKey":"",' +
        '"BootID":""}',
    );
    assert.equal(
      await get('cilium/state/identities/v1/id/65537'),
      'k8s:app=rebel-base;k8s:io.cilium.k8s.policy.cluster=cluster1;k8s:io.kubernetes.pod.namespace=default;',
    );
    assert.equal(
      await get('cilium/state/ip/v1/default/127.1.1.5'),
      '{"IP":"127.1.1.5","Mask":null,"HostIP":"127.1.0.1","ID":65537,"Key":0,"Metadata":"",' +
        '"K8sNamespace":"default","K8sPodName":"rebel-base-a"}',
    );
    assert.equal(
      await get('cilium/cluster-config/cluster1'),
      '{"id":1,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":true}}',
    );
    for (const r of ['nodes', 'identities', 'ip', 'services', 'serviceexports']) {
      assert.match(
        (await get(`cilium/synced/cluster1/cilium/state/${r}/v1`)) ?? '',
        /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/,
        `canary for ${r}`,
      );
    }
    assert.match((await get('cilium/.heartbeat')) ?? '', /^\d{4}-\d\d-\d\dT/);
    assert.notEqual(
      (await c1.backend.get('cilium/state/nodes/v1/cluster1/node-1'))?.lease,
      undefined,
    );
  });

  it('deletes and adds in one cluster reach the others', async () => {
    await c2.registry.delete('CiliumEndpoint', 'default', 'x-wing');
    await c2.registry.delete('CiliumNode', undefined, 'node-2');
    await c2.registry.apply([node(c2, 3), endpoint(c2, 'tie-fighter', '127.2.3.9', 131073, 3)]);
    for (const c of [c1, c3]) {
      await eventually(async () => {
        const nodes = (await nodesOf(c)).filter((n) => n.Cluster === 'cluster2').map((n) => n.Name);
        assert.deepEqual(nodes, ['node-1', 'node-3']);
        const ips = (await ipsOf(c)).filter((e) => e.cluster === 'cluster2').map((e) => e.cidr);
        assert.deepEqual(ips, ['127.2.1.5/32', '127.2.3.9/32']);
      });
    }
  });

  it('a stopped remote etcd: entries kept, not ready with failures; back: converges', async () => {
    await c3.etcd.stop();
    await eventually(async () => {
      const r = remote(await statusOf(c1), 'cluster3');
      assert.equal(r.ready, false);
      assert.ok(r['num-failures'] >= 1, "r['num-failures'] >= 1");
    }, 20_000);
    // Still serving cluster3's last known state.
    assert.equal((await nodesOf(c1)).filter((n) => n.Cluster === 'cluster3').length, 2);
    assert.equal((await ipsOf(c1)).filter((e) => e.cluster === 'cluster3').length, 2);
    await c3.etcd.start();
    await c3.registry.delete('CiliumEndpoint', 'default', 'x-wing');
    await c3.registry.apply([endpoint(c3, 'y-wing', '127.3.2.8', 196610, 2)]);
    await eventually(async () => {
      assert.equal(remote(await statusOf(c1), 'cluster3').ready, true);
      const ips = (await ipsOf(c1)).filter((e) => e.cluster === 'cluster3').map((e) => e.cidr);
      assert.deepEqual(ips, ['127.3.1.5/32', '127.3.2.8/32']);
    }, 30_000);
  });

  it('a partitioned cluster changes while cut off; after, everyone converges exactly', async () => {
    await c2.proxy.block();
    await eventually(async () => {
      assert.equal(remote(await statusOf(c1), 'cluster2').ready, false);
      assert.equal(remote(await statusOf(c3), 'cluster2').ready, false);
    }, 20_000);
    await c2.registry.delete('CiliumEndpoint', 'default', 'rebel-base-a');
    await c2.registry.delete('CiliumIdentity', undefined, '131074');
    await c2.registry.apply([
      node(c2, 4),
      endpoint(c2, 'rebel-base-b', '127.2.4.4', 131073, 4),
      endpoint(c2, 'tie-fighter', '127.2.3.10', 131073, 3),
    ]);
    // Cut off: the others still hold the old state.
    assert.ok(
      (await ipsOf(c1)).some((e) => e.cidr === '127.2.1.5/32'),
      "(await ipsOf(c1)).some((e) => e.cidr === '127.2.1.5/32')",
    );
    await c2.proxy.unblock();
    for (const c of [c1, c3]) {
      await eventually(async () => {
        assert.equal(remote(await statusOf(c), 'cluster2').ready, true);
        assert.deepEqual(
          (await nodesOf(c)).filter((n) => n.Cluster === 'cluster2').map((n) => n.Name),
          ['node-1', 'node-3', 'node-4'],
        );
        assert.deepEqual(
          (await ipsOf(c)).filter((e) => e.cluster === 'cluster2').map((e) => e.cidr),
          ['127.2.3.10/32', '127.2.4.4/32'],
        );
        assert.deepEqual(
          (await idsOf(c)).filter((i) => Math.floor(i.id / 65536) === 2).map((i) => i.id),
          [131073],
        );
      }, 30_000);
    }
  });

  it('an apiserver restarted on a wiped etcd: valid entries are never removed before its canaries exist', async () => {
    const before = (await ipsOf(c1)).filter((e) => e.cluster === 'cluster3').map((e) => e.cidr);
    const nodesBefore = (await nodesOf(c1)).filter((n) => n.Cluster === 'cluster3').length;
    const watching = { on: true };
    let dips = 0;
    const monitor = (async (): Promise<void> => {
      while (watching.on) {
        const ips = (await ipsOf(c1)).filter((e) => e.cluster === 'cluster3').map((e) => e.cidr);
        const nodes = (await nodesOf(c1)).filter((n) => n.Cluster === 'cluster3').length;
        if (before.some((ip) => !ips.includes(ip)) || nodes < nodesBefore) dips++;
        await new Promise((r) => setTimeout(r, 25));
      }
    })();
    await c3.apiserver.stop();
    await c3.etcd.wipe();
    // The cluster's own state (the registry) is back before its apiserver starts.
    await c3.backend.close();
    const { EtcdBackend } = await import('../../src/kvstore/etcd.js');
    const { Registry } = await import('../../src/registry/registry.js');
    const backend = new EtcdBackend({ endpoints: c3.etcd.endpoints });
    const registry = new Registry(backend);
    const objs = baseObjects(c3).filter((o) => o.metadata.name !== 'x-wing');
    await registry.apply([...objs, endpoint(c3, 'y-wing', '127.3.2.8', 196610, 2)]);
    await new Promise((r) => setTimeout(r, 1500));
    c3.apiserver.start();
    await eventually(async () => {
      const r = remote(await statusOf(c1), 'cluster3');
      assert.equal(r.ready, true);
      assert.equal(r['num-endpoints'], 2);
    }, 30_000);
    watching.on = false;
    await monitor;
    await backend.close();
    assert.equal(dips, 0, 'cluster3 entries disappeared before its canaries were written');
    assert.deepEqual(
      (await ipsOf(c1)).filter((e) => e.cluster === 'cluster3').map((e) => e.cidr),
      before,
    );
  });

  it('refuses duplicate cluster IDs and the local ID; a garbage config file changes nothing', async () => {
    const dup = await mesh.addCluster('cluster4', 2, { start: true });
    const self = await mesh.addCluster('cluster5', 1, { start: true });
    await mesh.connect(c1, dup);
    await mesh.connect(c1, self);
    await writeFile(join(c1.configDir, 'garbage'), 'endpoints: [[[ not yaml\n');
    await writeFile(join(c1.configDir, 'ca.crt'), '-----BEGIN CERTIFICATE-----\n');
    await eventually(async () => {
      const st = await statusOf(c1);
      const r4 = remote(st, 'cluster4');
      assert.equal(r4.ready, false);
      assert.match(r4.status, /clusterID 2 is already used/);
      assert.ok(r4['num-failures'] >= 1, "r4['num-failures'] >= 1");
      const r5 = remote(st, 'cluster5');
      assert.equal(r5.ready, false);
      assert.match(r5.status, /clusterID 1 is assigned to the local cluster/);
      assert.equal(remote(st, 'cluster2').ready, true);
      assert.equal(remote(st, 'cluster3').ready, true);
      assert.equal(remote(st, 'garbage').ready, false);
    }, 30_000);
    assert.equal((await nodesOf(c1)).filter((n) => n.Cluster === 'cluster4').length, 0);
    await mesh.disconnect(c1, 'cluster4');
    await mesh.disconnect(c1, 'cluster5');
    await mesh.disconnect(c1, 'garbage');
    await eventually(async () => {
      assert.deepEqual(
        (await statusOf(c1)).clusters.map((r) => r.name),
        ['cluster2', 'cluster3'],
      );
    });
  });

  it('spoofed entries written into a remote etcd never appear and are counted', async () => {
    const put = (k: string, v: string): Promise<void> => c2.backend.put(k, v);
    // A node claiming to belong to cluster3, an identity from cluster3's range, an
    // ipcache entry with cluster3's identity, and a key/value mismatch.
    await put(
      'cilium/state/nodes/v1/cluster2/evil',
      JSON.stringify({ Name: 'evil', Cluster: 'cluster3', ClusterID: 3, IPAddresses: null }),
    );
    await put(
      'cilium/state/identities/v1/id/196700',
      'k8s:app=evil;k8s:io.cilium.k8s.policy.cluster=cluster3;',
    );
    await put(
      'cilium/state/identities/v1/id/131199',
      'k8s:app=evil;k8s:io.cilium.k8s.policy.cluster=cluster3;',
    );
    await put(
      'cilium/state/ip/v1/default/127.2.9.9',
      '{"IP":"127.2.9.9","Mask":null,"HostIP":"127.2.0.1","ID":196609,"Key":0,"Metadata":""}',
    );
    await put(
      'cilium/state/ip/v1/default/127.2.9.8',
      '{"IP":"127.2.9.7","Mask":null,"HostIP":"127.2.0.1","ID":131073,"Key":0,"Metadata":""}',
    );
    await put(
      'cilium/state/ip/v1/default/127.2.9.6',
      '{"IP":"127.2.9.6","Mask":null,"HostIP":"127.2.0.1","ID":131073,"Key":0,"Metadata":""}',
    );
    for (const c of [c1, c3]) {
      await eventually(async () => {
        // The valid entry written last arrived, so the spoofed ones were seen before it.
        const cidrs = (await ipsOf(c)).map((e) => e.cidr);
        assert.ok(cidrs.includes('127.2.9.6/32'), `${c.name} ipcache: ${cidrs.join(' ')}`);
      });
      assert.equal(
        (await nodesOf(c)).some((n) => n.Name === 'evil'),
        false,
      );
      const ids = (await idsOf(c)).map((i) => i.id);
      assert.equal(ids.includes(196700), false);
      assert.equal(ids.includes(131199), false);
      const ips = (await ipsOf(c)).map((e) => e.cidr);
      assert.equal(ips.includes('127.2.9.9/32'), false);
      assert.equal(ips.includes('127.2.9.8/32'), false);
      const st = await getJson<{ 'rejected-entries': Record<string, number> }>(
        `${c.agentUrl}/v1/status`,
      );
      assert.equal(st['rejected-entries'].cluster2, 5);
      const metrics = await (await fetch(`${c.agentUrl}/metrics`)).text();
      assert.match(
        metrics,
        /cilium_clustermesh_remote_cluster_rejected_entries_total\{[^}]*target_cluster="cluster2",kind="nodes"\} 1/,
      );
    }
  });
});
