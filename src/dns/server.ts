import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, isIP, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { canonicalName, type ZoneOptions } from './answer.js';
import { FrameReader, frame } from './framing.js';
import { handleQuery, type DnsStats, type QueryContext } from './handler.js';
import type { DnsRecordSource } from './records.js';

export interface DnsServerOptions {
  readonly host: string;
  /** 0 = any free port. */
  readonly port: number;
  /** Default `cluster.local`. */
  readonly domain?: string | undefined;
  /**
   * The zone of multi-cluster services (MCS-API), answered from `source.clusterset`;
   * default `clusterset.local`, the name the specification mandates; `false` = not served.
   */
  readonly clustersetDomain?: string | false | undefined;
  readonly source: DnsRecordSource;
  readonly log?: Logger | undefined;
  /** Seconds; default 5, short because records follow the registry. */
  readonly ttl?: number | undefined;
  /** When `port` is taken or privileged, serve on a free port rather than fail. */
  readonly fallbackToFreePort?: boolean | undefined;
  /**
   * Asked for every query (UDP) or connection (TCP) before it is served: `false` drops
   * it unanswered, as a datapath dropping the client's packets would (egress policy).
   */
  readonly admit?:
    ((peer: { ip: string; port: number }, transport: 'udp' | 'tcp') => boolean) | undefined;
}

export interface RunningDnsServer {
  readonly host: string;
  /** The bound port (UDP and TCP alike). */
  readonly port: number;
  /** `ip:port` (`[ip]:port` for IPv6), as `resolveA` takes it. */
  readonly address: string;
  readonly stats: Readonly<DnsStats>;
  close(): Promise<void>;
}

/** Connections without a query for this long are closed (RFC 7766 suggests seconds). */
const TCP_IDLE_MS = 10_000;
/** Free-port attempts: UDP gets a free port, TCP may find that same port taken. */
const FREE_PORT_ATTEMPTS = 5;

/** An authoritative DNS server for the cluster domain, on UDP and TCP of one port. */
export async function startDnsServer(opts: DnsServerOptions): Promise<RunningDnsServer> {
  const log = (opts.log ?? silentLogger).child({ component: 'dns' });
  const domain = zoneName(opts.domain ?? 'cluster.local');
  const clustersetDomain =
    opts.clustersetDomain === false
      ? undefined
      : zoneName(opts.clustersetDomain ?? 'clusterset.local');
  if (clustersetDomain === domain) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `DNS domain ${domain}: the cluster and the clusterset zone must differ`,
    );
  }
  const ttl = opts.ttl ?? 5;
  if (!Number.isInteger(ttl) || ttl < 0) {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `DNS ttl ${ttl}: expected seconds >= 0`);
  }
  const stats: DnsStats = { queries: 0, nxdomain: 0, refused: 0, errors: 0 };
  const zones: ZoneOptions[] = [{ domain, source: opts.source, ttl, schema: 'cluster' }];
  if (clustersetDomain !== undefined) {
    zones.push({ domain: clustersetDomain, source: opts.source, ttl, schema: 'clusterset' });
  }
  const ctx: QueryContext = { zones, stats, log };

  const { udp, tcp } = await bind(opts, log);
  const port = udp.address().port;
  const connections = new Set<Socket>();
  let closing: Promise<void> | undefined;

  const admitted = (
    ip: string | undefined,
    port: number | undefined,
    t: 'udp' | 'tcp',
  ): boolean => {
    if (opts.admit === undefined) return true;
    try {
      return opts.admit({ ip: ip ?? '', port: port ?? 0 }, t);
    } catch (err) {
      log.warn({ err: errorMessage(err) }, 'DNS admission check failed; query dropped');
      return false;
    }
  };
  // One callback for every datagram rather than a closure each.
  const onSent = (err: Error | null): void => {
    if (err !== null) log.debug({ err: errorMessage(err) }, 'DNS send failed');
  };
  udp.on('message', (msg, peer) => {
    if (!admitted(peer.address, peer.port, 'udp')) return;
    const response = handleQuery(ctx, msg, 'udp');
    if (response === undefined || closing !== undefined) return;
    udp.send(response, peer.port, peer.address, onSent);
  });
  udp.on('error', (err) => {
    log.warn({ err: errorMessage(err) }, 'DNS UDP socket error');
  });
  tcp.on('connection', (conn: Socket) => {
    if (closing !== undefined || !admitted(conn.remoteAddress, conn.remotePort, 'tcp')) {
      conn.destroy();
      return;
    }
    connections.add(conn);
    conn.on('close', () => connections.delete(conn));
    serveConnection(ctx, conn);
  });
  tcp.on('error', (err) => {
    log.warn({ err: errorMessage(err) }, 'DNS TCP server error');
  });

  return {
    host: opts.host,
    port,
    address: isIP(opts.host) === 6 ? `[${opts.host}]:${port}` : `${opts.host}:${port}`,
    stats,
    close(): Promise<void> {
      closing ??= Promise.all([
        new Promise<void>((resolve) => {
          udp.close(() => {
            resolve();
          });
        }),
        new Promise<void>((resolve) => {
          tcp.close(() => {
            resolve();
          });
          for (const conn of connections) conn.destroy();
        }),
      ]).then(() => undefined);
      return closing;
    },
  };
}

function zoneName(name: string): string {
  const zone = canonicalName(name).replace(/^\.+/, '');
  if (zone === '') {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, 'DNS domain must not be empty');
  }
  return zone;
}

/** Several queries per connection, possibly pipelined; answered in order. */
function serveConnection(ctx: QueryContext, conn: Socket): void {
  const reader = new FrameReader();
  let waitingForDrain = false;
  conn.setTimeout(TCP_IDLE_MS, () => conn.destroy());
  conn.on('error', (err) => {
    ctx.log.debug({ err: errorMessage(err) }, 'DNS TCP connection error');
  });
  conn.on('data', (chunk: Buffer) => {
    for (const msg of reader.push(chunk)) {
      const response = handleQuery(ctx, msg, 'tcp');
      if (response === undefined || conn.destroyed) continue;
      // A client that sends without reading must not grow our write buffer without bound.
      if (!conn.write(frame(response)) && !waitingForDrain) {
        waitingForDrain = true;
        conn.pause();
        conn.once('drain', () => {
          waitingForDrain = false;
          conn.resume();
        });
      }
    }
  });
}

interface Bound {
  readonly udp: UdpSocket;
  readonly tcp: Server;
}

async function bind(opts: DnsServerOptions, log: Logger): Promise<Bound> {
  const { host, port } = opts;
  try {
    return port === 0 ? await bindFreePort(host) : await bindPort(host, port);
  } catch (err) {
    if (port === 0 || opts.fallbackToFreePort !== true || !isPortUnavailable(err)) {
      throw bindError(host, port, err);
    }
    let bound: Bound;
    try {
      bound = await bindFreePort(host);
    } catch (err2) {
      throw bindError(host, 0, err2);
    }
    log.warn(
      { host, requested: port, port: bound.udp.address().port, reason: errorCode(err) },
      'DNS port unavailable; serving on a free port instead',
    );
    return bound;
  }
}

async function bindFreePort(host: string): Promise<Bound> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await bindPort(host, 0);
    } catch (err) {
      if (attempt >= FREE_PORT_ATTEMPTS || errorCode(err) !== 'EADDRINUSE') throw err;
    }
  }
}

/** UDP first: with port 0 it picks the port, which TCP then has to get as well. */
async function bindPort(host: string, port: number): Promise<Bound> {
  const udp = await bindUdp(host, port);
  try {
    return { udp, tcp: await listenTcp(host, udp.address().port) };
  } catch (err) {
    await new Promise<void>((resolve) => {
      udp.close(() => {
        resolve();
      });
    });
    throw err;
  }
}

function bindUdp(host: string, port: number): Promise<UdpSocket> {
  const udp = createSocket({ type: isIP(host) === 6 ? 'udp6' : 'udp4' });
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      try {
        udp.close();
      } catch {
        // Already closed by the failed bind.
      }
      reject(err);
    };
    udp.once('error', onError);
    udp.bind({ port, address: host, exclusive: true }, () => {
      udp.off('error', onError);
      resolve(udp);
    });
  });
}

function listenTcp(host: string, port: number): Promise<Server> {
  const tcp = createServer();
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      tcp.close();
      reject(err);
    };
    tcp.once('error', onError);
    tcp.listen({ port, host, exclusive: true }, () => {
      tcp.off('error', onError);
      resolve(tcp);
    });
  });
}

function errorCode(err: unknown): string | undefined {
  const code: unknown = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function isPortUnavailable(err: unknown): boolean {
  const code = errorCode(err);
  return code === 'EADDRINUSE' || code === 'EACCES';
}

const REASONS: Readonly<Record<string, string>> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied (ports below 1024 need privileges)',
  EADDRNOTAVAIL: 'address not available on this machine',
};

function bindError(host: string, port: number, err: unknown): ClusterMeshError {
  const code = errorCode(err);
  const reason = (code === undefined ? undefined : REASONS[code]) ?? errorMessage(err);
  const where = isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
  return new ClusterMeshError(ErrorCode.InvalidConfig, `cannot serve DNS on ${where}: ${reason}`, {
    cause: err,
  });
}
