/**
 * Node-to-node health (as cilium-health): every agent serves a health endpoint on its node
 * address and probes every other node's endpoint of every cluster, keeping the round-trip
 * times of the recent probes and the last error per node. A probe is an HTTP GET of
 * `/hello` sent from the node's own address, so it takes the path node traffic takes.
 */
import { request } from 'node:http';
import type { Logger } from 'pino';
import { startHttpServer, type RunningHttpServer } from '../lib/http-server.js';
import { errorMessage } from '../lib/errors.js';

/** Cilium's health endpoint port. */
export const HEALTH_PORT = 4240;
export const DEFAULT_HEALTH_PROBE_INTERVAL_MS = 1_000;
export const DEFAULT_HEALTH_PROBE_TIMEOUT_MS = 1_000;
/** Round-trip times kept per node for the percentiles. */
const RTT_WINDOW = 120;

export interface HealthPeer {
  readonly cluster: string;
  readonly name: string;
  readonly ip: string;
}

/** One node's probe results, as `/v1/health` serves them. */
export interface NodeHealth {
  readonly cluster: string;
  readonly name: string;
  readonly ip: string;
  /** The prober's own node. */
  readonly local: boolean;
  /** The last probe's outcome (`unknown` before the first one ended). */
  readonly status: 'ok' | 'failed' | 'unknown';
  readonly probes: number;
  readonly failures: number;
  /** Milliseconds, over the recent successful probes; absent without one. */
  readonly rtt?: { readonly p50: number; readonly p95: number; readonly p99: number };
  readonly lastError?: string;
  readonly lastErrorAt?: string;
  readonly lastSuccessAt?: string;
}

export interface HealthStatus {
  readonly node: { readonly cluster: string; readonly name: string; readonly ip: string };
  /** When the newest probe ended (RFC 3339). */
  readonly probeTime?: string;
  readonly intervalMs: number;
  readonly nodes: readonly NodeHealth[];
}

interface PeerState {
  peer: HealthPeer;
  rtts: number[];
  probes: number;
  failures: number;
  status: 'ok' | 'failed' | 'unknown';
  lastError?: string;
  lastErrorAt?: number;
  lastSuccessAt?: number;
  inflight: boolean;
}

export interface HealthProberOptions {
  readonly self: HealthPeer;
  /** The nodes to probe, self included; read before every round. */
  readonly peers: () => readonly HealthPeer[];
  /** The health endpoint port of every node. */
  readonly port?: number | undefined;
  readonly intervalMs?: number | undefined;
  readonly timeoutMs?: number | undefined;
  /** Addresses a partition fault cut off: their probes get no answer. */
  readonly unreachable?: ((ip: string) => boolean) | undefined;
  readonly log: Logger;
}

/** The nearest-rank percentile of sorted values. */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

export class HealthProber {
  private readonly states = new Map<string, PeerState>();
  private readonly port: number;
  private readonly intervalMs: number;
  private readonly timeoutMs: number;
  private timer: NodeJS.Timeout | undefined;
  private lastProbeAt: number | undefined;
  private closed = false;

  constructor(private readonly opts: HealthProberOptions) {
    this.port = opts.port ?? HEALTH_PORT;
    this.intervalMs = opts.intervalMs ?? DEFAULT_HEALTH_PROBE_INTERVAL_MS;
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_HEALTH_PROBE_TIMEOUT_MS;
  }

  start(): void {
    this.round();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
  }

  private round(): void {
    if (this.closed) return;
    const seen = new Set<string>();
    for (const peer of this.opts.peers()) {
      const key = `${peer.cluster}/${peer.name}`;
      seen.add(key);
      let st = this.states.get(key);
      if (st === undefined) {
        st = { peer, rtts: [], probes: 0, failures: 0, status: 'unknown', inflight: false };
        this.states.set(key, st);
      }
      st.peer = peer;
      if (!st.inflight) this.probe(st);
    }
    // A node deleted from the mesh is no longer probed nor shown.
    for (const key of [...this.states.keys()]) if (!seen.has(key)) this.states.delete(key);
    this.timer = setTimeout(() => {
      this.round();
    }, this.intervalMs);
    this.timer.unref();
  }

  private probe(st: PeerState): void {
    st.inflight = true;
    const started = performance.now();
    let settled = false;
    const done = (err: string | undefined): void => {
      if (settled) return;
      settled = true;
      st.inflight = false;
      const now = Date.now();
      this.lastProbeAt = now;
      st.probes++;
      if (err === undefined) {
        st.rtts.push(performance.now() - started);
        if (st.rtts.length > RTT_WINDOW) st.rtts.shift();
        st.status = 'ok';
        st.lastSuccessAt = now;
        return;
      }
      st.failures++;
      if (st.status !== 'failed') {
        this.opts.log.warn(
          { peer: `${st.peer.cluster}/${st.peer.name}`, ip: st.peer.ip, err },
          'Node health probe failed',
        );
      }
      st.status = 'failed';
      st.lastError = err;
      st.lastErrorAt = now;
    };
    if (this.opts.unreachable?.(st.peer.ip) === true) {
      setTimeout(() => {
        done(`no answer within ${this.timeoutMs} ms`);
      }, this.timeoutMs).unref();
      return;
    }
    const req = request(
      {
        host: st.peer.ip,
        port: this.port,
        path: '/hello',
        localAddress: this.opts.self.ip,
        agent: false,
        timeout: this.timeoutMs,
      },
      (res) => {
        res.resume();
        res.once('end', () => {
          done(res.statusCode === 200 ? undefined : `HTTP ${res.statusCode ?? 0}`);
        });
        res.once('error', (e) => {
          done(errorMessage(e));
        });
      },
    );
    req.once('timeout', () => {
      req.destroy(new Error(`no answer within ${this.timeoutMs} ms`));
    });
    req.once('error', (e: NodeJS.ErrnoException) => {
      done(
        e.code !== undefined && !e.message.includes(e.code) ? `${e.code}: ${e.message}` : e.message,
      );
    });
    req.end();
  }

  status(): HealthStatus {
    const iso = (ms: number | undefined): string | undefined =>
      ms === undefined ? undefined : new Date(ms).toISOString();
    const self = this.opts.self;
    const nodes = [...this.states.values()]
      .map((st): NodeHealth => {
        const sorted = [...st.rtts].sort((a, b) => a - b);
        const round = (v: number): number => Math.round(v * 1000) / 1000;
        const lastErrorAt = iso(st.lastErrorAt);
        const lastSuccessAt = iso(st.lastSuccessAt);
        return {
          cluster: st.peer.cluster,
          name: st.peer.name,
          ip: st.peer.ip,
          local: st.peer.cluster === self.cluster && st.peer.name === self.name,
          status: st.status,
          probes: st.probes,
          failures: st.failures,
          ...(sorted.length === 0
            ? {}
            : {
                rtt: {
                  p50: round(percentile(sorted, 50)),
                  p95: round(percentile(sorted, 95)),
                  p99: round(percentile(sorted, 99)),
                },
              }),
          ...(st.lastError === undefined ? {} : { lastError: st.lastError }),
          ...(lastErrorAt === undefined ? {} : { lastErrorAt }),
          ...(lastSuccessAt === undefined ? {} : { lastSuccessAt }),
        };
      })
      .sort((a, b) =>
        a.cluster === b.cluster ? a.name.localeCompare(b.name) : a.cluster.localeCompare(b.cluster),
      );
    const probeTime = iso(this.lastProbeAt);
    return {
      node: self,
      ...(probeTime === undefined ? {} : { probeTime }),
      intervalMs: this.intervalMs,
      nodes,
    };
  }
}

/** The node's health endpoint: answers `/hello` while the agent runs. */
export function startHealthEndpoint(addr: string): Promise<RunningHttpServer> {
  return startHttpServer(addr, '--health-addr', {
    '/hello': () => ({ body: 'ok\n' }),
  });
}
