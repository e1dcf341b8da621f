/**
 * A client with a wrong certificate never reaches the apiserver: etcd refuses its TLS
 * handshake before any key is read or written. etcd logs each refusal as a structured
 * line, `{"level":"warn",…,"msg":"rejected connection","remote-addr":"127.0.0.1:44796",
 * "server-name":"","error":"tls: failed to verify client certificate: x509: certificate
 * signed by unknown authority"}`, so the apiserver, which runs beside its etcd, follows
 * that log to log and count these refusals as it does the ones it decides itself.
 *
 * A client retries a refused handshake with backoff and etcd logs every attempt: the
 * attempts of one client (same address, same error) less than `burstMs` apart are one
 * refusal.
 */
import { open, stat } from 'node:fs/promises';
import { sleep } from '../lib/abort.js';

/** One refused client, as read from etcd's log. */
export interface RejectedConnection {
  /** `host:port` the client connected from. */
  readonly remoteAddr: string;
  /** etcd's reason, e.g. `tls: failed to verify client certificate: …`. */
  readonly error: string;
  /** etcd's timestamp of the first attempt. */
  readonly ts: string;
}

/** The rejected connection a line of etcd's zap log reports, if it is one. */
export function parseRejectedConnection(line: string): RejectedConnection | undefined {
  if (!line.includes('rejected connection')) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof raw !== 'object' || raw === null) return undefined;
  const o = raw as Record<string, unknown>;
  if (o.msg !== 'rejected connection') return undefined;
  return {
    remoteAddr: typeof o['remote-addr'] === 'string' ? o['remote-addr'] : '',
    error: typeof o.error === 'string' ? o.error : '',
    ts: typeof o.ts === 'string' ? o.ts : '',
  };
}

/** Groups the attempts of one client into one refusal. */
export class RefusalBursts {
  private readonly last = new Map<string, number>();

  constructor(private readonly burstMs = 5000) {}

  /** Whether a rejection at `nowMs` starts a new refusal. */
  isNew(r: RejectedConnection, nowMs: number): boolean {
    const host = r.remoteAddr.replace(/:\d+$/, '');
    const key = `${host}\n${r.error}`;
    const prev = this.last.get(key);
    this.last.set(key, nowMs);
    for (const [k, t] of this.last) if (nowMs - t > this.burstMs) this.last.delete(k);
    return prev === undefined || nowMs - prev > this.burstMs;
  }
}

export interface FollowOptions {
  readonly file: string;
  readonly onRefusal: (r: RejectedConnection) => void;
  /** Poll interval (default 250 ms). */
  readonly intervalMs?: number | undefined;
  readonly burstMs?: number | undefined;
}

/**
 * Follows `file` from its current end until `signal` aborts: what etcd logged before is
 * not this run's to count. A file that shrank (rotated) is read again from its start.
 */
export async function followRejectedConnections(
  o: FollowOptions,
  signal: AbortSignal,
): Promise<void> {
  const bursts = new RefusalBursts(o.burstMs);
  let offset = await stat(o.file).then(
    (s) => s.size,
    () => 0,
  );
  let partial = '';
  try {
    for (;;) {
      const size = await stat(o.file).then(
        (s) => s.size,
        () => 0,
      );
      if (size < offset) {
        offset = 0;
        partial = '';
      }
      if (size > offset) {
        const fh = await open(o.file, 'r');
        try {
          const buf = Buffer.alloc(size - offset);
          const { bytesRead } = await fh.read(buf, 0, buf.length, offset);
          offset += bytesRead;
          const lines = (partial + buf.subarray(0, bytesRead).toString('utf8')).split('\n');
          partial = lines.pop() ?? '';
          for (const line of lines) {
            const r = parseRejectedConnection(line);
            if (r !== undefined && bursts.isNew(r, Date.now())) o.onRefusal(r);
          }
        } finally {
          await fh.close();
        }
      }
      await sleep(o.intervalMs ?? 250, signal);
    }
  } catch (err) {
    if (!signal.aborted) throw err;
  }
}
