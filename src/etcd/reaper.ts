/**
 * etcd members run detached (their own process group, so a terminal's Ctrl-C reaches their
 * owner, which stops its users first), and so they would outlive an owner that exits without
 * stopping them. Every member and temp directory is tracked here, and the process `exit` hook
 * kills and removes what is left.
 */
import type { ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';

const liveChildren = new Set<ChildProcess>();
const liveTempDirs = new Set<string>();
let exitHookInstalled = false;

function ensureExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', killAllEtcdSync);
}

export function trackChild(child: ChildProcess): void {
  ensureExitHook();
  liveChildren.add(child);
}

export function untrackChild(child: ChildProcess): void {
  liveChildren.delete(child);
}

export function trackTempDir(dir: string): void {
  ensureExitHook();
  liveTempDirs.add(dir);
}

export function untrackTempDir(dir: string): void {
  liveTempDirs.delete(dir);
}

/**
 * SIGKILLs every etcd this process started and removes their temp directories, synchronously:
 * usable from an `exit` or signal handler. Owners without an orderly shutdown of their own
 * (test processes) call it on SIGINT/SIGTERM.
 */
export function killAllEtcdSync(): void {
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
