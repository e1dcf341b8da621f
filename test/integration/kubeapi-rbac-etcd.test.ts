/**
 * RBAC of the Kubernetes API (ours, over a registry in a real etcd) with the Helm chart's
 * own ServiceAccounts and ClusterRoles: the rendered manifests are applied with the real
 * kubectl (a server dry-run first, which stores nothing), a token is issued with
 * `kubectl create token`, and the clustermesh-apiserver runs as a separate process in
 * Kubernetes mode with only that token: it exports the cluster into its kvstore (a second
 * real etcd); the agent runs with only the `cilium` ServiceAccount's token. The same token is refused what the role does not grant, in the Kubernetes
 * API server's words. With one rule removed from the ClusterRole, a new apiserver process
 * is not ready, and its status and log name the permission it lacks.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments, stringify } from 'yaml';
import { freePort } from '../../src/etcd/index.js';
import { kubeconfigYaml } from '../../src/kubeapi/kubeconfig.js';
import { KubeApiServer } from '../../src/kubeapi/server.js';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { Registry } from '../../src/registry/registry.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';
import { DaemonProcess, getJson } from '../support/mesh.js';
import { createCA, issueCert, loopbackServerCertOptions } from '../support/tls.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MANIFESTS = join(ROOT, 'deploy', 'manifests', 'clustermesh.yaml');
const CLUSTER = 'cluster1';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface ApiserverStatus {
  readonly ready: boolean;
  readonly kubernetes?: {
    readonly ok: boolean;
    readonly resources: readonly { resource: string; connected: boolean; lastError?: string }[];
  };
}

const OBJECTS = `apiVersion: cilium.io/v2
kind: CiliumNode
metadata:
  name: node-1
spec:
  addresses:
  - type: InternalIP
    ip: 127.1.0.1
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
`;

void describe('RBAC of the Kubernetes API with the chart ServiceAccounts (real etcd, kubectl)', () => {
  let dir: string;
  let admin: string;
  let saConfig: string;
  let caPem: string;
  let registryEtcd: EtcdServer;
  let kvstoreEtcd: EtcdServer;
  let backend: EtcdBackend;
  let registry: Registry;
  let server: KubeApiServer;
  const daemons: DaemonProcess[] = [];

  const kubectl = (args: readonly string[], config = admin): Promise<Run> =>
    new Promise((resolve, reject) => {
      execFile(
        'kubectl',
        ['--kubeconfig', config, '--cache-dir', join(dir, 'cache'), ...args],
        { env: { ...process.env, HOME: dir }, timeout: 30_000 },
        (err, stdout, stderr) => {
          if (err === null) resolve({ code: 0, stdout, stderr });
          else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
          else reject(new Error(`kubectl ${args.join(' ')}: ${err.message}`, { cause: err }));
        },
      );
    });
  const ok = async (args: readonly string[], config = admin): Promise<string> => {
    const r = await kubectl(args, config);
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const etcdKeys = (prefix: string): Promise<string[]> =>
    new Promise((resolve, reject) => {
      execFile(
        'etcdctl',
        ['--endpoints', kvstoreEtcd.clientUrl, 'get', '--prefix', '--keys-only', prefix],
        { env: { ...process.env, ETCDCTL_API: '3' } },
        (err, stdout) => {
          if (err !== null) reject(new Error(`etcdctl: ${err.message}`));
          else resolve(stdout.split('\n').filter((l) => l !== ''));
        },
      );
    });
  const startApiserver = async (
    name: string,
  ): Promise<{ proc: DaemonProcess; url: string; log: string }> => {
    const port = await freePort('127.0.0.1');
    const log = join(dir, `${name}.log`);
    const proc = new DaemonProcess(
      name,
      [
        'apiserver',
        '--cluster-name',
        CLUSTER,
        '--cluster-id',
        '1',
        '--kvstore-opt',
        `etcd.address=${kvstoreEtcd.clientUrl}`,
        '--health-addr',
        `127.0.0.1:${port}`,
        '--k8s-kubeconfig-path',
        saConfig,
      ],
      log,
    );
    daemons.push(proc);
    proc.start();
    return { proc, url: `http://127.0.0.1:${port}`, log };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'kubeapi-rbac-'));
    registryEtcd = await startEtcd({ name: 'registry' });
    kvstoreEtcd = await startEtcd({ name: 'kvstore' });
    backend = new EtcdBackend({ endpoints: registryEtcd.endpoints, callTimeoutMs: 5000 });
    await backend.connect();
    registry = new Registry(backend);
    const authority = await createCA('kubeapi-rbac-ca');
    caPem = authority.cert;
    const leaf = await issueCert(authority, loopbackServerCertOptions('kube'));
    server = new KubeApiServer({
      registry,
      tls: { ca: caPem, cert: leaf.cert, key: leaf.key },
      token: `admin-${Math.random().toString(36).slice(2)}`,
      host: '127.0.0.1',
    });
    await server.start();
    admin = join(dir, 'admin.kubeconfig');
    await writeFile(
      admin,
      kubeconfigYaml([{ name: CLUSTER, server: server.url, caPem, token: server.tokenValue }]),
    );
    await writeFile(join(dir, 'objects.yaml'), OBJECTS);
    await ok(['apply', '-f', join(dir, 'objects.yaml')]);
  });

  after(async () => {
    for (const d of daemons) await d.stop();
    await server.stop();
    await backend.close();
    await registryEtcd.destroy();
    await kvstoreEtcd.destroy();
    if (process.env.KEEP_TEST_DIR === undefined) await rm(dir, { recursive: true, force: true });
  });

  it('applies the rendered manifests with --dry-run=server (nothing stored), then for real', async () => {
    const manifests = await readFile(MANIFESTS, 'utf8');
    const docs = parseAllDocuments(manifests).map(
      (d) => d.toJS() as { kind: string; metadata: { name: string } },
    );
    const dry = await ok(['apply', '--dry-run=server', '-f', MANIFESTS]);
    const lines = dry.trim().split('\n');
    assert.equal(lines.length, docs.length, dry);
    for (const l of lines) assert.match(l, / created \(server dry run\)$/);
    for (const d of docs) {
      const ns = d.kind.startsWith('Cluster') ? undefined : 'kube-system';
      assert.equal(
        await registry.get(d.kind, ns, d.metadata.name),
        undefined,
        `the dry run stored ${d.kind} ${d.metadata.name}`,
      );
    }
    const real = await ok(['apply', '-f', MANIFESTS]);
    assert.match(real, /^serviceaccount\/clustermesh-apiserver created$/m);
    assert.match(
      real,
      /^clusterrole\.rbac\.authorization\.k8s\.io\/clustermesh-apiserver created$/m,
    );
    assert.match(real, /^daemonset\.apps\/cilium created$/m);
    // A second server dry run now reports what an apply would change: nothing.
    const again = await ok(['apply', '--dry-run=server', '-f', MANIFESTS]);
    for (const l of again.trim().split('\n'))
      assert.match(l, / (unchanged|configured) \(server dry run\)$/);
  });

  it('issues a ServiceAccount token with kubectl create token, refused beyond its role', async () => {
    const token = (
      await ok(['create', 'token', 'clustermesh-apiserver', '-n', 'kube-system'])
    ).trim();
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    saConfig = join(dir, 'sa.kubeconfig');
    await writeFile(
      saConfig,
      kubeconfigYaml([{ name: CLUSTER, server: server.url, caPem, token }]),
    );
    assert.match(
      await ok(['get', 'ciliumnodes', '-o', 'name'], saConfig),
      /^ciliumnode\.cilium\.io\/node-1$/m,
    );
    const denied = [
      [
        ['get', 'pods', '-A'],
        'Error from server (Forbidden): pods is forbidden: User "system:serviceaccount:kube-system:clustermesh-apiserver" cannot list resource "pods" in API group "" at the cluster scope',
      ],
      [
        ['get', 'secret', 'x', '-n', 'kube-system'],
        'Error from server (Forbidden): secrets "x" is forbidden: User "system:serviceaccount:kube-system:clustermesh-apiserver" cannot get resource "secrets" in API group "" in the namespace "kube-system"',
      ],
      [
        ['delete', 'ciliumnode', 'node-1'],
        'Error from server (Forbidden): ciliumnodes.cilium.io "node-1" is forbidden: User "system:serviceaccount:kube-system:clustermesh-apiserver" cannot delete resource "ciliumnodes" in API group "cilium.io" at the cluster scope',
      ],
    ] as const;
    for (const [args, message] of denied) {
      const r = await kubectl(args, saConfig);
      assert.equal(r.code, 1, `${args.join(' ')} allowed`);
      assert.equal(r.stderr.trim(), message);
    }
    assert.ok(
      (await registry.get('CiliumNode', undefined, 'node-1')) !== undefined,
      'node-1 deleted',
    );
    const bad = await kubectl(
      ['get', 'ciliumnodes', '--token', `${token.slice(0, -2)}xx`],
      saConfig,
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /Unauthorized/);
  });

  it('runs the clustermesh-apiserver with only its ServiceAccount: it exports the cluster', async () => {
    const { url, log } = await startApiserver('apiserver');
    await eventually(async () => {
      const st = await getJson<ApiserverStatus>(`${url}/status`);
      assert.equal(st.ready, true, JSON.stringify(st));
      assert.equal(st.kubernetes?.ok, true, JSON.stringify(st));
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(`${String(err)}\n${await readFile(log, 'utf8').catch(() => '')}`);
    });
    const keys = await etcdKeys('cilium/');
    for (const k of [
      'cilium/state/nodes/v1/cluster1/node-1',
      'cilium/state/identities/v1/id/65537',
      'cilium/state/ip/v1/default/127.1.1.5',
      'cilium/state/services/v1/cluster1/default/rebel-base',
      'cilium/synced/cluster1/cilium/state/services/v1',
    ]) {
      assert.ok(keys.includes(k), `${k} missing: ${keys.join(' ')}`);
    }
  });

  it('runs the agent with only the cilium ServiceAccount: it sees its cluster and its policies', async () => {
    const token = (await ok(['create', 'token', 'cilium', '-n', 'kube-system'])).trim();
    const config = join(dir, 'agent.kubeconfig');
    await writeFile(config, kubeconfigYaml([{ name: CLUSTER, server: server.url, caPem, token }]));
    const policy = join(dir, 'policy.yaml');
    await writeFile(
      policy,
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
    await ok(['apply', '-f', policy]);
    const api = `127.0.0.1:${await freePort('127.0.0.1')}`;
    const log = join(dir, 'agent.log');
    const agent = new DaemonProcess(
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
        api,
        '--k8s-kubeconfig-path',
        config,
      ],
      log,
    );
    daemons.push(agent);
    agent.start();
    await eventually(async () => {
      const st = await getJson<{ policy: { policies: number }; 'local-synced': boolean }>(
        `http://${api}/v1/status`,
      );
      assert.equal(st['local-synced'], true);
      assert.equal(st.policy.policies, 1);
      const nodes = await getJson<{ Name: string; Cluster: string }[]>(`http://${api}/v1/nodes`);
      assert.deepEqual(
        nodes.map((n) => `${n.Cluster}/${n.Name}`),
        ['cluster1/node-1'],
      );
    }, 30_000).catch(async (err: unknown) => {
      throw new Error(
        `${String(err)}\n${(await readFile(log, 'utf8').catch(() => '')).slice(-3000)}`,
      );
    });
    // Nothing it reads was refused.
    assert.doesNotMatch(await readFile(log, 'utf8'), /forbidden/i);
  });

  it('without one rule of its ClusterRole, an apiserver is not ready and names the missing permission', async () => {
    for (const d of daemons) await d.stop();
    const role = await registry.get('ClusterRole', undefined, 'clustermesh-apiserver');
    assert.ok(role !== undefined, 'the ClusterRole was applied');
    const rules = role.rules.map((r) =>
      (r.apiGroups ?? []).includes('cilium.io')
        ? { ...r, resources: (r.resources ?? []).filter((x) => x !== 'ciliumendpoints') }
        : r,
    );
    await writeFile(
      join(dir, 'role.yaml'),
      stringify({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRole',
        metadata: { name: 'clustermesh-apiserver' },
        rules,
      }),
    );
    assert.match(
      await ok(['apply', '-f', join(dir, 'role.yaml')]),
      /clusterrole.rbac.authorization.k8s.io\/clustermesh-apiserver configured/,
    );
    const { url, log } = await startApiserver('apiserver-2');
    const missing =
      'forbidden: the ServiceAccount lacks RBAC verb "list" on resource "ciliumendpoints" in API group cilium.io';
    await eventually(async () => {
      const st = await getJson<ApiserverStatus>(`${url}/status`);
      assert.equal(st.ready, false);
      assert.equal(st.kubernetes?.ok, false);
      const cep = st.kubernetes.resources.find((r) => r.resource === 'ciliumendpoints');
      assert.equal(cep?.connected, false);
      assert.ok(cep.lastError?.includes(missing), cep.lastError);
      assert.ok(
        cep.lastError?.includes(
          'User "system:serviceaccount:kube-system:clustermesh-apiserver" cannot list resource "ciliumendpoints" in API group "cilium.io" at the cluster scope',
        ),
        cep.lastError,
      );
      // Every other resource it reads is still granted.
      const others = st.kubernetes.resources.filter((r) => r.resource !== 'ciliumendpoints');
      assert.ok(others.length >= 5 && others.every((r) => r.connected), JSON.stringify(others));
      const logged = (await readFile(log, 'utf8'))
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as { err?: string; informer?: string });
      assert.ok(
        logged.some((l) => l.informer === 'ciliumendpoints' && l.err?.includes(missing) === true),
        'the log names the permission',
      );
    }, 30_000);
  });
});
