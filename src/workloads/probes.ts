import { request } from 'node:http';
import { connect } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import type { Container } from '../registry/objects.js';

/**
 * The kubelet's probes of one running pod: httpGet, tcpSocket and exec, with Kubernetes'
 * timing fields and defaults. Readiness decides the pod's Ready condition (and so whether
 * it is a Service backend); liveness failing `failureThreshold` times restarts the container.
 */

/** Runs `command` in the pod's container; resolves with its exit code. */
export type ExecProbeRunner = (
  target: {
    readonly namespace: string;
    readonly pod: string;
    readonly ip: string;
    readonly node: string;
    readonly container: Container;
  },
  command: readonly string[],
  signal: AbortSignal,
) => Promise<number>;

interface ProbeSpec {
  readonly kind:
    | {
        readonly type: 'http';
        readonly port: number;
        readonly path: string;
        readonly host?: string;
      }
    | { readonly type: 'tcp'; readonly port: number; readonly host?: string }
    | { readonly type: 'exec'; readonly command: readonly string[] };
  readonly initialDelayMs: number;
  readonly periodMs: number;
  readonly timeoutMs: number;
  readonly successThreshold: number;
  readonly failureThreshold: number;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function seconds(v: unknown, dflt: number, min: number): number {
  return (typeof v === 'number' && Number.isFinite(v) && v >= min ? v : dflt) * 1000;
}

/** A probe's port: a number, or the name of one of the container's ports. */
function portOf(v: unknown, c: Container): number | undefined {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') {
    if (/^\d+$/.test(v)) return Number(v);
    return c.ports?.find((p) => p.name === v)?.containerPort;
  }
  return undefined;
}

/** The probe of `field` (`readinessProbe`, `livenessProbe`), or undefined when none or unusable. */
export function probeSpec(
  c: Container,
  field: 'readinessProbe' | 'livenessProbe',
): ProbeSpec | undefined {
  const p = c[field];
  if (!isRecord(p)) return undefined;
  let kind: ProbeSpec['kind'] | undefined;
  if (isRecord(p.httpGet)) {
    const port = portOf(p.httpGet.port, c);
    const path = typeof p.httpGet.path === 'string' ? p.httpGet.path : '/';
    const host = typeof p.httpGet.host === 'string' ? p.httpGet.host : undefined;
    if (port !== undefined) kind = { type: 'http', port, path, host };
  } else if (isRecord(p.tcpSocket)) {
    const port = portOf(p.tcpSocket.port, c);
    const host = typeof p.tcpSocket.host === 'string' ? p.tcpSocket.host : undefined;
    if (port !== undefined) kind = { type: 'tcp', port, host };
  } else if (isRecord(p.exec) && Array.isArray(p.exec.command)) {
    const command = p.exec.command.filter((x): x is string => typeof x === 'string');
    if (command.length > 0) kind = { type: 'exec', command };
  }
  if (kind === undefined) return undefined;
  return {
    kind,
    initialDelayMs: seconds(p.initialDelaySeconds, 0, 0),
    periodMs: seconds(p.periodSeconds, 10, 1),
    timeoutMs: seconds(p.timeoutSeconds, 1, 1),
    successThreshold: Math.max(1, typeof p.successThreshold === 'number' ? p.successThreshold : 1),
    failureThreshold: Math.max(1, typeof p.failureThreshold === 'number' ? p.failureThreshold : 3),
  };
}

export interface ProbeTarget {
  readonly namespace: string;
  readonly pod: string;
  /** The pod's IP: where httpGet and tcpSocket go. */
  readonly ip: string;
  /** The node's IP: the kubelet probes from it. */
  readonly nodeIP: string;
  readonly node: string;
}

function httpProbe(
  target: ProbeTarget,
  k: { port: number; path: string; host?: string | undefined },
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request(
      {
        host: k.host ?? target.ip,
        port: k.port,
        path: k.path,
        method: 'GET',
        agent: false,
        localAddress: target.nodeIP,
        timeout: timeoutMs,
        headers: { 'user-agent': 'kube-probe/1.32', accept: '*/*' },
      },
      (res) => {
        res.resume();
        const code = res.statusCode ?? 0;
        // The kubelet counts 200–399 as success.
        resolve(code >= 200 && code < 400);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve(false));
    req.end();
  });
}

function tcpProbe(
  target: ProbeTarget,
  k: { port: number; host?: string | undefined },
  timeoutMs: number,
): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: k.host ?? target.ip, port: k.port, localAddress: target.nodeIP });
    const done = (ok: boolean): void => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

export interface ContainerProbeState {
  readonly ready: boolean;
  readonly restartCount: number;
}

/**
 * The probes of one running pod. `onChange` is called when a container's readiness flips
 * (the controller writes the pod status) and `onLivenessFailure` when a container must be
 * restarted.
 */
export class PodProbes {
  private readonly ac = new AbortController();
  private readonly ready = new Map<string, boolean>();

  constructor(
    private readonly target: ProbeTarget,
    private readonly containers: readonly Container[],
    private readonly opts: {
      readonly exec?: ExecProbeRunner | undefined;
      readonly onChange: () => void;
      readonly onLivenessFailure: (container: string) => void;
      readonly log: Logger;
    },
  ) {
    for (const c of containers) {
      const readiness = probeSpec(c, 'readinessProbe');
      // Without a readiness probe a container is ready once it runs.
      this.ready.set(c.name, readiness === undefined);
      if (readiness !== undefined) this.loop(c, readiness, 'readiness');
      const liveness = probeSpec(c, 'livenessProbe');
      if (liveness !== undefined) this.loop(c, liveness, 'liveness');
    }
  }

  /** Whether `container` passes its readiness probe (true when it has none). */
  isReady(container: string): boolean {
    return this.ready.get(container) ?? false;
  }

  get allReady(): boolean {
    return this.containers.every((c) => this.isReady(c.name));
  }

  stop(): void {
    this.ac.abort();
  }

  private async once(c: Container, spec: ProbeSpec): Promise<boolean> {
    const k = spec.kind;
    if (k.type === 'http') return httpProbe(this.target, k, spec.timeoutMs);
    if (k.type === 'tcp') return tcpProbe(this.target, k, spec.timeoutMs);
    // Without a way to run commands, an exec probe cannot fail.
    if (this.opts.exec === undefined) return true;
    const signal = AbortSignal.any([this.ac.signal, AbortSignal.timeout(spec.timeoutMs)]);
    try {
      const code = await this.opts.exec(
        {
          namespace: this.target.namespace,
          pod: this.target.pod,
          ip: this.target.ip,
          node: this.target.node,
          container: c,
        },
        k.command,
        signal,
      );
      return code === 0 && !signal.aborted;
    } catch (err) {
      this.opts.log.debug({ container: c.name, err: errorMessage(err) }, 'exec probe failed');
      return false;
    }
  }

  private loop(c: Container, spec: ProbeSpec, which: 'readiness' | 'liveness'): void {
    const signal = this.ac.signal;
    let successes = 0;
    let failures = 0;
    // A function, so the check after the await is not narrowed away.
    const stopped = (): boolean => signal.aborted;
    const tick = async (): Promise<void> => {
      if (stopped()) return;
      const ok = await this.once(c, spec);
      if (stopped()) return;
      if (ok) {
        successes++;
        failures = 0;
      } else {
        failures++;
        successes = 0;
      }
      if (which === 'readiness') {
        const was = this.ready.get(c.name) ?? false;
        const now = was ? failures < spec.failureThreshold : successes >= spec.successThreshold;
        if (now !== was) {
          this.ready.set(c.name, now);
          this.opts.log.info(
            { container: c.name, ready: now },
            now ? 'readiness probe succeeded' : 'Readiness probe failed',
          );
          this.opts.onChange();
        }
      } else if (failures >= spec.failureThreshold) {
        failures = 0;
        this.opts.log.info({ container: c.name }, 'Liveness probe failed; restarting container');
        this.opts.onLivenessFailure(c.name);
        return;
      }
      schedule(spec.periodMs);
    };
    let timer: NodeJS.Timeout | undefined;
    const schedule = (ms: number): void => {
      timer = setTimeout(() => {
        void tick();
      }, ms);
    };
    signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    schedule(spec.initialDelayMs);
  }
}
