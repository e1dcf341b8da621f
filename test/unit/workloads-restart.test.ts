import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import type { Registry } from '../../src/registry/registry.js';
import { ClusterRuntime } from '../../src/workloads/cluster-runtime.js';
import {
  deployment,
  eventually,
  httpGet,
  log,
  plan,
  pod,
  podsOf,
  service,
  startRuntime,
  tryConnect,
} from './workloads-helpers.js';

// Cluster 203: nodes 127.203.0.{1,2}, pods 127.203.{1,2}.0/24, services 127.203.128.0/17.
const ID = 203;
const { nodes } = plan(ID);

const echo = { image: 'clustermesh/echo', ports: [{ containerPort: 8080, name: 'http' }] };

/** Everything a restart must keep, in a comparable form. */
async function snapshot(registry: Registry): Promise<Record<string, unknown>> {
  const pods = await registry.list('Pod', 'default');
  const ceps = await registry.list('CiliumEndpoint', 'default');
  const ids = await registry.list('CiliumIdentity');
  const svcs = await registry.list('Service', 'default');
  const slices = await registry.list('EndpointSlice', 'default');
  return {
    pods: pods.map((p) => `${p.metadata.name} ${p.spec.nodeName ?? '-'} ${p.status?.podIP ?? '-'}`),
    endpoints: ceps.map(
      (c) => `${c.metadata.name} ${c.status.id ?? '-'} ${c.status.identity?.id ?? '-'}`,
    ),
    identities: ids.map((i) => `${i.metadata.name} ${JSON.stringify(i['security-labels'])}`),
    services: svcs.map((s) => `${s.metadata.name} ${s.spec.clusterIP ?? '-'}`),
    slices: slices.map(
      (s) => `${s.metadata.name} ${s.endpoints.map((e) => e.addresses[0]).join(',')}`,
    ),
  };
}

void describe('cluster runtime restart', () => {
  it('a new runtime on the same kvstore resumes the pods with their addresses and identities', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const first = await startRuntime(ID, { backend });
    await first.registry.apply([
      deployment('web', 3, echo),
      pod('solo', { containers: [{ name: 'c', image: 'clustermesh/idle' }] }, { app: 'solo' }),
      service('web', { selector: { app: 'web' }, ports: [{ port: 80, targetPort: 'http' }] }),
    ]);
    await eventually(async () => {
      assert.equal(first.runtime.pods().length, 4);
      const slices = await first.registry.list('EndpointSlice', 'default');
      assert.equal(slices[0]?.endpoints.filter((e) => e.conditions?.ready === true).length, 3);
      const d = await first.registry.get('Deployment', 'default', 'web');
      assert.equal(d?.status?.readyReplicas, 3);
      assert.equal((await first.registry.list('CiliumEndpoint', 'default')).length, 4);
    });
    const before = await snapshot(first.registry);
    const running = [...first.runtime.pods()].sort((a, b) => a.name.localeCompare(b.name));
    const web = running.filter((p) => p.name.startsWith('web-'));
    assert.equal((await first.registry.list('CiliumIdentity')).length, 2);

    await first.runtime.stop();
    assert.deepEqual(first.runtime.pods(), []);
    for (const p of web) assert.equal(await tryConnect(p.ip, 8080), 'ECONNREFUSED');
    // The registry is left as it was.
    assert.deepEqual(await snapshot(first.registry), before);

    const second = await startRuntime(ID, { backend });
    try {
      // start() resolves once the existing pods were reconciled: they run again, unchanged.
      assert.deepEqual(
        [...second.runtime.pods()].sort((a, b) => a.name.localeCompare(b.name)),
        running,
      );
      assert.deepEqual(await snapshot(second.registry), before);
      for (const p of web) {
        const answer = await httpGet(p.ip, 8080, nodes[1]?.ip);
        assert.equal(answer.json.Pod, p.name);
        assert.equal(answer.json.Node, p.node);
        assert.equal(answer.json.Client, nodes[1]?.ip);
      }
      assert.deepEqual(
        second.connections.map((c) => `${c.pod.name} ${c.peer.ip} ${c.localPort}`).sort(),
        web.map((p) => `${p.name} ${nodes[1]?.ip} 8080`),
      );

      // New allocations do not collide with the restored ones.
      await second.registry.apply([
        pod('late', { containers: [{ name: 'c', image: 'clustermesh/idle' }] }, { app: 'web' }),
        service('other', { ports: [{ port: 80 }] }),
      ]);
      const late = await eventually(async () => {
        const p = await second.registry.get('Pod', 'default', 'late');
        assert.equal(p?.status?.phase, 'Running');
        const other = await second.registry.get('Service', 'default', 'other');
        assert.ok((other?.spec.clusterIP ?? '') !== '', 'ClusterIP allocated');
        return p;
      });
      assert.ok(
        !running.some((p) => p.ip === late.status?.podIP),
        `new pod IP ${late.status?.podIP ?? ''} is not a running pod's`,
      );
      const svcs = await second.registry.list('Service', 'default');
      assert.equal(new Set(svcs.map((s) => s.spec.clusterIP)).size, 2);
      // Same labels, same identity: still two identities.
      assert.equal((await second.registry.list('CiliumIdentity')).length, 2);
      assert.equal((await podsOf(second.registry, 'web-')).length, 3);
    } finally {
      await second.runtime.stop();
    }
  });

  it('puts back what others delete: endpoints, slices, deployment pods', async () => {
    const { registry, runtime } = await startRuntime(ID);
    try {
      await registry.apply([
        deployment('api', 2, { image: 'clustermesh/idle', ports: [{ containerPort: 9000 }] }),
        service('api', { selector: { app: 'api' }, ports: [{ port: 80, targetPort: 9000 }] }),
      ]);
      const ready = async (): Promise<string[]> => {
        const pods = await podsOf(registry, 'api-');
        assert.deepEqual(
          pods.map((p) => p.status?.phase),
          ['Running', 'Running'],
        );
        const ceps = await registry.list('CiliumEndpoint', 'default');
        assert.equal(ceps.length, 2);
        const slices = await registry.list('EndpointSlice', 'default');
        assert.equal(slices[0]?.endpoints.length, 2);
        return pods.map((p) => p.metadata.name);
      };
      const [first, second] = await eventually(ready);
      const cep = await registry.get('CiliumEndpoint', 'default', second ?? '');
      const slice = (await registry.list('EndpointSlice', 'default'))[0];
      await registry.delete('CiliumEndpoint', 'default', cep?.metadata.name ?? '');
      await registry.delete('EndpointSlice', 'default', slice?.metadata.name ?? '');
      await registry.delete('Pod', 'default', first ?? '');
      const names = await eventually(async () => {
        const now = await ready();
        assert.ok(!now.includes(first ?? ''), 'the deleted pod is replaced');
        return now;
      });
      assert.equal(names.length, 2);
      assert.ok(
        await registry.get('CiliumEndpoint', 'default', cep?.metadata.name ?? ''),
        'the endpoint is back',
      );
    } finally {
      await runtime.stop();
    }
  });

  it('start gives up when its signal aborts', async () => {
    const ac = new AbortController();
    ac.abort();
    const p = plan(ID);
    const runtime = new ClusterRuntime({
      ...p,
      backend: new MemoryBackend(new MemoryStore()),
      log,
    });
    await assert.rejects(runtime.start(ac.signal), { code: 'ERR_ABORTED' });
    assert.deepEqual(runtime.pods(), []);
    await runtime.stop();
  });

  it('start rejects overlapping pod CIDRs with one line', async () => {
    const overlapping = nodes.map((n) => ({ ...n, podCIDR: `127.${ID}.0.0/16` }));
    await assert.rejects(startRuntime(ID, { nodes: overlapping }), {
      code: 'ERR_INVALID_CONFIG',
      message: `cluster cluster${ID}: pod CIDRs of nodes cluster${ID}-node1 (127.${ID}.0.0/16) and cluster${ID}-node2 (127.${ID}.0.0/16) overlap`,
    });
  });
});
