/**
 * The Kubernetes API over the registry, driven by the real kubectl (/usr/bin/kubectl, which
 * picks its binary from our /version) against two clusters, each a real etcd with its
 * registry and API server (HTTPS, bearer token): apply of manifests shaped like Cilium's
 * examples, re-apply keeping fields, get (wide, -A, --show-labels, -w), scale, annotate,
 * wait, delete, errors as kubectl prints them, a watch across etcd compaction, contexts
 * reaching their own cluster only, and the same objects seen by `clustermesh get`.
 */
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Etcd3 } from 'etcd3';
import { kubeconfigYaml } from '../../src/kubeapi/kubeconfig.js';
import { KubeApiServer } from '../../src/kubeapi/server.js';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';
import { createCA, issueCert, loopbackServerCertOptions } from '../support/tls.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));
const FIXTURES = fileURLToPath(new URL('../fixtures/kubeapi/', import.meta.url));

interface Cluster {
  name: string;
  etcd: EtcdServer;
  backend: EtcdBackend;
  registry: Registry;
  server: KubeApiServer;
  token: string;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

let dir: string;
let kubeconfig: string;
let ca: string;
const clusters: Cluster[] = [];

function kubectl(
  args: readonly string[],
  opts: { timeoutMs?: number; config?: string } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      'kubectl',
      ['--kubeconfig', opts.config ?? kubeconfig, '--cache-dir', join(dir, 'cache'), ...args],
      { cwd: dir, env: { ...process.env, HOME: dir }, timeout: opts.timeoutMs ?? 30_000 },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`kubectl ${args.join(' ')}: ${err.message}`, { cause: err }));
      },
    );
  });
}

async function ok(args: readonly string[]): Promise<string> {
  const r = await kubectl(args);
  assert.equal(r.code, 0, `kubectl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** A raw API request, as client libraries send it. */
function api(
  c: Cluster,
  path: string,
  opts: { method?: string; body?: string; contentType?: string } = {},
): Promise<{ code: number; body: string }> {
  return new Promise((resolve, reject) => {
    const url = new URL(path, c.server.url);
    const req = request(
      url,
      {
        method: opts.method ?? 'GET',
        ca,
        headers: {
          Authorization: `Bearer ${c.token}`,
          Accept: 'application/json',
          ...(opts.contentType === undefined ? {} : { 'Content-Type': opts.contentType }),
        },
      },
      (res) => {
        let body = '';
        res.on('data', (d: Buffer) => (body += d.toString()));
        res.on('end', () => resolve({ code: res.statusCode ?? 0, body }));
      },
    );
    req.on('error', reject);
    req.end(opts.body);
  });
}

interface WatchStream {
  readonly events: {
    type: string;
    object: {
      metadata?: { resourceVersion?: string; name?: string };
      code?: number;
      reason?: string;
    };
  }[];
  readonly ended: Promise<void>;
  close(): void;
}

function watch(c: Cluster, path: string): WatchStream {
  const events: WatchStream['events'] = [];
  let closeFn = (): void => undefined;
  const ended = new Promise<void>((resolve, reject) => {
    const req = request(
      new URL(path, c.server.url),
      { ca, headers: { Authorization: `Bearer ${c.token}` } },
      (res) => {
        let buf = '';
        res.on('data', (d: Buffer) => {
          buf += d.toString();
          let nl;
          while ((nl = buf.indexOf('\n')) >= 0) {
            events.push(JSON.parse(buf.slice(0, nl)) as WatchStream['events'][number]);
            buf = buf.slice(nl + 1);
          }
        });
        res.on('end', () => resolve());
        res.on('close', () => resolve());
      },
    );
    req.on('error', (err) => {
      if (/socket hang up|aborted/i.test(err.message)) resolve();
      else reject(err);
    });
    req.end();
    closeFn = () => req.destroy();
  });
  return { events, ended, close: () => closeFn() };
}

function pod(name: string, namespace: string, node: string, ready: boolean): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { name: name.replace(/-[a-z0-9]{5}$/, '') } },
    spec: { containers: [{ name: 'c', image: 'clustermesh/echo' }], nodeName: node },
    status: {
      phase: 'Running',
      podIP: namespace === 'default' ? '127.1.1.9' : '127.1.2.9',
      conditions: [{ type: 'Ready', status: ready ? 'True' : 'False' }],
    },
  };
}

function deploymentOf(c: Cluster, name: string): Promise<Record<string, unknown> | undefined> {
  return c.registry.get('Deployment', 'default', name);
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'kubeapi-'));
  const authority = await createCA('kubeapi-test-ca');
  ca = authority.cert;
  for (const name of ['cluster1', 'cluster2']) {
    const etcd = await startEtcd();
    const backend = new EtcdBackend({ endpoints: etcd.endpoints, callTimeoutMs: 5000 });
    await backend.connect();
    const registry = new Registry(backend);
    const leaf = await issueCert(authority, loopbackServerCertOptions(`${name}-kube`));
    const token = `${name}-token-${Math.random().toString(36).slice(2)}`;
    const server = new KubeApiServer({
      registry,
      tls: { ca, cert: leaf.cert, key: leaf.key },
      token,
      host: '127.0.0.1',
    });
    await server.start();
    clusters.push({ name, etcd, backend, registry, server, token });
  }
  kubeconfig = join(dir, 'kubeconfig');
  await writeFile(
    kubeconfig,
    kubeconfigYaml(
      clusters.map((c) => ({ name: c.name, server: c.server.url, caPem: ca, token: c.token })),
    ),
  );
});

after(async () => {
  for (const c of clusters) {
    await c.server.stop();
    await c.backend.close();
    await c.etcd.destroy();
  }
  await rm(dir, { recursive: true, force: true });
});

const c1 = (): Cluster => clusters[0] as Cluster;
const c2 = (): Cluster => clusters[1] as Cluster;

void describe('Kubernetes API over the registry, with the real kubectl', () => {
  void it('reports minor 32 (the dispatcher runs kubectl 1.32) and serves discovery with short names', async () => {
    const version = JSON.parse(await ok(['version', '-o', 'json'])) as {
      serverVersion: { major: string; minor: string };
      clientVersion: { minor: string };
    };
    assert.deepEqual([version.serverVersion.major, version.serverVersion.minor], ['1', '32']);
    const resources = await ok(['api-resources', '--no-headers']);
    for (const re of [
      /^services\s+svc\s+v1\s+true\s+Service$/m,
      /^deployments\s+deploy\s+apps\/v1\s+true\s+Deployment$/m,
      /^configmaps\s+cm\s+v1\s+true\s+ConfigMap$/m,
      /^ciliumnetworkpolicies\s+cnp,ciliumnp\s+cilium\.io\/v2\s+true\s+CiliumNetworkPolicy$/m,
      /^serviceexports\s+svcex,svcexport\s+multicluster\.x-k8s\.io\/v1beta1\s+true\s+ServiceExport$/m,
    ]) {
      assert.match(resources, re);
    }
  });

  void it('applies the example manifests (default validation), and a second apply changes nothing', async () => {
    const first = await ok([
      '--context',
      'cluster1',
      'apply',
      '-f',
      join(FIXTURES, 'cluster1.yaml'),
    ]);
    assert.equal(
      first,
      'service/rebel-base created\ndeployment.apps/rebel-base created\nconfigmap/rebel-base-response created\ndeployment.apps/x-wing created\n',
    );
    const again = await ok([
      '--context',
      'cluster1',
      'apply',
      '-f',
      join(FIXTURES, 'cluster1.yaml'),
    ]);
    assert.equal(
      again,
      'service/rebel-base unchanged\ndeployment.apps/rebel-base unchanged\nconfigmap/rebel-base-response unchanged\ndeployment.apps/x-wing unchanged\n',
    );
    const cm = await c1().registry.get('ConfigMap', 'default', 'rebel-base-response');
    assert.equal(
      (cm as { data?: Record<string, string> } | undefined)?.data?.message,
      '{"Galaxy": "Alderaan", "Cluster": "Cluster-1"}\n',
    );
    // The other cluster saw nothing.
    assert.equal(await c2().registry.get('ConfigMap', 'default', 'rebel-base-response'), undefined);
  });

  void it('server-side dry runs validate without writing (apply --dry-run=server, diff)', async () => {
    const text = await readFile(join(FIXTURES, 'cluster1.yaml'), 'utf8');
    await writeFile(join(dir, 'dry.yaml'), text.replace('replicas: 2', 'replicas: 7'));
    const out = await ok([
      '--context',
      'cluster1',
      'apply',
      '--dry-run=server',
      '-f',
      join(dir, 'dry.yaml'),
    ]);
    assert.match(out, /^deployment\.apps\/rebel-base configured \(server dry run\)$/m);
    const dep = (await deploymentOf(c1(), 'rebel-base')) as { spec: { replicas: number } };
    assert.equal(dep.spec.replicas, 2, 'nothing written');
    const diff = await kubectl(['--context', 'cluster1', 'diff', '-f', join(dir, 'dry.yaml')]);
    assert.equal(diff.code, 1, diff.stderr);
    assert.match(diff.stdout, /^- {2}replicas: 2$/m);
    assert.match(diff.stdout, /^\+ {2}replicas: 7$/m);
  });

  void it('a changed manifest re-applied keeps every field it does not change', async () => {
    const text = await readFile(join(FIXTURES, 'cluster1.yaml'), 'utf8');
    const changed = text
      .replace('replicas: 2', 'replicas: 3')
      .replace('service.cilium.io/global: "true"', 'service.cilium.io/global: "false"')
      .replace(
        '        image: docker.io/nginx:1.15.8\n',
        '        image: docker.io/nginx:1.15.8\n        env:\n        - name: MODE\n          value: changed\n',
      );
    await writeFile(join(dir, 'changed.yaml'), changed);
    const out = await ok(['--context', 'cluster1', 'apply', '-f', join(dir, 'changed.yaml')]);
    assert.match(out, /^service\/rebel-base configured$/m);
    assert.match(out, /^deployment\.apps\/rebel-base configured$/m);
    assert.match(out, /^configmap\/rebel-base-response unchanged$/m);
    const dep = (await deploymentOf(c1(), 'rebel-base')) as {
      metadata: { generation: number };
      spec: {
        replicas: number;
        template: { spec: { containers: Record<string, unknown>[]; volumes: unknown[] } };
      };
    };
    assert.equal(dep.spec.replicas, 3);
    const [container] = dep.spec.template.spec.containers;
    assert.deepEqual(container, {
      name: 'rebel-base',
      image: 'docker.io/nginx:1.15.8',
      env: [{ name: 'MODE', value: 'changed' }],
      volumeMounts: [{ name: 'html', mountPath: '/usr/share/nginx/html/' }],
      livenessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1 },
      readinessProbe: { httpGet: { path: '/', port: 80 } },
    });
    assert.deepEqual(dep.spec.template.spec.volumes, [
      {
        name: 'html',
        configMap: { name: 'rebel-base-response', items: [{ key: 'message', path: 'index.html' }] },
      },
    ]);
    assert.equal(dep.metadata.generation, 2, 'a spec change bumps the generation');
    const svc = await c1().registry.get('Service', 'default', 'rebel-base');
    assert.equal(svc?.metadata.annotations?.['service.cilium.io/global'], 'false');
    // Back to the original: the env var is removed again (strategic merge patch deletion).
    await ok(['--context', 'cluster1', 'apply', '-f', join(FIXTURES, 'cluster1.yaml')]);
    const back = (await deploymentOf(c1(), 'rebel-base')) as {
      spec: { replicas: number; template: { spec: { containers: Record<string, unknown>[] } } };
    };
    assert.equal(back.spec.replicas, 2);
    assert.equal(back.spec.template.spec.containers[0]?.env, undefined);
    assert.equal(back.spec.template.spec.containers[0]?.image, 'docker.io/nginx:1.15.8');
  });

  void it("prints pods with -o wide, -A and --show-labels, and services, with kubectl's columns", async () => {
    await c1().registry.create(pod('x-wing-abc12', 'default', 'cluster1-node1', true));
    await c1().registry.create(pod('cilium-q9z7x', 'kube-system', 'cluster1-node2', true));
    const wide = await ok(['--context', 'cluster1', 'get', 'pods', '-o', 'wide']);
    assert.match(
      wide,
      /^NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+IP\s+NODE\s+NOMINATED NODE\s+READINESS GATES\n/,
    );
    assert.match(
      wide,
      /^x-wing-abc12\s+1\/1\s+Running\s+0\s+\d+s\s+127\.1\.1\.9\s+cluster1-node1\s+<none>\s+<none>$/m,
    );
    assert.doesNotMatch(wide, /cilium-q9z7x/, 'another namespace');
    const all = await ok(['--context', 'cluster1', 'get', 'pods', '-A', '--show-labels']);
    assert.match(all, /^NAMESPACE\s+NAME\s+READY\s+STATUS\s+RESTARTS\s+AGE\s+LABELS$/m);
    assert.match(all, /^default\s+x-wing-abc12\s+1\/1\s+Running\s+0\s+\d+s\s+name=x-wing$/m);
    assert.match(all, /^kube-system\s+cilium-q9z7x\s+1\/1\s+Running\s+0\s+\d+s\s+name=cilium$/m);
    const selected = await ok([
      '--context',
      'cluster1',
      'get',
      'pods',
      '-A',
      '-l',
      'name in (cilium)',
      '-o',
      'name',
    ]);
    assert.equal(selected, 'pod/cilium-q9z7x\n');
    const svc = await ok(['--context', 'cluster1', 'get', 'svc', '-o', 'wide']);
    assert.match(svc, /^NAME\s+TYPE\s+CLUSTER-IP\s+EXTERNAL-IP\s+PORT\(S\)\s+AGE\s+SELECTOR$/m);
    assert.match(
      svc,
      /^rebel-base\s+ClusterIP\s+<none>\s+<none>\s+80\/TCP\s+\d+s\s+name=rebel-base$/m,
    );
  });

  void it('scales a deployment and annotates a service (merge patches)', async () => {
    assert.equal(
      await ok(['--context', 'cluster1', 'scale', 'deployment', 'rebel-base', '--replicas', '0']),
      'deployment.apps/rebel-base scaled\n',
    );
    assert.equal(
      ((await deploymentOf(c1(), 'rebel-base')) as { spec: { replicas: number } }).spec.replicas,
      0,
    );
    const stale = await kubectl([
      '--context',
      'cluster1',
      'scale',
      'deploy',
      'rebel-base',
      '--current-replicas=5',
      '--replicas=1',
    ]);
    assert.equal(stale.code, 1);
    assert.match(stale.stderr, /Expected replicas to be 5, was 0/);
    assert.equal(
      await ok([
        '--context',
        'cluster1',
        'annotate',
        'svc',
        'rebel-base',
        'service.cilium.io/affinity=local',
      ]),
      'service/rebel-base annotated\n',
    );
    const svc = await c1().registry.get('Service', 'default', 'rebel-base');
    assert.equal(svc?.metadata.annotations?.['service.cilium.io/affinity'], 'local');
    assert.equal(
      svc.metadata.annotations['service.cilium.io/global'],
      'true',
      'other annotations kept',
    );
    await ok([
      '--context',
      'cluster1',
      'annotate',
      'svc',
      'rebel-base',
      'service.cilium.io/affinity-',
    ]);
    const removed = await c1().registry.get('Service', 'default', 'rebel-base');
    assert.equal(removed?.metadata.annotations?.['service.cilium.io/affinity'], undefined);
  });

  void it('PUT and /scale PUT refuse a stale resourceVersion (409); JSON patch applies', async () => {
    const c = c1();
    const got = await api(c, '/api/v1/namespaces/default/configmaps/rebel-base-response');
    const cm = JSON.parse(got.body) as {
      metadata: { resourceVersion: string };
      data: Record<string, string>;
    };
    const stale = cm.metadata.resourceVersion;
    const put = (rv: string, value: string): Promise<{ code: number; body: string }> =>
      api(c, '/api/v1/namespaces/default/configmaps/rebel-base-response', {
        method: 'PUT',
        contentType: 'application/json',
        body: JSON.stringify({
          ...cm,
          metadata: { ...cm.metadata, resourceVersion: rv },
          data: { message: value },
        }),
      });
    assert.equal((await put(stale, 'first')).code, 200);
    const conflict = await put(stale, 'second');
    assert.equal(conflict.code, 409);
    assert.equal(
      (JSON.parse(conflict.body) as { message: string }).message,
      'Operation cannot be fulfilled on configmaps "rebel-base-response": the object has been modified; please apply your changes to the latest version and try again',
    );
    const scale = JSON.parse(
      (await api(c, '/apis/apps/v1/namespaces/default/deployments/x-wing/scale')).body,
    ) as {
      kind: string;
      metadata: { resourceVersion: string };
      spec: { replicas: number };
      status: { selector: string };
    };
    assert.deepEqual(
      [scale.kind, scale.spec.replicas, scale.status.selector],
      ['Scale', 2, 'name=x-wing'],
    );
    const putScale = (replicas: number): Promise<{ code: number; body: string }> =>
      api(c, '/apis/apps/v1/namespaces/default/deployments/x-wing/scale', {
        method: 'PUT',
        contentType: 'application/json',
        body: JSON.stringify({ ...scale, spec: { replicas } }),
      });
    assert.equal((await putScale(3)).code, 200);
    assert.equal((await putScale(4)).code, 409, 'the Scale read before the first PUT is stale');
    await ok([
      '--context',
      'cluster1',
      'patch',
      'cm',
      'rebel-base-response',
      '--type=json',
      '-p',
      '[{"op":"replace","path":"/data/message","value":"patched"}]',
    ]);
    const patched = await c.registry.get('ConfigMap', 'default', 'rebel-base-response');
    assert.equal(
      (patched as { data?: Record<string, string> } | undefined)?.data?.message,
      'patched',
    );
    const failed = await kubectl([
      '--context',
      'cluster1',
      'patch',
      'cm',
      'rebel-base-response',
      '--type=json',
      '-p',
      '[{"op":"test","path":"/data/message","value":"nope"}]',
    ]);
    assert.equal(failed.code, 1);
    assert.equal(
      failed.stderr,
      'The request is invalid: the server rejected our request due to an error in our request: Test operation failed\n',
    );
    // Restore what the manifest says, so that later applies see their own objects.
    await ok(['--context', 'cluster1', 'apply', '-f', join(FIXTURES, 'cluster1.yaml')]);
    await ok(['--context', 'cluster1', 'scale', 'deploy', 'x-wing', '--replicas', '2']);
  });

  void it("prints errors as kubectl prints the Kubernetes API server's", async () => {
    const nope = await kubectl(['--context', 'cluster1', 'get', 'pod', 'nope']);
    assert.deepEqual(
      [nope.code, nope.stderr],
      [1, 'Error from server (NotFound): pods "nope" not found\n'],
    );
    const dep = await kubectl(['--context', 'cluster1', 'get', 'deploy', 'nope']);
    assert.equal(dep.stderr, 'Error from server (NotFound): deployments.apps "nope" not found\n');
    const create = await kubectl([
      '--context',
      'cluster1',
      'create',
      '-f',
      join(FIXTURES, 'cluster1.yaml'),
    ]);
    assert.match(
      create.stderr,
      /^Error from server \(AlreadyExists\): error when creating ".*cluster1\.yaml": services "rebel-base" already exists$/m,
    );
    await writeFile(
      join(dir, 'bad.yaml'),
      'apiVersion: v1\nkind: Service\nmetadata:\n  name: bad\nspec:\n  ports:\n  - port: 70000\n',
    );
    const bad = await kubectl(['--context', 'cluster1', 'apply', '-f', join(dir, 'bad.yaml')]);
    assert.deepEqual(
      [bad.code, bad.stderr],
      [
        1,
        'The Service "bad" is invalid: spec.ports[0].port: Invalid value: 70000: must be <= 65535\n',
      ],
    );
    await writeFile(
      join(dir, 'cnp.yaml'),
      'apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: typo\nspec:\n  endpointSelector: {}\n  ingresss: []\n',
    );
    const strict = await kubectl(['--context', 'cluster1', 'apply', '-f', join(dir, 'cnp.yaml')]);
    assert.match(
      strict.stderr,
      /^Error from server \(BadRequest\): error when creating ".*cnp\.yaml": CiliumNetworkPolicy in version "v2" cannot be handled as a CiliumNetworkPolicy: strict decoding error: unknown field "spec\.ingresss"$/m,
    );
    const warn = await kubectl([
      '--context',
      'cluster1',
      'apply',
      '--validate=warn',
      '-f',
      join(dir, 'cnp.yaml'),
    ]);
    assert.equal(warn.code, 0, warn.stderr);
    assert.match(warn.stderr, /^Warning: unknown field "spec\.ingresss"$/m);
    // exec is phase 2: both of kubectl's attempts (WebSocket, then SPDY) get a Status.
    const exec = await kubectl([
      '--context',
      'cluster1',
      'exec',
      'x-wing-abc12',
      '--',
      'curl',
      'rebel-base',
    ]);
    assert.deepEqual(
      [exec.code, exec.stderr],
      [
        1,
        'Error from server (BadRequest): exec is not served by this API server yet; run commands in pods with: clustermesh exec CLUSTER/POD -- COMMAND\n',
      ],
    );
    const unknownType = await kubectl(['--context', 'cluster1', 'get', 'gizmos']);
    assert.equal(
      unknownType.stderr.trim().split('\n').pop(),
      'error: the server doesn\'t have a resource type "gizmos"',
    );
    // A wrong token is refused (401) whatever it asks.
    const wrong = join(dir, 'wrong-kubeconfig');
    await writeFile(
      wrong,
      kubeconfigYaml([{ name: 'cluster1', server: c1().server.url, caPem: ca, token: 'wrong' }]),
    );
    const denied = await kubectl(['get', 'pods', '--cache-dir', join(dir, 'cache-wrong')], {
      config: wrong,
    });
    assert.equal(denied.code, 1);
    assert.match(
      denied.stderr,
      /error: You must be logged in to the server \(the server has asked for the client to provide credentials\)/,
    );
    const raw = await api({ ...c1(), token: 'wrong' }, '/api/v1/namespaces/default/pods');
    assert.deepEqual(
      [raw.code, JSON.parse(raw.body)],
      [
        401,
        {
          kind: 'Status',
          apiVersion: 'v1',
          metadata: {},
          status: 'Failure',
          message: 'Unauthorized',
          reason: 'Unauthorized',
          code: 401,
        },
      ],
    );
  });

  void it('waits for a pod condition set later through /status', async () => {
    await c1().registry.create(pod('late-aaaaa', 'default', 'cluster1-node1', false));
    const waiting = kubectl([
      '--context',
      'cluster1',
      'wait',
      '--for=condition=Ready',
      'pod/late-aaaaa',
      '--timeout=20s',
    ]);
    await new Promise((r) => setTimeout(r, 1500));
    await ok([
      '--context',
      'cluster1',
      'patch',
      'pod',
      'late-aaaaa',
      '--subresource=status',
      '--type=merge',
      '-p',
      '{"status":{"conditions":[{"type":"Ready","status":"True"}]}}',
    ]);
    const r = await waiting;
    assert.deepEqual([r.code, r.stdout], [0, 'pod/late-aaaaa condition met\n']);
    const timedOut = await kubectl([
      '--context',
      'cluster1',
      'wait',
      '--for=condition=Ready',
      'pod/x-wing-abc12',
      '--for=delete',
      '--timeout=1s',
    ]);
    assert.notEqual(timedOut.code, 0, 'a condition that never holds times out');
  });

  void it("get -w prints a row per change with the list's columns", async () => {
    const child = spawn(
      'kubectl',
      [
        '--kubeconfig',
        kubeconfig,
        '--cache-dir',
        join(dir, 'cache'),
        '--context',
        'cluster1',
        'get',
        'deploy',
        '-w',
      ],
      {
        env: { ...process.env, HOME: dir },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    try {
      await eventually(() => assert.match(out, /^x-wing\s+0\/2\s/m), 10_000);
      await ok(['--context', 'cluster1', 'scale', 'deploy', 'x-wing', '--replicas', '5']);
      await eventually(() => assert.match(out, /^x-wing\s+0\/5\s+0\s+0\s+\d+s$/m), 10_000);
      assert.equal(out.match(/^NAME\s+READY/gm)?.length, 1, 'one header');
    } finally {
      child.kill();
    }
  });

  void it('a watch survives etcd compaction; one resuming from a compacted revision gets 410, then re-lists', async () => {
    const c = c1();
    const list = JSON.parse(
      (await api(c, '/apis/apps/v1/namespaces/default/deployments')).body,
    ) as {
      metadata: { resourceVersion: string };
    };
    const rv = list.metadata.resourceVersion;
    const live = watch(
      c,
      `/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=${rv}`,
    );
    for (const n of [1, 2, 3]) {
      await c.registry.patch('Deployment', 'default', 'x-wing', (d) => ({
        ...d,
        metadata: { ...d.metadata, labels: { round: String(n) } },
      }));
    }
    await eventually(() => assert.equal(live.events.length, 3));
    const admin: Etcd3 = c.etcd.createClient();
    try {
      const head = await admin.kv.range({ key: Buffer.from('compact-probe') });
      await admin.kv.compact({ revision: head.header.revision, physical: true });
    } finally {
      admin.close();
    }
    await c.registry.patch('Deployment', 'default', 'x-wing', (d) => ({
      ...d,
      metadata: { ...d.metadata, labels: { round: '4' } },
    }));
    await eventually(() => assert.equal(live.events.length, 4), 10_000);
    assert.deepEqual(
      live.events.map((e) => e.type),
      ['MODIFIED', 'MODIFIED', 'MODIFIED', 'MODIFIED'],
    );
    live.close();

    const resumed = watch(
      c,
      `/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=${rv}`,
    );
    await resumed.ended;
    assert.equal(resumed.events.length, 1);
    assert.equal(resumed.events[0]?.type, 'ERROR');
    const [gone] = resumed.events;
    assert.deepEqual([gone.object.code, gone.object.reason], [410, 'Expired']);

    const relist = JSON.parse(
      (await api(c, '/apis/apps/v1/namespaces/default/deployments')).body,
    ) as {
      metadata: { resourceVersion: string };
    };
    const fresh = watch(
      c,
      `/apis/apps/v1/namespaces/default/deployments?watch=true&resourceVersion=${relist.metadata.resourceVersion}&fieldSelector=metadata.name%3Dx-wing`,
    );
    await c.registry.patch('Deployment', 'default', 'x-wing', (d) => ({
      ...d,
      metadata: { ...d.metadata, labels: { round: '5' } },
    }));
    await eventually(() => assert.equal(fresh.events.length, 1));
    assert.equal(fresh.events[0]?.object.metadata?.name, 'x-wing');
    fresh.close();
    await eventually(() => assert.equal(c.server.openWatches, 0, 'closed watches are dropped'));
  });

  void it('each context reaches its own cluster; kubectl and `clustermesh get` see one registry', async () => {
    await ok(['--context', 'cluster2', 'apply', '-f', join(FIXTURES, 'cluster2.yaml')]);
    const m1 = await ok([
      '--context',
      'cluster1',
      'get',
      'cm',
      'rebel-base-response',
      '-o',
      'jsonpath={.data.message}',
    ]);
    const m2 = await ok([
      '--context',
      'cluster2',
      'get',
      'cm',
      'rebel-base-response',
      '-o',
      'jsonpath={.data.message}',
    ]);
    assert.match(m1, /Cluster-1/);
    assert.match(m2, /Cluster-2/);
    const pods2 = await kubectl(['--context', 'cluster2', 'get', 'pods', '-A']);
    assert.equal(pods2.stderr, 'No resources found\n', "cluster1's pods are not in cluster2");
    const cli = await new Promise<string>((resolve, reject) => {
      execFile(
        BIN,
        ['get', 'deployments', '--kvstore-opt', `etcd.address=${c2().etcd.endpoints.join(',')}`],
        { env: { ...process.env, LOG_LEVEL: 'silent' } },
        (err, stdout, stderr) => {
          if (err === null) resolve(stdout);
          else reject(new Error(stderr));
        },
      );
    });
    assert.match(cli, /^rebel-base\s/m);
    assert.match(cli, /^x-wing\s/m);
  });

  void it('deletes what a manifest names, kubectl waiting until each object is gone', async () => {
    const out = await ok([
      '--context',
      'cluster1',
      'delete',
      '-f',
      join(FIXTURES, 'cluster1.yaml'),
    ]);
    assert.equal(
      out,
      'service "rebel-base" deleted\ndeployment.apps "rebel-base" deleted\nconfigmap "rebel-base-response" deleted\ndeployment.apps "x-wing" deleted\n',
    );
    assert.deepEqual(await c1().registry.list('Deployment'), []);
    assert.equal((await c2().registry.list('Deployment')).length, 2, 'cluster2 untouched');
  });

  void it('answers a consistent list from the watch cache when it is current, and from etcd when it cannot tell', async () => {
    const c = c2();
    const names = async (): Promise<string[]> => {
      const r = await api(c, '/api/v1/namespaces/cachecheck/configmaps');
      assert.equal(r.code, 200, r.body);
      return (JSON.parse(r.body) as { items: { metadata: { name: string } }[] }).items.map(
        (i) => i.metadata.name,
      );
    };
    const cmOf = (name: string): RegistryObject => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: 'cachecheck' },
      data: { k: name },
    });
    const backend = c.backend;
    const original = backend.listPage.bind(backend);
    let storeReads = 0;
    backend.listPage = (prefix, opts) => {
      if (opts?.limit !== 1) storeReads++;
      return original(prefix, opts);
    };
    try {
      await c.registry.apply([cmOf('b'), cmOf('a')]);
      // Sorted, and at once: a write is never missing from the list that follows it.
      assert.deepEqual(await names(), ['a', 'b']);
      // Once the cache applied the last change of the store, lists do not read etcd.
      await eventually(async () => {
        const before = storeReads;
        assert.deepEqual(await names(), ['a', 'b']);
        assert.equal(storeReads, before, 'served from the watch cache');
      }, 10_000);
      // A change elsewhere in etcd: the cache cannot prove it is current, etcd answers.
      await c.registry.delete('ConfigMap', 'cachecheck', 'b');
      await backend.put('cilium/state/unrelated/v1/x', '1');
      const before = storeReads;
      assert.deepEqual(await names(), ['a']);
      assert.ok(storeReads > before, 'read from etcd');
    } finally {
      backend.listPage = original;
    }
  });
});
