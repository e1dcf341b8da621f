import { encodeNode } from '../keyspace/index.js';
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
 * `/healthz`, `/metrics`.
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
