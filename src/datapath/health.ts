/**
 * Backend health of one node's datapath: which backends new connections should avoid.
 * The control plane only learns that a backend died when its cluster says so, and a
 * remote cluster whose agents or kvstore died says nothing; so the datapath decides for
 * itself, from two sources:
 *
 * - passive: connections the proxy could not establish (refused, reset, timed out);
 *   `ejectAfterFailures` consecutive ones eject the backend for `ejectBackoffMs`;
 * - active: a TCP connect to every backend every `probeIntervalMs`, bounded by
 *   `probeTimeoutMs`; `probeFailures` consecutive failed probes mark it down, the
 *   first probe that passes brings it back (and lifts a passive ejection).
 *
 * Selection applies affinity to the healthy backends and fails open when none is
 * healthy (see backend-choice.ts), so health can only narrow, never empty, a service.
 */
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { unansweredSocket, type Blackholes } from './partition.js';

export interface BackendHealthOptions {
  /** Active probe period; 0 disables probing (passive ejection only). */
  readonly probeIntervalMs?: number | undefined;
  readonly probeTimeoutMs?: number | undefined;
  /** Consecutive failed probes that mark a backend down. */
  readonly probeFailures?: number | undefined;
  /** Consecutive failed connections that eject a backend. */
  readonly ejectAfterFailures?: number | undefined;
  /** How long a passive ejection lasts unless a probe passes first. */
  readonly ejectBackoffMs?: number | undefined;
  /** Source address of the probes (the node's IP), so they leave from the node. */
  readonly sourceIP?: string | undefined;
  readonly log: Logger;
}

export const DEFAULT_PROBE_INTERVAL_MS = 500;
export const DEFAULT_PROBE_TIMEOUT_MS = 500;
export const DEFAULT_PROBE_FAILURES = 2;
export const DEFAULT_EJECT_AFTER_FAILURES = 1;
export const DEFAULT_EJECT_BACKOFF_MS = 5_000;

export interface ProbeTarget {
  readonly address: string;
  readonly ip: string;
  readonly port: number;
}

interface Entry {
  target: ProbeTarget;
  /** Consecutive failed connections from the proxy. */
  connFailures: number;
  /** Passively ejected until this time (0: not ejected). */
  ejectedUntil: number;
  ejectTimer: NodeJS.Timeout | undefined;
  probeFailures: number;
  probeDown: boolean;
  probeTimer: NodeJS.Timeout | undefined;
  probing: boolean;
  /** Last health reported to listeners. */
  healthy: boolean;
}

export type HealthListener = (address: string, healthy: boolean) => void;

/**
 * Probes in flight, by `source>ip:port`, shared by every datapath of the process: the
 * workload runtime does not record a probe as an ingress flow. Entries outlive their
 * socket briefly, since the backend may accept a probe after the prober closed it.
 */
const inflightProbes = new Map<string, number>();
const PROBE_LINGER_MS = 1_000;

/** Connected probes by `source:port>ip:port`: what tells a probe from other traffic of its node. */
const connectedProbes = new Map<string, number>();

/** Whether a probe from `peerIP` to the pod's port is in flight (or just ended). */
export function isHealthProbe(peerIP: string, podIP: string, podPort: number): boolean {
  return (inflightProbes.get(`${peerIP}>${podIP}:${podPort}`) ?? 0) > 0;
}

/**
 * Whether this very connection (its source port included) is a probe. Known once the
 * prober's `connect` has run, which can come after the backend's accept in the same turn
 * of the event loop: ask from a later turn.
 */
export function isHealthProbeConnection(
  peerIP: string,
  peerPort: number,
  podIP: string,
  podPort: number,
): boolean {
  return (connectedProbes.get(`${peerIP}:${peerPort}>${podIP}:${podPort}`) ?? 0) > 0;
}

function bump(map: Map<string, number>, key: string, by: number): void {
  const n = (map.get(key) ?? 0) + by;
  if (n <= 0) map.delete(key);
  else map.set(key, n);
}

export class BackendHealth {
  private readonly entries = new Map<string, Entry>();
  private readonly listeners = new Set<HealthListener>();
  /** Partition fault injection: probes toward these addresses go unanswered. */
  blackholes: Blackholes | undefined;
  private readonly probeIntervalMs: number;
  private readonly probeTimeoutMs: number;
  private readonly probeFailureThreshold: number;
  private readonly ejectAfterFailures: number;
  private readonly ejectBackoffMs: number;
  private readonly log: Logger;
  private closed = false;
  private readonly counters = { ejections: 0, probesFailed: 0, probes: 0 };

  constructor(private readonly opts: BackendHealthOptions) {
    this.probeIntervalMs = opts.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.probeTimeoutMs = opts.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.probeFailureThreshold = Math.max(1, opts.probeFailures ?? DEFAULT_PROBE_FAILURES);
    this.ejectAfterFailures = Math.max(1, opts.ejectAfterFailures ?? DEFAULT_EJECT_AFTER_FAILURES);
    this.ejectBackoffMs = opts.ejectBackoffMs ?? DEFAULT_EJECT_BACKOFF_MS;
    this.log = opts.log;
  }

  /** Unknown backends are healthy: nothing has spoken against them yet. */
  isHealthy(address: string): boolean {
    return this.entries.get(address)?.healthy ?? true;
  }

  /** `healthy` / `unhealthy` for the views. */
  healthOf(address: string): 'healthy' | 'unhealthy' {
    return this.isHealthy(address) ? 'healthy' : 'unhealthy';
  }

  get stats(): { ejections: number; probes: number; probesFailed: number; unhealthy: number } {
    let unhealthy = 0;
    for (const e of this.entries.values()) if (!e.healthy) unhealthy++;
    return { ...this.counters, unhealthy };
  }

  onChange(cb: HealthListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  /** The backends to watch: new ones start probing, gone ones are forgotten. */
  setTargets(targets: Iterable<ProbeTarget>): void {
    if (this.closed) return;
    const want = new Map<string, ProbeTarget>();
    for (const t of targets) want.set(t.address, t);
    for (const [address, e] of this.entries) {
      if (want.has(address)) continue;
      clearTimeout(e.probeTimer);
      clearTimeout(e.ejectTimer);
      this.entries.delete(address);
    }
    for (const [address, t] of want) {
      if (this.entries.has(address)) continue;
      const e: Entry = {
        target: t,
        connFailures: 0,
        ejectedUntil: 0,
        ejectTimer: undefined,
        probeFailures: 0,
        probeDown: false,
        probeTimer: undefined,
        probing: false,
        healthy: true,
      };
      this.entries.set(address, e);
      // Spread the first probes over one period, so many backends do not probe in lockstep.
      if (this.probeIntervalMs > 0) this.schedule(e, Math.random() * this.probeIntervalMs);
    }
  }

  /** A connection to `address` could not be established. */
  reportFailure(address: string, code: string): void {
    const e = this.entries.get(address);
    if (e === undefined || this.closed) return;
    e.connFailures++;
    if (e.connFailures < this.ejectAfterFailures) return;
    const first = e.ejectedUntil === 0;
    e.ejectedUntil = Date.now() + this.ejectBackoffMs;
    clearTimeout(e.ejectTimer);
    e.ejectTimer = setTimeout(() => {
      e.ejectTimer = undefined;
      e.ejectedUntil = 0;
      e.connFailures = 0;
      this.update(e, 'ejection expired');
    }, this.ejectBackoffMs);
    if (first) this.counters.ejections++;
    this.update(e, `connection failed (${code})`);
  }

  /** A connection to `address` was established. */
  reportSuccess(address: string): void {
    const e = this.entries.get(address);
    if (e !== undefined) e.connFailures = 0;
  }

  close(): void {
    this.closed = true;
    for (const e of this.entries.values()) {
      clearTimeout(e.probeTimer);
      clearTimeout(e.ejectTimer);
    }
    this.entries.clear();
    this.listeners.clear();
  }

  private update(e: Entry, why: string): void {
    const healthy = !e.probeDown && e.ejectedUntil === 0;
    if (healthy === e.healthy) return;
    e.healthy = healthy;
    const fields = { backend: e.target.address, reason: why };
    if (healthy) this.log.info(fields, 'Backend healthy again');
    else this.log.warn(fields, 'Backend unhealthy; new connections avoid it');
    for (const l of this.listeners) l(e.target.address, healthy);
  }

  private schedule(e: Entry, delayMs: number): void {
    clearTimeout(e.probeTimer);
    e.probeTimer = setTimeout(() => {
      e.probeTimer = undefined;
      this.probe(e);
    }, delayMs);
  }

  private probe(e: Entry): void {
    if (this.closed || e.probing || this.entries.get(e.target.address) !== e) return;
    e.probing = true;
    this.counters.probes++;
    const started = Date.now();
    const { ip, port } = e.target;
    const key = `${this.opts.sourceIP ?? '127.0.0.1'}>${ip}:${port}`;
    bump(inflightProbes, key, 1);
    const sock = this.blackholes?.has(ip)
      ? unansweredSocket()
      : connect({ host: ip, port, localAddress: this.opts.sourceIP });
    let connectedKey: string | undefined;
    let settled = false;
    const finish = (ok: boolean, code: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      sock.destroy();
      setTimeout(() => {
        bump(inflightProbes, key, -1);
        if (connectedKey !== undefined) bump(connectedProbes, connectedKey, -1);
      }, PROBE_LINGER_MS).unref();
      e.probing = false;
      if (this.closed || this.entries.get(e.target.address) !== e) return;
      if (ok) {
        e.probeFailures = 0;
        e.probeDown = false;
        // A probe that connected after the ejection proves the backend is back.
        if (e.ejectedUntil !== 0 && started >= e.ejectedUntil - this.ejectBackoffMs) {
          clearTimeout(e.ejectTimer);
          e.ejectTimer = undefined;
          e.ejectedUntil = 0;
          e.connFailures = 0;
        }
        this.update(e, 'probe passed');
      } else {
        this.counters.probesFailed++;
        e.probeFailures++;
        if (e.probeFailures >= this.probeFailureThreshold) e.probeDown = true;
        this.update(e, `health probe failed (${code})`);
      }
      const next = Math.max(0, started + this.probeIntervalMs - Date.now());
      this.schedule(e, next);
    };
    const timer = setTimeout(() => {
      finish(false, 'ETIMEDOUT');
    }, this.probeTimeoutMs);
    sock.once('connect', () => {
      connectedKey = `${sock.localAddress ?? ''}:${sock.localPort ?? 0}>${ip}:${port}`;
      bump(connectedProbes, connectedKey, 1);
      finish(true, 'OK');
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      finish(false, err.code ?? 'ERROR');
    });
  }
}
