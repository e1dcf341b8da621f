/**
 * `clustermesh endpoint list|get` against real agent APIs (127.204.201.x) fed with
 * endpoints, identities and policies, found through a written mesh.json.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentApi } from '../../src/agent/api.js';
import { newAgentViews, type AgentViews } from '../../src/agent/views.js';
import type { LocalEndpoint } from '../../src/endpoint/table.js';
import type { RunningHttpServer } from '../../src/lib/http-server.js';
import { silentLogger } from '../../src/lib/logger.js';
import type { PolicyRef } from '../../src/policy/rules.js';
import { runCliCaptured, type CapturedRun } from '../support/cli.js';

const NS = 'k8s:io.kubernetes.pod.namespace=default';

function labelsOf(app: string, cluster: string): string[] {
  return [`k8s:app=${app}`, `k8s:io.cilium.k8s.policy.cluster=${cluster}`, NS];
}

function endpoint(
  id: number,
  pod: string,
  identity: number,
  ipv4: string,
  nodeIP: string,
  cluster: string,
  extra: Partial<LocalEndpoint> = {},
): LocalEndpoint {
  return {
    id,
    namespace: 'default',
    pod,
    identity,
    labels: labelsOf(pod.replace(/-\d+$/, ''), cluster),
    ipv4,
    ipv6: undefined,
    nodeIP,
    state: 'ready',
    namedPorts: undefined,
    ...extra,
  };
}

function policy(kind: PolicyRef['kind'], name: string, spec: unknown): [unknown, PolicyRef] {
  const namespace = kind === 'CiliumClusterwideNetworkPolicy' ? '' : 'default';
  const metadata = namespace === '' ? { name } : { name, namespace };
  return [
    { apiVersion: 'cilium.io/v2', kind, metadata, spec },
    { kind, namespace, name },
  ];
}

/** An agent of `cluster` on node `nodeIP`, knowing the identities of `ids`. */
function agentViews(cluster: string, ids: readonly [number, string[]][]): AgentViews {
  const views = newAgentViews({ clusterName: cluster, log: silentLogger });
  for (const [id, labels] of ids) views.policy.engine.upsertIdentity(id, labels);
  return views;
}

async function startAgent(
  addr: string,
  views: AgentViews,
  nodeIP: string,
): Promise<RunningHttpServer> {
  return startAgentApi(addr, {
    views,
    clustermeshStatus: () => ({}),
    agentStatus: () => ({}),
    metrics: () => Promise.resolve({ contentType: 'text/plain', body: '' }),
    healthy: () => true,
    nodeIP: () => nodeIP,
  });
}

function run(...argv: string[]): Promise<CapturedRun> {
  return runCliCaptured(argv);
}

async function writeMesh(
  dir: string,
  clusters: readonly { name: string; id: number; agents: { node: string; api: string }[] }[],
): Promise<void> {
  await mkdir(dir, { recursive: true });
  const state = {
    version: 1,
    pid: process.pid,
    startedAt: new Date().toISOString(),
    kvstore: 'memory',
    kvstoremesh: false,
    control: 'http://127.204.201.9:1',
    clusters: clusters.map((c) => ({
      name: c.name,
      id: c.id,
      kvstore: `memory://${c.name}`,
      dns: '127.204.128.10:53',
      podCIDR: `127.${203 + c.id}.0.0/17`,
      serviceCIDR: `127.${203 + c.id}.128.0/17`,
      agents: c.agents.map((a, i) => ({
        node: a.node,
        ip: `127.${203 + c.id}.0.${i + 1}`,
        podCIDR: `127.${203 + c.id}.${i + 1}.0/24`,
        api: a.api,
      })),
    })),
  };
  await writeFile(join(dir, 'mesh.json'), JSON.stringify(state));
}

const XWING = labelsOf('x-wing', 'cluster1');
const REBEL = labelsOf('rebel-base', 'cluster1');
const TIE = labelsOf('tie-fighter', 'cluster1');
const REBEL2 = labelsOf('rebel-base', 'cluster2');

void describe('clustermesh endpoint list|get', () => {
  let api1: RunningHttpServer;
  let api2: RunningHttpServer;
  let api3: RunningHttpServer;
  let dir: string;
  let mesh: string;
  let single: string;
  let partial: string;

  before(async () => {
    const ids: [number, string[]][] = [
      [65792, XWING],
      [65793, REBEL],
      [65794, TIE],
      [131328, REBEL2],
    ];
    const v1 = agentViews('cluster1', ids);
    const v2 = agentViews('cluster1', ids);
    const v3 = agentViews('cluster2', ids);
    v1.endpoints.upsert(endpoint(101, 'x-wing', 65792, '127.204.1.5', '127.204.0.1', 'cluster1'));
    v1.endpoints.upsert(
      endpoint(102, 'rebel-base-0', 65793, '127.204.1.6', '127.204.0.1', 'cluster1', {
        namedPorts: { http: { port: 80, protocol: 'TCP' } },
      }),
    );
    // Another node's endpoint: its own agent lists it, not this one.
    v1.endpoints.upsert(
      endpoint(201, 'tie-fighter', 65794, '127.204.2.5', '127.204.0.2', 'cluster1'),
    );
    // An identity this agent has not learnt: no computed policy yet.
    v1.endpoints.upsert(
      endpoint(103, 'probe', 65999, '127.204.1.7', '127.204.0.1', 'cluster1', {
        labels: [],
        state: 'waiting-for-identity',
      }),
    );
    v2.endpoints.upsert(
      endpoint(201, 'tie-fighter', 65794, '127.204.2.5', '127.204.0.2', 'cluster1'),
    );
    v3.endpoints.upsert(
      endpoint(301, 'rebel-base-0', 131328, '127.205.1.5', '127.205.0.1', 'cluster2'),
    );
    for (const v of [v1, v2]) {
      v.policy.upsertPolicy(
        ...policy('CiliumNetworkPolicy', 'rebel-ingress', {
          endpointSelector: { matchLabels: { app: 'rebel-base' } },
          ingress: [
            {
              fromEndpoints: [{ matchLabels: { app: 'x-wing' } }],
              toPorts: [{ ports: [{ port: 'http', protocol: 'TCP' }] }],
            },
          ],
        }),
      );
      v.policy.upsertPolicy(
        ...policy('CiliumNetworkPolicy', 'xwing-egress', {
          endpointSelector: { matchLabels: { app: 'x-wing' } },
          egress: [
            {
              toEndpoints: [{ matchLabels: { app: 'rebel-base' } }],
              toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
            },
          ],
          egressDeny: [{ toCIDR: ['127.0.0.0/8'] }],
        }),
      );
    }
    api1 = await startAgent('127.204.201.1:0', v1, '127.204.0.1');
    api2 = await startAgent('127.204.201.2:0', v2, '127.204.0.2');
    api3 = await startAgent('127.204.201.3:0', v3, '127.205.0.1');
    dir = await mkdtemp(join(tmpdir(), 'cli-endpoint-'));
    mesh = join(dir, 'mesh');
    single = join(dir, 'single');
    partial = join(dir, 'partial');
    await writeMesh(mesh, [
      {
        name: 'cluster1',
        id: 1,
        agents: [
          { node: 'cluster1-node1', api: api1.url },
          { node: 'cluster1-node2', api: api2.url },
        ],
      },
      { name: 'cluster2', id: 2, agents: [{ node: 'cluster2-node1', api: api3.url }] },
    ]);
    await writeMesh(single, [
      { name: 'cluster1', id: 1, agents: [{ node: 'cluster1-node1', api: api1.url }] },
    ]);
    await writeMesh(partial, [
      {
        name: 'cluster1',
        id: 1,
        agents: [
          { node: 'cluster1-node1', api: api1.url },
          { node: 'cluster1-node9', api: 'http://127.204.201.99:2' },
        ],
      },
    ]);
  });

  after(async () => {
    await api1.close();
    await api2.close();
    await api3.close();
    await rm(dir, { recursive: true, force: true });
  });

  const TABLE_HEAD = [
    'ENDPOINT   POLICY (ingress)   POLICY (egress)   IDENTITY   LABELS (source:key[=value])                 IPv6    IPv4          STATUS',
    '           ENFORCEMENT        ENFORCEMENT',
  ];
  const NODE1 = [
    ...TABLE_HEAD,
    '101        Disabled           Enabled           65792      k8s:app=x-wing                                      127.204.1.5   ready',
    '                                                           k8s:io.cilium.k8s.policy.cluster=cluster1',
    '                                                           k8s:io.kubernetes.pod.namespace=default',
    '102        Enabled            Disabled          65793      k8s:app=rebel-base                                  127.204.1.6   ready',
    '                                                           k8s:io.cilium.k8s.policy.cluster=cluster1',
    '                                                           k8s:io.kubernetes.pod.namespace=default',
    '103        Enabled            Enabled           65999      no labels                                           127.204.1.7   waiting-for-identity',
  ];
  const NODE2 = [
    ...TABLE_HEAD,
    '201        Disabled           Disabled          65794      k8s:app=tie-fighter                                 127.204.2.5   ready',
    '                                                           k8s:io.cilium.k8s.policy.cluster=cluster1',
    '                                                           k8s:io.kubernetes.pod.namespace=default',
  ];
  const C2NODE1 = [
    ...TABLE_HEAD,
    '301        Disabled           Disabled          131328     k8s:app=rebel-base                                  127.205.1.5   ready',
    '                                                           k8s:io.cilium.k8s.policy.cluster=cluster2',
    '                                                           k8s:io.kubernetes.pod.namespace=default',
  ];
  const text = (...lines: string[]): string => `${lines.join('\n')}\n`;

  it('endpoint list -H prints one agent as cilium endpoint list does', async () => {
    const r = await run('-H', api1.url, 'endpoint', 'list');
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(r.stdout, text(...NODE1));
  });

  it('endpoint list --node picks one agent of mesh.json', async () => {
    const r = await run(
      'endpoint',
      'list',
      '--state-dir',
      mesh,
      '--node',
      'cluster1/cluster1-node2',
    );
    assert.equal(r.code, 0);
    assert.equal(r.stdout, text(...NODE2));
  });

  it('endpoint list without a selector lists every agent, one table each', async () => {
    const r = await run('endpoint', 'list', '--state-dir', mesh);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      text(
        'cluster1/cluster1-node1:',
        ...NODE1,
        '',
        'cluster1/cluster1-node2:',
        ...NODE2,
        '',
        'cluster2/cluster2-node1:',
        ...C2NODE1,
      ),
    );
    const c2 = await run('endpoint', 'list', '--state-dir', mesh, '--cluster', 'cluster2');
    assert.equal(c2.stdout, text('cluster2/cluster2-node1:', ...C2NODE1));
  });

  it('endpoint list -o json prints the rows; several agents add cluster and node', async () => {
    const one = await run('-H', api1.url, '-o', 'json', 'endpoint', 'list');
    assert.equal(one.code, 0);
    const rows = JSON.parse(one.stdout) as Record<string, unknown>[];
    assert.deepEqual(rows[1], {
      id: 102,
      namespace: 'default',
      pod: 'rebel-base-0',
      identity: 65793,
      labels: REBEL,
      ipv4: '127.204.1.6',
      ipv6: null,
      status: 'ready',
      policyEnforcement: { ingress: true, egress: false },
    });
    assert.deepEqual(
      rows.map((x) => x.id),
      [101, 102, 103],
    );
    const many = await run(
      '-o',
      'json',
      'endpoint',
      'list',
      '--state-dir',
      mesh,
      '--cluster',
      'cluster1',
    );
    assert.deepEqual(
      (JSON.parse(many.stdout) as Record<string, unknown>[]).map((x) => [x.cluster, x.node, x.id]),
      [
        ['cluster1', 'cluster1-node1', 101],
        ['cluster1', 'cluster1-node1', 102],
        ['cluster1', 'cluster1-node1', 103],
        ['cluster1', 'cluster1-node2', 201],
      ],
    );
    const yaml = await run(
      '-o',
      'yaml',
      'endpoint',
      'list',
      '--state-dir',
      mesh,
      '--node',
      'cluster2-node1',
    );
    assert.match(yaml.stdout, /^- id: 301\n {2}namespace: default\n {2}pod: rebel-base-0\n/);
  });

  it('endpoint list warns about an unreachable agent and lists the others', async () => {
    const r = await run('endpoint', 'list', '--state-dir', partial);
    assert.equal(r.code, 0);
    assert.equal(r.stdout, text('cluster1/cluster1-node1:', ...NODE1));
    assert.match(
      r.stderr,
      /^clustermesh: warning: cannot reach agent cluster1\/cluster1-node9 at http:\/\/127\.204\.201\.99:2 .*\n$/,
    );
  });

  it('endpoint get prints the endpoint and its computed policy', async () => {
    const r = await run('endpoint', 'get', '102', '-H', api1.url);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.equal(
      r.stdout,
      text(
        'Endpoint:    102',
        'Pod:         default/rebel-base-0',
        'Identity:    65793',
        'Labels:      k8s:app=rebel-base',
        '             k8s:io.cilium.k8s.policy.cluster=cluster1',
        '             k8s:io.kubernetes.pod.namespace=default',
        'IPv4:        127.204.1.6',
        'IPv6:',
        'Status:      ready',
        'Named ports: http=80/TCP',
        '',
        'Ingress policy: Enabled, default deny on',
        '  ALLOW CiliumNetworkPolicy default/rebel-ingress spec.ingress[0]: from identities 65792 ports http/TCP',
        'Egress policy: Disabled',
      ),
    );
    const xwing = await run('endpoint', 'get', '101', '--state-dir', single);
    assert.equal(xwing.code, 0, 'a mesh of one agent needs no --node');
    assert.equal(
      xwing.stdout.slice(xwing.stdout.indexOf('\n\n') + 2),
      text(
        'Ingress policy: Disabled',
        'Egress policy: Enabled, default deny on',
        '  ALLOW CiliumNetworkPolicy default/xwing-egress spec.egress[0]: to identities 65793 ports 80/TCP',
        '  DENY  CiliumNetworkPolicy default/xwing-egress spec.egressDeny[0]: to cidr 127.0.0.0/8 ports 0/ANY',
      ),
    );
    const unknown = await run(
      'endpoint',
      'get',
      '103',
      '--node',
      'cluster1-node1',
      '--state-dir',
      mesh,
    );
    assert.equal(unknown.code, 0);
    assert.match(
      unknown.stdout,
      /\nStatus: {6}waiting-for-identity\nNamed ports: none\n\nPolicy: none computed \(the agent does not know identity 65999 yet\)\n$/,
    );
  });

  it('endpoint get -o json prints the agent answer with the policy summary', async () => {
    const r = await run('-o', 'json', 'endpoint', 'get', '101', '-H', api1.url);
    assert.equal(r.code, 0);
    const ep = JSON.parse(r.stdout) as {
      id: number;
      namedPorts: unknown;
      policy: { ingress: unknown; egress: unknown };
    };
    assert.equal(ep.id, 101);
    assert.deepEqual(ep.namedPorts, {});
    assert.deepEqual(ep.policy.ingress, { enforced: false, defaultDeny: false, entries: [] });
    assert.deepEqual(ep.policy.egress, {
      enforced: true,
      defaultDeny: true,
      entries: [
        {
          policy: { kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'xwing-egress' },
          path: 'spec.egress[0]',
          action: 'allow',
          peers: [65793],
          cidrs: [],
          ports: ['80/TCP'],
        },
        {
          policy: { kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'xwing-egress' },
          path: 'spec.egressDeny[0]',
          action: 'deny',
          peers: [],
          cidrs: ['127.0.0.0/8'],
          ports: ['0/ANY'],
        },
      ],
    });
  });

  it('endpoint get fails with one line: several agents, unknown ID, bad ID, clashing flags', async () => {
    const several = await run('endpoint', 'get', '102', '--state-dir', mesh);
    assert.equal(several.code, 2);
    assert.equal(
      several.stderr,
      'error: endpoint IDs are per node and the running mesh has 3 agents: give --node CLUSTER/NODE (cluster1/cluster1-node1, cluster1/cluster1-node2, cluster2/cluster2-node1) or -H URL\n',
    );
    assert.equal(several.stdout, '');
    const missing = await run(
      'endpoint',
      'get',
      '999',
      '--state-dir',
      mesh,
      '--node',
      'cluster1/cluster1-node2',
    );
    assert.equal(missing.code, 1);
    assert.equal(
      missing.stderr,
      'clustermesh: endpoint 999 not found on cluster1/cluster1-node2 (endpoints: 201)\n',
    );
    const bad = await run('endpoint', 'get', 'x1', '-H', api1.url);
    assert.equal(bad.code, 2);
    assert.equal(bad.stderr, 'error: endpoint ID "x1": expected a non-negative integer\n');
    const both = await run('-H', api1.url, 'endpoint', 'get', '1', '--node', 'cluster1-node1');
    assert.equal(both.code, 2);
    assert.equal(both.stderr, 'error: give either -H or --node, not both\n');
    const clash = await run(
      'endpoint',
      'list',
      '--node',
      'cluster1-node1',
      '--cluster',
      'cluster1',
    );
    assert.equal(clash.code, 2);
    assert.equal(clash.stderr, 'error: give either --node or --cluster, not both\n');
    const none = await run('endpoint', 'list', '--state-dir', join(dir, 'nothing'));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^clustermesh: no running mesh: .*mesh\.json not found.*\n$/);
    const noAgent = await run('endpoint', 'get', '1', '--state-dir', join(dir, 'nothing'));
    assert.equal(noAgent.code, 1);
    assert.match(noAgent.stderr, /^clustermesh: no agent address: no local mesh runs here/);
  });
});
