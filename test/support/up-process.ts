import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from './eventually.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

/**
 * `clustermesh up` as a user runs it: a child process in `dir`, its output kept for
 * failure messages, stopped by SIGINT (SIGKILL after a minute) so its own shutdown runs.
 */
export class UpProcess {
  private child: ChildProcess | undefined;
  private output = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  start(args: readonly string[], logLevel = 'warn'): void {
    const child = spawn(BIN, ['up', ...args], {
      cwd: this.dir,
      env: { ...process.env, LOG_LEVEL: logLevel },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    this.child = child;
  }

  /**
   * Waits until `up` has written mesh.json (it does once every cluster is ready) and
   * returns it; a timeout fails with everything `up` printed.
   */
  async ready(timeoutMs: number): Promise<MeshState> {
    return eventually(() => readMeshState(join(this.dir, '.clustermesh')), timeoutMs).catch(
      (err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${this.output}`);
      },
    );
  }

  /** Everything it printed so far (stdout and stderr). */
  get log(): string {
    return this.output;
  }

  async stop(): Promise<void> {
    if (this.child === undefined || this.child.exitCode !== null) return;
    this.child.kill('SIGINT');
    const killed = setTimeout(() => this.child?.kill('SIGKILL'), 60_000);
    await this.exited;
    clearTimeout(killed);
  }
}
