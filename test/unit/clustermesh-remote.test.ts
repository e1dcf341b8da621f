/**
 * The remote-cluster machinery end to end on in-memory kvstores: config directory
 * → ClusterMesh → RemoteCluster → business logic, with fault injection through
 * MemoryStore (unavailable, wiped) and the `memory://<store>` endpoint of the
 * default backend factory.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, describe, it } from 'node:test';
import {
  ClusterMesh,
  type ClusterMeshMetrics,
  type RemoteClusterFreshnessSample,
} from '../../src/clustermesh/clustermesh.js';
import type { RemoteClusterTiming } from '../../src/clustermesh/remote-cluster.js';
import type { RemoteClusterStatus } from '../../src/clustermesh/status.js';
import { FastRemoteTiming, NodesRemoteCluster, seedRemoteCluster } from '../support/clustermesh.js';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import type { MemoryStore } from '../../src/kvstore/memory-store.js';
import { HeartbeatPath, encodeHeartbeat } from '../../src/keyspace/index.js';
import { eventually } from '../support/eventually.js';
import type { RemoteBackendFactory } from '../../src/clustermesh/backend-factory.js';
import type { KeyValue } from '../../src/kvstore/backend.js';

/** A remote kvstore that can stall like a SIGSTOPped etcd: reads wait until it resumes. */
class StallableBackend extends MemoryBackend {
  private resume: Promise<void> | undefined;
  private release: (() => void) | undefined;

  stall(): void {
    this.resume ??= new Promise<void>((resolve) => {
      this.release = resolve;
    });
  }

  unstall(): void {
    this.release?.();
    this.resume = undefined;
    this.release = undefined;
  }

  override async get(key: string): Promise<KeyValue | undefined> {
    if (this.resume !== undefined) await this.resume;
    return super.get(key);
  }
}

const WAIT_MS = 5_000;

interface HarnessOptions {
  readonly localName?: string;
  readonly localId?: number;
  readonly timing?: Partial<RemoteClusterTiming>;
  readonly drainDelayMs?: number;
  readonly metrics?: ClusterMeshMetrics;
  readonly backendFactory?: RemoteBackendFactory;
}

/** A ClusterMesh on a temp config dir whose remotes are named in-memory stores. */
class Harness {
  readonly logics = new Map<string, NodesRemoteCluster[]>();
  readonly backends: MemoryBackend[] = [];
  readonly stores: MemoryStore[] = [];
  readonly removed: string[] = [];
  mesh!: ClusterMesh;
  private readonly prefix = `cm-${randomBytes(4).toString('hex')}`;

  constructor(
    readonly dir: string,
    private readonly opts: HarnessOptions,
  ) {}

  static async start(opts: HarnessOptions = {}): Promise<Harness> {
    const dir = await mkdtemp(join(tmpdir(), 'clustermesh-config-'));
    const h = new Harness(dir, opts);
    h.mesh = new ClusterMesh({
      local: {
        name: opts.localName ?? 'local',
        id: opts.localId ?? 1,
        maxConnectedClusters: 255,
      },
      configDir: dir,
      newLogic: (name) => {
        const logic = new NodesRemoteCluster(name, { drainDelayMs: opts.drainDelayMs });
        h.logics.set(name, [...(h.logics.get(name) ?? []), logic]);
        return logic;
      },
      timing: { ...FastRemoteTiming, ...opts.timing },
      rescanIntervalMs: 100,
      numGlobalServices: () => 0,
      metrics: opts.metrics,
      backendFactory: opts.backendFactory,
      onClusterRemoved: (name) => h.removed.push(name),
    });
    await h.mesh.start();
    return h;
  }

  store(storeName: string): MemoryStore {
    const s = sharedMemoryStore(`${this.prefix}-${storeName}`);
    if (!this.stores.includes(s)) this.stores.push(s);
    return s;
  }

  /** A client of the remote store, for seeding it like its apiserver would. */
  writer(storeName: string): MemoryBackend {
    const b = new MemoryBackend(this.store(storeName));
    this.backends.push(b);
    return b;
  }

  async writeConfig(name: string, storeName = name): Promise<void> {
    this.store(storeName);
    await writeFile(join(this.dir, name), `endpoints:\n- memory://${this.prefix}-${storeName}\n`);
  }

  logic(name: string): NodesRemoteCluster {
    const l = this.logics.get(name)?.at(-1);
    assert.ok(l, `no logic for ${name}`);
    return l;
  }

  status(name: string): RemoteClusterStatus {
    const s = this.mesh.status().clusters.find((c) => c.name === name);
    assert.ok(s, `no status for ${name}`);
    return s;
  }

  async waitReady(name: string): Promise<RemoteClusterStatus> {
    await eventually(() => {
      assert.equal(this.status(name).ready, true, JSON.stringify(this.status(name)));
    }, WAIT_MS);
    return this.status(name);
  }

  async close(): Promise<void> {
    await this.mesh.stop();
    for (const b of this.backends) await b.close();
    for (const s of this.stores) s.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}

const harnesses: Harness[] = [];
async function harness(opts: HarnessOptions = {}): Promise<Harness> {
  const h = await Harness.start(opts);
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

describe('ClusterMesh with in-memory remotes', () => {
  it('picks up added, changed and removed config files without restart', async () => {
    const h = await harness();
    assert.deepEqual(h.mesh.status().clusters, []);

    await seedRemoteCluster(h.writer('a'), 'c2', 2, { nodes: ['n1', 'n2'] });
    await h.writeConfig('c2', 'a');
    let s = await h.waitReady('c2');
    assert.equal(s['num-nodes'], 2);
    assert.equal(s.connected, true);
    assert.match(s.status, /^memory: 1\/1 connected/);
    assert.deepEqual(s.config, {
      required: true,
      retrieved: true,
      'cluster-id': 2,
      kvstoremesh: false,
      'sync-canaries': false,
    });
    assert.equal(h.mesh.idsManager.idOf('c2'), 2);
    // The `status -o json` shape of DESIGN §5 (last-failure appears after a failure), plus
    // freshness, which only the daemons' own APIs carry.
    assert.deepEqual(Object.keys(s).sort(), [
      'config',
      'connected',
      'freshness',
      'name',
      'num-endpoints',
      'num-failures',
      'num-identities',
      'num-nodes',
      'num-shared-services',
      'ready',
      'status',
      'synced',
    ]);
    assert.deepEqual(s.synced, { nodes: true, endpoints: true, identities: true, services: true });
    assert.equal(h.mesh.status()['num-global-services'], 0);

    // The file now points at another kvstore holding the same cluster (same ID):
    // reconnect, re-list (n1 vanished, n3 appeared), no drain.
    await seedRemoteCluster(h.writer('b'), 'c2', 2, { nodes: ['n2', 'n3'] });
    await h.writeConfig('c2', 'b');
    await eventually(() => {
      assert.deepEqual([...h.logic('c2').nodes.values()].map(([k]) => k).sort(), ['n2', 'n3']);
    }, WAIT_MS);
    s = await h.waitReady('c2');
    assert.equal(h.logic('c2').runs, 2);
    assert.equal(h.logic('c2').drains, 0);
    assert.equal(s['num-failures'], 0, 'a config change is not a failure');
    assert.equal(h.logics.get('c2')?.length, 1, 'same controller, same logic');

    await unlink(join(h.dir, 'c2'));
    await eventually(() => {
      assert.deepEqual(h.removed, ['c2']);
    }, WAIT_MS);
    assert.deepEqual(h.mesh.status().clusters, []);
    assert.deepEqual(h.logic('c2').events, ['run:2', 'run:2', 'drain', 'drained']);
    assert.equal(h.logic('c2').nodes.numEntries, 0);
    assert.equal(h.mesh.idsManager.idOf('c2'), undefined, 'cluster ID released');
  });

  it('ignores garbage files, directories and ..data symlinks; other clusters undisturbed', async () => {
    const h = await harness();
    await seedRemoteCluster(h.writer('c2'), 'c2', 2, { nodes: ['n1'] });
    await h.writeConfig('c2');
    await h.waitReady('c2');

    await writeFile(join(h.dir, 'c3'), 'not an etcd config\n');
    await writeFile(join(h.dir, 'c2.etcd-client.crt'), '-----BEGIN CERTIFICATE-----\n');
    await mkdir(join(h.dir, '..2024_01_01_00_00_00.000'));
    await writeFile(join(h.dir, '..2024_01_01_00_00_00.000', 'c4'), 'endpoints:\n- memory://x\n');
    await symlink('..2024_01_01_00_00_00.000', join(h.dir, '..data'));
    await mkdir(join(h.dir, 'c5'));
    await h.mesh.rescan();
    await delay(300);

    assert.deepEqual(
      h.mesh.status().clusters.map((c) => c.name),
      ['c2'],
    );
    const s = h.status('c2');
    assert.equal(s.ready, true);
    assert.equal(s['num-failures'], 0);
    assert.equal(h.logic('c2').runs, 1);
    assert.equal(h.mesh.status()['ignored-configs'], undefined, 'non-configs are not reported');
  });

  it('ignores config files with invalid cluster names and the local cluster', async () => {
    const h = await harness({ localName: 'local' });
    await writeFile(join(h.dir, 'Bad_Name'), 'endpoints:\n- memory://x\n');
    await writeFile(join(h.dir, 'local'), 'endpoints:\n- memory://y\n');
    await seedRemoteCluster(h.writer('c2'), 'c2', 2);
    await h.writeConfig('c2');
    await h.waitReady('c2');
    const status = h.mesh.status();
    assert.deepEqual(
      status.clusters.map((c) => c.name),
      ['c2'],
    );
    assert.deepEqual(status['ignored-configs'], [
      {
        name: 'Bad_Name',
        reason:
          "invalid cluster name: must consist of lower case alphanumeric characters and '-', and must start and end with an alphanumeric character",
      },
    ]);
    await unlink(join(h.dir, 'Bad_Name'));
    await h.mesh.rescan();
    assert.equal(h.mesh.status()['ignored-configs'], undefined);
  });

  it('refuses a second cluster with an already used cluster ID until it changes', async () => {
    const h = await harness();
    await seedRemoteCluster(h.writer('c2'), 'c2', 5);
    await h.writeConfig('c2');
    await h.waitReady('c2');

    const c3 = h.writer('c3');
    await seedRemoteCluster(c3, 'c3', 5);
    await h.writeConfig('c3');
    await eventually(() => {
      const s = h.status('c3');
      assert.equal(s.ready, false);
      assert.equal(s.connected, false);
      assert.equal(s.status, 'clusterID 5 is already used');
      assert.ok(s['num-failures'] >= 2, `failures ${s['num-failures']}`);
      assert.ok(s['last-failure'] !== undefined, "s['last-failure'] !== undefined");
    }, WAIT_MS);
    assert.equal(h.logic('c3').runs, 0);
    assert.equal(h.status('c2').ready, true, 'the first holder is undisturbed');
    assert.equal(h.mesh.idsManager.holderOf(5), 'c2');

    // Fixed remotely: the retried attempt re-reads the config.
    await seedRemoteCluster(c3, 'c3', 6);
    const s = await h.waitReady('c3');
    assert.equal(s.config?.['cluster-id'], 6);
    assert.equal(h.mesh.idsManager.holderOf(6), 'c3');
  });

  it('refuses a remote claiming the local cluster ID', async () => {
    const h = await harness({ localId: 7 });
    await seedRemoteCluster(h.writer('c2'), 'c2', 7);
    await h.writeConfig('c2');
    await eventually(() => {
      const s = h.status('c2');
      assert.equal(s.status, 'clusterID 7 is assigned to the local cluster');
      assert.ok(s['num-failures'] >= 1, "s['num-failures'] >= 1");
      assert.equal(s.ready, false);
    }, WAIT_MS);
  });

  it('refuses an out-of-range cluster ID from the remote config', async () => {
    const h = await harness();
    await seedRemoteCluster(h.writer('c2'), 'c2', 300);
    await h.writeConfig('c2');
    await eventually(() => {
      assert.equal(h.status('c2').status, 'ClusterID > 255 is not supported');
    }, WAIT_MS);
  });

  it('reports a missing cluster config as the reference does and recovers once it appears', async () => {
    const h = await harness();
    const w = h.writer('c2');
    await w.put(HeartbeatPath, encodeHeartbeat());
    await h.writeConfig('c2');
    await eventually(() => {
      const s = h.status('c2');
      // Connected, with the kvstore's status, and the config required but not retrieved:
      // what cilium-cli reports as "remote cluster configuration required but not found".
      assert.equal(s.ready, false);
      assert.equal(s.connected, true);
      assert.match(s.status, /^memory: 1\/1 connected/);
      assert.deepEqual(s.config, {
        required: true,
        retrieved: false,
        'cluster-id': 0,
        kvstoremesh: false,
        'sync-canaries': false,
      });
      assert.ok(s['num-failures'] >= 1, 'the deadline passed at least once');
    }, WAIT_MS);
    await seedRemoteCluster(w, 'c2', 2);
    await h.waitReady('c2');
  });

  it('drains before re-running when the remote comes back with another cluster ID', async () => {
    const h = await harness();
    const store = h.store('c2');
    const w = h.writer('c2');
    await seedRemoteCluster(w, 'c2', 5, { nodes: ['n1'] });
    await h.writeConfig('c2');
    await h.waitReady('c2');
    assert.equal(h.status('c2')['num-nodes'], 1);

    // The remote etcd is replaced (new etcd cluster ID) and repopulated with another ID.
    store.wipe();
    const w2 = h.writer('c2');
    await seedRemoteCluster(w2, 'c2', 8, { nodes: ['m1', 'm2'] });
    await eventually(() => {
      const s = h.status('c2');
      assert.equal(s.config?.['cluster-id'], 8);
      assert.equal(s.ready, true);
      assert.equal(s['num-nodes'], 2);
    }, WAIT_MS);
    assert.deepEqual(h.logic('c2').events, ['run:5', 'drain', 'drained', 'run:8']);
    assert.equal(h.mesh.idsManager.holderOf(5), undefined);
    assert.equal(h.mesh.idsManager.idOf('c2'), 8);
    assert.ok(h.status('c2')['num-failures'] >= 1, 'the cluster-ID change was a failure');
  });

  it('counts a disconnect as a failure, keeps state and reconnects without drain', async () => {
    const h = await harness();
    const store = h.store('c2');
    await seedRemoteCluster(h.writer('c2'), 'c2', 2, { nodes: ['n1', 'n2'] });
    await h.writeConfig('c2');
    await h.waitReady('c2');

    store.setAvailable(false);
    await eventually(() => {
      const s = h.status('c2');
      assert.equal(s.connected, false);
      assert.equal(s.ready, false);
      assert.ok(s['num-failures'] >= 1, "s['num-failures'] >= 1");
      assert.match(s.status, /unavailable/);
    }, WAIT_MS);
    assert.equal(h.status('c2')['num-nodes'], 2, 'entries are kept while disconnected');
    assert.equal(h.logic('c2').nodes.get('n1') !== undefined, true);

    store.setAvailable(true);
    const s = await h.waitReady('c2');
    assert.equal(s['num-nodes'], 2);
    assert.equal(h.logic('c2').drains, 0);
    assert.ok(h.logic('c2').runs >= 2, "h.logic('c2').runs >= 2");
  });

  it('health check: rides out a short stall, not ready during a long one, ready on the first answer', async () => {
    let stallable: StallableBackend | undefined;
    const h = await harness({
      // Status checks slow enough that only the health check acts within this test.
      timing: {
        callTimeoutMs: 10_000,
        statusCheckIntervalMs: 10_000,
        healthCheckIntervalMs: 50,
        healthCheckTimeoutMs: 100,
        healthCheckFailAfterMs: 500,
      },
      backendFactory: () => {
        // Called only once the config file below exists, after `h` is assigned.
        stallable = new StallableBackend(h.store('c2'));
        return Promise.resolve(stallable);
      },
    });
    await seedRemoteCluster(h.writer('c2'), 'c2', 2, { nodes: ['n1'] });
    await h.writeConfig('c2');
    await h.waitReady('c2');
    const b = stallable;
    assert.ok(b !== undefined, 'b !== undefined');
    const readiness: boolean[] = [];
    const sampler = setInterval(() => readiness.push(h.status('c2').ready), 10);
    try {
      // A stall shorter than the window minus one interval: never not ready.
      b.stall();
      await delay(300);
      b.unstall();
      await delay(200);
      assert.ok(!readiness.includes(false), 'no false alarm during a short stall');

      // Held: not ready within the window (plus a little scheduling slack).
      readiness.length = 0;
      const t0 = Date.now();
      b.stall();
      await eventually(() => {
        assert.equal(h.status('c2').ready, false);
      }, WAIT_MS);
      const ms = Date.now() - t0;
      assert.ok(ms >= 400 && ms < 1000, `not ready after ${ms} ms`);
      const s = h.status('c2');
      assert.equal(s.connected, false);
      assert.match(s.status, /not responding/);
      assert.equal(s['num-nodes'], 1, 'state is kept');

      // The first answer makes it ready again, on the same connection.
      const failures = s['num-failures'];
      b.unstall();
      await h.waitReady('c2');
      assert.equal(h.status('c2')['num-failures'], failures);
      assert.equal(h.logic('c2').drains, 0);
    } finally {
      clearInterval(sampler);
      b.unstall();
    }
  });

  it('fails the connection when the remote heartbeat goes stale', async () => {
    const h = await harness({ timing: { heartbeatIntervalMs: 100 } });
    const w = h.writer('c2');
    await seedRemoteCluster(w, 'c2', 2);
    await h.writeConfig('c2');
    // Seen at connect, then never updated: stale after 2 × 100 ms.
    await eventually(() => {
      const s = h.status('c2');
      assert.ok(s['num-failures'] >= 1, "s['num-failures'] >= 1");
      assert.match(s.status, /heartbeat/);
    }, WAIT_MS);

    const ac = new AbortController();
    const writer = (async () => {
      while (!ac.signal.aborted) {
        await w.put(HeartbeatPath, encodeHeartbeat());
        await delay(30);
      }
    })();
    try {
      await h.waitReady('c2');
      const failures = h.status('c2')['num-failures'];
      await delay(600);
      assert.equal(h.status('c2')['num-failures'], failures, 'no failure while heartbeats flow');
      assert.equal(h.status('c2').ready, true);
      assert.equal(h.logic('c2').drains, 0);
    } finally {
      ac.abort();
      await writer;
    }
  });

  it('replays an add that arrives while the same cluster is still being removed', async () => {
    const h = await harness({ drainDelayMs: 400 });
    await seedRemoteCluster(h.writer('c2'), 'c2', 2, { nodes: ['n1'] });
    await h.writeConfig('c2');
    await h.waitReady('c2');
    const first = h.logic('c2');

    await unlink(join(h.dir, 'c2'));
    await eventually(() => {
      assert.deepEqual(first.events, ['run:2', 'drain']);
    }, WAIT_MS);
    await h.writeConfig('c2');
    await h.mesh.rescan();
    assert.equal(h.logics.get('c2')?.length, 1, 'not re-created during the drain');

    await eventually(() => {
      assert.equal(h.logics.get('c2')?.length, 2);
    }, WAIT_MS);
    assert.deepEqual(first.events, ['run:2', 'drain', 'drained']);
    const s = await h.waitReady('c2');
    assert.equal(s['num-nodes'], 1);
    assert.equal(h.mesh.idsManager.idOf('c2'), 2);
  });

  it('exports the remote-cluster metrics', async () => {
    const calls: string[] = [];
    const metrics: ClusterMeshMetrics = {
      remoteClusters: (n) => calls.push(`clusters=${n}`),
      remoteClusterFailures: (c, n) => calls.push(`${c} failures=${n}`),
      remoteClusterLastFailureTs: (c, ts) => calls.push(`${c} last=${ts > 0 ? 'set' : 0}`),
      remoteClusterReadiness: (c, r) => calls.push(`${c} ready=${r}`),
      remoteClusterNodes: (c, n) => calls.push(`${c} nodes=${n}`),
      remoteClusterFreshness: (c, f) =>
        calls.push(`${c} heartbeat-age=${f.heartbeatAgeSeconds === undefined ? 'none' : 'set'}`),
      remoteClusterRemoved: (c) => calls.push(`${c} removed`),
    };
    const h = await harness({ metrics });
    const store = h.store('c2');
    await seedRemoteCluster(h.writer('c2'), 'c2', 2, { nodes: ['n1'] });
    await h.writeConfig('c2');
    await h.waitReady('c2');
    calls.length = 0;
    h.mesh.updateMetrics();
    assert.deepEqual(calls, [
      'clusters=1',
      'c2 failures=0',
      'c2 last=0',
      'c2 ready=true',
      'c2 nodes=1',
      // Only the listing has read the heartbeat so far: no sample yet.
      'c2 heartbeat-age=none',
    ]);

    store.setAvailable(false);
    await eventually(() => {
      assert.ok(calls.includes('c2 failures=1'), calls.join('; '));
      assert.ok(calls.includes('c2 last=set'), "calls.includes('c2 last=set')");
      assert.ok(calls.includes('c2 ready=false'), "calls.includes('c2 ready=false')");
    }, WAIT_MS);
    store.setAvailable(true);
    await h.waitReady('c2');

    await unlink(join(h.dir, 'c2'));
    await eventually(() => {
      assert.ok(calls.includes('c2 removed'), "calls.includes('c2 removed')");
    }, WAIT_MS);
    assert.ok(calls.includes('clusters=0'), "calls.includes('clusters=0')");
  });

  it('reports freshness: heartbeats and changes received after the listing, and the delay', async () => {
    const samples: RemoteClusterFreshnessSample[] = [];
    const metrics: ClusterMeshMetrics = {
      remoteClusters: () => undefined,
      remoteClusterFailures: () => undefined,
      remoteClusterLastFailureTs: () => undefined,
      remoteClusterReadiness: () => undefined,
      remoteClusterNodes: () => undefined,
      remoteClusterFreshness: (_c, f) => samples.push(f),
      remoteClusterRemoved: () => undefined,
    };
    const h = await harness({ metrics });
    const w = h.writer('c2');
    await seedRemoteCluster(w, 'c2', 2, { nodes: ['n1'] });
    await h.writeConfig('c2');
    const connected = Date.now();
    await h.waitReady('c2');
    // The listed heartbeat and node may be old: they set nothing.
    assert.deepEqual(h.status('c2').freshness, {});

    // A heartbeat written 3 s ago (seconds truncated, as Go's RFC 3339 writes it).
    await w.put(HeartbeatPath, encodeHeartbeat(new Date(Date.now() - 3_000)));
    const f = await eventually(() => {
      const fr = h.status('c2').freshness;
      assert.ok(fr?.['last-heartbeat'] !== undefined, JSON.stringify(fr));
      return fr;
    }, WAIT_MS);
    const delay = f['propagation-delay-ms'] ?? -1;
    assert.ok(delay >= 3_000 && delay < 4_500, `delay ${delay}`);
    assert.ok(Date.parse(f['last-heartbeat'] ?? '') >= connected, 'received after connecting');
    assert.equal(f['last-event'], undefined);

    await w.put('cilium/state/nodes/v1/c2/n2', JSON.stringify({ Name: 'n2', Cluster: 'c2' }));
    await eventually(() => {
      const fr = h.status('c2').freshness;
      assert.ok(fr?.['last-event'] !== undefined, JSON.stringify(fr));
    }, WAIT_MS);

    samples.length = 0;
    h.mesh.updateMetrics();
    const m = samples.at(-1);
    assert.ok(m !== undefined, 'a freshness sample');
    assert.ok((m.heartbeatAgeSeconds ?? -1) >= 0 && (m.heartbeatAgeSeconds ?? 99) < 5, 'age');
    assert.ok((m.lastEventAgeSeconds ?? -1) >= 0 && (m.lastEventAgeSeconds ?? 99) < 5, 'age');
    assert.equal(m.propagationDelaySeconds, delay / 1000);

    // A malformed heartbeat still counts as one, without a delay.
    await w.put(HeartbeatPath, 'not a time');
    await eventually(() => {
      const fr = h.status('c2').freshness;
      assert.equal(fr?.['propagation-delay-ms'], undefined, JSON.stringify(fr));
    }, WAIT_MS);
  });

  it('stops without draining and leaves no timers or watchers behind', async () => {
    const baseline = activeHandles();
    const dir = await mkdtemp(join(tmpdir(), 'clustermesh-config-'));
    const name = `cm-stop-${randomBytes(4).toString('hex')}`;
    const store = sharedMemoryStore(name);
    const w = new MemoryBackend(store);
    await seedRemoteCluster(w, 'c2', 2, { nodes: ['n1'] });
    await seedRemoteCluster(w, 'c3', 3);
    await writeFile(join(dir, 'c2'), `endpoints:\n- memory://${name}\n`);
    await writeFile(join(dir, 'c3'), `endpoints:\n- memory://${name}-missing\n`);
    const logics: NodesRemoteCluster[] = [];
    const mesh = new ClusterMesh({
      local: { name: 'local', id: 1, maxConnectedClusters: 255 },
      configDir: dir,
      newLogic: (n) => {
        const l = new NodesRemoteCluster(n);
        logics.push(l);
        return l;
      },
      timing: FastRemoteTiming,
      rescanIntervalMs: 50,
    });
    await mesh.start();
    await eventually(() => {
      assert.equal(mesh.cluster('c2')?.ready, true);
      assert.ok((mesh.cluster('c3')?.failures ?? 0) >= 1, 'c3 is in back-off');
    }, WAIT_MS);
    await mesh.stop();
    assert.deepEqual(
      logics.map((l) => l.drains),
      [0, 0],
    );
    assert.equal(logics[0]?.nodes.numEntries, 1, 'state kept on stop');
    await w.close();
    store.close();
    sharedMemoryStore(`${name}-missing`).close();
    await rm(dir, { recursive: true, force: true });
    await eventually(() => {
      assert.deepEqual(activeHandles(), baseline);
    }, 2_000);
  });
});

/** Counts of ref'ed timers and fs watchers (what would keep the process alive). */
function activeHandles(): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const r of process.getActiveResourcesInfo()) {
    if (r === 'Timeout' || r === 'FSEventWrap') counts[r] = (counts[r] ?? 0) + 1;
  }
  return counts;
}
