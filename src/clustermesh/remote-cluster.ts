import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import {
  HeartbeatPath,
  HeartbeatWriteIntervalMs,
  clusterConfigKey,
  decodeClusterConfig,
  validateRemoteClusterConfig,
  type CiliumClusterConfig,
  type MaxConnectedClusters,
} from '../keyspace/index.js';
import { aborted, bounded, isAborted, sleep } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage, toError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { defaultRemoteBackendFactory, type RemoteBackendFactory } from './backend-factory.js';
import { observeWatchEvents, RemoteFreshness } from './freshness.js';
import { readRemoteCertificates, type RemoteCertificate } from './remote-certs.js';
import type { ClusterIdsManager } from './idsmgr.js';
import {
  WaitingForConnection,
  type RemoteClusterConfigStatus,
  type RemoteClusterStatus,
  type RemoteLogicStatus,
} from './status.js';

/**
 * What a component (agent, KVStoreMesh, operator) does with one remote cluster. The
 * RemoteCluster controller owns connecting, validating and reconnecting; the logic
 * owns the data.
 */
export interface RemoteClusterLogic {
  /**
   * Runs once per connection: register the watches, call `ready()` once they are
   * registered, keep running until `signal` aborts (then return). Returning or
   * throwing earlier counts as a connection failure. Keep learnt state when it
   * ends: a reconnect re-lists and diffs (WatchStore), only `drain()` forgets.
   */
  run(
    backend: Backend,
    config: CiliumClusterConfig,
    ready: () => void,
    signal: AbortSignal,
  ): Promise<void>;
  /** Forgets everything learnt from this cluster (config removed, or its cluster ID changed). */
  drain(): void | Promise<void>;
  /** Counts and synced flags for status and readiness. */
  status(): RemoteLogicStatus;
  /**
   * A cache that copies the remote verbatim (KVStoreMesh): the remote's config is
   * neither validated against the local limits nor its cluster ID reserved, as the
   * reference's KVStoreMesh mirrors any remote; the agents reading the cache apply
   * those checks with their own configuration.
   */
  readonly mirrorsVerbatim?: boolean;
}

export interface LocalClusterInfo {
  readonly name: string;
  readonly id: number;
  readonly maxConnectedClusters: MaxConnectedClusters;
}

/** Every delay of the connection state machine; tests shrink them. */
export interface RemoteClusterTiming {
  /** Linear reconnect back-off unit: the n-th consecutive failure waits n × this. */
  readonly retryBaseMs: number;
  /** Deadline of the first call that proves the connection works. */
  readonly connectTimeoutMs: number;
  /** Deadline of each kvstore call of the default etcd client and of status checks. */
  readonly callTimeoutMs: number;
  /** Remote heartbeat write period; once seen, no update for 2× this is a failure. */
  readonly heartbeatIntervalMs: number;
  /** Status check period while healthy / after a failed check. */
  readonly statusCheckIntervalMs: number;
  readonly statusCheckFailingIntervalMs: number;
  /** Consecutive failed status checks that make the connection fail. */
  readonly maxConsecutiveStatusErrors: number;
  /**
   * Outage detection: a bounded read every `healthCheckIntervalMs`, each abandoned after
   * `healthCheckTimeoutMs`; once no read has succeeded for `healthCheckFailAfterMs` the
   * remote shows as not connected and not ready (its state is kept, the connection
   * too), and the first read that succeeds again makes it ready. The window must exceed
   * the longest stall to ride out plus one interval: a stall of 3 s starting just after
   * a read succeeded ends at most 3 s + interval after it. 0 disables the check.
   */
  readonly healthCheckIntervalMs: number;
  readonly healthCheckTimeoutMs: number;
  readonly healthCheckFailAfterMs: number;
  /** Cluster config retrieval: per-try deadline, linear retry unit and cap, overall deadline. */
  readonly configTimeoutMs: number;
  readonly configRetryBaseMs: number;
  readonly configRetryMaxMs: number;
  readonly configDeadlineMs: number;
}

export const DefaultRemoteClusterTiming: RemoteClusterTiming = {
  retryBaseMs: 1_000,
  connectTimeoutMs: 15_000,
  callTimeoutMs: 15_000,
  heartbeatIntervalMs: HeartbeatWriteIntervalMs,
  statusCheckIntervalMs: 30_000,
  statusCheckFailingIntervalMs: 5_000,
  maxConsecutiveStatusErrors: 2,
  healthCheckIntervalMs: 500,
  healthCheckTimeoutMs: 1_000,
  healthCheckFailAfterMs: 4_000,
  configTimeoutMs: 60_000,
  configRetryBaseMs: 1_000,
  configRetryMaxMs: 30_000,
  configDeadlineMs: 180_000,
};

export interface RemoteClusterOptions {
  readonly name: string;
  readonly configPath: string;
  readonly local: LocalClusterInfo;
  readonly logic: RemoteClusterLogic;
  readonly idsManager: ClusterIdsManager;
  readonly backendFactory?: RemoteBackendFactory | undefined;
  readonly timing?: Partial<RemoteClusterTiming> | undefined;
  /** Called after every state change worth re-exporting (metrics). */
  readonly onChange?: ((name: string) => void) | undefined;
  /** Clock of the freshness times (tests). */
  readonly now?: (() => number) | undefined;
  readonly log?: Logger | undefined;
}

interface AttemptResult {
  /** `ready()` was called: the back-off starts over. */
  readonly succeeded: boolean;
  readonly error: Error;
}

/**
 * One controller per remote cluster (reference `remote-etcd-<cluster>`):
 * connect → watchdog → retrieve and validate the cluster config → reserve the
 * cluster ID → run the business logic. Any failure tears the connection down and
 * reconnects with linear back-off, keeping what was learnt; only `remove()` and a
 * cluster-ID change drain.
 */
export class RemoteCluster {
  readonly name: string;
  private configPath: string;
  private readonly timing: RemoteClusterTiming;
  private readonly log: Logger;
  private readonly factory: RemoteBackendFactory;
  private readonly stopAc = new AbortController();
  private loopDone: Promise<void> | undefined;
  /** Aborts the current attempt or back-off wait (config change). */
  private current: AbortController | undefined;
  private restartPending = false;
  /** Set while a validated connection serves the logic. */
  private backend: Backend | undefined;
  /**
   * Set from the moment the remote kvstore answered until the connection is torn
   * down, also while its config is being retrieved: the reference then already
   * reports the cluster connected, with the kvstore's status.
   */
  private reachable: Backend | undefined;
  private configStatus: RemoteClusterConfigStatus | undefined;
  /** Why the cluster is not connected (shown as its status). */
  private problem: string | undefined;
  /** Set while the health check finds the remote kvstore unresponsive. */
  private unresponsive: Error | undefined;
  private failureCount = 0;
  private lastFailureAt: Date | undefined;
  /** The cluster ID this cluster holds in the IDs manager and the logic's state belongs to. */
  private knownId: number | undefined;
  /** Kept across reconnects: while cut off, the ages say how old the view is. */
  private readonly freshness: RemoteFreshness;
  /** What the config file's certificates are, as of the last connection attempt. */
  private certificates: readonly RemoteCertificate[] = [];

  constructor(private readonly opts: RemoteClusterOptions) {
    this.name = opts.name;
    this.configPath = opts.configPath;
    this.timing = { ...DefaultRemoteClusterTiming, ...opts.timing };
    this.log = (opts.log ?? silentLogger).child({ cluster: opts.name });
    this.factory = opts.backendFactory ?? defaultRemoteBackendFactory;
    this.freshness = new RemoteFreshness(opts.now);
  }

  /** Starts the connection controller (idempotent). */
  start(): void {
    if (this.loopDone !== undefined || this.stopAc.signal.aborted) return;
    this.loopDone = this.loop();
  }

  /** The config file changed: reconnect with it now (state kept; drained only if the ID changes). */
  updateConfig(path: string): void {
    this.configPath = path;
    this.restartPending = true;
    this.current?.abort(new ClusterMeshError(ErrorCode.Aborted, 'configuration changed'));
  }

  /** Disconnects without draining (process shutdown: state stays valid). */
  async stop(): Promise<void> {
    this.stopAc.abort(new ClusterMeshError(ErrorCode.Aborted, 'remote cluster stopped'));
    await this.loopDone;
  }

  /** Disconnects, forgets everything learnt and frees the cluster ID (config removed). */
  async remove(): Promise<void> {
    await this.stop();
    try {
      await this.opts.logic.drain();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'draining removed remote cluster failed');
    }
    this.opts.idsManager.release(this.name);
    this.knownId = undefined;
    this.log.info('remote cluster removed');
  }

  get connected(): boolean {
    return this.backend !== undefined;
  }

  get failures(): number {
    return this.failureCount;
  }

  get lastFailure(): Date | undefined {
    return this.lastFailureAt;
  }

  /** Connected, config retrieved, and every synced flag of the logic set. */
  get ready(): boolean {
    return this.readyWith(this.opts.logic.status());
  }

  status(): RemoteClusterStatus {
    const logic = this.opts.logic.status();
    const backend = this.backend;
    const s = logic.synced;
    return {
      name: this.name,
      connected: this.reachable !== undefined && this.unresponsive === undefined,
      ready: this.readyWith(logic),
      status:
        this.unresponsive?.message ??
        (backend ?? this.reachable)?.status().message ??
        this.problem ??
        WaitingForConnection,
      ...(this.configStatus === undefined ? {} : { config: this.configStatus }),
      'num-nodes': logic.numNodes,
      'num-endpoints': logic.numEndpoints,
      'num-identities': logic.numIdentities,
      'num-shared-services': logic.numSharedServices,
      ...(logic.numServiceExports === undefined
        ? {}
        : { 'num-service-exports': logic.numServiceExports }),
      'num-failures': this.failureCount,
      ...(this.lastFailureAt === undefined
        ? {}
        : { 'last-failure': this.lastFailureAt.toISOString() }),
      synced: {
        nodes: s.nodes,
        endpoints: s.endpoints,
        identities: s.identities,
        services: s.services,
        ...(s.serviceExports === undefined ? {} : { 'service-exports': s.serviceExports }),
      },
      freshness: this.freshness.status(),
      ...(this.certificates.length === 0 ? {} : { certificates: this.certificates }),
    };
  }

  private readyWith(logic: RemoteLogicStatus): boolean {
    const cfg = this.configStatus;
    const s = logic.synced;
    return (
      this.backend !== undefined &&
      this.unresponsive === undefined &&
      cfg !== undefined &&
      (!cfg.required || cfg.retrieved) &&
      s.nodes &&
      s.endpoints &&
      s.identities &&
      s.services &&
      s.serviceExports !== false
    );
  }

  private changed(): void {
    this.opts.onChange?.(this.name);
  }

  // ---- controller ----------------------------------------------------------

  private async loop(): Promise<void> {
    const stop = this.stopAc.signal;
    let consecutive = 0;
    while (!stop.aborted) {
      this.takeRestart();
      const ac = new AbortController();
      this.current = ac;
      const res = await this.attempt(AbortSignal.any([stop, ac.signal]), ac);
      if (isAborted(stop)) break;
      if (this.takeRestart()) {
        consecutive = 0;
        continue;
      }
      this.recordFailure(res.error);
      // At least one unit even after a success, so a remote that fails right after
      // becoming ready cannot make this loop spin.
      consecutive = res.succeeded ? 1 : consecutive + 1;
      const wait = new AbortController();
      this.current = wait;
      const delay = consecutive * this.timing.retryBaseMs;
      this.log.debug({ retryInMs: delay }, 'reconnecting to remote cluster after back-off');
      await sleep(delay, AbortSignal.any([stop, wait.signal])).catch(() => undefined);
    }
    this.current = undefined;
  }

  /** Clears the config-change flag; a method so the compiler does not narrow the field. */
  private takeRestart(): boolean {
    const pending = this.restartPending;
    this.restartPending = false;
    return pending;
  }

  private recordFailure(err: Error): void {
    this.failureCount++;
    this.lastFailureAt = new Date();
    this.problem = err.message;
    this.log.warn(
      { err: err.message, failures: this.failureCount },
      'remote cluster connection failed, reconnecting',
    );
    this.changed();
  }

  /** One connection, from creating the client to its teardown. Never throws. */
  private async attempt(signal: AbortSignal, ac: AbortController): Promise<AttemptResult> {
    const fail = (err: Error): void => {
      if (!ac.signal.aborted) ac.abort(err);
    };
    let backend: Backend | undefined;
    let stopWatchdog: (() => Promise<void>) | undefined;
    let run: Promise<void> | undefined;
    let succeeded = false;
    try {
      backend = await this.createBackend(signal);
      await bounded(
        backend.get(HeartbeatPath),
        signal,
        this.timing.connectTimeoutMs,
        'connecting to the remote kvstore',
      );
      this.log.info(
        { etcdClusterId: backend.status().clusterId },
        'connection to remote cluster established',
      );
      const onHealth = (err: Error | undefined): void => {
        if (signal.aborted) return;
        this.unresponsive = err;
        if (err !== undefined) {
          this.log.warn(
            { err: err.message, failAfterMs: this.timing.healthCheckFailAfterMs },
            'Remote kvstore not responding; remote cluster not ready',
          );
        } else {
          this.log.info('Remote kvstore responding again; remote cluster ready');
        }
        this.changed();
      };
      stopWatchdog = startWatchdog(backend, this.timing, signal, fail, this.log, onHealth, (v) => {
        this.freshness.heartbeat(v);
      });
      this.reachable = backend;

      this.configStatus = {
        required: true,
        retrieved: false,
        'cluster-id': 0,
        kvstoremesh: false,
        'sync-canaries': false,
      };
      const config = await this.retrieveConfig(backend, signal);
      const verbatim = this.opts.logic.mirrorsVerbatim === true;
      if (!verbatim) validateRemoteClusterConfig(config, this.opts.local);
      await this.adoptClusterId(config.id, !verbatim);
      this.configStatus = this.configStatusOf(config);
      this.problem = undefined;
      this.backend = backend;
      this.changed();

      const live = observeWatchEvents(backend, () => {
        this.freshness.event();
      });
      const ready = (): void => {
        if (succeeded || signal.aborted) return;
        succeeded = true;
        this.log.info({ clusterId: config.id }, 'remote cluster connected and watches registered');
        this.changed();
      };
      run = Promise.resolve()
        .then(() => this.opts.logic.run(live, config, ready, signal))
        .then(
          () => {
            if (signal.aborted) return;
            fail(new ClusterMeshError(ErrorCode.KvstoreOperation, 'remote cluster logic ended'));
          },
          (err: unknown) => {
            fail(toError(err));
          },
        );
      await aborted(signal);
    } catch (err) {
      // When aborted (stop, config change, watchdog), the abort reason already says why.
      if (!signal.aborted) fail(toError(err));
    } finally {
      this.backend = undefined;
      this.reachable = undefined;
      this.unresponsive = undefined;
      await stopWatchdog?.();
      await run;
      await backend?.close().catch(() => undefined);
      this.changed();
    }
    const reason: unknown = ac.signal.reason;
    return { succeeded, error: toError(reason ?? 'stopped') };
  }

  private async createBackend(signal: AbortSignal): Promise<Backend> {
    // Every attempt follows a config or certificate change: the expiry shown stays current.
    this.certificates = await readRemoteCertificates(this.configPath);
    const pending = this.factory({
      clusterName: this.name,
      configPath: this.configPath,
      callTimeoutMs: this.timing.callTimeoutMs,
      log: this.log,
    });
    try {
      return await bounded(pending, signal);
    } catch (err) {
      // Stopped while the factory ran: whatever it creates later must not leak.
      pending.then((b) => b.close()).catch(() => undefined);
      throw err;
    }
  }

  /** Reads `cilium/cluster-config/<name>`, retrying with linear back-off up to the deadline. */
  private async retrieveConfig(
    backend: Backend,
    signal: AbortSignal,
  ): Promise<CiliumClusterConfig> {
    const t = this.timing;
    const key = clusterConfigKey(this.name);
    const deadline = Date.now() + t.configDeadlineMs;
    for (let n = 1; ; n++) {
      let problem: string;
      try {
        const kv = await bounded(backend.get(key), signal, t.configTimeoutMs, `get ${key}`);
        if (kv !== undefined) return decodeClusterConfig(this.name, kv.value);
        problem =
          `cluster configuration expected to be present but not found at ${key}: ` +
          'check that the remote cluster name matches the file name and that its ' +
          'clustermesh-apiserver (or, with KVStoreMesh, the local cache) is running';
      } catch (err) {
        if (signal.aborted) throw err;
        problem = `unable to retrieve cluster configuration: ${errorMessage(err)}`;
      }
      // Visible in status while the attempt keeps retrying.
      this.problem = problem;
      this.changed();
      const delay = Math.min(n * t.configRetryBaseMs, t.configRetryMaxMs);
      if (Date.now() + delay > deadline) {
        throw new ClusterMeshError(ErrorCode.Timeout, problem);
      }
      this.log.debug({ problem, retryInMs: delay }, 'cluster configuration not available yet');
      await sleep(delay, signal);
    }
  }

  /**
   * A remote whose cluster ID changed was reset: its old entries must not mix with
   * the new ones, so everything is drained before the new ID is reserved.
   */
  private async adoptClusterId(id: number, reserve: boolean): Promise<void> {
    if (this.knownId !== undefined && this.knownId !== id) {
      this.log.warn(
        { previousClusterId: this.knownId, clusterId: id },
        'remote cluster ID changed, draining everything learnt under the previous ID',
      );
      await this.opts.logic.drain();
      this.opts.idsManager.release(this.name);
      this.knownId = undefined;
    }
    if (!reserve) {
      this.knownId = id;
      return;
    }
    try {
      this.opts.idsManager.reserve(this.name, id);
    } catch (err) {
      this.log.warn(
        { clusterId: id, heldBy: this.opts.idsManager.holderOf(id), err: errorMessage(err) },
        'cannot reserve the cluster ID of the remote cluster',
      );
      throw err;
    }
    this.knownId = id;
  }

  private configStatusOf(config: CiliumClusterConfig): RemoteClusterConfigStatus {
    const exports = config.capabilities.serviceExportsEnabled;
    return {
      required: true,
      retrieved: true,
      'cluster-id': config.id,
      kvstoremesh: config.capabilities.cached,
      'sync-canaries': config.capabilities.syncedCanaries,
      // Every component reports it since 1.17; absent = the remote does not support exports.
      ...(exports === null ? {} : { 'service-exports-enabled': exports }),
    };
  }
}

/**
 * The connection watchdog (reference: status-check errors, cluster-ID interceptor,
 * stale heartbeat). Calls `fail` at most once per trigger; returns its stop function.
 */
function startWatchdog(
  backend: Backend,
  t: RemoteClusterTiming,
  attempt: AbortSignal,
  fail: (err: Error) => void,
  log: Logger,
  onHealth: (err: Error | undefined) => void,
  onHeartbeat: (value: string) => void,
): () => Promise<void> {
  const ac = new AbortController();
  const signal = AbortSignal.any([attempt, ac.signal]);

  // Cluster-ID changes and lost quorum are pushed by the backend.
  const unsubscribe = backend.onStatusError((err) => {
    fail(err);
  });

  // Heartbeat: only a heartbeat once seen can go stale (remotes may not write one).
  const staleMs = 2 * t.heartbeatIntervalMs;
  let heartbeatTimer: NodeJS.Timeout | undefined;
  const heartbeatSeen = (): void => {
    if (signal.aborted) return;
    clearTimeout(heartbeatTimer);
    heartbeatTimer = setTimeout(() => {
      fail(
        new ClusterMeshError(
          ErrorCode.KvstoreUnreachable,
          `remote heartbeat ${HeartbeatPath} not updated for more than ${formatMs(staleMs)}`,
        ),
      );
    }, staleMs);
  };
  const heartbeatWatch = (async () => {
    try {
      // The listed value may have been written a minute ago: receiving it now says
      // nothing about when the writer last wrote, nor about the delay.
      let listed = false;
      for await (const ev of backend.listAndWatch(HeartbeatPath, signal)) {
        if (ev.kind === 'listDone') listed = true;
        if (ev.kind === 'upsert' && ev.key === HeartbeatPath) {
          heartbeatSeen();
          if (listed) onHeartbeat(ev.value);
        }
      }
    } catch (err) {
      if (!signal.aborted) log.debug({ err: errorMessage(err) }, 'heartbeat watch ended');
    }
  })();

  // Status checks: a connection that stopped answering is a failure.
  let probeTimer: NodeJS.Timeout | undefined;
  let errors = 0;
  const probe = async (): Promise<void> => {
    try {
      await bounded(backend.get(HeartbeatPath), signal, t.callTimeoutMs, 'status check');
      errors = 0;
    } catch (err) {
      if (signal.aborted) return;
      errors++;
      log.debug({ err: errorMessage(err), errors }, 'remote kvstore status check failed');
      if (errors >= t.maxConsecutiveStatusErrors) {
        fail(toError(err));
        return;
      }
    }
    if (signal.aborted) return;
    probeTimer = setTimeout(
      () => void probe(),
      errors > 0 ? t.statusCheckFailingIntervalMs : t.statusCheckIntervalMs,
    );
  };
  probeTimer = setTimeout(() => void probe(), t.statusCheckIntervalMs);

  // Health check: bounded reads one after the other, so one is always pending while
  // the remote stalls and the first answer after it resumes counts. Not ready once no
  // read succeeded for healthCheckFailAfterMs; a deadline timer decides, not the reads,
  // so detection does not wait for a read to time out.
  let healthTimer: NodeJS.Timeout | undefined;
  let deadlineTimer: NodeJS.Timeout | undefined;
  let lastError: Error | undefined;
  let down = false;
  const armDeadline = (): void => {
    clearTimeout(deadlineTimer);
    deadlineTimer = setTimeout(() => {
      if (signal.aborted || down) return;
      down = true;
      onHealth(
        new ClusterMeshError(
          ErrorCode.KvstoreUnreachable,
          `remote kvstore not responding for more than ${formatMs(t.healthCheckFailAfterMs)}` +
            (lastError === undefined ? '' : `: ${errorMessage(lastError)}`),
        ),
      );
    }, t.healthCheckFailAfterMs);
  };
  const check = async (): Promise<void> => {
    const started = Date.now();
    try {
      await bounded(backend.get(HeartbeatPath), signal, t.healthCheckTimeoutMs, 'health check');
      if (signal.aborted) return;
      lastError = undefined;
      armDeadline();
      if (down) {
        down = false;
        onHealth(undefined);
      }
    } catch (err) {
      if (signal.aborted) return;
      lastError = toError(err);
      log.debug({ err: errorMessage(err) }, 'remote kvstore health check failed');
    }
    healthTimer = setTimeout(
      () => void check(),
      Math.max(0, started + t.healthCheckIntervalMs - Date.now()),
    );
  };
  if (t.healthCheckIntervalMs > 0 && t.healthCheckFailAfterMs > 0) {
    armDeadline();
    healthTimer = setTimeout(() => void check(), t.healthCheckIntervalMs);
  }

  return async () => {
    ac.abort();
    unsubscribe();
    clearTimeout(heartbeatTimer);
    clearTimeout(probeTimer);
    clearTimeout(healthTimer);
    clearTimeout(deadlineTimer);
    await heartbeatWatch;
  };
}

function formatMs(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000}s` : `${ms}ms`;
}
