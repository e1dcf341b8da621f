/**
 * A `clustermesh agent` under test in its own process, so its CPU and memory are its
 * own: preloaded with a SIGUSR2 → full GC + memory report hook (SIGUSR1 is the
 * inspector's), read through its API and /proc. Shared by the benchmarks.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { until } from '../test/support/eventually.js';

export const BIN = fileURLToPath(new URL('../bin/clustermesh', import.meta.url));

const MEM_HOOK =
  'data:text/javascript,process.on("SIGUSR2",()=>{globalThis.gc();' +
  'process.stderr.write("BENCH_MEM "+JSON.stringify(process.memoryUsage())+"\\n")})';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface MemoryUsage {
  rss: number;
  heapTotal: number;
  heapUsed: number;
  external: number;
  arrayBuffers: number;
}

function isMemoryUsage(v: unknown): v is MemoryUsage {
  return (
    typeof v === 'object' &&
    v !== null &&
    ['rss', 'heapTotal', 'heapUsed', 'external', 'arrayBuffers'].every(
      (k) => typeof (v as Record<string, unknown>)[k] === 'number',
    )
  );
}

/** `VmRSS` / `VmHWM` of a process in bytes, from /proc. */
export function procMemory(pid: number): { rss: number; hwm: number } {
  const text = readFileSync(`/proc/${String(pid)}/status`, 'utf8');
  const field = (name: string): number => {
    const m = new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text);
    if (m?.[1] === undefined) throw new Error(`no ${name} in /proc/${String(pid)}/status`);
    return Number(m[1]) * 1024;
  };
  return { rss: field('VmRSS'), hwm: field('VmHWM') };
}

/** The agent under test, in its own process. */
export class AgentProcess {
  private readonly child: ChildProcess;
  private readonly exited: Promise<void>;
  private readonly stderrTail: string[] = [];
  private memWaiter: ((m: MemoryUsage) => void) | undefined;
  private running = true;

  constructor(
    readonly apiUrl: string,
    args: readonly string[],
    nodeArgs: readonly string[] = [],
  ) {
    const argv = ['--expose-gc', ...nodeArgs, '--import', MEM_HOOK, BIN, ...args];
    this.child = spawn(process.execPath, argv, {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, LOG_LEVEL: 'warn' },
    });
    this.exited = new Promise((resolve) => {
      this.child.once('exit', () => {
        this.running = false;
        resolve();
      });
    });
    const stderr = this.child.stderr;
    if (stderr !== null) {
      createInterface({ input: stderr }).on('line', (line) => {
        if (line.startsWith('BENCH_MEM ')) {
          const parsed: unknown = JSON.parse(line.slice('BENCH_MEM '.length));
          if (isMemoryUsage(parsed)) this.memWaiter?.(parsed);
          return;
        }
        this.stderrTail.push(line);
        if (this.stderrTail.length > 20) this.stderrTail.shift();
      });
    }
  }

  get pid(): number {
    const pid = this.child.pid;
    if (pid === undefined || !this.running) throw new Error(`agent exited\n${this.tail()}`);
    return pid;
  }

  tail(): string {
    return this.stderrTail.join('\n');
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    const res = await fetch(`${this.apiUrl}${path}`, { signal: AbortSignal.timeout(10_000) });
    return { status: res.status, body: await res.text() };
  }

  async json(path: string): Promise<unknown> {
    const res = await this.get(path);
    if (res.status !== 200) throw new Error(`${path}: HTTP ${String(res.status)}`);
    return JSON.parse(res.body) as unknown;
  }

  async waitHealthy(timeoutMs = 30_000): Promise<void> {
    await until(
      async () => {
        if (!this.running) throw new Error(`agent exited during startup\n${this.tail()}`);
        try {
          return (await this.get('/healthz')).status === 200;
        } catch {
          return false; // Not listening yet.
        }
      },
      { timeoutMs, intervalMs: 100, message: () => `agent healthy\n${this.tail()}` },
    );
  }

  /** Two forced full GCs (the second frees what the first's finalizers released), then usage. */
  async memoryAfterGc(): Promise<MemoryUsage & { vmRss: number; vmHwm: number }> {
    let usage: MemoryUsage | undefined;
    for (let i = 0; i < 2; i++) {
      usage = await new Promise<MemoryUsage>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(new Error(`no memory report from the agent\n${this.tail()}`));
        }, 10_000);
        this.memWaiter = (m) => {
          clearTimeout(timer);
          this.memWaiter = undefined;
          resolve(m);
        };
        process.kill(this.pid, 'SIGUSR2');
      });
      await sleep(200);
    }
    if (usage === undefined) throw new Error('unreachable');
    const proc = procMemory(this.pid);
    return { ...usage, vmRss: proc.rss, vmHwm: proc.hwm };
  }

  async stop(): Promise<void> {
    if (!this.running) return;
    this.child.kill('SIGTERM');
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(timer);
  }
}
