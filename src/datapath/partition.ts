/**
 * A network partition as the datapath sees it (fault injection of the local mesh): new
 * connections and health probes toward the listed IPv4 CIDRs get no answer, as on a
 * blackholed route, instead of a reset. Established connections are left alone.
 */
import { Socket } from 'node:net';

function ipv4(ip: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(ip.startsWith('::ffff:') ? ip.slice(7) : ip);
  if (m === null) return undefined;
  return [m[1], m[2], m[3], m[4]].reduce((acc, o) => acc * 256 + Number(o), 0);
}

export class Blackholes {
  private nets: { base: number; size: number }[] = [];

  set(cidrs: readonly string[]): void {
    this.nets = cidrs.flatMap((c) => {
      const [ip, bits] = c.split('/');
      const base = ipv4(ip ?? '');
      const n = Number(bits ?? '32');
      if (base === undefined || !Number.isInteger(n) || n < 0 || n > 32) return [];
      const size = 2 ** (32 - n);
      return [{ base: base - (base % size), size }];
    });
  }

  has(ip: string): boolean {
    if (this.nets.length === 0) return false;
    const v = ipv4(ip);
    return v !== undefined && this.nets.some((n) => v >= n.base && v < n.base + n.size);
  }
}

/** A socket that never connects: its caller's connect timeout decides, as for lost SYNs. */
export function unansweredSocket(): Socket {
  return new Socket();
}
