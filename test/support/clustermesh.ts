/**
 * Test helpers for code built on the remote-cluster machinery: a minimal business
 * logic (one WatchStore on the remote's nodes) and a seeder for what a remote
 * clustermesh-apiserver would write. Used by unit and integration tests.
 */
import type { Backend } from '../../src/kvstore/backend.js';
import {
  HeartbeatPath,
  clusterConfigKey,
  encodeClusterConfig,
  encodeHeartbeat,
  makeClusterConfig,
  nodeKey,
  nodesClusterPrefix,
  type CiliumClusterConfig,
  type ClusterConfigCapabilities,
} from '../../src/keyspace/index.js';
import { sleep } from '../../src/lib/abort.js';
import { WatchStore } from '../../src/store/watchstore.js';
import { newWatchStoreManager } from '../../src/store/watchstoremgr.js';
import type {
  RemoteClusterLogic,
  RemoteClusterTiming,
} from '../../src/clustermesh/remote-cluster.js';
import type { RemoteLogicStatus } from '../../src/clustermesh/status.js';

export interface NodesLogicOptions {
  /** Makes drain() slow, to observe removal tombstones. */
  readonly drainDelayMs?: number | undefined;
}

/**
 * Watches `cilium/state/nodes/v1/<cluster>/` into a WatchStore (values kept as raw
 * strings) and records its lifecycle in `events` (`run:<clusterID>`, `drain`,
 * `drained`). The other synced flags are always true.
 */
export class NodesRemoteCluster implements RemoteClusterLogic {
  readonly events: string[] = [];
  readonly nodes: WatchStore<string>;
  runs = 0;
  drains = 0;

  constructor(
    readonly clusterName: string,
    private readonly opts: NodesLogicOptions = {},
  ) {
    this.nodes = new WatchStore<string>({
      clusterName,
      decode: (_name, value) => value,
      observer: { onUpdate: () => undefined, onDelete: () => undefined },
    });
  }

  async run(
    backend: Backend,
    config: CiliumClusterConfig,
    ready: () => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.runs++;
    this.events.push(`run:${config.id}`);
    const mgr = newWatchStoreManager(backend, this.clusterName, config.capabilities.syncedCanaries);
    const prefix = nodesClusterPrefix(this.clusterName);
    mgr.register(prefix, (s) => this.nodes.watch(backend, prefix, s));
    ready();
    await mgr.run(signal);
  }

  async drain(): Promise<void> {
    this.drains++;
    this.events.push('drain');
    if (this.opts.drainDelayMs !== undefined) await sleep(this.opts.drainDelayMs);
    this.nodes.drain();
    this.events.push('drained');
  }

  status(): RemoteLogicStatus {
    return {
      numNodes: this.nodes.numEntries,
      numEndpoints: 0,
      numIdentities: 0,
      numSharedServices: 0,
      synced: { nodes: this.nodes.synced, endpoints: true, identities: true, services: true },
    };
  }
}

/** Writes what a remote apiserver would: cluster config, heartbeat, and the given nodes. */
export async function seedRemoteCluster(
  backend: Backend,
  name: string,
  id: number,
  opts: {
    readonly nodes?: readonly string[];
    readonly heartbeat?: boolean;
    readonly capabilities?: Partial<ClusterConfigCapabilities>;
  } = {},
): Promise<void> {
  await backend.put(
    clusterConfigKey(name),
    encodeClusterConfig(makeClusterConfig(id, { maxConnectedClusters: 255, ...opts.capabilities })),
  );
  if (opts.heartbeat !== false) await backend.put(HeartbeatPath, encodeHeartbeat());
  for (const node of opts.nodes ?? []) {
    await backend.put(nodeKey(name, node), JSON.stringify({ Name: node, Cluster: name }));
  }
}

/** Remote-cluster delays small enough for unit tests on in-memory kvstores. */
export const FastRemoteTiming: Partial<RemoteClusterTiming> = {
  retryBaseMs: 20,
  connectTimeoutMs: 500,
  callTimeoutMs: 500,
  heartbeatIntervalMs: 60_000,
  statusCheckIntervalMs: 50,
  statusCheckFailingIntervalMs: 20,
  maxConsecutiveStatusErrors: 2,
  configTimeoutMs: 500,
  configRetryBaseMs: 20,
  configRetryMaxMs: 50,
  configDeadlineMs: 300,
};

/** Remote-cluster delays for integration tests, whose remotes are real etcd processes. */
export const EtcdRemoteTiming: Partial<RemoteClusterTiming> = {
  retryBaseMs: 100,
  connectTimeoutMs: 2_000,
  callTimeoutMs: 1_000,
  statusCheckIntervalMs: 200,
  statusCheckFailingIntervalMs: 100,
  configRetryBaseMs: 100,
  configRetryMaxMs: 200,
};
