/**
 * Policy in the userspace datapath: the per-node enforcer following an identity cache,
 * how the datapath classifies addresses (ipcache identity, host, remote-node, world),
 * decisions at the source (egress, on the translated backend for ClusterIPs) and at the
 * destination (ingress, named ports), the flows and metrics they leave, and the service
 * proxy holding a policy-dropped connection unanswered. Addresses stay in 127.209/16.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { newAgentViews, type AgentViews } from '../../src/agent/views.js';
import { NodeDatapath } from '../../src/datapath/datapath.js';
import { ServiceProxy } from '../../src/datapath/service-proxy.js';
import type { LocalEndpoint } from '../../src/endpoint/table.js';
import { makeClusterService, makeNode, parseLabel } from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { registerPolicyMetrics } from '../../src/metrics/policy.js';
import { PolicyEnforcer, ReservedIdentity } from '../../src/policy/enforcer.js';
import { IdentityCache } from '../../src/identity/cache.js';
import { until } from '../support/eventually.js';
import { freePort } from '../support/ports.js';

const CLUSTER = 'cluster1';
const NODE_IP = '127.209.0.1';
const OTHER_NODE_IP = '127.209.0.2';
const XWING_IP = '127.209.1.5';
const BASE_IP = '127.209.1.6';
const REMOTE_BASE_IP = '127.209.2.6';
const DNS_IP = '127.209.128.10';
const CLUSTER_IP = '127.209.128.1';

const XWING = 65792;
const BASE = 65793;
const DNS = 65794;
const REMOTE_BASE = 131328;

const podLabels = (app: string, cluster = CLUSTER, ns = 'default'): string[] => [
  `k8s:app=${app}`,
  `k8s:io.cilium.k8s.policy.cluster=${cluster}`,
  `k8s:io.kubernetes.pod.namespace=${ns}`,
];

function cnp(name: string, spec: Record<string, unknown>): Record<string, unknown> {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name, namespace: 'default' },
    spec,
  };
}
const ref = (name: string) => ({
  kind: 'CiliumNetworkPolicy' as const,
  namespace: 'default',
  name,
});

const XWING_EGRESS_TO_REMOTE_BASE = cnp('xwing-to-cluster2', {
  endpointSelector: { matchLabels: { app: 'x-wing' } },
  egress: [
    {
      toEndpoints: [
        { matchLabels: { app: 'rebel-base', 'io.cilium.k8s.policy.cluster': 'cluster2' } },
      ],
    },
  ],
});

function upsertIdentity(views: AgentViews, id: number, labels: readonly string[]): void {
  views.identities.upsert(id, labels.map(parseLabel), labels[1]?.split('=')[1]);
}

function endpoint(
  pod: string,
  ip: string,
  identity: number,
  extra: Partial<LocalEndpoint> = {},
): LocalEndpoint {
  return {
    id: identity - 65790,
    namespace: 'default',
    pod,
    identity,
    labels: [],
    ipv4: ip,
    ipv6: undefined,
    nodeIP: NODE_IP,
    state: 'ready',
    namedPorts: undefined,
    ...extra,
  };
}

function ipcache(views: AgentViews, ip: string, identity: number, cluster = CLUSTER): void {
  views.ipcache.upsert({
    source: cluster === CLUSTER ? 'local' : 'clustermesh',
    cidr: `${ip}/32`,
    identity,
    hostIP: NODE_IP,
    encryptKey: 0,
    cluster,
  });
}

/** A node with x-wing and rebel-base, the DNS endpoint, and cluster2's rebel-base known. */
function node(): { views: AgentViews; dp: NodeDatapath } {
  const views = newAgentViews({ clusterName: CLUSTER, log: silentLogger });
  views.policy.follow(views.identities);
  upsertIdentity(views, XWING, podLabels('x-wing'));
  upsertIdentity(views, BASE, podLabels('rebel-base'));
  upsertIdentity(views, DNS, [
    'k8s:io.cilium.k8s.policy.cluster=cluster1',
    'k8s:io.kubernetes.pod.namespace=kube-system',
    'k8s:k8s-app=kube-dns',
  ]);
  upsertIdentity(views, REMOTE_BASE, podLabels('rebel-base', 'cluster2'));
  views.endpoints.upsert(endpoint('x-wing', XWING_IP, XWING));
  views.endpoints.upsert(
    endpoint('rebel-base', BASE_IP, BASE, {
      namedPorts: { http: { port: 8080, protocol: 'TCP' } },
    }),
  );
  views.endpoints.upsert(endpoint('coredns', DNS_IP, DNS, { namespace: 'kube-system' }));
  ipcache(views, XWING_IP, XWING);
  ipcache(views, BASE_IP, BASE);
  ipcache(views, DNS_IP, DNS);
  ipcache(views, REMOTE_BASE_IP, REMOTE_BASE, 'cluster2');
  views.nodes.upsert(
    makeNode({
      Name: 'node1',
      Cluster: CLUSTER,
      IPAddresses: [{ Type: 'InternalIP', IP: NODE_IP }],
    }),
  );
  views.nodes.upsert(
    makeNode({
      Name: 'node2',
      Cluster: CLUSTER,
      IPAddresses: [{ Type: 'InternalIP', IP: OTHER_NODE_IP }],
    }),
  );
  const dp = new NodeDatapath({
    cluster: CLUSTER,
    node: { name: 'node1', ip: NODE_IP },
    services: views.services,
    ipcache: views.ipcache,
    identities: views.identities,
    log: silentLogger,
    policy: { enforcer: views.policy, endpoints: views.endpoints, nodes: views.nodes },
  });
  return { views, dp };
}

describe('PolicyEnforcer', () => {
  it('follows an identity cache: a remote identity arriving after the policy is allowed', () => {
    const ids = new IdentityCache();
    const enforcer = new PolicyEnforcer({ clusterName: CLUSTER, log: silentLogger });
    enforcer.follow(ids);
    ids.upsert(XWING, podLabels('x-wing').map(parseLabel), CLUSTER);
    assert.ok(
      enforcer.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2')),
      "enforcer.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2'))",
    );
    const peer = { kind: 'identity', id: REMOTE_BASE } as const;
    const before = enforcer.egress(XWING, peer, 80, 'TCP');
    assert.deepEqual(
      [before.enforced, before.allowed, before.reason],
      [true, false, 'POLICY_DENIED'],
    );
    const rev = enforcer.revision;
    ids.upsert(REMOTE_BASE, podLabels('rebel-base', 'cluster2').map(parseLabel), 'cluster2');
    assert.ok(enforcer.revision > rev, 'enforcer.revision > rev');
    const after = enforcer.egress(XWING, peer, 80, 'TCP');
    assert.equal(after.allowed, true);
    assert.deepEqual(after.allowedBy, [ref('xwing-to-cluster2')]);
    // Deleting it takes the permission away again.
    ids.delete(REMOTE_BASE);
    assert.equal(enforcer.egress(XWING, peer, 80, 'TCP').allowed, false);
    enforcer.close();
  });

  it('refuses an invalid policy, counts it, and drops the previous version of it', () => {
    const enforcer = new PolicyEnforcer({ clusterName: CLUSTER, log: silentLogger });
    enforcer.engine.upsertIdentity(XWING, podLabels('x-wing'));
    assert.ok(
      enforcer.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2')),
      "enforcer.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2'))",
    );
    const broken = cnp('xwing-to-cluster2', {
      endpointSelector: { matchLabels: { app: 'x-wing' } },
      egress: [{ toEndpoints: [{}], toCIDR: ['10.0.0.0/8'] }],
    });
    assert.equal(enforcer.upsertPolicy(broken, ref('xwing-to-cluster2')), false);
    assert.equal(enforcer.rejectedPolicies, 1);
    assert.deepEqual(enforcer.changeCounts, { success: 2, fail: 1 });
    assert.deepEqual(enforcer.engine.listPolicies(), []);
    const d = enforcer.egress(XWING, { kind: 'world', ip: '10.1.1.1' }, 80, 'TCP');
    assert.equal(d.enforced, false, 'nothing half-applied: no rule of the broken edit selects');
  });

  it('treats an endpoint whose identity is not known yet as reserved:init (default deny)', () => {
    const enforcer = new PolicyEnforcer({ clusterName: CLUSTER, log: silentLogger });
    const d = enforcer.egress(99999, { kind: 'identity', id: ReservedIdentity.World }, 80, 'TCP');
    assert.deepEqual([d.enforced, d.allowed, d.reason], [true, false, 'POLICY_DENIED']);
  });

  it('honours policy-default-local-cluster=false: a peer naming no cluster selects every cluster', () => {
    for (const [flag, allowed] of [
      [true, false],
      [false, true],
    ] as const) {
      const enforcer = new PolicyEnforcer({
        clusterName: CLUSTER,
        policyDefaultLocalCluster: flag,
        log: silentLogger,
      });
      enforcer.engine.upsertIdentity(XWING, podLabels('x-wing'));
      enforcer.engine.upsertIdentity(REMOTE_BASE, podLabels('rebel-base', 'cluster2'));
      enforcer.upsertPolicy(
        cnp('any-base', {
          endpointSelector: { matchLabels: { app: 'x-wing' } },
          egress: [{ toEndpoints: [{ matchLabels: { app: 'rebel-base' } }] }],
        }),
        ref('any-base'),
      );
      const d = enforcer.egress(XWING, { kind: 'identity', id: REMOTE_BASE }, 80, 'TCP');
      assert.equal(d.allowed, allowed, `policy-default-local-cluster=${String(flag)}`);
    }
  });
});

describe('NodeDatapath policy decisions', () => {
  it('classifies addresses: ipcache identity, own node = host, other nodes = remote-node, else world', () => {
    const { views, dp } = node();
    assert.deepEqual(dp.peerOf(REMOTE_BASE_IP), { kind: 'identity', id: REMOTE_BASE });
    assert.deepEqual(dp.peerOf(`::ffff:${XWING_IP}`), { kind: 'identity', id: XWING });
    assert.deepEqual(dp.peerOf(NODE_IP), { kind: 'identity', id: ReservedIdentity.Host });
    assert.deepEqual(dp.peerOf('127.0.0.1'), { kind: 'identity', id: ReservedIdentity.Host });
    assert.deepEqual(dp.peerOf(OTHER_NODE_IP), {
      kind: 'identity',
      id: ReservedIdentity.RemoteNode,
    });
    assert.deepEqual(dp.peerOf('127.209.9.9'), { kind: 'world', ip: '127.209.9.9' });
    // A node that leaves takes its address with it; one that arrives brings it.
    views.nodes.delete(CLUSTER, 'node2');
    assert.deepEqual(dp.peerOf(OTHER_NODE_IP), { kind: 'world', ip: OTHER_NODE_IP });
    views.nodes.upsert(
      makeNode({
        Name: 'n9',
        Cluster: 'cluster2',
        IPAddresses: [{ Type: 'InternalIP', IP: '127.209.0.9' }],
      }),
    );
    assert.deepEqual(dp.peerOf('127.209.0.9'), {
      kind: 'identity',
      id: ReservedIdentity.RemoteNode,
    });
    dp.close();
  });

  it('decides egress at the source only for its own endpoints', () => {
    const { views, dp } = node();
    views.policy.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2'));
    assert.equal(dp.egressDecision(NODE_IP, BASE_IP, 80, 'TCP'), undefined, 'the host: no policy');
    assert.equal(dp.egressDecision(XWING_IP, BASE_IP, 80, 'TCP')?.reason, 'POLICY_DENIED');
    assert.equal(dp.egressDecision(XWING_IP, REMOTE_BASE_IP, 80, 'TCP')?.allowed, true);
    // An endpoint of another node is that node's to enforce.
    views.endpoints.upsert(endpoint('x-wing', XWING_IP, XWING, { nodeIP: OTHER_NODE_IP }));
    assert.equal(dp.egressDecision(XWING_IP, BASE_IP, 80, 'TCP'), undefined);
    dp.close();
  });

  it('records connect() verdicts: a ClusterIP is the proxy’s, DNS is dropped by default deny', () => {
    const { views, dp } = node();
    views.services.upsertLocal({
      service: makeClusterService({
        cluster: CLUSTER,
        clusterID: 1,
        namespace: 'default',
        name: 'rebel-base',
        frontends: { [CLUSTER_IP]: { http: { Protocol: 'TCP', Port: 80 } } },
        backends: { [BASE_IP]: { http: { Protocol: 'TCP', Port: 80 } } },
        includeExternal: false,
        shared: true,
      }),
      global: false,
      affinity: 'none',
      type: 'ClusterIP',
    });
    views.policy.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2'));
    const src = { ip: XWING_IP, port: 40000 };
    assert.deepEqual(dp.connect(src, { ip: CLUSTER_IP, port: 80 }, 'TCP'), { verdict: 'service' });
    const dns = dp.connect(src, { ip: DNS_IP, port: 53 }, 'UDP');
    assert.equal(dns.verdict, 'dropped');
    assert.equal(dns.reason, 'POLICY_DENIED');
    assert.equal(dns.flow.protocol, 'UDP');
    assert.equal(dns.flow.type, 'policy-verdict');
    assert.equal(dns.flow.destination.namespace, undefined, 'ipcache has no pod name for it');
    assert.equal(dns.flow.destination.identity, DNS);

    views.policy.upsertPolicy(
      cnp('allow-dns', {
        endpointSelector: {},
        egress: [
          {
            toEndpoints: [
              {
                matchLabels: {
                  'k8s:io.kubernetes.pod.namespace': 'kube-system',
                  'k8s:k8s-app': 'kube-dns',
                },
              },
            ],
            toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }],
          },
        ],
      }),
      ref('allow-dns'),
    );
    const ok = dp.connect(src, { ip: DNS_IP, port: 53 }, 'UDP');
    assert.equal(ok.verdict, 'allowed');
    assert.deepEqual(ok.flow?.egress_allowed_by, [ref('allow-dns')]);
    // Port 54 is not in the rule.
    assert.equal(dp.connect(src, { ip: DNS_IP, port: 54 }, 'UDP').verdict, 'dropped');
    dp.close();
  });

  it('decides ingress at the destination with its named ports; the local host always passes', () => {
    const { views, dp } = node();
    views.policy.upsertPolicy(
      cnp('base-ingress', {
        endpointSelector: { matchLabels: { app: 'rebel-base' } },
        ingress: [
          {
            fromEndpoints: [{ matchLabels: { app: 'x-wing' } }],
            toPorts: [{ ports: [{ port: 'http' }] }],
          },
        ],
        ingressDeny: [{ fromEntities: ['remote-node'] }],
      }),
      ref('base-ingress'),
    );
    assert.equal(dp.ingressDecision(BASE_IP, XWING_IP, 8080, 'TCP')?.allowed, true);
    assert.equal(dp.ingressDecision(BASE_IP, XWING_IP, 80, 'TCP')?.reason, 'POLICY_DENIED');
    assert.equal(dp.ingressDecision(BASE_IP, '127.209.9.9', 8080, 'TCP')?.reason, 'POLICY_DENIED');
    assert.equal(dp.ingressDecision(BASE_IP, NODE_IP, 9999, 'TCP')?.allowed, true);
    const denied = dp.ingressDecision(BASE_IP, OTHER_NODE_IP, 8080, 'TCP');
    assert.equal(denied?.reason, 'POLICY_DENY');
    assert.deepEqual(denied.deniedBy, [ref('base-ingress')]);
    const flow = dp.recordIngress(
      {
        pod: { namespace: 'default', name: 'rebel-base', ip: BASE_IP },
        localPort: 8080,
        peer: { ip: OTHER_NODE_IP, port: 5555 },
      },
      denied,
    );
    assert.equal(flow?.verdict, 'DROPPED');
    assert.equal(flow.dropReason, 'POLICY_DENY');
    assert.deepEqual(flow.ingress_denied_by, [ref('base-ingress')]);
    assert.equal(flow.source.labels?.[0], 'reserved:remote-node');
    dp.close();
  });

  it('counts drops by reason and direction under Cilium’s metric names', async () => {
    const { views, dp } = node();
    views.policy.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2'));
    dp.connect({ ip: XWING_IP, port: 1 }, { ip: BASE_IP, port: 80 }, 'TCP');
    dp.connect({ ip: XWING_IP, port: 2 }, { ip: BASE_IP, port: 80 }, 'TCP');
    const registry = new Registry();
    const refresh = registerPolicyMetrics(registry, {
      policies: () => views.policy.engine.listPolicies().length,
      revision: () => views.policy.revision,
      changes: () => views.policy.changeCounts,
      enforcement: () => [
        { ingress: false, egress: true },
        { ingress: false, egress: false },
      ],
      drops: () => dp.flows.dropCounts(),
    });
    refresh();
    const text = await registry.metrics();
    assert.match(text, /^cilium_policy 1$/m);
    assert.match(text, /^cilium_policy_change_total\{outcome="success"\} 1$/m);
    assert.match(text, /^cilium_policy_endpoint_enforcement_status\{enforcement="egress"\} 1$/m);
    assert.match(text, /^cilium_policy_endpoint_enforcement_status\{enforcement="none"\} 1$/m);
    assert.match(text, /^cilium_drop_count_total\{reason="Policy denied",direction="EGRESS"\} 2$/m);
    dp.close();
  });
});

describe('ServiceProxy with egress policy (real sockets)', () => {
  let port = 0;
  let backend: Server;
  let proxy: ServiceProxy;
  let fixture: { views: AgentViews; dp: NodeDatapath };

  before(async () => {
    port = await freePort(BASE_IP);
    backend = createServer((_req, res) => res.end('rebel-base'));
    await new Promise<void>((resolve) => backend.listen(port, BASE_IP, resolve));
    fixture = node();
    fixture.views.services.upsertLocal({
      service: makeClusterService({
        cluster: CLUSTER,
        clusterID: 1,
        namespace: 'default',
        name: 'rebel-base',
        frontends: { [CLUSTER_IP]: { http: { Protocol: 'TCP', Port: port } } },
        backends: { [BASE_IP]: { http: { Protocol: 'TCP', Port: port } } },
        includeExternal: false,
        shared: true,
      }),
      global: false,
      affinity: 'none',
      type: 'ClusterIP',
    });
    proxy = new ServiceProxy({
      cluster: CLUSTER,
      frontends: fixture.dp.lb,
      route: () => fixture.dp,
      log: silentLogger,
    });
    await proxy.start();
  });

  after(async () => {
    await proxy.stop();
    fixture.dp.close();
    backend.closeAllConnections();
    await new Promise<void>((resolve) => backend.close(() => resolve()));
  });

  const request = (): Promise<{ data: string; closed: boolean; socket: Socket }> =>
    new Promise((resolve) => {
      const s = connect({ host: CLUSTER_IP, port, localAddress: XWING_IP });
      let data = '';
      let closed = false;
      s.on('data', (c: Buffer) => (data += c.toString()));
      s.on('error', () => undefined);
      s.on('close', () => (closed = true));
      s.on('connect', () => {
        s.write(`GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
        setTimeout(() => resolve({ data, closed, socket: s }), 400);
      });
    });

  it('forwards, then holds a denied connection unanswered and records the drop', async () => {
    const allowed = await request();
    assert.match(allowed.data, /rebel-base$/);
    allowed.socket.destroy();

    fixture.views.policy.upsertPolicy(XWING_EGRESS_TO_REMOTE_BASE, ref('xwing-to-cluster2'));
    const denied = await request();
    assert.equal(denied.data, '', 'no answer');
    assert.equal(denied.closed, false, 'not reset either: the client waits, as for a drop');
    denied.socket.destroy();
    assert.equal(proxy.stats.policyDenied, 1);
    const flow = fixture.dp.flows.list().flows.at(-1);
    assert.equal(flow?.verdict, 'DROPPED');
    assert.equal(flow.dropReason, 'POLICY_DENIED');
    assert.equal(flow.backend?.ip, BASE_IP, 'decided on the translated backend');
    await until(() => proxy.stats.sockets === 0);
  });
});
