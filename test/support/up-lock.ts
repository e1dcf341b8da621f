/**
 * `clustermesh up` always uses the same addresses (127.1.x.x, 127.2.x.x, …, agent API
 * port 9876, ClusterIPs on port 80), so two test files starting meshes must not run at
 * once. The test runner runs files in parallel processes: this lock file serialises them.
 */
import { open, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

const LOCK = join(tmpdir(), 'clustermesh-up-addresses.lock');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Waits until this process holds the addresses of `up`; returns the release function. */
export async function acquireUpAddresses(timeoutMs = 600_000): Promise<() => Promise<void>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fh = await open(LOCK, 'wx');
      await fh.writeFile(String(process.pid));
      await fh.close();
      return async () => {
        await rm(LOCK, { force: true });
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    // A holder that died without releasing leaves a stale lock.
    const holder = Number(await readFile(LOCK, 'utf8').catch(() => ''));
    if (Number.isInteger(holder) && holder > 0 && !alive(holder)) {
      await rm(LOCK, { force: true });
      continue;
    }
    if (Date.now() > deadline) throw new Error(`${LOCK} held by ${holder} for too long`);
    await sleep(250);
  }
}
