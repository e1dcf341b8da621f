/**
 * Kubernetes mode of the clustermesh-apiserver (`--k8s-kubeconfig-path`): a separate
 * apiserver process reads the cluster's objects from a Kubernetes API server (ours, over a
 * registry in one real etcd, HTTPS with a bearer token) through client-node informers, and
 * mirrors them into its kvstore (a second real etcd) in Cilium's keys. Objects are
 * created, changed and deleted with the real kubectl; the API server is stopped (the
 * apiserver keeps what it exported and says so in its status), changed behind its back,
 * compacted so the apiserver's resourceVersion expires, and restarted: the apiserver
 * re-lists and converges, losing nothing. An agent in Kubernetes mode reads its own
 * cluster and its policies the same way, and `status` shows the API server's state. A bad
 * kubeconfig is refused in one line.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { kubeconfigYaml } from '../../src/kubeapi/kubeconfig.js';
import { KubeApiServer } from '../../src/kubeapi/server.js';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { Registry } from '../../src/registry/registry.js';
import { freePort } from '../../src/etcd/index.js';
import { kubectlIn } from '../support/cli.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';
import { DaemonProcess, getJson } from '../support/mesh.js';
import { createCA, issueCert, loopbackServerCertOptions } from '../support/tls.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));
const CLUSTER = 'cluster1';

interface ApiserverStatus {
  readonly ready: boolean;
  readonly kubernetes?: {
    readonly ok: boolean;
    readonly resources: readonly { resource: string; connected: boolean; lastError?: string }[];
  };
}

const MANIFEST = `apiVersion: cilium.io/v2
kind: CiliumNode
metadata:
  name: node-1
spec:
  addresses:
  - type: InternalIP
    ip: 127.1.0.1
  ipam:
    podCIDRs: ["127.1.1.0/24"]
---
apiVersion: cilium.io/v2
kind: CiliumIdentity
metadata:
  name: "65537"
security-labels:
  k8s:app: rebel-base
  k8s:io.cilium.k8s.policy.cluster: cluster1
  k8s:io.kubernetes.pod.namespace: default
---
apiVersion: cilium.io/v2
kind: CiliumEndpoint
metadata:
  name: rebel-base-a
  namespace: default
status:
  id: 100
  identity:
    id: 65537
  networking:
    addressing:
    - ipv4: 127.1.1.5
    node: 127.1.0.1
---
apiVersion: v1
kind: Service
metadata:
  name: rebel-base
  namespace: default
  annotations:
    service.cilium.io/global: "true"
spec:
  clusterIP: 127.1.128.20
  ports:
  - name: http
    port: 80
    protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: rebel-base-1
  namespace: default
  labels:
    kubernetes.io/service-name: rebel-base
addressType: IPv4
endpoints:
- addresses: ["127.1.1.5"]
  conditions:
    ready: true
ports:
- name: http
  port: 80
  protocol: TCP
`;

describe('apiserver and agent in Kubernetes mode (client-node informers, real etcd)', () => {
  let dir: string;
  let kubeconfig: string;
  let registryEtcd: EtcdServer;
  let kvstoreEtcd: EtcdServer;
  let backend: EtcdBackend;
  let registry: Registry;
  let server: KubeApiServer;
  let serverPort: number;
  let apiserver: DaemonProcess;
  let agent: DaemonProcess;
  let agentUrl: string;
  let healthUrl: string;
  let startServer: () => Promise<void>;

  const kubectl = (args: readonly string[], input?: string): Promise<string> =>
    kubectlIn(dir, kubeconfig, args, input);
  /** The apiserver's kvstore, as etcdctl prints it. */
  const keys = async (prefix: string): Promise<Map<string, string>> => {
    const { stdout } = await run(
      'etcdctl',
      ['--endpoints', kvstoreEtcd.clientUrl, 'get', '--prefix', prefix],
      { env: { ...process.env, ETCDCTL_API: '3' } },
    );
    const lines = stdout.split('\n').filter((l) => l !== '');
    const out = new Map<string, string>();
    for (let i = 0; i + 1 < lines.length; i += 2) out.set(lines[i] ?? '', lines[i + 1] ?? '');
    return out;
  };
  const status = (): Promise<ApiserverStatus> => getJson(`${healthUrl}/status`);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kubesource-'));
    registryEtcd = await startEtcd({ name: 'registry' });
    kvstoreEtcd = await startEtcd({ name: 'kvstore' });
    backend = new EtcdBackend({ endpoints: registryEtcd.endpoints, callTimeoutMs: 5000 });
    await backend.connect();
    registry = new Registry(backend);
    const authority = await createCA('kubesource-test-ca');
    const leaf = await issueCert(authority, loopbackServerCertOptions('kube'));
    const token = `token-${Math.random().toString(36).slice(2)}`;
    serverPort = await freePort('127.0.0.1');
    startServer = async () => {
      server = new KubeApiServer({
        registry,
        tls: { ca: authority.cert, cert: leaf.cert, key: leaf.key },
        token,
        host: '127.0.0.1',
        port: serverPort,
      });
      await server.start();
    };
    await startServer();
    kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      kubeconfigYaml([{ name: CLUSTER, server: server.url, caPem: authority.cert, token }]),
    );
    await kubectl(['apply'], MANIFEST);
    const health = await freePort('127.0.0.1');
    healthUrl = `http://127.0.0.1:${health}`;
    apiserver = new DaemonProcess(
      'apiserver',
      [
        'apiserver',
        '--cluster-name',
        CLUSTER,
        '--cluster-id',
        '1',
        '--kvstore-opt',
        `etcd.address=${kvstoreEtcd.clientUrl}`,
        '--health-addr',
        `127.0.0.1:${health}`,
        '--heartbeat-interval',
        '1s',
        '--k8s-kubeconfig-path',
        kubeconfig,
      ],
      join(dir, 'apiserver.log'),
    );
    apiserver.start();
    agentUrl = `http://127.0.0.1:${await freePort('127.0.0.1')}`;
    agent = new DaemonProcess(
      'agent',
      [
        'agent',
        '--cluster-name',
        CLUSTER,
        '--cluster-id',
        '1',
        '--node-name',
        'node-1',
        '--kvstore-opt',
        `etcd.address=${kvstoreEtcd.clientUrl}`,
        '--api-addr',
        agentUrl.slice('http://'.length),
        '--k8s-kubeconfig-path',
        kubeconfig,
      ],
      join(dir, 'agent.log'),
    );
    agent.start();
  });

  after(async () => {
    await agent.stop();
    await apiserver.stop();
    await server.stop();
    await backend.close();
    await registryEtcd.destroy();
    await kvstoreEtcd.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const log = (): Promise<string> => readFile(join(dir, 'apiserver.log'), 'utf8').catch(() => '');

  it("mirrors what kubectl created into Cilium's keys, with the sync canaries", async () => {
    await eventually(async () => {
      const st = await status();
      assert.equal(st.ready, true, JSON.stringify(st));
      assert.equal(st.kubernetes?.ok, true, JSON.stringify(st));
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await log()}`);
    });
    const state = await keys('cilium/');
    const node = JSON.parse(state.get('cilium/state/nodes/v1/cluster1/node-1') ?? '{}') as {
      Name?: string;
      Cluster?: string;
      ClusterID?: number;
    };
    assert.deepEqual([node.Name, node.Cluster, node.ClusterID], ['node-1', CLUSTER, 1]);
    assert.match(state.get('cilium/state/identities/v1/id/65537') ?? '', /k8s:app=rebel-base/);
    const ip = JSON.parse(state.get('cilium/state/ip/v1/default/127.1.1.5') ?? '{}') as {
      ID?: number;
    };
    assert.equal(ip.ID, 65537);
    const svc = JSON.parse(
      state.get('cilium/state/services/v1/cluster1/default/rebel-base') ?? '{}',
    ) as { backends?: Record<string, unknown> };
    assert.deepEqual(Object.keys(svc.backends ?? {}), ['127.1.1.5']);
    for (const prefix of ['nodes/v1', 'identities/v1', 'ip/v1', 'services/v1']) {
      assert.ok(
        state.has(`cilium/synced/cluster1/cilium/state/${prefix}`),
        `canary of ${prefix}: ${[...state.keys()].join(' ')}`,
      );
    }
    const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
    assert.match(
      metrics,
      /cilium_kubernetes_events_received_total\{scope="ciliumnodes",action="create",validity="valid",equal="false"\} 1/,
    );
    assert.match(
      metrics,
      /cilium_k8s_client_api_calls_total\{host="127\.0\.0\.1:\d+",method="GET",return_code="200"\}/,
    );
  });

  it('an agent in Kubernetes mode sees its own cluster and enforces the policies kubectl applies', async () => {
    const agentStatus = (): Promise<{ policy: { policies: number }; 'local-synced': boolean }> =>
      getJson(`${agentUrl}/v1/status`);
    await eventually(async () => {
      assert.equal((await agentStatus())['local-synced'], true);
      const nodes = await getJson<{ Name: string; Cluster: string }[]>(`${agentUrl}/v1/nodes`);
      assert.deepEqual(
        nodes.map((n) => `${n.Cluster}/${n.Name}`),
        ['cluster1/node-1'],
      );
      const ips = await getJson<{ cidr: string; identity: number }[]>(`${agentUrl}/v1/ipcache`);
      assert.ok(
        ips.some((e) => e.cidr.startsWith('127.1.1.5') && e.identity === 65537),
        JSON.stringify(ips),
      );
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(
        `${String(err)}\n${(await readFile(join(dir, 'agent.log'), 'utf8').catch(() => '')).slice(-3000)}`,
      );
    });
    await kubectl(
      ['apply'],
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: only-x-wing
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      app: rebel-base
  ingress:
  - fromEndpoints:
    - matchLabels:
        app: x-wing
`,
    );
    await eventually(async () => {
      assert.equal((await agentStatus()).policy.policies, 1);
    }, 15_000);
    const { stdout } = await run(BIN, ['-H', agentUrl, 'status'], {
      env: { ...process.env, LOG_LEVEL: 'silent' },
    });
    assert.match(stdout, /^Kubernetes:\s+Ok \(https:\/\/127\.0\.0\.1:\d+\)$/m);
  });

  it('follows changes and deletions made with kubectl', async () => {
    await kubectl(
      ['apply'],
      MANIFEST.replace('- addresses: ["127.1.1.5"]', '- addresses: ["127.1.1.5", "127.1.1.6"]'),
    );
    await kubectl(['delete', 'ciliumnode', 'node-1']);
    await eventually(async () => {
      const state = await keys('cilium/state/');
      assert.equal(state.has('cilium/state/nodes/v1/cluster1/node-1'), false);
      const svc = JSON.parse(
        state.get('cilium/state/services/v1/cluster1/default/rebel-base') ?? '{}',
      ) as { backends?: Record<string, unknown> };
      assert.deepEqual(Object.keys(svc.backends ?? {}).sort(), ['127.1.1.5', '127.1.1.6']);
    }, 15_000);
  });

  it('keeps what it exported while the API server is down, says so, and converges after a restart past an expired resourceVersion', async () => {
    await server.stop();
    await eventually(async () => {
      const st = await status();
      assert.equal(st.kubernetes?.ok, false, JSON.stringify(st));
      assert.ok(
        st.kubernetes.resources.some((r) => r.lastError !== undefined),
        JSON.stringify(st),
      );
    }, 20_000);
    await eventually(async () => {
      const { stdout } = await run(BIN, ['-H', agentUrl, 'status'], {
        env: { ...process.env, LOG_LEVEL: 'silent' },
      });
      assert.match(stdout, /^Kubernetes:\s+Unreachable \(https:\/\/127\.0\.0\.1:\d+\): \w+: /m);
    }, 20_000);
    const during = await keys('cilium/state/');
    assert.ok(during.has('cilium/state/ip/v1/default/127.1.1.5'), 'the endpoint stays exported');
    // Behind its back: a new node, the endpoint gone; then the history it watched from is
    // compacted away, so resuming needs a fresh list.
    await registry.apply([
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNode',
        metadata: { name: 'node-2' },
        spec: { addresses: [{ type: 'InternalIP', ip: '127.1.0.2' }] },
      },
    ]);
    await registry.delete('CiliumEndpoint', 'default', 'rebel-base-a');
    const admin = registryEtcd.createClient();
    try {
      const head = await admin.kv.range({ key: Buffer.from('compact-probe') });
      await admin.kv.compact({ revision: head.header.revision, physical: true });
    } finally {
      admin.close();
    }
    await startServer();
    await eventually(async () => {
      const state = await keys('cilium/state/');
      assert.ok(state.has('cilium/state/nodes/v1/cluster1/node-2'), 'the new node is exported');
      assert.equal(state.has('cilium/state/ip/v1/default/127.1.1.5'), false, 'endpoint withdrawn');
      assert.ok(state.has('cilium/state/identities/v1/id/65537'), 'the identity is kept');
      const st = await status();
      assert.equal(st.kubernetes?.ok, true, JSON.stringify(st));
      // The agent converges too: the withdrawn endpoint leaves its ipcache.
      const ips = await getJson<{ cidr: string }[]>(`${agentUrl}/v1/ipcache`);
      assert.ok(!ips.some((e) => e.cidr.startsWith('127.1.1.5')), JSON.stringify(ips));
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${(await log()).slice(-3000)}`);
    });
  });

  it('refuses a missing or garbage kubeconfig in one line', async () => {
    const garbage = join(dir, 'garbage');
    await writeFile(garbage, 'apiVersion: v1\nclusters: 12\n');
    for (const [file, expected] of [
      [join(dir, 'missing'), /--k8s-kubeconfig-path .*missing: ENOENT/],
      [garbage, /--k8s-kubeconfig-path .*garbage: /],
    ] as const) {
      const r = await run(
        BIN,
        [
          'apiserver',
          '--cluster-name',
          CLUSTER,
          '--cluster-id',
          '1',
          '--kvstore-opt',
          `etcd.address=${kvstoreEtcd.clientUrl}`,
          '--health-addr',
          '127.0.0.1:0',
          '--k8s-kubeconfig-path',
          file,
        ],
        { env: { ...process.env, LOG_LEVEL: 'silent' }, timeout: 30_000 },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (err: unknown) => {
          const e = err as { code?: number; stderr?: string };
          return { code: e.code ?? -1, stderr: e.stderr ?? '' };
        },
      );
      assert.notEqual(r.code, 0, `${file}: refused`);
      assert.match(r.stderr, expected);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
  });
});
