import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import type { Registry } from '../registry/registry.js';
import { KINDS } from '../registry/kinds.js';
import {
  AGGREGATED_V2,
  AGGREGATED_V2BETA1,
  aggregatedDiscovery,
  aggregatedVersion,
  apiGroupDoc,
  apiGroupList,
  apiResourceList,
  apiVersions,
  openapiGroupVersion,
  openapiRoot,
  SERVER_VERSION,
} from './discovery.js';
import { ResourceHandlers, type SubresourceHandler, type Target } from './handlers.js';
import { sendJson, sendStatus, sendText } from './http.js';
import { ResourceTable } from './resources.js';
import { forbiddenPath, Rbac, verbOf, type KubeUser } from './rbac.js';
import {
  ApiError,
  badRequest,
  internalError,
  pageNotFound,
  unauthorized,
  type Status,
} from './status.js';
import { WatchCaches } from './watch-cache.js';

/**
 * A Kubernetes API server over one cluster's registry: HTTPS (HTTP/1.1), a bearer token,
 * discovery, OpenAPI stubs, and the resource handlers. What kubectl needs is described
 * request by request in docs/kubeapi.md.
 */

/** The TLS material the server presents: PEM strings, from whatever issues them. */
export interface KubeApiTls {
  /** The CA that signed `cert` (written into kubeconfigs). */
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface KubeApiServerOptions {
  readonly registry: Registry;
  readonly tls: KubeApiTls;
  /** The bearer token every request but `/version` and the health checks must carry. */
  readonly token: string;
  readonly host: string;
  /** 0 (default) picks a free port. */
  readonly port?: number | undefined;
  readonly log?: Logger | undefined;
  /** Events kept per kind for resuming watches (default 10,000). */
  readonly watchHistory?: number | undefined;
  readonly now?: (() => Date) | undefined;
}

/** Paths anyone may read, as the Kubernetes API server's public-info role allows. */
const PUBLIC_PATHS = new Set(['/version', '/healthz', '/livez', '/readyz']);

export class KubeApiServer {
  readonly resources = new ResourceTable(KINDS);
  private readonly log: Logger;
  private readonly caches: WatchCaches;
  private readonly handlers: ResourceHandlers;
  private readonly subresources = new Map<string, SubresourceHandler>();
  private readonly token: Buffer;
  private server: Server | undefined;
  private readonly stopCaches = new AbortController();
  /** ServiceAccount tokens and RBAC (the admin token bypasses it). */
  readonly rbac: Rbac;
  private cachesDone: Promise<void> | undefined;
  private address: AddressInfo | undefined;

  constructor(private readonly opts: KubeApiServerOptions) {
    this.log = (opts.log ?? silentLogger).child({ subsys: 'kube-apiserver' });
    this.caches = new WatchCaches(opts.registry.backend, KINDS, {
      log: this.log,
      historyLimit: opts.watchHistory,
    });
    this.handlers = new ResourceHandlers({
      registry: opts.registry,
      caches: this.caches,
      log: this.log,
      now: opts.now,
    });
    this.token = Buffer.from(opts.token);
    this.rbac = new Rbac(opts.registry, opts.tls.key, opts.now);
    this.addSubresource(this.rbac.tokenSubresource());
  }

  /** `https://host:port`. */
  get url(): string {
    if (this.address === undefined) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        'the Kubernetes API server is not started',
      );
    }
    return `https://${this.opts.host}:${this.address.port}`;
  }

  /** The bearer token clients must send (what kubeconfigs carry). */
  get tokenValue(): string {
    return this.opts.token;
  }

  get caPem(): string {
    return this.opts.tls.ca;
  }

  /**
   * Serves another subresource (pods' `log`, `exec`), listed in discovery from now on. Plain
   * requests reach its `handle`, Upgrade requests (exec over WebSocket) its `upgrade`; the
   * server answers every other Upgrade request with a Status on the raw socket.
   */
  addSubresource(handler: SubresourceHandler): void {
    this.subresources.set(`${handler.resource}/${handler.name}`, handler);
    this.resources.addSubresource(handler.resource, {
      name: handler.name,
      kind: handler.kind,
      verbs: handler.verbs,
    });
  }

  async start(): Promise<void> {
    this.cachesDone = this.caches.run(this.stopCaches.signal, this.log);
    await this.caches.whenReady();
    const server = createServer(
      {
        cert: this.opts.tls.cert,
        key: this.opts.tls.key,
        ALPNProtocols: ['http/1.1'],
      },
      (req, res) => {
        this.serve(req, res).catch((err: unknown) => {
          this.log.error({ err: errorMessage(err), url: req.url }, 'request failed');
          if (!res.headersSent) sendStatus(res, internalError(errorMessage(err)).toStatus());
          else res.destroy();
        });
      },
    );
    server.keepAliveTimeout = 65_000;
    // With an 'upgrade' listener Node sends every Upgrade request here (WebSocket and SPDY
    // alike), so each gets an answer: the subresource's, or a Status on the raw socket.
    server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      this.serveUpgrade(req, socket, head);
    });
    try {
      await this.listen(server);
    } catch (err) {
      this.stopCaches.abort();
      await this.cachesDone;
      throw err;
    }
    this.server = server;
    this.address = server.address() as AddressInfo;
    this.log.info({ url: this.url }, 'Kubernetes API server listening');
  }

  private listen(server: Server): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) => {
        reject(
          new ClusterMeshError(
            ErrorCode.KubeApiListen,
            `Kubernetes API server: cannot listen on ${this.opts.host}:${this.opts.port ?? 0}: ${err.code ?? err.message}`,
            { cause: err },
          ),
        );
      });
      server.listen({ host: this.opts.host, port: this.opts.port ?? 0 }, () => {
        server.removeAllListeners('error');
        server.on('error', (err) => {
          this.log.error({ err: errorMessage(err) }, 'Kubernetes API server error');
        });
        resolve();
      });
    });
  }

  async stop(): Promise<void> {
    this.handlers.closeWatches();
    const server = this.server;
    this.server = undefined;
    if (server !== undefined) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.stopCaches.abort();
    await this.cachesDone;
  }

  get openWatches(): number {
    return this.handlers.openWatches;
  }

  private serveUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const url = new URL(req.url ?? '/', 'https://localhost');
    let status: Status;
    if (!this.authorized(req)) {
      status = unauthorized().toStatus();
    } else {
      const segs = url.pathname
        .split('/')
        .filter((x) => x !== '')
        .map(decodeURIComponent);
      const target = this.resolve(segs);
      const extra =
        target?.subresource === undefined
          ? undefined
          : this.subresources.get(`${target.r.resource}/${target.subresource}`);
      if (target !== undefined && extra?.upgrade !== undefined) {
        extra.upgrade({ req, socket, head, url, target });
        return;
      }
      status =
        target?.r.resource === 'pods' &&
        (target.subresource === 'exec' || target.subresource === 'attach')
          ? badRequest(
              `${target.subresource} is not served by this API server yet; run commands in pods with: clustermesh exec CLUSTER/POD -- COMMAND`,
            ).toStatus()
          : badRequest('this resource does not support an upgrade to another protocol').toStatus();
    }
    const body = JSON.stringify(status);
    const reason = status.code === 401 ? 'Unauthorized' : 'Bad Request';
    socket.end(
      `HTTP/1.1 ${status.code} ${reason}\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    this.log.debug({ url: req.url, code: status.code }, 'upgrade refused');
  }

  private authorized(req: IncomingMessage): boolean {
    const header = req.headers.authorization ?? '';
    const m = /^Bearer\s+(.+)$/i.exec(header);
    if (m === null) return false;
    const given = Buffer.from(m[1]?.trim() ?? '');
    return given.length === this.token.length && timingSafeEqual(given, this.token);
  }

  private async serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = process.hrtime.bigint();
    const url = new URL(req.url ?? '/', 'https://localhost');
    res.on('finish', () => {
      this.log.debug(
        {
          method: req.method,
          url: req.url,
          code: res.statusCode,
          ms: Number(process.hrtime.bigint() - started) / 1e6,
          command: req.headers['kubectl-command'],
        },
        'request',
      );
    });
    try {
      if (!PUBLIC_PATHS.has(url.pathname))
        await this.authorize(await this.authenticate(req), req, url);
      await this.route(req, res, url);
    } catch (err) {
      if (err instanceof ApiError) {
        sendStatus(res, err.toStatus());
        return;
      }
      throw err;
    }
  }

  /** The admin (the server's token) or a ServiceAccount (a token it issued); else 401. */
  private async authenticate(req: IncomingMessage): Promise<KubeUser> {
    if (this.authorized(req)) return { kind: 'admin' };
    const m = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    const user = m === null ? undefined : await this.rbac.authenticate(m[1]?.trim() ?? '');
    if (user === undefined) throw unauthorized();
    return user;
  }

  /** RBAC for ServiceAccounts: their bindings' rules for resources, discovery for the rest. */
  private async authorize(user: KubeUser, req: IncomingMessage, url: URL): Promise<void> {
    if (user.kind === 'admin') return;
    const method = req.method ?? 'GET';
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const segs = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    const target = this.resolve(segs);
    if (target === undefined) {
      if (!Rbac.discoveryPath(method, path))
        throw forbiddenPath(user, method === 'HEAD' ? 'get' : method.toLowerCase(), path);
      return;
    }
    await this.rbac.authorize(user, {
      verb: verbOf(method, target, url),
      apiGroup: target.r.group,
      resource: target.r.resource,
      subresource: target.subresource,
      namespace: target.namespace,
      name: target.name,
    });
  }

  private async route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const accept = req.headers.accept ?? '';
    const method = req.method ?? 'GET';
    if (path === '/version') {
      sendJson(res, 200, SERVER_VERSION);
      return;
    }
    if (path === '/healthz' || path === '/livez' || path === '/readyz') {
      sendText(res, 200, 'ok');
      return;
    }
    const segs = path
      .split('/')
      .filter((s) => s !== '')
      .map(decodeURIComponent);
    if (method === 'GET') {
      if (path === '/api' || path === '/apis') {
        const v = aggregatedVersion(accept);
        if (v !== undefined) {
          sendJson(res, 200, aggregatedDiscovery(this.resources, path === '/api', v), {
            contentType: v === 'v2' ? AGGREGATED_V2 : AGGREGATED_V2BETA1,
          });
          return;
        }
        sendJson(
          res,
          200,
          path === '/api'
            ? apiVersions(`${this.opts.host}:${this.address?.port ?? 0}`)
            : apiGroupList(this.resources),
        );
        return;
      }
      if (path === '/openapi/v3') {
        sendJson(res, 200, openapiRoot(this.resources));
        return;
      }
      if (path.startsWith('/openapi/v3/')) {
        const doc = openapiGroupVersion(this.resources, path.slice('/openapi/v3/'.length));
        if (doc === undefined) throw pageNotFound();
        sendJson(res, 200, doc);
        return;
      }
      if (segs[0] === 'api' && segs.length === 2) {
        const doc = apiResourceList(this.resources, '', segs[1] ?? '');
        if (doc === undefined) throw pageNotFound();
        sendJson(res, 200, doc);
        return;
      }
      if (segs[0] === 'apis' && segs.length === 2) {
        const doc = apiGroupDoc(this.resources, segs[1] ?? '');
        if (doc === undefined) throw pageNotFound();
        sendJson(res, 200, doc);
        return;
      }
      if (segs[0] === 'apis' && segs.length === 3) {
        const doc = apiResourceList(this.resources, segs[1] ?? '', segs[2] ?? '');
        if (doc === undefined) throw pageNotFound();
        sendJson(res, 200, doc);
        return;
      }
    }
    const target = this.resolve(segs);
    if (target === undefined) throw pageNotFound();
    const extra =
      target.subresource === undefined
        ? undefined
        : this.subresources.get(`${target.r.resource}/${target.subresource}`);
    if (extra !== undefined) return extra.handle({ req, res, url, target });
    return this.handlers.handle({ req, res, url, target });
  }

  /**
   * `/api/v1/…` or `/apis/G/V/…` then `[namespaces/NS/]RESOURCE[/NAME[/SUB]]`; namespaces
   * themselves are `/api/v1/namespaces[/NAME[/SUB]]`.
   */
  private resolve(segs: readonly string[]): Target | undefined {
    let group: string;
    let version: string;
    let rest: readonly string[];
    if (segs[0] === 'api' && segs.length >= 3) {
      group = '';
      version = segs[1] ?? '';
      rest = segs.slice(2);
    } else if (segs[0] === 'apis' && segs.length >= 4) {
      group = segs[1] ?? '';
      version = segs[2] ?? '';
      rest = segs.slice(3);
    } else return undefined;
    let namespace: string | undefined;
    if (rest[0] === 'namespaces' && rest.length >= 3) {
      const r = this.resources.find(group, version, rest[2] ?? '');
      if (r?.namespaced === true) {
        namespace = rest[1];
        rest = rest.slice(2);
      }
    }
    if (rest.length > 3) return undefined;
    const r = this.resources.find(group, version, rest[0] ?? '');
    if (r === undefined) return undefined;
    if (r.namespaced && namespace === undefined && rest.length > 1) return undefined;
    return { r, namespace, name: rest[1], subresource: rest[2] };
  }
}
