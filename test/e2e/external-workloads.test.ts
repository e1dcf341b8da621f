/**
 * External workloads end to end on `clustermesh up --clusters 2 --first-cluster-id 4
 * --example rebel-base` (etcd with TLS, `--vms 1`: vm1 runs from the start; IDs 4–5 so this
 * file runs beside the ones on IDs 1–3): `vm create web1` in cluster4, `vm install` writes
 * the script, `vm run` starts the VM as its own process from that script. Then: the
 * apiservers' health and metrics addresses (mesh.json, what up prints); the VM's identity
 * in cluster5's ipcache, identity list and node list; VM → the global service (answers from
 * both clusters); pod → VM by IP and through a Service selecting it; policy selecting the
 * VM by its labels, at its ingress and its egress; a VM killed with SIGKILL shows
 * disconnected within its lease TTL and its restart keeps its identity; each bad input
 * (unknown name, address outside the CIDR, another VM's address, another VM taking the
 * name, a certificate of another cluster) is refused with one line, counted once per kind on
 * the apiserver's /metrics, and leaves nothing behind; `vm delete` removes the VM's entries
 * everywhere and the running VM is told why. Real clients only: the CLI and curl.
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
const VM_IP = '127.4.250.2';

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

// IDs 4–5: this file runs beside the ones on the default IDs 1–3.
before(() => acquireUpLock(600_000, 4));
after(() => releaseUpLock(4));

describe('external workloads: a VM in cluster4 of clustermesh up --clusters 2 --example rebel-base', () => {
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
  const onCluster5 = ['--node', 'cluster5/cluster5-node1'];
  const ipcache5 = () =>
    json<{ cidr: string; identity: number; cluster: string }[]>(['ipcache', 'list', ...onCluster5]);
  const identities5 = () =>
    json<{ id: number; labels: string[] }[]>(['identity', 'list', ...onCluster5]);
  const apply = async (yaml: string): Promise<void> => {
    const file = join(dir, `m-${Math.random().toString(36).slice(2)}.yaml`);
    await writeFile(file, yaml);
    await ok(['apply', '-f', file, '--cluster', 'cluster4']);
  };
  const del = (kind: string, name: string) => ok(['delete', kind, name, '--cluster', 'cluster4']);
  let identity = 0;
  /** cluster4's apiserver's refusal counters, by reason, as its /metrics serves them. */
  const refusals = async (): Promise<Record<string, number>> => {
    const { stdout } = await run('curl', ['-sf', 'http://127.4.128.2:9962/metrics']);
    const out: Record<string, number> = {};
    const re =
      /^cilium_clustermesh_apiserver_external_workload_registrations_total\{outcome="refused",reason="([^"]+)"\} (\d+)$/gm;
    for (const m of stdout.matchAll(re)) out[m[1] ?? ''] = Number(m[2]);
    return out;
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-vm-e2e-'));
    up = new UpProcess(dir);
    up.start([
      '--clusters',
      '2',
      '--first-cluster-id',
      '4',
      '--kvstore',
      'etcd',
      '--example',
      'rebel-base',
      '--vms',
      '1',
    ]);
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

  it('up serves each apiserver’s health and metrics on loopback: in mesh.json and in what it prints', async () => {
    const state = await readMeshState(join(dir, '.clustermesh'));
    assert.deepEqual(
      state.clusters.map((c) => [c.name, c.apiserver, c.vmCIDR]),
      [
        [
          'cluster4',
          { health: 'http://127.4.128.2:9880', metrics: 'http://127.4.128.2:9962' },
          '127.4.250.0/24',
        ],
        [
          'cluster5',
          { health: 'http://127.5.128.2:9880', metrics: 'http://127.5.128.2:9962' },
          '127.5.250.0/24',
        ],
      ],
    );
    // Printed once the whole mesh, VMs included, runs.
    await eventually(
      () => {
        assert.match(
          up.log,
          /\nAPISERVER\s+HEALTH\s+METRICS\s+VMS\ncluster4\s+http:\/\/127\.4\.128\.2:9880\s+http:\/\/127\.4\.128\.2:9962\s+127\.4\.250\.0\/24\n/,
        );
      },
      { timeoutMs: 60_000 },
    );
    const { stdout } = await run('curl', ['-sf', 'http://127.4.128.2:9880/healthz']);
    assert.match(stdout, /ok/i);
    assert.deepEqual(await refusals(), {}, 'no refusal yet');
  });

  it('up --vms 1 runs vm1: connected, seen by cluster5, reaching the global service', async () => {
    await eventually(async () => {
      assert.match(
        await ok(['vm', 'status', 'vm1']),
        /\nvm1\s+-\s+127\.4\.250\.1\s+\d+\s+connected\s+app=vm,vm=vm1\n/,
      );
      assert.ok(
        (await ipcache5()).some((e) => e.cidr === '127.4.250.1/32'),
        'vm1 in cluster5’s ipcache',
      );
    });
    const reply = JSON.parse(await ok(['exec', 'vm/vm1', '--', 'curl', '-s', 'rebel-base'])) as {
      Galaxy: string;
      Client: string;
    };
    assert.deepEqual([reply.Galaxy, reply.Client], ['Alderaan', '127.4.250.1']);
  });

  it('vm create, vm install, vm run: the VM joins and gets an identity in cluster4’s range', async () => {
    assert.match(
      await ok([
        'vm',
        'create',
        'web1',
        '--ipv4-alloc-cidr',
        '127.4.250.0/29',
        '--labels',
        'app=vm-web,tier=legacy',
      ]),
      /^✅ external workload web1 created in cluster4\n$/,
    );
    assert.match(
      await ok(['vm', 'status']),
      /\nweb1\s+127\.4\.250\.0\/29\s+-\s+-\s+waiting for registration\s+app=vm-web,tier=legacy\n/,
    );
    assert.match(
      await ok(['vm', 'install', 'install-external-workload.sh']),
      /^✅ wrote install-external-workload\.sh/,
    );
    const script = await readFile(join(dir, 'install-external-workload.sh'), 'utf8');
    assert.match(script, /BEGIN CERTIFICATE/);
    assert.match(script, /CLUSTER_ADDR='https:\/\/cluster4\.mesh\.cilium\.io:\d+'/);
    assert.match(script, /exec clustermesh agent --join-cluster/);

    vm = new VmProcess(dir, ['web1', '--script', 'install-external-workload.sh']);
    const line = await vm.joined();
    const m = /^✅ web1 joined cluster4 as 127\.4\.250\.2 \(identity (\d+)\)/.exec(line);
    assert.ok(m !== null, line);
    identity = Number(m[1]);
    assert.ok(
      identity >= 4 << 16 && identity < 5 << 16,
      `identity ${identity} in cluster 4's range`,
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

  it('cluster5 sees the VM: ipcache, identity list (with the cluster label) and node list', async () => {
    await eventually(async () => {
      const entry = (await ipcache5()).find((e) => e.cidr === `${VM_IP}/32`);
      assert.deepEqual(entry && { identity: entry.identity, cluster: entry.cluster }, {
        identity,
        cluster: 'cluster4',
      });
      const id = (await identities5()).find((i) => i.id === identity);
      assert.deepEqual(id?.labels, [
        'k8s:app=vm-web',
        'k8s:io.cilium.k8s.policy.cluster=cluster4',
        'k8s:io.kubernetes.pod.name=web1',
        'k8s:io.kubernetes.pod.namespace=default',
        'k8s:tier=legacy',
      ]);
      const nodes = await json<{ Name: string; Cluster: string }[]>([
        'node',
        'list',
        ...onCluster5,
      ]);
      assert.ok(
        nodes.some((n) => n.Name === 'web1' && n.Cluster === 'cluster4'),
        'web1 in cluster5’s nodes',
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
    assert.deepEqual([...clusters].sort(), ['cluster4', 'cluster5']);
  });

  it('pods reach the VM by its IP (from both clusters) and through a Service selecting it', async () => {
    for (const pod of ['cluster4/x-wing', 'cluster5/x-wing']) {
      const reply = JSON.parse(await ok(['exec', pod, '--', 'curl', '-s', '-m', '5', VM_IP])) as {
        ExternalWorkload: string;
      };
      assert.equal(reply.ExternalWorkload, 'web1');
    }
    await apply(
      'apiVersion: v1\nkind: Service\nmetadata:\n  name: vm-web\nspec:\n  selector:\n    app: vm-web\n  ports:\n  - port: 80\n',
    );
    await eventually(async () => {
      const body = await ok(['exec', 'cluster4/x-wing', '--', 'curl', '-s', '-m', '3', 'vm-web']);
      assert.equal((JSON.parse(body) as { ExternalWorkload: string }).ExternalWorkload, 'web1');
    });
  });

  it('policy selects the VM by its labels: ingress allowed, then denied; egress denied', async () => {
    const policy = (name: string, dir: 'ingress' | 'egress'): string =>
      `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata:\n  name: ${name}\nspec:\n  endpointSelector:\n    matchLabels:\n      tier: legacy\n  ${dir}:\n  - ${dir === 'ingress' ? 'fromEndpoints' : 'toEndpoints'}:\n    - matchLabels:\n        app: nobody\n`;
    const toVm = () => cli(['exec', 'cluster4/x-wing', '--', 'curl', '-s', '-m', '2', VM_IP]);
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

  it('a VM killed with SIGKILL shows disconnected within its lease TTL; its restart keeps its identity', async () => {
    const killed = Date.now();
    vm?.child.kill('SIGKILL');
    await vm?.exited;
    await eventually(
      async () => {
        assert.match(
          await ok(['vm', 'status', 'web1']),
          /\nweb1\s+\S+\s+127\.4\.250\.2\s+\d+\s+disconnected/,
        );
      },
      { timeoutMs: 30_000 },
    );
    const seconds = (Date.now() - killed) / 1000;
    // The bound: the VM's lease TTL (10 s; etcd drops the key at most that long after the
    // kill) plus a watch delivery, with room for `vm status` processes on a busy machine
    // (13.8 s measured at load 11 on 2 cores); without the lease it stayed connected.
    assert.ok(seconds <= 20, `disconnected after ${seconds.toFixed(1)} s (bound 20 s)`);
    vm = new VmProcess(dir, ['web1']);
    assert.match(
      await vm.joined(),
      new RegExp(`^✅ web1 joined cluster4 as 127\\.4\\.250\\.2 \\(identity ${identity}\\)`),
    );
    assert.match(
      await ok(['vm', 'status', 'web1']),
      /\nweb1\s+\S+\s+127\.4\.250\.2\s+\d+\s+connected/,
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
      ['web1', '--ip', '127.4.251.1'],
      /^clustermesh: registration of web1 refused: 127\.4\.251\.1 is outside web1's ipv4-alloc-cidr 127\.4\.250\.0\/29$/,
    );
    await refused(
      ['web1', '--ip', '127.4.250.3'],
      /^clustermesh: registration of web1 refused: web1 is (already connected|registered) from 127\.4\.250\.2$/,
    );
    // Another VM's address (vm1's, which up --vms runs).
    await refused(
      ['web1', '--ip', '127.4.250.1'],
      /^clustermesh: registration of web1 refused: 127\.4\.250\.1 is the address of external workload vm1$/,
    );
    // web1's own certificate and key replaced by cluster5's: etcd refuses the handshake.
    await ok(['vm', 'install', 'c2.sh', '--cluster', 'cluster5']);
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
      ['web1', '--script', 'wrong-cert.sh', '--ip', '127.4.250.3'],
      /^clustermesh: registration of web1 refused: etcd at https:\/\/cluster4\.mesh\.cilium\.io:\d+: TLS handshake failed: .*bad certificate/,
    );

    // Each kind logged and counted once by cluster4's apiserver (its /metrics).
    await eventually(async () => {
      assert.deepEqual(await refusals(), {
        'unknown-workload': 1,
        'outside-cidr': 1,
        'name-in-use': 1,
        'address-in-use': 1,
        'bad-certificate': 1,
      });
    });
    assert.match(
      up.log,
      /External workload connection refused by etcd: tls: failed to verify client certificate/,
    );

    // Logged by the apiserver, and nothing was given to the refused ones.
    assert.match(
      up.log,
      /External workload registration refused: no CiliumExternalWorkload named \\"ghost\\"/,
    );
    assert.match(up.log, /External workload registration refused: 127\.4\.251\.1 is outside/);
    const nodes = await json<{ Name: string }[]>(['node', 'list', ...onCluster5]);
    assert.deepEqual(
      nodes.filter((n) => ['ghost', 'web1'].includes(n.Name)).map((n) => n.Name),
      ['web1'],
    );
    assert.deepEqual(
      (await ipcache5())
        .filter((e) => e.cidr.startsWith('127.4.25'))
        .map((e) => e.cidr)
        .sort(),
      ['127.4.250.1/32', `${VM_IP}/32`],
      'only the two running VMs',
    );
    // web1 is untouched by the VM that tried its name.
    await eventually(async () => {
      assert.match(
        await ok(['vm', 'status', 'web1']),
        /\nweb1\s+\S+\s+127\.4\.250\.2\s+\d+\s+connected/,
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
        VM_IP: '127.4.250.4',
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
            /\nweb2\s+-\s+127\.4\.250\.4\s+\d+\s+connected\s+app=script\n/,
          );
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(
        await readFile(join(dir, 'web2-etcd', 'hostaliases.yaml'), 'utf8').then((t) =>
          /127\.4\.128\.2/.test(t),
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
        /\nweb2\s+-\s+127\.4\.250\.4\s+\d+\s+disconnected/,
      );
    });
    await ok(['vm', 'delete', 'web2']);
  });

  it('vm delete removes the VM’s entries everywhere, and the running VM is told why', async () => {
    assert.match(
      await ok(['vm', 'delete', 'web1']),
      /^✅ external workload web1 deleted from cluster4\n$/,
    );
    await eventually(async () => {
      assert.equal(
        (await ipcache5()).some((e) => e.cidr === `${VM_IP}/32`),
        false,
        'ipcache',
      );
      assert.equal(
        (await identities5()).some((i) => i.id === identity),
        false,
        'identities',
      );
      const nodes = await json<{ Name: string }[]>(['node', 'list', ...onCluster5]);
      assert.equal(
        nodes.some((n) => n.Name === 'web1'),
        false,
        'nodes',
      );
      assert.doesNotMatch(await ok(['get', 'cep', '--cluster', 'cluster4']), /web1/);
      assert.doesNotMatch(await ok(['get', 'endpointslices', '--cluster', 'cluster4']), /vm-web1/);
    });
    assert.equal(await vm?.exited, 1);
    assert.match(
      vm?.output ?? '',
      /clustermesh: registration of web1 refused: no CiliumExternalWorkload named "web1"/,
    );
    assert.equal((await cli(['vm', 'delete', 'web1'])).code, 1, 'deleting it again fails');
  });
});
