import { encodeNode } from '../keyspace/index.js';
import { selectionSetOf } from '../service/backend-choice.js';
import type { FlowLog } from '../datapath/flows.js';
import {
  json,
  startHttpServer,
  type HttpReply,
  type RunningHttpServer,
} from '../lib/http-server.js';
import type { AgentViews } from './views.js';

/** Everything the agent's API serves; the CLI views read it (`-H URL`). */
export interface AgentApiSources {
  readonly views: AgentViews;
  clustermeshStatus(): unknown;
  agentStatus(): unknown;
  metrics(): Promise<{ contentType: string; body: string }>;
  healthy(): boolean;
  /** The node's datapath flow log, when this agent runs one (`clustermesh up`). */
  readonly flows?: FlowLog | undefined;
  /** The datapath's backend health; without a datapath every backend is healthy. */
  readonly backendHealth?: ((address: string) => 'healthy' | 'unhealthy') | undefined;
}

/**
 * Routes: `/v1/clustermesh` (ClusterMesh status, the `status -o json` shape), `/v1/status`
 * (agent summary plus ClusterMesh), `/v1/nodes`, `/v1/identities`, `/v1/ipcache`,
 * `/v1/services`, `/v1/lb`, `/v1/flows?since=N&limit=N`, `/healthz`, `/metrics`.
 */
export function startAgentApi(addr: string, src: AgentApiSources): Promise<RunningHttpServer> {
  const health = (address: string): 'healthy' | 'unhealthy' =>
    src.backendHealth?.(address) ?? 'healthy';
  const isHealthy = (address: string): boolean => health(address) === 'healthy';
  return startHttpServer(addr, '--api-addr', {
    '/healthz': () => (src.healthy() ? { body: 'ok\n' } : { status: 500, body: 'not ready\n' }),
    '/metrics': () => src.metrics(),
    '/v1/clustermesh': () => json(src.clustermeshStatus()),
    '/v1/status': () => json(src.agentStatus()),
    // Nodes in their kvstore JSON form, exactly as the reference stores them.
    '/v1/nodes': () => ({
      contentType: 'application/json',
      body: `[${src.views.nodes
        .list()
        .map((n) => encodeNode(n))
        .join(',')}]\n`,
    }),
    '/v1/identities': () =>
      json(src.views.identities.list().map((i) => ({ id: i.id, labels: i.labels }))),
    '/v1/services': () =>
      json(
        src.views.services.frontends().map((f) => ({
          id: f.id,
          service: `${f.namespace}/${f.name}`,
          frontend: f.frontend,
          type: f.type,
          affinity: f.affinity,
          backends: f.backends.map((b) => ({
            address: b.address,
            cluster: b.cluster,
            state: b.state,
            preferred: b.preferred,
            health: health(b.address),
          })),
        })),
      ),
    // What the datapath programs: with affinity, only the usable preferred backends
    // (all usable ones when none is), as the reference's filterPreferredBackends, among
    // the healthy ones (all of them when none is healthy: fail open).
    '/v1/lb': () =>
      json(
        src.views.services.frontends().map((f) => ({
          frontend: f.frontend,
          revnat: f.id,
          flags: `${f.type}, non-routable`,
          backends: selectionSetOf(f.backends, isHealthy).map((b) => b.address),
          // Backends left out because the datapath found them unhealthy.
          unhealthy: f.backends.filter((b) => !isHealthy(b.address)).map((b) => b.address),
        })),
      ),
    '/v1/flows': (_req, url) => flowsRoute(src.flows, url),
    '/v1/ipcache': () =>
      json(
        src.views.ipcache.list().map((e) => ({
          cidr: e.cidr,
          identity: e.identity,
          hostIP: e.hostIP,
          encryptKey: e.encryptKey,
          cluster: e.cluster,
        })),
      ),
  });
}

/** `{ flows, next }`; an agent without a datapath has no flows rather than no route. */
function flowsRoute(log: FlowLog | undefined, url: URL): HttpReply {
  const since = intParam(url, 'since');
  const limit = intParam(url, 'limit');
  if (since === null || limit === null) {
    return json({ error: 'since and limit must be non-negative integers' }, 400);
  }
  if (log === undefined) return json({ flows: [], next: 0 });
  return json(log.list({ since, limit }));
}

/** undefined when absent, null when invalid. */
function intParam(url: URL, name: string): number | undefined | null {
  const raw = url.searchParams.get(name);
  if (raw === null || raw === '') return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= 0 ? n : null;
}
