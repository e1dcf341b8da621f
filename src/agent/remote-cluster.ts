import type { Logger } from 'pino';
import type { Backend, ListAndWatchOptions, WatchEvent } from '../kvstore/backend.js';
import {
  decodeClusterService,
  decodeIdentity,
  decodeIPIdentityPair,
  decodeNode,
  ipIdentityPairKeyName,
  remoteClusterLayout,
  remoteIPCacheIdentity,
  validateRemoteIPCacheIdentity,
  validateRemoteIdentity,
  type CiliumClusterConfig,
  type ClusterService,
  type GlobalIdentity,
  type IPIdentityPair,
  type MaxConnectedClusters,
  type Node,
} from '../keyspace/index.js';
import {
  WatchStore,
  type WatchStoreMetrics,
  type WatchStoreObserver,
} from '../store/watchstore.js';
import { newWatchStoreManager } from '../store/watchstoremgr.js';
import type { RemoteClusterLogic } from '../clustermesh/remote-cluster.js';
import type { RemoteLogicStatus } from '../clustermesh/status.js';
import { hostCidr, type IPCacheEntry } from '../ipcache/ipcache.js';
import type { KvstoreMetrics } from '../metrics/kvstore.js';
import { withListAndWatch } from './faults.js';
import type { AgentViews } from './views.js';

export interface RemoteCounts extends RemoteLogicStatus {
  /** Entries rejected by the validators (anti-spoofing, malformed). */
  readonly rejected: number;
}

export type RemoteResource = 'nodes' | 'endpoints' | 'identities' | 'services';
export const REMOTE_RESOURCES: readonly RemoteResource[] = [
  'nodes',
  'endpoints',
  'identities',
  'services',
];

/**
 * What the agent holds of one remote resource, for troubleshooting: the watched prefix,
 * the full kvstore keys of its entries, and how long its last initial listing took.
 */
export interface RemoteResourceView {
  readonly prefix: string;
  readonly keys: readonly string[];
  readonly synced: boolean;
  /** From the start of the connection's watches until this resource's listing ended. */
  readonly syncDurationMs?: number | undefined;
  /** When that listing ended (RFC 3339). */
  readonly syncedAt?: string | undefined;
  /** The last upsert or delete of this resource from the remote (RFC 3339). */
  readonly lastEventAt?: string | undefined;
}

/** Counts rejected entries per remote cluster and kind (a metric and the status). */
export type RejectHook = (
  cluster: string,
  kind: 'nodes' | 'endpoints' | 'identities' | 'services',
) => void;

/**
 * The agent's business logic for one remote cluster: four WatchStores (nodes,
 * ipcache, identities, services) whose decoders apply the anti-spoofing
 * validators bound to the remote's name (= config file name) and its reserved
 * cluster ID, feeding the agent's merged views.
 */
export class AgentRemoteCluster implements RemoteClusterLogic {
  private readonly nodes: WatchStore<Node>;
  private readonly endpoints: WatchStore<IPCacheEntry>;
  private readonly identities: WatchStore<GlobalIdentity>;
  private readonly services: WatchStore<ClusterService>;
  private clusterId = 0;
  private readonly hostIPs = new Map<string, string>();
  private readonly prefixes = new Map<RemoteResource, string>();
  private runStartedAt = 0;
  private readonly syncedAt = new Map<RemoteResource, number>();
  /** Per resource: when its last event arrived (how fresh each part of the view is). */
  private readonly lastEventAt = new Map<RemoteResource, number>();
  /**
   * Fault injection (local mesh): watch events are dropped while set, as a lost event
   * would be, so the agent's view diverges from the remote until the next listing.
   */
  dropEvents = false;

  constructor(
    private readonly name: string,
    private readonly local: {
      readonly id: number;
      readonly maxConnectedClusters: MaxConnectedClusters;
    },
    private readonly views: AgentViews,
    private readonly log: Logger,
    private readonly metrics?: KvstoreMetrics,
    private readonly onReject?: RejectHook,
  ) {
    const common = { clusterName: name, log, stopOnClusterChange: true };
    this.nodes = new WatchStore<Node>({
      ...common,
      // Keys below the watched `<prefix>/<cluster>/` are names; decoders expect `<cluster>/<name>`.
      decode: (key, value) =>
        decodeNode(`${name}/${key}`, value, {
          localClusterId: local.id,
          maxConnectedClusters: local.maxConnectedClusters,
          expectedCluster: name,
          expectedClusterId: this.clusterId,
        }),
      observer: this.touching('nodes', this.nodeObserver()),
      metrics: this.hooks('nodes'),
    });
    // The store keeps the ipcache entry itself (one object per remote endpoint).
    this.endpoints = new WatchStore<IPCacheEntry>({
      ...common,
      decode: (key, value) => {
        const pair = decodeIPIdentityPair(key, value);
        validateRemoteIPCacheIdentity(pair.ID, {
          clusterId: this.clusterId,
          maxConnectedClusters: local.maxConnectedClusters,
        });
        return {
          cidr: cidrOf(pair),
          identity: remoteIPCacheIdentity(pair.ID),
          // Thousands of endpoints share a few node IPs: keep one copy of each.
          hostIP: this.intern(pair.HostIP),
          encryptKey: pair.Key,
          cluster: name,
          k8sNamespace: pair.K8sNamespace,
          k8sPodName: pair.K8sPodName,
          source: 'clustermesh',
        };
      },
      observer: this.touching('endpoints', {
        onUpdate: (_key, entry) => {
          this.views.ipcache.upsert(entry);
        },
        onDelete: (_key, entry) => {
          this.views.ipcache.delete('clustermesh', name, entry.cidr);
        },
      }),
      metrics: this.hooks('endpoints'),
    });
    this.identities = new WatchStore<GlobalIdentity>({
      ...common,
      decode: (key, value) => {
        const identity = decodeIdentity(key, value);
        validateRemoteIdentity('upsert', identity, {
          clusterName: name,
          clusterId: this.clusterId,
          maxConnectedClusters: local.maxConnectedClusters,
        });
        return identity;
      },
      observer: this.touching('identities', {
        onUpdate: (_key, identity) => {
          this.views.identities.upsert(identity.id, identity.labels, name);
        },
        onDelete: (_key, identity) => {
          this.views.identities.delete(identity.id);
        },
      }),
      metrics: this.hooks('identities'),
    });
    this.services = new WatchStore<ClusterService>({
      ...common,
      decode: (key, value) =>
        decodeClusterService(`${name}/${key}`, value, {
          localClusterId: local.id,
          maxConnectedClusters: local.maxConnectedClusters,
          expectedCluster: name,
          expectedClusterId: this.clusterId,
        }),
      observer: this.touching('services', {
        onUpdate: (_key, svc) => {
          this.views.services.upsertRemote(svc);
        },
        onDelete: (_key, svc) => {
          this.views.services.deleteRemote(name, svc.namespace, svc.name);
        },
      }),
      metrics: this.hooks('services'),
    });
  }

  private touching<T>(kind: RemoteResource, inner: WatchStoreObserver<T>): WatchStoreObserver<T> {
    return {
      onUpdate: (key, value) => {
        this.lastEventAt.set(kind, Date.now());
        inner.onUpdate(key, value);
      },
      onDelete: (key, value) => {
        this.lastEventAt.set(kind, Date.now());
        inner.onDelete(key, value);
      },
    };
  }

  private hooks(kind: 'nodes' | 'endpoints' | 'identities' | 'services'): WatchStoreMetrics {
    const resource = kind === 'endpoints' ? 'ip' : kind;
    const watch = this.metrics?.watchStore(`cilium/state/${resource}/v1`, this.name);
    return {
      invalid: () => this.onReject?.(this.name, kind),
      synced: (s) => {
        if (s) this.syncedAt.set(kind, Date.now());
        watch?.synced?.(s);
      },
    };
  }

  private intern(s: string): string {
    const known = this.hostIPs.get(s);
    if (known !== undefined) return known;
    // Bounded by the remote's node count; a hostile remote could grow it, so cap it.
    if (this.hostIPs.size < 65_536) this.hostIPs.set(s, s);
    return s;
  }

  private nodeObserver(): WatchStoreObserver<Node> {
    return {
      onUpdate: (_key, node) => {
        this.views.nodes.upsert({ ...node, Source: 'clustermesh' });
      },
      onDelete: (_key, node) => {
        this.views.nodes.delete(node.Cluster, node.Name);
      },
    };
  }

  /** One connection's worth of watching; returns when `signal` aborts. */
  async run(
    backend: Backend,
    config: CiliumClusterConfig,
    ready: () => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.clusterId = config.id;
    const cached = config.capabilities.cached;
    const layout = remoteClusterLayout(this.name, cached);
    this.runStartedAt = Date.now();
    this.syncedAt.clear();
    this.prefixes.set('nodes', layout.nodes.watchPrefix);
    this.prefixes.set('services', layout.services.watchPrefix);
    this.prefixes.set('endpoints', layout.ip.watchPrefix);
    this.prefixes.set('identities', `${layout.identities.watchPrefix}/id`);
    const watched = this.droppable(backend);
    const mgr = newWatchStoreManager(
      backend,
      this.name,
      config.capabilities.syncedCanaries,
      this.log,
    );
    const watch =
      <T>(store: WatchStore<T>, prefix: string) =>
      (s: AbortSignal): Promise<void> =>
        store.watch(watched, prefix, s);
    mgr.register(layout.nodes.syncedKey, watch(this.nodes, layout.nodes.watchPrefix));
    mgr.register(layout.services.syncedKey, watch(this.services, layout.services.watchPrefix));
    mgr.register(layout.ip.syncedKey, watch(this.endpoints, layout.ip.watchPrefix));
    // Agents read only the master keys (`id/`) of the identities tree.
    mgr.register(
      layout.identities.syncedKey,
      watch(this.identities, `${layout.identities.watchPrefix}/id`),
    );
    ready();
    await mgr.run(signal);
  }

  /** The backend the watches use: the same one, its events dropped while `dropEvents` is set. */
  private droppable(backend: Backend): Backend {
    const listAndWatch = backend.listAndWatch.bind(backend);
    const dropping = (): boolean => this.dropEvents;
    async function* filter(events: AsyncIterable<WatchEvent>): AsyncGenerator<WatchEvent> {
      for await (const ev of events) {
        if (ev.kind !== 'listDone' && dropping()) continue;
        yield ev;
      }
    }
    return withListAndWatch(backend, (prefix, signal, opts?: ListAndWatchOptions) =>
      filter(listAndWatch(prefix, signal, opts)),
    );
  }

  /** Per resource: the keys held (full kvstore keys), sync state and initial-sync duration. */
  resources(): Record<RemoteResource, RemoteResourceView> {
    const stores: Record<RemoteResource, WatchStore<unknown>> = {
      nodes: this.nodes,
      endpoints: this.endpoints,
      identities: this.identities,
      services: this.services,
    };
    const out = {} as Record<RemoteResource, RemoteResourceView>;
    for (const r of REMOTE_RESOURCES) {
      const prefix = this.prefixes.get(r) ?? '';
      const store = stores[r];
      const at = this.syncedAt.get(r);
      const last = this.lastEventAt.get(r);
      out[r] = {
        prefix,
        keys: [...store.values()].map(([name]) => `${prefix}/${name}`).sort(),
        synced: store.synced,
        ...(at === undefined
          ? {}
          : { syncDurationMs: at - this.runStartedAt, syncedAt: new Date(at).toISOString() }),
        ...(last === undefined ? {} : { lastEventAt: new Date(last).toISOString() }),
      };
    }
    return out;
  }

  /** Forgets everything learnt from this cluster (config removed or cluster ID changed). */
  drain(): void {
    this.nodes.drain();
    this.endpoints.drain();
    this.identities.drain();
    this.services.drain();
  }

  status(): RemoteCounts {
    return {
      numNodes: this.nodes.numEntries,
      numEndpoints: this.endpoints.numEntries,
      numIdentities: this.identities.numEntries,
      // Every entry, shared or not, as the reference's `remoteServices.NumEntries()`.
      numSharedServices: this.services.numEntries,
      synced: {
        nodes: this.nodes.synced,
        endpoints: this.endpoints.synced,
        identities: this.identities.synced,
        services: this.services.synced,
      },
      rejected:
        this.nodes.invalidEntries +
        this.endpoints.invalidEntries +
        this.identities.invalidEntries +
        this.services.invalidEntries,
    };
  }
}

function cidrOf(pair: IPIdentityPair): string {
  const name = ipIdentityPairKeyName(pair);
  if (name.includes('/')) return name;
  return hostCidr(name);
}
