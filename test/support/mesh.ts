import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { Registry } from '../../src/registry/registry.js';
import { errorMessage } from '../../src/lib/errors.js';
import { startEtcd, type EtcdServer } from './etcd.js';
import { until } from './eventually.js';
import { freePort } from './ports.js';
import { TcpProxy } from './tcp-proxy.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

const live = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of live) p.kill('SIGKILL');
});

/** A daemon (`bin/clustermesh …`) running as its own process, logs in a file. */
export class DaemonProcess {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();

  constructor(
    readonly name: string,
    private readonly args: readonly string[],
    readonly logFile: string,
  ) {}

  start(): void {
    const out = createWriteStream(this.logFile, { flags: 'a' });
    const proc = spawn(process.execPath, [BIN, ...this.args], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LOG_LEVEL: process.env.DAEMON_LOG_LEVEL ?? 'info' },
    });
    proc.stdout.pipe(out);
    proc.stderr.pipe(out);
    live.add(proc);
    this.proc = proc;
    this.exited = new Promise((resolve) => {
      proc.once('exit', () => {
        live.delete(proc);
        resolve();
      });
    });
  }

  get pid(): number | undefined {
    return this.proc?.exitCode === null ? this.proc.pid : undefined;
  }

  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const proc = this.proc;
    if (proc === undefined || proc.exitCode !== null || proc.signalCode !== null) return;
    proc.kill(signal);
    const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
    await this.exited;
    clearTimeout(timer);
  }

  async logTail(lines = 20): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '');
    return text.trim().split('\n').slice(-lines).join('\n');
  }
}

export interface MeshCluster {
  readonly name: string;
  readonly id: number;
  readonly etcd: EtcdServer;
  /** What other clusters dial: a proxy in front of `etcd`, so a test can partition it. */
  readonly proxy: TcpProxy;
  readonly configDir: string;
  readonly apiserver: DaemonProcess;
  readonly agent: DaemonProcess;
  /** Present with `kvstoremesh: true`. */
  readonly kvstoremesh?: DaemonProcess | undefined;
  /** KVStoreMesh's config dir (its remote clusters). */
  readonly kvstoremeshConfigDir?: string | undefined;
  readonly kvstoremeshHealthUrl?: string | undefined;
  /** `http://127.0.0.1:PORT` of the agent API. */
  readonly agentUrl: string;
  readonly healthUrl: string;
  /** In-process view of the cluster's registry (for applying objects). */
  readonly registry: Registry;
  readonly backend: EtcdBackend;
}

export interface MeshOptions {
  /** Heartbeat written by apiservers and expected by agents (default 1s). */
  readonly heartbeat?: string;
  /** Agents' reconnect back-off unit (default 200ms). */
  readonly retryBase?: string;
  /** Extra agent flags per cluster name. */
  readonly agentArgs?: (cluster: string) => readonly string[];
  /**
   * Run a KVStoreMesh per cluster: it dials the other clusters (through their proxies)
   * and agents dial only their own etcd, reading the `cilium/cache/...` copy.
   */
  readonly kvstoremesh?: boolean;
}

/**
 * N clusters, each with a real etcd, an apiserver process and one agent process,
 * every agent configured with every other cluster (through that cluster's proxy).
 */
export class ProcessMesh {
  readonly clusters = new Map<string, MeshCluster>();

  private constructor(
    readonly dir: string,
    private readonly opts: MeshOptions,
  ) {}

  static async start(
    specs: readonly { name: string; id: number }[],
    opts: MeshOptions = {},
  ): Promise<ProcessMesh> {
    const mesh = new ProcessMesh(await mkdtemp(join(tmpdir(), 'clustermesh-e2e-')), opts);
    try {
      for (const s of specs) await mesh.addCluster(s.name, s.id, { start: false });
      for (const c of mesh.clusters.values()) await mesh.connectAll(c);
      for (const c of mesh.clusters.values()) {
        c.apiserver.start();
        c.kvstoremesh?.start();
        c.agent.start();
      }
      for (const c of mesh.clusters.values()) await mesh.waitHealthy(c);
    } catch (err) {
      await mesh.destroy();
      throw err;
    }
    return mesh;
  }

  /** Creates a cluster (etcd, proxy, daemons); `start: false` leaves the daemons stopped. */
  async addCluster(name: string, id: number, o: { start: boolean }): Promise<MeshCluster> {
    const etcd = await startEtcd({ name: `etcd-${name}` });
    const proxy = await TcpProxy.start({ host: '127.0.0.1', port: etcd.member.clientPort });
    const configDir = join(this.dir, name, 'clustermesh');
    await mkdir(configDir, { recursive: true });
    const health = await freePort();
    const api = await freePort();
    const kv = ['--kvstore-opt', `etcd.address=${etcd.clientUrl}`];
    const common = ['--cluster-name', name, '--cluster-id', String(id), ...kv];
    const apiserver = new DaemonProcess(
      `${name}/apiserver`,
      [
        'apiserver',
        ...common,
        '--health-addr',
        `127.0.0.1:${health}`,
        '--heartbeat-interval',
        this.opts.heartbeat ?? '1s',
      ],
      join(this.dir, name, 'apiserver.log'),
    );
    const agent = new DaemonProcess(
      `${name}/agent`,
      [
        'agent',
        ...common,
        '--node-name',
        'node-1',
        '--clustermesh-config',
        configDir,
        '--api-addr',
        `127.0.0.1:${api}`,
        '--heartbeat-interval',
        this.opts.heartbeat ?? '1s',
        '--clustermesh-retry-base',
        this.opts.retryBase ?? '200ms',
        ...(this.opts.agentArgs?.(name) ?? []),
      ],
      join(this.dir, name, 'agent.log'),
    );
    let kvstoremesh: DaemonProcess | undefined;
    let kvstoremeshConfigDir: string | undefined;
    let kvstoremeshHealthUrl: string | undefined;
    if (this.opts.kvstoremesh === true) {
      kvstoremeshConfigDir = join(this.dir, name, 'kvstoremesh');
      await mkdir(kvstoremeshConfigDir, { recursive: true });
      const kvsmHealth = await freePort();
      kvstoremeshHealthUrl = `http://127.0.0.1:${kvsmHealth}`;
      kvstoremesh = new DaemonProcess(
        `${name}/kvstoremesh`,
        [
          'kvstoremesh',
          ...common,
          '--clustermesh-config',
          kvstoremeshConfigDir,
          '--health-addr',
          `127.0.0.1:${kvsmHealth}`,
          '--drain-grace-period',
          '1s',
          '--clustermesh-retry-base',
          this.opts.retryBase ?? '200ms',
          '--heartbeat-interval',
          this.opts.heartbeat ?? '1s',
        ],
        join(this.dir, name, 'kvstoremesh.log'),
      );
    }
    const backend = new EtcdBackend({ endpoints: etcd.endpoints });
    const cluster: MeshCluster = {
      kvstoremesh,
      kvstoremeshConfigDir,
      kvstoremeshHealthUrl,
      name,
      id,
      etcd,
      proxy,
      configDir,
      apiserver,
      agent,
      agentUrl: `http://127.0.0.1:${api}`,
      healthUrl: `http://127.0.0.1:${health}`,
      registry: new Registry(backend),
      backend,
    };
    this.clusters.set(name, cluster);
    if (o.start) {
      apiserver.start();
      kvstoremesh?.start();
      agent.start();
      await this.waitHealthy(cluster);
    }
    return cluster;
  }

  /** Writes, in `c`'s config dir, one etcd config per other cluster. */
  async connectAll(c: MeshCluster): Promise<void> {
    for (const other of this.clusters.values()) {
      if (other.name !== c.name) await this.connect(c, other);
    }
  }

  /**
   * `from` learns about `to`. With KVStoreMesh, KVStoreMesh dials `to` and the agent
   * dials its own etcd (where KVStoreMesh caches `to`).
   */
  async connect(from: MeshCluster, to: MeshCluster, fileName = to.name): Promise<void> {
    if (from.kvstoremeshConfigDir !== undefined) {
      await writeFile(
        join(from.kvstoremeshConfigDir, fileName),
        `endpoints:\n  - ${to.proxy.url}\n`,
      );
      await writeFile(join(from.configDir, fileName), `endpoints:\n  - ${from.etcd.clientUrl}\n`);
      return;
    }
    await writeFile(join(from.configDir, fileName), `endpoints:\n  - ${to.proxy.url}\n`);
  }

  async disconnect(from: MeshCluster, fileName: string): Promise<void> {
    if (from.kvstoremeshConfigDir !== undefined) {
      await rm(join(from.kvstoremeshConfigDir, fileName), { force: true });
    }
    await rm(join(from.configDir, fileName), { force: true });
  }

  get(name: string): MeshCluster {
    const c = this.clusters.get(name);
    if (c === undefined) throw new Error(`no cluster ${name}`);
    return c;
  }

  async waitHealthy(c: MeshCluster, timeoutMs = 45_000): Promise<void> {
    const healthy = async (): Promise<boolean> => {
      const [a, b, k] = await Promise.all([
        ok(`${c.agentUrl}/healthz`),
        ok(`${c.healthUrl}/readyz`),
        c.kvstoremeshHealthUrl === undefined ? true : ok(`${c.kvstoremeshHealthUrl}/healthz`),
      ]);
      return a && b && k;
    };
    try {
      await until(healthy, { timeoutMs, intervalMs: 100, message: `${c.name} healthy` });
    } catch (err) {
      // The daemons' logs say why; they are read only now because reading them is async.
      throw new Error(
        `${errorMessage(err)}\n${await c.apiserver.logTail()}\n${await c.agent.logTail()}` +
          `\n${(await c.kvstoremesh?.logTail()) ?? ''}`,
        { cause: err },
      );
    }
  }

  async destroy(): Promise<void> {
    for (const c of this.clusters.values()) {
      await Promise.all([c.agent.stop(), c.apiserver.stop(), c.kvstoremesh?.stop()]);
      await c.backend.close();
      await c.proxy.close();
      await c.etcd.destroy();
    }
    if (process.env.KEEP_E2E_DIR === undefined)
      await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * Remote TCP ports the process has connections to (from /proc: its socket inodes
 * matched against /proc/net/tcp{,6}), to check whom a daemon talks to.
 */
export async function connectedPorts(pid: number): Promise<Set<number>> {
  const { readdir, readlink } = await import('node:fs/promises');
  const inodes = new Set<string>();
  for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
    const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => '');
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m?.[1] !== undefined) inodes.add(m[1]);
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const text = await readFile(table, 'utf8').catch(() => '');
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      const remote = cols[2];
      const inode = cols[9];
      if (remote === undefined || inode === undefined || !inodes.has(inode)) continue;
      const port = parseInt(remote.split(':')[1] ?? '0', 16);
      // State 0A is LISTEN: no peer.
      if (cols[3] !== '0A' && port !== 0) ports.add(port);
    }
  }
  return ports;
}

async function ok(url: string): Promise<boolean> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.text();
    return res.ok;
  } catch {
    return false;
  }
}

/** GET a JSON document from a daemon. */
export async function getJson<T>(url: string): Promise<T> {
  const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return (await res.json()) as T;
}
