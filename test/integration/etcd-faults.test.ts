/**
 * Real-process fault injection against the etcd backend: SIGKILL during a watch,
 * mTLS refusals, leader loss in a 3-member cluster, a frozen (SIGSTOPped) server,
 * and lease keepalive across a restart. The generic contract (SIGTERM restart,
 * compaction, wipe) lives in kvstore-etcd.test.ts and is not repeated here.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import type { Backend } from '../../src/kvstore/backend.js';
import { createBackend, resolveKvstoreConfig } from '../../src/kvstore/config.js';
import { EtcdBackend, type EtcdBackendOptions, type EtcdTls } from '../../src/kvstore/etcd.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import {
  startEtcd,
  startEtcdCluster,
  type EtcdCluster,
  type EtcdMember,
  type EtcdServer,
} from '../support/etcd.js';
import { eventually, until } from '../support/eventually.js';
import { StreamMirror, sameState, snapshot } from '../support/kvstore-contract.js';
import { createCA, issueCert } from '../support/tls.js';
import { ClusterMesh } from '../../src/clustermesh/clustermesh.js';
import type { RemoteClusterStatus } from '../../src/clustermesh/status.js';
import { NodesRemoteCluster, seedRemoteCluster } from '../support/clustermesh.js';

/** Backends opened by one suite, closed by its `after`. */
class Backends {
  private readonly opened: Backend[] = [];

  async open(opts: EtcdBackendOptions): Promise<EtcdBackend> {
    const b = new EtcdBackend(opts);
    this.opened.push(b);
    await b.connect();
    return b;
  }

  track<T extends Backend>(b: T): T {
    this.opened.push(b);
    return b;
  }

  async closeAll(): Promise<void> {
    for (const b of this.opened.splice(0)) await b.close();
  }
}

function sorted(m: ReadonlyMap<string, string>): [string, string][] {
  return [...m].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

function codeOf(err: unknown): string {
  return isClusterMeshError(err) ? err.code : `not a ClusterMeshError: ${String(err)}`;
}

// ---------------------------------------------------------------------------------------------

void describe('etcd SIGKILLed and restarted during a watch', () => {
  let etcd: EtcdServer;
  const backends = new Backends();
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await backends.closeAll();
    await etcd.destroy();
  });

  void it('the consumer ends with exactly the store state; status follows the outage', async (t) => {
    const opts = { endpoints: etcd.endpoints, callTimeoutMs: 2000 };
    const writer = await backends.open(opts);
    const watcher = await backends.open(opts);
    const p = 'faults/kill/';
    const key = (i: number): string => `${p}k${String(i).padStart(3, '0')}`;

    // The model: what etcd must hold, built from acknowledged operations only.
    const model = new Map<string, string>();
    for (let i = 0; i < 500; i += 100) {
      const ops = Array.from({ length: 100 }, (_, j) => ({
        kind: 'put' as const,
        key: key(i + j),
        value: `seed${i + j}`,
      }));
      await writer.txn(ops);
      for (const op of ops) model.set(op.key, op.value);
    }

    const mirror = new StreamMirror(watcher, p);
    try {
      await mirror.waitFor(
        () => mirror.count('listDone') === 1 && mirror.state.size === 500,
        10_000,
        'initial list of 500 keys',
      );

      // One writer: puts and deletes over 600 keys (so keys also appear), each
      // operation retried until acknowledged, so the model stays sequential.
      type Phase = 'before' | 'down' | 'after';
      let phase: Phase = 'before';
      const acked: Record<Phase, number> = { before: 0, down: 0, after: 0 };
      // Attempts started after the process exited and answered before it was started again.
      let ackedWhileDown = 0;
      const errorCodes = new Map<string, number>();
      let stop = false;
      const writerLoop = async (): Promise<void> => {
        for (let seq = 0; !stop; seq++) {
          const k = key((seq * 7919) % 600);
          const del = model.has(k) && seq % 3 === 0;
          const value = `w${seq}`;
          const giveUpAt = Date.now() + 20_000;
          for (;;) {
            const attemptPhase = phase;
            try {
              if (del) await writer.delete(k);
              else await writer.put(k, value);
              if (attemptPhase === 'down' && phase === 'down') ackedWhileDown++;
              break;
            } catch (err) {
              const c = codeOf(err);
              errorCodes.set(c, (errorCodes.get(c) ?? 0) + 1);
              if (Date.now() > giveUpAt) throw err;
              await sleep(50);
            }
          }
          if (del) model.delete(k);
          else model.set(k, value);
          acked[phase]++;
        }
      };
      const writing = writerLoop();
      // Observed by `await writing` below; this only keeps an early failure from being unhandled.
      writing.catch(() => undefined);

      await until(() => acked.before >= 300, {
        timeoutMs: 10_000,
        intervalMs: 20,
        message: '300 writes before the kill',
      });
      const killedAt = Date.now();
      await etcd.kill();
      phase = 'down';
      assert.equal(etcd.running, false);
      // Both clients notice: the writer through failing calls, the watcher through its stream.
      await until(() => !writer.status().connected, {
        timeoutMs: 5_000,
        intervalMs: 20,
        message: 'writer status disconnected',
      });
      await until(() => !watcher.status().connected, {
        timeoutMs: 5_000,
        intervalMs: 20,
        message: 'watcher status disconnected',
      });
      assert.match(writer.status().lastError ?? '', /unreachable/);
      // Down for 2 s: long enough for the clients' reconnect backoffs to grow.
      await sleep(Math.max(0, 2_000 - (Date.now() - killedAt)));

      phase = 'after';
      await etcd.start();
      const restartedAt = Date.now();
      await until(() => writer.status().connected, {
        timeoutMs: 10_000,
        intervalMs: 20,
        message: 'writer status connected',
      });
      await until(() => watcher.status().connected, {
        timeoutMs: 10_000,
        intervalMs: 20,
        message: 'watcher status connected',
      });
      const reconnectMs = Date.now() - restartedAt;
      // Watch streams are re-opened with a backoff capped at 2 s.
      assert.ok(reconnectMs < 5_000, `reconnected ${reconnectMs}ms after the restart`);
      await until(() => acked.after >= 300, {
        timeoutMs: 10_000,
        intervalMs: 20,
        message: '300 writes after the restart',
      });
      stop = true;
      await writing;

      assert.ok(acked.before >= 300 && acked.after >= 300, JSON.stringify(acked));
      // While etcd was down, nothing was acknowledged, and every failure said "unreachable".
      assert.equal(ackedWhileDown, 0, 'no write acknowledged while etcd was down');
      assert.ok((errorCodes.get(ErrorCode.KvstoreUnreachable) ?? 0) > 0, 'writes failed');
      assert.deepEqual([...errorCodes.keys()], [ErrorCode.KvstoreUnreachable]);

      // etcd holds exactly the acknowledged state (SIGKILL loses no acknowledged write)...
      const want = await snapshot(writer, p);
      assert.deepEqual(sorted(want), sorted(model));
      // ...and the consumer converges on it: nothing stale, nothing missing.
      await mirror.waitFor(() => sameState(mirror.state, want), 15_000, 'mirror convergence');
      assert.deepEqual(sorted(mirror.state), sorted(want));
      t.diagnostic(
        `acked before=${acked.before} after=${acked.after}, failures=${errorCodes.get(ErrorCode.KvstoreUnreachable) ?? 0}, ` +
          `reconnect ${reconnectMs}ms, listDone=${mirror.count('listDone')}, keys=${want.size}`,
      );
    } finally {
      await mirror.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

void describe('etcd with mutual TLS', () => {
  let etcd: EtcdServer;
  let dir: string;
  const backends = new Backends();
  before(async () => {
    etcd = await startEtcd({ tls: true });
    dir = await mkdtemp(join(tmpdir(), 'clustermesh-etcd-faults-'));
  });
  after(async () => {
    await backends.closeAll();
    await etcd.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const fixtureTls = (): Required<EtcdTls> => {
    const t = etcd.tls;
    assert.ok(t !== undefined, 't !== undefined');
    return { ca: Buffer.from(t.ca), cert: Buffer.from(t.cert), key: Buffer.from(t.key) };
  };

  /** Connecting must fail fast with ERR_KVSTORE_TLS and a one-line message naming the endpoint. */
  const expectRefused = async (tls: EtcdTls, reason: RegExp): Promise<string> => {
    const b = backends.track(
      new EtcdBackend({ endpoints: etcd.endpoints, tls, callTimeoutMs: 10_000 }),
    );
    const start = Date.now();
    const err = await b.connect().then(
      () => assert.fail('connected despite bad TLS material'),
      (e: unknown) => e,
    );
    const ms = Date.now() - start;
    assert.ok(isClusterMeshError(err, ErrorCode.KvstoreTls), `${codeOf(err)}: ${String(err)}`);
    assert.ok(!err.message.includes('\n'), 'one line');
    assert.ok(
      err.message.startsWith(`etcd at ${etcd.clientUrl}: TLS handshake failed: `),
      err.message,
    );
    assert.match(err.message, reason);
    assert.ok(ms < 3_000, `refused after ${ms}ms`);
    assert.equal(b.status().connected, false);
    assert.equal(b.status().lastError, err.message);
    return err.message;
  };

  void it('a backend from an etcd.config file with the fixture client cert works', async () => {
    const file = await etcd.writeClientConfig(join(dir, 'etcd.yaml'));
    const cfg = await resolveKvstoreConfig(undefined, [`etcd.config=${file}`]);
    assert.equal(cfg.kind, 'etcd');
    assert.deepEqual(cfg.etcd?.endpoints, [etcd.clientUrl]);
    assert.match(etcd.clientUrl, /^https:\/\/localhost:\d+$/);
    const b = backends.track(await createBackend(cfg));
    await b.put('tls/a', '1');
    assert.equal((await b.get('tls/a'))?.value, '1');
    const mirror = new StreamMirror(b, 'tls/');
    try {
      await mirror.waitFor(() => mirror.count('listDone') === 1, 10_000, 'listDone');
      await b.put('tls/b', '2');
      await b.delete('tls/a');
      await mirror.waitFor(
        () => sameState(mirror.state, new Map([['tls/b', '2']])),
        10_000,
        'watch events over TLS',
      );
    } finally {
      await mirror.stop();
    }
    assert.equal(b.status().connected, true);
  });

  void it('a client certificate signed by another CA is refused', async (t) => {
    const other = await createCA('clustermesh-test-other-ca');
    const cert = await issueCert(other, { commonName: 'intruder', clientAuth: true });
    const msg = await expectRefused(
      { ca: fixtureTls().ca, cert: Buffer.from(cert.cert), key: Buffer.from(cert.key) },
      /bad certificate.*server rejected the client certificate/,
    );
    t.diagnostic(`wrong-CA client cert: ${msg}`);
  });

  void it('a client without a certificate is refused', async (t) => {
    const msg = await expectRefused(
      { ca: fixtureTls().ca },
      /server rejected the client certificate|certificate required/,
    );
    t.diagnostic(`no client cert: ${msg}`);
  });

  void it('a server certificate the client does not trust is refused', async (t) => {
    const other = await createCA('clustermesh-test-other-ca');
    const { cert, key } = fixtureTls();
    const msg = await expectRefused(
      { ca: Buffer.from(other.cert), cert, key },
      /unable to verify the first certificate.*server certificate is not trusted/,
    );
    t.diagnostic(`untrusted server cert: ${msg}`);
  });
});

// ---------------------------------------------------------------------------------------------

void describe('3-member etcd cluster losing its leader during writes', () => {
  let cluster: EtcdCluster;
  const backends = new Backends();
  before(async () => {
    cluster = await startEtcdCluster(3);
  });
  after(async () => {
    await backends.closeAll();
    await cluster.destroy();
  });

  void it('loses no acknowledged write; a watcher converges; the old leader rejoins', async (t) => {
    const all = { endpoints: cluster.endpoints, callTimeoutMs: 3_000 };
    const p = 'faults/leader/';
    const writerBackend = await backends.open(all);
    const watcherBackend = await backends.open(all);
    await writerBackend.put(`${p}seed`, 'seed');
    const mirror = new StreamMirror(watcherBackend, p);
    try {
      await mirror.waitFor(() => mirror.count('listDone') === 1, 10_000, 'listDone');

      // Each key is written once, with a unique value; `attempted` also holds the
      // writes whose answer never came (they may or may not have been applied).
      const attempted = new Map<string, string>([[`${p}seed`, 'seed']]);
      const acked = new Map<string, string>([[`${p}seed`, 'seed']]);
      const errorCodes = new Map<string, number>();
      let failedForGood = 0;
      let electedAt = Number.POSITIVE_INFINITY;
      let ackedAfterElection = 0;
      let stopWriters = false;
      const WRITERS = 4;
      const runWriter = async (w: number): Promise<void> => {
        for (let i = 0; !stopWriters; i++) {
          const k = `${p}w${w}/${String(i).padStart(5, '0')}`;
          const v = `w${w}-${i}-${Date.now()}`;
          attempted.set(k, v);
          let ok = false;
          let startedAt = 0;
          for (let attempt = 0; attempt < 5 && !ok; attempt++) {
            if (attempt > 0) await sleep(200);
            startedAt = Date.now();
            try {
              await writerBackend.put(k, v);
              ok = true;
            } catch (err) {
              const c = codeOf(err);
              errorCodes.set(c, (errorCodes.get(c) ?? 0) + 1);
            }
          }
          if (ok) {
            acked.set(k, v);
            if (startedAt > electedAt) ackedAfterElection++;
          } else failedForGood++;
        }
      };
      const started = Date.now();
      const writing = Promise.all(Array.from({ length: WRITERS }, (_, w) => runWriter(w)));

      await sleep(1_000);
      const leader = await cluster.leader();
      const killedAt = Date.now();
      await leader.kill();
      const survivors = cluster.members.filter((m) => m !== leader);
      const newLeader = await cluster.leader();
      electedAt = Date.now();
      const electionMs = electedAt - killedAt;
      assert.notEqual(newLeader, leader);
      // Writes issued after the election are acknowledged again.
      await until(() => ackedAfterElection >= 40, {
        timeoutMs: 10_000,
        intervalMs: 20,
        message: 'writes after the election',
      });
      stopWriters = true;
      await writing;
      const writingMs = Date.now() - started;
      assert.ok(acked.size > 100, `only ${acked.size} acknowledged writes`);

      // Every acknowledged write is on the survivors, with the acknowledged value.
      const survivor = await backends.open({
        endpoints: survivors.map((m) => m.clientUrl),
        callTimeoutMs: 3_000,
      });
      const final = await snapshot(survivor, p);
      const lost = [...acked].filter(([k, v]) => final.get(k) !== v);
      assert.deepEqual(lost, [], `${lost.length} acknowledged writes lost or changed`);
      // Unacknowledged writes may have been applied (the answer was lost), nothing else exists.
      const unexpected = [...final].filter(([k, v]) => attempted.get(k) !== v);
      assert.deepEqual(unexpected, [], 'keys nobody wrote');

      await mirror.waitFor(() => sameState(mirror.state, final), 15_000, 'watcher convergence');
      assert.deepEqual(sorted(mirror.state), sorted(final));

      // The old leader comes back with its data and catches up; every member serves reads.
      await leader.start();
      for (const m of cluster.members) {
        const one = await backends.open({ endpoints: [m.clientUrl], callTimeoutMs: 3_000 });
        await eventually(async () => {
          assert.deepEqual(sorted(await snapshot(one, p)), sorted(final), m.name);
        }, 10_000);
      }
      const statuses = await Promise.all(cluster.members.map((m: EtcdMember) => m.status()));
      assert.equal(new Set(statuses.map((s) => s.leader)).size, 1, 'all members agree on a leader');
      t.diagnostic(
        `leader ${leader.name} killed: writers ran ${writingMs}ms, acked=${acked.size} ` +
          `(${ackedAfterElection} issued after the election, which took ${electionMs}ms), ` +
          `failed attempts=${JSON.stringify(Object.fromEntries(errorCodes))}, ` +
          `failed-for-good=${failedForGood}, unacked-but-present=${final.size - acked.size}`,
      );
    } finally {
      await mirror.stop();
    }
  });
});

// ---------------------------------------------------------------------------------------------

void describe('frozen (SIGSTOPped) etcd', () => {
  let etcd: EtcdServer;
  const backends = new Backends();
  before(async () => {
    etcd = await startEtcd();
  });
  after(async () => {
    await backends.closeAll();
    await etcd.destroy();
  });

  void it('calls fail within the call timeout and work again after SIGCONT', async () => {
    const b = await backends.open({ endpoints: etcd.endpoints, callTimeoutMs: 2_000 });
    await b.put('frozen/a', '1');
    const pid = etcd.pid;
    assert.ok(pid !== undefined, 'pid !== undefined');
    process.kill(pid, 'SIGSTOP');
    try {
      for (const call of [() => b.get('frozen/a'), () => b.put('frozen/a', '2')]) {
        const start = Date.now();
        const err = await call().then(
          () => assert.fail('a frozen etcd answered'),
          (e: unknown) => e,
        );
        const ms = Date.now() - start;
        assert.ok(
          isClusterMeshError(err, ErrorCode.KvstoreUnreachable),
          `${codeOf(err)}: ${String(err)}`,
        );
        assert.match(
          err.message,
          new RegExp(`^etcd at ${etcd.clientUrl.replace(/\./g, '\\.')} unreachable: .*DEADLINE`),
        );
        assert.ok(ms >= 1_900 && ms < 3_000, `failed after ${ms}ms`);
        assert.equal(b.status().connected, false);
      }
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    const start = Date.now();
    assert.equal((await b.get('frozen/a'))?.value, '1');
    assert.ok(Date.now() - start < 2_000, 'Date.now() - start < 2_000');
    assert.equal(b.status().connected, true);
  });
});

// ---------------------------------------------------------------------------------------------

void describe('a remote cluster whose etcd stalls (SIGSTOP, SIGCONT), default timing', () => {
  let etcd: EtcdServer;
  let dir: string;
  let mesh: ClusterMesh;
  before(async () => {
    etcd = await startEtcd();
    dir = await mkdtemp(join(tmpdir(), 'clustermesh-config-'));
    const w = new EtcdBackend({ endpoints: etcd.endpoints, callTimeoutMs: 2_000 });
    try {
      await seedRemoteCluster(w, 'c2', 2, { nodes: ['n1'] });
    } finally {
      await w.close();
    }
    await etcd.writeClientConfig(join(dir, 'c2'));
    // The production defaults: what the agent does without flags.
    mesh = new ClusterMesh({
      local: { name: 'c1', id: 1, maxConnectedClusters: 255 },
      configDir: dir,
      newLogic: (name) => new NodesRemoteCluster(name),
      rescanIntervalMs: 200,
    });
    await mesh.start();
  });
  after(async () => {
    const pid = etcd.pid;
    if (pid !== undefined) process.kill(pid, 'SIGCONT');
    await mesh.stop();
    await etcd.destroy();
    await rm(dir, { recursive: true, force: true });
  });

  const status = (): RemoteClusterStatus => {
    const s = mesh.status().clusters.find((c) => c.name === 'c2');
    assert.ok(s, 's');
    return s;
  };

  void it('rides out a 3 s stall; a held stop is not ready within 5 s; ready again after SIGCONT', async () => {
    await eventually(() => {
      assert.equal(status().ready, true, JSON.stringify(status()));
    }, 15_000);
    const pid = etcd.pid;
    assert.ok(pid !== undefined, 'pid !== undefined');
    const notReady: number[] = [];
    const sampler = setInterval(() => {
      if (!status().ready) notReady.push(Date.now());
    }, 50);
    try {
      process.kill(pid, 'SIGSTOP');
      await sleep(3_000);
      process.kill(pid, 'SIGCONT');
      await sleep(2_000);
      assert.deepEqual(notReady, [], 'no false not-ready during a 3 s stall');

      const stopped = Date.now();
      process.kill(pid, 'SIGSTOP');
      await until(() => !status().ready, { timeoutMs: 10_000 });
      const ms = Date.now() - stopped;
      assert.ok(ms <= 5_000, `not ready after ${ms} ms`);
      assert.match(status().status, /not responding/);
      assert.equal(status()['num-nodes'], 1, 'entries are kept');

      process.kill(pid, 'SIGCONT');
      const resumed = Date.now();
      await until(() => status().ready, { timeoutMs: 10_000 });
      assert.ok(Date.now() - resumed < 2_000, `ready ${Date.now() - resumed} ms after SIGCONT`);
    } finally {
      clearInterval(sampler);
      process.kill(pid, 'SIGCONT');
    }
  });
});

// ---------------------------------------------------------------------------------------------

void describe('lease keepalive across a short etcd restart', () => {
  let etcd: EtcdServer;
  let admin: Etcd3;
  const backends = new Backends();
  before(async () => {
    etcd = await startEtcd();
    admin = etcd.createClient();
  });
  after(async () => {
    await backends.closeAll();
    admin.close();
    await etcd.destroy();
  });

  void it('leased keys outlive the TTL after the restart while a released lease expires', async (t) => {
    const TTL = 5;
    const p = 'faults/lease/';
    const owner = await backends.open({
      endpoints: etcd.endpoints,
      leaseTtlSeconds: TTL,
      callTimeoutMs: 2_000,
    });
    const lostKeys: string[] = [];
    owner.onLeaseLost((keys) => lostKeys.push(...keys));
    for (let i = 0; i < 5; i++) await owner.put(`${p}${i}`, `v${i}`, { lease: true });
    const lease = (await owner.get(`${p}0`))?.lease;
    assert.ok(lease !== undefined, 'lease !== undefined');
    // A control key whose keepalive stops: it shows the wait below outlasts the TTL.
    const control = await backends.open({ endpoints: etcd.endpoints, leaseTtlSeconds: TTL });
    await control.put(`${p}control`, 'c', { lease: true });
    await control.close();

    await etcd.kill();
    await sleep(2_000); // down for less than the TTL
    await etcd.start();
    const restartedAt = Date.now();

    // etcd grants every lease a fresh TTL when it restarts, so the control key expires
    // about TTL seconds later; only a resumed keepalive keeps the owner's keys.
    await eventually(async () => {
      assert.equal(await owner.get(`${p}control`), undefined);
    }, 15_000);
    const sinceRestart = Date.now() - restartedAt;
    assert.ok(sinceRestart >= TTL * 1000 - 500, `control expired after ${sinceRestart}ms`);
    await sleep(1_000);

    const { kvs } = await owner.list(p);
    assert.deepEqual(
      kvs.map((kv) => [kv.key, kv.value, kv.lease]),
      Array.from({ length: 5 }, (_, i) => [`${p}${i}`, `v${i}`, lease]),
    );
    const ttl = await admin.leaseClient.leaseTimeToLive({ ID: lease });
    assert.equal(Number(ttl.grantedTTL), TTL);
    // Keepalives run every TTL/3, so the remaining TTL stays close to the full TTL.
    assert.ok(Number(ttl.TTL) >= TTL - 3, `remaining TTL ${ttl.TTL}`);
    assert.deepEqual(lostKeys, []);
    assert.equal(owner.status().leases, 1);
    assert.equal(owner.status().connected, true);
    t.diagnostic(
      `control expired ${sinceRestart}ms after restart; owner lease ${lease} remaining TTL ${ttl.TTL}s`,
    );
  });
});
