/**
 * The cluster's service proxy: a TCP listener on every ClusterIP:port of the cluster,
 * standing in for the reference's socket-LB. Each accepted connection is handed to the
 * datapath of the node owning its source address, which picks the backend (its LB map,
 * its affinity view) and records the flow; the proxy then dials the backend *from the
 * client's own address*, so the backend and its node's ipcache see the real client.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { PolicyDecision } from '../policy/enforcer.js';
import type { TableBackend } from '../service/table.js';
import { BACKEND_UNHEALTHY, type Addr, type NodeDatapath } from './datapath.js';
import type { LbFrontend, LoadBalancerMap } from './lb-map.js';
import { unansweredSocket } from './partition.js';

export interface ServiceProxyOptions {
  readonly cluster: string;
  /** The LB map of any node of the cluster: all nodes share the cluster's local services. */
  readonly frontends: LoadBalancerMap;
  /** The datapath of the node owning `srcIP` (host traffic goes to a default node). */
  readonly route: (srcIP: string) => NodeDatapath;
  readonly log: Logger;
  /** First delay before a failed bind is tried again; doubles up to 30 s. */
  readonly bindRetryMs?: number | undefined;
  readonly connectTimeoutMs?: number | undefined;
}

export interface ServiceProxyStats {
  /** Frontends currently bound. */
  readonly listeners: number;
  /** Failed bind attempts since start. */
  readonly bindFailures: number;
  readonly accepted: number;
  readonly forwarded: number;
  readonly dropped: number;
  /** Connections egress policy dropped (also counted in `dropped`). */
  readonly policyDenied: number;
  /** Upstream dials retried with less of the client's source (see SourceMode). */
  readonly sourceFallbacks: number;
  /** Connections whose backend failed and that were dialled again to another backend. */
  readonly retried: number;
  /** Open sockets, both sides of each proxied connection. */
  readonly sockets: number;
}

interface Listener {
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  server: Server | undefined;
  state: 'binding' | 'bound' | 'failed' | 'removed';
  failures: number;
  retryAt: number;
}

/** Errors of binding the client's address as source: dial again with less of it. */
const SOURCE_BIND_ERRORS = new Set(['EADDRNOTAVAIL', 'EADDRINUSE', 'EINVAL', 'EACCES']);

/**
 * How much of the client's source the upstream keeps. `tuple` (its IP *and* port, as
 * socket-LB does) needs no port search: bind(ip, 0) on a pod IP crowded with TIME_WAIT
 * sockets costs milliseconds of kernel time per connection. It fails when the client
 * socket lacks SO_REUSEADDR or the tuple is still in TIME_WAIT; then `address` (the IP,
 * any port), then `none` (the kernel picks; the backend sees a host address).
 */
type SourceMode = 'tuple' | 'address' | 'none';
const NEXT_MODE: Record<SourceMode, SourceMode | undefined> = {
  tuple: 'address',
  address: 'none',
  none: undefined,
};
const MAX_RETRY_MS = 30_000;
/** How long a connection policy dropped is held unanswered before it is let go. */
const POLICY_DROP_HOLD_MS = 30_000;

function reset(sock: Socket): void {
  if (!sock.destroyed) sock.resetAndDestroy();
}

function errCode(err: unknown): string {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : 'ERROR';
}

export class ServiceProxy {
  private readonly log: Logger;
  private readonly listeners = new Map<string, Listener>();
  private readonly sockets = new Set<Socket>();
  private readonly pending = new Set<Promise<void>>();
  private readonly closing = new Set<Promise<void>>();
  private readonly bindRetryMs: number;
  private readonly connectTimeoutMs: number;
  private unsubscribe: (() => void) | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private syncTimer: NodeJS.Immediate | undefined;
  private started = false;
  private stopped = false;
  private readonly counters = {
    bindFailures: 0,
    accepted: 0,
    forwarded: 0,
    dropped: 0,
    policyDenied: 0,
    sourceFallbacks: 0,
    retried: 0,
  };

  constructor(private readonly opts: ServiceProxyOptions) {
    this.log = opts.log.child({ cluster: opts.cluster, subsys: 'service-proxy' });
    this.bindRetryMs = opts.bindRetryMs ?? 1000;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5000;
  }

  /** Binds every current frontend (resolves once each is bound or has failed once). */
  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.unsubscribe = this.opts.frontends.onFrontendsChanged((removed) => {
      // A removed frontend refuses connections at once; new ones are bound by the next sync.
      for (const key of removed) {
        const l = this.listeners.get(key);
        if (l === undefined) continue;
        this.listeners.delete(key);
        this.closeListener(l);
      }
      this.scheduleSync();
    });
    this.sync();
    await this.settled();
  }

  /** Resolves when the binds started so far have completed (for callers that just added a service). */
  async settled(): Promise<void> {
    if (this.syncTimer !== undefined) {
      clearImmediate(this.syncTimer);
      this.syncTimer = undefined;
      this.sync();
    }
    while (this.pending.size > 0) await Promise.all([...this.pending]);
  }

  /** Frontends currently accepting connections (`ip:port/TCP`), sorted. */
  bound(): string[] {
    const out: string[] = [];
    for (const l of this.listeners.values()) if (l.state === 'bound') out.push(l.key);
    return out.sort();
  }

  get stats(): ServiceProxyStats {
    return { listeners: this.bound().length, sockets: this.sockets.size, ...this.counters };
  }

  /** Closes every listener and every proxied connection. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    clearImmediate(this.syncTimer);
    this.syncTimer = undefined;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.settled();
    for (const l of this.listeners.values()) this.closeListener(l);
    this.listeners.clear();
    for (const s of this.sockets) s.destroy();
    while (this.closing.size > 0) await Promise.all([...this.closing]);
  }

  /**
   * `sync` walks every frontend: once per event-loop turn, not once per changed service
   * (a burst of thousands of services would make that quadratic). `settled` flushes it.
   */
  private scheduleSync(): void {
    if (this.stopped || this.syncTimer !== undefined) return;
    this.syncTimer = setImmediate(() => {
      this.syncTimer = undefined;
      this.sync();
    });
  }

  private sync(): void {
    if (this.stopped) return;
    const desired = new Map<string, { ip: string; port: number }>();
    for (const f of this.opts.frontends.frontendAddresses()) {
      if (f.protocol === 'TCP' && !f.selfBacked) desired.set(f.key, f);
    }
    for (const [key, l] of this.listeners) {
      if (desired.has(key)) continue;
      this.listeners.delete(key);
      this.closeListener(l);
    }
    const now = Date.now();
    for (const [key, f] of desired) {
      let l = this.listeners.get(key);
      if (l === undefined) {
        l = {
          key,
          ip: f.ip,
          port: f.port,
          server: undefined,
          state: 'failed',
          failures: 0,
          retryAt: 0,
        };
        this.listeners.set(key, l);
      }
      if (l.state === 'failed' && l.retryAt <= now) this.bind(l);
    }
    this.armRetry();
  }

  private bind(l: Listener): void {
    l.state = 'binding';
    const server = createServer(
      { pauseOnConnect: true, allowHalfOpen: true, noDelay: true },
      (s) => {
        this.accept(s);
      },
    );
    l.server = server;
    const done = new Promise<void>((resolve) => {
      const onError = (err: NodeJS.ErrnoException): void => {
        server.off('listening', onListening);
        l.server = undefined;
        l.failures++;
        this.counters.bindFailures++;
        const delay = Math.min(MAX_RETRY_MS, this.bindRetryMs * 2 ** Math.min(l.failures - 1, 15));
        l.retryAt = Date.now() + delay;
        const fields = { frontend: l.key, code: err.code, failures: l.failures, retryMs: delay };
        // Once per frontend at warn: an unbindable address is retried for as long as it exists.
        if (l.failures === 1) this.log.warn(fields, 'Cannot bind service frontend; will retry');
        else this.log.debug(fields, 'Cannot bind service frontend; will retry');
        if (l.state !== 'removed') l.state = 'failed';
        resolve();
      };
      const onListening = (): void => {
        server.off('error', onError);
        server.on('error', (err: NodeJS.ErrnoException) => {
          this.log.warn({ frontend: l.key, code: err.code }, 'Service listener error');
        });
        if (l.state === 'removed' || this.stopped) {
          this.closeServer(server);
        } else {
          l.state = 'bound';
          if (l.failures > 0)
            this.log.info({ frontend: l.key, failures: l.failures }, 'Bound service frontend');
          else this.log.debug({ frontend: l.key }, 'Bound service frontend');
        }
        resolve();
      };
      server.once('error', onError);
      server.once('listening', onListening);
      server.listen({ host: l.ip, port: l.port });
    });
    this.pending.add(done);
    void done.then(() => {
      this.pending.delete(done);
      if (l.state === 'failed') this.armRetry();
    });
  }

  private armRetry(): void {
    if (this.stopped || this.retryTimer !== undefined) return;
    let next = Infinity;
    for (const l of this.listeners.values())
      if (l.state === 'failed') next = Math.min(next, l.retryAt);
    if (next === Infinity) return;
    this.retryTimer = setTimeout(
      () => {
        this.retryTimer = undefined;
        this.sync();
      },
      Math.max(0, next - Date.now()),
    );
  }

  private closeListener(l: Listener): void {
    const wasBound = l.state === 'bound';
    l.state = 'removed';
    // A bind still in flight closes its server itself when it completes.
    if (wasBound && l.server !== undefined) this.closeServer(l.server);
    l.server = undefined;
  }

  /** Stops accepting at once; established connections keep running (as conntrack would). */
  private closeServer(server: Server): void {
    const closed = new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    this.closing.add(closed);
    void closed.then(() => this.closing.delete(closed));
  }

  private track(s: Socket): void {
    this.sockets.add(s);
    s.once('close', () => this.sockets.delete(s));
  }

  private accept(client: Socket): void {
    const srcIP = client.remoteAddress;
    const srcPort = client.remotePort;
    const dstIP = client.localAddress;
    const dstPort = client.localPort;
    if (
      this.stopped ||
      srcIP === undefined ||
      srcPort === undefined ||
      dstIP === undefined ||
      dstPort === undefined
    ) {
      client.destroy();
      return;
    }
    this.counters.accepted++;
    this.track(client);
    const src: Addr = { ip: srcIP, port: srcPort };
    const dst: Addr = { ip: dstIP, port: dstPort };
    const conn: Conn = { client, upstream: undefined };
    client.on('error', (err) => {
      const up = conn.upstream;
      if (up === undefined) return;
      // Propagate a reset as a reset; anything else just tears the other side down.
      if (errCode(err) === 'ECONNRESET') reset(up);
      else up.destroy();
    });
    client.once('close', () => {
      // Clean closes finish the upstream through the pipe; only an unfinished dial is left.
      if (conn.upstream?.connecting === true) conn.upstream.destroy();
    });

    let dp: NodeDatapath;
    try {
      dp = this.opts.route(srcIP);
    } catch (err) {
      this.log.warn({ src: srcIP, err }, 'No datapath for connection source');
      this.counters.dropped++;
      reset(client);
      return;
    }
    const frontend = dp.frontendOf(dstIP, dstPort);
    if (frontend === undefined) {
      this.drop(dp, conn, src, dst, 'service not found');
      return;
    }
    const backend = dp.selectBackend(frontend, src);
    if (backend === undefined) {
      this.drop(dp, conn, src, dst, 'no backends', frontend);
      return;
    }
    // Egress policy decides on the translated backend and its port, as Cilium does.
    const egress = dp.egressDecision(srcIP, backend.ip, backend.port, 'TCP');
    if (egress !== undefined && !egress.allowed) {
      this.counters.policyDenied++;
      this.counters.dropped++;
      dp.recordDropped(src, dst, 'POLICY_DENIED', frontend, backend, { decision: egress });
      this.blackhole(client);
      return;
    }
    this.dial(dp, conn, src, dst, frontend, backend, 'tuple', egress, false);
  }

  /**
   * A policy drop: the client's packets go nowhere, so it gets no answer and times out as
   * under Cilium (a reset would tell it more than a drop does). Let go after a while.
   */
  private blackhole(client: Socket): void {
    // Read and discard: a client that gives up is noticed (and its socket freed) at once.
    client.on('data', () => undefined);
    client.once('end', () => client.destroy());
    client.resume();
    const timer = setTimeout(() => client.destroy(), POLICY_DROP_HOLD_MS);
    client.once('close', () => {
      clearTimeout(timer);
    });
  }

  private drop(
    dp: NodeDatapath,
    conn: Conn,
    src: Addr,
    dst: Addr,
    reason: string,
    frontend?: LbFrontend,
    backend?: TableBackend,
  ): void {
    this.counters.dropped++;
    dp.recordDropped(src, dst, reason, frontend, backend);
    reset(conn.client);
  }

  private dial(
    dp: NodeDatapath,
    conn: Conn,
    src: Addr,
    dst: Addr,
    frontend: LbFrontend,
    backend: TableBackend,
    mode: SourceMode,
    egress: PolicyDecision | undefined,
    retried: boolean,
  ): void {
    const { client } = conn;
    if (client.destroyed) return;
    const upstream = dp.blackholes.has(backend.ip)
      ? unansweredSocket()
      : connect({
          host: backend.ip,
          port: backend.port,
          localAddress: mode === 'none' ? undefined : src.ip,
          localPort: mode === 'tuple' ? src.port : undefined,
          allowHalfOpen: true,
          noDelay: true,
        });
    conn.upstream = upstream;
    this.track(upstream);
    upstream.setTimeout(this.connectTimeoutMs, () => {
      upstream.destroy(Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' }));
    });
    const onDialError = (err: Error): void => {
      upstream.off('connect', onConnect);
      const code = errCode(err);
      const next = NEXT_MODE[mode];
      if (next !== undefined && SOURCE_BIND_ERRORS.has(code)) {
        this.counters.sourceFallbacks++;
        this.dial(dp, conn, src, dst, frontend, backend, next, egress, retried);
        return;
      }
      dp.health?.reportFailure(backend.address, code);
      // One more try on another backend, so a connection made before the failure is
      // detected does not fail with it; egress policy decides on that backend too.
      const other = retried ? undefined : dp.alternativeBackend(frontend, src, backend);
      const otherEgress =
        other === undefined ? undefined : dp.egressDecision(src.ip, other.ip, other.port, 'TCP');
      if (other !== undefined && otherEgress?.allowed !== false && !conn.client.destroyed) {
        this.counters.retried++;
        dp.recordDropped(src, dst, BACKEND_UNHEALTHY, frontend, backend, { error: code });
        this.dial(dp, conn, src, dst, frontend, other, 'tuple', otherEgress, true);
        return;
      }
      this.drop(dp, conn, src, dst, code, frontend, backend);
    };
    const onConnect = (): void => {
      upstream.off('error', onDialError);
      upstream.setTimeout(0);
      if (client.destroyed) {
        upstream.destroy();
        return;
      }
      this.counters.forwarded++;
      dp.health?.reportSuccess(backend.address);
      dp.recordForwarded(src, dst, { frontend, backend }, egress);
      upstream.on('error', () => {
        reset(client);
      });
      // pipe() carries backpressure and half-close (end → end) in each direction.
      client.pipe(upstream);
      upstream.pipe(client);
    };
    upstream.once('error', onDialError);
    upstream.once('connect', onConnect);
  }
}

interface Conn {
  readonly client: Socket;
  upstream: Socket | undefined;
}
