import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import {
  accessSync,
  closeSync,
  constants as fsConstants,
  openSync,
  readFileSync,
  rmSync,
} from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { delimiter, dirname, isAbsolute, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { noop } from 'cockatiel';
import { Etcd3, type IOptions, type IStatusResponse } from 'etcd3';
import { stringify as toYaml } from 'yaml';
import { freePorts } from './ports.js';
import {
  createCA,
  issueCert,
  loopbackServerCertOptions,
  writeTlsBundle,
  type CertificateAuthority,
  type TlsBundle,
} from './tls.js';

const DEFAULT_READY_TIMEOUT_MS = 20_000;
const DEFAULT_STOP_TIMEOUT_MS = 5_000;
const DEFAULT_SNAPSHOT_COUNT = 1_000;
const HEALTH_POLL_INTERVAL_MS = 100;
const HEALTH_REQUEST_TIMEOUT_MS = 1_000;
const LOG_TAIL_LINES = 30;
const START_ATTEMPTS = 3;
const LOOPBACK = '127.0.0.1';
// Node warns when TLS is used towards an IP address (no SNI), so TLS clients use this name.
const TLS_HOSTNAME = 'localhost';

/** Client-side TLS material for a TLS-enabled etcd: a client certificate signed by `authority`. */
export interface EtcdTls extends TlsBundle {
  /** The CA that signed etcd's server certificate and the client certificate. */
  authority: CertificateAuthority;
}

export interface StartEtcdOptions {
  /** Serve clients over TLS and require client certificates signed by the fixture CA. */
  tls?: boolean;
  /** Reuse this CA instead of generating one (only with `tls`). */
  authority?: CertificateAuthority;
  /** Data directory; defaults to a directory inside the fixture's temp dir. Single member only. */
  dataDir?: string;
  /** Member name, or the name prefix for cluster members. */
  name?: string;
  /** etcd `--log-level` (debug, info, warn, error). Logs go to a file in the temp dir. */
  logLevel?: string;
  snapshotCount?: number;
  /**
   * Raft timing. Single members default to 20/200 ms so restarts elect themselves quickly (no
   * peers means no spurious elections); clusters keep etcd's 100/1000 ms.
   */
  heartbeatIntervalMs?: number;
  electionTimeoutMs?: number;
  /** How long to wait for `/health` to report healthy. */
  readyTimeoutMs?: number;
  /** Extra etcd command-line flags, appended last. */
  extraArgs?: string[];
  /** Path to the etcd binary; defaults to /usr/bin/etcd, then `etcd` from PATH. */
  etcdBinary?: string;
}

export interface MemberStartOptions {
  /** Wait for `/health`; a member restarted without quorum never becomes healthy. Default true. */
  wait?: boolean;
  timeoutMs?: number;
}

export interface WriteClientConfigOptions {
  /** Defaults to every member's client URL. */
  endpoints?: string[];
  /** Overrides the TLS files written; `false` omits them even for a TLS etcd. */
  tls?: Partial<Pick<TlsBundle, 'caFile' | 'certFile' | 'keyFile'>> | false;
}

/** Anything a client can be pointed at: an `EtcdServer`, an `EtcdCluster`, or a hand-made target. */
export interface EtcdClientTarget {
  endpoints: readonly string[];
  tls?: Pick<TlsBundle, 'ca' | 'cert' | 'key'> | undefined;
}

interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

// Shared, mutable view of the cluster that every member reads when it (re)starts.
interface ClusterSpec {
  binary: string;
  token: string;
  initialCluster: string;
  logLevel: string;
  snapshotCount: number;
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
  extraArgs: readonly string[];
  serverTls: { caFile: string; certFile: string; keyFile: string } | undefined;
  clientTls: EtcdTls | undefined;
  readyTimeoutMs: number;
}

// ---------------------------------------------------------------------------------------------
// Process registry: a crashed or aborted test must never leave etcd processes behind.

const liveChildren = new Set<ChildProcess>();
const liveTempDirs = new Set<string>();
let hooksInstalled = false;

function killAllSync(): void {
  for (const child of liveChildren) {
    try {
      child.kill('SIGKILL');
    } catch {
      // Already gone.
    }
  }
  liveChildren.clear();
  for (const dir of liveTempDirs) {
    try {
      rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // Best effort while the process is exiting.
    }
  }
  liveTempDirs.clear();
}

let signalHooks = true;

/**
 * A program that stops its etcd processes itself on SIGINT/SIGTERM (`clustermesh up`,
 * which stops its daemons first) turns the signal hooks off; the exit hook stays.
 */
export function disableEtcdSignalHooks(): void {
  signalHooks = false;
}

function installExitHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on('exit', killAllSync);
  if (!signalHooks) return;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const onSignal = (): void => {
      killAllSync();
      // Listening disabled the default "terminate" action; restore it when nobody else listens.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.once(signal, onSignal);
  }
}

// ---------------------------------------------------------------------------------------------

let cachedBinary: string | undefined;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Locates the etcd binary, throwing an actionable error when it is not installed. */
export function findEtcdBinary(explicit?: string): string {
  if (explicit !== undefined) {
    if (!isExecutable(explicit)) throw new Error(`etcd binary ${explicit} is not executable`);
    return explicit;
  }
  if (cachedBinary !== undefined) return cachedBinary;
  const candidates = [
    '/usr/bin/etcd',
    ...(process.env['PATH'] ?? '')
      .split(delimiter)
      .filter((dir) => isAbsolute(dir))
      .map((dir) => join(dir, 'etcd')),
  ];
  const found = candidates.find(isExecutable);
  if (found === undefined) throw new Error('etcd not found: apt-get install etcd-server');
  cachedBinary = found;
  return found;
}

function randomToken(): string {
  return `clustermesh-test-${randomBytes(8).toString('hex')}`;
}

// etcd maps ETCD_* variables to flags; a developer's shell settings must not leak into tests.
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

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Creates an etcd3 client without retries or circuit breakers, so restarts are never masked. */
export function createEtcdClient(
  target: EtcdClientTarget,
  overrides: Partial<IOptions> = {},
): Etcd3 {
  const options: IOptions = {
    hosts: [...target.endpoints],
    dialTimeout: 5_000,
    faultHandling: { host: () => noop, global: noop },
    ...overrides,
  };
  if (target.tls !== undefined && overrides.credentials === undefined) {
    options.credentials = {
      rootCertificate: Buffer.from(target.tls.ca),
      certChain: Buffer.from(target.tls.cert),
      privateKey: Buffer.from(target.tls.key),
    };
  }
  return new Etcd3(options);
}

// ---------------------------------------------------------------------------------------------

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
    this.clientUrl =
      init.spec.serverTls === undefined
        ? `http://${LOOPBACK}:${init.clientPort}`
        : `https://${TLS_HOSTNAME}:${init.clientPort}`;
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
        lastProblem = errorText(err);
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
      `--listen-client-urls=${scheme}://${LOOPBACK}:${this.clientPort}`,
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
    installExitHooks();
    const fd = openSync(this.logFile, 'a');
    let child: ChildProcess;
    try {
      child = spawn(this.#spec.binary, this.#args(), {
        stdio: ['ignore', fd, fd],
        env: etcdEnv(),
        // Its own process group: a terminal's Ctrl-C reaches the owner, which stops its users
        // before etcd (the exit hook still kills it if the owner goes away).
        detached: true,
      });
    } finally {
      // The child holds its own copy of the descriptor.
      closeSync(fd);
    }
    // A forgotten destroy() must not hang the test process; the exit hook kills what is left.
    child.unref();
    liveChildren.add(child);
    this.#child = child;
    this.#exitInfo = undefined;
    this.#exit = new Promise<ExitInfo>((resolve) => {
      const finish = (info: ExitInfo): void => {
        liveChildren.delete(child);
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
        host: tls === undefined ? LOOPBACK : TLS_HOSTNAME,
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
              { ...options, ca: tls.ca, cert: tls.cert, key: tls.key, servername: TLS_HOSTNAME },
              onResponse,
            );
      req.once('timeout', () => req.destroy(new Error('health request timed out')));
      req.once('error', reject);
      req.end();
    });
  }
}

// ---------------------------------------------------------------------------------------------

interface DeploymentInit {
  baseDir: string;
  spec: ClusterSpec;
  members: EtcdMember[];
}

/** Behaviour shared by single-member and multi-member fixtures. */
abstract class EtcdDeployment implements EtcdClientTarget {
  /** Temp directory holding data dirs, logs and certificates; removed by destroy(). */
  readonly baseDir: string;
  readonly members: readonly EtcdMember[];
  /** Client TLS material (client cert signed by `tls.authority`); undefined for plain HTTP. */
  readonly tls: EtcdTls | undefined;
  protected readonly spec: ClusterSpec;
  #destroyed = false;

  constructor(init: DeploymentInit) {
    this.baseDir = init.baseDir;
    this.spec = init.spec;
    this.members = init.members;
    this.tls = init.spec.clientTls;
  }

  /** Client URLs of all members. */
  get endpoints(): string[] {
    return this.members.map((m) => m.clientUrl);
  }

  /** The current `--initial-cluster-token`; changes on wipe(). */
  get clusterToken(): string {
    return this.spec.token;
  }

  /** PIDs of the members currently running. */
  get pids(): number[] {
    return this.members.flatMap((m) => (m.pid === undefined ? [] : [m.pid]));
  }

  /** An etcd3 client for all endpoints, without retries/circuit breakers. Close it. */
  createClient(overrides: Partial<IOptions> = {}): Etcd3 {
    return createEtcdClient(this, overrides);
  }

  /** Starts every stopped member concurrently and waits until all are healthy. */
  async start(opts: MemberStartOptions = {}): Promise<void> {
    await Promise.all(this.members.map((m) => m.start(opts)));
  }

  /** Stops every member concurrently. */
  async stop(timeoutMs = DEFAULT_STOP_TIMEOUT_MS): Promise<void> {
    await Promise.all(this.members.map((m) => m.stop(timeoutMs)));
  }

  /**
   * Kills all members, deletes their data and starts a brand-new cluster (new cluster ID) on
   * the same ports.
   */
  async wipe(opts: MemberStartOptions = {}): Promise<void> {
    // The data is deleted, so there is nothing a graceful (possibly slow) shutdown would save.
    await Promise.all(this.members.map((m) => m.kill()));
    await Promise.all(this.members.map((m) => rm(m.dataDir, { recursive: true, force: true })));
    this.spec.token = randomToken();
    await this.start(opts);
  }

  /**
   * Writes an etcd client config (the YAML format Cilium reads: `endpoints`, `trusted-ca-file`,
   * `cert-file`, `key-file`) and returns its path.
   */
  async writeClientConfig(path: string, opts: WriteClientConfigOptions = {}): Promise<string> {
    const config: Record<string, unknown> = { endpoints: opts.endpoints ?? this.endpoints };
    const files = opts.tls === false ? undefined : { ...this.tls, ...opts.tls };
    if (files?.caFile !== undefined) config['trusted-ca-file'] = files.caFile;
    if (files?.certFile !== undefined) config['cert-file'] = files.certFile;
    if (files?.keyFile !== undefined) config['key-file'] = files.keyFile;
    await mkdir(dirname(path), { recursive: true });
    await writeFile(path, toYaml(config));
    return path;
  }

  /** Kills every member and removes the temp directory. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    // The data is deleted anyway, so a graceful (possibly slow) shutdown buys nothing.
    await Promise.all(this.members.map((m) => m.kill()));
    await rm(this.baseDir, { recursive: true, force: true, maxRetries: 3 });
    liveTempDirs.delete(this.baseDir);
  }
}

/** A single-member etcd. */
export class EtcdServer extends EtcdDeployment {
  readonly member: EtcdMember;

  /** @internal Use startEtcd(). */
  constructor(init: DeploymentInit) {
    super(init);
    const member = init.members[0];
    if (member === undefined) throw new Error('EtcdServer needs exactly one member');
    this.member = member;
  }

  get clientUrl(): string {
    return this.member.clientUrl;
  }

  get pid(): number | undefined {
    return this.member.pid;
  }

  get dataDir(): string {
    return this.member.dataDir;
  }

  get logFile(): string {
    return this.member.logFile;
  }

  get running(): boolean {
    return this.member.running;
  }

  /** SIGKILL (crash); the data directory is kept. */
  kill(): Promise<void> {
    return this.member.kill();
  }

  /** Stop and start again: same ports, same data, same cluster ID. */
  restart(opts: MemberStartOptions = {}): Promise<void> {
    return this.member.restart(opts);
  }
}

/** A multi-member etcd cluster on loopback. */
export class EtcdCluster extends EtcdDeployment {
  get size(): number {
    return this.members.length;
  }

  /**
   * The member that reports itself as leader (`header.member_id === leader` in its status).
   * Polls until one is found, so it also waits for a re-election.
   */
  async leader(timeoutMs = 10_000): Promise<EtcdMember> {
    const deadline = Date.now() + timeoutMs;
    const problems = new Map<string, string>();
    for (;;) {
      for (const member of this.members) {
        if (!member.running) continue;
        try {
          const status = await member.status();
          if (status.header.member_id === status.leader) return member;
          problems.set(member.name, `follows ${status.leader}`);
        } catch (err) {
          problems.set(member.name, errorText(err));
        }
      }
      if (Date.now() >= deadline) {
        const detail = [...problems].map(([name, p]) => `${name}: ${p}`).join('; ');
        throw new Error(`no etcd leader after ${timeoutMs}ms (${detail || 'no member running'})`);
      }
      await sleep(HEALTH_POLL_INTERVAL_MS);
    }
  }
}

// ---------------------------------------------------------------------------------------------

interface RaftTiming {
  heartbeatIntervalMs: number;
  electionTimeoutMs: number;
}

const SINGLE_MEMBER_RAFT: RaftTiming = { heartbeatIntervalMs: 20, electionTimeoutMs: 200 };
const CLUSTER_RAFT: RaftTiming = { heartbeatIntervalMs: 100, electionTimeoutMs: 1000 };

interface Layout {
  count: number;
  raftTiming: RaftTiming;
  names: string[];
  dataDirs: (baseDir: string, index: number) => string;
}

async function createDeployment<T extends EtcdDeployment>(
  layout: Layout,
  opts: StartEtcdOptions,
  make: (init: DeploymentInit) => T,
): Promise<T> {
  const binary = findEtcdBinary(opts.etcdBinary);
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    installExitHooks();
    const baseDir = await mkdtemp(join(tmpdir(), 'clustermesh-etcd-'));
    liveTempDirs.add(baseDir);
    let deployment: T | undefined;
    try {
      let serverTls: ClusterSpec['serverTls'];
      let clientTls: EtcdTls | undefined;
      if (opts.tls === true) {
        const authority = opts.authority ?? (await createCA('clustermesh-test-etcd-ca'));
        const tlsDir = join(baseDir, 'tls');
        const server = await writeTlsBundle(
          tlsDir,
          authority,
          await issueCert(authority, loopbackServerCertOptions('etcd-server')),
          'server',
        );
        const client = await writeTlsBundle(
          tlsDir,
          authority,
          await issueCert(authority, { commonName: 'etcd-client', clientAuth: true }),
          'client',
        );
        serverTls = { caFile: server.caFile, certFile: server.certFile, keyFile: server.keyFile };
        clientTls = { ...client, authority };
      }
      const ports = await freePorts(layout.count * 2);
      const peerPort = (i: number): number => ports[i * 2 + 1] ?? 0;
      const spec: ClusterSpec = {
        binary,
        token: randomToken(),
        initialCluster: layout.names
          .map((name, i) => `${name}=http://${LOOPBACK}:${peerPort(i)}`)
          .join(','),
        logLevel: opts.logLevel ?? 'info',
        snapshotCount: opts.snapshotCount ?? DEFAULT_SNAPSHOT_COUNT,
        heartbeatIntervalMs: opts.heartbeatIntervalMs ?? layout.raftTiming.heartbeatIntervalMs,
        electionTimeoutMs: opts.electionTimeoutMs ?? layout.raftTiming.electionTimeoutMs,
        extraArgs: opts.extraArgs ?? [],
        serverTls,
        clientTls,
        readyTimeoutMs: opts.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS,
      };
      const members = layout.names.map(
        (name, i) =>
          new EtcdMember({
            name,
            clientPort: ports[i * 2] ?? 0,
            peerPort: peerPort(i),
            dataDir: layout.dataDirs(baseDir, i),
            logFile: join(baseDir, `${name}.log`),
            spec,
          }),
      );
      deployment = make({ baseDir, spec, members });
      await deployment.start();
      return deployment;
    } catch (err) {
      lastError = err;
      if (deployment === undefined) {
        await rm(baseDir, { recursive: true, force: true });
        liveTempDirs.delete(baseDir);
      } else {
        await deployment.destroy();
      }
      // Ports are probed then released before etcd binds them, so another process may win the race.
      if (!errorText(err).includes('address already in use')) throw err;
    }
  }
  throw lastError;
}

/** Starts a single-member etcd on random loopback ports. Call `destroy()` when done. */
export function startEtcd(opts: StartEtcdOptions = {}): Promise<EtcdServer> {
  const name = opts.name ?? 'etcd0';
  const { dataDir } = opts;
  return createDeployment(
    {
      count: 1,
      raftTiming: SINGLE_MEMBER_RAFT,
      names: [name],
      dataDirs: (baseDir) => dataDir ?? join(baseDir, `${name}.data`),
    },
    opts,
    (init) => new EtcdServer(init),
  );
}

/** Starts an `size`-member etcd cluster on loopback. Call `destroy()` when done. */
export function startEtcdCluster(
  size = 3,
  opts: Omit<StartEtcdOptions, 'dataDir'> = {},
): Promise<EtcdCluster> {
  if (!Number.isInteger(size) || size < 1) {
    return Promise.reject(new Error(`invalid etcd cluster size ${size}`));
  }
  const prefix = opts.name ?? 'etcd';
  const names = Array.from({ length: size }, (_, i) => `${prefix}${i}`);
  return createDeployment(
    {
      count: size,
      raftTiming: size === 1 ? SINGLE_MEMBER_RAFT : CLUSTER_RAFT,
      names,
      dataDirs: (baseDir, i) => join(baseDir, `${names[i] ?? String(i)}.data`),
    },
    opts,
    (init) => new EtcdCluster(init),
  );
}
