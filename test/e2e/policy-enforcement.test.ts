/**
 * Network policy as the datapath of `clustermesh up --example rebel-base` enforces it
 * (2 clusters × 2 nodes, etcd kvstores), through real sockets. Each scenario applies
 * policies, sends requests as pods with `clustermesh exec … -- curl` (a drop is curl's
 * exit 28 after -m), checks which cluster answered, reads the verdicts back with
 * `clustermesh observe -o json`, and deletes what it applied, waiting until every agent
 * has unloaded it so the next scenario starts from no policy at all.
 *
 * The CLI runs in-process (runCli: the commands of bin/clustermesh, the same sockets):
 * one Node process per request would spend most of the time budget starting up. One
 * request goes through bin/clustermesh, for the exit code and line a shell sees. `up`
 * binds fixed addresses, so this file holds the up lock while its mesh runs.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Flow, FlowPolicy } from '../../src/datapath/flows.js';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { runCliCaptured, type CapturedRun } from '../support/cli.js';
import { eventually } from '../support/eventually.js';
import { ALLOW_CROSS_CLUSTER, ALLOW_DNS } from '../support/policies.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

const CNP = 'CiliumNetworkPolicy';
const CCNP = 'CiliumClusterwideNetworkPolicy';
const KNP = 'NetworkPolicy';

/** What the echo image answers. */
interface Reply {
  readonly Cluster: string;
  readonly Node: string;
  readonly Namespace: string;
  readonly Pod: string;
  readonly PodIP: string;
  readonly Client: string;
}

interface Pod {
  readonly cluster: string;
  readonly namespace: string;
  readonly name: string;
  readonly app: string;
  readonly ip: string;
  readonly node: string;
}

interface PodJson {
  readonly metadata: {
    readonly name: string;
    readonly namespace?: string;
    readonly labels?: Record<string, string>;
  };
  readonly spec?: { readonly nodeName?: string };
  readonly status?: { readonly phase?: string; readonly podIP?: string };
}

interface Curl extends CapturedRun {
  readonly reply?: Reply | undefined;
}

/** An entry of a flow's *_allowed_by / *_denied_by: a clusterwide policy has no namespace. */
const ref = (kind: string, name: string, namespace = 'default'): FlowPolicy => ({
  kind,
  namespace: kind === CCNP ? '' : namespace,
  name,
});

/** Where a pod is reached: no DNS, no load balancing, one known backend. */
const at = (p: Pod): string => `http://${p.ip}`;

describe('policy enforcement (clustermesh up, real sockets)', { timeout: 240_000 }, () => {
  let dir = '';
  let stateDir: string;
  let mesh: MeshState;
  let child: ChildProcess | undefined;
  let log = '';
  /** Manifests applied by the running scenario, deleted after it. */
  let applied: { cluster: string; file: string }[] = [];
  let seq = 0;

  const cm = (argv: readonly string[]): Promise<CapturedRun> => runCliCaptured(argv);

  const apply = async (cluster: string, yaml: string): Promise<void> => {
    const file = join(dir, `m${++seq}-${cluster}.yaml`);
    await writeFile(file, yaml);
    applied.push({ cluster, file });
    const r = await cm(['apply', '--state-dir', stateDir, '--cluster', cluster, '-f', file]);
    assert.equal(r.code, 0, r.stderr);
  };

  const agentsOf = (cluster: string): MeshState['clusters'][number]['agents'] => {
    const c = mesh.clusters.find((x) => x.name === cluster);
    assert.ok(c !== undefined, `cluster ${cluster} in mesh.json`);
    return c.agents;
  };

  const agentJson = async <T>(api: string, path: string): Promise<T> => {
    const res = await fetch(new URL(path, api), { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, `${api}${path}`);
    return (await res.json()) as T;
  };

  /** Waits until every agent of `cluster` has loaded exactly these policies (kind/ns/name). */
  const loaded = async (cluster: string, expected: readonly string[]): Promise<void> => {
    const want = [...expected].sort();
    await eventually(
      async () => {
        for (const a of agentsOf(cluster)) {
          const p = await agentJson<{ rejected: number; policies: FlowPolicy[] }>(
            a.api,
            '/v1/policy',
          );
          const names = p.policies.map((x) => `${x.kind}/${x.namespace}/${x.name}`).sort();
          assert.deepEqual(names, want, `policies loaded by ${a.node}`);
          assert.equal(p.rejected, 0, `policies rejected by ${a.node}`);
        }
      },
      { timeoutMs: 15_000, message: `${cluster} agents loading ${want.join(', ') || 'none'}` },
    );
  };

  const pods = async (cluster: string): Promise<Pod[]> => {
    const r = await cm([
      '-o',
      'json',
      'get',
      'pods',
      '-A',
      '--state-dir',
      stateDir,
      '--cluster',
      cluster,
    ]);
    assert.equal(r.code, 0, r.stderr);
    const list = JSON.parse(r.stdout) as { items: PodJson[] };
    return list.items
      .filter((p) => p.status?.phase === 'Running' && (p.status.podIP ?? '') !== '')
      .map((p) => ({
        cluster,
        namespace: p.metadata.namespace ?? 'default',
        name: p.metadata.name,
        app: p.metadata.labels?.name ?? '',
        ip: p.status?.podIP ?? '',
        node: p.spec?.nodeName ?? '',
      }));
  };

  const running = async (cluster: string, app: string, count: number, ns = 'default') =>
    eventually(
      async () => {
        const found = (await pods(cluster)).filter((p) => p.app === app && p.namespace === ns);
        assert.equal(found.length, count, `running ${ns}/${app} pods in ${cluster}`);
        return found.sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
      },
      { timeoutMs: 30_000 },
    );

  /** The only pod of a single-replica Deployment. */
  const single = async (cluster: string, app: string, ns = 'default'): Promise<Pod> => {
    const [p] = await running(cluster, app, 1, ns);
    assert.ok(p !== undefined, 'p !== undefined');
    return p;
  };

  const curl = async (
    cluster: string,
    app: string,
    url: string,
    opts: { ns?: string; maxTime?: number } = {},
  ): Promise<Curl> => {
    const r = await cm([
      'exec',
      '--state-dir',
      stateDir,
      '-n',
      opts.ns ?? 'default',
      `${cluster}/${app}`,
      '--',
      'curl',
      '-sS',
      '-m',
      String(opts.maxTime ?? 1),
      url,
    ]);
    const reply =
      r.code === 0 && r.stdout.startsWith('{"') ? (JSON.parse(r.stdout) as Reply) : undefined;
    return { ...r, reply };
  };

  const assertDropped = (r: Curl, what: string): void => {
    assert.equal(r.code, 28, `${what}: exit ${r.code} ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /^curl: \(28\) (Connection|Operation) timed out after \d+ milliseconds/);
    assert.equal(r.stdout, '', what);
  };

  const assertAnswered = (r: Curl, by: Pod, from: Pod): void => {
    assert.equal(r.code, 0, `${from.name} → ${by.name}: exit ${r.code} ${r.stderr}`);
    assert.ok(r.reply !== undefined, r.stdout);
    assert.deepEqual(
      [r.reply.Cluster, r.reply.Pod, r.reply.Client],
      [by.cluster, by.name, from.ip],
      'answered by that pod, seeing the pod IP of the client',
    );
  };

  /**
   * Requests a load-balanced Service in parallel batches until some were answered and some
   * timed out: Maglev spreads them over every cluster's backends, and a drop costs its -m
   * second, so a few batches cover both kinds of backend.
   */
  const answeredAndDropped = async (cluster: string, app: string, url: string) => {
    const results: Curl[] = [];
    for (let batch = 0; batch < 6; batch++) {
      results.push(
        ...(await Promise.all(Array.from({ length: 6 }, () => curl(cluster, app, url)))),
      );
      if (results.some((r) => r.code === 0) && results.some((r) => r.code !== 0)) break;
    }
    const answered = results.filter((r) => r.code === 0);
    const dropped = results.filter((r) => r.code !== 0);
    assert.ok(answered.length > 0 && dropped.length > 0, 'both answers and drops');
    return { results, answered, dropped };
  };

  /** Every agent's flows recorded at or after `since` (epoch ms). */
  const flowsSince = async (since: number): Promise<Flow[]> => {
    const r = await cm(['-o', 'json', 'observe', '--state-dir', stateDir, '--last', '10000']);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as Flow[]).filter((f) => Date.parse(f.time) >= since);
  };

  const describeFlows = (flows: readonly Flow[]): string =>
    flows
      .map(
        (f) =>
          `${f.node} ${f.direction} ${f.source.pod ?? f.source.ip} -> ${f.destination.pod ?? f.destination.ip}:${f.destination.port} ${f.verdict} ${f.dropReason ?? ''}`,
      )
      .join('\n');

  /**
   * Deletes every manifest the scenario applied, then waits until no agent holds a
   * policy and only the example's pods run, so one scenario's leftovers cannot decide
   * the next one's traffic.
   */
  const cleanup = async (): Promise<void> => {
    const files = applied.reverse();
    applied = [];
    for (const { cluster, file } of files) {
      const r = await cm([
        'delete',
        '--state-dir',
        stateDir,
        '--cluster',
        cluster,
        '--ignore-not-found',
        '-f',
        file,
      ]);
      assert.equal(r.code, 0, r.stderr);
    }
    for (const c of mesh.clusters) {
      await loaded(c.name, []);
      await eventually(
        async () => {
          // kube-system's agent and clustermesh-apiserver pods belong to every cluster.
          const left = (await pods(c.name))
            .filter((p) => p.namespace !== 'kube-system')
            .map((p) => `${p.namespace}/${p.app}`)
            .sort();
          assert.deepEqual(left, ['default/rebel-base', 'default/rebel-base', 'default/x-wing']);
        },
        { timeoutMs: 20_000 },
      );
    }
  };

  /** Runs a scenario and cleans up after it, whatever its outcome. */
  const scenario =
    (body: (t: TestContext) => Promise<void>) =>
    async (t: TestContext): Promise<void> => {
      try {
        await body(t);
      } finally {
        await cleanup();
      }
    };

  before(async () => {
    await acquireUpLock();
    dir = await mkdtemp(join(tmpdir(), 'cm-policy-enforcement-'));
    stateDir = join(dir, '.clustermesh');
    const up = spawn(
      BIN,
      [
        'up',
        '--clusters',
        '2',
        '--nodes',
        '2',
        '--kvstore',
        'etcd',
        '--example',
        'rebel-base',
        '--state-dir',
        stateDir,
      ],
      { cwd: dir, env: { ...process.env, LOG_LEVEL: 'warn' }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    up.stdout.on('data', (d: Buffer) => (log += d.toString()));
    up.stderr.on('data', (d: Buffer) => (log += d.toString()));
    child = up;
    mesh = await eventually(() => readMeshState(stateDir), 60_000).catch((err: unknown) => {
      throw new Error(`up did not become ready: ${String(err)}\n${log}`);
    });
    // Identity-based verdicts need every agent to map every example pod's IP.
    const ips: string[] = [];
    for (const c of mesh.clusters) {
      ips.push(...(await running(c.name, 'rebel-base', 2)).map((p) => p.ip));
      ips.push((await single(c.name, 'x-wing')).ip);
    }
    await eventually(
      async () => {
        for (const a of mesh.clusters.flatMap((c) => c.agents)) {
          const known = new Set(
            (await agentJson<{ cidr: string }[]>(a.api, '/v1/ipcache')).map((e) =>
              e.cidr.replace(/\/32$/, ''),
            ),
          );
          for (const ip of ips) assert.ok(known.has(ip), `${a.node} maps ${ip}`);
        }
      },
      { timeoutMs: 30_000, message: 'every agent mapping every example pod' },
    );
  });

  after(async () => {
    const c = child;
    if (c !== undefined && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((resolve) => c.once('exit', resolve));
      c.kill('SIGINT');
      const t = setTimeout(() => c.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(t);
    }
    if (dir !== '') await rm(dir, { recursive: true, force: true });
    await releaseUpLock();
  });

  it(
    'cross-cluster allow plus DNS: x-wing of cluster1 is answered by cluster2 only',
    scenario(async (t) => {
      await apply('cluster1', ALLOW_CROSS_CLUSTER);
      await apply('cluster1', ALLOW_DNS);
      await loaded('cluster1', [`${CNP}/default/allow-cross-cluster`, `${CNP}/default/allow-dns`]);
      const xwing = await single('cluster1', 'x-wing');
      const since = Date.now();
      const { results, answered, dropped } = await answeredAndDropped(
        'cluster1',
        'x-wing',
        'rebel-base',
      );
      t.diagnostic(`${answered.length} answered, ${dropped.length} dropped`);
      for (const r of answered) assert.equal(r.reply?.Cluster, 'cluster2', r.stdout);
      for (const r of dropped) assertDropped(r, 'x-wing → rebel-base of cluster1');

      const flows = await flowsSince(since);
      const svc = flows.filter(
        (f) =>
          f.direction === 'egress' &&
          f.source.pod === xwing.name &&
          f.service?.name === 'rebel-base' &&
          f.service.namespace === 'default',
      );
      const fwd = svc.filter((f) => f.verdict === 'FORWARDED');
      const drop = svc.filter((f) => f.verdict === 'DROPPED');
      assert.deepEqual(
        [fwd.length, drop.length],
        [answered.length, dropped.length],
        describeFlows(svc),
      );
      for (const f of fwd) {
        assert.equal(f.backend?.cluster, 'cluster2');
        assert.equal(f.type, 'policy-verdict');
        assert.deepEqual(f.egress_allowed_by, [ref(CNP, 'allow-cross-cluster')]);
      }
      for (const f of drop) {
        assert.equal(f.node, xwing.node, 'dropped at the source node');
        assert.equal(f.backend?.cluster, 'cluster1');
        assert.equal(f.backend.pod?.startsWith('rebel-base-'), true);
        assert.equal(f.dropReason, 'POLICY_DENIED');
        assert.equal(f.type, 'policy-verdict');
        // Default deny: no policy allowed it and none denied it.
        assert.equal(f.egress_allowed_by, undefined);
        assert.equal(f.egress_denied_by, undefined);
      }
      const dns = flows.filter(
        (f) => f.source.pod === xwing.name && f.destination.pod === 'coredns',
      );
      assert.ok(dns.length >= results.length, describeFlows(dns));
      for (const f of dns) {
        assert.deepEqual(
          [f.verdict, f.protocol, f.destination.namespace, f.destination.port],
          ['FORWARDED', 'UDP', 'kube-system', 53],
        );
        assert.deepEqual(f.egress_allowed_by, [ref(CNP, 'allow-dns')]);
      }
    }),
  );

  it(
    "ingress in cluster2 admits only cluster1's x-wing: cluster2's own x-wing is dropped there",
    scenario(async () => {
      const name = 'rebel-base-from-cluster1-x-wing';
      await apply(
        'cluster2',
        `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      name: rebel-base
  ingress:
  - fromEndpoints:
    - matchLabels:
        name: x-wing
        io.cilium.k8s.policy.cluster: cluster1
`,
      );
      await loaded('cluster2', [`${CNP}/default/${name}`]);
      const xwing1 = await single('cluster1', 'x-wing');
      const xwing2 = await single('cluster2', 'x-wing');
      const rebels2 = await running('cluster2', 'rebel-base', 2);
      const since = Date.now();
      const [fromRemote, fromLocal] = await Promise.all([
        Promise.all(rebels2.map((p) => curl('cluster1', 'x-wing', at(p)))),
        Promise.all(rebels2.map((p) => curl('cluster2', 'x-wing', at(p)))),
      ]);
      rebels2.forEach((p, i) => {
        const r = fromRemote[i];
        const d = fromLocal[i];
        assert.ok(r !== undefined && d !== undefined, 'r !== undefined && d !== undefined');
        assertAnswered(r, p, xwing1);
        assertDropped(d, `cluster2 x-wing → ${p.name}`);
      });

      const flows = await flowsSince(since);
      for (const p of rebels2) {
        const ingress = flows.filter(
          (f) => f.direction === 'ingress' && f.destination.pod === p.name,
        );
        const allowed = ingress.filter((f) => f.source.pod === xwing1.name);
        const denied = ingress.filter((f) => f.source.pod === xwing2.name);
        assert.equal(allowed.length, 1, describeFlows(ingress));
        assert.equal(denied.length, 1, describeFlows(ingress));
        const [a] = allowed;
        const [d] = denied;
        assert.ok(a !== undefined && d !== undefined, 'a !== undefined && d !== undefined');
        assert.deepEqual(
          [a.node, a.verdict, a.type, a.source.cluster],
          [p.node, 'FORWARDED', 'policy-verdict', 'cluster1'],
        );
        assert.deepEqual(a.ingress_allowed_by, [ref(CNP, name)]);
        // Decided at the destination's node in cluster2, by default deny.
        assert.deepEqual(
          [d.node, d.verdict, d.dropReason, d.type, d.source.cluster],
          [p.node, 'DROPPED', 'POLICY_DENIED', 'policy-verdict', 'cluster2'],
        );
        assert.ok(p.node.startsWith('cluster2-'), p.node);
        assert.equal(d.ingress_allowed_by, undefined);
        assert.equal(d.ingress_denied_by, undefined);
      }
      // Nothing selects x-wing of cluster2 for egress: its node let the packets leave.
      const atSource = flows.filter(
        (f) => f.source.pod === xwing2.name && f.direction === 'egress' && f.verdict === 'DROPPED',
      );
      assert.deepEqual(atSource, []);
    }),
  );

  it(
    'a selector naming no cluster admits only the local cluster (policy-default-local-cluster)',
    scenario(async () => {
      const name = 'rebel-base-from-x-wing';
      await apply(
        'cluster2',
        `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      name: rebel-base
  ingress:
  - fromEndpoints:
    - matchLabels:
        name: x-wing
`,
      );
      await loaded('cluster2', [`${CNP}/default/${name}`]);
      const xwing1 = await single('cluster1', 'x-wing');
      const xwing2 = await single('cluster2', 'x-wing');
      const [rb] = await running('cluster2', 'rebel-base', 2);
      assert.ok(rb !== undefined, 'rb !== undefined');
      const since = Date.now();
      const [local, remote] = await Promise.all([
        curl('cluster2', 'x-wing', at(rb)),
        curl('cluster1', 'x-wing', at(rb)),
      ]);
      assertAnswered(local, rb, xwing2);
      assertDropped(remote, "cluster1's x-wing");
      const ingress = (await flowsSince(since)).filter(
        (f) => f.direction === 'ingress' && f.destination.pod === rb.name,
      );
      assert.deepEqual(
        ingress
          .sort((a, b) => (a.source.cluster ?? '').localeCompare(b.source.cluster ?? ''))
          .map((f) => [f.source.ip, f.node, f.verdict, f.dropReason, f.ingress_allowed_by]),
        [
          [xwing1.ip, rb.node, 'DROPPED', 'POLICY_DENIED', undefined],
          [xwing2.ip, rb.node, 'FORWARDED', undefined, [ref(CNP, name)]],
        ],
        describeFlows(ingress),
      );
    }),
  );

  it(
    'a deny policy beats the allow: DROPPED (POLICY_DENY), egress_denied_by names it',
    scenario(async () => {
      const deny = 'x-wing-never-to-cluster2-rebel-base';
      await apply('cluster1', ALLOW_CROSS_CLUSTER);
      await loaded('cluster1', [`${CNP}/default/allow-cross-cluster`]);
      const xwing = await single('cluster1', 'x-wing');
      const [rb, rbOther] = await running('cluster2', 'rebel-base', 2);
      assert.ok(
        rb !== undefined && rbOther !== undefined,
        'rb !== undefined && rbOther !== undefined',
      );

      const before = Date.now();
      assertAnswered(await curl('cluster1', 'x-wing', at(rb)), rb, xwing);
      const allowedFlow = (await flowsSince(before)).filter(
        (f) => f.direction === 'egress' && f.destination.ip === rb.ip,
      );
      assert.equal(allowedFlow.length, 1, describeFlows(allowedFlow));
      assert.deepEqual(allowedFlow[0]?.egress_allowed_by, [ref(CNP, 'allow-cross-cluster')]);

      await apply(
        'cluster1',
        `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: ${deny}
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egressDeny:
  - toEndpoints:
    - matchLabels:
        name: rebel-base
        io.cilium.k8s.policy.cluster: cluster2
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
`,
      );
      await loaded('cluster1', [`${CNP}/default/allow-cross-cluster`, `${CCNP}//${deny}`]);
      const since = Date.now();
      // Once through the real binary: the exit code and the line a shell user sees.
      const shell = await run(
        BIN,
        [
          'exec',
          '--state-dir',
          stateDir,
          'cluster1/x-wing',
          '--',
          'curl',
          '-sS',
          '-m',
          '1',
          at(rb),
        ],
        { env: { ...process.env, LOG_LEVEL: 'silent' }, timeout: 30_000 },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (err: unknown) => {
          const e = err as { code?: number; stderr?: string };
          return { code: e.code, stderr: e.stderr ?? '' };
        },
      );
      assert.equal(shell.code, 28, shell.stderr);
      assert.match(shell.stderr, /^curl: \(28\) Connection timed out after \d+ milliseconds\n$/);
      assertDropped(await curl('cluster1', 'x-wing', at(rbOther)), 'denied');

      const flows = await flowsSince(since);
      const denied = flows.filter((f) => f.source.pod === xwing.name && f.direction === 'egress');
      assert.deepEqual(
        denied.map((f) => f.destination.ip).sort(),
        [rb.ip, rbOther.ip].sort(),
        describeFlows(denied),
      );
      for (const f of denied) {
        assert.deepEqual(
          [f.node, f.verdict, f.dropReason, f.type],
          [xwing.node, 'DROPPED', 'POLICY_DENY', 'policy-verdict'],
        );
        assert.deepEqual(f.egress_denied_by, [ref(CCNP, deny)]);
      }
      // Dropped at the source: nothing arrived at cluster2.
      const arrived = flows.filter((f) => f.direction === 'ingress' && f.source.pod === xwing.name);
      assert.deepEqual(arrived, []);
    }),
  );

  it(
    'NetworkPolicy namespaceSelector: only pods of namespaces labelled side=rebels get in',
    scenario(async () => {
      const deployment = (ns: string, app: string): string => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${app}
  namespace: ${ns}
spec:
  replicas: 1
  selector:
    matchLabels:
      name: ${app}
  template:
    metadata:
      labels:
        name: ${app}
    spec:
      containers:
      - name: ${app}
        image: clustermesh/idle
`;
      await apply(
        'cluster1',
        `apiVersion: v1
kind: Namespace
metadata:
  name: alliance
  labels:
    side: rebels
---
apiVersion: v1
kind: Namespace
metadata:
  name: empire
  labels:
    side: empire
---
${deployment('alliance', 'y-wing')}---
${deployment('empire', 'tie-fighter')}---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: rebels-only
  namespace: default
spec:
  podSelector:
    matchLabels:
      name: rebel-base
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          side: rebels
`,
      );
      await loaded('cluster1', [`${KNP}/default/rebels-only`]);
      const ywing = await single('cluster1', 'y-wing', 'alliance');
      const tie = await single('cluster1', 'tie-fighter', 'empire');
      const xwing = await single('cluster1', 'x-wing');
      const rebels = await running('cluster1', 'rebel-base', 2);
      // The new pods' identities must reach the rebel-base nodes before they can be told apart.
      await eventually(
        async () => {
          for (const a of agentsOf('cluster1')) {
            const cidrs = (await agentJson<{ cidr: string }[]>(a.api, '/v1/ipcache')).map(
              (e) => e.cidr,
            );
            for (const p of [ywing, tie]) assert.ok(cidrs.includes(`${p.ip}/32`), a.node);
          }
        },
        { timeoutMs: 15_000 },
      );
      const since = Date.now();
      const results = await Promise.all(
        rebels.flatMap((p) => [
          curl('cluster1', 'y-wing', at(p), { ns: 'alliance' }),
          curl('cluster1', 'tie-fighter', at(p), { ns: 'empire' }),
          curl('cluster1', 'x-wing', at(p)),
        ]),
      );
      rebels.forEach((p, i) => {
        const [fromRebels, fromEmpire, fromDefault] = results.slice(i * 3, i * 3 + 3);
        assert.ok(
          fromRebels !== undefined && fromEmpire !== undefined && fromDefault !== undefined,
          'three answers per rebel pod',
        );
        assertAnswered(fromRebels, p, ywing);
        assertDropped(fromEmpire, `empire → ${p.name}`);
        // default carries only kubernetes.io/metadata.name: not a rebel namespace.
        assertDropped(fromDefault, `default → ${p.name}`);
      });

      const ingress = (await flowsSince(since)).filter((f) => f.direction === 'ingress');
      for (const p of rebels) {
        const at_ = ingress.filter((f) => f.destination.pod === p.name);
        const by = (src: Pod): Flow[] => at_.filter((f) => f.source.ip === src.ip);
        const [allowed] = by(ywing);
        assert.equal(by(ywing).length, 1, describeFlows(at_));
        assert.ok(allowed !== undefined, 'allowed !== undefined');
        assert.deepEqual([allowed.node, allowed.verdict], [p.node, 'FORWARDED']);
        assert.deepEqual(allowed.ingress_allowed_by, [ref(KNP, 'rebels-only')]);
        assert.ok(
          allowed.source.labels?.includes('k8s:io.cilium.k8s.namespace.labels.side=rebels'),
          String(allowed.source.labels),
        );
        for (const src of [tie, xwing]) {
          const flows = by(src);
          assert.equal(flows.length, 1, describeFlows(at_));
          assert.deepEqual(
            flows.map((f) => [f.node, f.verdict, f.dropReason, f.source.namespace]),
            [[p.node, 'DROPPED', 'POLICY_DENIED', src.namespace]],
          );
        }
      }

      // Namespace labels are part of the pods' identity: relabelling the namespace moves
      // y-wing, already running, out of the allowed set.
      await apply(
        'cluster1',
        `apiVersion: v1
kind: Namespace
metadata:
  name: alliance
  labels:
    side: defected
`,
      );
      const [rb] = rebels;
      assert.ok(rb !== undefined, 'rb !== undefined');
      const relabelled = Date.now();
      await eventually(
        async () =>
          assertDropped(await curl('cluster1', 'y-wing', at(rb), { ns: 'alliance' }), 'y-wing'),
        { timeoutMs: 10_000, message: 'y-wing dropped once its namespace lost side=rebels' },
      );
      const after = (await flowsSince(relabelled)).filter(
        (f) => f.direction === 'ingress' && f.source.ip === ywing.ip && f.verdict === 'DROPPED',
      );
      assert.ok(after.length > 0, 'a drop of y-wing after the relabel');
      for (const f of after) {
        assert.ok(
          f.source.labels?.includes('k8s:io.cilium.k8s.namespace.labels.side=defected'),
          String(f.source.labels),
        );
      }
    }),
  );

  it(
    'CIDR and entity rules toward the host: toCIDRSet with except, toEntities host',
    scenario(async () => {
      const hits = new Map<string, string[]>();
      const servers: Server[] = [];
      const listenOn = async (ip: string): Promise<number> => {
        const s = createServer((req, res) => {
          hits.set(ip, [...(hits.get(ip) ?? []), req.socket.remoteAddress ?? '']);
          res.end(`outside ${ip}\n`);
        });
        servers.push(s);
        await new Promise<void>((resolve, reject) => {
          s.once('error', reject);
          s.listen(0, ip, resolve);
        });
        return (s.address() as AddressInfo).port;
      };
      try {
        // Outside every pod, service and node range of the mesh: the world identity.
        const inSet = await listenOn('127.77.0.1');
        const excepted = await listenOn('127.77.0.2');
        const name = 'x-wing-outside';
        await apply(
          'cluster1',
          `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egress:
  - toCIDRSet:
    - cidr: 127.77.0.0/24
      except:
      - 127.77.0.2/32
  - toEntities:
    - host
`,
        );
        await loaded('cluster1', [`${CNP}/default/${name}`]);
        const xwing = await single('cluster1', 'x-wing');
        const agents = agentsOf('cluster1');
        const own = agents.find((a) => a.node === xwing.node);
        const other = agents.find((a) => a.node !== xwing.node);
        assert.ok(
          own !== undefined && other !== undefined,
          'own !== undefined && other !== undefined',
        );
        const since = Date.now();
        const [r1, r2, rHost, rRemote] = await Promise.all([
          curl('cluster1', 'x-wing', `http://127.77.0.1:${inSet}/`),
          curl('cluster1', 'x-wing', `http://127.77.0.2:${excepted}/`),
          curl('cluster1', 'x-wing', `${own.api}/v1/status`),
          curl('cluster1', 'x-wing', `${other.api}/v1/status`),
        ]);
        assert.deepEqual([r1.code, r1.stdout], [0, 'outside 127.77.0.1\n'], r1.stderr);
        assertDropped(r2, 'the except address');
        assert.deepEqual([...hits.entries()], [['127.77.0.1', [xwing.ip]]]);
        assert.equal(rHost.code, 0, rHost.stderr);
        assert.equal((JSON.parse(rHost.stdout) as { node: string }).node, xwing.node);
        // Another node of the cluster is remote-node, which `host` does not cover.
        assertDropped(rRemote, 'the other node');

        const flows = (await flowsSince(since)).filter(
          (f) => f.source.pod === xwing.name && f.direction === 'egress',
        );
        const to = (ip: string): Flow => {
          const matching = flows.filter((f) => f.destination.ip === ip);
          assert.equal(matching.length, 1, describeFlows(flows));
          const [f] = matching;
          assert.ok(f !== undefined, 'f !== undefined');
          assert.equal(f.node, xwing.node);
          return f;
        };
        const world = to('127.77.0.1');
        assert.deepEqual(
          [world.verdict, world.destination.labels],
          ['FORWARDED', ['reserved:world']],
        );
        assert.deepEqual(world.egress_allowed_by, [ref(CNP, name)]);
        const except = to('127.77.0.2');
        assert.deepEqual(
          [except.verdict, except.dropReason, except.destination.labels],
          ['DROPPED', 'POLICY_DENIED', ['reserved:world']],
        );
        const host = to(own.ip);
        assert.deepEqual([host.verdict, host.destination.labels], ['FORWARDED', ['reserved:host']]);
        assert.deepEqual(host.egress_allowed_by, [ref(CNP, name)]);
        const remote = to(other.ip);
        assert.deepEqual(
          [remote.verdict, remote.dropReason, remote.destination.labels],
          ['DROPPED', 'POLICY_DENIED', ['reserved:remote-node']],
        );
      } finally {
        for (const s of servers) {
          s.closeAllConnections();
          await new Promise((resolve) => s.close(resolve));
        }
      }
    }),
  );

  it(
    'a policy change reaches new connections within 2 s; an established one is kept',
    scenario(async (t) => {
      const xwing = await single('cluster1', 'x-wing');
      const rebels = await running('cluster1', 'rebel-base', 2);
      // Across nodes when the scheduler allows: the verdict is the destination node's.
      const rb = rebels.find((p) => p.node !== xwing.node) ?? rebels[0];
      assert.ok(rb !== undefined, 'rb !== undefined');
      // The test's own socket from x-wing's IP: not subject to x-wing's egress (it is not
      // the pod's socket) but, like any, to ingress at rebel-base's node.
      const keepAlive = new Agent({ keepAlive: true, maxSockets: 1 });
      const get = (agent: Agent | false, timeoutMs: number, from = xwing.ip) =>
        new Promise<{ reply: Reply; localPort: number }>((resolve, reject) => {
          const req = request(
            { host: rb.ip, port: 80, path: '/', localAddress: from, agent, timeout: timeoutMs },
            (res) => {
              // Read now: a kept-alive socket is back in the pool (and unset) at 'end'.
              const localPort = res.socket.localPort ?? 0;
              let body = '';
              res.setEncoding('utf8');
              res.on('data', (c: string) => (body += c));
              res.on('end', () => {
                resolve({
                  reply: JSON.parse(body) as Reply,
                  localPort,
                });
              });
            },
          );
          req.on('timeout', () => req.destroy(new Error('timed out')));
          req.on('error', reject);
          req.end();
        });
      // Stopped however the scenario ends: a request loop left running keeps the test alive.
      const ticking = { on: true };
      let ticker: Promise<void> = Promise.resolve();
      try {
        const start = Date.now();
        const first = await get(keepAlive, 5000);
        assert.deepEqual([first.reply.Pod, first.reply.Client], [rb.name, xwing.ip]);
        // Requests on the kept connection all along, well inside the server's keep-alive.
        const along: { ok: boolean; port: number; error?: string }[] = [];
        ticker = (async () => {
          while (ticking.on) {
            await new Promise((r) => setTimeout(r, 250));
            const r = await get(keepAlive, 3000).then(
              (x) => ({ ok: x.reply.Pod === rb.name, port: x.localPort }),
              (err: unknown) => ({ ok: false, port: 0, error: String(err) }),
            );
            along.push(r);
          }
        })();

        const name = 'rebel-base-from-cluster2-only';
        const applying = Date.now();
        await apply(
          'cluster1',
          `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      name: rebel-base
  ingress:
  - fromEndpoints:
    - matchLabels:
        io.cilium.k8s.policy.cluster: cluster2
`,
        );
        const applied = Date.now();
        let enforcedMs: number | undefined;
        let attempts = 0;
        while (enforcedMs === undefined) {
          const started = Date.now();
          assert.ok(started - applied < 10_000, 'not enforced within 10 s');
          attempts++;
          const r = await curl('cluster1', 'x-wing', at(rb));
          if (r.code === 28) enforcedMs = started - applied;
          else assertAnswered(r, rb, xwing);
        }
        t.diagnostic(
          `enforced on new connections ${enforcedMs} ms after apply (${attempts} tries)`,
        );
        assert.ok(enforcedMs <= 2000, `enforced after ${enforcedMs} ms`);

        // A new connection from the same address is dropped too: the old one is not exempt
        // by address, only by being established. Node addresses: rebel-base's own node is
        // the host, always let in (allow-localhost); the other node of cluster1 is
        // remote-node, which the policy does not admit.
        const own = agentsOf('cluster1').find((a) => a.node === rb.node);
        const other = agentsOf('cluster1').find((a) => a.node !== rb.node);
        assert.ok(
          own !== undefined && other !== undefined,
          'own !== undefined && other !== undefined',
        );
        const [fromHost] = await Promise.all([
          get(false, 3000, own.ip),
          assert.rejects(get(false, 1000), /timed out/),
          assert.rejects(get(false, 1000, other.ip), /timed out/),
        ]);
        assert.deepEqual([fromHost.reply.Pod, fromHost.reply.Client], [rb.name, own.ip]);
        const after = await get(keepAlive, 3000);
        ticking.on = false;
        await ticker;
        // The same local port: the same TCP connection (a new one would have been dropped).
        assert.deepEqual([after.reply.Pod, after.localPort], [rb.name, first.localPort]);
        assert.ok(along.length >= 2, `${along.length} requests while the policy changed`);
        for (const r of along) assert.deepEqual(r, { ok: true, port: first.localPort });

        // Ingress decides per new connection: the kept one was admitted once, before.
        const flows = (await flowsSince(start)).filter(
          (f) => f.direction === 'ingress' && f.destination.pod === rb.name,
        );
        const kept = flows.filter((f) => f.source.port === first.localPort);
        assert.equal(kept.length, 1, describeFlows(kept));
        assert.ok(
          Date.parse(kept[0]?.time ?? '') < applying,
          `admitted before the policy: ${describeFlows(kept)}`,
        );
        const droppedAfter = flows.filter(
          (f) => f.verdict === 'DROPPED' && f.source.ip === xwing.ip,
        );
        assert.ok(droppedAfter.length >= 2, describeFlows(flows));
        for (const f of droppedAfter) {
          assert.deepEqual([f.node, f.dropReason], [rb.node, 'POLICY_DENIED']);
          assert.ok(Date.parse(f.time) >= applying, `dropped after the policy: ${f.time}`);
        }
        const fromNode = (ip: string): Flow[] => flows.filter((f) => f.source.ip === ip);
        assert.deepEqual(
          fromNode(own.ip).map((f) => [f.node, f.verdict, f.source.labels]),
          [[rb.node, 'FORWARDED', ['reserved:host']]],
        );
        assert.deepEqual(
          fromNode(other.ip).map((f) => [f.node, f.verdict, f.dropReason, f.source.labels]),
          [[rb.node, 'DROPPED', 'POLICY_DENIED', ['reserved:remote-node']]],
        );
      } finally {
        ticking.on = false;
        await ticker;
        keepAlive.destroy();
      }
    }),
  );

  it(
    'a remote identity arriving after the policy: new pods in cluster2 become reachable',
    scenario(async (t) => {
      const name = 'x-wing-to-outpost';
      await apply(
        'cluster1',
        `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egress:
  - toEndpoints:
    - matchLabels:
        name: outpost
        io.cilium.k8s.policy.cluster: cluster2
`,
      );
      await loaded('cluster1', [`${CNP}/default/${name}`]);
      const xwing = await single('cluster1', 'x-wing');
      const [rb2] = await running('cluster2', 'rebel-base', 2);
      assert.ok(rb2 !== undefined, 'rb2 !== undefined');
      // The policy is in force (x-wing is default-deny now) before the outpost exists.
      assertDropped(await curl('cluster1', 'x-wing', at(rb2)), 'x-wing → rebel-base');

      await apply(
        'cluster2',
        `apiVersion: apps/v1
kind: Deployment
metadata:
  name: outpost
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      name: outpost
  template:
    metadata:
      labels:
        name: outpost
    spec:
      containers:
      - name: outpost
        image: clustermesh/echo
`,
      );
      const outpost = await single('cluster2', 'outpost');
      const runningAt = Date.now();
      let answer: Curl | undefined;
      let attempts = 0;
      while (answer === undefined) {
        assert.ok(Date.now() - runningAt < 15_000, 'outpost not reachable within 15 s');
        attempts++;
        const r = await curl('cluster1', 'x-wing', at(outpost));
        if (r.code === 0) answer = r;
        else assertDropped(r, 'outpost before its identity arrived');
      }
      t.diagnostic(`reachable ${Date.now() - runningAt} ms after the pod ran (${attempts} tries)`);
      assertAnswered(answer, outpost, xwing);

      const flows = (await flowsSince(runningAt)).filter(
        (f) =>
          f.direction === 'egress' &&
          f.source.pod === xwing.name &&
          f.destination.ip === outpost.ip,
      );
      const fwd = flows.filter((f) => f.verdict === 'FORWARDED');
      assert.equal(fwd.length, 1, describeFlows(flows));
      const [f] = fwd;
      assert.ok(f !== undefined, 'f !== undefined');
      assert.deepEqual(
        [f.destination.cluster, f.destination.pod, f.type],
        [outpost.cluster, outpost.name, 'policy-verdict'],
      );
      assert.ok(
        f.destination.labels?.includes('k8s:name=outpost'),
        "f.destination.labels?.includes('k8s:name=outpost')",
      );
      assert.deepEqual(f.egress_allowed_by, [ref(CNP, name)]);
      // Any earlier try was dropped as an address no identity owned yet.
      for (const d of flows.filter((x) => x.verdict === 'DROPPED')) {
        assert.deepEqual(d.destination.labels, ['reserved:world'], describeFlows(flows));
      }
    }),
  );

  it(
    'DNS blocked by default-deny egress, then allowed by the DNS policy',
    scenario(async () => {
      const name = 'x-wing-to-rebel-base-only';
      await apply(
        'cluster1',
        `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: ${name}
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egress:
  - toEndpoints:
    - matchLabels:
        name: rebel-base
`,
      );
      await loaded('cluster1', [`${CNP}/default/${name}`]);
      const xwing = await single('cluster1', 'x-wing');
      const since = Date.now();
      const blocked = await curl('cluster1', 'x-wing', 'rebel-base');
      assert.equal(blocked.code, 6, blocked.stderr);
      assert.equal(blocked.stderr, 'curl: (6) Could not resolve host: rebel-base\n');
      const dnsDrops = (await flowsSince(since)).filter(
        (f) => f.source.pod === xwing.name && f.destination.pod === 'coredns',
      );
      assert.ok(dnsDrops.length >= 1, 'a flow toward the DNS endpoint');
      for (const f of dnsDrops) {
        assert.deepEqual(
          [
            f.node,
            f.direction,
            f.verdict,
            f.dropReason,
            f.protocol,
            f.destination.namespace,
            f.destination.port,
          ],
          [xwing.node, 'egress', 'DROPPED', 'POLICY_DENIED', 'UDP', 'kube-system', 53],
        );
        assert.ok(
          f.destination.labels?.includes('k8s:k8s-app=kube-dns'),
          "f.destination.labels?.includes('k8s:k8s-app=kube-dns')",
        );
      }

      await apply('cluster1', ALLOW_DNS);
      await loaded('cluster1', [`${CNP}/default/${name}`, `${CNP}/default/allow-dns`]);
      const allowedSince = Date.now();
      // Resolves now; answered by rebel-base of cluster1 only: selectors that name no
      // cluster select the local one (--policy-default-local-cluster).
      const { results, dropped } = await answeredAndDropped('cluster1', 'x-wing', 'rebel-base');
      for (const r of results) {
        if (r.code === 0) assert.equal(r.reply?.Cluster, 'cluster1', r.stdout);
      }
      for (const r of dropped) assertDropped(r, 'x-wing → rebel-base of cluster2');
      const flows = await flowsSince(allowedSince);
      const dns = flows.filter(
        (f) => f.source.pod === xwing.name && f.destination.pod === 'coredns',
      );
      assert.ok(dns.length >= results.length, describeFlows(dns));
      for (const f of dns) {
        assert.equal(f.verdict, 'FORWARDED');
        assert.deepEqual(f.egress_allowed_by, [ref(CNP, 'allow-dns')]);
      }
      const svc = flows.filter((f) => f.source.pod === xwing.name && f.service !== undefined);
      assert.equal(svc.length, results.length, describeFlows(svc));
      for (const f of svc) {
        assert.equal(f.verdict, f.backend?.cluster === 'cluster1' ? 'FORWARDED' : 'DROPPED');
        if (f.verdict === 'DROPPED') assert.equal(f.dropReason, 'POLICY_DENIED');
      }
    }),
  );
});
