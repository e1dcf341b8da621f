import { readdir, readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { parseHostPort } from '../lib/http-server.js';
import { MeshCollector, type CollectorEvent, type CollectorOptions } from './collector.js';

/**
 * The browser view's HTTP server (loopback): the page and its bundle (built by
 * scripts/build.mjs into dist/web, no CDN), and a JSON + server-sent-events API over what
 * the collector reads from the control and agent APIs:
 *
 *   GET  /                         the page
 *   GET  /assets/app.js|app.css    the bundle
 *   GET  /api/snapshot             the current UiSnapshot
 *   GET  /api/flows?limit=N        the recent flows (UiFlowRow[])
 *   GET  /api/events               SSE: `snapshot` (UiSnapshot) and `flows` (UiFlowRow[]) events
 *   GET  /api/workload?cluster=C&namespace=N&name=W   policies selecting the workload's pods
 *   POST /api/trace  {"src":"C/N/W","dst":"C/N/W","dport":"80/TCP"}   `policy trace` of a connection
 */

export interface UiServerOptions extends Omit<CollectorOptions, 'log'> {
  readonly log: Logger;
  /** Default: a free loopback port. */
  readonly addr?: string | undefined;
  /** Where app.js and app.css are; default dist/web of this checkout. */
  readonly assetsDir?: string | undefined;
}

export interface UiServer {
  readonly url: string;
  readonly collector: MeshCollector;
  close(): Promise<void>;
}

export const DEFAULT_ASSETS_DIR = fileURLToPath(new URL('../../dist/web/', import.meta.url));

const page = (initial: string): string => `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>clustermesh</title>
<link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<div id="app"><p>Loading the mesh view…</p></div>
<script id="initial" type="application/json">${initial}</script>
<noscript>The mesh view needs JavaScript; the CLI shows the same: clustermesh status, observe.</noscript>
<script type="module" src="/assets/app.js"></script>
</body>
</html>
`;

const MAX_BODY = 64 << 10;

export async function startUiServer(opts: UiServerOptions): Promise<UiServer> {
  const log = opts.log.child({ component: 'ui' });
  const collector = new MeshCollector({ ...opts, log });
  const assetsDir = opts.assetsDir ?? DEFAULT_ASSETS_DIR;
  const streams = new Set<ServerResponse>();

  // The bundle is read into memory once: a page and its lazily loaded chunks then come from
  // one build even while `npm run build` replaces dist/ under a running mesh.
  let bundle: Map<string, Buffer> | undefined;
  const loadBundle = async (): Promise<Map<string, Buffer> | undefined> => {
    if (bundle !== undefined) return bundle;
    try {
      const names = (await readdir(assetsDir)).filter((n) => /\.(js|css)$/.test(n));
      if (!names.includes('app.js')) return undefined;
      const files = await Promise.all(
        names.map(async (n) => [n, await readFile(join(assetsDir, n))] as const),
      );
      bundle = new Map(files);
      return bundle;
    } catch {
      return undefined;
    }
  };
  const asset = async (name: string, type: string): Promise<Reply> => {
    const body = (await loadBundle())?.get(name);
    if (body === undefined) {
      return text(
        503,
        `the UI bundle is not built (${join(assetsDir, name)}): run npm run build\n`,
      );
    }
    return { status: 200, type, body };
  };

  const handle = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<Reply> => {
    switch (url.pathname) {
      case '/':
      case '/index.html':
        // The current snapshot rides in the page: the map paints without waiting for the stream.
        return {
          status: 200,
          type: 'text/html; charset=utf-8',
          body: page(JSON.stringify(collector.snapshot()).replace(/</g, '\\u003c')),
        };
      case '/api/snapshot':
        return jsonReply(collector.snapshot());
      case '/api/flows': {
        const limit = Number(url.searchParams.get('limit') ?? '500');
        if (!Number.isSafeInteger(limit) || limit < 0) {
          return errorReply(400, ErrorCode.InvalidArgument, 'limit must be a non-negative integer');
        }
        return jsonReply(collector.recentFlows(limit));
      }
      case '/api/events':
        openStream(res);
        return { status: 0, type: '', body: '' };
      case '/api/workload':
        return jsonReply(await workloadPolicies(collector, url));
      case '/api/trace':
        if (req.method !== 'POST') {
          return errorReply(405, 'ERR_METHOD', '/api/trace takes POST');
        }
        return jsonReply(await trace(collector, await readBody(req), opts.stateDir));
      default: {
        // The bundle: app.js, app.css and the chunks esbuild splits off (the layout library).
        const m = /^\/assets\/([\w-]+\.(js|css))$/.exec(url.pathname);
        if (m?.[1] !== undefined) {
          const type = m[2] === 'css' ? 'text/css' : 'text/javascript';
          return asset(m[1], `${type}; charset=utf-8`);
        }
        return text(404, 'not found\n');
      }
    }
  };

  const openStream = (res: ServerResponse): void => {
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-store',
      connection: 'keep-alive',
    });
    const send = (ev: CollectorEvent): void => {
      res.write(`event: ${ev.type}\ndata: ${JSON.stringify(ev.data)}\n\n`);
    };
    send({ type: 'snapshot', data: collector.snapshot() });
    send({ type: 'flows', data: collector.recentFlows(500) });
    const unsubscribe = collector.subscribe(send);
    // A comment now and then keeps idle proxies and the browser from closing the stream.
    const ping = setInterval(() => res.write(': ping\n\n'), 15_000);
    streams.add(res);
    res.on('close', () => {
      clearInterval(ping);
      unsubscribe();
      streams.delete(res);
    });
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    handle(req, res, url)
      .catch((err: unknown): Reply => {
        if (isClusterMeshError(err)) {
          return errorReply(err.code === ErrorCode.KeyNotFound ? 404 : 400, err.code, err.message);
        }
        log.warn({ path: url.pathname, err: errorMessage(err) }, 'ui request failed');
        return errorReply(500, 'ERR_INTERNAL', errorMessage(err));
      })
      .then((reply) => {
        if (reply.status === 0) return;
        res
          .writeHead(reply.status, { 'content-type': reply.type, 'cache-control': 'no-store' })
          .end(reply.body);
      })
      .catch(() => {
        res.destroy();
      });
  });
  server.keepAliveTimeout = 1000;
  const { host, port } = parseHostPort(opts.addr ?? '127.0.0.1:0', '--ui-addr');
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) => {
      reject(
        new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `UI address ${host}:${port}: cannot listen: ${err.code ?? err.message}`,
        ),
      );
    });
    server.listen(port, host, () => {
      resolve();
    });
  });
  collector.start();
  const bound = server.address() as AddressInfo;
  const url = `http://${bound.family === 'IPv6' ? `[${bound.address}]` : bound.address}:${bound.port}`;
  log.info({ url }, 'UI server started');
  return {
    url,
    collector,
    close: async () => {
      for (const s of streams) s.end();
      await collector.stop();
      await new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          resolve();
        });
      });
    },
  };
}

interface Reply {
  readonly status: number;
  readonly type: string;
  readonly body: string | Buffer;
}

function text(status: number, body: string): Reply {
  return { status, type: 'text/plain; charset=utf-8', body };
}

function jsonReply(value: unknown, status = 200): Reply {
  return { status, type: 'application/json', body: `${JSON.stringify(value)}\n` };
}

function errorReply(status: number, code: string, message: string): Reply {
  return jsonReply({ error: { code, message } }, status);
}

async function readBody(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ClusterMeshError(ErrorCode.InvalidArgument, 'body too large');
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `invalid JSON body: ${errorMessage(err)}`,
    );
  }
}

function cut(s: string): string {
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 77)}...` : s);
}

/** `cluster/namespace/workload` → a running pod of it, as `cluster/namespace/pod`. */
export function podOfWorkload(
  collector: Pick<MeshCollector, 'snapshot'>,
  key: string,
  flag: string,
): { cluster: string; namespace: string; pod: string; node: string; ip: string } {
  const parts = key.split('/');
  const [cluster, namespace, name] = parts;
  if (parts.length !== 3 || !cluster || !namespace || !name) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `${flag} ${cut(key)}: expected CLUSTER/NAMESPACE/WORKLOAD`,
    );
  }
  const w = collector
    .snapshot()
    .workloads.find((x) => x.cluster === cluster && x.namespace === namespace && x.name === name);
  const pod = w?.pods[0] ?? undefined;
  if (pod === undefined) {
    throw new ClusterMeshError(
      ErrorCode.KeyNotFound,
      `${flag} ${cut(key)}: no running pod of that workload`,
    );
  }
  return { cluster, namespace, pod: pod.name, node: pod.node, ip: pod.ip };
}

interface PolicyRefJson {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

interface DirectionJson {
  readonly enforced?: boolean;
  readonly defaultDeny?: boolean;
  readonly entries?: readonly { readonly policy?: PolicyRefJson; readonly action?: string }[];
}

/**
 * Which policies select a workload: its pod's endpoint on that pod's node (`/v1/endpoint`,
 * what `endpoint get` prints), per direction, with whether policy is enforced there.
 */
async function workloadPolicies(collector: MeshCollector, url: URL): Promise<unknown> {
  const key = [
    url.searchParams.get('cluster') ?? '',
    url.searchParams.get('namespace') ?? '',
    url.searchParams.get('name') ?? '',
  ].join('/');
  const pod = podOfWorkload(collector, key, 'workload');
  const st = collector.meshState;
  const agent = st?.clusters
    .find((c) => c.name === pod.cluster)
    ?.agents.find((a) => a.node === pod.node);
  if (agent === undefined) {
    throw new ClusterMeshError(ErrorCode.KeyNotFound, `no agent for node ${cut(pod.node)}`);
  }
  const eps = (await collector.getJson(`${agent.api}/v1/endpoints`)) as {
    id: number;
    namespace: string;
    pod: string;
  }[];
  const ep = eps.find((e) => e.namespace === pod.namespace && e.pod === pod.pod);
  if (ep === undefined) {
    return {
      pod: `${pod.cluster}/${pod.namespace}/${pod.pod}`,
      endpoint: null,
      ingress: null,
      egress: null,
    };
  }
  const detail = (await collector.getJson(`${agent.api}/v1/endpoint?id=${ep.id}`)) as {
    policy: { ingress?: DirectionJson; egress?: DirectionJson } | null;
  };
  const dir = (d: DirectionJson | undefined): unknown => {
    const seen = new Map<string, PolicyRefJson & { actions: string[] }>();
    for (const e of d?.entries ?? []) {
      if (e.policy === undefined) continue;
      const k = `${e.policy.kind}/${e.policy.namespace}/${e.policy.name}`;
      const cur = seen.get(k) ?? { ...e.policy, actions: [] };
      if (e.action !== undefined && !cur.actions.includes(e.action)) cur.actions.push(e.action);
      seen.set(k, cur);
    }
    return {
      enforced: d?.enforced === true,
      defaultDeny: d?.defaultDeny === true,
      policies: [...seen.values()],
    };
  };
  return {
    pod: `${pod.cluster}/${pod.namespace}/${pod.pod}`,
    endpoint: ep.id,
    ingress: dir(detail.policy?.ingress),
    egress: dir(detail.policy?.egress),
  };
}

/**
 * Runs `clustermesh policy trace` in this process (the CLI's own code, so the page and the
 * terminal cannot disagree) between a running pod of each workload.
 */
async function trace(collector: MeshCollector, body: unknown, stateDir: string): Promise<unknown> {
  const b = (body ?? {}) as { src?: unknown; dst?: unknown; dport?: unknown };
  if (typeof b.src !== 'string' || typeof b.dst !== 'string' || typeof b.dport !== 'string') {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      'trace: expected {"src":"C/N/W","dst":"C/N/W","dport":"PORT[/PROTO]"}',
    );
  }
  const src = podOfWorkload(collector, b.src, 'src');
  const dst = podOfWorkload(collector, b.dst, 'dst');
  const args = [
    'policy',
    'trace',
    '--state-dir',
    stateDir,
    '--src-pod',
    `${src.cluster}/${src.namespace}/${src.pod}`,
    '--dst-pod',
    `${dst.cluster}/${dst.namespace}/${dst.pod}`,
    '--dport',
    b.dport,
  ];
  const { runCli } = await import('../cli/program.js');
  const run = async (extra: string[]): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await runCli([...extra, ...args], {
      stdout: (s) => (out += s),
      stderr: (s) => (err += s),
    });
    return { code, out, err };
  };
  const [asText, asJson] = await Promise.all([run([]), run(['-o', 'json'])]);
  if (asJson.code !== 0) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      (asJson.err.trim() || asText.err.trim() || 'policy trace failed').replace(
        /^clustermesh: /,
        '',
      ),
    );
  }
  return {
    command: `clustermesh ${args.map((a) => (/[\s"']/.test(a) ? JSON.stringify(a) : a)).join(' ')}`,
    text: asText.out,
    result: JSON.parse(asJson.out) as unknown,
  };
}
