import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  aggregateEdges,
  connectionOf,
  edgeOf,
  edgeVerdictOf,
  flowMatches,
  globalServicesOf,
  workloadOfPod,
  type AgentServiceRow,
  type UiFlowRow,
} from '../../src/ui/model.js';

const T0 = Date.parse('2026-01-01T00:00:00.000Z');

function flow(over: Partial<UiFlowRow> & { at: number }): UiFlowRow {
  const { at, ...rest } = over;
  return {
    seq: 1,
    id: `x#${at}`,
    cluster: 'cluster1',
    time: new Date(T0 + at).toISOString(),
    node: 'cluster1-node1',
    verdict: 'FORWARDED',
    protocol: 'TCP',
    direction: 'egress',
    source: {
      ip: '127.1.1.2',
      port: 40000,
      cluster: 'cluster1',
      namespace: 'default',
      pod: 'x-wing-5fc4c95698-gi2k6',
    },
    destination: { ip: '127.1.128.3', port: 80 },
    service: { namespace: 'default', name: 'rebel-base' },
    backend: {
      ip: '127.2.1.1',
      port: 80,
      cluster: 'cluster2',
      namespace: 'default',
      pod: 'rebel-base-79bf5f7b96-eplx3',
    },
    ...rest,
  };
}

describe('ui model: workloads and edges', () => {
  it('names the Deployment of a pod, and leaves other names alone', () => {
    assert.equal(workloadOfPod('x-wing-5fc4c95698-gi2k6'), 'x-wing');
    assert.equal(workloadOfPod('rebel-base-79bf5f7b96-eplx3'), 'rebel-base');
    assert.equal(workloadOfPod('standalone'), 'standalone');
    assert.equal(workloadOfPod('a-b'), 'a-b');
  });

  it('puts a service flow on the edge to its backend, or to the service without one', () => {
    assert.deepEqual(edgeOf(flow({ at: 0 }), 'cluster1'), {
      from: 'cluster1/default/x-wing',
      to: 'cluster2/default/rebel-base',
    });
    const none = flow({ at: 0, backend: undefined, verdict: 'DROPPED', dropReason: 'NO_SERVICE' });
    assert.deepEqual(edgeOf(none, 'cluster1'), {
      from: 'cluster1/default/x-wing',
      to: 'service/cluster1/default/rebel-base',
    });
    const world = flow({
      at: 0,
      service: undefined,
      backend: undefined,
      destination: { ip: '8.8.8.8', port: 53, labels: ['reserved:world'] },
    });
    assert.equal(edgeOf(world, 'cluster1').to, 'reserved/world');
  });

  it('classifies verdicts: policy drops, other drops (no backend), forwarded', () => {
    assert.equal(edgeVerdictOf({ verdict: 'FORWARDED' }), 'forwarded');
    assert.equal(edgeVerdictOf({ verdict: 'DROPPED', dropReason: 'POLICY_DENIED' }), 'dropped');
    assert.equal(edgeVerdictOf({ verdict: 'DROPPED', dropReason: 'POLICY_DENY' }), 'dropped');
    assert.equal(edgeVerdictOf({ verdict: 'DROPPED', dropReason: 'no backends' }), 'no-backend');
    assert.equal(
      edgeVerdictOf({ verdict: 'DROPPED', dropReason: 'BACKEND_UNHEALTHY' }),
      'no-backend',
    );
  });

  it('aggregates the window: rate from egress flows, verdict of the latest flow', () => {
    const ingress = (at: number, verdict: 'FORWARDED' | 'DROPPED'): UiFlowRow =>
      flow({
        at,
        cluster: 'cluster2',
        direction: 'ingress',
        verdict,
        ...(verdict === 'DROPPED' ? { dropReason: 'POLICY_DENIED' } : {}),
        service: undefined,
        backend: undefined,
        destination: {
          ip: '127.2.1.1',
          port: 80,
          cluster: 'cluster2',
          namespace: 'default',
          pod: 'rebel-base-79bf5f7b96-eplx3',
        },
      });
    const flows = [
      flow({ at: -70_000 }), // outside the 60 s window
      flow({ at: 1_000 }),
      ingress(1_000, 'FORWARDED'),
      flow({ at: 2_000 }),
      ingress(2_001, 'DROPPED'),
    ];
    const edges = aggregateEdges(flows, T0 + 10_000, 60_000);
    assert.equal(edges.length, 1);
    const e = edges[0];
    assert.ok(e !== undefined, 'one edge');
    assert.equal(e.id, 'cluster1/default/x-wing->cluster2/default/rebel-base');
    assert.equal(e.verdict, 'dropped', 'the ingress drop after the egress is the latest');
    assert.deepEqual(e.counts, { forwarded: 2, dropped: 1, 'no-backend': 0 });
    assert.equal(e.rate, Math.round((2 / 60) * 100) / 100);
    // Forwarded again afterwards: the edge turns back.
    const later = aggregateEdges([...flows, flow({ at: 3_000 })], T0 + 10_000, 60_000);
    assert.equal(later[0]?.verdict, 'forwarded');
    // Nothing in the window: no edge.
    assert.deepEqual(aggregateEdges(flows, T0 + 200_000, 60_000), []);
  });

  it('filters flows as observe does: cluster, namespace, pod prefix, verdict', () => {
    const f = flow({ at: 0 });
    assert.ok(flowMatches(f, {}), 'no filter');
    assert.ok(flowMatches(f, { cluster: 'cluster2' }), 'the backend is in cluster2');
    assert.ok(!flowMatches(f, { cluster: 'cluster3' }), 'nothing in cluster3');
    assert.ok(flowMatches(f, { namespace: 'default' }), 'namespace');
    assert.ok(!flowMatches(f, { namespace: 'kube-system' }), 'other namespace');
    assert.ok(flowMatches(f, { pod: 'x-wing' }), 'pod prefix');
    assert.ok(!flowMatches(f, { pod: 'tie' }), 'other pod');
    assert.ok(!flowMatches(f, { verdict: 'DROPPED' }), 'verdict');
    assert.ok(flowMatches(f, { type: 'trace' }), 'a forwarded flow without a type is a trace');
    assert.ok(!flowMatches(f, { type: 'policy-verdict' }), 'not a policy verdict');
    const denied = flow({ at: 0, verdict: 'DROPPED', type: 'policy-verdict' });
    assert.ok(
      flowMatches(denied, { type: 'policy-verdict', verdict: 'DROPPED' }),
      'type + verdict',
    );
  });
});

describe('ui model: connections', () => {
  const remote = (over: Record<string, unknown>) => ({
    name: 'cluster2',
    connected: true,
    ready: true,
    status: '',
    'num-nodes': 2,
    'num-endpoints': 4,
    'num-shared-services': 1,
    synced: { nodes: true, endpoints: true, identities: true, services: true },
    freshness: { 'last-heartbeat': new Date(T0 - 1500).toISOString() },
    ...over,
  });

  it('is ready when every agent sees the remote ready, with the newest heartbeat age', () => {
    const c = connectionOf(
      'cluster1',
      'cluster2',
      [
        { ok: true, remotes: [remote({})] },
        {
          ok: true,
          remotes: [remote({ freshness: { 'last-heartbeat': new Date(T0 - 500).toISOString() } })],
        },
      ],
      T0,
    );
    assert.equal(c.state, 'ready');
    assert.equal(c.ready, 2);
    assert.equal(c.heartbeatAgeMs, 500);
    assert.equal(c.syncText, 'synced');
    assert.equal(c.reason, '');
  });

  it("is failing with the agents' reason when one agent sees it not ready", () => {
    const c = connectionOf(
      'cluster1',
      'cluster2',
      [
        { ok: true, remotes: [remote({})] },
        {
          ok: true,
          remotes: [
            remote({
              ready: false,
              status: 'remote kvstore not responding for more than 4s',
              synced: { nodes: true, endpoints: false, identities: true, services: false },
            }),
          ],
        },
      ],
      T0,
    );
    assert.equal(c.state, 'failing');
    assert.equal(c.ready, 1);
    assert.match(c.reason, /not responding/);
    assert.equal(c.syncText, 'syncing: endpoints, services');
  });

  it('is connecting while waiting for the first contact, failing when no agent answers', () => {
    const waiting = connectionOf(
      'cluster1',
      'cluster2',
      [
        {
          ok: true,
          remotes: [
            remote({
              ready: false,
              connected: false,
              status: 'Waiting for initial connection to be established',
            }),
          ],
        },
      ],
      T0,
    );
    assert.equal(waiting.state, 'connecting');
    const down = connectionOf('cluster1', 'cluster2', [{ ok: false, error: 'ECONNREFUSED' }], T0);
    assert.equal(down.state, 'failing');
    assert.match(down.reason, /no agent of cluster1 answers: ECONNREFUSED/);
    const missing = connectionOf('cluster1', 'cluster3', [{ ok: true, remotes: [remote({})] }], T0);
    assert.equal(missing.state, 'failing');
    assert.match(missing.reason, /not configured/);
  });
});

describe('ui model: global services', () => {
  const row = (service: string, clusters: string[]): AgentServiceRow => ({
    service,
    frontend: '127.1.128.3:80/TCP',
    affinity: 'local',
    backends: clusters.map((c, i) => ({
      address: `127.${c.slice(-1)}.1.${i + 1}:80/TCP`,
      cluster: c,
      health: i === 0 ? 'healthy' : 'unhealthy',
    })),
  });

  it('lists services with backends of other clusters, and MCS imports, per cluster', () => {
    const tables = new Map([
      [
        'cluster1',
        [
          row('default/rebel-base', ['cluster1', 'cluster1', 'cluster2', 'cluster2']),
          row('default/local-only', ['cluster1']),
          row('default/exported', ['cluster1']),
        ],
      ],
      ['cluster2', [row('default/rebel-base', ['cluster2', 'cluster1'])]],
    ]);
    const out = globalServicesOf(tables, new Set(['default/exported']));
    assert.deepEqual(
      out.map(
        (s) => `${s.namespace}/${s.name}:${s.kind}:${s.views.map((v) => v.cluster).join('+')}`,
      ),
      ['default/exported:mcs:cluster1', 'default/rebel-base:global:cluster1+cluster2'],
    );
    const view = out[1]?.views[0];
    assert.ok(view !== undefined, "cluster1's view of rebel-base");
    assert.equal(view.backends.length, 4);
    assert.equal(view.affinity, 'local');
    assert.equal(view.backends[1]?.health, 'unhealthy');
  });
});
