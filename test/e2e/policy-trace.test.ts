/**
 * `clustermesh policy trace|get` online, against a real `clustermesh up --example
 * rebel-base` (memory kvstore, 2 clusters × 1 node): the seeds' allow-cross-cluster
 * policy applied to the first cluster, then its x-wing traced to rebel-base of both
 * clusters by pod and by IP. The mesh runs on IDs 7–8 (cluster7, cluster8, the seeds'
 * policy renamed to match) under that block's lock, beside the files on IDs 1–3.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readMeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';
import { ALLOW_CROSS_CLUSTER as CROSS } from '../support/policies.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface PodRow {
  metadata: { name: string; labels?: Record<string, string> };
  status?: { podIP?: string };
}

describe('policy trace (online, clustermesh up)', { timeout: 240_000 }, () => {
  let dir: string;
  let stateDir: string;
  let child: ChildProcess | undefined;
  let log = '';

  const cli = async (
    ...args: string[]
  ): Promise<{ code: number; stdout: string; stderr: string }> => {
    try {
      const r = await run(BIN, [...args, '--state-dir', stateDir], {
        env: { ...process.env, LOG_LEVEL: 'silent' },
        timeout: 30_000,
      });
      return { code: 0, stdout: r.stdout, stderr: r.stderr };
    } catch (err) {
      const e = err as { code?: number; stdout?: string; stderr?: string };
      return { code: e.code ?? 1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
    }
  };

  const podsOf = async (cluster: string, app: string): Promise<PodRow[]> => {
    const r = await cli('-o', 'json', 'get', 'pods', '--cluster', cluster);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { items: PodRow[] };
    return list.items.filter((p) => p.metadata.labels?.name === app);
  };

  before(async () => {
    await acquireUpLock(600_000, 7);
    dir = await mkdtemp(join(tmpdir(), 'cm-policy-trace-'));
    stateDir = join(dir, '.clustermesh');
    const up = spawn(
      BIN,
      [
        'up',
        '--clusters',
        '2',
        '--first-cluster-id',
        '7',
        '--nodes',
        '1',
        '--kvstore',
        'memory',
        '--example',
        'rebel-base',
        '--state-dir',
        stateDir,
      ],
      { cwd: dir, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    up.stdout.on('data', (d: Buffer) => (log += d.toString()));
    up.stderr.on('data', (d: Buffer) => (log += d.toString()));
    child = up;
    await eventually(() => readMeshState(stateDir), 60_000).catch((err: unknown) => {
      throw new Error(`up did not become ready: ${String(err)}\n${log}`);
    });
  });

  after(async () => {
    const c = child;
    if (c !== undefined && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGINT');
      const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    await rm(dir, { recursive: true, force: true });
    await releaseUpLock(7);
  });

  it('traces x-wing of cluster7 to rebel-base of both clusters', async () => {
    const file = join(dir, 'cross.yaml');
    // The seeds' policy, on this file's cluster names.
    await writeFile(
      file,
      CROSS.replaceAll('cluster1', 'cluster7').replaceAll('cluster2', 'cluster8'),
    );
    const applied = await cli('apply', '--cluster', 'cluster7', '-f', file);
    assert.equal(applied.code, 0, applied.stderr);

    const [xwing] = await eventually(async () => {
      const p = await podsOf('cluster7', 'x-wing');
      assert.ok(p.length > 0, 'x-wing pod in cluster7');
      return p;
    }, 60_000);
    const rebel1 = (await eventually(() => podsOf('cluster7', 'rebel-base'), 60_000))[0];
    const rebel2 = (await eventually(() => podsOf('cluster8', 'rebel-base'), 60_000))[0];
    assert.ok(
      xwing !== undefined && rebel1 !== undefined && rebel2 !== undefined,
      'xwing !== undefined && rebel1 !== undefined && rebel2 !== undefined',
    );
    const src = `cluster7/default/${xwing.metadata.name}`;

    // Endpoints and identities appear shortly after the pods.
    const toRemote = await eventually(async () => {
      const r = await cli(
        '-o',
        'json',
        'policy',
        'trace',
        '--src-pod',
        src,
        '--dst-pod',
        `cluster8/default/${rebel2.metadata.name}`,
        '--dport',
        '80',
      );
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout) as {
        verdict: string;
        egress: { cluster: string; enforced: boolean; verdict: string };
        ingress: { cluster: string; enforced: boolean };
      };
    }, 60_000);
    assert.equal(toRemote.verdict, 'ALLOWED');
    assert.deepEqual(
      [toRemote.egress.cluster, toRemote.egress.enforced, toRemote.egress.verdict],
      ['cluster7', true, 'allowed'],
    );
    assert.deepEqual([toRemote.ingress.cluster, toRemote.ingress.enforced], ['cluster8', false]);

    const toLocal = await cli(
      'policy',
      'trace',
      '--src-pod',
      src,
      '--dst-pod',
      `cluster7/default/${rebel1.metadata.name}`,
      '--dport',
      '80',
    );
    assert.equal(toLocal.code, 0, toLocal.stderr);
    assert.match(toLocal.stdout, /ALLOW CiliumNetworkPolicy default\/allow-cross-cluster/);
    assert.match(toLocal.stdout, /Final verdict: DENIED/);

    // By address: the endpoint owning rebel-base's pod IP in cluster8.
    const ip = rebel2.status?.podIP;
    assert.ok(ip !== undefined, 'ip !== undefined');
    const byIp = await cli('policy', 'trace', '--src-pod', src, '--dst-ip', ip, '--dport', '80');
    assert.equal(byIp.code, 0, byIp.stderr);
    assert.match(byIp.stdout, new RegExp(`To: +${ip.replaceAll('.', '\\.')} \\(cluster8/default/`));
    assert.match(byIp.stdout, /Final verdict: ALLOWED/);

    const world = await cli(
      'policy',
      'trace',
      '--src-pod',
      src,
      '--dst-ip',
      '192.0.2.1',
      '--dport',
      '443',
    );
    assert.match(world.stdout, /\(world\)/);
    assert.match(world.stdout, /Final verdict: DENIED/);

    const missing = await cli(
      'policy',
      'trace',
      '--src-pod',
      'cluster7/default/nope',
      '--dst-ip',
      ip,
      '--dport',
      '80',
    );
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /pod cluster7\/default\/nope not found/);
  });

  it('policy get lists the policy and its rule', async () => {
    const r = await cli('policy', 'get', '--cluster', 'cluster7');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /CiliumNetworkPolicy default\/allow-cross-cluster/);
    assert.match(
      r.stdout,
      /spec\.egress\[0\]: allow egress of \[.*name=x-wing.*\] to .*rebel-base/,
    );
    const j = await cli('-o', 'json', 'policy', 'get', '--cluster', 'cluster7');
    const doc = JSON.parse(j.stdout) as { items: { metadata: { name: string } }[] };
    assert.deepEqual(
      doc.items.map((i) => i.metadata.name),
      ['allow-cross-cluster'],
    );
    const empty = await cli('policy', 'get', '--cluster', 'cluster8');
    assert.equal(empty.code, 0);
    assert.match(empty.stderr, /No policies in cluster cluster8/);
  });
});
