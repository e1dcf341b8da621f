/**
 * `clustermesh up` end to end, as a newcomer runs it: the CLI starts 2 clusters × 2
 * nodes with the rebel-base example (real etcd, then the memory backend), and the
 * checks go through the CLI (apply/exec/observe/status), dig and real HTTP from
 * pod IPs: replies from both clusters, affinity local with fallback, a non-global Service
 * in cluster2 leaving cluster1 on its own backends, DNS answers, and SIGINT leaving
 * nothing running. Then 12 clusters start and stop without listener warnings. All share
 * addresses (127.1.x.x, 127.2.x.x, …): they run one after the other in this file.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { curlFrom, parseCurlArgs } from '../../src/exec/curl.js';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface Reply {
  readonly Cluster: string;
  readonly Node: string;
  readonly Pod: string;
  readonly Client: string;
  readonly Galaxy?: string;
}

interface PodJson {
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly phase: string;
}

async function cli(
  stateDir: string,
  args: readonly string[],
): Promise<{ stdout: string; stderr: string }> {
  return run(BIN, args, {
    env: { ...process.env, LOG_LEVEL: 'silent' },
    cwd: stateDir,
    timeout: 30_000,
  });
}

async function applyYaml(stateDir: string, cluster: string, yaml: string): Promise<string> {
  const file = join(stateDir, `apply-${cluster}-${Date.now()}.yaml`);
  await writeFile(file, yaml);
  const { stdout } = await cli(stateDir, ['apply', '--cluster', cluster, '-f', file]);
  return stdout;
}

function rebelService(annotations: Record<string, string>): string {
  const ann = Object.entries(annotations)
    .map(([k, v]) => `    ${k}: "${v}"\n`)
    .join('');
  return `apiVersion: v1
kind: Service
metadata:
  name: rebel-base
  namespace: default
${ann === '' ? '' : `  annotations:\n${ann}`}spec:
  type: ClusterIP
  ports:
  - port: 80
  selector:
    name: rebel-base
`;
}

function rebelDeployment(replicas: number): string {
  return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: rebel-base
  namespace: default
spec:
  replicas: ${replicas}
  selector:
    matchLabels:
      name: rebel-base
  template:
    metadata:
      labels:
        name: rebel-base
    spec:
      containers:
      - name: rebel-base
        image: clustermesh/echo
        ports:
        - containerPort: 80
        env:
        - name: MESSAGE
          value: '{"Galaxy":"Alderaan"}'
`;
}

const GLOBAL = { 'io.cilium/global-service': 'true' };

// Other e2e files start `up` too, on the same addresses: one file at a time.
before(() => acquireUpLock());
after(() => releaseUpLock());

class UpProcess {
  private child: ChildProcess | undefined;
  private output = '';
  readonly exited: Promise<number | null>;
  private resolveExit: (code: number | null) => void = () => undefined;

  constructor(
    readonly stateDir: string,
    private readonly args: readonly string[],
    private readonly env: Record<string, string> = {},
  ) {
    this.exited = new Promise((resolve) => {
      this.resolveExit = resolve;
    });
  }

  start(): void {
    const child = spawn(BIN, ['up', ...this.args], {
      cwd: this.stateDir,
      env: { ...process.env, LOG_LEVEL: 'warn', ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.output += d.toString()));
    child.on('exit', (code) => {
      this.resolveExit(code);
    });
    this.child = child;
  }

  get pid(): number {
    const pid = this.child?.pid;
    if (pid === undefined) throw new Error('up not started');
    return pid;
  }

  get log(): string {
    return this.output;
  }

  signal(sig: NodeJS.Signals): void {
    this.child?.kill(sig);
  }

  /**
   * After a failed or skipped SIGINT test: up and what it started (etcd, which a killed
   * up would leave running under PID 1) go, with etcd's data dirs.
   */
  async kill(): Promise<void> {
    if (this.child === undefined || this.child.exitCode !== null) return;
    const children = descendants(this.pid);
    const dataDirs = children.flatMap(etcdDataDirs);
    for (const pid of [this.pid, ...children]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // Gone meanwhile.
      }
    }
    await this.exited;
    for (const d of dataDirs) {
      // The temp dir etcd's fixture made for it, else the data dir alone.
      const own = basename(dirname(d)).startsWith('clustermesh-etcd-') ? dirname(d) : d;
      await rm(own, { recursive: true, force: true });
    }
  }
}

/** The --data-dir of an etcd process (none for other processes). */
function etcdDataDirs(pid: number): string[] {
  try {
    const args = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return args.filter((a) => a.startsWith('--data-dir=')).map((a) => a.slice(11));
  } catch {
    return [];
  }
}

/** Every process whose parent chain leads to `pid`. */
function descendants(pid: number): number[] {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // Gone meanwhile.
    }
  }
  const out: number[] = [];
  const walk = (p: number): void => {
    for (const [child, parent] of parents) {
      if (parent === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

/** Running, not a zombie waiting for its new parent (here PID 1) to reap it. */
function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

function tcpRefused(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', () => {
      resolve(true);
    });
  });
}

async function podsOf(state: MeshState, cluster: string): Promise<PodJson[]> {
  const res = await fetch(`${state.control}/v1/pods?cluster=${cluster}`);
  return (await res.json()) as PodJson[];
}

/** n requests to rebel-base from cluster1's x-wing (its IP, its DNS); the replies. */
async function requests(state: MeshState, n: number): Promise<Reply[]> {
  const c1 = state.clusters[0];
  assert.ok(c1 !== undefined, 'cluster1 in mesh.json');
  const xwing = (await podsOf(state, 'cluster1')).find(
    (p) => p.name.startsWith('x-wing-') && p.phase === 'Running',
  );
  assert.ok(xwing !== undefined, 'x-wing runs in cluster1');
  const out: Reply[] = [];
  for (let i = 0; i < n; i++) {
    let body = '';
    await curlFrom(
      parseCurlArgs(['curl', '-s', '-m', '5', 'rebel-base']),
      { sourceIP: xwing.ip, namespace: 'default', dns: c1.dns },
      {
        stdout: (s) => (body += s),
        stderr: () => undefined,
      },
    );
    const reply = JSON.parse(body) as Reply;
    assert.equal(reply.Client, xwing.ip, 'the backend sees the pod IP as the source');
    out.push(reply);
  }
  return out;
}

function clustersOf(replies: readonly Reply[]): Set<string> {
  return new Set(replies.map((r) => r.Cluster));
}

function upScenario(kvstore: 'etcd' | 'memory', kvstoremesh = false): void {
  const title = `clustermesh up (${kvstore}${kvstoremesh ? ', KVStoreMesh' : ''})`;
  describe(title, { timeout: 240_000 }, () => {
    let dir: string;
    let up: UpProcess;
    let state: MeshState;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), `cm-up-${kvstore}-`));
      up = new UpProcess(dir, [
        '--clusters',
        '2',
        '--nodes',
        '2',
        '--kvstore',
        kvstore,
        '--example',
        'rebel-base',
        ...(kvstoremesh ? ['--kvstoremesh'] : []),
      ]);
      const t0 = performance.now();
      up.start();
      await eventually(async () => {
        state = await readMeshState(join(dir, '.clustermesh'));
      }, 60_000).catch((err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${up.log}`);
      });
      const readyMs = performance.now() - t0;
      if (kvstore === 'memory' && !kvstoremesh) {
        assert.ok(readyMs < 10_000, `2 × 2 memory mesh ready in ${readyMs.toFixed(0)} ms`);
      }
    });

    after(async () => {
      await up.kill();
      await rm(dir, { recursive: true, force: true });
    });

    it('writes mesh.json and prints what runs where', async () => {
      assert.deepEqual(
        state.clusters.map((c) => [c.name, c.id, c.agents.map((a) => a.node)]),
        [
          ['cluster1', 1, ['cluster1-node1', 'cluster1-node2']],
          ['cluster2', 2, ['cluster2-node1', 'cluster2-node2']],
        ],
      );
      assert.equal(state.kvstore, kvstore);
      assert.equal(state.kvstoremesh, kvstoremesh);
      for (const c of state.clusters) {
        assert.match(c.dns, new RegExp(`^127\\.${c.id}\\.128\\.10:\\d+$`));
        // etcd: TLS by default, dialled by its mesh name (mapped in hostaliases.yaml).
        assert.match(
          c.kvstore,
          kvstore === 'etcd' ? /^https:\/\/cluster\d\.mesh\.cilium\.io:\d+$/ : /^memory:\/\//,
        );
      }
      // The summary follows mesh.json by a moment.
      await eventually(() => {
        assert.match(up.log, /cluster1-node1\s+127\.1\.0\.1\s+127\.1\.1\.0\/24/);
      }, 5_000);
    });

    if (kvstore === 'etcd') {
      it('etcd speaks TLS only; the CLI reads it as admin with the state dir’s credentials', async () => {
        const c1 = state.clusters[0];
        assert.ok(c1?.kvstoreConfig !== undefined, 'mesh.json names the admin etcd config');
        assert.equal(state.tls, true);
        const { stdout } = await cli(dir, [
          '-o',
          'json',
          'kvstore',
          'get',
          '--cluster',
          'cluster1',
          'cilium/cluster-config/cluster1',
        ]);
        const got = JSON.parse(stdout) as { key: string; value: string };
        assert.equal((JSON.parse(got.value) as { id: number }).id, 1);
        // Plaintext to the same port is refused: TLS is not optional.
        const plain = await cli(dir, [
          'kvstore',
          'get',
          '--timeout',
          '2s',
          '--kvstore-opt',
          `etcd.address=http://127.1.128.2:${new URL(c1.kvstore).port}`,
          'cilium/cluster-config/cluster1',
        ]).then(
          () => 'succeeded',
          (err: unknown) => String((err as { stderr?: string }).stderr),
        );
        assert.match(plain, /unreachable|TLS/, plain);
      });
    }

    it('status and node list without -H ask the agents of the running mesh', async () => {
      const { stdout } = await cli(dir, ['status']);
      assert.match(stdout, /^Cluster:\s+cluster1 \(1\)\nNode:\s+cluster1-node1\n/);
      assert.match(stdout, /ClusterMesh:\s+1\/1 remote clusters ready/);
      const nodes = await cli(dir, ['node', 'list', '--node', 'cluster2/cluster2-node2']);
      assert.match(nodes.stdout, /^cluster1\/cluster1-node1\s+127\.1\.0\.1\s/m);
      assert.match(nodes.stdout, /^cluster2\/cluster2-node2\s+127\.2\.0\.2\s/m);
    });

    it('agents read remote clusters directly, or the KVStoreMesh cache when asked', async () => {
      for (const c of state.clusters) {
        for (const a of c.agents) {
          const status = (await (await fetch(`${a.api}/v1/clustermesh`)).json()) as {
            clusters: { name: string; ready: boolean; config: { kvstoremesh: boolean } }[];
          };
          assert.deepEqual(
            status.clusters.map((r) => [r.ready, r.config.kvstoremesh]),
            [[true, kvstoremesh]],
            `${a.node} sees its one remote cluster ready`,
          );
        }
      }
    });

    it('global service: 20 requests from cluster1/x-wing reach backends in both clusters', async () => {
      const replies = await requests(state, 20);
      assert.deepEqual([...clustersOf(replies)].sort(), ['cluster1', 'cluster2']);
      assert.ok(
        replies.every((r) => r.Galaxy === 'Alderaan'),
        'the example message',
      );
      // And through the CLI, as the walkthrough does.
      const { stdout } = await cli(dir, [
        'exec',
        'cluster1/x-wing',
        '--',
        'curl',
        '-s',
        'rebel-base',
      ]);
      assert.match((JSON.parse(stdout) as Reply).Cluster, /^cluster[12]$/);
      // A plain request from the host to the ClusterIP works too.
      const c1 = state.clusters[0];
      assert.ok(c1 !== undefined, 'cluster1 in mesh.json');
      const services = (await (await fetch(`${c1.agents[0]?.api ?? ''}/v1/services`)).json()) as {
        service: string;
        frontend: string;
      }[];
      const frontend = services.find((f) => f.service === 'default/rebel-base')?.frontend ?? '';
      const fromHost = (await (
        await fetch(`http://${frontend.replace(/\/TCP$/, '')}/`)
      ).json()) as Reply;
      assert.match(fromHost.Cluster, /^cluster[12]$/);
      assert.equal(fromHost.Client, '127.0.0.1');
    });

    it('flows record source pod, service and translated backend', async () => {
      const { stdout } = await cli(dir, ['observe', '--last', '50', '-o', 'json']);
      const flows = JSON.parse(stdout) as {
        verdict: string;
        source: { pod?: string; cluster?: string; identity?: number };
        service?: { name: string };
        backend?: { cluster?: string; pod?: string };
      }[];
      const viaService = flows.filter((f) => f.service?.name === 'rebel-base');
      assert.ok(viaService.length > 0, 'service flows recorded');
      const f = viaService[0];
      assert.ok(f !== undefined, 'a service flow');
      assert.equal(f.verdict, 'FORWARDED');
      assert.match(f.source.pod ?? '', /^x-wing-/);
      assert.equal(f.source.cluster, 'cluster1');
      assert.ok((f.source.identity ?? 0) >> 16 === 1, 'x-wing identity is in cluster1 range');
      assert.match(f.backend?.pod ?? '', /^rebel-base-/);
    });

    it('affinity local: cluster1 only, then cluster2 once cluster1 has no backends', async () => {
      await applyYaml(
        dir,
        'cluster1',
        rebelService({ ...GLOBAL, 'service.cilium.io/affinity': 'local' }),
      );
      await eventually(async () => {
        assert.deepEqual([...clustersOf(await requests(state, 20))], ['cluster1']);
      }, 20_000);
      await applyYaml(dir, 'cluster1', rebelDeployment(0));
      await eventually(async () => {
        assert.deepEqual([...clustersOf(await requests(state, 20))], ['cluster2']);
      }, 20_000);
    });

    it('a Service not global in cluster2 leaves cluster1 on its own backends', async () => {
      await applyYaml(dir, 'cluster1', rebelService(GLOBAL) + '---\n' + rebelDeployment(2));
      await eventually(async () => {
        assert.deepEqual([...clustersOf(await requests(state, 20))].sort(), [
          'cluster1',
          'cluster2',
        ]);
      }, 20_000);
      await applyYaml(dir, 'cluster2', rebelService({}));
      await eventually(async () => {
        assert.deepEqual([...clustersOf(await requests(state, 20))], ['cluster1']);
      }, 20_000);
    });

    it('DNS answers A, SRV and NXDOMAIN', async () => {
      const c1 = state.clusters[0];
      assert.ok(c1 !== undefined, 'cluster1 in mesh.json');
      const { stdout: svcJson } = await cli(dir, [
        'get',
        'svc',
        'rebel-base',
        '--cluster',
        'cluster1',
        '-o',
        'json',
      ]);
      const clusterIP = (JSON.parse(svcJson) as { spec: { clusterIP: string } }).spec.clusterIP;
      assert.match(clusterIP, /^127\.1\.(1[2-9][0-9]|2[0-5][0-9])\.\d+$/);
      // dig, the client a user reaches for (installed by .ci/run with dnsutils).
      const [host, port] = c1.dns.split(':');
      const dig = async (...q: string[]): Promise<string> =>
        (await run('dig', [`@${host ?? ''}`, '-p', port ?? '53', '+time=2', '+tries=2', ...q]))
          .stdout;
      const name = 'rebel-base.default.svc.cluster.local';
      assert.equal((await dig('+short', name)).trim(), clusterIP);
      assert.match(
        await dig('+short', 'SRV', name),
        /\b80 rebel-base\.default\.svc\.cluster\.local\./,
      );
      assert.match(await dig('nothing-here.default.svc.cluster.local'), /status: NXDOMAIN/);
      // The MCS zone is served too (not REFUSED): nothing is imported, so NXDOMAIN, with
      // its own SOA for negative caching.
      const mcs = await dig(
        '+noall',
        '+comments',
        '+authority',
        'rebel-base.default.svc.clusterset.local',
      );
      assert.match(mcs, /status: NXDOMAIN/);
      assert.match(mcs, /^clusterset\.local\.\s+5\s+IN\s+SOA\s/m);
    });

    it('SIGINT stops everything it started', async () => {
      const children = descendants(up.pid);
      if (kvstore === 'etcd') assert.ok(children.length >= 2, 'etcd processes ran under up');
      // etcd's data lives in temp dirs that must go with it.
      const dataDirs = children.flatMap(etcdDataDirs);
      if (kvstore === 'etcd') assert.equal(dataDirs.length, 2, 'one etcd data dir per cluster');
      up.signal('SIGINT');
      const code = await Promise.race([
        up.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000)),
      ]);
      assert.equal(code, 0, `up exited cleanly:\n${up.log}`);
      for (const pid of children) assert.equal(alive(pid), false, `child ${pid} is gone`);
      assert.equal(existsSync(join(dir, '.clustermesh')), false, 'state dir removed');
      for (const d of dataDirs) assert.equal(existsSync(d), false, `${d} removed`);
      for (const a of state.clusters.flatMap((c) => c.agents)) {
        // The port mesh.json names: 9876 unless it was taken when up started.
        const api = new URL(a.api);
        assert.equal(
          await tcpRefused(api.hostname, Number(api.port)),
          true,
          `${a.node} API closed`,
        );
      }
      const c1 = state.clusters[0];
      assert.ok(c1 !== undefined, 'cluster1 in mesh.json');
      const [dnsHost, dnsPort] = c1.dns.split(':');
      assert.equal(await tcpRefused(dnsHost ?? '', Number(dnsPort)), true, 'DNS closed');
    });
  });
}

upScenario('etcd');
upScenario('memory');
upScenario('memory', true);

// Whatever runs per cluster must not pile listeners onto one shared AbortSignal: past 10,
// Node warns (MaxListenersExceededWarning) and the listeners live as long as the mesh.
describe('clustermesh up --clusters 12 --first-cluster-id 10', { timeout: 120_000 }, () => {
  it('starts and stops without a MaxListenersExceededWarning', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cm-up-many-'));
    // Node prints process warnings on stderr unless told not to; make sure it is not.
    // IDs 10–21 (127.10–21.x): no other file's mesh uses them, while the files on IDs 1–3,
    // 4–6 and 7–9 may run beside this one.
    const up = new UpProcess(
      dir,
      ['--clusters', '12', '--first-cluster-id', '10', '--nodes', '1', '--kvstore', 'memory'],
      { NODE_OPTIONS: '' },
    );
    try {
      up.start();
      let state: MeshState | undefined;
      await eventually(async () => {
        state = await readMeshState(join(dir, '.clustermesh'));
      }, 60_000).catch((err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${up.log}`);
      });
      assert.equal(state?.clusters.length, 12);
      up.signal('SIGINT');
      const code = await Promise.race([
        up.exited,
        new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 20_000)),
      ]);
      assert.equal(code, 0, `up exited cleanly:\n${up.log}`);
      assert.doesNotMatch(up.log, /MaxListenersExceededWarning|memory leak/);
    } finally {
      await up.kill();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
