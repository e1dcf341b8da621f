import { randomBytes } from 'node:crypto';
import { readFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Etcd3, IOptions } from 'etcd3';
import { stringify as toYaml } from 'yaml';
import { findEtcdBinary } from './binary.js';
import { createEtcdClient, type EtcdClientTarget } from './client.js';
import {
  DEFAULT_STOP_TIMEOUT_MS,
  EtcdMember,
  HEALTH_POLL_INTERVAL_MS,
  LOOPBACK,
  type ClusterSpec,
  type EtcdClientTls,
  type MemberStartOptions,
} from './member.js';
import { freePorts } from './ports.js';
import { trackTempDir, untrackTempDir } from './reaper.js';

const DEFAULT_READY_TIMEOUT_MS = 20_000;
const DEFAULT_SNAPSHOT_COUNT = 1_000;
const START_ATTEMPTS = 3;

/** PEM files for an etcd that serves clients over mutual TLS. */
export interface EtcdTlsFiles {
  /** Signed the server certificate; etcd accepts only client certificates it signed too. */
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  /** A client certificate signed by the CA: used for health probes and handed to clients. */
  clientCertFile: string;
  clientKeyFile: string;
}

export interface StartEtcdOptions {
  /**
   * Serve clients over mutual TLS with these files. A function is called with a directory
   * inside the deployment's temp dir (created, removed with it) to write them into.
   */
  tls?: EtcdTlsFiles | ((dir: string) => Promise<EtcdTlsFiles>);
  /** Data directory; defaults to a directory inside the deployment's temp dir. Single member only. */
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
  /** Loopback address clients connect to (default 127.0.0.1). Single member only. */
  clientHost?: string;
  /** Client port (default: a free one). Single member only. */
  clientPort?: number;
  /** Name TLS clients (health probes) verify; default localhost. */
  tlsServerName?: string;
}

export interface WriteClientConfigOptions {
  /** Defaults to every member's client URL. */
  endpoints?: string[];
  /** Overrides the TLS files written; `false` omits them even for a TLS etcd. */
  tls?: Partial<Pick<EtcdClientTls, 'caFile' | 'certFile' | 'keyFile'>> | false;
}

function randomToken(): string {
  return `clustermesh-${randomBytes(8).toString('hex')}`;
}

// The whole text, not just the first line: etcd's reason sits in the log tail below it.
function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

interface DeploymentInit {
  baseDir: string;
  spec: ClusterSpec;
  members: EtcdMember[];
}

/** Behaviour shared by single-member and multi-member deployments. */
abstract class EtcdDeployment implements EtcdClientTarget {
  /** Temp directory holding data dirs, logs and TLS files; removed by destroy(). */
  readonly baseDir: string;
  readonly members: readonly EtcdMember[];
  /** Client TLS material; undefined for plain HTTP. */
  readonly tls: EtcdClientTls | undefined;
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

  /** Stops every member concurrently; the data is kept for start(). */
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
    untrackTempDir(this.baseDir);
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

async function resolveTls(
  opts: StartEtcdOptions,
  baseDir: string,
): Promise<Pick<ClusterSpec, 'serverTls' | 'clientTls'>> {
  if (opts.tls === undefined) return { serverTls: undefined, clientTls: undefined };
  let files: EtcdTlsFiles;
  if (typeof opts.tls === 'function') {
    const dir = join(baseDir, 'tls');
    await mkdir(dir, { recursive: true });
    files = await opts.tls(dir);
  } else {
    files = opts.tls;
  }
  const [ca, cert, key] = await Promise.all([
    readFile(files.caFile, 'utf8'),
    readFile(files.clientCertFile, 'utf8'),
    readFile(files.clientKeyFile, 'utf8'),
  ]);
  return {
    serverTls: {
      caFile: files.caFile,
      certFile: files.serverCertFile,
      keyFile: files.serverKeyFile,
    },
    clientTls: {
      caFile: files.caFile,
      certFile: files.clientCertFile,
      keyFile: files.clientKeyFile,
      ca,
      cert,
      key,
    },
  };
}

async function createDeployment<T extends EtcdDeployment>(
  layout: Layout,
  opts: StartEtcdOptions,
  make: (init: DeploymentInit) => T,
): Promise<T> {
  const binary = findEtcdBinary(opts.etcdBinary);
  let lastError: unknown;
  for (let attempt = 1; attempt <= START_ATTEMPTS; attempt++) {
    const baseDir = await mkdtemp(join(tmpdir(), 'clustermesh-etcd-'));
    trackTempDir(baseDir);
    let deployment: T | undefined;
    try {
      const tls = await resolveTls(opts, baseDir);
      const ports = await freePorts(layout.count * 2);
      if (opts.clientPort !== undefined && layout.count === 1) ports[0] = opts.clientPort;
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
        ...tls,
        clientHost: (layout.count === 1 ? opts.clientHost : undefined) ?? LOOPBACK,
        tlsServerName: opts.tlsServerName ?? 'localhost',
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
        untrackTempDir(baseDir);
      } else {
        await deployment.destroy();
      }
      // Ports are probed then released before etcd binds them, so another process may win the race.
      if (!errorText(err).includes('address already in use')) throw err;
    }
  }
  throw lastError;
}

/**
 * Starts a single-member etcd on random loopback ports, data and log in a fresh temp dir.
 * `stop()` keeps the data; `destroy()` removes it. Whatever is left when this process exits is
 * killed and removed then (reaper.ts).
 */
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
