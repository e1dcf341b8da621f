/**
 * The seeds' setup walked step by step with the real CLI: `up --no-connect` (3 clusters,
 * etcd with TLS and users), `mesh enable` ×3, pairwise `mesh connect`, `mesh status --wait`,
 * traffic across clusters, `disconnect` of exactly one pair, each refused credential
 * explained by `mesh status`, real etcdctl with the `remote` certificate refused a write,
 * and `certs rotate` picked up without losing an entry or a connection.
 */
import assert from 'node:assert/strict';
import { readFile, mkdtemp, rm, stat, writeFile, readdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createCA, issueCert, loadCA } from '../../src/certs/index.js';
import { readMeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { UpProcess } from '../support/up-process.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';
import { runProgram, type CapturedRun } from '../support/cli.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));
const CLUSTERS = ['cluster1', 'cluster2', 'cluster3'];

// A manual runner already holding the up lock for this process tree says so; otherwise the
// file takes its turn like every other `up` test.
const lockHeld = process.env.CLUSTERMESH_UP_LOCK_HELD === '1';
before(() => (lockHeld ? undefined : acquireUpLock()));
after(() => (lockHeld ? undefined : releaseUpLock()));

const exec = runProgram;

void describe(
  'the seeds’ setup: up --no-connect, enable, connect, status --wait',
  { timeout: 420_000 },
  () => {
    let dir: string;
    let state: string;
    const up = (): UpProcess => upProc;
    let upProc: UpProcess;

    const cli = (args: readonly string[]): Promise<CapturedRun> => exec(BIN, args, dir);
    const etcdDir = (c: string): string => join(state, c, 'etcd');
    const configDir = (c: string): string => join(state, c, 'clustermesh');
    const status = async (): Promise<string> => (await cli(['mesh', 'status'])).stdout;

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cm-setup-'));
      state = join(dir, '.clustermesh');
      upProc = new UpProcess(dir);
      upProc.start([
        '--clusters',
        '3',
        '--nodes',
        '2',
        '--kvstore',
        'etcd',
        '--no-connect',
        '--example',
        'rebel-base',
      ]);
      await eventually(async () => {
        await readMeshState(state);
      }, 90_000).catch((err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${up().log}`);
      });
    });

    after(async () => {
      await up().stop();
      await rm(dir, { recursive: true, force: true });
    });

    it('up --no-connect: every cluster runs, unmeshed and not enabled', async () => {
      const out = await status();
      for (const c of CLUSTERS) {
        assert.match(out, new RegExp(`Cluster ${c} \\(ID \\d\\):`));
        assert.match(
          out,
          new RegExp(
            `Cluster not enabled for clustermesh: run "clustermesh mesh enable --cluster ${c}"`,
          ),
        );
        assert.deepEqual((await readdir(configDir(c))).sort(), [], `${c} has no remote config`);
      }
      // etcd needs client certificates: no remote user exists before enable.
      assert.ok(
        !(await readdir(etcdDir('cluster1'))).includes('remote.crt'),
        'no remote certificate before enable',
      );
    });

    it('connect before enable is refused in one line naming the fix', async () => {
      const r = await cli([
        'mesh',
        'connect',
        '--cluster',
        'cluster1',
        '--destination-cluster',
        'cluster2',
      ]);
      assert.equal(r.code, 1);
      assert.match(
        r.stderr,
        /clustermesh is not enabled in cluster cluster1: run "clustermesh mesh enable --cluster cluster1" first/,
      );
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    });

    it('enable ×3 creates the remote users and certificates (real etcdctl lists them)', async () => {
      for (const c of CLUSTERS) {
        const r = await cli(['mesh', 'enable', '--context', c]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(
          r.stdout,
          new RegExp(
            `ClusterMesh enabled in ${c}: etcd at https://${c}\\.mesh\\.cilium\\.io:\\d+ \\(TLS`,
          ),
        );
      }
      const d = etcdDir('cluster2');
      const users = await exec(
        'etcdctl',
        [
          '--endpoints',
          `https://127.2.128.2:${await portOf('cluster2')}`,
          '--cacert',
          join(d, 'ca.crt'),
          '--cert',
          join(d, 'admin-cluster2.crt'),
          '--key',
          join(d, 'admin-cluster2.key'),
          'user',
          'list',
        ],
        dir,
      );
      assert.equal(users.code, 0, users.stderr);
      assert.deepEqual(users.stdout.trim().split('\n').sort(), [
        'admin-cluster2',
        'externalworkload',
        'local-cluster2',
        'remote',
        'root',
      ]);
      assert.equal((await stat(join(d, 'remote.key'))).mode & 0o777, 0o600);
    });

    it('connect pairwise writes the seeds’ files; status --wait sees every agent connected', async () => {
      for (const [a, b] of [
        ['cluster1', 'cluster2'],
        ['cluster1', 'cluster3'],
        ['cluster2', 'cluster3'],
      ] as const) {
        const r = await cli(['mesh', 'connect', '--cluster', a, '--destination-cluster', b]);
        assert.equal(r.code, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`Connected cluster ${a} <=> ${b}`));
      }
      const cfg = await readFile(join(configDir('cluster1'), 'cluster2'), 'utf8');
      const port = await portOf('cluster2');
      assert.match(
        cfg,
        new RegExp(`endpoints:\\n  - https://cluster2\\.mesh\\.cilium\\.io:${port}\\n`),
      );
      assert.match(cfg, /trusted-ca-file: .*\/cluster2\.etcd-client-ca\.crt\n/);
      assert.match(cfg, /cert-file: .*\/cluster2\.etcd-client\.crt\n/);
      assert.match(cfg, /key-file: .*\/cluster2\.etcd-client\.key\n/);
      assert.equal(
        (await stat(join(configDir('cluster1'), 'cluster2.etcd-client.key'))).mode & 0o777,
        0o600,
      );
      const aliases = await readFile(join(configDir('cluster1'), 'hostaliases.yaml'), 'utf8');
      assert.match(
        aliases,
        /- ip: 127\.2\.128\.2\n {2}hostnames:\n {4}- cluster2\.mesh\.cilium\.io/,
      );
      // The client certificate is cluster2's `remote` user.
      const crt = await readFile(join(configDir('cluster1'), 'cluster2.etcd-client.crt'), 'utf8');
      assert.match(new (await import('node:crypto')).X509Certificate(crt).subject, /^CN=remote$/);

      const r = await cli(['mesh', 'status', '--wait', '--wait-duration', '90s']);
      assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
      for (const c of CLUSTERS) {
        const others = CLUSTERS.filter((x) => x !== c);
        const block = blockOf(r.stdout, c);
        assert.match(
          block,
          /✅ All 2 nodes are connected to all clusters \[min:2 \/ avg:2\.0 \/ max:2\]/,
        );
        for (const o of others)
          assert.match(block, new RegExp(`  - ${o}: 2/2 configured, 2/2 connected`));
      }
      assert.doesNotMatch(r.stdout, /❌/);
    });

    it('traffic reaches every cluster’s backends from cluster1', async () => {
      // Up to 30 requests, 6 at a time (each is a CLI process), until every cluster answered.
      await eventually(async () => {
        const seen = new Set<string>();
        for (let round = 0; round < 5 && seen.size < CLUSTERS.length; round++) {
          const replies = await Promise.all(
            Array.from({ length: 6 }, () =>
              cli(['exec', 'cluster1/x-wing', '--', 'curl', '-s', 'rebel-base']),
            ),
          );
          for (const r of replies) {
            assert.equal(r.code, 0, r.stderr);
            seen.add((JSON.parse(r.stdout) as { Cluster: string }).Cluster);
          }
        }
        assert.deepEqual([...seen].sort(), CLUSTERS);
      }, 60_000);
    });

    it('etcdctl with the remote certificate reads what a remote reads and cannot write', async () => {
      const d = configDir('cluster1');
      const base = [
        '--endpoints',
        `https://127.2.128.2:${await portOf('cluster2')}`,
        '--cacert',
        join(d, 'cluster2.etcd-client-ca.crt'),
        '--cert',
        join(d, 'cluster2.etcd-client.crt'),
        '--key',
        join(d, 'cluster2.etcd-client.key'),
      ];
      const read = await exec(
        'etcdctl',
        [...base, 'get', '--prefix', '--keys-only', 'cilium/state/nodes/v1/'],
        dir,
      );
      assert.equal(read.code, 0, read.stderr);
      assert.match(read.stdout, /cilium\/state\/nodes\/v1\/cluster2\/cluster2-node1/);
      const write = await exec(
        'etcdctl',
        [...base, 'put', 'cilium/state/nodes/v1/cluster2/evil', 'x'],
        dir,
      );
      assert.notEqual(write.code, 0, 'the remote user cannot write');
      assert.match(write.stderr, /permission denied/);
      const other = await exec('etcdctl', [...base, 'get', 'cilium/cluster-config/cluster3'], dir);
      assert.match(other.stderr, /permission denied/, 'only its own cluster-config key');
    });

    it('disconnect removes exactly one pair', async () => {
      const r = await cli([
        'mesh',
        'disconnect',
        '--cluster',
        'cluster1',
        '--destination-cluster',
        'cluster3',
      ]);
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(
        (await readdir(configDir('cluster1'))).filter((f) => !f.includes('.')),
        ['cluster2'],
      );
      assert.deepEqual(
        (await readdir(configDir('cluster3'))).filter((f) => !f.includes('.')),
        ['cluster2'],
      );
      assert.deepEqual(
        (await readdir(configDir('cluster2'))).filter((f) => !f.includes('.')).sort(),
        ['cluster1', 'cluster3'],
      );
      await eventually(async () => {
        const out = await status();
        assert.match(
          blockOf(out, 'cluster1'),
          /✅ All 2 nodes are connected to all clusters \[min:1 \/ avg:1\.0 \/ max:1\]/,
        );
        assert.doesNotMatch(blockOf(out, 'cluster1'), /cluster3:/);
        assert.match(blockOf(out, 'cluster2'), / {2}- cluster3: 2\/2 configured, 2\/2 connected/);
        assert.match(blockOf(out, 'cluster2'), / {2}- cluster1: 2\/2 configured, 2\/2 connected/);
      }, 30_000);
      const back = await cli([
        'mesh',
        'connect',
        '--cluster',
        'cluster1',
        '--destination-cluster',
        'cluster3',
      ]);
      assert.equal(back.code, 0, back.stderr);
    });

    /** Breaks cluster1's credentials for cluster2, expects `status` to explain, then repairs. */
    async function refused(
      name: string,
      breakIt: () => Promise<void>,
      reason: RegExp,
      hint: RegExp,
    ): Promise<void> {
      await breakIt();
      let out = '';
      await eventually(async () => {
        out = await status();
        const block = blockOf(out, 'cluster1');
        assert.match(block, /❌ cluster1\/cluster1-node1 is not connected to cluster cluster2: /);
        const line = block
          .split('\n')
          .find((l) =>
            l.startsWith('❌ cluster1/cluster1-node1 is not connected to cluster cluster2'),
          );
        assert.match(line ?? '', reason, `${name}: ${line ?? ''}`);
        const next = block.split('\n')[block.split('\n').indexOf(line ?? '') + 1] ?? '';
        assert.match(next, /^💡 /, `${name}: a hint follows`);
        assert.match(next, hint, `${name}: ${next}`);
      }, 30_000).catch((err: unknown) => {
        throw new Error(`${name}: ${String(err)}\n${out}`);
      });
      const r = await cli([
        'mesh',
        'connect',
        '--cluster',
        'cluster1',
        '--destination-cluster',
        'cluster2',
      ]);
      assert.equal(r.code, 0, r.stderr);
      const w = await cli([
        'mesh',
        'status',
        '--wait',
        '--wait-duration',
        '60s',
        '--cluster',
        'cluster1',
      ]);
      assert.equal(w.code, 0, `${name}: repaired\n${w.stdout}`);
    }

    it('refused: a wrong CA', async () => {
      await refused(
        'wrong CA',
        async () => {
          const other = await readFile(join(etcdDir('cluster3'), 'ca.crt'), 'utf8');
          await writeFile(join(configDir('cluster1'), 'cluster2.etcd-client-ca.crt'), other);
        },
        /TLS handshake failed: .*server certificate is not trusted by the configured CA/,
        /CA/,
      );
    });

    it('refused: an expired certificate', async () => {
      await refused(
        'expired',
        async () => {
          const d = etcdDir('cluster2');
          const ca = await loadCA({
            cert: await readFile(join(d, 'ca.crt'), 'utf8'),
            key: await readFile(join(d, 'ca.key'), 'utf8'),
          });
          const old = await issueCert(ca, {
            commonName: 'remote',
            clientAuth: true,
            notBefore: new Date(Date.now() - 10 * 86_400_000),
            notAfter: new Date(Date.now() - 86_400_000),
          });
          await writeFile(join(configDir('cluster1'), 'cluster2.etcd-client.key'), old.key, {
            mode: 0o600,
          });
          await writeFile(join(configDir('cluster1'), 'cluster2.etcd-client.crt'), old.cert);
        },
        /the client certificate expired on \d{4}-\d\d-\d\d/,
        /expired.*certs rotate/,
      );
    });

    it('refused: a certificate from another cluster’s CA', async () => {
      await refused(
        'foreign CA',
        async () => {
          const d = etcdDir('cluster3');
          // cluster3's own `remote` certificate, presented to cluster2.
          await writeFile(
            join(configDir('cluster1'), 'cluster2.etcd-client.key'),
            await readFile(join(d, 'remote.key')),
            { mode: 0o600 },
          );
          await writeFile(
            join(configDir('cluster1'), 'cluster2.etcd-client.crt'),
            await readFile(join(d, 'remote.crt')),
          );
        },
        /server rejected the client certificate.*not signed by the CA in trusted-ca-file/,
        /rejected the client certificate/,
      );
    });

    it('refused: a missing client key', async () => {
      await refused(
        'no key',
        async () => {
          await rm(join(configDir('cluster1'), 'cluster2.etcd-client.key'));
        },
        /key-file .*cluster2\.etcd-client\.key: not found/,
        /incomplete/,
      );
    });

    it('an unrelated CA is no better: a self-made certificate is refused too', async () => {
      // A client certificate from a CA nobody in the mesh knows, with the right CN.
      await refused(
        'unknown CA',
        async () => {
          const ca = await createCA('intruder-ca');
          const leaf = await issueCert(ca, { commonName: 'remote', clientAuth: true });
          await writeFile(join(configDir('cluster1'), 'cluster2.etcd-client.key'), leaf.key, {
            mode: 0o600,
          });
          await writeFile(join(configDir('cluster1'), 'cluster2.etcd-client.crt'), leaf.cert);
        },
        /server rejected the client certificate/,
        /rejected the client certificate/,
      );
    });

    it('certs rotate: new certificates picked up, no entry or connection lost', async () => {
      const before = await readFile(
        join(configDir('cluster1'), 'cluster2.etcd-client.crt'),
        'utf8',
      );
      const nodesBefore = await nodeCount('cluster1/cluster1-node1');
      // Watch the entries while rotating: the count of cluster2's nodes never drops.
      let minNodes = Number.POSITIVE_INFINITY;
      const watching = { on: true };
      const watcher = (async () => {
        while (watching.on) {
          minNodes = Math.min(minNodes, await nodeCount('cluster1/cluster1-node1'));
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const r = await cli(['certs', 'rotate', '--cluster', 'cluster2']);
      assert.equal(r.code, 0, r.stderr);
      assert.match(
        r.stdout,
        /Rotated the certificates of cluster2; updated cluster1\/cluster2, cluster3\/cluster2/,
      );
      const after = await readFile(join(configDir('cluster1'), 'cluster2.etcd-client.crt'), 'utf8');
      assert.notEqual(after, before, 'the copy in cluster1 was replaced');
      const w = await cli(['mesh', 'status', '--wait', '--wait-duration', '60s']);
      assert.equal(w.code, 0, w.stdout);
      // A new connection (plain etcdctl) with the new certificates is accepted.
      const d = configDir('cluster1');
      const get = await exec(
        'etcdctl',
        [
          '--endpoints',
          `https://127.2.128.2:${await portOf('cluster2')}`,
          '--cacert',
          join(d, 'cluster2.etcd-client-ca.crt'),
          '--cert',
          join(d, 'cluster2.etcd-client.crt'),
          '--key',
          join(d, 'cluster2.etcd-client.key'),
          'get',
          'cilium/cluster-config/cluster2',
        ],
        dir,
      );
      assert.equal(get.code, 0, get.stderr);
      await new Promise((res) => setTimeout(res, 3000));
      watching.on = false;
      await watcher;
      assert.equal(
        minNodes,
        nodesBefore,
        `entries kept during rotation (min ${minNodes}, before ${nodesBefore})`,
      );
      const v = await cli(['mesh', 'status', '--verbose', '--cluster', 'cluster2']);
      assert.match(
        v.stdout,
        /🔑 Certificates:\n {2}- ca\.crt\s+CN=clustermesh-cluster2-ca\s+expires \d{4}-\d\d-\d\d \(36\d days\)/,
      );
      assert.match(v.stdout, / {2}- remote\.crt\s+CN=remote\s+expires/);
    });

    async function nodeCount(node: string): Promise<number> {
      const r = await cli(['node', 'list', '--node', node]);
      return r.stdout.split('\n').filter((l) => l.startsWith('cluster2/')).length;
    }

    async function portOf(cluster: string): Promise<string> {
      const s = await readMeshState(state);
      const c = s.clusters.find((x) => x.name === cluster);
      return new URL(c?.kvstore ?? 'https://x:2379').port || '2379';
    }
  },
);

/** The status block of `cluster` (from its header to the next cluster's). */
function blockOf(out: string, cluster: string): string {
  const start = out.indexOf(`Cluster ${cluster} (`);
  if (start < 0) return '';
  const next = out.indexOf('\nCluster ', start + 1);
  return out.slice(start, next < 0 ? undefined : next);
}
