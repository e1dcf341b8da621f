/**
 * Global services end to end (spec §6): three clusters with real etcd and separate
 * apiserver/agent processes. cluster1's agent runs with a 2s cache TTL.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';
import { getJson, ProcessMesh, type MeshCluster } from '../support/mesh.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface ServiceJson {
  readonly service: string;
  readonly frontend: string;
  readonly backends: readonly { address: string; cluster: string; preferred: boolean }[];
}
interface LbJson {
  readonly frontend: string;
  readonly backends: readonly string[];
}

function service(c: MeshCluster, annotations: Record<string, string>): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'rebel-base', namespace: 'default', annotations },
    spec: {
      type: 'ClusterIP',
      clusterIP: `127.${c.id}.128.20`,
      ports: [{ port: 80, protocol: 'TCP' }],
      selector: { name: 'rebel-base' },
    },
  };
}

function slice(
  c: MeshCluster,
  name: string,
  eps: readonly { ip: string; ready?: boolean }[],
): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': 'rebel-base' },
    },
    addressType: 'IPv4',
    endpoints: eps.map((e) => ({ addresses: [e.ip], conditions: { ready: e.ready ?? true } })),
    ports: [{ port: 80, protocol: 'TCP' }],
  };
}

const GLOBAL = { 'service.cilium.io/global': 'true' };

async function backendsOf(c: MeshCluster): Promise<string[]> {
  const svcs = await getJson<ServiceJson[]>(`${c.agentUrl}/v1/services`);
  const s = svcs.find((x) => x.service === 'default/rebel-base');
  return (s?.backends ?? [])
    .map((b) => `${b.cluster}:${b.address}${b.preferred ? '*' : ''}`)
    .sort();
}

async function lbOf(c: MeshCluster): Promise<string[]> {
  const lb = await getJson<LbJson[]>(`${c.agentUrl}/v1/lb`);
  return [...(lb.find((x) => x.frontend === `127.${c.id}.128.20:80/TCP`)?.backends ?? [])].sort();
}

const local = (c: MeshCluster, star = ''): string[] => [
  `${c.name}:127.${c.id}.1.5:80/TCP${star}`,
  `${c.name}:127.${c.id}.1.6:80/TCP${star}`,
];

describe(
  'global services: three clusters, real etcd, separate processes',
  { timeout: 240_000 },
  () => {
    let mesh: ProcessMesh;
    let c1: MeshCluster;
    let c2: MeshCluster;
    let c3: MeshCluster;

    before(async () => {
      mesh = await ProcessMesh.start(
        [
          { name: 'cluster1', id: 1 },
          { name: 'cluster2', id: 2 },
          { name: 'cluster3', id: 3 },
        ],
        { agentArgs: (name) => (name === 'cluster1' ? ['--clustermesh-cache-ttl', '2s'] : []) },
      );
      c1 = mesh.get('cluster1');
      c2 = mesh.get('cluster2');
      c3 = mesh.get('cluster3');
      for (const c of [c1, c2, c3]) {
        await c.registry.apply([
          service(c, GLOBAL),
          slice(c, 'rebel-base-a', [{ ip: `127.${c.id}.1.5` }, { ip: `127.${c.id}.1.6` }]),
        ]);
      }
    });

    after(async () => {
      await mesh.destroy();
    });

    it('global and shared everywhere: every cluster balances over all backends', async () => {
      for (const c of [c1, c2, c3]) {
        await eventually(async () => {
          assert.deepEqual(await backendsOf(c), [...local(c1), ...local(c2), ...local(c3)].sort());
        }, 30_000);
      }
      const st = await getJson<{
        'num-global-services': number;
        clusters: { 'num-shared-services': number }[];
      }>(`${c1.agentUrl}/v1/clustermesh`);
      assert.equal(st['num-global-services'], 1);
      assert.deepEqual(
        st.clusters.map((r) => r['num-shared-services']),
        [1, 1],
      );
      const metrics = await (await fetch(`${c1.agentUrl}/metrics`)).text();
      assert.match(metrics, /cilium_clustermesh_global_services\{[^}]*\} 1/);
      const { stdout } = await run(BIN, ['-H', c1.agentUrl, 'service', 'list']);
      assert.match(
        stdout,
        /^\d+\s+127\.1\.128\.20:80\/TCP\s+ClusterIP\s+1 => 127\.1\.1\.5:80\/TCP \(active\) \[cluster1\]$/m,
      );
    });

    it('the global × shared matrix, in both directions', async () => {
      // cluster2 global but not shared: it consumes remote backends, exports none.
      await c2.registry.apply([service(c2, { ...GLOBAL, 'service.cilium.io/shared': 'false' })]);
      await eventually(async () => {
        assert.deepEqual(await backendsOf(c1), [...local(c1), ...local(c3)].sort());
        assert.deepEqual(await backendsOf(c2), [...local(c1), ...local(c2), ...local(c3)].sort());
      }, 20_000);
      // cluster3 not global: uses only its own, exports nothing; the others drop it.
      await c3.registry.apply([service(c3, {})]);
      await eventually(async () => {
        assert.deepEqual(await backendsOf(c3), local(c3));
        assert.deepEqual(await backendsOf(c1), local(c1));
        assert.deepEqual(await backendsOf(c2), [...local(c1), ...local(c2)].sort());
      }, 20_000);
      // Legacy annotation on cluster3: global and shared again.
      await c3.registry.apply([service(c3, { 'io.cilium/global-service': 'true' })]);
      await c2.registry.apply([service(c2, GLOBAL)]);
      await eventually(async () => {
        for (const c of [c1, c2, c3]) {
          assert.deepEqual(await backendsOf(c), [...local(c1), ...local(c2), ...local(c3)].sort());
        }
      }, 20_000);
    });

    it('affinity local, remote and none, with fallback when the preferred side has no backend', async () => {
      await c1.registry.apply([service(c1, { ...GLOBAL, 'service.cilium.io/affinity': 'local' })]);
      await eventually(async () => {
        assert.deepEqual(
          await backendsOf(c1),
          [...local(c1, '*'), ...local(c2), ...local(c3)].sort(),
        );
        assert.deepEqual(await lbOf(c1), ['127.1.1.5:80/TCP', '127.1.1.6:80/TCP']);
      }, 20_000);
      // No ready local backend left: everything usable is used.
      await c1.registry.apply([
        slice(c1, 'rebel-base-a', [
          { ip: '127.1.1.5', ready: false },
          { ip: '127.1.1.6', ready: false },
        ]),
      ]);
      await eventually(async () => {
        assert.deepEqual(await lbOf(c1), [
          '127.2.1.5:80/TCP',
          '127.2.1.6:80/TCP',
          '127.3.1.5:80/TCP',
          '127.3.1.6:80/TCP',
        ]);
      }, 20_000);
      await c1.registry.apply([
        slice(c1, 'rebel-base-a', [{ ip: '127.1.1.5' }, { ip: '127.1.1.6' }]),
        service(c1, { ...GLOBAL, 'service.cilium.io/affinity': 'remote' }),
      ]);
      await eventually(async () => {
        assert.deepEqual(
          await backendsOf(c1),
          [...local(c1), ...local(c2, '*'), ...local(c3, '*')].sort(),
        );
        assert.equal((await lbOf(c1)).length, 4);
      }, 20_000);
      await c1.registry.apply([service(c1, GLOBAL)]);
      await eventually(async () => {
        assert.equal((await lbOf(c1)).length, 6);
      }, 20_000);
    });

    it('a pod deleted and its IP reused within a second: no backend lost or left stale', async () => {
      // The IP moves from slice a to slice b (remove first, then add)...
      await c2.registry.apply([slice(c2, 'rebel-base-a', [{ ip: '127.2.1.5' }])]);
      await c2.registry.apply([slice(c2, 'rebel-base-b', [{ ip: '127.2.1.6' }])]);
      // ...and back the other way (add first, then remove).
      await c2.registry.apply([
        slice(c2, 'rebel-base-a', [{ ip: '127.2.1.5' }, { ip: '127.2.1.6' }]),
      ]);
      await c2.registry.delete('EndpointSlice', 'default', 'rebel-base-b');
      await c2.registry.apply([
        slice(c2, 'rebel-base-a', [{ ip: '127.2.1.5' }, { ip: '127.2.1.7' }]),
      ]);
      for (const c of [c1, c3]) {
        await eventually(async () => {
          const b = (await backendsOf(c)).filter((x) => x.startsWith('cluster2:'));
          assert.deepEqual(b, ['cluster2:127.2.1.5:80/TCP', 'cluster2:127.2.1.7:80/TCP']);
        }, 20_000);
      }
    });

    it('malformed ClusterService entries are rejected and counted', async () => {
      const before = await getJson<{ 'rejected-entries': Record<string, number> }>(
        `${c1.agentUrl}/v1/status`,
      );
      await c2.backend.put(
        'cilium/state/services/v1/cluster2/default/evil',
        '{"cluster":"cluster2","namespace":"default","name":"evil","frontends":{},"backends":{"not-an-ip":{"":{"Protocol":"TCP","Port":80}}},"hostnames":{},"labels":{},"selector":{},"includeExternal":true,"shared":true,"clusterID":2}',
      );
      await c2.backend.put(
        'cilium/state/services/v1/cluster2/default/spoof',
        '{"cluster":"cluster3","namespace":"default","name":"spoof","frontends":{},"backends":{},"hostnames":{},"labels":{},"selector":{},"includeExternal":true,"shared":true,"clusterID":3}',
      );
      await eventually(async () => {
        const st = await getJson<{ 'rejected-entries': Record<string, number> }>(
          `${c1.agentUrl}/v1/status`,
        );
        assert.equal(
          (st['rejected-entries'].cluster2 ?? 0) - (before['rejected-entries'].cluster2 ?? 0),
          2,
        );
      });
      const metrics = await (await fetch(`${c1.agentUrl}/metrics`)).text();
      assert.match(
        metrics,
        /rejected_entries_total\{[^}]*target_cluster="cluster2",kind="services"\} 2/,
      );
      await c2.backend.delete('cilium/state/services/v1/cluster2/default/evil');
      await c2.backend.delete('cilium/state/services/v1/cluster2/default/spoof');
    });

    it('a stopped remote: backends kept by default, revoked after the cache TTL, restored on return', async () => {
      await c3.etcd.stop();
      // cluster2 (no TTL) keeps cluster3's backends for as long as it is down.
      await new Promise((r) => setTimeout(r, 4000));
      assert.deepEqual(
        (await backendsOf(c2)).filter((b) => b.startsWith('cluster3:')),
        local(c3),
      );
      // cluster1 runs with --clustermesh-cache-ttl 2s: revoked.
      await eventually(async () => {
        assert.deepEqual(
          (await backendsOf(c1)).filter((b) => b.startsWith('cluster3:')),
          [],
        );
      }, 10_000);
      await eventually(async () => {
        const metrics = await (await fetch(`${c1.agentUrl}/metrics`)).text();
        assert.match(
          metrics,
          /cilium_clustermesh_remote_cluster_cache_revocations\{mode="ttl",target_cluster="cluster3"\} 1\n/,
        );
      }, 10_000);
      await c3.etcd.start();
      await c3.registry.apply([
        slice(c3, 'rebel-base-a', [{ ip: '127.3.1.5' }, { ip: '127.3.1.8' }]),
      ]);
      for (const c of [c1, c2]) {
        await eventually(async () => {
          assert.deepEqual(
            (await backendsOf(c)).filter((b) => b.startsWith('cluster3:')),
            ['cluster3:127.3.1.5:80/TCP', 'cluster3:127.3.1.8:80/TCP'],
          );
        }, 30_000);
      }
    });

    it('removing a cluster from the config drains its backends', async () => {
      await mesh.disconnect(c2, 'cluster3');
      await eventually(async () => {
        assert.deepEqual(
          (await backendsOf(c2)).filter((b) => b.startsWith('cluster3:')),
          [],
        );
      }, 20_000);
    });
  },
);
