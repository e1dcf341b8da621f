import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import type { RemoteBackendFactory } from './backend-factory.js';
import { ConfigDirWatcher } from './config-dir.js';
import { freshnessAges } from './freshness.js';
import { ClusterIdsManager } from './idsmgr.js';
import {
  RemoteCluster,
  type LocalClusterInfo,
  type RemoteClusterLogic,
  type RemoteClusterTiming,
} from './remote-cluster.js';
import type { ClusterMeshStatus, RemoteClusterStatus } from './status.js';

/**
 * Hooks for the reference's ClusterMesh metrics. The daemon binds them to prom-client
 * gauges with its own name prefix (`cilium_clustermesh_…`, `cilium_kvstoremesh_…`)
 * and fixed labels; `cluster` is the `target_cluster` label.
 */
export interface ClusterMeshMetrics {
  /** `remote_clusters`. */
  remoteClusters(n: number): void;
  /** `remote_cluster_failures`. */
  remoteClusterFailures(cluster: string, failures: number): void;
  /** `remote_cluster_last_failure_ts` (unix seconds). */
  remoteClusterLastFailureTs(cluster: string, unixSeconds: number): void;
  /** `remote_cluster_readiness_status`. */
  remoteClusterReadiness(cluster: string, ready: boolean): void;
  /** `remote_cluster_nodes`. */
  remoteClusterNodes(cluster: string, nodes: number): void;
  /**
   * Not in the reference (see freshness.ts): `remote_cluster_heartbeat_age_seconds`,
   * `remote_cluster_last_event_age_seconds`, `remote_cluster_propagation_delay_seconds`;
   * undefined: nothing received yet, so no sample.
   */
  remoteClusterFreshness(cluster: string, f: RemoteClusterFreshnessSample): void;
  /** The cluster's configuration was removed: drop its label values. */
  remoteClusterRemoved(cluster: string): void;
}

export interface RemoteClusterFreshnessSample {
  readonly heartbeatAgeSeconds: number | undefined;
  readonly lastEventAgeSeconds: number | undefined;
  readonly propagationDelaySeconds: number | undefined;
}

export interface ClusterMeshOptions {
  readonly local: LocalClusterInfo;
  /** `--clustermesh-config`. */
  readonly configDir: string;
  /** The component's business logic for one remote cluster; called once per added cluster. */
  readonly newLogic: (clusterName: string) => RemoteClusterLogic;
  readonly backendFactory?: RemoteBackendFactory | undefined;
  /** Shared with other users of cluster IDs, if any; default: a private one. */
  readonly idsManager?: ClusterIdsManager | undefined;
  readonly timing?: Partial<RemoteClusterTiming> | undefined;
  /** Config directory rescan period (default 2 s). */
  readonly rescanIntervalMs?: number | undefined;
  /** Supplies `num-global-services` (agent); omitted from status without it. */
  readonly numGlobalServices?: (() => number) | undefined;
  readonly metrics?: ClusterMeshMetrics | undefined;
  /** Called once a removed cluster has been drained (wait helpers count it as done). */
  readonly onClusterRemoved?: ((name: string) => void) | undefined;
  readonly log?: Logger | undefined;
}

/**
 * The remote-cluster manager shared by agent, KVStoreMesh and operator: follows the
 * configuration directory and runs one RemoteCluster per configured cluster.
 */
export class ClusterMesh {
  /** Reference rule: the subsystem is off without a local cluster ID or a config dir. */
  static enabled(localClusterId: number, configDir: string | undefined): boolean {
    return localClusterId !== 0 && configDir !== undefined && configDir !== '';
  }

  readonly idsManager: ClusterIdsManager;
  private readonly remotes = new Map<string, RemoteCluster>();
  /** Tombstones: removals in progress (drain can be slow). */
  private readonly removing = new Map<string, Promise<void>>();
  /** Adds received while the same name was being removed, replayed afterwards. */
  private readonly queuedAdds = new Map<string, string>();
  private readonly watcher: ConfigDirWatcher;
  private readonly log: Logger;
  private started = false;
  private stopped = false;
  private stopping: Promise<void> | undefined;

  constructor(private readonly opts: ClusterMeshOptions) {
    this.log = (opts.log ?? silentLogger).child({ subsys: 'clustermesh' });
    this.idsManager = opts.idsManager ?? new ClusterIdsManager(opts.local.id);
    this.watcher = new ConfigDirWatcher({
      dir: opts.configDir,
      localClusterName: opts.local.name,
      rescanIntervalMs: opts.rescanIntervalMs,
      log: this.log,
      handler: {
        add: (name, path) => {
          this.add(name, path);
        },
        remove: (name) => {
          this.remove(name);
        },
      },
    });
  }

  /**
   * Reads the config directory (clusters present now are created before this
   * resolves, not yet connected) and follows it until `stop()` or `signal` aborts.
   */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.started || signal?.aborted === true) return;
    this.started = true;
    signal?.addEventListener('abort', () => void this.stop(), { once: true });
    this.log.info({ configDir: this.opts.configDir }, 'starting clustermesh');
    await this.watcher.start();
    this.opts.metrics?.remoteClusters(this.remotes.size);
  }

  /** Stops watching and disconnects every cluster without draining; waits for removals in flight. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.stopped = true;
      await this.watcher.stop();
      const all = [...this.remotes.values()];
      this.remotes.clear();
      this.queuedAdds.clear();
      await Promise.all(all.map((rc) => rc.stop()));
      await Promise.all([...this.removing.values()]);
      this.log.info('clustermesh stopped');
    })();
    return this.stopping;
  }

  /** The remote clusters currently configured, sorted by name. */
  clusters(): RemoteCluster[] {
    return [...this.remotes.values()].sort((a, b) => compareNames(a.name, b.name));
  }

  cluster(name: string): RemoteCluster | undefined {
    return this.remotes.get(name);
  }

  /** Forces a rescan of the configuration directory (tests, SIGHUP). */
  rescan(): Promise<void> {
    return this.watcher.rescan();
  }

  status(): ClusterMeshStatus {
    const clusters: RemoteClusterStatus[] = this.clusters().map((rc) => rc.status());
    const ignored = this.watcher.invalidConfigs();
    return {
      clusters,
      ...(this.opts.numGlobalServices === undefined
        ? {}
        : { 'num-global-services': this.opts.numGlobalServices() }),
      ...(ignored.length === 0 ? {} : { 'ignored-configs': ignored }),
    };
  }

  /** Re-exports every metric (call before a scrape: readiness follows the logic's sync state). */
  updateMetrics(): void {
    const m = this.opts.metrics;
    if (m === undefined) return;
    m.remoteClusters(this.remotes.size);
    for (const name of this.remotes.keys()) this.exportCluster(name);
  }

  private exportCluster(name: string): void {
    const m = this.opts.metrics;
    const rc = this.remotes.get(name);
    if (m === undefined || rc === undefined) return;
    const s = rc.status();
    m.remoteClusterFailures(name, s['num-failures']);
    m.remoteClusterLastFailureTs(
      name,
      rc.lastFailure === undefined ? 0 : Math.floor(rc.lastFailure.getTime() / 1000),
    );
    m.remoteClusterReadiness(name, s.ready);
    m.remoteClusterNodes(name, s['num-nodes']);
    m.remoteClusterFreshness(name, freshnessAges(s.freshness ?? {}, Date.now()));
  }

  private add(name: string, path: string): void {
    if (this.stopped) return;
    if (this.removing.has(name)) {
      this.log.info({ cluster: name }, 'remote cluster is being removed; re-adding it afterwards');
      this.queuedAdds.set(name, path);
      return;
    }
    const existing = this.remotes.get(name);
    if (existing !== undefined) {
      this.log.info({ cluster: name }, 'remote cluster configuration changed, reconnecting');
      existing.updateConfig(path);
      return;
    }
    const rc = new RemoteCluster({
      name,
      configPath: path,
      local: this.opts.local,
      logic: this.opts.newLogic(name),
      idsManager: this.idsManager,
      backendFactory: this.opts.backendFactory,
      timing: this.opts.timing,
      onChange: (n) => {
        this.exportCluster(n);
      },
      log: this.log,
    });
    this.remotes.set(name, rc);
    this.log.info({ cluster: name, path }, 'remote cluster added');
    rc.start();
    this.opts.metrics?.remoteClusters(this.remotes.size);
  }

  private remove(name: string): void {
    this.queuedAdds.delete(name);
    const rc = this.remotes.get(name);
    if (rc === undefined) return;
    this.remotes.delete(name);
    this.opts.metrics?.remoteClusters(this.remotes.size);
    const done = rc
      .remove()
      .catch((err: unknown) => {
        this.log.error({ cluster: name, err: errorMessage(err) }, 'removing remote cluster failed');
      })
      .finally(() => {
        this.removing.delete(name);
        this.opts.metrics?.remoteClusterRemoved(name);
        this.opts.onClusterRemoved?.(name);
        const queued = this.queuedAdds.get(name);
        this.queuedAdds.delete(name);
        if (queued !== undefined) this.add(name, queued);
      });
    this.removing.set(name, done);
  }
}

/** Byte-wise order, like Go's sort.Strings (the reference sorts clusters by name). */
function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
