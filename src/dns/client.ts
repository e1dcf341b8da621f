import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, isIP } from 'node:net';
import dnsPacket from 'dns-packet';
import type { DecodedPacket } from 'dns-packet';
import { abortError } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { parseHostPort } from '../lib/http-server.js';
import { FrameReader, frame } from './framing.js';
import { Rcode } from './handler.js';

/**
 * A stub resolver for workloads of the local mesh: the A lookups a pod's libc would make
 * with the resolv.conf that Kubernetes writes (`search <ns>.svc.<domain> svc.<domain>
 * <domain>`, `options ndots:5`), against one server.
 */

/** The search list Kubernetes gives a pod in `namespace`. */
export function podSearchPath(namespace: string, domain = 'cluster.local'): string[] {
  return [`${namespace}.svc.${domain}`, `svc.${domain}`, domain];
}

export interface ResolveOptions {
  /** `ip:port` (`[ip]:port` for IPv6). */
  readonly server: string;
  readonly search?: readonly string[] | undefined;
  /** Default 5, as Kubernetes sets it. */
  readonly ndots?: number | undefined;
  /** Per attempt; default 2000. */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** The address queries leave from (a pod's IP, so the server knows who asks). */
  readonly sourceIP?: string | undefined;
}

/** UDP attempts per name: the first and one retry (resolv.conf `attempts:2`). */
const UDP_ATTEMPTS = 2;

/**
 * The IPv4 addresses of `name`. Rejects with ERR_KEY_NOT_FOUND when no candidate name
 * exists, ERR_TIMEOUT when the server does not answer, ERR_ABORTED on `signal`.
 */
export async function resolveA(name: string, opts: ResolveOptions): Promise<string[]> {
  const host = name.trim();
  if (isIP(host) !== 0) return [host];
  if (host === '' || host === '.') {
    throw new ClusterMeshError(
      ErrorCode.KeyNotFound,
      `could not resolve host: ${JSON.stringify(name)}`,
    );
  }
  const server = parseHostPort(opts.server, 'DNS server');
  for (const candidate of candidates(host, opts.search ?? [], opts.ndots ?? 5)) {
    const response = await query(candidate, server, opts);
    const rcode = response.flags === undefined ? 0 : response.flags & 0xf;
    if (rcode !== Rcode.NoError) continue;
    const ips = (response.answers ?? []).flatMap((a) => (a.type === 'A' ? [a.data] : []));
    if (ips.length > 0) return ips;
  }
  throw new ClusterMeshError(ErrorCode.KeyNotFound, `could not resolve host: ${host}`);
}

/** The names to try, in resolv.conf order. */
export function candidates(name: string, search: readonly string[], ndots: number): string[] {
  if (name.endsWith('.')) return [name.replace(/\.+$/, '')];
  const dots = name.split('.').length - 1;
  const searched = search
    .map((s) => s.replace(/^\.+|\.+$/g, ''))
    .filter((s) => s !== '')
    .map((s) => `${name}.${s}`);
  return dots >= ndots ? [name, ...searched] : [...searched, name];
}

interface Server {
  readonly host: string;
  readonly port: number;
}

async function query(name: string, server: Server, opts: ResolveOptions): Promise<DecodedPacket> {
  const timeoutMs = opts.timeoutMs ?? 2000;
  const id = randomInt(0, 0x10000);
  const wire = dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ type: 'A', name, class: 'IN' }],
  });
  const matches = (r: DecodedPacket): boolean =>
    r.flag_qr && r.id === id && r.questions?.[0]?.name.toLowerCase() === name.toLowerCase();
  for (let attempt = 1; ; attempt++) {
    const response = await exchange(server, opts, timeoutMs, 'udp', wire, matches);
    if (response === 'timeout') {
      if (attempt < UDP_ATTEMPTS) continue;
      throw timeoutError(name, server, timeoutMs);
    }
    if (!response.flag_tc) return response;
    const full = await exchange(server, opts, timeoutMs, 'tcp', wire, matches);
    if (full === 'timeout') throw timeoutError(name, server, timeoutMs);
    return full;
  }
}

/**
 * Sends one query and waits for the matching response. Unrelated or undecodable
 * datagrams are ignored, as a resolver must (they may be spoofed or late).
 */
function exchange(
  server: Server,
  opts: Pick<ResolveOptions, 'signal' | 'sourceIP'>,
  timeoutMs: number,
  transport: 'udp' | 'tcp',
  wire: Buffer,
  matches: (r: DecodedPacket) => boolean,
): Promise<DecodedPacket | 'timeout'> {
  const { signal, sourceIP } = opts;
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortError(signal));
      return;
    }
    const decode = (msg: Buffer): DecodedPacket | undefined => {
      try {
        const r = dnsPacket.decode(msg);
        return matches(r) ? r : undefined;
      } catch {
        return undefined;
      }
    };
    let cleanup = (): void => undefined;
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      cleanup();
      fn();
    };
    const onAbort = (): void => {
      finish(() => {
        reject(abortError(signal));
      });
    };
    const timer = setTimeout(() => {
      finish(() => {
        resolve('timeout');
      });
    }, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    const fail = (err: Error): void => {
      finish(() => {
        reject(transportError(server, transport, err));
      });
    };

    if (transport === 'udp') {
      const udp = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      cleanup = () => {
        udp.close();
      };
      udp.on('error', fail);
      udp.on('message', (msg) => {
        const r = decode(msg);
        if (r !== undefined) finish(() => resolve(r));
      });
      if (sourceIP === undefined) udp.send(wire, server.port, server.host);
      else
        udp.bind({ address: sourceIP, port: 0 }, () => {
          udp.send(wire, server.port, server.host);
        });
      return;
    }
    const conn = connect({ host: server.host, port: server.port, localAddress: sourceIP });
    cleanup = () => conn.destroy();
    const reader = new FrameReader();
    conn.on('error', fail);
    conn.on('data', (chunk: Buffer) => {
      for (const msg of reader.push(chunk)) {
        const r = decode(msg);
        if (r !== undefined) finish(() => resolve(r));
      }
    });
    conn.write(frame(wire));
  });
}

function where(server: Server): string {
  return isIP(server.host) === 6
    ? `[${server.host}]:${server.port}`
    : `${server.host}:${server.port}`;
}

function timeoutError(name: string, server: Server, timeoutMs: number): ClusterMeshError {
  return new ClusterMeshError(
    ErrorCode.Timeout,
    `DNS query for ${name} to ${where(server)} timed out after ${timeoutMs}ms`,
  );
}

function transportError(server: Server, transport: string, err: Error): ClusterMeshError {
  return new ClusterMeshError(
    ErrorCode.Timeout,
    `DNS query to ${where(server)} over ${transport} failed: ${errorMessage(err)}`,
    { cause: err },
  );
}
