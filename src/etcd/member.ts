import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import type { IStatusResponse } from 'etcd3';
import { errorMessage } from '../lib/errors.js';
import { createEtcdClient, type EtcdClientPem, type EtcdClientTarget } from './client.js';
import { trackChild, untrackChild } from './reaper.js';

export const DEFAULT_STOP_TIMEOUT_MS = 5_000;
export const HEALTH_POLL_INTERVAL_MS = 100;
const HEALTH_REQUEST_TIMEOUT_MS = 1_000;
const LOG_TAIL_LINES = 30;
export const LOOPBACK = '127.0.0.1';
// Node warns when TLS is used towards an IP address (no SNI), so TLS clients use this name.
const TLS_HOSTNAME = 'localhost';

/** Client-side TLS of a TLS-enabled etcd: the PEM files (for client configs) and their contents. */
export interface EtcdClientTls extends EtcdClientPem {
  caFile: string;
  certFile: string;
  keyFile: string;
}

export interface MemberStartOptions {
  /** Wait for `/health`; a member restarted without quorum never becomes healthy. Default true. */
  wait?: boolean;
  timeoutMs?: number;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Shared, mutable view of the cluster that every member reads when it (re)starts. */
export interface ClusterSpec {
  binary: string;
  token: string;
  initialCluster: string;
  logLevel: string;
  snapshotCount: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  extraArgs: readonly string[];
  serverTls: { caFile: string; certFile: string; keyFile: string } | undefined;
  clientTls: EtcdClientTls | undefined;
  /** Address clients connect to (default 127.0.0.1). */
  clientHost: string;
  /** Name TLS clients verify (default localhost; the server certificate must cover it). */
  tlsServerName: string;
  readyTimeoutMs: number;
}

// etcd maps ETCD_* variables to flags; the caller's environment must not reconfigure it.
function etcdEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (!key.startsWith('ETCD_') || key === 'ETCD_UNSUPPORTED_ARCH') env[key] = value;
  }
  return env;
}

function readBody(res: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => (body += chunk));
    res.once('end', () => {
      resolve(body);
    });
    res.once('error', reject);
  });
}

function isHealthy(status: number | undefined, body: string): boolean {
  if (status !== 200) return false;
  try {
    const parsed: unknown = JSON.parse(body);
    return (
      typeof parsed === 'object' &&
      parsed !== null &&
      'health' in parsed &&
      parsed.health === 'true'
    );
  } catch {
    return false;
  }
}

/** One etcd process: fixed name, ports and data directory across restarts. */
export class EtcdMember {
  readonly name: string;
  readonly clientPort: number;
  readonly peerPort: number;
  /** URL clients use: http://127.0.0.1:PORT, or https://localhost:PORT with TLS. */
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly dataDir: string;
  readonly logFile: string;
  readonly #spec: ClusterSpec;
  #child: ChildProcess | undefined;
  #exit: Promise<ExitInfo> | undefined;
  #exitInfo: ExitInfo | undefined;

  /** @internal Use startEtcd() or startEtcdCluster(). */
  constructor(init: {
    name: string;
    clientPort: number;
    peerPort: number;
    dataDir: string;
    logFile: string;
    spec: ClusterSpec;
  }) {
    this.name = init.name;
    this.clientPort = init.clientPort;
    this.peerPort = init.peerPort;
    this.dataDir = init.dataDir;
    this.logFile = init.logFile;
    this.#spec = init.spec;
    const host = init.spec.clientHost;
    this.clientUrl =
      init.spec.serverTls === undefined
        ? `http://${host}:${init.clientPort}`
        : `https://${host === LOOPBACK ? TLS_HOSTNAME : host}:${init.clientPort}`;
    this.peerUrl = `http://${LOOPBACK}:${init.peerPort}`;
  }

  /** PID of the running process, or undefined when stopped. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  /** The client endpoint as a one-element target, for per-member clients. */
  get target(): EtcdClientTarget {
    return { endpoints: [this.clientUrl], tls: this.#spec.clientTls };
  }

  /** Starts the process (no-op when running) and by default waits until `/health` is healthy. */
  async start(opts: MemberStartOptions = {}): Promise<void> {
    if (this.#child === undefined) this.#spawn();
    if (opts.wait ?? true) await this.waitReady(opts.timeoutMs ?? this.#spec.readyTimeoutMs);
  }

  /**
   * SIGTERM, then SIGKILL after `timeoutMs`; resolves once the process has exited. A cluster
   * leader tries to hand leadership over first, which can use the whole timeout when the chosen
   * peer has just died; kill() is the fast alternative.
   */
  async stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    const child = this.#child;
    const exit = this.#exit;
    if (child === undefined || exit === undefined) return;
    // Keep the event loop alive until the exit is observed, even though the child is unref'd.
    child.ref();
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    try {
      await exit;
    } finally {
      clearTimeout(timer);
    }
  }

  /** SIGKILL, simulating a crash; resolves once the process has exited. */
  async kill(): Promise<void> {
    const child = this.#child;
    const exit = this.#exit;
    if (child === undefined || exit === undefined) return;
    child.ref();
    child.kill('SIGKILL');
    await exit;
  }

  /** Stops and starts again with the same ports and data directory. */
  async restart(opts: MemberStartOptions = {}): Promise<void> {
    await this.stop();
    await this.start(opts);
  }

  /** Maintenance status as reported by this member alone. */
  async status(timeoutMs = 2_000): Promise<IStatusResponse> {
    const client = createEtcdClient(this.target, {
      dialTimeout: timeoutMs,
      defaultCallOptions: () => ({ deadline: Date.now() + timeoutMs }),
    });
    try {
      return await client.maintenance.status();
    } finally {
      client.close();
    }
  }

  /** The last `lines` lines of this member's log (all runs are appended to one file). */
  logTail(lines = LOG_TAIL_LINES): string {
    try {
      const text = readFileSync(this.logFile, 'utf8').trimEnd();
      return text.split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log output)';
    }
  }

  /** Polls `/health` until healthy; fails fast with the log tail if the process exits. */
  async waitReady(timeoutMs = this.#spec.readyTimeoutMs): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let lastProblem: string;
    for (;;) {
      if (this.#child === undefined) {
        const how = this.#exitInfo
          ? `code ${String(this.#exitInfo.code)}, signal ${String(this.#exitInfo.signal)}`
          : 'not running';
        throw new Error(
          `etcd ${this.name} exited during startup (${how})\n--- ${this.logFile} ---\n${this.logTail()}`,
        );
      }
      try {
        if (await this.#probeHealth()) return;
        lastProblem = '/health reported unhealthy';
      } catch (err) {
        lastProblem = errorMessage(err);
      }
      if (Date.now() >= deadline) {
        throw new Error(
          `etcd ${this.name} at ${this.clientUrl} not healthy after ${timeoutMs}ms (${lastProblem})\n` +
            `--- ${this.logFile} ---\n${this.logTail()}`,
        );
      }
      await sleep(HEALTH_POLL_INTERVAL_MS);
    }
  }

  #args(): string[] {
    const spec = this.#spec;
    const scheme = spec.serverTls === undefined ? 'http' : 'https';
    const args = [
      `--name=${this.name}`,
      `--data-dir=${this.dataDir}`,
      `--listen-client-urls=${scheme}://${spec.clientHost}:${this.clientPort}`,
      `--advertise-client-urls=${this.clientUrl}`,
      `--listen-peer-urls=${this.peerUrl}`,
      `--initial-advertise-peer-urls=${this.peerUrl}`,
      `--initial-cluster=${spec.initialCluster}`,
      // A fresh token per wipe yields a new cluster ID even though the peer URLs are unchanged.
      `--initial-cluster-token=${spec.token}`,
      '--initial-cluster-state=new',
      `--snapshot-count=${spec.snapshotCount}`,
      `--heartbeat-interval=${spec.heartbeatIntervalMs}`,
      `--election-timeout=${spec.electionTimeoutMs}`,
      '--logger=zap',
      // stderr goes to the log file, which also captures panics and flag errors.
      '--log-outputs=stderr',
      `--log-level=${spec.logLevel}`,
    ];
    if (spec.serverTls !== undefined) {
      args.push(
        '--client-cert-auth',
        `--trusted-ca-file=${spec.serverTls.caFile}`,
        `--cert-file=${spec.serverTls.certFile}`,
        `--key-file=${spec.serverTls.keyFile}`,
      );
    }
    args.push(...spec.extraArgs);
    return args;
  }

  #spawn(): void {
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.#spec.binary, this.#args(), {
        stdio: ['ignore', fd, fd],
        env: etcdEnv(),
        // Its own process group: a terminal's Ctrl-C reaches the owner, which stops its users
        // before etcd (the exit hook in reaper.ts still kills it if the owner goes away).
        detached: true,
      });
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(fd);
    }
    // A forgotten destroy() must not keep the owner alive; the exit hook kills what is left.
    child.unref();
    trackChild(child);
    this.#child = child;
    this.#exitInfo = undefined;
    this.#exit = new Promise<ExitInfo>((resolve) => {
      const finish = (info: ExitInfo): void => {
        untrackChild(child);
        if (this.#child === child) {
          this.#child = undefined;
          this.#exitInfo = info;
        }
        resolve(info);
      };
      child.once('exit', (code, signal) => {
        finish({ code, signal });
      });
      // Spawn failures emit 'error' without 'exit'.
      child.once('error', () => {
        if (child.pid === undefined) finish({ code: null, signal: null });
      });
    });
  }

  #probeHealth(): Promise<boolean> {
    const tls = this.#spec.clientTls;
    return new Promise<boolean>((resolve, reject) => {
      const options = {
        host: this.#spec.clientHost,
        port: this.clientPort,
        path: '/health',
        agent: false as const,
        timeout: HEALTH_REQUEST_TIMEOUT_MS,
      };
      const onResponse = (res: IncomingMessage): void => {
        readBody(res).then((body) => {
          resolve(isHealthy(res.statusCode, body));
        }, reject);
      };
      const req =
        tls === undefined
          ? httpRequest(options, onResponse)
          : httpsRequest(
              {
                ...options,
                ca: tls.ca,
                cert: tls.cert,
                key: tls.key,
                servername: this.#spec.tlsServerName,
              },
              onResponse,
            );
      req.once('timeout', () => req.destroy(new Error('health request timed out')));
      req.once('error', reject);
      req.end();
    });
  }
}
