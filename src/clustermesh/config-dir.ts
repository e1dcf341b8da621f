import { createHash } from 'node:crypto';
import { watch, type FSWatcher } from 'node:fs';
import { readFile, readdir, stat } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import type { Logger } from 'pino';
import { clusterNameProblem } from '../keyspace/index.js';
import { errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import type { IgnoredClusterConfig } from './status.js';

/** Reacts to the cluster configs found in the directory. Calls are never concurrent. */
export interface ConfigDirHandler {
  /** A new cluster config, or a tracked one whose content changed. */
  add(name: string, path: string): void;
  /** A tracked config vanished or stopped being a config. */
  remove(name: string): void;
  /** A config-looking file is skipped (called when the reason first appears). */
  ignored?(name: string, reason: string, kind: IgnoredKind): void;
}

/**
 * `local`: the local cluster's own entry (normal in shared secrets); `invalid-name`: a problem;
 * `unreadable`: an entry named like a cluster that cannot be read as a file (a directory, no
 * permission).
 */
export type IgnoredKind = 'local' | 'invalid-name' | 'unreadable';

export interface ConfigDirWatcherOptions {
  readonly dir: string;
  readonly handler: ConfigDirHandler;
  /** Files named like the local cluster are skipped. */
  readonly localClusterName?: string | undefined;
  /** Full rescan period: fs.watch misses some symlink swaps and directories created later. */
  readonly rescanIntervalMs?: number | undefined;
  /** Watch with fs.watch in addition to rescanning (default true; off where inotify is unavailable). */
  readonly fsWatch?: boolean | undefined;
  /** Coalesces bursts of fs events (a Secret update is several renames). */
  readonly debounceMs?: number | undefined;
  readonly log?: Logger | undefined;
}

const DEFAULT_RESCAN_INTERVAL_MS = 2_000;
const DEFAULT_DEBOUNCE_MS = 20;
/** Reference rule: a file is an etcd config iff its content contains this. */
const CONFIG_MARKER = 'endpoints:';

interface Ignored {
  readonly kind: IgnoredKind;
  readonly reason: string;
}

/**
 * Watches the `--clustermesh-config` directory: one file per remote cluster, the
 * file name being the cluster name (reference `pkg/clustermesh/common/config.go`).
 *
 * Every trigger (fs event, period, start) rescans the whole directory rather than
 * the file an event names: Kubernetes Secret mounts update through a `..data`
 * symlink swap, whose events name neither the config files nor their content.
 * Content hashes decide what changed, so spurious triggers emit nothing.
 */
export class ConfigDirWatcher {
  private readonly tracked = new Map<string, { path: string; hash: string }>();
  private readonly ignoredNow = new Map<string, Ignored>();
  private readonly log: Logger;
  private readonly rescanIntervalMs: number;
  private readonly debounceMs: number;
  private fsWatcher: FSWatcher | undefined;
  private interval: NodeJS.Timeout | undefined;
  private debounce: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private again = false;
  private running = false;
  private dirMissingLogged = false;

  constructor(private readonly opts: ConfigDirWatcherOptions) {
    this.log = (opts.log ?? silentLogger).child({ configDir: opts.dir });
    this.rescanIntervalMs = opts.rescanIntervalMs ?? DEFAULT_RESCAN_INTERVAL_MS;
    this.debounceMs = opts.debounceMs ?? DEFAULT_DEBOUNCE_MS;
  }

  /** Scans once (handler calls for every config present happen before this resolves), then watches. */
  async start(): Promise<void> {
    if (this.running) return;
    this.running = true;
    await this.rescan();
    if (!this.isRunning()) return;
    this.interval = setInterval(() => {
      void this.rescan();
    }, this.rescanIntervalMs);
  }

  /** Stops watching; resolves once an in-flight scan ended. No handler calls afterwards. */
  async stop(): Promise<void> {
    this.running = false;
    clearInterval(this.interval);
    clearTimeout(this.debounce);
    this.interval = undefined;
    this.debounce = undefined;
    this.closeFsWatcher();
    await this.scanning;
  }

  /** Names and paths of the configs currently tracked. */
  configs(): ReadonlyMap<string, string> {
    return new Map([...this.tracked].map(([name, t]) => [name, t.path]));
  }

  /** Config-looking files skipped because of an invalid name. */
  invalidConfigs(): IgnoredClusterConfig[] {
    return [...this.ignoredNow]
      .filter(([, i]) => i.kind === 'invalid-name')
      .map(([name, i]) => ({ name, reason: i.reason }))
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /** Rescans now (while started); concurrent calls coalesce into at most one more scan. */
  rescan(): Promise<void> {
    if (this.scanning !== undefined) {
      this.again = true;
      return this.scanning;
    }
    this.scanning = (async () => {
      do {
        this.again = false;
        await this.scanOnce();
      } while (this.takeAgain() && this.isRunning());
    })().finally(() => {
      this.scanning = undefined;
    });
    return this.scanning;
  }

  // Read through calls: the compiler would otherwise keep these fields narrowed across awaits.
  private isRunning(): boolean {
    return this.running;
  }

  private takeAgain(): boolean {
    const again = this.again;
    this.again = false;
    return again;
  }

  private ensureFsWatcher(): void {
    if (this.fsWatcher !== undefined || !this.running || this.opts.fsWatch === false) return;
    try {
      const w = watch(this.opts.dir, { persistent: false }, () => {
        this.schedule();
      });
      w.on('error', (err) => {
        // e.g. the directory was removed: the periodic scan re-creates the watcher.
        this.log.debug({ err: errorMessage(err) }, 'config directory watcher failed');
        if (this.fsWatcher === w) this.closeFsWatcher();
      });
      this.fsWatcher = w;
    } catch (err) {
      this.log.debug({ err: errorMessage(err) }, 'cannot watch config directory yet');
    }
  }

  private closeFsWatcher(): void {
    this.fsWatcher?.close();
    this.fsWatcher = undefined;
  }

  private schedule(): void {
    if (!this.running) return;
    clearTimeout(this.debounce);
    this.debounce = setTimeout(() => {
      this.debounce = undefined;
      void this.rescan();
    }, this.debounceMs);
  }

  private async scanOnce(): Promise<void> {
    this.ensureFsWatcher();
    let names: string[];
    try {
      names = await readdir(this.opts.dir);
      this.dirMissingLogged = false;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        // A transient error must not disconnect every cluster: keep the current state.
        this.log.warn({ err: errorMessage(err) }, 'cannot read clustermesh config directory');
        return;
      }
      if (!this.dirMissingLogged) {
        this.dirMissingLogged = true;
        this.log.warn('clustermesh config directory does not exist (yet)');
      }
      names = [];
    }

    const found = new Map<string, { path: string; hash: string }>();
    const ignored = new Map<string, Ignored>();
    for (const name of names.sort()) {
      // Secret-mount internals (`..data`, `..2024_…`) and writers' temp files: never a cluster.
      if (name.startsWith('..')) continue;
      const path = join(this.opts.dir, name);
      const candidate = await readConfigCandidate(path);
      if (candidate.kind === 'other' || candidate.kind === 'gone') continue;
      const skip = this.skipReason(name);
      if (skip !== undefined) {
        // Unreadable entries with other names are Secret-mount internals such as `..data`.
        if (candidate.kind === 'config') ignored.set(name, skip);
        continue;
      }
      if (candidate.kind === 'unreadable') {
        ignored.set(name, { kind: 'unreadable', reason: candidate.reason });
        continue;
      }
      const hash = createHash('sha256').update(candidate.content);
      // Rotated certificates change the files a config names, not the config: they count
      // as a change too, so the connection is re-established with them.
      for (const file of await tlsFileContents(this.opts.dir, candidate.content)) hash.update(file);
      found.set(name, { path, hash: hash.digest('hex') });
    }
    // stop() ran while this scan was reading files: the handler must hear nothing more.
    if (!this.isRunning()) return;
    this.reportIgnored(ignored);

    for (const name of [...this.tracked.keys()]) {
      if (found.has(name)) continue;
      this.tracked.delete(name);
      this.log.info({ cluster: name }, 'remote cluster configuration removed');
      this.opts.handler.remove(name);
    }
    for (const [name, f] of found) {
      const prev = this.tracked.get(name);
      if (prev?.hash === f.hash) continue;
      this.tracked.set(name, f);
      this.log.info(
        { cluster: name, path: f.path },
        prev === undefined
          ? 'remote cluster configuration added'
          : 'remote cluster configuration changed',
      );
      this.opts.handler.add(name, f.path);
    }
  }

  private skipReason(name: string): Ignored | undefined {
    if (name === this.opts.localClusterName) {
      return { kind: 'local', reason: 'configuration of the local cluster' };
    }
    const problem = clusterNameProblem(name);
    if (problem !== null)
      return { kind: 'invalid-name', reason: `invalid cluster name: ${problem}` };
    return undefined;
  }

  private reportIgnored(now: Map<string, Ignored>): void {
    for (const [name, i] of now) {
      const prev = this.ignoredNow.get(name);
      if (prev?.reason === i.reason) continue;
      // Logged once per file, not on every periodic rescan.
      if (i.kind === 'local') {
        this.log.debug({ cluster: name }, 'ignoring configuration of the local cluster');
      } else if (i.kind === 'unreadable') {
        this.log.warn(
          { cluster: name, reason: i.reason },
          'ignoring clustermesh configuration entry that cannot be read as a file',
        );
      } else {
        this.log.warn(
          { cluster: name, reason: i.reason },
          'ignoring clustermesh configuration file with an invalid cluster name',
        );
      }
      this.opts.handler.ignored?.(name, i.reason, i.kind);
    }
    this.ignoredNow.clear();
    for (const [name, i] of now) this.ignoredNow.set(name, i);
  }
}

type Candidate =
  | { readonly kind: 'config'; readonly content: string }
  /** A readable file that is not an etcd config (a certificate, say). */
  | { readonly kind: 'other' }
  /** Removed since readdir, or a dangling symlink: a key dropped from a Secret mount. */
  | { readonly kind: 'gone' }
  | { readonly kind: 'unreadable'; readonly reason: string };

/** What `path` holds: an etcd config (a regular readable file with the marker), or why not. */
async function readConfigCandidate(path: string): Promise<Candidate> {
  try {
    // stat follows symlinks: Secret mounts expose configs as `<name> -> ..data/<name>`.
    const st = await stat(path);
    if (!st.isFile()) return { kind: 'unreadable', reason: 'not a regular file' };
    const content = await readFile(path, 'utf8');
    return content.includes(CONFIG_MARKER) ? { kind: 'config', content } : { kind: 'other' };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'gone' };
    return { kind: 'unreadable', reason: `cannot read: ${errorMessage(err)}` };
  }
}

const TLS_FILE_KEY = /^(?:trusted-ca-file|cert-file|key-file):\s*['"]?([^'"\s#]+)/gm;

/** The contents of the certificate and key files a config names (missing ones as empty). */
async function tlsFileContents(dir: string, config: string): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (const m of config.matchAll(TLS_FILE_KEY)) {
    const file = m[1] ?? '';
    const path = isAbsolute(file) ? file : join(dir, file);
    out.push(await readFile(path).catch(() => Buffer.alloc(0)));
  }
  return out;
}
