import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import {
  json,
  startHttpServer,
  type HttpReply,
  type RunningHttpServer,
} from '../lib/http-server.js';
import { requireKind } from '../registry/codec.js';
import { applyOutcome, type Registry } from '../registry/registry.js';
import type { RegistryObject } from '../registry/types.js';
import type { ClusterRuntime } from '../workloads/cluster-runtime.js';

/**
 * The control API of a running `clustermesh up` (loopback only, recorded in mesh.json):
 * registry access per cluster, so `apply/get/delete --cluster NAME` work whatever the
 * kvstore (a memory store lives inside the `up` process), and pod lookups for `exec`.
 *
 *   POST /v1/apply?cluster=C    {"objects":[…]}                  → [{kind,namespace,name,action}]
 *   GET  /v1/objects?cluster=C&kind=K[&namespace=N][&name=M]     → [object…]
 *   POST /v1/delete?cluster=C   {"targets":[{kind,namespace,name}]} → [deleted…]
 *   GET  /v1/pods?cluster=C                                      → [{namespace,name,node,ip,phase}]
 *   POST /v1/fault?cluster=C&action=A                            → {}   (fault injection, A below)
 *
 * Errors are `{"error":{"code","message"}}` with status 400 (bad input) or 404.
 */

/**
 * `crash-workloads`: every pod socket of the cluster dies at once, unnoticed by its
 * control plane; `crash-cluster`: the whole cluster dies (also agents, proxy, apiserver,
 * kvstore); `freeze-kvstore` / `thaw-kvstore`: its etcd is stopped (SIGSTOP) / resumed;
 * `restart-operator`: its MCS-API operator is stopped and started again.
 */
export const FAULTS = [
  'crash-workloads',
  'crash-cluster',
  'freeze-kvstore',
  'thaw-kvstore',
  'restart-operator',
] as const;
export type Fault = (typeof FAULTS)[number];

export interface ControlCluster {
  readonly registry: Registry;
  readonly runtime: ClusterRuntime;
  /** Injects a fault (tests, benches). */
  readonly fault?: ((action: Fault) => Promise<void>) | undefined;
}

export interface ControlApiOptions {
  readonly clusters: ReadonlyMap<string, ControlCluster>;
  readonly log: Logger;
  /** Default: a free loopback port. */
  readonly addr?: string | undefined;
}

export type ControlApi = RunningHttpServer;

const MAX_BODY = 16 << 20;

export function startControlApi(opts: ControlApiOptions): Promise<ControlApi> {
  const cluster = (url: URL): ControlCluster => {
    const name = url.searchParams.get('cluster') ?? '';
    const c = opts.clusters.get(name);
    if (c === undefined) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `cluster ${JSON.stringify(name)} is not part of the running mesh (clusters: ${[...opts.clusters.keys()].join(', ')})`,
      );
    }
    return c;
  };
  const guarded =
    (method: string, fn: (req: IncomingMessage, url: URL) => Promise<unknown>) =>
    async (req: IncomingMessage, url: URL): Promise<HttpReply> => {
      if (req.method !== method) {
        return errorReply(405, 'ERR_METHOD', `${url.pathname} takes ${method}`);
      }
      try {
        return json(await fn(req, url));
      } catch (err) {
        if (isClusterMeshError(err)) {
          const status = err.code === ErrorCode.KeyNotFound ? 404 : 400;
          return errorReply(status, err.code, err.message);
        }
        opts.log.error({ path: url.pathname, err: errorMessage(err) }, 'control API failed');
        return errorReply(500, 'ERR_INTERNAL', errorMessage(err));
      }
    };
  return startHttpServer(opts.addr ?? '127.0.0.1:0', 'control API', {
    '/v1/apply': guarded('POST', async (req, url) => {
      const c = cluster(url);
      const body = (await readJson(req)) as { objects?: unknown };
      if (!Array.isArray(body.objects)) {
        throw new ClusterMeshError(ErrorCode.InvalidArgument, 'apply: "objects" must be a list');
      }
      return (await c.registry.apply(body.objects as RegistryObject[])).map(applyOutcome);
    }),
    '/v1/objects': guarded('GET', async (_req, url) => {
      const c = cluster(url);
      const info = requireKind(url.searchParams.get('kind') ?? '');
      const namespace = url.searchParams.get('namespace') ?? undefined;
      const name = url.searchParams.get('name');
      if (name === null) return c.registry.list(info, namespace);
      const obj = await c.registry.get(info, namespace, name);
      return obj === undefined ? [] : [obj];
    }),
    '/v1/delete': guarded('POST', async (req, url) => {
      const c = cluster(url);
      const body = (await readJson(req)) as { targets?: unknown };
      if (!Array.isArray(body.targets)) {
        throw new ClusterMeshError(ErrorCode.InvalidArgument, 'delete: "targets" must be a list');
      }
      const out: boolean[] = [];
      for (const t of body.targets as { kind?: string; namespace?: string; name?: string }[]) {
        out.push(await c.registry.delete(requireKind(t.kind ?? ''), t.namespace, t.name ?? ''));
      }
      return out;
    }),
    '/v1/pods': guarded('GET', (_req, url) => Promise.resolve(cluster(url).runtime.pods())),
    '/v1/fault': guarded('POST', async (_req, url) => {
      const c = cluster(url);
      const action = url.searchParams.get('action') ?? '';
      if (!(FAULTS as readonly string[]).includes(action) || c.fault === undefined) {
        throw new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `fault: action must be one of ${FAULTS.join(', ')}, got ${JSON.stringify(action)}`,
        );
      }
      await c.fault(action as Fault);
      return {};
    }),
  });
}

function errorReply(status: number, code: string, message: string): HttpReply {
  return {
    status,
    contentType: 'application/json',
    body: `${JSON.stringify({ error: { code, message } })}\n`,
  };
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, 'request body too large');
    }
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
