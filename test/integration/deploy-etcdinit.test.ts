/**
 * The chart's etcd-init script, run for real: rendered from deploy/helm/clustermesh, run
 * with sh against the real etcd and etcdctl on an empty data directory (as the init
 * container does), then etcd is started on that data directory the way the chart's etcd
 * sidecar starts it (TLS, client certificates, auth by common name). Reading as `root`
 * shows exactly the users, roles and key ranges of src/etcd/users.ts;
 * `remote` may read cilium/state/ but not write, nor read another cluster's config. A second
 * run on the same data directory changes nothing.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { freePort } from '../../src/etcd/index.js';
import { etcdAuthPlan } from '../../src/etcd/users.js';
import { eventually } from '../support/eventually.js';
import {
  createCA,
  issueCert,
  loopbackServerCertOptions,
  writeTlsBundle,
  type TlsBundle,
} from '../support/tls.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLUSTER = 'cluster5';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ETCDCTL_API: '3', ...env }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`, { cause: err }));
      },
    );
  });
}

void describe('etcdinit of the Helm chart, on a real etcd', () => {
  let dir: string;
  let script: string;
  let dataDir: string;
  let clientUrl: string;
  let peerUrl: string;
  let etcd: ChildProcess | undefined;
  let root: TlsBundle;
  let remote: TlsBundle;
  let tlsUrl: string;

  const etcdctl = (who: TlsBundle, args: readonly string[]): Promise<Run> =>
    run('etcdctl', [
      '--endpoints',
      tlsUrl,
      '--cacert',
      who.caFile,
      '--cert',
      who.certFile,
      '--key',
      who.keyFile,
      ...args,
    ]);

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-etcdinit-'));
    const r = await run(process.execPath, [
      join(ROOT, 'scripts', 'render-chart.mjs'),
      '--set',
      `cluster.name=${CLUSTER}`,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const cm = parseAllDocuments(r.stdout)
      .map((d) => d.toJS() as { kind: string; data?: Record<string, string> })
      .find((d) => d.kind === 'ConfigMap');
    script = join(dir, 'etcdinit.sh');
    await writeFile(script, cm?.data?.['etcdinit.sh'] ?? '');
    dataDir = join(dir, 'etcd');
    await mkdir(dataDir);
    clientUrl = `http://127.0.0.1:${await freePort()}`;
    peerUrl = `http://127.0.0.1:${await freePort()}`;
    const ca = await createCA('etcdinit-test-ca');
    const certs = join(dir, 'certs');
    const server = await writeTlsBundle(
      certs,
      ca,
      await issueCert(ca, loopbackServerCertOptions('clustermesh-apiserver')),
      'server',
    );
    root = await writeTlsBundle(
      certs,
      ca,
      await issueCert(ca, { commonName: 'root', clientAuth: true }),
      'root',
    );
    remote = await writeTlsBundle(
      certs,
      ca,
      await issueCert(ca, { commonName: 'remote', clientAuth: true }),
      'remote',
    );
    const init = await run('sh', [script], {
      ETCDINIT_DATA_DIR: dataDir,
      ETCDINIT_CLIENT_URL: clientUrl,
      ETCDINIT_PEER_URL: peerUrl,
    });
    assert.equal(init.code, 0, `${init.stdout}\n${init.stderr}`);
    assert.match(init.stdout, /etcdinit: users and roles of cluster5 created, auth enabled/);
    // The sidecar's flags: TLS with client certificates, the same member and peer URL.
    tlsUrl = `https://127.0.0.1:${await freePort()}`;
    etcd = spawn(
      'etcd',
      [
        `--data-dir=${join(dataDir, 'member-data')}`,
        '--name=clustermesh-apiserver',
        '--client-cert-auth',
        `--trusted-ca-file=${server.caFile}`,
        `--cert-file=${server.certFile}`,
        `--key-file=${server.keyFile}`,
        `--listen-client-urls=${tlsUrl}`,
        `--advertise-client-urls=${tlsUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=clustermesh-apiserver=${peerUrl}`,
        '--log-level=warn',
      ],
      { stdio: 'ignore' },
    );
    await eventually(async () => {
      const s = await etcdctl(root, ['user', 'list']);
      assert.equal(s.code, 0, s.stderr);
    }, 20_000);
  });

  after(async () => {
    const p = etcd;
    if (p !== undefined && p.exitCode === null) {
      const exited = new Promise((resolve) => p.once('exit', resolve));
      p.kill('SIGTERM');
      await exited;
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('enables auth with the users and roles of src/etcd/users.ts', async () => {
    // Auth is on: a user without the root role may not list users (anyone could without auth).
    const denied = await etcdctl(remote, ['user', 'list']);
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /permission denied/);
    const plan = etcdAuthPlan(CLUSTER);
    const users = (await etcdctl(root, ['user', 'list'])).stdout.trim().split('\n').sort();
    assert.deepEqual(users, plan.users.map((u) => u.name).sort());
    for (const u of plan.users) {
      const got = await etcdctl(root, ['user', 'get', u.name]);
      assert.match(got.stdout, new RegExp(`Roles: ${u.role}$`, 'm'), `${u.name}: ${got.stdout}`);
    }
    for (const role of plan.roles) {
      const got = await etcdctl(root, ['role', 'get', role.name]);
      assert.equal(got.code, 0, got.stderr);
      for (const p of role.permissions) {
        const section = p.perm === 'Read' ? 'KV Read:' : p.perm === 'Write' ? 'KV Write:' : '';
        // etcdctl prints prefixes as [start, end) (the `all` range as [, <open ended>) and
        // single keys by name), under KV Read and/or KV Write; every key starts at NUL.
        const shown =
          p.all === true
            ? ', <open ended>'
            : p.prefix !== undefined
              ? `[${p.prefix}, `
              : `\t${p.key ?? ''}`;
        const read = got.stdout.split('KV Write:')[0] ?? '';
        const write = got.stdout.split('KV Write:')[1] ?? '';
        if (section === 'KV Read:' || section === '') {
          assert.ok(read.includes(shown), `${role.name} read ${shown}: ${got.stdout}`);
        }
        if (section === 'KV Write:' || section === '') {
          assert.ok(write.includes(shown), `${role.name} write ${shown}: ${got.stdout}`);
        }
      }
    }
  });

  it('lets remote read its ranges only, and write nothing', async () => {
    assert.equal((await etcdctl(root, ['put', 'cilium/state/nodes/v1/cluster5/n1', 'x'])).code, 0);
    assert.equal((await etcdctl(root, ['put', 'cilium/cluster-config/other', 'x'])).code, 0);
    const read = await etcdctl(remote, ['get', 'cilium/state/nodes/v1/cluster5/n1']);
    assert.equal(read.code, 0, read.stderr);
    assert.match(read.stdout, /^x$/m);
    const write = await etcdctl(remote, ['put', 'cilium/state/nodes/v1/cluster5/n2', 'y']);
    assert.notEqual(write.code, 0);
    assert.match(write.stderr, /permission denied/);
    const other = await etcdctl(remote, ['get', 'cilium/cluster-config/other']);
    assert.notEqual(other.code, 0);
    assert.match(other.stderr, /permission denied/);
  });

  it('does nothing when run again on the same data directory', async () => {
    const again = await run('sh', [script], {
      ETCDINIT_DATA_DIR: dataDir,
      ETCDINIT_CLIENT_URL: clientUrl,
      ETCDINIT_PEER_URL: peerUrl,
    });
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, `etcdinit: ${dataDir} is initialised already\n`);
  });
});
