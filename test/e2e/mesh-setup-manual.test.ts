/**
 * The seeds' setup for daemons started by hand (no `clustermesh up`): per cluster,
 * `certs create` makes the CA and certificates and prints the etcd and daemon flags, the test
 * starts a real etcd with those TLS files and an apiserver and an agent as separate
 * processes, `mesh enable --tls-dir` creates Cilium's etcd users (auth on), and
 * `mesh connect` writes each side's remote config and certificates into the other's
 * clustermesh config directory, picked up by the running agents. cluster2's certificates
 * are short-lived (10 days): the agents' `status --verbose` shows each remote's certificate
 * expiry and warns about them. Every command is called with `--context`, the alias of
 * `--cluster`.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { certificateInfo } from '../../src/certs/index.js';
import { createBackend, resolveKvstoreConfig } from '../../src/kvstore/config.js';
import type { Backend } from '../../src/kvstore/backend.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';
import { DaemonProcess, getJson } from '../support/mesh.js';
import { freePort } from '../support/ports.js';
import { runProgram, type CapturedRun } from '../support/cli.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

const exec = runProgram;

interface CertsJson {
  readonly cluster: string;
  readonly tlsDir: string;
  readonly endpoint: string;
  readonly hostAlias: { ip: string; hostnames: string[] };
  readonly caFile: string;
  readonly configs: Record<string, string>;
  readonly etcdFlags: string[];
  readonly daemonFlags: string[];
}

interface Cluster {
  readonly name: string;
  readonly id: number;
  readonly port: number;
  readonly tlsDir: string;
  readonly configDir: string;
  certs?: CertsJson;
  etcd?: EtcdServer;
  apiserver?: DaemonProcess;
  agent?: DaemonProcess;
  agentUrl?: string;
  backend?: Backend;
}

/** `mesh enable` for a cluster started by hand, over TLS, with its agent's API. */
function enableArgs(c: Cluster, state: string): string[] {
  return [
    'mesh',
    'enable',
    '--context',
    c.name,
    '--state-dir',
    state,
    '--cluster-id',
    String(c.id),
    '--tls-dir',
    c.tlsDir,
    '--kvstore-endpoint',
    `https://127.0.0.1:${c.port}`,
    '--clustermesh-config',
    c.configDir,
    '--agent-api',
    `${c.name}-node-1=${c.agentUrl ?? ''}`,
  ];
}

interface RemoteStatus {
  readonly name: string;
  readonly ready: boolean;
  readonly status: string;
  readonly 'num-nodes': number;
}

function flag(flags: readonly string[], name: string): string {
  const f = flags.find((x) => x.startsWith(`--${name}=`));
  assert.ok(f !== undefined, `etcd flags name --${name}: ${flags.join(' ')}`);
  return f.slice(name.length + 3);
}

function node(c: Cluster, n: number): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: { name: `${c.name}-node-${n}` },
    spec: {
      addresses: [{ type: 'InternalIP', ip: `127.${c.id}.0.${n}` }],
      ipam: { podCIDRs: [`127.${c.id}.${n}.0/24`] },
    },
  };
}

void describe(
  'mesh enable/connect for daemons started by hand, over TLS',
  { timeout: 300_000 },
  () => {
    let dir: string;
    let state: string;
    const clusters: Cluster[] = [];
    const cli = (args: readonly string[]): Promise<CapturedRun> => exec(BIN, args, dir);

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cm-manual-'));
      state = join(dir, 'state');
      for (const [name, id] of [
        ['cluster1', 1],
        ['cluster2', 2],
      ] as const) {
        const configDir = join(dir, name, 'clustermesh');
        await mkdir(configDir, { recursive: true });
        clusters.push({
          name,
          id,
          port: await freePort(),
          tlsDir: join(dir, name, 'tls'),
          configDir,
        });
      }
    });

    after(async () => {
      for (const c of clusters) {
        await Promise.all([c.agent?.stop(), c.apiserver?.stop()]);
        await c.backend?.close();
        await c.etcd?.destroy();
      }
      if (process.env.KEEP_E2E_DIR === undefined) await rm(dir, { recursive: true, force: true });
    });

    const get = (i: number): Cluster => {
      const c = clusters[i];
      assert.ok(c !== undefined, `cluster ${i}`);
      return c;
    };

    it('certs create writes the documented layout and prints the flags for etcd and daemons', async () => {
      for (const c of clusters) {
        const r = await cli([
          'certs',
          'create',
          '--context',
          c.name,
          '--tls-dir',
          c.tlsDir,
          '--kvstore-endpoint',
          `https://127.0.0.1:${c.port}`,
          ...(c.name === 'cluster2' ? ['--validity-days', '10'] : []),
          '-o',
          'json',
        ]);
        assert.equal(r.code, 0, r.stderr);
        const j = JSON.parse(r.stdout) as CertsJson;
        c.certs = j;
        assert.equal(j.endpoint, `https://${c.name}.mesh.cilium.io:${c.port}`);
        assert.deepEqual(j.hostAlias, { ip: '127.0.0.1', hostnames: [`${c.name}.mesh.cilium.io`] });
        assert.deepEqual((await readdir(c.tlsDir)).sort(), [
          `admin-${c.name}.crt`,
          `admin-${c.name}.key`,
          'admin.yaml',
          'ca.crt',
          'ca.key',
          'externalworkload.crt',
          'externalworkload.key',
          'externalworkload.yaml',
          'hostaliases.yaml',
          `local-${c.name}.crt`,
          `local-${c.name}.key`,
          'local.yaml',
          'remote.crt',
          'remote.key',
          'remote.yaml',
          'server.crt',
          'server.key',
        ]);
        const server = certificateInfo(await readFile(join(c.tlsDir, 'server.crt'), 'utf8'));
        assert.ok(server.dnsNames.includes('*.mesh.cilium.io'), server.dnsNames.join(','));
        assert.ok(server.dnsNames.includes(`${c.name}.mesh.cilium.io`), server.dnsNames.join(','));
        assert.ok(server.ipAddresses.includes('127.0.0.1'), server.ipAddresses.join(','));
        assert.equal(flag(j.etcdFlags, 'listen-client-urls'), `https://127.0.0.1:${c.port}`);
        assert.ok(j.etcdFlags.includes('--client-cert-auth'), j.etcdFlags.join(' '));
        assert.deepEqual(j.daemonFlags, ['--kvstore-opt', `etcd.config=${j.configs.admin}`]);
        // The text form says the same for a human; running it again keeps every file (etcd
        // may already serve them).
        const serverBefore = await readFile(join(c.tlsDir, 'server.crt'), 'utf8');
        const caKeyBefore = await readFile(join(c.tlsDir, 'ca.key'), 'utf8');
        const text = await cli([
          'certs',
          'create',
          '--cluster',
          c.name,
          '--tls-dir',
          c.tlsDir,
          '--kvstore-endpoint',
          `https://127.0.0.1:${c.port}`,
        ]);
        assert.equal(text.code, 0, text.stderr);
        assert.match(text.stdout, /Start etcd with:/);
        assert.match(text.stdout, new RegExp(`--cert-file=${join(c.tlsDir, 'server.crt')}`));
        assert.equal(await readFile(join(c.tlsDir, 'server.crt'), 'utf8'), serverBefore);
        assert.equal(await readFile(join(c.tlsDir, 'ca.key'), 'utf8'), caKeyBefore);
      }
      const again = certificateInfo(await readFile(join(get(1).tlsDir, 'remote.crt'), 'utf8'));
      const days = (again.notAfter.getTime() - Date.now()) / 86_400_000;
      assert.ok(days > 9 && days <= 10, `cluster2 certificates are short-lived: ${days} days`);
    });

    it('etcd started with the printed TLS flags, daemons as separate processes, then enable', async () => {
      for (const c of clusters) {
        const j = c.certs;
        assert.ok(j !== undefined, 'certs created');
        c.etcd = await startEtcd({
          name: `etcd-${c.name}`,
          clientPort: c.port,
          tlsFiles: {
            caFile: flag(j.etcdFlags, 'trusted-ca-file'),
            serverCertFile: flag(j.etcdFlags, 'cert-file'),
            serverKeyFile: flag(j.etcdFlags, 'key-file'),
            clientCertFile: join(c.tlsDir, `admin-${c.name}.crt`),
            clientKeyFile: join(c.tlsDir, `admin-${c.name}.key`),
          },
        });
        const health = await freePort();
        const api = await freePort();
        const common = ['--cluster-name', c.name, '--cluster-id', String(c.id), ...j.daemonFlags];
        c.apiserver = new DaemonProcess(
          `${c.name}/apiserver`,
          [
            'apiserver',
            ...common,
            '--health-addr',
            `127.0.0.1:${health}`,
            '--heartbeat-interval',
            '1s',
          ],
          join(dir, c.name, 'apiserver.log'),
        );
        c.agent = new DaemonProcess(
          `${c.name}/agent`,
          [
            'agent',
            ...common,
            '--node-name',
            `${c.name}-node-1`,
            '--clustermesh-config',
            c.configDir,
            '--api-addr',
            `127.0.0.1:${api}`,
            '--heartbeat-interval',
            '1s',
            '--clustermesh-retry-base',
            '200ms',
          ],
          join(dir, c.name, 'agent.log'),
        );
        c.agentUrl = `http://127.0.0.1:${api}`;
        c.apiserver.start();
        c.agent.start();
      }
      for (const c of clusters) {
        const r = await cli(enableArgs(c, state));
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stdout,
          new RegExp(
            `ClusterMesh enabled in ${c.name}: etcd at https://${c.name}\\.mesh\\.cilium\\.io:${c.port} \\(TLS, remote users created\\)`,
          ),
        );
        assert.match(r.stdout, /Start etcd with:/);
        // Auth is on: the users of Cilium's etcdinit exist, and a certificate naming no user is refused.
        const admin = [
          `--endpoints=https://127.0.0.1:${c.port}`,
          `--cacert=${join(c.tlsDir, 'ca.crt')}`,
          `--cert=${join(c.tlsDir, `admin-${c.name}.crt`)}`,
          `--key=${join(c.tlsDir, `admin-${c.name}.key`)}`,
        ];
        const users = await exec('etcdctl', [...admin, 'user', 'list'], dir);
        assert.equal(users.code, 0, users.stderr);
        assert.deepEqual(users.stdout.trim().split('\n').sort(), [
          `admin-${c.name}`,
          'externalworkload',
          `local-${c.name}`,
          'remote',
          'root',
        ]);
        // Auth is on: the server certificate (signed by the CA, CN no user) gets nothing.
        const stranger = await exec(
          'etcdctl',
          [
            `--endpoints=https://127.0.0.1:${c.port}`,
            `--cacert=${join(c.tlsDir, 'ca.crt')}`,
            `--cert=${join(c.tlsDir, 'server.crt')}`,
            `--key=${join(c.tlsDir, 'server.key')}`,
            'get',
            `cilium/cluster-config/${c.name}`,
          ],
          dir,
        );
        assert.notEqual(stranger.code, 0, `auth on: ${stranger.stdout}`);
        assert.match(stranger.stderr, /user name not found|permission denied|invalid auth/i);
        // The cluster's own daemons run as admin-<cluster>: the apiserver writes the cluster config.
        c.backend = await createBackend(
          await resolveKvstoreConfig('etcd', [`etcd.config=${c.certs?.configs.admin ?? ''}`]),
        );
        const backend = c.backend;
        await eventually(async () => {
          const kv = await backend.get(`cilium/cluster-config/${c.name}`);
          assert.ok(kv !== undefined, `${c.name}'s apiserver wrote its cluster config`);
        }, 45_000);
        await new Registry(backend).apply([node(c, 1), node(c, 2)]);
      }
    });

    it('connect writes each side’s config, certificates and host alias; agents connect as remote', async () => {
      const [c1, c2] = [get(0), get(1)];
      const r = await cli([
        'mesh',
        'connect',
        '--context',
        c1.name,
        '--destination-context',
        c2.name,
        '--state-dir',
        state,
      ]);
      assert.equal(r.code, 0, r.stderr);
      for (const [local, remote] of [
        [c1, c2],
        [c2, c1],
      ] as const) {
        const d = local.configDir;
        assert.deepEqual((await readdir(d)).sort(), [
          remote.name,
          `${remote.name}.etcd-client-ca.crt`,
          `${remote.name}.etcd-client.crt`,
          `${remote.name}.etcd-client.key`,
          'hostaliases.yaml',
        ]);
        assert.equal(
          await readFile(join(d, remote.name), 'utf8'),
          [
            'endpoints:',
            `  - https://${remote.name}.mesh.cilium.io:${remote.port}`,
            `trusted-ca-file: ${join(d, `${remote.name}.etcd-client-ca.crt`)}`,
            `cert-file: ${join(d, `${remote.name}.etcd-client.crt`)}`,
            `key-file: ${join(d, `${remote.name}.etcd-client.key`)}`,
            '',
          ].join('\n'),
        );
        assert.match(
          await readFile(join(d, 'hostaliases.yaml'), 'utf8'),
          new RegExp(
            `- ip: 127\\.0\\.0\\.1\\n  hostnames:\\n    - ${remote.name}\\.mesh\\.cilium\\.io`,
          ),
        );
        const client = certificateInfo(
          await readFile(join(d, `${remote.name}.etcd-client.crt`), 'utf8'),
        );
        assert.equal(client.commonName, 'remote', 'the remote side reads as "remote"');
        assert.equal(
          await readFile(join(d, `${remote.name}.etcd-client-ca.crt`), 'utf8'),
          await readFile(join(remote.tlsDir, 'ca.crt'), 'utf8'),
        );
        // The running agent picked the file up (no restart) and sees the remote's nodes.
        await eventually(async () => {
          const st = await getJson<{ clusters: RemoteStatus[] }>(
            `${local.agentUrl ?? ''}/v1/clustermesh`,
          );
          const rs = st.clusters.find((x) => x.name === remote.name);
          assert.ok(rs !== undefined, `${local.name} knows ${remote.name}: ${JSON.stringify(st)}`);
          assert.equal(rs.ready, true, `${local.name} → ${remote.name}: ${rs.status}`);
          assert.match(
            rs.status,
            new RegExp(`https://${remote.name}\\.mesh\\.cilium\\.io:${remote.port}`),
          );
          assert.equal(rs['num-nodes'], 2);
        }, 60_000);
        const nodes = await getJson<{ Name: string; Cluster: string; Source: string }[]>(
          `${local.agentUrl ?? ''}/v1/nodes`,
        );
        assert.deepEqual(
          nodes
            .filter((n) => n.Cluster === remote.name)
            .map((n) => `${n.Name}:${n.Source}`)
            .sort(),
          [`${remote.name}-node-1:clustermesh`, `${remote.name}-node-2:clustermesh`],
        );
      }
      const st = await cli([
        'mesh',
        'status',
        '--state-dir',
        state,
        '--wait',
        '--wait-duration',
        '60s',
      ]);
      assert.equal(st.code, 0, st.stdout + st.stderr);
      assert.match(st.stdout, /Cluster cluster1 \(ID 1\):/);
      assert.match(st.stdout, /🔒 etcd: TLS, client certificates/);
      assert.match(st.stdout, /✅ All 1 nodes are connected to all clusters/);
      const one = await cli(['mesh', 'status', '--context', 'cluster2', '--state-dir', state]);
      assert.equal(one.code, 0, one.stderr);
      assert.match(one.stdout, /^Cluster cluster2 \(ID 2\):/);
      assert.doesNotMatch(one.stdout, /Cluster cluster1/);
    });

    it('etcdctl with the remote certificate reads the remote ranges and cannot write', async () => {
      const [c1, c2] = [get(0), get(1)];
      const d = c1.configDir;
      const base = [
        `--endpoints=https://127.0.0.1:${c2.port}`,
        `--cacert=${join(d, 'cluster2.etcd-client-ca.crt')}`,
        `--cert=${join(d, 'cluster2.etcd-client.crt')}`,
        `--key=${join(d, 'cluster2.etcd-client.key')}`,
      ];
      const read = await exec(
        'etcdctl',
        [...base, 'get', '--prefix', '--keys-only', 'cilium/state/nodes/'],
        dir,
      );
      assert.equal(read.code, 0, read.stderr);
      assert.match(read.stdout, /cilium\/state\/nodes\/v1\/cluster2\/cluster2-node-1/);
      const write = await exec(
        'etcdctl',
        [...base, 'put', 'cilium/state/nodes/v1/cluster2/evil', 'x'],
        dir,
      );
      assert.notEqual(write.code, 0, 'remote may not write');
      assert.match(write.stderr, /permission denied/);
      // Nothing of cluster2's was written.
      const evil = await c2.backend?.get('cilium/state/nodes/v1/cluster2/evil');
      assert.equal(evil, undefined);
    });

    it('status --verbose shows each remote’s certificate expiry, warning under 30 days', async () => {
      const [c1, c2] = [get(0), get(1)];
      // cluster1's agent holds cluster2's 10-day certificates.
      const v = await cli(['-H', c1.agentUrl ?? '', 'status', '--verbose']);
      assert.equal(v.code, 0, v.stderr);
      assert.match(
        v.stdout,
        /^ {3}└ {2}certificates: cert-file CN=remote expires \d{4}-\d\d-\d\d \((9|10) days\), trusted-ca-file CN=clustermesh-cluster2-ca expires \d{4}-\d\d-\d\d \((9|10) days\)$/m,
      );
      assert.match(
        v.stdout,
        /^ {3}⚠️ {2}cluster2: certificate cert-file \(CN=remote\) expires in (9|10) days/m,
      );
      // Also without --verbose: a ready cluster prints nothing but the warning.
      const plain = await cli(['-H', c1.agentUrl ?? '', 'status']);
      assert.match(
        plain.stdout,
        /cluster2: certificate trusted-ca-file \(CN=clustermesh-cluster2-ca\) expires in/,
      );
      // cluster2's agent holds cluster1's 365-day certificates: listed, no warning.
      const w = await cli(['-H', c2.agentUrl ?? '', 'status', '--verbose']);
      assert.match(
        w.stdout,
        /certificates: cert-file CN=remote expires \d{4}-\d\d-\d\d \((364|365) days\)/,
      );
      assert.doesNotMatch(w.stdout, /⚠️/);
    });

    it('enable again changes nothing; certs rotate --context renews what the agents hold', async () => {
      const [c1, c2] = [get(0), get(1)];
      const files = ['ca.key', 'server.crt', 'remote.crt', `admin-${c1.name}.key`];
      const kept = await Promise.all(files.map((f) => readFile(join(c1.tlsDir, f), 'utf8')));
      const again = await cli(enableArgs(c1, state));
      assert.equal(again.code, 0, again.stderr);
      assert.deepEqual(
        await Promise.all(files.map((f) => readFile(join(c1.tlsDir, f), 'utf8'))),
        kept,
        'enable again keeps every certificate and key',
      );
      const before = await readFile(join(c1.configDir, 'cluster2.etcd-client.crt'), 'utf8');
      const r = await cli(['certs', 'rotate', '--context', c2.name, '--state-dir', state]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Rotated the certificates of cluster2; updated cluster1\/cluster2/);
      const after = await readFile(join(c1.configDir, 'cluster2.etcd-client.crt'), 'utf8');
      assert.notEqual(after, before, 'cluster1 holds the new remote certificate');
      // The agent reconnected with it (365 days, same 10-day CA) and kept cluster2's nodes.
      await eventually(async () => {
        const v = await cli(['-H', c1.agentUrl ?? '', 'status', '--verbose']);
        assert.match(
          v.stdout,
          /certificates: cert-file CN=remote expires \d{4}-\d\d-\d\d \((364|365) days\), trusted-ca-file CN=clustermesh-cluster2-ca expires \d{4}-\d\d-\d\d \((9|10) days\)/,
        );
        assert.doesNotMatch(v.stdout, /certificate cert-file \(CN=remote\) expires in/);
        assert.match(
          v.stdout,
          /certificate trusted-ca-file \(CN=clustermesh-cluster2-ca\) expires in/,
        );
        assert.match(v.stdout, /cluster2: ready, 2 nodes/);
      }, 30_000);
    });

    it('certs rotate --ca start|reissue|finish replaces cluster2’s CA, keeping the connection', async () => {
      const [c1, c2] = [get(0), get(1)];
      const copy = join(c1.configDir, 'cluster2.etcd-client-ca.crt');
      const certsIn = (pem: string): number => pem.split('-----BEGIN CERTIFICATE-----').length - 1;
      const oldCa = await readFile(join(c2.tlsDir, 'ca.crt'), 'utf8');
      // Throughout, cluster1's agent stays ready with cluster2's nodes: sampled in the background.
      let samples = 0;
      const lost: string[] = [];
      const run = { sampling: true };
      const sampler = (async () => {
        while (run.sampling) {
          const st = await getJson<{ clusters: RemoteStatus[] }>(
            `${c1.agentUrl ?? ''}/v1/clustermesh`,
          ).catch(() => undefined);
          const rs = st?.clusters.find((x) => x.name === 'cluster2');
          samples++;
          if (rs === undefined || rs['num-nodes'] !== 2) lost.push(JSON.stringify(rs ?? st));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const ready = (why: string): Promise<void> =>
        eventually(async () => {
          const st = await getJson<{ clusters: RemoteStatus[] }>(
            `${c1.agentUrl ?? ''}/v1/clustermesh`,
          );
          const rs = st.clusters.find((x) => x.name === 'cluster2');
          assert.equal(rs?.ready, true, `${why}: ${rs?.status ?? JSON.stringify(st)}`);
        }, 30_000);
      try {
        const reissueEarly = await cli([
          'certs',
          'rotate',
          '--context',
          c2.name,
          '--state-dir',
          state,
          '--ca',
          'reissue',
        ]);
        assert.equal(reissueEarly.code, 1);
        assert.match(reissueEarly.stderr, /no CA rotation under way/);

        const start = await cli([
          'certs',
          'rotate',
          '--context',
          c2.name,
          '--state-dir',
          state,
          '--ca',
          'start',
        ]);
        assert.equal(start.code, 0, start.stderr);
        assert.match(start.stdout, /Restart cluster2's etcd/);
        const bundle = await readFile(join(c2.tlsDir, 'ca.crt'), 'utf8');
        assert.equal(certsIn(bundle), 2);
        assert.ok(
          bundle.trimEnd().endsWith(oldCa.trimEnd()),
          'the old CA stays trusted, after the new one',
        );
        assert.equal(await readFile(copy, 'utf8'), bundle, 'cluster1 trusts both');
        const again = await cli([
          'certs',
          'rotate',
          '--context',
          c2.name,
          '--state-dir',
          state,
          '--ca',
          'start',
        ]);
        assert.equal(again.code, 1);
        assert.match(again.stderr, /a CA rotation is under way/);
        await eventually(async () => {
          const v = await cli(['-H', c1.agentUrl ?? '', 'status', '--verbose']);
          assert.equal(
            v.stdout.match(/trusted-ca-file CN=clustermesh-cluster2-ca/g)?.length,
            2,
            v.stdout,
          );
        }, 30_000);
        await ready('after start');

        // etcd reads its client CAs at start: restarted with the same flags, it trusts both.
        const etcd = c2.etcd;
        assert.ok(etcd !== undefined, 'cluster2 etcd');
        await etcd.stop();
        await etcd.start();
        await ready('after the etcd restart');

        const reissue = await cli([
          'certs',
          'rotate',
          '--context',
          c2.name,
          '--state-dir',
          state,
          '--ca',
          'reissue',
        ]);
        assert.equal(reissue.code, 0, reissue.stderr);
        const newSubject = certificateInfo(bundle).subject;
        const held = certificateInfo(
          await readFile(join(c1.configDir, 'cluster2.etcd-client.crt'), 'utf8'),
        );
        assert.equal(held.issuer, newSubject, 'cluster1 holds a remote certificate of the new CA');
        const server = certificateInfo(await readFile(join(c2.tlsDir, 'server.crt'), 'utf8'));
        assert.equal(server.issuer, newSubject);
        await ready('after reissue');

        const finish = await cli([
          'certs',
          'rotate',
          '--context',
          c2.name,
          '--state-dir',
          state,
          '--ca',
          'finish',
        ]);
        assert.equal(finish.code, 0, finish.stderr);
        assert.equal(certsIn(await readFile(join(c2.tlsDir, 'ca.crt'), 'utf8')), 1);
        assert.equal(certsIn(await readFile(copy, 'utf8')), 1);
        assert.notEqual(await readFile(copy, 'utf8'), oldCa);
        await eventually(async () => {
          const v = await cli(['-H', c1.agentUrl ?? '', 'status', '--verbose']);
          assert.equal(
            v.stdout.match(/trusted-ca-file CN=clustermesh-cluster2-ca/g)?.length,
            1,
            v.stdout,
          );
          assert.match(v.stdout, /cluster2: ready, 2 nodes/);
        }, 30_000);
        // A fresh etcdctl with the new remote certificate and only the new CA reads; still no write.
        const base = [
          `--endpoints=https://127.0.0.1:${c2.port}`,
          `--cacert=${copy}`,
          `--cert=${join(c1.configDir, 'cluster2.etcd-client.crt')}`,
          `--key=${join(c1.configDir, 'cluster2.etcd-client.key')}`,
        ];
        const read = await exec(
          'etcdctl',
          [...base, 'get', '--prefix', '--keys-only', 'cilium/state/nodes/'],
          dir,
        );
        assert.equal(read.code, 0, read.stderr);
        assert.match(read.stdout, /cluster2-node-1/);
      } finally {
        run.sampling = false;
        await sampler;
      }
      assert.ok(samples > 10, `sampled ${samples} times`);
      assert.deepEqual(lost, [], 'cluster2 stayed known to cluster1 with its 2 nodes throughout');
    });

    it('disconnect --context removes exactly the pair; the agents drop it', async () => {
      const [c1, c2] = [get(0), get(1)];
      const r = await cli([
        'mesh',
        'disconnect',
        '--context',
        c2.name,
        '--destination-context',
        c1.name,
        '--state-dir',
        state,
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /Disconnected cluster cluster2 <=> cluster1/);
      for (const c of [c1, c2]) {
        assert.deepEqual(await readdir(c.configDir), ['hostaliases.yaml'], `${c.name} config dir`);
        await eventually(async () => {
          const st = await getJson<{ clusters: RemoteStatus[] }>(
            `${c.agentUrl ?? ''}/v1/clustermesh`,
          );
          assert.deepEqual(st.clusters, [], `${c.name} has no remote`);
        }, 30_000);
      }
    });

    it('bad input: one-line errors naming the input', async () => {
      const c1 = get(0);
      const cases: [string[], RegExp][] = [
        [
          [
            'certs',
            'create',
            '--context',
            'x',
            '--tls-dir',
            join(dir, 'x'),
            '--kvstore-endpoint',
            'http://127.0.0.1:1',
          ],
          /--kvstore-endpoint "http:\/\/127\.0\.0\.1:1": expected https:\/\/<ip>:<port>/,
        ],
        [
          [
            'certs',
            'create',
            '--context',
            'x',
            '--tls-dir',
            join(dir, 'x'),
            '--kvstore-endpoint',
            'https://etcd.example:2379',
          ],
          /expected https:\/\/<ip>:<port>/,
        ],
        [
          ['certs', 'create', '--context', 'x', '--kvstore-endpoint', 'https://127.0.0.1:1'],
          /required option '--tls-dir <dir>' not specified/,
        ],
        [
          [
            'certs',
            'create',
            '--context',
            'x',
            '--tls-dir',
            join(dir, 'x'),
            '--kvstore-endpoint',
            'https://127.0.0.1:1',
            '--validity-days',
            'soon',
          ],
          /--validity-days soon: expected 1\.\.36500/,
        ],
        [
          [
            'mesh',
            'enable',
            '--context',
            'x',
            '--state-dir',
            state,
            '--cluster-id',
            '7',
            '--clustermesh-config',
            join(dir, 'x-cm'),
            '--kvstore-endpoint',
            'https://127.0.0.1:1',
          ],
          /https:\/\/ needs --tls-dir/,
        ],
        [
          [
            'mesh',
            'status',
            '--cluster',
            'cluster1',
            '--context',
            'cluster2',
            '--state-dir',
            state,
          ],
          /--cluster cluster1 and --context cluster2 name different clusters/,
        ],
        [
          ['mesh', 'enable', '--context', 'x', '--state-dir', state, '--tls-dir', join(dir, 'x')],
          /--tls-dir is for daemons started by hand/,
        ],
      ];
      for (const [args, re] of cases) {
        const r = await cli(args);
        assert.notEqual(r.code, 0, args.join(' '));
        assert.match(r.stderr, re, args.join(' '));
        assert.equal(r.stderr.trim().split('\n').length, 1, `one line: ${r.stderr}`);
      }
      // Nothing listens on the endpoint: refused before anything is recorded.
      const port = await freePort();
      const down = await cli([
        'mesh',
        'enable',
        '--context',
        'x',
        '--state-dir',
        state,
        '--cluster-id',
        '7',
        '--tls-dir',
        join(dir, 'x'),
        '--kvstore-endpoint',
        `https://127.0.0.1:${port}`,
        '--clustermesh-config',
        join(dir, 'x-cm'),
      ]);
      assert.equal(down.code, 1, down.stderr);
      assert.match(
        down.stderr,
        new RegExp(
          `etcd of x at https://127\\.0\\.0\\.1:${port}: .*unreachable.*start it with the flags`,
        ),
      );
      assert.equal(down.stderr.trim().split('\n').length, 1, down.stderr);
      assert.deepEqual((await readdir(state)).sort(), ['cluster1', 'cluster2'], 'x not recorded');
      // A garbage CA is refused, not replaced.
      await writeFile(join(dir, 'x', 'ca.crt'), 'garbage\n');
      const garbage = await cli([
        'certs',
        'create',
        '--context',
        'x',
        '--tls-dir',
        join(dir, 'x'),
        '--kvstore-endpoint',
        'https://127.0.0.1:1',
      ]);
      assert.equal(garbage.code, 1);
      assert.match(garbage.stderr, /CA in .*x\/ca\.crt: not a PEM certificate/);
      assert.equal(await readFile(join(dir, 'x', 'ca.crt'), 'utf8'), 'garbage\n');
      // cluster1's etcd as another cluster's: its CA does not sign cluster x's admin certificate.
      const foreign = await cli([
        'mesh',
        'enable',
        '--context',
        'y',
        '--state-dir',
        state,
        '--cluster-id',
        '8',
        '--tls-dir',
        join(dir, 'y'),
        '--kvstore-endpoint',
        `https://127.0.0.1:${c1.port}`,
        '--clustermesh-config',
        join(dir, 'y-cm'),
      ]);
      assert.equal(foreign.code, 1, foreign.stderr);
      assert.match(foreign.stderr, /etcd of y at .*TLS handshake failed/);
    });
  },
);
