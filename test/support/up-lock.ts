/**
 * `clustermesh up` binds fixed addresses per cluster ID (127.1.x, 127.2.x, …), so two
 * test files whose meshes use the same IDs must not overlap, while the runner runs files
 * two at a time. Each such file holds a machine-wide lock while its meshes run: a
 * directory created atomically, holding the owner's PID so a lock left by a killed run is
 * taken over. There is one lock per block of IDs: files on IDs 1–3 (the default) take
 * turns, and a file that runs `up --first-cluster-id 4` (IDs 4–6) runs beside them.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** The first cluster ID of each block of three a mesh may use. */
export type UpIdBlock = 1 | 4 | 7;

function lockDir(block: UpIdBlock): string {
  return join(
    tmpdir(),
    block === 1 ? 'clustermesh-up-tests.lock' : `clustermesh-up-tests-${block}.lock`,
  );
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits (up to `timeoutMs`) until this process holds the lock of the IDs from `block`. */
export async function acquireUpLock(timeoutMs = 600_000, block: UpIdBlock = 1): Promise<void> {
  const dir = lockDir(block);
  const owner = join(dir, 'pid');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      await mkdir(dir);
      await writeFile(owner, String(process.pid));
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const pid = Number(await readFile(owner, 'utf8').catch(() => ''));
    // No PID yet is a holder between mkdir and writeFile: wait for it like any holder.
    if (Number.isInteger(pid) && pid > 0 && !alive(pid)) {
      await rm(dir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${dir}: still held by PID ${pid}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

export async function releaseUpLock(block: UpIdBlock = 1): Promise<void> {
  const dir = lockDir(block);
  const owner = join(dir, 'pid');
  const pid = Number(await readFile(owner, 'utf8').catch(() => ''));
  if (pid === process.pid) await rm(dir, { recursive: true, force: true });
}
