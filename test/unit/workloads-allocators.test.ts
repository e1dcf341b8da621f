import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseObject } from '../../src/registry/validation.js';
import type { Pod, PodTemplate, Service } from '../../src/registry/objects.js';
import { desiredSlices, resolveTargetPort } from '../../src/workloads/endpointslices.js';
import { templateHash } from '../../src/workloads/deployments.js';
import { podSecurityLabels } from '../../src/workloads/identity-allocator.js';
import { imageName, resolveImage } from '../../src/workloads/images.js';
import { PodIPAM } from '../../src/workloads/ipam.js';
import { validateNodes } from '../../src/workloads/nodes.js';
import { pickNode, placementOf } from '../../src/workloads/scheduler.js';
import { ServiceIPAllocator } from '../../src/workloads/service-ips.js';

// No sockets here: addresses are only computed.
const nodes = [
  { name: 'n1', ip: '127.204.0.1', podCIDR: '127.204.1.0/24' },
  { name: 'n2', ip: '127.204.0.2', podCIDR: '127.204.2.0/24' },
];

/** Objects as the registry stores them (defaults applied). */
function parsedPod(raw: unknown): Pod {
  return parseObject(raw).object as Pod;
}

function parsedService(raw: unknown): Service {
  return parseObject(raw).object as Service;
}

function pod(name: string, extra: Record<string, unknown> = {}): Pod {
  return parsedPod({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, uid: `uid-${name}`, labels: { app: 'x' } },
    spec: { containers: [{ name: 'c', image: 'clustermesh/idle' }] },
    ...extra,
  });
}

void describe('workload allocators', () => {
  it('pod IPAM: lowest free host address, kept per owner, released, exhausted', () => {
    const ipam = new PodIPAM([{ name: 'n', podCIDR: '127.204.1.0/30' }]);
    assert.equal(ipam.allocate('a', 'n'), '127.204.1.1');
    assert.equal(ipam.allocate('a', 'n'), '127.204.1.1', 'an owner keeps its address');
    assert.equal(ipam.allocate('b', 'n'), '127.204.1.2');
    assert.equal(ipam.allocate('c', 'n'), undefined, 'a /30 has two host addresses');
    assert.equal(ipam.used('n'), 2);
    assert.deepEqual(ipam.release('a'), { node: 'n', ip: '127.204.1.1' });
    assert.equal(ipam.claim('c', 'n', '127.204.1.2'), false, 'taken');
    assert.equal(ipam.claim('c', 'n', '127.204.1.3'), false, 'broadcast');
    assert.equal(ipam.claim('c', 'n', '127.204.1.1'), true);
    assert.deepEqual(ipam.addressOf('c'), { node: 'n', ip: '127.204.1.1' });
  });

  it('service IPs: skip network, first, broadcast and reserved addresses; claims', () => {
    const alloc = new ServiceIPAllocator('127.204.128.0/29', ['127.204.128.3']);
    assert.equal(alloc.allocate('a'), '127.204.128.2');
    assert.equal(alloc.allocate('b'), '127.204.128.4');
    assert.equal(alloc.claim('dns', '127.204.128.3'), true, 'a reserved IP may be asked for');
    assert.equal(alloc.claim('c', '127.204.128.4'), false);
    assert.equal(alloc.holder('127.204.128.4'), 'b');
    assert.equal(alloc.claim('c', '10.0.0.1'), false);
    assert.equal(alloc.allocate('c'), '127.204.128.5');
    assert.equal(alloc.allocate('d'), '127.204.128.6');
    assert.equal(alloc.allocate('e'), undefined, '.7 is the broadcast address');
    alloc.release('a');
    assert.equal(alloc.allocate('e'), '127.204.128.2');
  });

  it('validates node lists', () => {
    validateNodes('c', nodes);
    const fails = (list: typeof nodes, message: string): void => {
      assert.throws(
        () => {
          validateNodes('c', list);
        },
        { code: 'ERR_INVALID_CONFIG', message: `cluster c: ${message}` },
      );
    };
    fails(
      [
        nodes[0] as (typeof nodes)[0],
        { ...(nodes[1] as (typeof nodes)[0]), podCIDR: '127.204.1.128/25' },
      ],
      'pod CIDRs of nodes n1 (127.204.1.0/24) and n2 (127.204.1.128/25) overlap',
    );
    fails(
      [
        nodes[0] as (typeof nodes)[0],
        { ...(nodes[0] as (typeof nodes)[0]), ip: '127.204.0.9', podCIDR: '127.204.9.0/24' },
      ],
      'node n1 is listed twice',
    );
    fails(
      [{ name: 'n', ip: '127.204.1.7', podCIDR: '127.204.1.0/24' }],
      "node n's IP lies inside the pod CIDR 127.204.1.0/24 of node n",
    );
    fails(
      [{ name: 'n', ip: '127.204.0.1', podCIDR: 'fd00::/64' }],
      'node n: pod CIDR "fd00::/64" is not an IPv4 CIDR of /30 or larger',
    );
    fails([], 'no nodes');
  });

  it('schedules on the least loaded node, ties to the first; keeps bound pods where they are', () => {
    assert.equal(pickNode(nodes, () => 0)?.name, 'n1');
    assert.equal(pickNode(nodes, (n) => (n === 'n1' ? 2 : 1))?.name, 'n2');
    assert.deepEqual(placementOf(pod('p'), nodes), { kind: 'unbound' });
    assert.equal(
      placementOf(pod('p', { status: { hostIP: '127.204.0.2' } }), nodes).kind === 'bound',
      true,
    );
    assert.deepEqual(
      placementOf(
        pod('p', { spec: { nodeName: 'n9', containers: [{ name: 'c', image: 'x' }] } }),
        nodes,
      ),
      { kind: 'unknown-node', nodeName: 'n9' },
    );
  });

  it('knows the built-in images with any tag', () => {
    assert.equal(imageName('clustermesh/echo:1.0'), 'clustermesh/echo');
    assert.equal(imageName('clustermesh/echo@sha256:abc'), 'clustermesh/echo');
    assert.equal(imageName('localhost:5000/clustermesh/echo'), 'localhost:5000/clustermesh/echo');
    assert.equal(resolveImage('clustermesh/idle:latest')?.name, 'clustermesh/idle');
    assert.equal(resolveImage('docker.io/clustermesh/echo'), undefined);
    assert.equal(resolveImage('nginx:1.15.8')?.name, 'nginx');
    assert.equal(resolveImage('docker.io/library/nginx')?.name, 'nginx');
    assert.equal(resolveImage('redis'), undefined);
  });

  it('hashes pod templates independently of key order', () => {
    const a: PodTemplate = {
      metadata: { labels: { app: 'x', tier: 'web' } },
      spec: { containers: [{ name: 'c', image: 'i', protocol: 'TCP' }] },
    };
    const b: PodTemplate = {
      spec: { containers: [{ image: 'i', name: 'c', protocol: 'TCP' }] },
      metadata: { labels: { tier: 'web', app: 'x' } },
    };
    assert.equal(templateHash(a), templateHash(b));
    assert.match(templateHash(a), /^[bcdfghjklmnpqrstvwxz2456789]{1,10}$/);
    assert.notEqual(
      templateHash(a),
      templateHash({ ...a, spec: { containers: [{ name: 'c', image: 'j' }] } }),
    );
  });

  it('derives identity labels: pod labels, namespace and cluster, no pod-template-hash', () => {
    const p = pod('p', {
      metadata: {
        name: 'p',
        namespace: 'prod',
        labels: { app: 'x', 'pod-template-hash': 'abc', 'io.cilium.k8s.policy.cluster': 'evil' },
      },
    });
    assert.deepEqual(podSecurityLabels(p, 'c1'), {
      'k8s:app': 'x',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name': 'prod',
      'k8s:io.cilium.k8s.policy.serviceaccount': 'default',
      'k8s:io.cilium.k8s.policy.cluster': 'c1',
      'k8s:io.kubernetes.pod.namespace': 'prod',
    });
  });

  it('adds namespace labels and the service account; a pod cannot forge them', () => {
    const p = pod('p', {
      metadata: {
        name: 'p',
        namespace: 'prod',
        labels: {
          app: 'x',
          'io.cilium.k8s.namespace.labels.team': 'evil',
          'io.cilium.k8s.policy.serviceaccount': 'admin',
        },
      },
      spec: { serviceAccountName: 'web', containers: [{ name: 'c', image: 'clustermesh/echo' }] },
    });
    assert.deepEqual(podSecurityLabels(p, 'c1', { team: 'blue' }), {
      'k8s:app': 'x',
      'k8s:io.cilium.k8s.namespace.labels.team': 'blue',
      'k8s:io.cilium.k8s.namespace.labels.kubernetes.io/metadata.name': 'prod',
      'k8s:io.cilium.k8s.policy.serviceaccount': 'web',
      'k8s:io.cilium.k8s.policy.cluster': 'c1',
      'k8s:io.kubernetes.pod.namespace': 'prod',
    });
  });

  it('resolves target ports and builds slices from ready pods only', () => {
    const svc = parsedService({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 's', uid: 'svc-uid' },
      spec: {
        selector: { app: 'x' },
        ports: [
          { name: 'web', port: 80, targetPort: 'http' },
          { name: 'raw', port: 81, targetPort: 9000 },
          { name: 'same', port: 82 },
        ],
      },
    });
    const withPort = (name: string, phase: string, ip?: string): Pod =>
      pod(name, {
        spec: {
          nodeName: 'n1',
          containers: [
            {
              name: 'c',
              image: 'clustermesh/echo',
              ports: [{ containerPort: 8080, name: 'http' }],
            },
          ],
        },
        status: {
          phase,
          ...(ip === undefined ? {} : { podIP: ip }),
          conditions: [{ type: 'Ready', status: phase === 'Running' ? 'True' : 'False' }],
        },
      });
    const ready = withPort('a', 'Running', '127.204.1.1');
    assert.equal(resolveTargetPort(svc.spec.ports[0] as Service['spec']['ports'][0], ready), 8080);
    const slices = desiredSlices(svc, [
      ready,
      withPort('b', 'Pending'),
      withPort('c', 'Failed', '127.204.1.3'),
      pod('other', {
        metadata: { name: 'other', labels: { app: 'y' } },
        status: { podIP: '127.204.1.4' },
      }),
    ]);
    assert.equal(slices.length, 1);
    const [slice] = slices;
    assert.match(slice?.metadata.name ?? '', /^s-[a-z0-9]{5}$/);
    assert.deepEqual(slice?.ports, [
      { name: 'web', port: 8080, protocol: 'TCP' },
      { name: 'raw', port: 9000, protocol: 'TCP' },
      { name: 'same', port: 82, protocol: 'TCP' },
    ]);
    assert.deepEqual(slice.endpoints, [
      {
        addresses: ['127.204.1.1'],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: 'n1',
        targetRef: { kind: 'Pod', namespace: 'default', name: 'a', uid: 'uid-a' },
      },
    ]);
    // Deterministic names: the same Service gets the same slice name.
    assert.equal(desiredSlices(svc, [])[0]?.metadata.name, slice.metadata.name);
    assert.deepEqual(desiredSlices({ ...svc, spec: { ...svc.spec, selector: {} } }, [ready]), []);
  });
});
