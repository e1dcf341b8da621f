/**
 * External workloads end to end on `clustermesh up --clusters 2 --example rebel-base` (etcd
 * with TLS, `--vms 1`: vm1 runs from the start): `vm create web1` in cluster1, `vm install`
 * writes the script, `vm run` starts the VM as its own process from that script. Then: the VM's identity in cluster2's ipcache,
 * identity list and node list; VM → the global service (answers from both clusters); pod →
 * VM by IP and through a Service selecting it; policy selecting the VM by its labels, at
 * its ingress and its egress; a VM restart keeps its identity; each bad input (unknown
 * name, address outside the CIDR, another VM taking the name, a certificate of another
 * cluster) is refused with one line and leaves nothing behind; `vm delete` removes the
 * VM's entries everywhere and the running VM is told why. Real clients only: the CLI.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readMeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { UpProcess } from '../support/up-process.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));
const VM_IP = '127.1.250.2';

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** A `vm run` child process: its output kept, stopped by SIGINT. */
class VmProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<number | null>;

  constructor(dir: string, args: readonly string[]) {
    this.child = spawn(BIN, ['vm', 'run', ...args], {
      cwd: dir,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child.stdout?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.child.stderr?.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => resolve(code)));
  }

  async joined(): Promise<string> {
    return eventually(
      () => {
        const line = this.output.split('\n').find((l) => l.startsWith('✅'));
        assert.ok(line !== undefined, `vm run printed its join line:\n${this.output}`);
        return line;
      },
      { timeoutMs: 60_000 },
    );
  }

  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    this.child.kill('SIGINT');
    await this.exited;
  }
}

before(() => acquireUpLock());
after(() => releaseUpLock());

describe('external workloads: a VM in cluster1 of clustermesh up --clusters 2 --example rebel-base', () => {
  let dir: string;
  let up: UpProcess;
  let vm: VmProcess | undefined;

  const cli = async (args: readonly string[], timeout = 60_000): Promise<CliResult> => {
    try {
      const { stdout, stderr } = await run(BIN, args, {
        cwd: dir,
        env: { ...process.env, LOG_LEVEL: 'silent' },
        timeout,
      });
      return { code: 0, stdout, stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };
  const ok = async (args: readonly string[]): Promise<string> => {
    const r = await cli(args);
    assert.equal(r.code, 0, `clustermesh ${args.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const json = async <T>(args: readonly string[]): Promise<T> =>
    JSON.parse(await ok([...args, '-o', 'json'])) as T;
  const onCluster2 = ['--node', 'cluster2/cluster2-node1'];
  const ipcache2 = () =>
    json<{ cidr: string; identity: number; cluster: string }[]>(['ipcache', 'list', ...onCluster2]);
  const identities2 = () =>
    json<{ id: number; labels: string[] }[]>(['identity', 'list', ...onCluster2]);
  const apply = async (yaml: string): Promise<void> => {
    const file = join(dir, `m-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, yaml);
    await ok(['apply', '-f', file, '--cluster', 'cluster1']);
  };
  const del = (kind: string, name: string) => ok(['delete', kind, name, '--cluster', 'cluster1']);
  let identity = 0;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-vm-e2e-'));
    up = new UpProcess(dir);
    up.start(['--clusters', '2', '--kvstore', 'etcd', '--example', 'rebel-base', '--vms', '1']);
    await eventually(() => readMeshState(join(dir, '.clustermesh')), { timeoutMs: 180_000 }).catch(
      (err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${up.log}`);
      },
    );
  });

  after(async () => {
    await vm?.stop();
    await up.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('up --vms 1 runs vm1: connected, seen by cluster2, reaching the global service', async () => {
    await eventually(async () => {
      assert.match(
        await ok(['vm', 'status', 'vm1']),
        /\nvm1\s+-\s+127\.1\.250\.1\s+\d+\s+connected\s+app=vm,vm=vm1\n/,
      );
      assert.ok(
        (await ipcache2()).some((e) => e.cidr === '127.1.250.1/32'),
        'vm1 in cluster2’s ipcache',
      );
    });
    const reply = JSON.parse(await ok(['exec', 'vm/vm1', '--', 'curl', '-s', 'rebel-base'])) as {
      Galaxy: string;
      Client: string;
    };
    assert.deepEqual([reply.Galaxy, reply.Client], ['Alderaan', '127.1.250.1']);
  });

  it('vm create, vm install, vm run: the VM joins and gets an identity in cluster1’s range', async () => {
    assert.match(
      await ok([
        'vm',
        'create',
        'web1',
        '--ipv4-alloc-cidr',
        '127.1.250.0/29',
        '--labels',
        'app=vm-web,tier=legacy',
      ]),
      /^✅ external workload web1 created in cluster1\n$/,
    );
    assert.match(
      await ok(['vm', 'status']),
      /\nweb1\s+127\.1\.250\.0\/29\s+-\s+-\s+waiting for registration\s+app=vm-web,tier=legacy\n/,
    );
    assert.match(
      await ok(['vm', 'install', 'install-external-workload.sh']),
      /^✅ wrote install-external-workload\.sh/,
    );
    const script = await readFile(join(dir, 'install-external-workload.sh'), 'utf8');
    assert.match(script, /BEGIN CERTIFICATE/);
    assert.match(script, /CLUSTER_ADDR='https:\/\/cluster1\.mesh\.cilium\.io:\d+'/);
    assert.match(script, /exec clustermesh agent --join-cluster/);

    vm = new VmProcess(dir, ['web1', '--script', 'install-external-workload.sh']);
    const line = await vm.joined();
    const m = /^✅ web1 joined cluster1 as 127\.1\.250\.2 \(identity (\d+)\)/.exec(line);
    assert.ok(m !== null, line);
    identity = Number(m[1]);
    assert.ok(
      identity >= 1 << 16 && identity < 2 << 16,
      `identity ${identity} in cluster 1's range`,
    );
    const status = await json<{ metadata: { name: string }; status: Record<string, unknown> }[]>([
      'vm',
      'status',
    ]);
    assert.deepEqual(status.find((o) => o.metadata.name === 'web1')?.status, {
      id: identity,
      ip: VM_IP,
      registered: true,
      connected: true,
    });
  });

  it('cluster2 sees the VM: ipcache, identity list (with the cluster label) and node list', async () => {
    await eventually(async () => {
      const entry = (await ipcache2()).find((e) => e.cidr === `${VM_IP}/32`);
      assert.deepEqual(entry && { identity: entry.identity, cluster: entry.cluster }, {
        identity,
        cluster: 'cluster1',
      });
      const id = (await identities2()).find((i) => i.id === identity);
      assert.deepEqual(id?.labels, [
        'k8s:app=vm-web',
        'k8s:io.cilium.k8s.policy.cluster=cluster1',
        'k8s:io.kubernetes.pod.name=web1',
        'k8s:io.kubernetes.pod.namespace=default',
        'k8s:tier=legacy',
      ]);
      const nodes = await json<{ Name: string; Cluster: string }[]>([
        'node',
        'list',
        ...onCluster2,
      ]);
      assert.ok(
        nodes.some((n) => n.Name === 'web1' && n.Cluster === 'cluster1'),
        'web1 in cluster2’s nodes',
      );
    });
  });

  it('the VM reaches the global service; answers come from both clusters', async () => {
    const clusters = new Set<string>();
    for (let i = 0; i < 12 && clusters.size < 2; i++) {
      const body = await ok(['exec', 'vm/web1', '--', 'curl', '-s', 'rebel-base']);
      const reply = JSON.parse(body) as { Cluster: string; Client: string };
      assert.equal(reply.Client, VM_IP, 'the connection leaves from the VM’s address');
      clusters.add(reply.Cluster);
    }
    assert.deepEqual([...clusters].sort(), ['cluster1', 'cluster2']);
  });

  it('pods reach the VM by its IP (from both clusters) and through a Service selecting it', async () => {
    for (const pod of ['cluster1/x-wing', 'cluster2/x-wing']) {
      const reply = JSON.parse(await ok(['exec', pod, '--', 'curl', '-s', '-m', '5', VM_IP])) as {
        ExternalWorkload: string;
      };
      assert.equal(reply.ExternalWorkload, 'web1');
    }
    await apply(
      'apiVersion: v1\nkind: Service\nmetadata:\n  name: vm-web\nspec:\n  selector:\n    app: vm-web\n  ports:\n  - port: 80\n',
    );
    await eventually(async () => {
      const body = await ok(['exec', 'cluster1/x-wing', '--', 'curl', '-s', '-m', '3', 'vm-web']);
      assert.equal((JSON.parse(body) as { ExternalWorkload: string }).ExternalWorkload, 'web1');
    });
  });

  it('policy selects the VM by its labels: ingress allowed, then denied; egress denied', async () => {
    const policy = (name: string, dir: 'ingress' | 'egress'): string =>
      `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: ${name}\nspec:\n  endpointSelector:\n    matchLabels:\n      tier: legacy\n  ${dir}:\n  - ${dir === 'ingress' ? 'fromEndpoints' : 'toEndpoints'}:\n    - matchLabels:\n        app: nobody\n`;
    const toVm = () => cli(['exec', 'cluster1/x-wing', '--', 'curl', '-s', '-m', '2', VM_IP]);
    assert.equal((await toVm()).code, 0, 'allowed without a policy');
    await apply(policy('vm-ingress', 'ingress'));
    await eventually(async () => {
      assert.equal((await toVm()).code, 28, 'dropped at the VM: the client times out');
    });
    await del('cnp', 'vm-ingress');
    await eventually(async () => {
      assert.equal((await toVm()).code, 0, 'allowed again');
    });
    const fromVm = () => cli(['exec', 'vm/web1', '--', 'curl', '-s', '-m', '2', 'rebel-base']);
    await apply(policy('vm-egress', 'egress'));
    await eventually(async () => {
      assert.equal((await fromVm()).code, 28, 'dropped at the VM’s egress');
    });
    await del('cnp', 'vm-egress');
    await eventually(async () => {
      assert.equal((await fromVm()).code, 0, 'allowed again');
    });
  });

  it('a VM restart keeps its identity', async () => {
    await vm?.stop();
    await eventually(async () => {
      assert.match(
        await ok(['vm', 'status', 'web1']),
        /\nweb1\s+\S+\s+127\.1\.250\.2\s+\d+\s+disconnected/,
      );
    });
    vm = new VmProcess(dir, ['web1']);
    assert.match(
      await vm.joined(),
      new RegExp(`^✅ web1 joined cluster1 as 127\\.1\\.250\\.2 \\(identity ${identity}\\)`),
    );
  });

  it('refuses bad input with one line and leaves nothing behind', async () => {
    const refused = async (args: readonly string[], pattern: RegExp): Promise<void> => {
      const r = await cli(['vm', 'run', ...args, '--timeout', '10']);
      assert.equal(r.code, 1, `${args.join(' ')}: ${r.stdout}${r.stderr}`);
      const last = r.stderr.trim().split('\n').pop() ?? '';
      assert.match(last, pattern);
    };
    await refused(
      ['ghost'],
      /^clustermesh: registration of ghost refused: no CiliumExternalWorkload named "ghost"/,
    );
    await refused(
      ['web1', '--ip', '127.1.251.1'],
      /^clustermesh: registration of web1 refused: 127\.1\.251\.1 is outside web1's ipv4-alloc-cidr 127\.1\.250\.0\/29$/,
    );
    await refused(
      ['web1', '--ip', '127.1.250.3'],
      /^clustermesh: registration of web1 refused: web1 is (already connected|registered) from 127\.1\.250\.2$/,
    );
    // Another VM's address (vm1's, which up --vms runs).
    await refused(
      ['web1', '--ip', '127.1.250.1'],
      /^clustermesh: registration of web1 refused: 127\.1\.250\.1 is the address of external workload vm1$/,
    );
    // web1's own certificate and key replaced by cluster2's: etcd refuses the handshake.
    await ok(['vm', 'install', 'c2.sh', '--cluster', 'cluster2']);
    const mine = await readFile(join(dir, 'install-external-workload.sh'), 'utf8');
    const theirs = await readFile(join(dir, 'c2.sh'), 'utf8');
    const block = (s: string, mark: string): string =>
      new RegExp(`<<'${mark}'\\n([\\s\\S]*?)\\n${mark}$`, 'm').exec(s)?.[1] ?? '';
    let wrong = mine;
    for (const mark of ['CLUSTERMESH_CERT_EOF', 'CLUSTERMESH_KEY_EOF']) {
      wrong = wrong.replace(block(mine, mark), block(theirs, mark));
    }
    await writeFile(join(dir, 'wrong-cert.sh'), wrong);
    await refused(
      ['web1', '--script', 'wrong-cert.sh', '--ip', '127.1.250.3'],
      /^clustermesh: etcd at https:\/\/cluster1\.mesh\.cilium\.io:\d+: TLS handshake failed: .*bad certificate/,
    );

    // Logged by the apiserver, and nothing was given to the refused ones.
    assert.match(
      up.log,
      /External workload registration refused: no CiliumExternalWorkload named \\"ghost\\"/,
    );
    assert.match(up.log, /External workload registration refused: 127\.1\.251\.1 is outside/);
    const nodes = await json<{ Name: string }[]>(['node', 'list', ...onCluster2]);
    assert.deepEqual(
      nodes.filter((n) => ['ghost', 'web1'].includes(n.Name)).map((n) => n.Name),
      ['web1'],
    );
    assert.deepEqual(
      (await ipcache2())
        .filter((e) => e.cidr.startsWith('127.1.25'))
        .map((e) => e.cidr)
        .sort(),
      ['127.1.250.1/32', `${VM_IP}/32`],
      'only the two running VMs',
    );
    // web1 is untouched by the VM that tried its name.
    await eventually(async () => {
      assert.match(
        await ok(['vm', 'status', 'web1']),
        /\nweb1\s+\S+\s+127\.1\.250\.2\s+\d+\s+connected/,
      );
    });
    assert.equal(vm?.child.exitCode, null, 'web1 still runs');
  });

  it('the install script itself joins a VM: clustermesh agent --join-cluster', async () => {
    await ok(['vm', 'create', 'web2', '--labels', 'app=script']);
    const child = spawn('sh', ['install-external-workload.sh'], {
      cwd: dir,
      env: {
        ...process.env,
        LOG_LEVEL: 'warn',
        VM_NAME: 'web2',
        VM_IP: '127.1.250.4',
        CLUSTERMESH_ETCD_DIR: join(dir, 'web2-etcd'),
        PATH: `${dirname(BIN)}:${process.env.PATH ?? ''}`,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise((resolve) => child.on('exit', resolve));
    try {
      await eventually(
        async () => {
          assert.equal(child.exitCode, null, `the agent runs:\n${output}`);
          assert.match(
            await ok(['vm', 'status', 'web2']),
            /\nweb2\s+-\s+127\.1\.250\.4\s+\d+\s+connected\s+app=script\n/,
          );
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(
        await readFile(join(dir, 'web2-etcd', 'hostaliases.yaml'), 'utf8').then((t) =>
          /127\.1\.128\.2/.test(t),
        ),
        true,
        'the script maps the mesh name to the etcd address',
      );
    } finally {
      child.kill('SIGINT');
      await exited;
    }
    await eventually(async () => {
      assert.match(
        await ok(['vm', 'status', 'web2']),
        /\nweb2\s+-\s+127\.1\.250\.4\s+\d+\s+disconnected/,
      );
    });
    await ok(['vm', 'delete', 'web2']);
  });

  it('vm delete removes the VM’s entries everywhere, and the running VM is told why', async () => {
    assert.match(
      await ok(['vm', 'delete', 'web1']),
      /^✅ external workload web1 deleted from cluster1\n$/,
    );
    await eventually(async () => {
      assert.equal(
        (await ipcache2()).some((e) => e.cidr === `${VM_IP}/32`),
        false,
        'ipcache',
      );
      assert.equal(
        (await identities2()).some((i) => i.id === identity),
        false,
        'identities',
      );
      const nodes = await json<{ Name: string }[]>(['node', 'list', ...onCluster2]);
      assert.equal(
        nodes.some((n) => n.Name === 'web1'),
        false,
        'nodes',
      );
      assert.doesNotMatch(await ok(['get', 'cep', '--cluster', 'cluster1']), /web1/);
      assert.doesNotMatch(await ok(['get', 'endpointslices', '--cluster', 'cluster1']), /vm-web1/);
    });
    assert.equal(await vm?.exited, 1);
    assert.match(
      vm?.output ?? '',
      /clustermesh: registration of web1 refused: no CiliumExternalWorkload named "web1"/,
    );
    assert.equal((await cli(['vm', 'delete', 'web1'])).code, 1, 'deleting it again fails');
  });
});
