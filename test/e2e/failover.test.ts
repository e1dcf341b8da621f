/**
 * Health-aware failover on `clustermesh up --clusters 2 --example rebel-base` (memory
 * kvstore): x-wing in cluster1 keeps sending requests to the global Service rebel-base
 * while cluster1 and cluster2 are partitioned (control plane and datapath, through the
 * agents' fault API) and healed, then while cluster2's backends die abruptly (their
 * sockets close, nothing tells the control plane), then while all of cluster2 dies. Requests stop failing within about a second,
 * the views show the dead backends unhealthy, and cluster2 shows not ready within 5 s.
 * Stalls of a real etcd are covered in test/integration/etcd-faults.test.ts. `up` binds
 * fixed addresses, shared with up.test.ts: the two files take turns (test/support/up-lock.ts).
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface Sample {
  readonly sentAt: number;
  /** When the reply (or the error) came: a request sent just before a fault may meet it. */
  readonly doneAt: number;
  readonly ok: boolean;
  readonly cluster: string;
}

function request(host: string, from: string): Promise<{ ok: boolean; cluster: string }> {
  return new Promise((resolve) => {
    const req = get({ host, port: 80, path: '/', localAddress: from, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        let cluster = '';
        try {
          cluster = (JSON.parse(body) as { Cluster?: string }).Cluster ?? '';
        } catch {
          // Not a reply of the echo server: counted as a failure.
        }
        resolve({ ok: res.statusCode === 200 && cluster !== '', cluster });
      });
      res.on('error', () => {
        resolve({ ok: false, cluster: '' });
      });
    });
    req.setTimeout(2_000, () => req.destroy(new Error('timeout')));
    req.on('error', () => {
      resolve({ ok: false, cluster: '' });
    });
  });
}

/** `rate` requests/s on new connections until stopped. */
function load(
  host: string,
  from: string,
  rate: number,
): { stop(): Promise<Sample[]>; peek(): Promise<Sample[]> } {
  const samples: Sample[] = [];
  const inflight = new Set<Promise<void>>();
  const t0 = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - t0) * rate) / 1000);
    for (; sent < due; sent++) {
      const sentAt = Date.now();
      const p = request(host, from).then((r) => {
        samples.push({ sentAt, doneAt: Date.now(), ...r });
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
  }, 10);
  return {
    stop: async () => {
      clearInterval(timer);
      await Promise.all([...inflight]);
      return samples;
    },
    peek: () => Promise.resolve([...samples]),
  };
}

/** "n answered: cluster1 40, cluster2 38, failed 2" for assertion messages. */
function describeSamples(samples: readonly Sample[]): string {
  const counts = new Map<string, number>();
  for (const s of samples) {
    const k = s.ok ? s.cluster : 'failed';
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  return `${samples.length} done: ${[...counts].map(([k, n]) => `${k} ${n}`).join(', ')}`;
}

interface ServiceJson {
  readonly service: string;
  readonly frontend: string;
  readonly backends: readonly { address: string; cluster: string; health?: string }[];
}

// Taken outside the suite: waiting for another file's mesh must not eat the suite's timeout.
before(async () => {
  await acquireUpLock(1_800_000);
});
after(async () => {
  await releaseUpLock();
});

describe('failover on clustermesh up (memory)', { timeout: 240_000 }, () => {
  let dir: string;
  let child: ChildProcess | undefined;
  let output = '';
  let state: MeshState;
  let xwing = '';
  let clusterIP = '';

  const cli = async (args: readonly string[]): Promise<string> =>
    (
      await run(BIN, args, {
        env: { ...process.env, LOG_LEVEL: 'silent' },
        cwd: dir,
        timeout: 30_000,
      })
    ).stdout;

  const fault = async (cluster: string, action: string): Promise<void> => {
    const res = await fetch(`${state.control}/v1/fault?cluster=${cluster}&action=${action}`, {
      method: 'POST',
    });
    assert.equal(res.status, 200, await res.text());
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-failover-'));
    child = spawn(
      BIN,
      ['up', '--clusters', '2', '--nodes', '2', '--kvstore', 'memory', '--example', 'rebel-base'],
      { cwd: dir, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    await eventually(async () => {
      state = await readMeshState(join(dir, '.clustermesh'));
    }, 60_000).catch((err: unknown) => {
      throw new Error(`up did not become ready: ${String(err)}\n${output}`);
    });
    // x-wing runs, and cluster1 balances over the backends of both clusters.
    await eventually(async () => {
      const pods = (await (await fetch(`${state.control}/v1/pods?cluster=cluster1`)).json()) as {
        name: string;
        ip: string;
      }[];
      xwing = pods.find((p) => p.name.startsWith('x-wing-'))?.ip ?? '';
      assert.notEqual(xwing, '');
      const services = JSON.parse(await cli(['service', 'list', '-o', 'json'])) as ServiceJson[];
      const svc = services.find((s) => s.service === 'default/rebel-base');
      assert.ok(svc !== undefined, 'svc !== undefined');
      clusterIP = svc.frontend.split(':')[0] ?? '';
      assert.deepEqual(
        new Set(svc.backends.map((b) => b.cluster)),
        new Set(['cluster1', 'cluster2']),
        `${JSON.stringify(svc)}\n${output}`,
      );
      assert.ok(
        svc.backends.every((b) => b.health === 'healthy'),
        JSON.stringify(svc),
      );
    }, 90_000);
  });

  after(async () => {
    const running = (): boolean => child !== undefined && child.exitCode === null;
    if (running()) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child?.kill('SIGINT');
      await Promise.race([exited, sleep(20_000)]);
      if (running()) child?.kill('SIGKILL');
    }
    await rm(dir, { recursive: true, force: true });
  });

  it('a partition between cluster1 and cluster2 (control plane and datapath): new connections avoid cluster2 within ~1 s and come back after healing', async () => {
    const agentFault = async (api: string, action: string, remote: string): Promise<void> => {
      const res = await fetch(`${api}/v1/fault?action=${action}&remote=${remote}`, {
        method: 'POST',
      });
      assert.equal(res.status, 200, await res.text());
    };
    const both = async (action: 'partition' | 'heal'): Promise<void> => {
      for (const c of state.clusters) {
        const other = c.name === 'cluster1' ? 'cluster2' : 'cluster1';
        for (const a of c.agents) await agentFault(a.api, action, other);
      }
    };
    const agentApi = state.clusters[0]?.agents[0]?.api ?? '';
    const ready = async (): Promise<boolean | undefined> => {
      const st = (await (await fetch(`${agentApi}/v1/clustermesh`)).json()) as {
        clusters: { name: string; ready?: boolean }[];
      };
      return st.clusters.find((c) => c.name === 'cluster2')?.ready;
    };
    const l = load(clusterIP, xwing, 100);
    await sleep(1_000);
    const t = Date.now();
    await both('partition');
    // Under load the four fault calls take a while: the partition is whole once they return.
    const cut = Date.now();
    let notReadyMs = -1;
    while (Date.now() - t < 8_000) {
      if ((await ready()) !== true) {
        notReadyMs = Date.now() - t;
        break;
      }
      await sleep(100);
    }
    await sleep(Math.max(0, cut + 4_000 - Date.now()));
    const healedAt = Date.now();
    await both('heal');
    // Back when cluster2's backends pass their probes and answer again.
    let backMs = -1;
    while (Date.now() - healedAt < 10_000) {
      await sleep(200);
      const recent = (await l.peek()).filter(
        (s) => s.sentAt >= healedAt && s.cluster === 'cluster2',
      );
      if (recent.length > 0) {
        backMs = (recent[0]?.sentAt ?? 0) - healedAt;
        break;
      }
    }
    const samples = await l.stop();
    const before = samples.filter((s) => s.doneAt < t);
    assert.ok(
      before.every((s) => s.ok) && before.some((s) => s.cluster === 'cluster2'),
      `both clusters answer before the partition: ${describeSamples(before)}`,
    );
    const during = samples.filter((s) => s.sentAt >= t && s.sentAt < healedAt);
    const lastFailure = Math.max(-1, ...during.filter((s) => !s.ok).map((s) => s.sentAt - t));
    const late = during.filter((s) => s.sentAt >= cut + 1_500);
    assert.ok(late.length > 150, `${late.length} requests from 1.5 s into the partition`);
    assert.deepEqual(
      late.filter((s) => !s.ok || s.cluster !== 'cluster1').map((s) => [s.sentAt - cut, s.cluster]),
      [],
      `new connections avoid cluster2 from 1.5 s on (fault calls took ${cut - t} ms; last failed request sent at +${lastFailure} ms)`,
    );
    assert.ok(notReadyMs >= 0 && notReadyMs <= 5_000, `cluster2 not ready after ${notReadyMs} ms`);
    assert.ok(backMs >= 0 && backMs <= 5_000, `cluster2 answers again ${backMs} ms after healing`);
    assert.deepEqual(
      samples.filter((s) => s.sentAt >= healedAt + 2_000 && !s.ok).map((s) => s.sentAt - healedAt),
      [],
      'no failure once healed',
    );
    // Ready again, and every backend healthy, before the next case.
    await eventually(async () => {
      assert.equal(await ready(), true);
      const services = JSON.parse(await cli(['service', 'list', '-o', 'json'])) as ServiceJson[];
      const svc = services.find((x) => x.service === 'default/rebel-base');
      assert.ok(
        svc?.backends.every((b) => b.health === 'healthy'),
        JSON.stringify(svc),
      );
    }, 20_000);
  });

  it("cluster2's backends die abruptly: requests stop failing within a second, views show them unhealthy", async () => {
    const l = load(clusterIP, xwing, 100);
    await sleep(1_000);
    const t = Date.now();
    await fault('cluster2', 'crash-workloads');
    await sleep(3_000);
    const samples = await l.stop();
    const before = samples.filter((s) => s.doneAt < t);
    assert.ok(
      before.every((s) => s.ok),
      `no failure before the crash: ${describeSamples(before)}`,
    );
    assert.ok(
      new Set(before.map((s) => s.cluster)).has('cluster2'),
      "new Set(before.map((s) => s.cluster)).has('cluster2')",
    );
    const late = samples.filter((s) => s.sentAt >= t + 1_000);
    assert.ok(late.length > 100, `${late.length} requests after the first second`);
    assert.deepEqual(
      late.filter((s) => !s.ok).map((s) => s.sentAt - t),
      [],
      'no request fails a second after the crash',
    );
    assert.deepEqual(
      late.filter((s) => s.cluster !== 'cluster1').map((s) => [s.sentAt - t, s.cluster]),
      [],
      'only cluster1 answers',
    );

    // The control plane still lists them; the datapath knows better.
    const services = JSON.parse(await cli(['service', 'list', '-o', 'json'])) as ServiceJson[];
    const svc = services.find((s) => s.service === 'default/rebel-base');
    assert.ok(svc !== undefined, 'svc !== undefined');
    for (const b of svc.backends) {
      assert.equal(b.health, b.cluster === 'cluster2' ? 'unhealthy' : 'healthy', b.address);
    }
    const text = await cli(['service', 'list']);
    assert.match(text, /\(active, unhealthy\) \[cluster2\]/);
    assert.match(text, /\(active\) \[cluster1\]/);
    const lb = await cli(['lb', 'list']);
    assert.match(lb, /127\.2\.\d+\.\d+:80\/TCP \(\d+\) \(unhealthy\)/);
  });

  it('all of cluster2 dies: requests keep working, cluster2 is not ready within 5 s', async () => {
    const l = load(clusterIP, xwing, 100);
    await sleep(500);
    const t = Date.now();
    const agentApi = state.clusters[0]?.agents[0]?.api ?? '';
    await fault('cluster2', 'crash-cluster');
    // Its kvstore goes last, once the other parts have stopped: detection starts there.
    const down = Date.now();
    let notReadyMs = -1;
    while (Date.now() - down < 10_000) {
      // Asked of the agent directly: a CLI process per poll would add its start-up time.
      const st = (await (await fetch(`${agentApi}/v1/clustermesh`)).json()) as {
        clusters: { name: string; ready?: boolean }[];
      };
      if (st.clusters.find((c) => c.name === 'cluster2')?.ready !== true) {
        notReadyMs = Date.now() - down;
        break;
      }
      await sleep(100);
    }
    const samples = await l.stop();
    assert.ok(notReadyMs >= 0 && notReadyMs <= 5_000, `cluster2 not ready after ${notReadyMs} ms`);
    const failed = samples.filter((s) => !s.ok && s.sentAt >= t + 1_000);
    assert.deepEqual(failed, []);
    // Backends are kept while the remote is unreachable, as Cilium keeps them.
    const services = JSON.parse(await cli(['service', 'list', '-o', 'json'])) as ServiceJson[];
    const svc = services.find((s) => s.service === 'default/rebel-base');
    assert.ok(
      svc?.backends.some((b) => b.cluster === 'cluster2'),
      "svc?.backends.some((b) => b.cluster === 'cluster2')",
    );
  });
});
