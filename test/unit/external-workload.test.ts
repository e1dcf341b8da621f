import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry as MetricsRegistry } from 'prom-client';
import { ExternalWorkloadController } from '../../src/externalworkload/controller.js';
import { installScript, parseInstallScript } from '../../src/externalworkload/install.js';
import { WorkloadRegistrar } from '../../src/externalworkload/join.js';
import {
  decodeRegistration,
  encodeRegistration,
  registrationRequest,
} from '../../src/externalworkload/registration.js';
import { formatVmStatus } from '../../src/externalworkload/status.js';
import {
  RefusalReason,
  externalWorkloadObject,
  ipInCidr,
  parseLabelsFlag,
  validateRegistration,
  workloadIdentityLabels,
} from '../../src/externalworkload/workload.js';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { clusterIdentityRange } from '../../src/keyspace/index.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { pickVmAddress } from '../../src/localmesh/vm.js';
import {
  MAX_NODES,
  clusterAddressing,
  nodeOfIP,
  vmAddresses,
} from '../../src/localmesh/addressing.js';
import { ServiceIPAllocator } from '../../src/workloads/service-ips.js';
import type { CiliumExternalWorkload } from '../../src/registry/objects.js';
import { Registry } from '../../src/registry/registry.js';
import { parseObject as validateObject } from '../../src/registry/validation.js';
import { eventually } from '../support/eventually.js';

const cew = (
  name: string,
  opts: {
    cidr?: string;
    labels?: Record<string, string>;
    status?: CiliumExternalWorkload['status'];
  } = {},
): CiliumExternalWorkload => ({
  ...externalWorkloadObject(name, { ipv4AllocCidr: opts.cidr, labels: opts.labels }),
  ...(opts.status === undefined ? {} : { status: opts.status }),
});

describe('external workloads: the kind and its rules', () => {
  it('validates CiliumExternalWorkloads: IPv4 CIDR, labels, status fields', () => {
    const ok = validateObject(cew('vm1', { cidr: '10.192.1.0/30', labels: { app: 'db' } }));
    assert.equal(ok.object.kind, 'CiliumExternalWorkload');
    assert.throws(
      () => validateObject(cew('vm1', { cidr: '10.192.1.0/33' })),
      /spec\.ipv4-alloc-cidr: must be a valid IPv4 CIDR/,
    );
    assert.throws(
      () => validateObject(cew('vm1', { cidr: 'fd00::/64' })),
      /must be a valid IPv4 CIDR/,
    );
    assert.throws(() => validateObject(cew('VM_1')), /metadata\.name/);
    assert.throws(
      () => validateObject({ ...cew('vm1'), status: { ip: 'nope' } }),
      /status\.ip: must be a valid IP address/,
    );
  });

  it('parses --labels and refuses a bad pair with one line', () => {
    assert.deepEqual(parseLabelsFlag('app=db, tier=backend'), { app: 'db', tier: 'backend' });
    assert.deepEqual(parseLabelsFlag(''), {});
    assert.throws(() => parseLabelsFlag('app'), /--labels "app": expected key=value/);
    assert.throws(
      () => parseLabelsFlag('app=a b'),
      (err: unknown) => isClusterMeshError(err, ErrorCode.InvalidArgument),
    );
  });

  it('derives identity labels: k8s: labels, namespace and name defaults, the cluster forced', () => {
    const labels = workloadIdentityLabels(
      cew('vm1', { labels: { app: 'db', 'io.cilium.k8s.policy.cluster': 'other' } }),
      'cluster1',
    );
    assert.deepEqual(labels, {
      'k8s:app': 'db',
      'k8s:io.kubernetes.pod.namespace': 'default',
      'k8s:io.kubernetes.pod.name': 'vm1',
      'k8s:io.cilium.k8s.policy.cluster': 'cluster1',
    });
    const ns = workloadIdentityLabels(
      cew('vm2', { labels: { 'io.kubernetes.pod.namespace': 'db' } }),
      'cluster2',
    );
    assert.equal(ns['k8s:io.kubernetes.pod.namespace'], 'db');
  });

  it('checks a registration: unknown name, address, CIDR, address in use, name in use', () => {
    const none = (): string | undefined => undefined;
    const v = (
      workload: CiliumExternalWorkload | undefined,
      ips: string[],
      ownerOf: (ip: string) => string | undefined = none,
    ) => validateRegistration({ name: 'vm1', ips }, { workload, ownerOf });
    const reasonOf = (r: ReturnType<typeof v>): string => (r.ok ? 'ok' : r.reason);
    assert.equal(reasonOf(v(undefined, ['127.1.250.1'])), RefusalReason.UnknownWorkload);
    assert.equal(reasonOf(v(cew('vm1'), [])), RefusalReason.InvalidAddress);
    assert.equal(reasonOf(v(cew('vm1'), ['fd00::1'])), RefusalReason.InvalidAddress);
    const inCidr = cew('vm1', { cidr: '127.1.250.0/30' });
    assert.deepEqual(v(inCidr, ['127.1.250.2']), { ok: true, ip: '127.1.250.2' });
    const outside = v(inCidr, ['127.1.251.1']);
    assert.deepEqual(outside, {
      ok: false,
      reason: RefusalReason.OutsideCidr,
      message: "127.1.251.1 is outside vm1's ipv4-alloc-cidr 127.1.250.0/30",
    });
    assert.equal(
      reasonOf(v(cew('vm1'), ['127.1.250.2'], () => 'external workload vm2')),
      RefusalReason.AddressInUse,
    );
    const connected = cew('vm1', { status: { ip: '127.1.250.1', connected: true } });
    const other = v(connected, ['127.1.250.9']);
    assert.equal(reasonOf(other), RefusalReason.NameInUse);
    assert.match(other.ok ? '' : other.message, /vm1 is already connected from 127\.1\.250\.1/);
    // The same VM coming back is fine.
    assert.equal(reasonOf(v(connected, ['127.1.250.1'])), 'ok');
    assert.equal(ipInCidr('10.0.0.255', '10.0.0.0/24'), true);
    assert.equal(ipInCidr('10.0.1.0', '10.0.0.0/24'), false);
    assert.equal(ipInCidr('10.0.0.1', '0.0.0.0/0'), true);
  });

  it('encodes a registration as a Node, with the refusal as an extra field', () => {
    const req = registrationRequest({
      name: 'vm1',
      cluster: 'cluster1',
      clusterId: 1,
      ip: '127.1.250.1',
    });
    const text = encodeRegistration(req);
    assert.match(
      text,
      /^\{"Name":"vm1","Cluster":"cluster1","IPAddresses":\[\{"Type":"InternalIP","IP":"127\.1\.250\.1"\}\]/,
    );
    assert.equal(decodeRegistration('vm1', text).node.NodeIdentity, 0);
    const refused = encodeRegistration({ ...req, refused: 'no "vm1"' });
    assert.equal(decodeRegistration('vm1', refused).refused, 'no "vm1"');
    assert.throws(
      () => decodeRegistration('vm1', 'nope'),
      (err: unknown) => isClusterMeshError(err, ErrorCode.InvalidEntry),
    );
  });

  it('writes an install script whose inputs read back unchanged', () => {
    const inputs = {
      cluster: 'cluster1',
      clusterId: 1,
      endpoint: 'https://cluster1.mesh.cilium.io:2379',
      etcdIP: '127.1.128.2',
      tls: { ca: 'CA PEM\n', cert: 'CERT PEM\n', key: "KEY 'PEM'\n" },
    };
    const script = installScript(inputs);
    assert.match(script, /^#!\/bin\/sh\n/);
    assert.match(script, /exec clustermesh agent --join-cluster --cluster-name "\$CLUSTER_NAME"/);
    assert.deepEqual(parseInstallScript(script, 'x.sh'), inputs);
    assert.throws(() => parseInstallScript('#!/bin/sh\n', 'x.sh'), /x\.sh: not an install script/);
  });

  it('picks VM addresses in the VM range 127.<id>.250.0/24, inside a loopback CIDR', () => {
    assert.equal(pickVmAddress(1, undefined, new Set()), '127.1.250.1');
    assert.equal(pickVmAddress(2, undefined, new Set(['127.2.250.1'])), '127.2.250.2');
    assert.equal(pickVmAddress(4, undefined, new Set()), '127.4.250.1');
    assert.equal(pickVmAddress(1, '127.1.250.8/30', new Set()), '127.1.250.9');
    assert.equal(pickVmAddress(1, '127.1.250.7/32', new Set()), '127.1.250.7');
    assert.equal(pickVmAddress(5, '127.0.0.0/8', new Set(['127.5.250.1'])), '127.5.250.2');
    assert.equal(pickVmAddress(1, '10.192.1.0/24', new Set()), '127.1.250.1');
    // A loopback CIDR outside the VM range would hand out a node's, pod's or Service's address.
    assert.throws(
      () => pickVmAddress(1, '127.1.0.0/29', new Set()),
      /^ClusterMeshError: ipv4-alloc-cidr 127\.1\.0\.0\/29 has no address in 127\.1\.250\.0\/24/,
    );
    assert.throws(
      () => pickVmAddress(1, '127.1.250.4/31', new Set(['127.1.250.4', '127.1.250.5'])),
      /no free VM address left in 127\.1\.250\.4\/31 ∩ 127\.1\.250\.0\/24/,
    );
  });

  it('VM addresses never collide with pod CIDRs, node IPs, DNS, etcd or allocated ClusterIPs', () => {
    for (const id of [1, 4, 5, 255]) {
      const a = clusterAddressing(id, MAX_NODES);
      assert.equal(a.vmCIDR, `127.${id}.250.0/24`);
      const vms = vmAddresses(a);
      assert.equal(vms.length, 256);
      for (const ip of vms) {
        assert.equal(nodeOfIP(a.nodes, ip), undefined, `${ip} is no node's or pod's`);
        assert.ok(ip !== a.dnsIP && ip !== a.etcdIP, `${ip} is not DNS or etcd`);
      }
      // The ClusterIPs below the VM range all taken (as up reserves): the next ones skip it.
      const alloc = new ServiceIPAllocator(a.serviceCIDR, [a.dnsIP, a.etcdIP, ...vms]);
      for (let third = 128; third < 250; third++) {
        for (let fourth = 0; fourth < 256; fourth++) {
          alloc.claim(`default/c${third}-${fourth}`, `127.${id}.${third}.${fourth}`);
        }
      }
      const given = Array.from({ length: 300 }, (_, i) => alloc.allocate(`default/s${i}`));
      assert.equal(given[0], `127.${id}.251.0`, 'the first ClusterIP after the VM range');
      assert.deepEqual(
        given.filter((ip) => ip?.startsWith(`127.${id}.250.`) === true),
        [],
        'no ClusterIP in the VM range',
      );
    }
  });

  it('prints vm status as a table', () => {
    const out = formatVmStatus([
      cew('vm1', {
        cidr: '127.1.250.0/30',
        labels: { app: 'db' },
        status: { ip: '127.1.250.1', id: 65792, registered: true, connected: true },
      }),
      cew('vm2', { status: { refused: '127.1.0.9: nope' } }),
    ]);
    const lines = out.split('\n');
    assert.match(lines[0] ?? '', /^NAME\s+IPV4-ALLOC-CIDR\s+IP\s+IDENTITY\s+STATUS\s+LABELS$/);
    assert.match(
      lines[1] ?? '',
      /^vm1\s+127\.1\.250\.0\/30\s+127\.1\.250\.1\s+65792\s+connected\s+app=db$/,
    );
    assert.match(lines[2] ?? '', /^vm2\s+-\s+-\s+-\s+waiting for registration\s+-$/);
    assert.match(out, /vm2: last refused registration: 127\.1\.0\.9: nope/);
    assert.equal(formatVmStatus([]), 'No external workloads\n');
  });
});

describe('external workloads: the apiserver side and the VM side over one kvstore', () => {
  const setup = (store: string) => {
    const backend = new MemoryBackend(sharedMemoryStore(store));
    const registry = new Registry(backend);
    const metrics = new MetricsRegistry();
    const ctl = new ExternalWorkloadController({
      backend,
      cluster: { name: 'cluster1', id: 1 },
      log: silentLogger,
      metrics,
      retryMs: 50,
    });
    const ac = new AbortController();
    const running = ctl.run(ac.signal);
    const vm = (name: string, ip: string) => ({
      registrar: new WorkloadRegistrar({
        name,
        cluster: 'cluster1',
        clusterId: 1,
        ip,
        log: silentLogger,
        answerTimeoutMs: 5000,
      }),
      backend: new MemoryBackend(sharedMemoryStore(store)),
    });
    return {
      backend,
      registry,
      ctl,
      metrics,
      vm,
      stop: async () => {
        ac.abort();
        await running;
        await backend.close();
      },
    };
  };

  it('accepts a known VM: identity in range, CiliumNode, CiliumEndpoint, status; restart keeps it', async () => {
    const t = setup('ew-accept');
    try {
      await t.registry.apply([cew('vm1', { cidr: '127.1.250.0/30', labels: { app: 'db' } })]);
      const a = t.vm('vm1', '127.1.250.1');
      const id = await a.registrar.register(a.backend, AbortSignal.timeout(10_000));
      const range = clusterIdentityRange(1);
      assert.ok(id >= range.min && id <= range.max, `identity ${id} in cluster 1's range`);
      const node = await t.registry.get('CiliumNode', undefined, 'vm1');
      assert.deepEqual(node?.spec.addresses, [{ type: 'InternalIP', ip: '127.1.250.1' }]);
      const cep = await t.registry.get('CiliumEndpoint', 'default', 'vm1');
      assert.ok(cep !== undefined, 'the VM has a CiliumEndpoint');
      assert.equal(cep.status.identity?.id, id);
      assert.deepEqual(cep.status.networking, {
        addressing: [{ ipv4: '127.1.250.1' }],
        node: '127.1.250.1',
      });
      assert.ok(
        (cep.status.identity.labels ?? []).includes('k8s:io.cilium.k8s.policy.cluster=cluster1'),
        'the cluster label is part of the identity',
      );
      const ident = await t.registry.get('CiliumIdentity', undefined, String(id));
      assert.equal(ident?.['security-labels']['k8s:app'], 'db');
      await eventually(async () => {
        const st = (await t.registry.get('CiliumExternalWorkload', undefined, 'vm1'))?.status;
        assert.deepEqual(
          { id: st?.id, ip: st?.ip, registered: st?.registered, connected: st?.connected },
          { id, ip: '127.1.250.1', registered: true, connected: true },
        );
      });
      // Graceful stop: disconnected, entries kept; the restart gets the same identity.
      await a.registrar.unregister(a.backend);
      await eventually(async () => {
        const st = (await t.registry.get('CiliumExternalWorkload', undefined, 'vm1'))?.status;
        assert.equal(st?.connected, false);
      });
      assert.ok(await t.registry.get('CiliumEndpoint', 'default', 'vm1'), 'endpoint kept');
      const again = await a.registrar.register(a.backend, AbortSignal.timeout(10_000));
      assert.equal(again, id);
      await eventually(async () => {
        assert.deepEqual(await t.ctl.counts(), { accepted: 2, refused: {} });
      });
      await a.backend.close();
    } finally {
      await t.stop();
    }
  });

  it('a VM that dies without unregistering goes disconnected when its lease runs out', async () => {
    const t = setup('ew-lease');
    try {
      await t.registry.apply([cew('vm1', { labels: { app: 'db' } })]);
      const registrar = () =>
        new WorkloadRegistrar({
          name: 'vm1',
          cluster: 'cluster1',
          clusterId: 1,
          ip: '127.1.250.1',
          log: silentLogger,
          answerTimeoutMs: 5000,
        });
      const dying = new MemoryBackend(sharedMemoryStore('ew-lease'), { leaseTtlSeconds: 1 });
      const id = await registrar().register(dying, AbortSignal.timeout(10_000));
      // The apiserver's answer stays on the VM's lease.
      const key = 'cilium/state/noderegister/v1/vm1';
      const vmLease = (await dying.get(key))?.lease;
      assert.ok(vmLease !== undefined, 'the registration is on the VM’s lease');
      await eventually(async () => {
        const st = (await t.registry.get('CiliumExternalWorkload', undefined, 'vm1'))?.status;
        assert.equal(st?.connected, true);
      });
      // A crash: no unregister, no revoke; the keepalive just stops.
      const died = Date.now();
      await dying.close();
      await eventually(
        async () => {
          const st = (await t.registry.get('CiliumExternalWorkload', undefined, 'vm1'))?.status;
          assert.equal(st?.connected, false);
        },
        { timeoutMs: 10_000 },
      );
      assert.ok(Date.now() - died < 5000, `disconnected ${Date.now() - died} ms after (TTL 1 s)`);
      assert.equal(await t.backend.get(key), undefined, 'the registration went with the lease');
      const back = new MemoryBackend(sharedMemoryStore('ew-lease'));
      assert.equal(await registrar().register(back, AbortSignal.timeout(10_000)), id);
      await back.close();
    } finally {
      await t.stop();
    }
  });

  it('refuses unknown names, addresses outside the CIDR, in use, and a second VM on a name', async () => {
    const t = setup('ew-refuse');
    try {
      await t.registry.apply([cew('vm1', { cidr: '127.1.250.0/30' }), cew('vm2')]);
      const refusedWith = async (name: string, ip: string, pattern: RegExp): Promise<void> => {
        const x = t.vm(name, ip);
        await assert.rejects(
          x.registrar.register(x.backend, AbortSignal.timeout(10_000)),
          (err: unknown) => {
            assert.ok(isClusterMeshError(err, ErrorCode.ExternalWorkloadRefused), String(err));
            assert.match((err as Error).message, pattern);
            return true;
          },
        );
        await x.backend.close();
      };
      await refusedWith(
        'ghost',
        '127.1.250.1',
        /registration of ghost refused: no CiliumExternalWorkload named "ghost"/,
      );
      await refusedWith(
        'vm1',
        '127.1.251.1',
        /127\.1\.251\.1 is outside vm1's ipv4-alloc-cidr 127\.1\.250\.0\/30/,
      );
      assert.equal(
        await t.registry.get('CiliumNode', undefined, 'vm1'),
        undefined,
        'no partial state',
      );
      assert.equal((await t.registry.list('CiliumIdentity')).length, 0, 'no identity allocated');

      const a = t.vm('vm1', '127.1.250.1');
      await a.registrar.register(a.backend, AbortSignal.timeout(10_000));
      const keep = new AbortController();
      const kept = a.registrar.maintain(a.backend, keep.signal);
      // vm2 registering with vm1's address, and another VM claiming vm1's name.
      await refusedWith(
        'vm2',
        '127.1.250.1',
        /127\.1\.250\.1 is the address of external workload vm1/,
      );
      await refusedWith(
        'vm1',
        '127.1.250.2',
        /vm1 is (already connected|registered) from 127\.1\.250\.1/,
      );
      await eventually(async () => {
        const counts = await t.ctl.counts();
        assert.equal(counts.refused[RefusalReason.UnknownWorkload], 1);
        assert.equal(counts.refused[RefusalReason.OutsideCidr], 1);
        assert.equal(counts.refused[RefusalReason.AddressInUse], 1);
      });
      // vm1 takes its registration back and keeps its state.
      await eventually(async () => {
        const cep = await t.registry.get('CiliumEndpoint', 'default', 'vm1');
        assert.ok(cep !== undefined, 'vm1 keeps its endpoint');
        assert.equal(cep.status.networking?.addressing[0]?.ipv4, '127.1.250.1');
        const st = (await t.registry.get('CiliumExternalWorkload', undefined, 'vm1'))?.status;
        assert.deepEqual([st?.ip, st?.connected], ['127.1.250.1', true]);
      });
      assert.equal(await t.registry.get('CiliumNode', undefined, 'vm2'), undefined);
      keep.abort();
      await kept;
      await a.backend.close();
    } finally {
      await t.stop();
    }
  });

  it('lists the VM in Services selecting it, and deleting the workload removes everything', async () => {
    const t = setup('ew-delete');
    try {
      await t.registry.apply([
        cew('vm1', { labels: { app: 'vm-web' } }),
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'vm-web', namespace: 'default' },
          spec: { selector: { app: 'vm-web' }, ports: [{ port: 8080, targetPort: 80 }] },
        },
      ]);
      const a = t.vm('vm1', '127.1.250.1');
      const id = await a.registrar.register(a.backend, AbortSignal.timeout(10_000));
      await eventually(async () => {
        const slices = await t.registry.list('EndpointSlice', 'default');
        const s = slices.find((x) => x.metadata.name === 'vm-web-vm-vm1');
        assert.ok(s !== undefined, 'a slice lists the VM');
        assert.deepEqual(s.endpoints[0]?.addresses, ['127.1.250.1']);
        assert.deepEqual(s.ports, [{ port: 80, protocol: 'TCP' }]);
      });
      await t.registry.delete('CiliumExternalWorkload', undefined, 'vm1');
      await eventually(async () => {
        assert.equal(await t.registry.get('CiliumNode', undefined, 'vm1'), undefined);
        assert.equal(await t.registry.get('CiliumEndpoint', 'default', 'vm1'), undefined);
        assert.equal(await t.registry.get('CiliumIdentity', undefined, String(id)), undefined);
        assert.equal((await t.registry.list('EndpointSlice', 'default')).length, 0);
        assert.equal(await t.backend.get('cilium/state/noderegister/v1/vm1'), undefined);
      });
      await a.backend.close();
    } finally {
      await t.stop();
    }
  });
});
