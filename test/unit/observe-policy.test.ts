/**
 * `clustermesh observe` and policy: Hubble's drop texts and policy names in the text
 * lines, `--verdict` and `--type` filters (flows recorded before `type` existed
 * included), `--cluster` with -H, against a real agent API (127.204.202.x).
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentApi } from '../../src/agent/api.js';
import { newAgentViews } from '../../src/agent/views.js';
import { formatFlow } from '../../src/cli/observe.js';
import { NodeDatapath } from '../../src/datapath/datapath.js';
import {
  FlowLog,
  type Flow,
  type FlowEndpoint,
  type FlowRecord,
} from '../../src/datapath/flows.js';
import type { RunningHttpServer } from '../../src/lib/http-server.js';
import { IPCache } from '../../src/ipcache/ipcache.js';
import { silentLogger } from '../../src/lib/logger.js';
import type { PolicyDecision } from '../../src/policy/enforcer.js';
import { ServiceTable } from '../../src/service/table.js';
import { runCliCaptured, type CapturedRun } from '../support/cli.js';

function pod(
  name: string,
  ip: string,
  port: number,
  cluster = 'cluster1',
  id = 65792,
): FlowEndpoint {
  return { ip, port, cluster, namespace: 'default', pod: name, identity: id };
}

const XWING = pod('x-wing', '127.204.1.5', 41000);
const COREDNS: FlowEndpoint = {
  ip: '127.204.128.10',
  port: 53,
  cluster: 'cluster1',
  namespace: 'kube-system',
  pod: 'coredns',
  identity: 65800,
};
const CNP = (name: string): { kind: string; namespace: string; name: string } => ({
  kind: 'CiliumNetworkPolicy',
  namespace: 'default',
  name,
});

/** In recording order; the agent timestamps them. */
const FLOWS: readonly FlowRecord[] = [
  // Allowed by policy at the source.
  {
    node: 'cluster1-node1',
    verdict: 'FORWARDED',
    protocol: 'UDP',
    direction: 'egress',
    type: 'policy-verdict',
    source: XWING,
    destination: COREDNS,
    egress_allowed_by: [CNP('allow-dns')],
  },
  // No rule allows (default deny) at the destination.
  {
    node: 'cluster1-node1',
    verdict: 'DROPPED',
    dropReason: 'POLICY_DENIED',
    protocol: 'TCP',
    direction: 'ingress',
    type: 'policy-verdict',
    source: pod('tie-fighter', '127.205.1.9', 42000, 'cluster2', 131329),
    destination: pod('rebel-base-0', '127.204.1.6', 80, 'cluster1', 65793),
  },
  // A deny rule matched at the source.
  {
    node: 'cluster1-node1',
    verdict: 'DROPPED',
    dropReason: 'POLICY_DENY',
    protocol: 'TCP',
    direction: 'egress',
    type: 'policy-verdict',
    source: XWING,
    destination: { ip: '127.206.0.1', port: 443, identity: 2, labels: ['reserved:world'] },
    egress_denied_by: [
      { kind: 'CiliumClusterwideNetworkPolicy', namespace: '', name: 'no-world' },
      CNP('x-wing-lockdown'),
    ],
  },
  // Allowed at the destination by two policies, through a service of cluster2.
  {
    node: 'cluster1-node1',
    verdict: 'FORWARDED',
    protocol: 'TCP',
    direction: 'ingress',
    type: 'policy-verdict',
    source: pod('x-wing', '127.205.1.5', 43000, 'cluster2', 131328),
    destination: pod('rebel-base-0', '127.204.1.6', 80, 'cluster1', 65793),
    ingress_allowed_by: [CNP('allow-xwing'), CNP('allow-cluster2')],
  },
  // No policy applies: a trace, and a drop that is not policy's.
  {
    node: 'cluster1-node1',
    verdict: 'FORWARDED',
    protocol: 'TCP',
    direction: 'egress',
    type: 'trace',
    source: XWING,
    destination: pod('rebel-base-1', '127.204.1.7', 80, 'cluster1', 65793),
  },
  {
    node: 'cluster1-node1',
    verdict: 'DROPPED',
    dropReason: 'no backends',
    protocol: 'TCP',
    direction: 'egress',
    type: 'drop',
    source: XWING,
    destination: { ip: '127.204.128.1', port: 80 },
    service: { namespace: 'default', name: 'rebel-base', frontend: '127.204.128.1:80/TCP' },
  },
  // Recorded before flows had a type: read as trace and drop.
  {
    node: 'cluster1-node1',
    verdict: 'FORWARDED',
    protocol: 'TCP',
    direction: 'egress',
    source: XWING,
    destination: pod('rebel-base-2', '127.204.1.8', 80, 'cluster1', 65793),
  },
  {
    node: 'cluster1-node1',
    verdict: 'DROPPED',
    dropReason: 'ECONNREFUSED',
    protocol: 'TCP',
    direction: 'egress',
    source: XWING,
    destination: pod('rebel-base-3', '127.204.1.9', 80, 'cluster1', 65793),
  },
];

/** The text lines of FLOWS, without their local-time stamps. */
const LINES = [
  '[cluster1-node1] default/x-wing(cluster1, 65792) 127.204.1.5:41000 -> kube-system/coredns(cluster1, 65800) 127.204.128.10:53 policy-verdict EGRESS ALLOWED BY allow-dns (CiliumNetworkPolicy) FORWARDED',
  '[cluster1-node1] default/tie-fighter(cluster2, 131329) 127.205.1.9:42000 -> default/rebel-base-0(cluster1, 65793) 127.204.1.6:80 to-endpoint policy-verdict INGRESS DENIED DROPPED (Policy denied)',
  '[cluster1-node1] default/x-wing(cluster1, 65792) 127.204.1.5:41000 -> world(2) 127.206.0.1:443 policy-verdict EGRESS DENIED BY no-world (CiliumClusterwideNetworkPolicy), x-wing-lockdown (CiliumNetworkPolicy) DROPPED (Policy denied by denylist)',
  '[cluster1-node1] default/x-wing(cluster2, 131328) 127.205.1.5:43000 -> default/rebel-base-0(cluster1, 65793) 127.204.1.6:80 to-endpoint policy-verdict INGRESS ALLOWED BY allow-xwing (CiliumNetworkPolicy), allow-cluster2 (CiliumNetworkPolicy) FORWARDED',
  '[cluster1-node1] default/x-wing(cluster1, 65792) 127.204.1.5:41000 -> default/rebel-base-1(cluster1, 65793) 127.204.1.7:80 FORWARDED',
  '[cluster1-node1] default/x-wing(cluster1, 65792) 127.204.1.5:41000 -> default/rebel-base (127.204.128.1:80) DROPPED (no backends)',
  '[cluster1-node1] default/x-wing(cluster1, 65792) 127.204.1.5:41000 -> default/rebel-base-2(cluster1, 65793) 127.204.1.8:80 FORWARDED',
  '[cluster1-node1] default/x-wing(cluster1, 65792) 127.204.1.5:41000 -> default/rebel-base-3(cluster1, 65793) 127.204.1.9:80 DROPPED (ECONNREFUSED)',
];

const STAMP = /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\.\d{3} /;

function run(...argv: string[]): Promise<CapturedRun> {
  return runCliCaptured(argv);
}

/** stdout's lines without their stamps; every line must carry one. */
function unstamped(r: CapturedRun): string[] {
  assert.equal(r.stderr, '');
  assert.equal(r.code, 0);
  return r.stdout
    .trimEnd()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => {
      assert.match(l, STAMP);
      return l.replace(STAMP, '');
    });
}

const pick = (...i: number[]): string[] => i.map((n) => LINES[n] ?? '');

void describe('clustermesh observe: policy verdicts and filters', () => {
  const log = new FlowLog();
  let api: RunningHttpServer;
  let dir: string;
  let stateDir: string;

  before(async () => {
    api = await startAgentApi('127.204.202.1:0', {
      views: newAgentViews({ clusterName: 'cluster1', log: silentLogger }),
      clustermeshStatus: () => ({}),
      agentStatus: () => ({}),
      metrics: () => Promise.resolve({ contentType: 'text/plain', body: '' }),
      healthy: () => true,
      flows: log,
    });
    for (const f of FLOWS) log.record(f);
    dir = await mkdtemp(join(tmpdir(), 'observe-policy-'));
    stateDir = join(dir, 'state');
    await mkdir(stateDir, { recursive: true });
    await writeFile(
      join(stateDir, 'mesh.json'),
      JSON.stringify({
        version: 1,
        pid: process.pid,
        startedAt: new Date().toISOString(),
        kvstore: 'memory',
        kvstoremesh: false,
        control: 'http://127.204.202.9:1',
        clusters: [
          {
            name: 'cluster1',
            id: 1,
            kvstore: 'memory://cluster1',
            dns: '127.204.128.10:53',
            podCIDR: '127.204.0.0/17',
            serviceCIDR: '127.204.128.0/17',
            agents: [
              {
                node: 'cluster1-node1',
                ip: '127.204.0.1',
                podCIDR: '127.204.1.0/24',
                api: api.url,
              },
            ],
          },
        ],
      }),
    );
  });

  after(async () => {
    await api.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('prints Hubble drop texts and the policies that decided', async () => {
    assert.deepEqual(unstamped(await run('-H', api.url, 'observe')), LINES);
  });

  it('--verdict keeps the flows with the given verdicts', async () => {
    assert.deepEqual(
      unstamped(await run('-H', api.url, 'observe', '--verdict', 'DROPPED')),
      pick(1, 2, 5, 7),
    );
    assert.deepEqual(
      unstamped(await run('-H', api.url, 'observe', '--verdict', 'forwarded')),
      pick(0, 3, 4, 6),
    );
    assert.deepEqual(
      unstamped(await run('-H', api.url, 'observe', '--verdict', 'FORWARDED,DROPPED')),
      LINES,
    );
    assert.deepEqual(
      unstamped(
        await run('-H', api.url, 'observe', '--verdict', 'FORWARDED', '--verdict', 'DROPPED'),
      ),
      LINES,
    );
  });

  it('--type matches the event type, old flows read as trace or drop', async () => {
    assert.deepEqual(
      unstamped(await run('-H', api.url, 'observe', '--type', 'policy-verdict')),
      pick(0, 1, 2, 3),
    );
    assert.deepEqual(unstamped(await run('-H', api.url, 'observe', '--type', 'trace')), pick(4, 6));
    assert.deepEqual(unstamped(await run('-H', api.url, 'observe', '--type', 'drop')), pick(5, 7));
    assert.deepEqual(
      unstamped(await run('-H', api.url, 'observe', '--type', 'drop,trace', '--last', '3')),
      pick(5, 6, 7),
    );
    assert.deepEqual(
      unstamped(
        await run('-H', api.url, 'observe', '--type', 'policy-verdict', '--verdict', 'DROPPED'),
      ),
      pick(1, 2),
    );
  });

  it('filters the agents of mesh.json the same way, -o json included', async () => {
    const r = await run(
      '-o',
      'json',
      'observe',
      '--state-dir',
      stateDir,
      '--cluster',
      'cluster1',
      '--type',
      'policy-verdict',
      '--verdict',
      'DROPPED',
    );
    assert.equal(r.code, 0);
    const flows = JSON.parse(r.stdout) as Flow[];
    assert.deepEqual(
      flows.map((f) => [f.type, f.dropReason, f.egress_denied_by?.map((p) => p.name)]),
      [
        ['policy-verdict', 'POLICY_DENIED', undefined],
        ['policy-verdict', 'POLICY_DENY', ['no-world', 'x-wing-lockdown']],
      ],
    );
  });

  it('--cluster with -H keeps the flows involving that cluster', async () => {
    assert.deepEqual(
      unstamped(await run('-H', api.url, 'observe', '--cluster', 'cluster2')),
      pick(1, 3),
    );
    assert.deepEqual(
      unstamped(
        await run('-H', api.url, 'observe', '--cluster', 'cluster2', '--verdict', 'DROPPED'),
      ),
      pick(1),
    );
    assert.equal((await run('-H', api.url, 'observe', '--cluster', 'cluster9')).stdout, '');
  });

  it('rejects unknown verdicts and types with one usage line naming the valid ones', async () => {
    const v = await run('-H', api.url, 'observe', '--verdict', 'FORWARDED,AUDIT');
    assert.equal(v.code, 2);
    assert.equal(v.stdout, '');
    assert.equal(
      v.stderr,
      "error: option '--verdict <verdict>' argument 'FORWARDED,AUDIT' is invalid. Expected FORWARDED, DROPPED (or a comma list).\n",
    );
    const t = await run('-H', api.url, 'observe', '--type', 'l7');
    assert.equal(t.code, 2);
    assert.equal(
      t.stderr,
      "error: option '--type <type>' argument 'l7' is invalid. Expected policy-verdict, drop, trace (or a comma list).\n",
    );
  });
});

void describe('formatFlow on flows the datapath records', () => {
  it('prints the policy verdicts the enforcer hands the datapath', () => {
    const dp = new NodeDatapath({
      cluster: 'cluster1',
      node: { name: 'cluster1-node1', ip: '127.204.0.1' },
      services: new ServiceTable('cluster1'),
      ipcache: new IPCache(),
      log: silentLogger,
      flowCapacity: 10,
    });
    const decision = (d: Partial<PolicyDecision>): PolicyDecision => ({
      direction: 'egress',
      enforced: true,
      allowed: true,
      reason: null,
      allowedBy: [],
      deniedBy: [],
      ...d,
    });
    const src = { ip: '127.204.0.1', port: 40000 };
    const dst = { ip: '127.206.0.1', port: 53 };
    try {
      const text = (f: Flow): string => formatFlow(f).replace(STAMP, '');
      const allowed = dp.recordEgress(
        src,
        dst,
        'UDP',
        decision({
          allowedBy: [{ kind: 'CiliumNetworkPolicy', namespace: 'kube-system', name: 'allow-dns' }],
        }),
      );
      assert.equal(allowed.type, 'policy-verdict');
      assert.equal(
        text(allowed),
        '[cluster1-node1] host(cluster1, 1) 127.204.0.1:40000 -> world(2) 127.206.0.1:53 policy-verdict EGRESS ALLOWED BY allow-dns (CiliumNetworkPolicy) FORWARDED',
      );
      const denied = dp.recordEgress(
        src,
        dst,
        'TCP',
        decision({ allowed: false, reason: 'POLICY_DENIED' }),
      );
      assert.match(text(denied), / policy-verdict EGRESS DENIED DROPPED \(Policy denied\)$/);
      const denylisted = dp.recordEgress(
        src,
        dst,
        'TCP',
        decision({
          allowed: false,
          reason: 'POLICY_DENY',
          deniedBy: [{ kind: 'CiliumClusterwideNetworkPolicy', namespace: '', name: 'no-world' }],
        }),
      );
      assert.match(
        text(denylisted),
        / policy-verdict EGRESS DENIED BY no-world \(CiliumClusterwideNetworkPolicy\) DROPPED \(Policy denied by denylist\)$/,
      );
      const unenforced = dp.recordEgress(src, dst, 'TCP', decision({ enforced: false }));
      assert.equal(unenforced.type, 'trace');
      assert.match(text(unenforced), / 127\.206\.0\.1:53 FORWARDED$/);
    } finally {
      dp.close();
    }
  });
});
