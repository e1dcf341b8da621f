/**
 * `clustermesh up` serves the Kubernetes API of each cluster: the kubeconfig it writes (one
 * context per cluster, recorded in mesh.json and printed as `export KUBECONFIG=…`) lets the
 * real kubectl see each cluster's own pods, wait for them, scale and annotate, and apply
 * objects that `clustermesh get --cluster` then lists: one registry behind both.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { UpProcess } from '../support/up-process.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(
  cmd: string,
  args: readonly string[],
  dir: string,
  env: NodeJS.ProcessEnv = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      {
        cwd: dir,
        env: { ...process.env, HOME: dir, LOG_LEVEL: 'silent', ...env },
        timeout: 60_000,
      },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`, { cause: err }));
      },
    );
  });
}

before(() => acquireUpLock());
after(() => releaseUpLock());

void describe('Kubernetes API of clustermesh up (2 clusters, etcd)', { timeout: 300_000 }, () => {
  let dir: string;
  let up: UpProcess;
  let state: MeshState;

  const kubectl = async (context: string, args: readonly string[]): Promise<string> => {
    const r = await run(
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
    );
    assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const clustermesh = async (args: readonly string[]): Promise<string> => {
    const r = await run(BIN, args, dir);
    assert.equal(r.code, 0, `clustermesh ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-kubeapi-'));
    up = new UpProcess(dir);
    up.start(['--clusters', '2', '--nodes', '2', '--kvstore', 'etcd', '--example', 'rebel-base']);
    state = await up.ready(120_000);
  });

  after(async () => {
    await up.stop();
    await rm(dir, { recursive: true, force: true });
  });

  void it('writes a kubeconfig with a context per cluster, records it and prints export KUBECONFIG', async () => {
    const path = join(dir, '.clustermesh', 'kubeconfig');
    assert.equal(state.kubeconfig, path);
    await eventually(() =>
      assert.match(
        up.log,
        new RegExp(`^kubectl: export KUBECONFIG=${path.replace(/[.]/g, '\\.')}$`, 'm'),
      ),
    );
    const contexts = await run(
      'kubectl',
      ['--kubeconfig', path, 'config', 'get-contexts', '-o', 'name'],
      dir,
    );
    assert.equal(contexts.stdout, 'cluster1\ncluster2\n');
  });

  void it("each context lists its own cluster's pods, with their node and IP (-o wide)", async () => {
    for (const [i, cluster] of ['cluster1', 'cluster2'].entries()) {
      await eventually(async () => {
        const out = await kubectl(cluster, ['get', 'pods', '-o', 'wide', '--no-headers']);
        const rows = out
          .trim()
          .split('\n')
          .map((l) => l.split(/\s+/));
        assert.equal(rows.filter((r) => r[0]?.startsWith('rebel-base-') === true).length, 2, out);
        for (const r of rows) {
          assert.equal(r[2], 'Running', out);
          assert.match(
            r[5] ?? '',
            new RegExp(`^127\\.${i + 1}\\.`),
            `pod IP in ${cluster}'s pod CIDR: ${out}`,
          );
          assert.match(r[6] ?? '', new RegExp(`^${cluster}-node[12]$`), out);
        }
      }, 60_000);
    }
    const waited = await kubectl('cluster2', [
      'wait',
      '--for=condition=Ready',
      'pod',
      '-l',
      'name=x-wing',
      '--timeout=60s',
    ]);
    assert.match(waited, /^pod\/x-wing-[a-z0-9-]+ condition met$/m);
  });

  void it('objects applied with kubectl are the ones clustermesh get --cluster sees', async () => {
    await writeFile(
      join(dir, 'echo.yaml'),
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: greeting\ndata:\n  message: hello\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: echo\nspec:\n  ports:\n  - port: 8080\n  selector:\n    name: echo\n',
    );
    assert.equal(
      await kubectl('cluster1', ['apply', '-f', join(dir, 'echo.yaml')]),
      'configmap/greeting created\nservice/echo created\n',
    );
    const svc = await clustermesh([
      'get',
      'svc',
      'echo',
      '--cluster',
      'cluster1',
      '--state-dir',
      join(dir, '.clustermesh'),
      '-o',
      'json',
    ]);
    assert.equal(
      (JSON.parse(svc) as { spec: { ports: { port: number }[] } }).spec.ports[0]?.port,
      8080,
    );
    const missing = await run(
      BIN,
      ['get', 'svc', 'echo', '--cluster', 'cluster2', '--state-dir', join(dir, '.clustermesh')],
      dir,
    );
    assert.notEqual(missing.code, 0, 'cluster2 has no such service');
    // The allocator gave it a ClusterIP, which kubectl shows.
    await eventually(async () => {
      assert.match(
        await kubectl('cluster1', ['get', 'svc', 'echo', '--no-headers']),
        /^echo\s+ClusterIP\s+127\.1\.1(2[89]|[3-9]\d)\.\d+\s+<none>\s+8080\/TCP\s/,
      );
    }, 20_000);
  });

  void it('scale and annotate act on the running cluster', async () => {
    assert.equal(
      await kubectl('cluster1', ['scale', 'deployment', 'rebel-base', '--replicas', '1']),
      'deployment.apps/rebel-base scaled\n',
    );
    await eventually(async () => {
      const pods = await kubectl('cluster1', [
        'get',
        'pods',
        '-l',
        'name=rebel-base',
        '-o',
        'name',
      ]);
      assert.equal(pods.trim().split('\n').length, 1, pods);
    }, 30_000);
    assert.equal(
      await kubectl('cluster1', [
        'annotate',
        'svc',
        'rebel-base',
        'service.cilium.io/affinity=local',
      ]),
      'service/rebel-base annotated\n',
    );
    const svc = JSON.parse(
      await clustermesh([
        'get',
        'svc',
        'rebel-base',
        '--cluster',
        'cluster1',
        '--state-dir',
        join(dir, '.clustermesh'),
        '-o',
        'json',
      ]),
    ) as { metadata: { annotations?: Record<string, string> } };
    assert.equal(svc.metadata.annotations?.['service.cilium.io/affinity'], 'local');
  });

  void it('kube-system has a cilium pod per node; exec into one runs cilium-dbg against its agent', async () => {
    const out = await eventually(async () => {
      const o = await kubectl('cluster1', [
        '-n',
        'kube-system',
        'get',
        'pods',
        '-l',
        'k8s-app=cilium',
        '-o',
        'wide',
        '--no-headers',
      ]);
      const rows = o
        .trim()
        .split('\n')
        .map((l) => l.split(/\s+/));
      assert.equal(rows.length, 2, o);
      for (const r of rows) assert.equal(r[2], 'Running', o);
      return rows;
    }, 30_000);
    // Host network: the pod's IP is its node's.
    const byNode = new Map(out.map((r) => [r[6] ?? '', { pod: r[0] ?? '', ip: r[5] ?? '' }]));
    assert.match(
      byNode.get('cluster1-node1')?.pod ?? '',
      /^cilium-[bcdfghjklmnpqrstvwxz2456789]{5}$/,
    );
    assert.equal(byNode.get('cluster1-node1')?.ip, '127.1.0.1');
    const pod = byNode.get('cluster1-node2')?.pod ?? '';

    // The seed's command, verbatim but for `--` (kubectl ≥ 1.26 requires it).
    const nodes = await kubectl('cluster1', [
      '-n',
      'kube-system',
      'exec',
      '-ti',
      pod,
      '--',
      'cilium',
      'node',
      'list',
    ]);
    const names = nodes
      .trim()
      .split('\n')
      .slice(1)
      .map((l) => l.split(/\s+/)[0]);
    assert.deepEqual(names, [
      'cluster1/cluster1-node1',
      'cluster1/cluster1-node2',
      'cluster2/cluster2-node1',
      'cluster2/cluster2-node2',
    ]);
    // `cilium-dbg status` is asked of this pod's node's agent.
    const status = await kubectl('cluster1', [
      '-n',
      'kube-system',
      'exec',
      pod,
      '--',
      'cilium-dbg',
      'status',
    ]);
    assert.match(status, /^Node:\s+cluster1-node2$/m, status);
    assert.match(status, /^ClusterMesh:\s+1\/1 remote clusters ready/m, status);
    const verbose = await kubectl('cluster1', [
      '-n',
      'kube-system',
      'exec',
      pod,
      '--',
      'cilium',
      'status',
      '--verbose',
    ]);
    assert.match(verbose, /cluster2/, verbose);
    const services = await kubectl('cluster1', [
      '-n',
      'kube-system',
      'exec',
      pod,
      '--',
      'cilium',
      'service',
      'list',
    ]);
    assert.match(services, /\[cluster2\]/, services);
    const inPod = (args: readonly string[]): Promise<string> =>
      kubectl('cluster1', ['-n', 'kube-system', 'exec', pod, '--', ...args]);
    assert.match(
      await inPod(['cilium', 'bpf', 'lb', 'list']),
      /^SERVICE ADDRESS\s+BACKEND ADDRESS/,
    );
    assert.match(
      await inPod(['cilium', 'bpf', 'ipcache', 'list']),
      /^127\.2\.\d+\.\d+\/32\s+identity=/m,
    );
    assert.match(
      await inPod(['cilium-dbg', 'identity', 'list']),
      /k8s:io\.cilium\.k8s\.policy\.cluster=cluster2/,
    );
    assert.match(
      await inPod(['cilium', 'kvstore', 'get', '--recursive', 'cilium/state/nodes/v1/']),
      /^cilium\/state\/nodes\/v1\/cluster1\/cluster1-node2 => /m,
    );
    assert.match(await inPod(['cilium-health', 'status']), /cluster1-node2/);
    // Unknown subcommands fail as cobra fails them; exit code 1 reaches kubectl.
    const bad = await run(
      'kubectl',
      [
        '--kubeconfig',
        state.kubeconfig ?? '',
        '--context',
        'cluster1',
        '--cache-dir',
        join(dir, 'cache'),
        '-n',
        'kube-system',
        'exec',
        pod,
        '--',
        'cilium',
        'frobnicate',
      ],
      dir,
    );
    assert.equal(bad.code, 1, bad.stderr);
    assert.match(bad.stderr, /^Error: unknown command "frobnicate" for "cilium-dbg"$/m);
    // Other images have no cilium binary.
    const xwing =
      (await kubectl('cluster1', ['get', 'pods', '-l', 'name=x-wing', '-o', 'name']))
        .trim()
        .split('\n')[0] ?? '';
    const none = await run(
      'kubectl',
      [
        '--kubeconfig',
        state.kubeconfig ?? '',
        '--context',
        'cluster1',
        '--cache-dir',
        join(dir, 'cache'),
        'exec',
        xwing,
        '--',
        'cilium',
        'status',
      ],
      dir,
    );
    assert.equal(none.code, 127, none.stderr);
  });

  void it('clustermesh-apiserver is a kube-system Deployment whose pod logs the apiserver; DNS is kube-dns', async () => {
    await eventually(async () => {
      const pods = await kubectl('cluster2', [
        'get',
        'pods',
        '-n',
        'kube-system',
        '-l',
        'k8s-app=clustermesh-apiserver',
        '--no-headers',
      ]);
      assert.match(pods, /^clustermesh-apiserver-[a-z0-9]+-[a-z0-9]{5}\s+1\/1\s+Running\s/, pods);
    }, 30_000);
    const deploy = await kubectl('cluster2', [
      'get',
      'deploy',
      '-n',
      'kube-system',
      'clustermesh-apiserver',
      '--no-headers',
    ]);
    assert.match(deploy, /^clustermesh-apiserver\s+1\/1\s+1\s+1\s/, deploy);
    const logs = await kubectl('cluster2', [
      'logs',
      '-n',
      'kube-system',
      'deployment/clustermesh-apiserver',
    ]);
    assert.match(logs, /^time=\S+ level=info msg="clustermesh-apiserver started" /m, logs);
    assert.match(logs, /msg="bootstrap completed: all canaries written"/, logs);
    assert.doesNotMatch(logs, /"level":/, 'logfmt, not pino JSON');
    // The cluster DNS as kube-dns, on the DNS server's address.
    const dns = await kubectl('cluster2', [
      'get',
      'svc',
      '-n',
      'kube-system',
      'kube-dns',
      '--no-headers',
    ]);
    assert.match(dns, /^kube-dns\s+ClusterIP\s+127\.2\.128\.10\s+<none>\s+53\/UDP,53\/TCP\s/, dns);
    // Over TCP as well: the service proxy leaves the address to the DNS server.
    const server = state.clusters.find((c) => c.name === 'cluster2')?.dns ?? '';
    const at = server.lastIndexOf(':');
    const tcp = await run(
      'dig',
      [
        `@${server.slice(0, at)}`,
        '-p',
        server.slice(at + 1),
        '+tcp',
        '+short',
        '+tries=2',
        '+time=3',
        'rebel-base.default.svc.cluster.local',
      ],
      dir,
    );
    assert.equal(tcp.code, 0, tcp.stderr);
    assert.match(tcp.stdout, /^127\.2\.128\.\d+\n$/, tcp.stdout);
  });
});
