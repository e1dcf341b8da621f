/**
 * `clustermesh up` binds fixed addresses per cluster index (127.1.x, 127.2.x, …), so two
 * test files that each start one must not overlap, while the runner runs files two at a
 * time. Each such file holds this machine-wide lock while its meshes run: a directory
 * created atomically, holding the owner's PID so a lock left by a killed run is taken over.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const LOCK_DIR = join(tmpdir(), 'clustermesh-up-tests.lock');
const OWNER = join(LOCK_DIR, 'pid');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (up to `timeoutMs`) until this process holds the lock. */
export async function acquireUpLock(timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(LOCK_DIR);
      await writeFile(OWNER, String(process.pid));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(await readFile(OWNER, 'utf8').catch(() => ''));
    // No PID yet is a holder between mkdir and writeFile: wait for it like any holder.
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
      await rm(LOCK_DIR, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${LOCK_DIR}: still held by PID ${pid}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function releaseUpLock(): Promise<void> {
  const pid = Number(await readFile(OWNER, 'utf8').catch(() => ''));
  if (pid === process.pid) await rm(LOCK_DIR, { recursive: true, force: true });
}
