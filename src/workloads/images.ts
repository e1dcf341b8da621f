import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import type { Container } from '../registry/objects.js';

/**
 * The built-in container images. Local mode runs no container runtime: an image is a
 * function that starts a workload in this process, bound to the pod's IP, so that every
 * connection a workload accepts or makes carries the pod's address.
 */

/** A connection a workload accepted (the mesh records it as an ingress flow). */
export interface WorkloadConnection {
  readonly cluster: string;
  readonly node: string;
  readonly pod: { readonly namespace: string; readonly name: string; readonly ip: string };
  readonly localPort: number;
  readonly peer: { readonly ip: string; readonly port: number };
}

/**
 * Sees every connection a workload accepts, before the workload reads from it; `false`
 * drops it (the socket is reset: policy denied it at the destination's node).
 */
export type ConnectionHook = (c: WorkloadConnection) => boolean | undefined;

export interface WorkloadContext {
  readonly cluster: string;
  readonly node: string;
  readonly namespace: string;
  readonly pod: string;
  readonly podIP: string;
  readonly container: Container;
  readonly onConnection?: ConnectionHook | undefined;
  readonly log: Logger;
  /** The container's output, one line per call (what `kubectl logs` shows). */
  readonly output?: ((line: string) => void) | undefined;
  /** The files under the container's volume mounts (absolute path → content), as they are now. */
  readonly files?: (() => ReadonlyMap<string, string>) | undefined;
}

/** A started container: everything it opened is released by `close`. */
export interface Workload {
  close(): Promise<void>;
}

export type StartResult =
  | { readonly ok: true; readonly workload: Workload }
  | { readonly ok: false; readonly reason: string; readonly message: string };

export interface Image {
  readonly name: string;
  readonly description: string;
  start(ctx: WorkloadContext): Promise<StartResult>;
}

/** Pod status reasons of failed starts (stable: tests and users read them). */
export const StartFailure = {
  /** A port could not be bound on the pod IP. */
  BindFailed: 'BindFailed',
} as const;

/**
 * `clustermesh/echo:1.0` → `clustermesh/echo`: a tag or a digest selects nothing here, so
 * manifests may carry one. A registry host is not stripped: the built-ins are named
 * without one.
 */
export function imageName(ref: string): string {
  let name = ref;
  const at = name.indexOf('@');
  if (at >= 0) name = name.slice(0, at);
  const colon = name.lastIndexOf(':');
  if (colon > name.lastIndexOf('/')) name = name.slice(0, colon);
  return name;
}

const ECHO: Image = {
  name: 'clustermesh/echo',
  description: 'HTTP server answering JSON with its cluster, node and pod',
  start: startEcho,
};

const IDLE: Image = {
  name: 'clustermesh/idle',
  description: 'does nothing; a client to exec from',
  start: () => Promise.resolve({ ok: true, workload: { close: () => Promise.resolve() } }),
};

const NGINX: Image = {
  name: 'nginx',
  description: 'nginx: serves /usr/share/nginx/html (mounted ConfigMaps included) on port 80',
  start: startNginx,
};

const JSON_MOCK: Image = {
  name: 'quay.io/cilium/json-mock',
  description: "Cilium's json-mock: answers HTTP with JSON on port 80",
  start: startJsonMock,
};

/** Other names a registry or Docker Hub's `library/` prefix gives the same image. */
const ALIASES: readonly (readonly [string, Image])[] = [
  ['docker.io/nginx', NGINX],
  ['docker.io/library/nginx', NGINX],
  ['library/nginx', NGINX],
  ['cilium/json-mock', JSON_MOCK],
  ['docker.io/cilium/json-mock', JSON_MOCK],
];

const IMAGES: ReadonlyMap<string, Image> = new Map([
  ...[ECHO, IDLE, NGINX, JSON_MOCK].map((i) => [i.name, i] as const),
  ...ALIASES,
]);

export const BUILTIN_IMAGES: readonly string[] = [ECHO, IDLE, NGINX, JSON_MOCK].map((i) => i.name);

export function resolveImage(ref: string): Image | undefined {
  return IMAGES.get(imageName(ref));
}

/** How long a connection policy dropped is held unanswered before it is let go. */
const DROP_HOLD_MS = 30_000;

/** The port the echo server listens on when its container declares none. */
export const ECHO_DEFAULT_PORT = 80;

/** Every declared TCP port, or the default one. */
function echoPorts(c: Container): number[] {
  const tcp = (c.ports ?? []).filter((p) => p.protocol === 'TCP').map((p) => p.containerPort);
  return tcp.length > 0 ? [...new Set(tcp)] : [ECHO_DEFAULT_PORT];
}

/**
 * Fields of the `MESSAGE` env var when it holds a JSON object: they lead the answer
 * (the rebel-base demo adds `"Galaxy": "Alderaan"` this way). Anything else is ignored.
 */
function messageFields(c: Container): Record<string, unknown> {
  const text = c.env?.find((e) => e.name === 'MESSAGE')?.value;
  if (text === undefined) return {};
  try {
    const parsed: unknown = JSON.parse(text);
    if (typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)) {
      return parsed as Record<string, unknown>;
    }
  } catch {
    // Not JSON: nothing to merge.
  }
  return {};
}

function plainIP(address: string | undefined): string {
  const a = address ?? '';
  return a.startsWith('::ffff:') ? a.slice('::ffff:'.length) : a;
}

async function startEcho(ctx: WorkloadContext): Promise<StartResult> {
  const extra = messageFields(ctx.container);
  const ports = echoPorts(ctx.container);
  return serveHttp(ctx, ports, 'echo server', (req, res) => {
    // The body is not read; drain it so the connection can serve the next request.
    req.resume();
    const body = `${JSON.stringify({
      ...extra,
      Cluster: ctx.cluster,
      Node: ctx.node,
      Namespace: ctx.namespace,
      Pod: ctx.pod,
      PodIP: ctx.podIP,
      Client: plainIP(req.socket.remoteAddress),
    })}\n`;
    res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    // An access log line, as a web server writes one per request.
    ctx.output?.(
      `${plainIP(req.socket.remoteAddress)} - - [${new Date().toISOString()}] "${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}" 200 ${Buffer.byteLength(body)} "-" "${req.headers['user-agent'] ?? '-'}"`,
    );
  });
}

/**
 * An HTTP server on the pod's IP at `ports`: every connection first meets the mesh's
 * ingress policy (a dropped one is held unanswered), then reaches `answer`.
 */
async function serveHttp(
  ctx: WorkloadContext,
  ports: readonly number[],
  label: string,
  answer: (req: IncomingMessage, res: ServerResponse) => void,
): Promise<StartResult> {
  const http = createServer(answer);
  const held = new Set<Socket>();
  /** Whether the mesh lets the connection reach the workload (its ingress policy). */
  const admit = (socket: Socket): boolean => {
    if (ctx.onConnection === undefined) return true;
    try {
      return (
        ctx.onConnection({
          cluster: ctx.cluster,
          node: ctx.node,
          pod: { namespace: ctx.namespace, name: ctx.pod, ip: ctx.podIP },
          localPort: socket.localPort ?? 0,
          peer: { ip: plainIP(socket.remoteAddress), port: socket.remotePort ?? 0 },
        }) !== false
      );
    } catch (err) {
      ctx.log.warn({ err: errorMessage(err) }, 'connection observer failed');
      return true;
    }
  };
  const onConnection = (socket: Socket): void => {
    if (admit(socket)) {
      // Paused on accept: the HTTP server sees only what policy let through.
      http.emit('connection', socket);
      socket.resume();
      return;
    }
    // A dropped connection gets no answer at all, so the client times out as it would
    // when Cilium drops its packets; it is let go after a while or when the pod stops.
    held.add(socket);
    socket.on('error', () => undefined);
    // Read and discard: a client that gives up is noticed (and its socket freed) at once.
    socket.on('data', () => undefined);
    socket.once('end', () => socket.destroy());
    socket.resume();
    const timer = setTimeout(() => socket.destroy(), DROP_HOLD_MS);
    socket.once('close', () => {
      clearTimeout(timer);
      held.delete(socket);
    });
  };

  const servers: Server[] = [];
  const closeAll = async (): Promise<void> => {
    for (const s of held) s.destroy();
    const closing = Promise.all(servers.map(closeServer));
    // Keep-alive connections would hold `close` open until they time out.
    http.closeAllConnections();
    await closing;
  };
  http.on('error', (err) => {
    ctx.log.warn({ err: errorMessage(err) }, `${label} error`);
  });
  for (const port of ports) {
    const server = createNetServer({ pauseOnConnect: true }, onConnection);
    try {
      await listen(server, ctx.podIP, port);
    } catch (err) {
      await closeAll();
      return {
        ok: false,
        reason: StartFailure.BindFailed,
        message: `container ${JSON.stringify(ctx.container.name)}: cannot listen on ${ctx.podIP}:${port}: ${errorMessage(err)}`,
      };
    }
    // After a successful listen, errors are per connection and must not crash the process.
    server.on('error', (err) => {
      ctx.log.warn({ port, err: errorMessage(err) }, `${label} error`);
    });
    servers.push(server);
  }
  ctx.output?.(`${label} listening on ${ports.map((p) => `${ctx.podIP}:${p}`).join(', ')}`);
  return { ok: true, workload: { close: closeAll } };
}

/** Where the nginx image's default configuration serves files from. */
export const NGINX_HTML_ROOT = '/usr/share/nginx/html';
const NGINX_PORT = 80;

function imageTag(ref: string): string {
  const name = imageName(ref);
  const rest = ref.slice(name.length);
  return rest.startsWith(':') ? rest.slice(1) : 'latest';
}

const NGINX_WELCOME = `<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>
</body>
</html>
`;

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: 'text/html',
  htm: 'text/html',
  json: 'application/json',
  css: 'text/css',
  js: 'application/javascript',
  txt: 'text/plain',
};

function nginxError(status: number, text: string, version: string): string {
  return `<html>\r\n<head><title>${status} ${text}</title></head>\r\n<body>\r\n<center><h1>${status} ${text}</h1></center>\r\n<hr><center>${version}</center>\r\n</body>\r\n</html>\r\n`;
}

/** nginx's `$time_local`: `05/Dec/2026:14:30:00 +0000`. */
function timeLocal(d: Date): string {
  const months = [
    'Jan',
    'Feb',
    'Mar',
    'Apr',
    'May',
    'Jun',
    'Jul',
    'Aug',
    'Sep',
    'Oct',
    'Nov',
    'Dec',
  ];
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${months[d.getUTCMonth()] ?? ''}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

/**
 * nginx with its default configuration: port 80, files from its html root (a mounted
 * ConfigMap hides the image's own welcome page, as a mount hides the directory under it),
 * `index.html` for a directory, nginx's error pages and its combined access log.
 */
function startNginx(ctx: WorkloadContext): Promise<StartResult> {
  const version = `nginx/${imageTag(ctx.container.image).replace(/^v/, '')}`;
  const files = (): ReadonlyMap<string, string> => {
    const mounted = ctx.files?.() ?? new Map<string, string>();
    const hidden = [...mounted.keys()].some((p) => p.startsWith(`${NGINX_HTML_ROOT}/`));
    return hidden
      ? mounted
      : new Map([...mounted, [`${NGINX_HTML_ROOT}/index.html`, NGINX_WELCOME]]);
  };
  return serveHttp(ctx, [NGINX_PORT], 'nginx', (req, res) => {
    req.resume();
    const path = decodeURIComponent((req.url ?? '/').split('?')[0] ?? '/');
    const all = files();
    const target = path.endsWith('/') ? `${path}index.html` : path;
    const file = path.includes('..') ? undefined : all.get(`${NGINX_HTML_ROOT}${target}`);
    let status = 200;
    let body: string;
    let type: string;
    if (file !== undefined) {
      body = file;
      const ext = target.slice(target.lastIndexOf('.') + 1).toLowerCase();
      type = CONTENT_TYPES[ext] ?? 'application/octet-stream';
    } else {
      // A directory without an index is refused (autoindex is off), anything else missing.
      const isDir = path.endsWith('/');
      status = isDir ? 403 : 404;
      body = nginxError(status, isDir ? 'Forbidden' : 'Not Found', version);
      type = 'text/html';
    }
    res.writeHead(status, {
      server: version,
      'content-type': type,
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    ctx.output?.(
      `${plainIP(req.socket.remoteAddress)} - - [${timeLocal(new Date())}] "${req.method ?? 'GET'} ${req.url ?? '/'} HTTP/${req.httpVersion}" ${status} ${Buffer.byteLength(body)} "-" "${req.headers['user-agent'] ?? '-'}" "-"`,
    );
  });
}

/** json-mock: any GET answers a JSON document naming the pod, on port 80. */
function startJsonMock(ctx: WorkloadContext): Promise<StartResult> {
  return serveHttp(ctx, [NGINX_PORT], 'json-mock', (req, res) => {
    req.resume();
    const body = `${JSON.stringify({ hostname: ctx.pod, path: req.url ?? '/' })}\n`;
    res.writeHead(200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(body),
    });
    res.end(req.method === 'HEAD' ? undefined : body);
    ctx.output?.(`${req.method ?? 'GET'} ${req.url ?? '/'} 200`);
  });
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => {
      reject(err);
    };
    server.once('error', onError);
    server.listen({ host, port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => {
      resolve();
    });
  });
}
