/**
 * `kubectl exec` and `kubectl logs` against the clusters of `clustermesh up`: the real
 * kubectl speaks WebSocket v5 to the API server, and the command runs as the pod — a curl
 * from x-wing goes through the same DNS, datapath and global-service load-balancing as
 * `clustermesh exec`, exit codes come back on the error channel, stdin reaches the command.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { UpProcess } from '../support/up-process.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const FIXTURES = fileURLToPath(new URL('../fixtures/kubeapi/', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: readonly string[],
  dir: string,
  input?: string,
  timeoutMs = 60_000,
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, {
      cwd: dir,
      env: { ...process.env, HOME: dir, LOG_LEVEL: 'silent' },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    p.stdin.end(input);
  });
}

before(() => acquireUpLock());
after(() => releaseUpLock());

void describe('kubectl exec and logs on clustermesh up (2 clusters)', { timeout: 300_000 }, () => {
  let dir: string;
  let up: UpProcess;
  let state: MeshState;

  const kubectl = (context: string, args: readonly string[], input?: string): Promise<Run> =>
    run(
      'kubectl',
      [
        '--kubeconfig',
        state.kubeconfig ?? '',
        '--context',
        context,
        '--cache-dir',
        join(dir, 'cache'),
        ...args,
      ],
      dir,
      input,
    );

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-kubeexec-'));
    up = new UpProcess(dir);
    up.start(['--clusters', '2', '--nodes', '1', '--kvstore', 'etcd', '--example', 'rebel-base']);
    state = await up.ready(120_000);
  });

  after(async () => {
    await up.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('exec -ti deployment/x-wing -- curl rebel-base answers from both clusters', async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 30 && seen.size < 2; i++) {
      const r = await kubectl('cluster1', [
        'exec',
        '-ti',
        'deployment/x-wing',
        '--',
        'curl',
        '-s',
        'rebel-base',
      ]);
      assert.equal(r.code, 0, `kubectl exec: ${r.stderr}`);
      const answer = JSON.parse(r.stdout) as { Cluster?: string; Galaxy?: string };
      assert.ok(answer.Cluster !== undefined, `an echo answer: ${r.stdout}`);
      seen.add(answer.Cluster);
    }
    assert.deepEqual([...seen].sort(), ['cluster1', 'cluster2']);
  });

  void it('exit codes propagate: sh -c "exit 3", an unknown command, curl to nowhere', async () => {
    const three = await kubectl('cluster2', ['exec', 'deploy/x-wing', '--', 'sh', '-c', 'exit 3']);
    assert.equal(three.code, 3, three.stderr);
    assert.match(three.stderr, /command terminated with exit code 3/);

    const unknown = await kubectl('cluster2', ['exec', 'deploy/x-wing', '--', 'ps', 'aux']);
    assert.equal(unknown.code, 127, unknown.stderr);
    assert.match(unknown.stderr, /^sh: ps: not found$/m);

    const nowhere = await kubectl('cluster2', [
      'exec',
      'deploy/x-wing',
      '--',
      'curl',
      '-sS',
      'no-such-service',
    ]);
    assert.equal(nowhere.code, 6, nowhere.stderr);
    assert.match(nowhere.stderr, /curl: \(6\) Could not resolve host: no-such-service/);
  });

  void it('stdin reaches the command (exec -i -- cat) and simple commands run as the pod', async () => {
    const cat = await kubectl(
      'cluster1',
      ['exec', '-i', 'deploy/x-wing', '--', 'cat'],
      'hello\nworld\n',
    );
    assert.equal(cat.code, 0, cat.stderr);
    assert.equal(cat.stdout, 'hello\nworld\n');

    const pods = await kubectl('cluster1', ['get', 'pods', '-l', 'name=x-wing', '-o', 'name']);
    const pod =
      pods.stdout
        .trim()
        .split('\n')[0]
        ?.replace(/^pod\//, '') ?? '';
    const host = await kubectl('cluster1', ['exec', pod, '--', 'hostname']);
    assert.equal(host.stdout, `${pod}\n`, host.stderr);

    const ns = await kubectl('cluster1', ['exec', pod, '--', 'nslookup', 'rebel-base']);
    assert.equal(ns.code, 0, ns.stderr);
    const svc = await kubectl('cluster1', [
      'get',
      'svc',
      'rebel-base',
      '-o',
      'jsonpath={.spec.clusterIP}',
    ]);
    assert.match(svc.stdout, /^127\./, svc.stderr);
    assert.ok(
      ns.stdout.includes(`Name:\trebel-base.default.svc.cluster.local\nAddress: ${svc.stdout}\n`),
      `nslookup answers the ClusterIP ${svc.stdout}: ${ns.stdout}`,
    );

    const missing = await kubectl('cluster1', ['exec', 'nope', '--', 'true']);
    assert.notEqual(missing.code, 0);
    assert.match(missing.stderr, /Error from server \(NotFound\): pods "nope" not found/);
  });
  void it('logs shows what a pod wrote (--tail), and logs -f streams a new line', async () => {
    const pods = await kubectl('cluster1', [
      'get',
      'pods',
      '-l',
      'name=rebel-base',
      '-o',
      'jsonpath={range .items[*]}{.metadata.name} {.status.podIP}{"\\n"}{end}',
    ]);
    const [pod, ip] = pods.stdout.trim().split('\n')[0]?.split(' ') ?? [];
    assert.ok(
      pod !== undefined && ip !== undefined,
      `a rebel-base pod: ${pods.stdout} ${pods.stderr}`,
    );
    const hit = async (path: string): Promise<void> => {
      const r = await kubectl('cluster1', [
        'exec',
        'deploy/x-wing',
        '--',
        'curl',
        '-s',
        `http://${ip}${path}`,
      ]);
      assert.equal(r.code, 0, r.stderr);
    };
    await hit('/first');
    const logs = await kubectl('cluster1', ['logs', pod]);
    assert.equal(logs.code, 0, logs.stderr);
    assert.match(logs.stdout, /^echo server listening on 127\.1\.[0-9.]+:80$/m);
    assert.match(
      logs.stdout,
      /^127\.1\.[0-9.]+ - - \[[^\]]+\] "GET \/first HTTP\/1\.1" 200 \d+ "-" "curl\/8 \(clustermesh exec\)"$/m,
    );
    const tail = await kubectl('cluster1', ['logs', pod, '--tail=1']);
    assert.equal(tail.stdout.split('\n').length, 2, tail.stdout);
    assert.match(tail.stdout, /GET \/first /);

    const follower = spawn(
      'kubectl',
      [
        '--kubeconfig',
        state.kubeconfig ?? '',
        '--context',
        'cluster1',
        '--cache-dir',
        join(dir, 'cache'),
        'logs',
        '-f',
        '--tail=0',
        pod,
      ],
      { cwd: dir, env: { ...process.env, HOME: dir }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let streamed = '';
    follower.stdout.on('data', (d: Buffer) => (streamed += d.toString()));
    follower.stderr.on('data', (d: Buffer) => (streamed += d.toString()));
    const gone = new Promise((resolve) => follower.on('close', resolve));
    try {
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(streamed, '', 'nothing before the new request (--tail=0)');
      await hit('/followed');
      await eventually(() => assert.match(streamed, /"GET \/followed HTTP\/1\.1" 200 /), 10_000);
      assert.equal(follower.exitCode, null, 'logs -f keeps following');
    } finally {
      follower.kill('SIGINT');
      await gone;
    }
  });
  void it('exec -ti on a real terminal (tty=true): output and exit code', async () => {
    const cmd = (args: string): string =>
      `kubectl --kubeconfig ${state.kubeconfig ?? ''} --context cluster1 --cache-dir ${join(dir, 'cache')} exec -ti deploy/x-wing -- ${args}`;
    const ok = await run('script', ['-qec', cmd('curl -s rebel-base'), '/dev/null'], dir);
    assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    assert.match(ok.stdout, /"Cluster":"cluster[12]".*\r\n/, ok.stdout);
    assert.doesNotMatch(ok.stdout, /Unable to use a TTY/);
    const three = await run('script', ['-qec', cmd("sh -c 'echo hi; exit 3'"), '/dev/null'], dir);
    assert.equal(three.code, 3, three.stdout + three.stderr);
    assert.match(three.stdout, /^hi\r$/m);
  });
  void it("a curl from kubectl exec meets the destination's network policy, as clustermesh exec", async () => {
    const manifest = join(dir, 'only-cluster1.yaml');
    await writeFile(
      manifest,
      `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: rebel-base-from-cluster1
spec:
  endpointSelector:
    matchLabels:
      name: rebel-base
  ingress:
  - fromEndpoints:
    - matchLabels:
        name: x-wing
        io.cilium.k8s.policy.cluster: cluster1
`,
    );
    const applied = await kubectl('cluster2', ['apply', '-f', manifest]);
    assert.equal(applied.code, 0, applied.stderr);
    const ips = await kubectl('cluster2', [
      'get',
      'pods',
      '-l',
      'name=rebel-base',
      '-o',
      'jsonpath={.items[0].status.podIP}',
    ]);
    const ip = ips.stdout.trim();
    assert.match(ip, /^127\.2\./, ips.stderr);
    await eventually(async () => {
      const local = await kubectl('cluster2', [
        'exec',
        'deploy/x-wing',
        '--',
        'curl',
        '-sS',
        '-m',
        '1',
        `http://${ip}/`,
      ]);
      assert.equal(local.code, 28, `cluster2's x-wing is dropped: ${local.stdout}${local.stderr}`);
      assert.match(local.stderr, /curl: \(28\) /);
    }, 30_000);
    const remote = await kubectl('cluster1', [
      'exec',
      'deploy/x-wing',
      '--',
      'curl',
      '-s',
      '-m',
      '5',
      `http://${ip}/`,
    ]);
    assert.equal(remote.code, 0, remote.stderr);
    assert.match(remote.stdout, /"Cluster":"cluster2"/);
  });

  void it("Cilium's example manifests apply unchanged (nginx serving a ConfigMap, json-mock) and serve the global service from both clusters", async () => {
    for (const [i, cluster] of ['cluster1', 'cluster2'].entries()) {
      const applied = await kubectl(cluster, [
        'apply',
        '-f',
        join(FIXTURES, `cluster${i + 1}.yaml`),
      ]);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /^configmap\/rebel-base-response created$/m, applied.stdout);
      assert.match(applied.stdout, /^deployment\.apps\/rebel-base configured$/m, applied.stdout);
    }
    // Both Deployments change image (x-wing's old pods would still be listed below).
    for (const [cluster, deployment] of ['cluster1', 'cluster2'].flatMap((c) =>
      ['rebel-base', 'x-wing'].map((d) => [c, d] as const),
    )) {
      const rolled = await run(
        'kubectl',
        [
          '--kubeconfig',
          state.kubeconfig ?? '',
          '--context',
          cluster,
          'rollout',
          'status',
          `deployment/${deployment}`,
          '--timeout=60s',
        ],
        dir,
        undefined,
        90_000,
      );
      assert.equal(rolled.code, 0, rolled.stdout + rolled.stderr);
    }
    // The seed's command, from cluster1 (cluster2's policy above admits only cluster1's x-wing).
    const seen = new Set<string>();
    await eventually(async () => {
      const r = await kubectl('cluster1', [
        'exec',
        '-ti',
        'deployment/x-wing',
        '--',
        'curl',
        '-s',
        'rebel-base',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const answer = JSON.parse(r.stdout) as { Galaxy?: string; Cluster?: string };
      assert.equal(answer.Galaxy, 'Alderaan', r.stdout);
      seen.add(answer.Cluster ?? '');
      assert.deepEqual([...seen].sort(), ['Cluster-1', 'Cluster-2']);
    }, 60_000);
    const images = await kubectl('cluster1', [
      'get',
      'pods',
      '-l',
      'name=x-wing',
      '-o',
      'jsonpath={.items[*].spec.containers[0].image}',
    ]);
    assert.match(
      images.stdout,
      /^quay\.io\/cilium\/json-mock:v1\.3\.8( quay\.io\/cilium\/json-mock:v1\.3\.8)*$/,
      images.stdout,
    );
  });

  void it('a readiness probe flips Ready and the EndpointSlice, as kubectl wait and get show', async () => {
    const manifest = (withHealthz: boolean): string => `apiVersion: v1
kind: ConfigMap
metadata:
  name: probed-html
data:
  index.html: "hello\\n"
${withHealthz ? '  healthz: "ok\\n"\n' : ''}---
apiVersion: v1
kind: Service
metadata:
  name: probed
spec:
  ports:
  - port: 80
  selector:
    app: probed
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: probed
spec:
  replicas: 1
  selector:
    matchLabels:
      app: probed
  template:
    metadata:
      labels:
        app: probed
    spec:
      containers:
      - name: web
        image: nginx:1.25
        volumeMounts:
        - name: html
          mountPath: /usr/share/nginx/html
        readinessProbe:
          httpGet:
            path: /healthz
            port: 80
          periodSeconds: 1
          failureThreshold: 1
      volumes:
      - name: html
        configMap:
          name: probed-html
`;
    const file = join(dir, 'probed.yaml');
    const slices = async (): Promise<string> =>
      (
        await kubectl('cluster1', [
          'get',
          'endpointslices',
          '-l',
          'kubernetes.io/service-name=probed',
          '-o',
          'jsonpath={.items[*].endpoints[*].conditions.ready}',
        ])
      ).stdout;
    await writeFile(file, manifest(false));
    assert.equal((await kubectl('cluster1', ['apply', '-f', file])).code, 0);
    await eventually(async () => {
      const pods = await kubectl('cluster1', ['get', 'pods', '-l', 'app=probed', '--no-headers']);
      assert.match(pods.stdout, /^probed-\S+\s+0\/1\s+Running\s/, pods.stdout);
      assert.equal(await slices(), 'false');
    }, 30_000);
    await writeFile(file, manifest(true));
    assert.equal((await kubectl('cluster1', ['apply', '-f', file])).code, 0);
    const waited = await kubectl('cluster1', [
      'wait',
      '--for=condition=Ready',
      'pod',
      '-l',
      'app=probed',
      '--timeout=30s',
    ]);
    assert.equal(waited.code, 0, waited.stderr);
    await eventually(async () => assert.equal(await slices(), 'true'), 30_000);
    const served = await kubectl('cluster1', [
      'exec',
      'deploy/x-wing',
      '--',
      'curl',
      '-s',
      'probed',
    ]);
    assert.equal(served.stdout, 'hello\n');
    await writeFile(file, manifest(false));
    assert.equal((await kubectl('cluster1', ['apply', '-f', file])).code, 0);
    const unready = await kubectl('cluster1', [
      'wait',
      '--for=condition=Ready=false',
      'pod',
      '-l',
      'app=probed',
      '--timeout=30s',
    ]);
    assert.equal(unready.code, 0, unready.stderr);
  });
});
