import { encodeNode } from '../keyspace/index.js';
import { selectionSetOf } from '../service/backend-choice.js';
import { json, startHttpServer, type RunningHttpServer } from '../lib/http-server.js';
import type { AgentViews } from './remote-cluster.js';

/** Everything the agent's API serves; the CLI views read it (`-H URL`). */
export interface AgentApiSources {
  readonly views: AgentViews;
  clustermeshStatus(): unknown;
  agentStatus(): unknown;
  metrics(): Promise<{ contentType: string; body: string }>;
  healthy(): boolean;
}

/**
 * Routes: `/v1/clustermesh` (ClusterMesh status, DESIGN §5 JSON), `/v1/status`
 * (agent summary plus ClusterMesh), `/v1/nodes`, `/v1/identities`, `/v1/ipcache`,
 * `/v1/services`, `/v1/lb`, `/healthz`, `/metrics`.
 */
export function startAgentApi(addr: string, src: AgentApiSources): Promise<RunningHttpServer> {
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
          })),
        })),
      ),
    // What the datapath programs: with affinity, only the usable preferred backends
    // (all usable ones when none is), as the reference's filterPreferredBackends.
    '/v1/lb': () =>
      json(
        src.views.services.frontends().map((f) => ({
          frontend: f.frontend,
          revnat: f.id,
          flags: `${f.type}, non-routable`,
          backends: selectionSetOf(f.backends).map((b) => b.address),
        })),
      ),
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
