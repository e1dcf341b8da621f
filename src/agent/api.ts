import { isIP } from 'node:net';
import { encodeNode } from '../keyspace/index.js';
import { selectionSetOf } from '../service/backend-choice.js';
import type { Addr, ConnectVerdict, L4Proto } from '../datapath/datapath.js';
import type { FlowLog } from '../datapath/flows.js';
import type { LocalEndpoint } from '../endpoint/table.js';
import { ReservedIdentity } from '../policy/enforcer.js';
import {
  json,
  startHttpServer,
  type HttpReply,
  type RunningHttpServer,
} from '../lib/http-server.js';
import type { HealthStatus } from '../health/prober.js';
import { errorMessage, isClusterMeshError } from '../lib/errors.js';
import type { RemoteResource, RemoteResourceView } from './remote-cluster.js';
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
  /** The datapath's egress decision for a connection about to be made (`clustermesh up`). */
  readonly connect?: ((src: Addr, dst: Addr, proto: L4Proto) => ConnectVerdict) | undefined;
  /** This node's IP: its endpoints are the ones on it. */
  nodeIP?: (() => string | undefined) | undefined;
  /** The datapath's backend health; without a datapath every backend is healthy. */
  readonly backendHealth?: ((address: string) => 'healthy' | 'unhealthy') | undefined;
  /** `/v1/troubleshoot`: configuration and per-remote keys held, for `clustermesh troubleshoot`. */
  troubleshoot?: (() => AgentTroubleshootInfo) | undefined;
  /** `/v1/health`: node-to-node probe results; undefined when the agent does not probe. */
  health?: (() => HealthStatus | undefined) | undefined;
  /** `POST /v1/fault?action=A&…`: fault injection, only on agents of the local mesh. */
  fault?: ((action: string, params: URLSearchParams) => Record<string, unknown>) | undefined;
}

/** `/v1/troubleshoot`. */
export interface AgentTroubleshootInfo {
  readonly cluster: { readonly name: string; readonly id: number };
  readonly node: string;
  readonly 'max-connected-clusters': number;
  readonly 'policy-default-local-cluster': boolean;
  /** The `--clustermesh-config` directory; null without one. */
  readonly 'clustermesh-config': string | null;
  readonly kvstore: 'etcd' | 'memory';
  readonly remotes: Record<string, Record<RemoteResource, RemoteResourceView>>;
  readonly ipcache: readonly { readonly cidr: string; readonly cluster: string }[];
  readonly faults: {
    readonly partitioned: readonly string[];
    readonly 'dropping-events': readonly string[];
  };
}

/**
 * Routes: `/v1/clustermesh` (ClusterMesh status, the `status -o json` shape), `/v1/status`
 * (agent summary plus ClusterMesh), `/v1/nodes`, `/v1/identities`, `/v1/ipcache`,
 * `/v1/services`, `/v1/lb`, `/v1/flows?since=N&limit=N`, `/v1/endpoints`,
 * `/v1/endpoint?id=N` (with its computed policy), `/v1/policy`, `POST /v1/connect?src=IP&
 * dst=IP&dport=N[&sport=N][&proto=TCP|UDP]`, `/v1/troubleshoot`, `/v1/health`,
 * `POST /v1/fault?action=A` (local mesh only), `/healthz`, `/metrics`.
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
    '/v1/endpoints': () => {
      const ip = src.nodeIP?.();
      return json(
        ip === undefined ? [] : src.views.endpoints.list(ip).map((ep) => endpointRow(src, ep)),
      );
    },
    '/v1/endpoint': (_req, url) => {
      const id = intParam(url, 'id');
      const ip = src.nodeIP?.();
      const ep =
        typeof id === 'number' && ip !== undefined ? src.views.endpoints.get(id, ip) : undefined;
      if (ep === undefined) {
        return json(
          { error: `endpoint ${url.searchParams.get('id') ?? ''} not found on this node` },
          404,
        );
      }
      const policy = src.views.policy;
      let computed: unknown = null;
      if (policy.engine.labelSetOf(ep.identity) !== undefined) {
        const p = policy.engine.computeEndpointPolicy(ep.identity, ep.namedPorts);
        computed = { ingress: p.ingress.summary(), egress: p.egress.summary() };
      }
      return json({ ...endpointRow(src, ep), namedPorts: ep.namedPorts ?? {}, policy: computed });
    },
    '/v1/policy': () =>
      json({
        revision: src.views.policy.revision,
        rejected: src.views.policy.rejectedPolicies,
        policies: src.views.policy.engine.listPolicies(),
      }),
    '/v1/connect': (req, url) => connectRoute(src, req.method, url),
    '/v1/troubleshoot': () =>
      src.troubleshoot === undefined
        ? json({ error: 'this agent does not serve troubleshooting data' }, 404)
        : json(src.troubleshoot()),
    '/v1/health': () => {
      const h = src.health?.();
      return h === undefined
        ? json({ error: 'this agent runs no health endpoint (--health-addr)' }, 404)
        : json(h);
    },
    '/v1/fault': (req, url) => faultRoute(src, req.method, url),
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

/** A row of `endpoint list`: what `cilium endpoint list` shows. */
function endpointRow(src: AgentApiSources, ep: LocalEndpoint): Record<string, unknown> {
  const policy = src.views.policy;
  // An identity not learnt yet is decided as reserved:init, which is enforced both ways.
  const id =
    policy.engine.labelSetOf(ep.identity) !== undefined ? ep.identity : ReservedIdentity.Init;
  const p = policy.engine.computeEndpointPolicy(id);
  const ingress = p.ingress.enforced;
  const egress = p.egress.enforced;
  return {
    id: ep.id,
    namespace: ep.namespace,
    pod: ep.pod,
    identity: ep.identity,
    labels: ep.labels,
    ipv4: ep.ipv4 ?? null,
    ipv6: ep.ipv6 ?? null,
    status: ep.state,
    policyEnforcement: { ingress, egress },
  };
}

function faultRoute(src: AgentApiSources, method: string | undefined, url: URL): HttpReply {
  if (method !== 'POST') return json({ error: '/v1/fault takes POST' }, 405);
  if (src.fault === undefined) {
    return json({ error: 'fault injection is only available on agents of a local mesh' }, 404);
  }
  try {
    return json(src.fault(url.searchParams.get('action') ?? '', url.searchParams));
  } catch (err) {
    const code = isClusterMeshError(err) ? err.code : 'ERR_INTERNAL';
    return json({ error: { code, message: errorMessage(err) } }, 400);
  }
}

function connectRoute(src: AgentApiSources, method: string | undefined, url: URL): HttpReply {
  if (method !== 'POST') return json({ error: '/v1/connect takes POST' }, 405);
  if (src.connect === undefined) return json({ verdict: 'allowed' });
  const srcIP = url.searchParams.get('src') ?? '';
  const dstIP = url.searchParams.get('dst') ?? '';
  const dport = intParam(url, 'dport');
  const sport = intParam(url, 'sport');
  const proto = url.searchParams.get('proto') ?? 'TCP';
  if (
    isIP(srcIP) === 0 ||
    isIP(dstIP) === 0 ||
    typeof dport !== 'number' ||
    dport > 65535 ||
    sport === null ||
    (proto !== 'TCP' && proto !== 'UDP')
  ) {
    return json(
      { error: 'expected src=IP, dst=IP, dport=1..65535, optional sport and proto=TCP|UDP' },
      400,
    );
  }
  return json(src.connect({ ip: srcIP, port: sport ?? 0 }, { ip: dstIP, port: dport }, proto));
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
