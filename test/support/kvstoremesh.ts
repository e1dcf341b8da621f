/**
 * Test fixtures for KVStoreMesh: what a remote clustermesh-apiserver writes (state
 * keys, cluster config, heartbeat, canaries), the cache key each state key must
 * land at, and a harness running KvstoreMesh on in-memory kvstores with remotes
 * that can be cut off and reconnected. Used by unit and integration tests.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from 'pino';
import {
  defaultRemoteBackendFactory,
  type RemoteBackendFactory,
} from '../../src/clustermesh/backend-factory.js';
import type { RemoteClusterStatus } from '../../src/clustermesh/status.js';
import type { Backend } from '../../src/kvstore/backend.js';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import type { MemoryStore } from '../../src/kvstore/memory-store.js';
import {
  HeartbeatPath,
  MeshResources,
  apiserverCanaryKey,
  clusterConfigKey,
  encodeClusterConfig,
  encodeHeartbeat,
  encodeSyncedCanary,
  makeClusterConfig,
  type MeshResource,
} from '../../src/keyspace/index.js';
import { ClusterMeshError, ErrorCode } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { KvstoreMesh, type KvstoreMeshOptions } from '../../src/kvstoremesh/module.js';
import { FastRemoteTiming } from './clustermesh.js';

/** What a remote apiserver of cluster `c` (ID `id`) writes: one entry of each kind. */
export function sampleRemoteState(c: string, id: number, n = 1): Map<string, string> {
  const ident = id * 65536 + 1;
  const m = new Map<string, string>();
  for (let i = 1; i <= n; i++) {
    m.set(
      `cilium/state/nodes/v1/${c}/node-${i}`,
      JSON.stringify({
        Name: `node-${i}`,
        Cluster: c,
        IPAddresses: [{ Type: 'InternalIP', IP: `10.${id}.${Math.floor(i / 250)}.${i % 250}` }],
        ClusterID: id,
        Source: 'custom-resource',
      }),
    );
  }
  m.set(
    `cilium/state/services/v1/${c}/default/rebel-base`,
    JSON.stringify({
      cluster: c,
      namespace: 'default',
      name: 'rebel-base',
      frontends: { '10.96.0.10': { '': { Protocol: 'TCP', Port: 80 } } },
      backends: { [`10.${id}.1.5`]: { '': { Protocol: 'TCP', Port: 80 } } },
      shared: true,
      clusterID: id,
    }),
  );
  m.set(
    `cilium/state/serviceexports/v1/${c}/default/rebel-base`,
    JSON.stringify({
      cluster: c,
      namespace: 'default',
      name: 'rebel-base',
      exportCreationTimestamp: '2024-01-01T00:00:00Z',
      ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
      type: 'ClusterSetIP',
      sessionAffinity: 'None',
    }),
  );
  const labels = `k8s:app=rebel-base;k8s:io.cilium.k8s.policy.cluster=${c};`;
  m.set(`cilium/state/identities/v1/id/${ident}`, labels);
  // Reference key of kvstore allocation mode: present in the remote, never mirrored.
  m.set(`cilium/state/identities/v1/value/${labels}/10.${id}.0.1`, String(ident));
  m.set(
    `cilium/state/ip/v1/default/10.${id}.1.5`,
    JSON.stringify({
      IP: `10.${id}.1.5`,
      Mask: null,
      HostIP: `10.${id}.0.1`,
      ID: ident,
      Key: 0,
      Metadata: '',
    }),
  );
  return m;
}

/**
 * Where KVStoreMesh must cache a state key of cluster `c`; `undefined` for
 * keys it does not mirror (the identities tree outside `id/`).
 */
export function cacheKeyOf(c: string, stateKey: string): string | undefined {
  // Nodes, services and service exports are cluster-scoped in the state already.
  const scoped = /^cilium\/state\/((?:nodes|services|serviceexports)\/v1\/.+)$/.exec(stateKey);
  if (scoped?.[1] !== undefined) return `cilium/cache/${scoped[1]}`;
  // Identities and ipcache are not: the cache adds the cluster.
  const ident = /^cilium\/state\/identities\/v1\/(.+)$/.exec(stateKey);
  if (ident?.[1] !== undefined) {
    return ident[1].startsWith('id/') ? `cilium/cache/identities/v1/${c}/${ident[1]}` : undefined;
  }
  const ip = /^cilium\/state\/ip\/v1\/default\/(.+)$/.exec(stateKey);
  if (ip?.[1] !== undefined) return `cilium/cache/ip/v1/${c}/${ip[1]}`;
  throw new Error(`not a mirrored state key: ${stateKey}`);
}

/** The cache contents expected for `state` (state key → value) of cluster `c`. */
export function expectedCache(c: string, state: ReadonlyMap<string, string>): Map<string, string> {
  return new Map(
    [...state].flatMap(([k, v]) => {
      const key = cacheKeyOf(c, k);
      return key === undefined ? [] : [[key, v] as const];
    }),
  );
}

export interface SeedOptions {
  /** Write the apiserver canaries after the data (default true). */
  readonly canaries?: boolean;
  readonly heartbeat?: boolean;
  readonly serviceExportsEnabled?: boolean | null;
  readonly syncedCanaries?: boolean;
}

/** Writes what a remote apiserver would: config, heartbeat, `state`, then its canaries. */
export async function seedRemoteState(
  backend: Backend,
  c: string,
  id: number,
  state: ReadonlyMap<string, string>,
  opts: SeedOptions = {},
): Promise<void> {
  await backend.put(
    clusterConfigKey(c),
    encodeClusterConfig(
      makeClusterConfig(id, {
        syncedCanaries: opts.syncedCanaries ?? true,
        maxConnectedClusters: 255,
        serviceExportsEnabled:
          opts.serviceExportsEnabled === undefined ? false : opts.serviceExportsEnabled,
      }),
    ),
  );
  if (opts.heartbeat !== false) await backend.put(HeartbeatPath, encodeHeartbeat());
  for (const [k, v] of state) await backend.put(k, v);
  if (opts.canaries !== false) await writeRemoteCanaries(backend, c);
}

export async function writeRemoteCanaries(
  backend: Backend,
  c: string,
  resources: readonly MeshResource[] = MeshResources,
): Promise<void> {
  for (const r of resources) await backend.put(apiserverCanaryKey(c, r), encodeSyncedCanary());
}

export interface RecordedEvent {
  readonly kind: 'upsert' | 'delete';
  readonly key: string;
  /** Date.now() when it was seen. */
  readonly at: number;
}

export interface LocalRecorder {
  readonly events: readonly RecordedEvent[];
  /** Resolves once the initial list is done: later writes are seen as events. */
  readonly listed: Promise<void>;
  stop(): Promise<void>;
}

export type HarnessOverrides = Partial<
  Omit<KvstoreMeshOptions, 'clustermeshConfig' | 'kvstore' | 'memoryStoreName'>
>;

/**
 * KvstoreMesh on in-memory kvstores: a local store (the cache) and one named store
 * per remote, reached through `memory://` endpoints in a temp config directory. A
 * remote can be cut off (its clients closed, new ones refused) and let back.
 */
export class KvstoreMeshHarness {
  km: KvstoreMesh | undefined;
  /** A client of the local store, for reading the cache. */
  readonly local: MemoryBackend;
  private readonly clients: MemoryBackend[] = [];
  private readonly stores = new Set<MemoryStore>();
  private readonly blocked = new Set<string>();
  private readonly connections = new Map<string, Backend[]>();
  private readonly prefix = `kvsm-${randomBytes(4).toString('hex')}`;

  private constructor(readonly dir: string) {
    this.local = this.client('local');
  }

  static async create(): Promise<KvstoreMeshHarness> {
    return new KvstoreMeshHarness(await mkdtemp(join(tmpdir(), 'kvstoremesh-config-')));
  }

  store(name: string): MemoryStore {
    const s = sharedMemoryStore(`${this.prefix}-${name}`);
    this.stores.add(s);
    return s;
  }

  /** A new client of the named store (closed by `close()`). */
  client(name: string): MemoryBackend {
    const b = new MemoryBackend(this.store(name));
    this.clients.push(b);
    return b;
  }

  /** Points remote `name` at store `storeName`; `extra` changes the file (forces a reconnect). */
  async configure(name: string, storeName = name, extra = ''): Promise<void> {
    this.store(storeName);
    await writeFile(
      join(this.dir, name),
      `endpoints:\n- memory://${this.prefix}-${storeName}\n${extra}`,
    );
  }

  async unconfigure(name: string): Promise<void> {
    await unlink(join(this.dir, name));
  }

  /** Cuts KVStoreMesh off remote `name`: live connections closed, new ones refused. */
  async cutOff(name: string): Promise<void> {
    this.blocked.add(name);
    for (const b of this.connections.get(name) ?? []) await b.close();
    this.connections.delete(name);
  }

  letBack(name: string): void {
    this.blocked.delete(name);
  }

  async start(overrides: HarnessOverrides = {}, log: Logger = silentLogger): Promise<KvstoreMesh> {
    const km = new KvstoreMesh({
      clusterName: 'local',
      clusterId: 1,
      maxConnectedClusters: 255,
      kvstore: { kind: 'memory', qps: 0, maxInflight: 0, listLimit: 256 },
      memoryStoreName: `${this.prefix}-local`,
      clustermeshConfig: this.dir,
      timing: FastRemoteTiming,
      rescanIntervalMs: 50,
      backendFactory: this.factory(),
      log,
      ...overrides,
    });
    this.km = km;
    await km.start();
    return km;
  }

  mesh(): KvstoreMesh {
    if (this.km === undefined) throw new Error('kvstoremesh not started');
    return this.km;
  }

  status(name: string): RemoteClusterStatus {
    const s = this.mesh()
      .status()
      .clusters.find((c) => c.name === name);
    if (s === undefined) throw new Error(`no status for ${name}`);
    return s;
  }

  /** Records every change under `prefix` of the local store from now on, in order, timed. */
  record(prefix = 'cilium/'): LocalRecorder {
    const ac = new AbortController();
    const events: RecordedEvent[] = [];
    let listed = false;
    let listedResolve: () => void = () => undefined;
    const listedPromise = new Promise<void>((resolve) => {
      listedResolve = resolve;
    });
    const done = (async () => {
      try {
        for await (const ev of this.local.listAndWatch(prefix, ac.signal)) {
          if (ev.kind === 'listDone') {
            listed = true;
            listedResolve();
          } else if (listed) {
            // What existed before is the starting point, not a change.
            events.push({ kind: ev.kind, key: ev.key, at: Date.now() });
          }
        }
      } catch {
        // The local client was closed: the recording ends with the test.
      } finally {
        listedResolve();
      }
    })();
    return {
      events,
      listed: listedPromise,
      stop: async () => {
        ac.abort();
        await done;
      },
    };
  }

  /** Local keys under `prefix` → values. */
  async snapshot(prefix = 'cilium/'): Promise<Map<string, string>> {
    const { kvs } = await this.local.list(prefix);
    return new Map(kvs.map((kv) => [kv.key, kv.value]));
  }

  async close(): Promise<void> {
    await this.km?.stop();
    for (const b of this.clients) await b.close();
    for (const s of this.stores) s.close();
    await rm(this.dir, { recursive: true, force: true });
  }

  private factory(): RemoteBackendFactory {
    return async (req) => {
      if (this.blocked.has(req.clusterName)) {
        throw new ClusterMeshError(ErrorCode.KvstoreUnreachable, 'cut off by the test');
      }
      const b = await defaultRemoteBackendFactory(req);
      const list = this.connections.get(req.clusterName) ?? [];
      list.push(b);
      this.connections.set(req.clusterName, list);
      return b;
    };
  }
}
