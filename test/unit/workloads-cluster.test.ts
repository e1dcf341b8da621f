import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Pod } from '../../src/registry/objects.js';
import type { Harness } from './workloads-helpers.js';
import {
  assertInCIDR,
  deployment,
  eventually,
  httpGet,
  plan,
  pod,
  podsOf,
  service,
  startRuntime,
  tryConnect,
} from './workloads-helpers.js';

// Cluster 202: nodes 127.202.0.{1,2}, pods 127.202.{1,2}.0/24, services 127.202.128.0/17.
const ID = 202;
const { nodes } = plan(ID);
const ID_MIN = (ID << 16) + 256;
const ID_MAX = ((ID + 1) << 16) - 1;

const running: Harness[] = [];
async function start(opts: Parameters<typeof startRuntime>[1] = {}): Promise<Harness> {
  const h = await startRuntime(ID, opts);
  running.push(h);
  return h;
}
after(async () => {
  for (const h of running) await h.runtime.stop();
});

const echo = {
  image: 'clustermesh/echo',
  ports: [{ containerPort: 8080, name: 'http' }],
  env: [{ name: 'MESSAGE', value: JSON.stringify({ Galaxy: 'Alderaan', Cluster: 'spoofed' }) }],
};

function phaseOf(p: Pod): string {
  return `${p.status?.phase ?? '-'}/${p.status?.reason ?? '-'}`;
}

void describe('cluster runtime', () => {
  it('runs a Deployment behind a Service, scales it 3 → 1 → 0', async () => {
    const h = await start({ reservedServiceIPs: [`127.${ID}.128.2`] });
    const { registry, runtime } = h;

    // The nodes are registered.
    const cn = await registry.get('CiliumNode', undefined, `cluster${ID}-node2`);
    assert.deepEqual(cn?.spec.addresses, [{ type: 'InternalIP', ip: `127.${ID}.0.2` }]);
    assert.deepEqual(cn.spec.ipam?.podCIDRs, [`127.${ID}.2.0/24`]);

    await registry.apply([
      deployment('echo', 3, echo),
      service('echo', { selector: { app: 'echo' }, ports: [{ port: 80, targetPort: 'http' }] }),
    ]);
    const pods = await eventually(async () => {
      const list = await podsOf(registry, 'echo-');
      assert.equal(list.length, 3);
      assert.deepEqual(list.map(phaseOf), ['Running/-', 'Running/-', 'Running/-']);
      return list;
    });
    assert.equal(runtime.pods().length, 3);

    // Spread over both nodes, addresses from the node's CIDR, status like the kubelet's.
    const perNode = new Map<string, number>();
    for (const p of pods) {
      const node = nodes.find((n) => n.name === p.spec.nodeName);
      assert.ok(node, `pod ${p.metadata.name} is bound to a known node`);
      perNode.set(node.name, (perNode.get(node.name) ?? 0) + 1);
      const ip = p.status?.podIP ?? '';
      assertInCIDR(ip, node.podCIDR.replace(/\.0\/24$/, ''));
      assert.equal(p.status?.hostIP, node.ip);
      assert.deepEqual(p.status.podIPs, [{ ip }]);
      assert.ok(p.status.startTime, 'startTime is set');
      assert.equal(p.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
      assert.match(p.metadata.name, /^echo-[bcdfghjklmnpqrstvwxz2456789]{1,10}-[a-z0-9]{5}$/);
      assert.equal(
        p.metadata.name.split('-')[1],
        p.metadata.labels?.['pod-template-hash'],
        'the name carries the template hash',
      );
      assert.deepEqual(
        p.metadata.ownerReferences?.map((r) => `${r.kind}/${r.name} ${String(r.controller)}`),
        ['Deployment/echo true'],
      );
    }
    assert.deepEqual([...perNode.values()].sort(), [1, 2]);

    // The echo server answers on the pod IP, naming cluster, node and pod.
    for (const p of pods) {
      const ip = p.status?.podIP ?? '';
      const answer = await httpGet(ip, 8080, nodes[0]?.ip);
      assert.equal(answer.status, 200);
      assert.equal(answer.contentType, 'application/json');
      assert.ok(answer.text.endsWith('}\n'), 'the answer ends with a newline');
      assert.deepEqual(answer.json, {
        Galaxy: 'Alderaan',
        Cluster: `cluster${ID}`,
        Node: p.spec.nodeName,
        Namespace: 'default',
        Pod: p.metadata.name,
        PodIP: ip,
        Client: nodes[0]?.ip,
      });
      // The MESSAGE fields come first.
      assert.deepEqual(Object.keys(answer.json).slice(0, 2), ['Galaxy', 'Cluster']);
      const seen = h.connections.find((c) => c.pod.ip === ip);
      assert.deepEqual(seen && { ...seen, peer: { ...seen.peer, port: 0 } }, {
        cluster: `cluster${ID}`,
        node: p.spec.nodeName,
        pod: { namespace: 'default', name: p.metadata.name, ip },
        localPort: 8080,
        peer: { ip: nodes[0]?.ip, port: 0 },
      });
    }

    // One identity for the three replicas, in the cluster's range, with the cluster label.
    const identities = await registry.list('CiliumIdentity');
    assert.equal(identities.length, 1);
    const identity = identities[0];
    const id = Number(identity?.metadata.name);
    assert.ok(id >= ID_MIN && id <= ID_MAX, `identity ${id} in the cluster range`);
    assert.deepEqual(identity?.['security-labels'], {
      'k8s:app': 'echo',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name': 'default',
      'k8s:io.cilium.k8s.policy.serviceaccount': 'default',
      'k8s:io.kubernetes.pod.namespace': 'default',
      'k8s:io.cilium.k8s.policy.cluster': `cluster${ID}`,
    });

    // One CiliumEndpoint per pod.
    await eventually(async () => {
      const ceps = await registry.list('CiliumEndpoint', 'default');
      assert.deepEqual(
        ceps.map((c) => c.metadata.name).sort(),
        pods.map((p) => p.metadata.name).sort(),
      );
      for (const cep of ceps) {
        const p = pods.find((x) => x.metadata.name === cep.metadata.name);
        const node = nodes.find((n) => n.name === p?.spec.nodeName);
        assert.equal(cep.status.identity?.id, id);
        assert.ok(
          cep.status.identity.labels?.includes(`k8s:io.cilium.k8s.policy.cluster=cluster${ID}`),
          'the identity carries the cluster label',
        );
        assert.deepEqual(cep.status.networking, {
          addressing: [{ ipv4: p?.status?.podIP }],
          node: node?.ip,
        });
        assert.deepEqual(cep.status.encryption, { key: 0 });
        assert.deepEqual(cep.status['named-ports'], [
          { name: 'http', port: 8080, protocol: 'TCP' },
        ]);
        assert.ok((cep.status.id ?? 0) >= 1, 'endpoint ID is set');
      }
    });

    // The Service: a ClusterIP past the network, first and reserved addresses.
    const svc = await eventually(async () => {
      const s = await registry.get('Service', 'default', 'echo');
      assert.equal(s?.spec.clusterIP, `127.${ID}.128.3`);
      return s;
    });
    assert.deepEqual(svc.spec.clusterIPs, [`127.${ID}.128.3`]);

    const sliceOf = async () => {
      const slices = (await registry.list('EndpointSlice', 'default')).filter(
        (s) => s.metadata.labels?.['kubernetes.io/service-name'] === 'echo',
      );
      assert.equal(slices.length, 1);
      const [slice] = slices;
      assert.ok(slice, 'one slice');
      return slice;
    };
    await eventually(async () => {
      const slice = await sliceOf();
      assert.match(slice.metadata.name, /^echo-[a-z0-9]{5}$/);
      assert.equal(
        slice.metadata.labels?.['endpointslice.kubernetes.io/managed-by'],
        'endpointslice-controller.k8s.io',
      );
      assert.equal(slice.addressType, 'IPv4');
      assert.deepEqual(slice.ports, [{ name: '', port: 8080, protocol: 'TCP' }]);
      assert.deepEqual(
        slice.endpoints.map((e) => e.addresses[0]).sort(),
        pods.map((p) => p.status?.podIP).sort(),
      );
      for (const e of slice.endpoints) {
        const p = pods.find((x) => x.status?.podIP === e.addresses[0]);
        assert.deepEqual(e.conditions, { ready: true, serving: true, terminating: false });
        assert.equal(e.nodeName, p?.spec.nodeName);
        assert.deepEqual(e.targetRef, {
          kind: 'Pod',
          namespace: 'default',
          name: p?.metadata.name,
          uid: p?.metadata.uid,
        });
      }
    });
    await eventually(async () => {
      const d = await registry.get('Deployment', 'default', 'echo');
      assert.deepEqual(d?.status, {
        observedGeneration: 1,
        replicas: 3,
        updatedReplicas: 3,
        readyReplicas: 3,
        availableReplicas: 3,
      });
    });
    const sliceName = (await sliceOf()).metadata.name;

    // Scale down to one: two pods go, with their sockets and endpoints.
    await registry.apply([deployment('echo', 1, echo)]);
    const [survivor] = await eventually(async () => {
      const list = await podsOf(registry, 'echo-');
      assert.equal(list.length, 1);
      assert.equal(runtime.pods().length, 1);
      return list;
    });
    const gone = pods.filter((p) => p.metadata.name !== survivor?.metadata.name);
    assert.equal(gone.length, 2);
    for (const p of gone)
      assert.equal(await tryConnect(p.status?.podIP ?? '', 8080), 'ECONNREFUSED');
    await eventually(async () => {
      const slice = await sliceOf();
      assert.equal(slice.metadata.name, sliceName, 'updated in place');
      assert.deepEqual(
        slice.endpoints.map((e) => e.addresses[0]),
        [survivor?.status?.podIP],
      );
      assert.equal((await registry.list('CiliumEndpoint', 'default')).length, 1);
    });

    // And to zero.
    await registry.apply([deployment('echo', 0, echo)]);
    await eventually(async () => {
      assert.equal((await podsOf(registry, 'echo-')).length, 0);
      assert.equal(runtime.pods().length, 0);
      assert.deepEqual((await sliceOf()).endpoints, []);
      assert.equal((await registry.list('CiliumEndpoint', 'default')).length, 0);
      const d = await registry.get('Deployment', 'default', 'echo');
      assert.equal(d?.status?.replicas, 0);
    });
    for (const p of pods)
      assert.equal(await tryConnect(p.status?.podIP ?? '', 8080), 'ECONNREFUSED');
    // The identity stays for the next pod with these labels.
    assert.equal((await registry.list('CiliumIdentity')).length, 1);
    await runtime.stop();
  });

  it('rolls a changed template out and deletes the pods with their Deployment', async () => {
    const { registry, runtime } = await start();
    const v1 = { image: 'clustermesh/echo', ports: [{ containerPort: 8081 }] };
    const v2 = { ...v1, env: [{ name: 'MESSAGE', value: '{"Version":2}' }] };
    await registry.apply([deployment('roll', 2, v1)]);
    const before = await eventually(async () => {
      const list = await podsOf(registry, 'roll-');
      assert.deepEqual(list.map(phaseOf), ['Running/-', 'Running/-']);
      return list;
    });
    const oldHash = before[0]?.metadata.labels?.['pod-template-hash'];
    await registry.apply([deployment('roll', 2, v2)]);
    const afterRoll = await eventually(async () => {
      const list = await podsOf(registry, 'roll-');
      assert.equal(list.length, 2);
      assert.deepEqual(list.map(phaseOf), ['Running/-', 'Running/-']);
      for (const p of list) assert.notEqual(p.metadata.labels?.['pod-template-hash'], oldHash);
      return list;
    });
    for (const p of afterRoll) {
      const answer = await httpGet(p.status?.podIP ?? '', 8081);
      assert.equal(answer.json.Version, 2);
    }
    await registry.delete('Deployment', 'default', 'roll');
    await eventually(async () => {
      assert.equal((await podsOf(registry, 'roll-')).length, 0);
      assert.equal(runtime.pods().length, 0);
    });
    await runtime.stop();
  });

  it('fails pods it cannot run, with a reason', async () => {
    const { registry, runtime } = await start();
    await registry.apply([
      pod('redis', { containers: [{ name: 'web', image: 'redis:7' }] }),
      pod('lost', {
        nodeName: 'elsewhere',
        containers: [{ name: 'c', image: 'clustermesh/idle' }],
      }),
      pod('clash', {
        nodeName: nodes[1]?.name,
        containers: [
          { name: 'a', image: 'clustermesh/echo', ports: [{ containerPort: 8082 }] },
          { name: 'b', image: 'clustermesh/echo:1.0', ports: [{ containerPort: 8082 }] },
        ],
      }),
      pod('tagged', { containers: [{ name: 'c', image: 'clustermesh/echo:1.0' }] }),
      pod('idle', { containers: [{ name: 'c', image: 'clustermesh/idle' }] }),
    ]);
    const byName = await eventually(async () => {
      const list = await registry.list('Pod', 'default');
      const m = new Map(list.map((p) => [p.metadata.name, p]));
      assert.equal(phaseOf(m.get('redis') as Pod), 'Failed/UnknownImage');
      assert.equal(phaseOf(m.get('lost') as Pod), 'Failed/NodeNotFound');
      assert.equal(phaseOf(m.get('clash') as Pod), 'Failed/BindFailed');
      assert.equal(phaseOf(m.get('tagged') as Pod), 'Running/-');
      assert.equal(phaseOf(m.get('idle') as Pod), 'Running/-');
      return m;
    });
    assert.equal(
      byName.get('redis')?.status?.message,
      'container "web": image "redis:7" is not a built-in image (built-in: clustermesh/echo, clustermesh/idle, nginx, quay.io/cilium/json-mock, any tag)',
    );
    assert.match(
      byName.get('lost')?.status?.message ?? '',
      /node "elsewhere" is not a node of cluster cluster202/,
    );
    assert.match(
      byName.get('clash')?.status?.message ?? '',
      /container "b": cannot listen on 127\.202\.2\.\d+:8082/,
    );
    assert.equal(byName.get('redis')?.status?.podIP, undefined);
    // The failed pods hold no address, endpoint or socket.
    const ceps = (await registry.list('CiliumEndpoint', 'default')).map((c) => c.metadata.name);
    assert.deepEqual(ceps.sort(), ['idle', 'tagged']);
    assert.deepEqual(
      runtime
        .pods()
        .map((p) => p.name)
        .sort(),
      ['idle', 'tagged'],
    );
    // An echo container without ports listens on 80.
    const tagged = byName.get('tagged');
    assert.equal((await httpGet(tagged?.status?.podIP ?? '', 80)).json.Pod, 'tagged');

    // Fixing the image starts the pod.
    await registry.apply([
      pod('nginx', { containers: [{ name: 'web', image: 'clustermesh/idle' }] }),
    ]);
    await eventually(async () => {
      const p = await registry.get('Pod', 'default', 'nginx');
      assert.equal(p && phaseOf(p), 'Running/-');
    });
    await runtime.stop();
  });

  it('keeps pods pending while their node is full, and starts them when an address frees up', async () => {
    // A /30 holds two pods.
    const small = nodes.slice(0, 1).map((n) => ({ ...n, podCIDR: `127.${ID}.1.0/30` }));
    const { registry, runtime } = await start({ nodes: small });
    const idle = { containers: [{ name: 'c', image: 'clustermesh/idle' }] };
    await registry.apply([pod('a', idle), pod('b', idle)]);
    await eventually(() => assert.equal(runtime.pods().length, 2));
    await registry.apply([pod('c', idle)]);
    const c = await eventually(async () => {
      const p = await registry.get('Pod', 'default', 'c');
      assert.equal(p && phaseOf(p), 'Pending/IPExhausted');
      return p;
    });
    assert.match(c?.status?.message ?? '', /no free pod IP in 127\.202\.1\.0\/30/);
    const freed = runtime.pods().find((p) => p.name === 'a')?.ip;
    await registry.delete('Pod', 'default', 'a');
    await eventually(async () => {
      const p = await registry.get('Pod', 'default', 'c');
      assert.equal(p && phaseOf(p), 'Running/-');
      assert.equal(p?.status?.podIP, freed);
    });
    await runtime.stop();
  });

  it('allocates ClusterIPs, leaves given ones alone, and manages only its own slices', async () => {
    const { registry, runtime } = await start({ reservedServiceIPs: [`127.${ID}.128.10`] });
    const idlePort = (name: string, port: number, labels: Record<string, string>) =>
      pod(
        name,
        {
          containers: [
            { name: 'c', image: 'clustermesh/idle', ports: [{ containerPort: port, name: 'web' }] },
          ],
        },
        labels,
      );
    await registry.apply([
      service('a', { selector: { app: 'x' }, ports: [{ port: 80, targetPort: 'web' }] }),
      service('dns', { clusterIP: `127.${ID}.128.10`, ports: [{ port: 53, protocol: 'UDP' }] }),
      service('outside', { clusterIP: '10.0.0.1', ports: [{ port: 80 }] }),
      service('headless', { clusterIP: 'None', selector: { app: 'x' }, ports: [{ port: 80 }] }),
      service('ext', { type: 'ExternalName', externalName: 'example.com' }),
      service('plain', { ports: [{ port: 80 }] }),
      idlePort('x1', 8001, { app: 'x' }),
      idlePort('x2', 8002, { app: 'x' }),
      idlePort('y1', 8003, { app: 'y' }),
    ]);
    const ips = await eventually(async () => {
      const m = new Map(
        (await registry.list('Service', 'default')).map((s) => [s.metadata.name, s.spec.clusterIP]),
      );
      assert.ok(m.get('a') !== undefined && m.get('plain') !== undefined, 'ClusterIPs allocated');
      return m;
    });
    assert.deepEqual([ips.get('a'), ips.get('plain')].sort(), [
      `127.${ID}.128.2`,
      `127.${ID}.128.3`,
    ]);
    assert.equal(ips.get('dns'), `127.${ID}.128.10`);
    assert.equal(ips.get('outside'), '10.0.0.1');
    assert.equal(ips.get('headless'), 'None');
    assert.equal(ips.get('ext'), undefined);

    // A hand-made slice naming the Service, without the managed-by label.
    await registry.apply([
      {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name: 'a-manual', labels: { 'kubernetes.io/service-name': 'a' } },
        addressType: 'IPv4',
        endpoints: [{ addresses: ['10.1.1.1'] }],
        ports: [],
      },
    ]);
    const managed = async (svc: string) =>
      (await registry.list('EndpointSlice', 'default')).filter(
        (s) =>
          s.metadata.labels?.['kubernetes.io/service-name'] === svc &&
          s.metadata.labels['endpointslice.kubernetes.io/managed-by'] !== undefined,
      );
    // Named target ports resolve per pod: two port numbers, two slices.
    await eventually(async () => {
      const slices = await managed('a');
      const summary = slices
        .map(
          (s) =>
            `${s.ports.map((p) => p.port).join(',')}:${s.endpoints.map((e) => e.targetRef?.name).join(',')}`,
        )
        .sort();
      assert.deepEqual(summary, ['8001:x1', '8002:x2']);
      const headless = await managed('headless');
      assert.equal(headless.length, 1);
      assert.deepEqual(headless[0]?.ports, [{ name: '', port: 80, protocol: 'TCP' }]);
      assert.equal(headless[0].endpoints.length, 2);
    });
    assert.deepEqual(await managed('plain'), []);

    // Dropping the selector drops the managed slices, not the hand-made one.
    await registry.apply([service('a', { ports: [{ port: 80, targetPort: 'web' }] })]);
    await eventually(async () => assert.deepEqual(await managed('a'), []));
    assert.ok(
      await registry.get('EndpointSlice', 'default', 'a-manual'),
      'the hand-made slice stays',
    );
    // Re-applying without a clusterIP gets the same one back.
    await eventually(async () => {
      const a = await registry.get('Service', 'default', 'a');
      assert.equal(a?.spec.clusterIP, ips.get('a'));
    });
    // Deleting the Service frees its address for the next one (events are handled in order).
    await registry.delete('Service', 'default', 'a');
    await registry.apply([service('b', { ports: [{ port: 80 }] })]);
    await eventually(async () => {
      const b = await registry.get('Service', 'default', 'b');
      assert.equal(b?.spec.clusterIP, ips.get('a'));
    });
    await runtime.stop();
  });
});
