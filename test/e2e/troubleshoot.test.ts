/**
 * `clustermesh troubleshoot` and `clustermesh health status` on `clustermesh up --clusters 2
 * --nodes 2 --kvstore etcd --example rebel-base`. A healthy mesh passes every check; then
 * each injected fault turns exactly the right check red with the right hint, and
 * `--wait` sees the mesh green again once the fault is undone. The health matrix comes
 * last, as it kills cluster8. The mesh is `up`'s default: etcd over TLS with Cilium's users,
 * remotes reached as `<cluster>.mesh.cilium.io` through host aliases. More TLS and auth
 * faults (expiry, a user allowed to write) are in test/integration/troubleshoot-tls.test.ts.
 * `up` binds fixed addresses: this file holds the up lock (test/support/up-lock.ts).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, readFile, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import type { Check, TroubleshootReport } from '../../src/troubleshoot/check.js';
import type { HealthReportEntry } from '../../src/cli/health.js';
import { clusterCertFiles } from '../../src/certs/cluster.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { meshEtcdctl } from '../support/mesh-etcdctl.js';
import { eventually } from '../support/eventually.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface CliResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `id cluster→remote @node` of each failing check, sorted. */
function failing(r: TroubleshootReport): string[] {
  return r.checks
    .filter((c) => c.status === 'fail')
    .map((c) => `${c.id} ${c.cluster}→${c.remote ?? ''} @${c.node ?? ''}`)
    .sort();
}

function find(r: TroubleshootReport, id: string, node?: string): Check {
  const c = r.checks.find((x) => x.id === id && (node === undefined || x.node === node));
  assert.ok(
    c !== undefined,
    `no check ${id} ${node ?? ''}: ${JSON.stringify(r.checks.map((x) => x.id))}`,
  );
  return c;
}

// Taken outside the suite: waiting for another file's mesh must not eat the suite's timeout.
before(async () => {
  await acquireUpLock(1_800_000, 7);
});
after(async () => {
  await releaseUpLock(7);
});

describe('troubleshoot and health status on clustermesh up (etcd)', { timeout: 420_000 }, () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let output = '';
  let state: MeshState;
  const extraEtcds: EtcdServer[] = [];

  const cli = async (args: readonly string[], timeout = 60_000): Promise<CliResult> => {
    try {
      const r = await run(BIN, args, {
        env: { ...process.env, LOG_LEVEL: 'silent' },
        cwd: dir,
        timeout,
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return {
        code: typeof e.code === 'number' ? e.code : -1,
        stdout: e.stdout ?? '',
        stderr: e.stderr ?? '',
      };
    }
  };

  const troubleshoot = async (
    args: readonly string[] = [],
  ): Promise<{ code: number; report: TroubleshootReport }> => {
    const r = await cli(['troubleshoot', ...args, '-o', 'json'], 150_000);
    let report: TroubleshootReport;
    try {
      report = JSON.parse(r.stdout) as TroubleshootReport;
    } catch {
      throw new Error(
        `troubleshoot printed no JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}\n${output}`,
      );
    }
    return { code: r.code, report };
  };

  const etcdctl = async (cluster: string, args: readonly string[]): Promise<string> => {
    const c = state.clusters.find((x) => x.name === cluster);
    assert.ok(c !== undefined, `cluster ${cluster}`);
    return meshEtcdctl(c, args);
  };

  const agents = (cluster: string): { node: string; api: string }[] =>
    state.clusters.find((c) => c.name === cluster)?.agents ?? [];

  const agentFault = async (
    api: string,
    action: string,
    params: Record<string, string>,
  ): Promise<void> => {
    const q = new URLSearchParams({ action, ...params });
    const res = await fetch(`${api}/v1/fault?${q.toString()}`, { method: 'POST' });
    assert.equal(res.status, 200, await res.text());
  };

  const agentKeys = async (api: string, remote: string, resource: string): Promise<string[]> => {
    const info = (await (await fetch(`${api}/v1/troubleshoot`)).json()) as {
      remotes: Record<string, Record<string, { keys: string[] }>>;
    };
    return info.remotes[remote]?.[resource]?.keys ?? [];
  };

  const greenAgain = async (): Promise<void> => {
    const r = await cli(['troubleshoot', '--wait', '--wait-duration', '60s'], 150_000);
    assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-troubleshoot-'));
    child = spawn(
      BIN,
      [
        'up',
        '--first-cluster-id',
        '7',
        '--clusters',
        '2',
        '--nodes',
        '2',
        '--kvstore',
        'etcd',
        '--example',
        'rebel-base',
      ],
      { cwd: dir, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await eventually(async () => {
      state = await readMeshState(join(dir, '.clustermesh'));
    }, 90_000).catch((err: unknown) => {
      throw new Error(`up did not become ready: ${String(err)}\n${output}`);
    });
  });

  after(async () => {
    const running = (): boolean => child !== undefined && child.exitCode === null;
    if (running()) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child?.kill('SIGINT');
      await Promise.race([exited, sleep(30_000)]);
      if (running()) child?.kill('SIGKILL');
    }
    for (const e of extraEtcds) await e.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  it('a healthy mesh: every check passes (TLS, read-only remote user), exit 0', async () => {
    await greenAgain();
    const { code, report } = await troubleshoot();
    assert.equal(code, 0);
    assert.equal(report.ok, true);
    assert.deepEqual(failing(report), []);
    const warns = [
      ...new Set(report.checks.filter((c) => c.status === 'warn').map((c) => c.id)),
    ].sort();
    assert.deepEqual(warns, []);
    assert.equal(report.summary.fail, 0);
    assert.equal(report.summary.ok + report.summary.warn, report.checks.length);
    // Per pair: the config file, each step of the connection, then per agent its view.
    for (const [cluster, remote] of [
      ['cluster7', 'cluster8'],
      ['cluster8', 'cluster7'],
    ] as const) {
      const ids = report.checks
        .filter((c) => c.cluster === cluster && c.remote === remote && c.node === undefined)
        .map((c) => c.id);
      assert.deepEqual(ids, [
        'config.remote-file',
        'connection.resolve',
        'connection.tcp',
        'connection.tls',
        'connection.etcd',
        'connection.auth',
        'connection.cluster-config',
        'config.cluster-id-unique',
      ]);
      for (const a of agents(cluster)) {
        const mine = report.checks
          .filter((c) => c.remote === remote && c.node === a.node)
          .map((c) => c.id);
        assert.deepEqual(mine, [
          'remote.status',
          'sync.nodes',
          'sync.endpoints',
          'sync.identities',
          'sync.services',
          'consistency.nodes',
          'consistency.endpoints',
          'consistency.identities',
          'consistency.services',
          'consistency.ipcache',
          'consistency.global-services',
        ]);
      }
    }
    for (const id of [
      'config.cluster-info',
      'config.max-connected-clusters',
      'config.policy-default-local-cluster',
      'config.pod-cidrs',
    ]) {
      assert.equal(report.checks.filter((c) => c.id === id).length, 2, id);
    }
    const sync = find(report, 'sync.nodes', 'cluster7-node1');
    assert.match(
      sync.message,
      /^synced in \d+ ms; canary present; last event .*, last heartbeat .*/,
    );
    assert.match(
      find(report, 'consistency.global-services', 'cluster7-node1').message,
      /default\/rebel-base: 2 backends from cluster8/,
    );
    assert.match(
      find(report, 'connection.resolve').message,
      /^cluster8\.mesh\.cilium\.io → 127\.8\.128\.2 \(host alias, hostaliases\.yaml\)$/,
    );
    assert.match(find(report, 'connection.tls').message, /^TLSv1\.[23] .*server CN=/);
    assert.match(find(report, 'connection.auth').message, /^user remote: .*read-only/);
    const c0 = report.checks[0];
    assert.ok(c0 !== undefined, 'a check');
    assert.deepEqual(
      Object.keys(c0)
        .filter((k) => !['remote', 'node', 'hint', 'log', 'details'].includes(k))
        .sort(),
      ['cluster', 'id', 'message', 'status'],
    );

    const text = await cli(['troubleshoot', '--cluster', 'cluster7']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(
      text.stdout,
      /^Cluster cluster7:\n {2}✅ agent\.api: \[cluster7-node1\] agent API http:\/\/127\.7\.0\.1:\d+ answers/,
    );
    assert.match(text.stdout, /\n {2}Remote cluster cluster8:\n {4}✅ config\.remote-file: /);
    assert.match(text.stdout, /✅ connection\.tls: TLSv1/);
    assert.match(text.stdout, /\nSummary: \d+ ✅ {2}0 ⚠️ {2}0 ❌\n$/);
    assert.doesNotMatch(text.stdout, /Cluster cluster8:/);
  });

  it("a stale and a missing key in the remote etcd, behind the agent's back: consistency.nodes lists them", async () => {
    const prefix = 'cilium/state/nodes/v1/cluster8';
    const real = JSON.parse(
      await etcdctl('cluster8', ['get', `${prefix}/cluster8-node1`, '--print-value-only']),
    ) as Record<string, unknown>;
    const ghost = (name: string, ip: string): string =>
      JSON.stringify({
        ...real,
        Name: name,
        IPAddresses: [{ Type: 'InternalIP', IP: ip }],
        IPv4AllocCIDR: null,
      });
    const stale = `${prefix}/ghost-stale`;
    const missing = `${prefix}/ghost-missing`;
    await etcdctl('cluster8', ['put', stale, ghost('ghost-stale', '127.8.0.200')]);
    for (const a of agents('cluster7')) {
      await eventually(async () => {
        assert.ok(
          (await agentKeys(a.api, 'cluster8', 'nodes')).includes(stale),
          'agent learnt the key',
        );
      }, 20_000);
      await agentFault(a.api, 'drop-events', { remote: 'cluster8' });
    }
    await etcdctl('cluster8', ['del', stale]);
    await etcdctl('cluster8', ['put', missing, ghost('ghost-missing', '127.8.0.201')]);

    const { code, report } = await troubleshoot(['--cluster', 'cluster7', 'cluster8']);
    assert.equal(code, 1);
    assert.deepEqual(failing(report), [
      'consistency.nodes cluster7→cluster8 @cluster7-node1',
      'consistency.nodes cluster7→cluster8 @cluster7-node2',
    ]);
    const c = find(report, 'consistency.nodes', 'cluster7-node1');
    assert.deepEqual(c.details?.stale, [stale]);
    assert.deepEqual(c.details.missing, [missing]);
    assert.match(
      c.message,
      /^3 keys in cluster8's etcd, 3 in the agent's view; stale \(gone from cluster8, still held\): cilium\/state\/nodes\/v1\/cluster8\/ghost-stale; missing \(in cluster8, not held\): cilium\/state\/nodes\/v1\/cluster8\/ghost-missing$/,
    );
    assert.match(c.hint ?? '', /diverged/);
    const text = await cli(['troubleshoot', '--cluster', 'cluster7']);
    assert.equal(text.code, 1);
    assert.match(
      text.stdout,
      /❌ consistency\.nodes: \[cluster7-node1\] .*ghost-stale.*ghost-missing\n\s+💡 /,
    );

    for (const a of agents('cluster7'))
      await agentFault(a.api, 'resume-events', { remote: 'cluster8' });
    // Undone through the watch: re-create then delete the stale key, delete the other.
    await etcdctl('cluster8', ['put', stale, ghost('ghost-stale', '127.8.0.200')]);
    await etcdctl('cluster8', ['del', stale]);
    await etcdctl('cluster8', ['del', missing]);
    await greenAgain();
  });

  it("a remote pod IP removed from the agent's view: consistency.ipcache names it (it would be world)", async () => {
    const pods = (await (await fetch(`${state.control}/v1/pods?cluster=cluster8`)).json()) as {
      name: string;
      ip: string;
    }[];
    const ip = pods.find((p) => p.name.startsWith('rebel-base-'))?.ip ?? '';
    assert.notEqual(ip, '');
    const node1 = agents('cluster7')[0];
    assert.ok(node1 !== undefined, 'cluster7-node1');
    await agentFault(node1.api, 'forget-ip', { ip });
    const { code, report } = await troubleshoot();
    assert.equal(code, 1);
    assert.deepEqual(failing(report), ['consistency.ipcache cluster7→cluster8 @cluster7-node1']);
    const c = find(report, 'consistency.ipcache', 'cluster7-node1');
    assert.deepEqual(c.details?.missing, [ip]);
    assert.match(
      c.message,
      new RegExp(
        `^1 of \\d+ cluster8 endpoint IPs missing from the ipcache \\(policy sees them as world\\): ${ip.replace(/\./g, '\\.')}$`,
      ),
    );
    // The remote re-announces it (same value, new revision): the agent learns it again.
    const key = `cilium/state/ip/v1/default/${ip}`;
    await etcdctl('cluster8', [
      'put',
      key,
      (await etcdctl('cluster8', ['get', key, '--print-value-only'])).trim(),
    ]);
    await greenAgain();
  });

  it('overlapping pod CIDRs: config.pod-cidrs fails in both clusters, naming both nodes', async () => {
    const own = JSON.parse(
      await etcdctl('cluster7', [
        'get',
        'cilium/state/nodes/v1/cluster7/cluster7-node1',
        '--print-value-only',
      ]),
    ) as Record<string, unknown>;
    const real = JSON.parse(
      await etcdctl('cluster8', [
        'get',
        'cilium/state/nodes/v1/cluster8/cluster8-node1',
        '--print-value-only',
      ]),
    ) as Record<string, unknown>;
    const key = 'cilium/state/nodes/v1/cluster8/overlap';
    await etcdctl('cluster8', [
      'put',
      key,
      JSON.stringify({
        ...real,
        Name: 'overlap',
        IPAddresses: [{ Type: 'InternalIP', IP: '127.8.0.202' }],
        IPv4AllocCIDR: own.IPv4AllocCIDR,
      }),
    ]);
    await eventually(async () => {
      const { report } = await troubleshoot();
      assert.deepEqual(failing(report), [
        'config.pod-cidrs cluster7→ @',
        'config.pod-cidrs cluster8→ @',
      ]);
      const c = find(report, 'config.pod-cidrs');
      assert.match(
        c.message,
        /127\.7\.1\.0\/24 of cluster\d\/(overlap|cluster7-node1) overlaps 127\.7\.1\.0\/24 of cluster\d\/(overlap|cluster7-node1)/,
      );
      assert.match(c.hint ?? '', /Pod CIDRs must be unique across the mesh/);
    }, 30_000);
    await etcdctl('cluster8', ['del', key]);
    await greenAgain();
  });

  it('a remote advertising a cluster ID already in use: config.cluster-id-unique fails for that pair only', async () => {
    const etcd = await startEtcd({ name: 'ts-cluster9' });
    extraEtcds.push(etcd);
    await run('etcdctl', [
      `--endpoints=${etcd.clientUrl}`,
      'put',
      'cilium/cluster-config/cluster9',
      JSON.stringify({ id: 8, capabilities: { syncCanaries: true, maxConnectedClusters: 255 } }),
    ]);
    const file = join(dir, '.clustermesh', 'cluster7', 'clustermesh', 'cluster9');
    await writeFile(file, `endpoints:\n  - ${etcd.clientUrl}\n`);
    try {
      await eventually(async () => {
        const { code, report } = await troubleshoot(['--cluster', 'cluster7']);
        assert.equal(code, 1);
        assert.deepEqual(failing(report), ['config.cluster-id-unique cluster7→cluster9 @']);
        const c = report.checks.find(
          (x) => x.id === 'config.cluster-id-unique' && x.remote === 'cluster9',
        );
        assert.equal(c?.message, 'cluster9 advertises cluster ID 8, which cluster8 uses');
        assert.match(c.hint ?? '', /own cluster ID/);
        assert.equal(c.log, 'cannot reserve the cluster ID of the remote cluster');
        // cluster8, connected first, keeps its ID.
        assert.equal(
          report.checks.find((x) => x.id === 'config.cluster-id-unique' && x.remote === 'cluster8')
            ?.status,
          'ok',
        );
      }, 30_000);
    } finally {
      await unlink(file);
    }
    await greenAgain();
  });

  it('a wrong CA for the remote: connection.tls fails with a CA mismatch and the hint', async () => {
    const file = join(
      dir,
      '.clustermesh',
      'cluster7',
      'clustermesh',
      'cluster8.etcd-client-ca.crt',
    );
    const good = await readFile(file, 'utf8');
    const c1 = state.clusters.find((x) => x.name === 'cluster7');
    assert.ok(c1?.etcdDir !== undefined, 'cluster7 has a TLS etcd directory');
    // cluster7's own CA: valid, but not the one that signed cluster8's etcd certificate.
    await writeFile(file, await readFile(clusterCertFiles(c1.etcdDir, 'cluster7').caFile, 'utf8'));
    try {
      const { code, report } = await troubleshoot(['--cluster', 'cluster7']);
      assert.equal(code, 1);
      assert.deepEqual(failing(report), ['connection.tls cluster7→cluster8 @']);
      const c = find(report, 'connection.tls');
      assert.match(c.message, /^CA mismatch at https:\/\/cluster8\.mesh\.cilium\.io:\d+: /);
      assert.match(c.hint ?? '', /share a CA/);
      assert.equal(find(report, 'connection.tcp').status, 'ok');
    } finally {
      await writeFile(file, good);
    }
    await greenAgain();
  });

  it('a missing remote config file: config.remote-file fails with the path to write', async () => {
    const file = join(dir, '.clustermesh', 'cluster7', 'clustermesh', 'cluster8');
    const content = await readFile(file, 'utf8');
    await unlink(file);
    try {
      const { code, report } = await troubleshoot();
      assert.equal(code, 1);
      assert.deepEqual(failing(report), ['config.remote-file cluster7→cluster8 @']);
      const c = find(report, 'config.remote-file');
      assert.match(
        c.message,
        /^no configuration for cluster8: .*cluster7\/clustermesh\/cluster8 not found/,
      );
      assert.match(c.hint ?? '', /Write cluster8's etcd config/);
      assert.equal(c.log, 'remote cluster added');
    } finally {
      await writeFile(file, content);
    }
    await greenAgain();
  });

  it('a stopped remote etcd: connection.etcd fails, then --wait sees it recover', async () => {
    const fault = async (action: string): Promise<void> => {
      const res = await fetch(`${state.control}/v1/fault?cluster=cluster8&action=${action}`, {
        method: 'POST',
      });
      assert.equal(res.status, 200, await res.text());
    };
    await fault('freeze-kvstore');
    try {
      const { code, report } = await troubleshoot(['--cluster', 'cluster7']);
      assert.equal(code, 1);
      assert.deepEqual(failing(report), ['connection.etcd cluster7→cluster8 @']);
      const c = find(report, 'connection.etcd');
      assert.match(c.message, /^cluster8's etcd does not answer: /);
      assert.match(c.hint ?? '', /etcd running/);
      assert.equal(find(report, 'connection.tcp').status, 'ok');
    } finally {
      await fault('thaw-kvstore');
    }
    await greenAgain();
  });

  it('an MCS-API export: consistency.global-services names the derived Service and the export it stands for', async () => {
    const file = join(dir, 'export.yaml');
    await writeFile(
      file,
      'apiVersion: multicluster.x-k8s.io/v1alpha1\nkind: ServiceExport\nmetadata:\n  name: rebel-base\n  namespace: default\n',
    );
    for (const c of ['cluster7', 'cluster8']) {
      const r = await cli(['apply', '--cluster', c, '-f', file]);
      assert.equal(r.code, 0, r.stderr);
    }
    try {
      await eventually(async () => {
        const { code, report } = await troubleshoot(['--cluster', 'cluster7']);
        assert.equal(code, 0, JSON.stringify(failing(report)));
        assert.match(
          find(report, 'consistency.global-services', 'cluster7-node1').message,
          /default\/derived-[0-9a-v]{10} \(MCS-API default\/rebel-base\): 2 backends from cluster8/,
        );
        // Each resource has its own last-event age.
        assert.match(
          find(report, 'sync.services', 'cluster7-node1').message,
          /; last event \d+(\.\d)? m?s ago, last heartbeat /,
        );
      }, 30_000);
    } finally {
      for (const c of ['cluster7', 'cluster8']) {
        await cli(['delete', '--cluster', c, '-f', file]);
      }
    }
    await greenAgain();
  });

  it('health status: every node reaches every node with RTT percentiles; a dead cluster shows its last error', async () => {
    let entries: HealthReportEntry[] = [];
    await eventually(async () => {
      const r = await cli(['health', 'status', '-o', 'json']);
      assert.equal(r.code, 0, r.stderr);
      entries = JSON.parse(r.stdout) as HealthReportEntry[];
      assert.equal(entries.length, 4);
      for (const e of entries) {
        assert.ok(e.status !== undefined, `${e.node}: ${e.error ?? ''}`);
        assert.deepEqual(
          e.status.nodes.map((n) => `${n.cluster}/${n.name} ${n.status}`),
          [
            'cluster7/cluster7-node1 ok',
            'cluster7/cluster7-node2 ok',
            'cluster8/cluster8-node1 ok',
            'cluster8/cluster8-node2 ok',
          ],
        );
        for (const n of e.status.nodes) {
          assert.ok(
            n.rtt !== undefined &&
              n.rtt.p50 > 0 &&
              n.rtt.p50 <= n.rtt.p95 &&
              n.rtt.p95 <= n.rtt.p99,
            JSON.stringify(n),
          );
        }
      }
    }, 30_000);
    const text = await cli(['health', 'status']);
    assert.match(
      text.stdout,
      /^Probes from cluster7\/cluster7-node1:\nProbe time: {3}\S+\nNodes:\n {2}cluster7\/cluster7-node1 \(localhost\):\n {4}Host connectivity to 127\.7\.0\.1:\n {6}HTTP to agent: {3}OK, RTT p50=/,
    );
    assert.match(text.stdout, /\nSummary: 16\/16 node probes OK, 0 agent\(s\) unreachable\n$/);

    const res = await fetch(`${state.control}/v1/fault?cluster=cluster8&action=crash-cluster`, {
      method: 'POST',
    });
    assert.equal(res.status, 200);
    await eventually(async () => {
      const r = await cli(['health', 'status', '-o', 'json']);
      entries = JSON.parse(r.stdout) as HealthReportEntry[];
      for (const e of entries.filter((x) => x.cluster === 'cluster7')) {
        const byName = new Map((e.status?.nodes ?? []).map((n) => [n.name, n]));
        assert.equal(byName.get('cluster7-node2')?.status, 'ok');
        for (const n of ['cluster8-node1', 'cluster8-node2']) {
          assert.equal(byName.get(n)?.status, 'failed', n);
          assert.match(byName.get(n)?.lastError ?? '', /ECONNREFUSED/);
        }
      }
      for (const e of entries.filter((x) => x.cluster === 'cluster8')) {
        assert.equal(e.status, undefined);
        assert.match(e.error ?? '', /ECONNREFUSED|fetch failed/);
      }
    }, 30_000);
    const after = await cli(['health', 'status', '--node', 'cluster7/cluster7-node1']);
    assert.match(
      after.stdout,
      /cluster8\/cluster8-node1:\n {4}Host connectivity to 127\.8\.0\.1:\n {6}HTTP to agent: {3}FAILED, RTT p50=\S+ p95=\S+ p99=\S+\n {6}Last error: {6}.*ECONNREFUSED/,
    );
  });
});
