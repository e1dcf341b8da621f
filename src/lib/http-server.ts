import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { ClusterMeshError, ErrorCode, errorMessage } from './errors.js';

export interface HttpReply {
  readonly status?: number;
  readonly contentType?: string;
  readonly body: string;
}

export type Route = (req: IncomingMessage, url: URL) => Promise<HttpReply> | HttpReply;

/** `host:port`, `:port` or `port`; the host defaults to loopback. */
export function parseHostPort(addr: string, flag: string): { host: string; port: number } {
  const m = /^(?:\[?([^\]]*)\]?:)?(\d+)$/.exec(addr.trim());
  const port = Number(m?.[2]);
  if (m === null || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `${flag} ${addr}: expected HOST:PORT`);
  }
  const host = m[1] === undefined || m[1] === '' ? '127.0.0.1' : m[1];
  return { host, port };
}

export interface RunningHttpServer {
  /** `http://host:port` as actually bound (port 0 resolved). */
  readonly url: string;
  close(): Promise<void>;
}

/** A small JSON/text HTTP server for health, metrics and the agent API. */
export async function startHttpServer(
  addr: string,
  flag: string,
  routes: Readonly<Record<string, Route>>,
): Promise<RunningHttpServer> {
  const { host, port } = parseHostPort(addr, flag);
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const route = routes[url.pathname];
    if (route === undefined) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    Promise.resolve()
      .then(() => route(req, url))
      .then((reply) => {
        res
          .writeHead(reply.status ?? 200, { 'content-type': reply.contentType ?? 'text/plain' })
          .end(reply.body);
      })
      .catch((err: unknown) => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`${errorMessage(err)}\n`);
      });
  });
  // Idle keep-alive connections must not hold the process open at shutdown.
  server.keepAliveTimeout = 1000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `${flag} ${addr}: cannot listen: ${err.code ?? err.message}`,
        ),
      );
    });
    server.listen(port, host, () => {
      resolve();
    });
  });
  const bound = server.address() as AddressInfo;
  const shownHost = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
  return {
    url: `http://${shownHost}:${bound.port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      }),
  };
}

export function json(value: unknown, status = 200): HttpReply {
  return { status, contentType: 'application/json', body: `${JSON.stringify(value)}\n` };
}

/**
 * The routes every daemon serves on its health address: `/healthz` (its kvstore
 * answers), `/readyz` (`Ready` once its initial sync is done, as the reference
 * reports), `/metrics`, and `/status` (JSON).
 */
export function healthRoutes(src: {
  kvstore(): { readonly connected: boolean; readonly lastError?: string | undefined } | undefined;
  ready(): boolean;
  metrics(): Promise<{ contentType: string; body: string }>;
  status(): unknown;
}): Record<string, Route> {
  return {
    '/healthz': () => {
      const st = src.kvstore();
      return st?.connected === true
        ? { body: 'ok\n' }
        : { status: 500, body: `kvstore not connected: ${st?.lastError ?? ''}\n` };
    },
    '/readyz': () => (src.ready() ? { body: 'Ready\n' } : { status: 500, body: 'NotReady\n' }),
    '/metrics': () => src.metrics(),
    '/status': () => json(src.status()),
  };
}
