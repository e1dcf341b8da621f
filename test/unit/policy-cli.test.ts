import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCliCaptured, type CapturedRun } from '../support/cli.js';
import { ALLOW_CROSS_CLUSTER as CROSS } from '../support/policies.js';

/** `clustermesh policy trace` offline (-f manifests), run in-process. */

// The same without a cluster label on the peer: where policy-default-local-cluster matters.
const NO_CLUSTER = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: x-wing-to-rebel-base
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egress:
  - toEndpoints:
    - matchLabels:
        name: rebel-base
`;

const DENY = `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata:
  name: deny-80
spec:
  endpointSelector:
    matchLabels:
      name: rebel-base
  ingress:
  - fromEntities: [all]
  ingressDeny:
  - fromEndpoints:
    - matchLabels:
        name: x-wing
    toPorts:
    - ports:
      - port: "80"
        protocol: TCP
`;

const KNP = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: from-frontend-ns
  namespace: backend
spec:
  podSelector:
    matchLabels:
      app: api
  policyTypes: [Ingress]
  ingress:
  - from:
    - namespaceSelector:
        matchLabels:
          team: web
    ports:
    - port: 8080
`;

const BAD = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: bad
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egress:
  - toPorts:
    - ports:
      - port: "eighty"
        protocol: TCPX
`;

const XWING1 =
  'k8s:name=x-wing,k8s:io.kubernetes.pod.namespace=default,k8s:io.cilium.k8s.policy.cluster=cluster1';
const REBEL = (c: string): string =>
  `name=rebel-base,io.kubernetes.pod.namespace=default,io.cilium.k8s.policy.cluster=${c}`;

let dir: string;
const file = (name: string): string => join(dir, name);

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cm-policy-cli-'));
  for (const [name, text] of Object.entries({
    'cross.yaml': CROSS,
    'nocluster.yaml': NO_CLUSTER,
    'deny.yaml': DENY,
    'knp.yaml': KNP,
    'bad.yaml': BAD,
  })) {
    await writeFile(file(name), text);
  }
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

function trace(...argv: string[]): Promise<CapturedRun> {
  return runCliCaptured(['policy', 'trace', ...argv]);
}

function verdictOf(r: CapturedRun): string {
  assert.equal(r.code, 0, r.stderr);
  const m = /^Final verdict: (ALLOWED|DENIED)$/m.exec(r.stdout);
  assert.ok(m, r.stdout);
  return m[1] ?? '';
}

describe('policy trace (offline)', () => {
  it('allow-cross-cluster: x-wing cluster1 → rebel-base cluster2 allowed', async () => {
    for (const pdlc of ['true', 'false']) {
      const r = await trace(
        '-f',
        file('cross.yaml'),
        '--src',
        XWING1,
        '--dst',
        REBEL('cluster2'),
        '--dport',
        '80',
        `--policy-default-local-cluster=${pdlc}`,
      );
      assert.equal(verdictOf(r), 'ALLOWED');
      assert.match(r.stdout, /Egress \(enforced by cluster cluster1/);
      assert.match(r.stdout, /ALLOW CiliumNetworkPolicy default\/allow-cross-cluster/);
      assert.match(r.stdout, /peer matches, port matches: allows/);
    }
  });

  it('allow-cross-cluster: x-wing cluster1 → rebel-base cluster1 denied by default deny', async () => {
    const r = await trace(
      '-f',
      file('cross.yaml'),
      '--src',
      XWING1,
      '--dst',
      REBEL('cluster1'),
      '--dport',
      '80/TCP',
    );
    assert.equal(verdictOf(r), 'DENIED');
    assert.match(r.stdout, /denied: no rule allows \(POLICY_DENIED\)/);
  });

  it('a peer without cluster label: policy-default-local-cluster decides', async () => {
    const args = ['-f', file('nocluster.yaml'), '--src', XWING1, '--dport', '80'];
    const remoteOn = await trace(...args, '--dst', REBEL('cluster2'));
    assert.equal(verdictOf(remoteOn), 'DENIED');
    const remoteOff = await trace(
      ...args,
      '--dst',
      REBEL('cluster2'),
      '--policy-default-local-cluster',
      'false',
    );
    assert.equal(verdictOf(remoteOff), 'ALLOWED');
    const local = await trace(...args, '--dst', REBEL('cluster1'));
    assert.equal(verdictOf(local), 'ALLOWED');
  });

  it('--local-cluster leaves the other cluster’s side unenforced', async () => {
    const r = await trace(
      '-f',
      file('cross.yaml'),
      '--src',
      XWING1,
      '--dst',
      REBEL('cluster1'),
      '--dport',
      '80',
      '--local-cluster',
      'cluster2',
    );
    assert.equal(verdictOf(r), 'ALLOWED');
    assert.match(r.stdout, /not the local cluster cluster2/);
  });

  it('a deny rule wins over an allow', async () => {
    const args = ['-f', file('deny.yaml'), '--src', XWING1, '--dst', REBEL('cluster1')];
    const r = await trace(...args, '--dport', '80');
    assert.equal(verdictOf(r), 'DENIED');
    assert.match(r.stdout, /DENY {2}CiliumClusterwideNetworkPolicy deny-80/);
    assert.match(r.stdout, /a deny rule matched \(POLICY_DENY\)/);
    const other = await trace(...args, '--dport', '443');
    assert.equal(verdictOf(other), 'ALLOWED');
  });

  it('a NetworkPolicy with namespaceSelector', async () => {
    const api = 'app=api,io.kubernetes.pod.namespace=backend';
    const web =
      'app=web,io.kubernetes.pod.namespace=frontend,io.cilium.k8s.namespace.labels.team=web';
    const ok = await trace('-f', file('knp.yaml'), '--src', web, '--dst', api, '--dport', '8080');
    assert.equal(verdictOf(ok), 'ALLOWED');
    assert.match(ok.stdout, /ALLOW NetworkPolicy backend\/from-frontend-ns/);
    const port = await trace('-f', file('knp.yaml'), '--src', web, '--dst', api, '--dport', '80');
    assert.equal(verdictOf(port), 'DENIED');
    const other = await trace(
      '-f',
      file('knp.yaml'),
      '--src',
      'app=web,io.kubernetes.pod.namespace=frontend',
      '--dst',
      api,
      '--dport',
      '8080',
    );
    assert.equal(verdictOf(other), 'DENIED');
  });

  it('says so when labels lack a namespace and the policies are namespaced', async () => {
    const r = await trace(
      '-f',
      file('knp.yaml'),
      '--src',
      'app=web',
      '--dst',
      'app=api',
      '--dport',
      '8080',
    );
    assert.equal(verdictOf(r), 'ALLOWED');
    assert.match(
      r.stdout,
      /Note: the destination labels have no k8s:io\.kubernetes\.pod\.namespace/,
    );
  });

  it('--src-ip outside the mesh is world', async () => {
    const r = await trace(
      '-f',
      file('deny.yaml'),
      '--src-ip',
      '192.0.2.1',
      '--dst',
      REBEL('cluster1'),
      '--dport',
      '80',
    );
    assert.equal(verdictOf(r), 'ALLOWED');
    assert.match(r.stdout, /labels: reserved:world, cidr:192\.0\.2\.1\/32/);
  });

  it('-o json: verdict, egress and ingress', async () => {
    const r = await runCliCaptured([
      '-o',
      'json',
      'policy',
      'trace',
      '-f',
      file('cross.yaml'),
      '--src',
      XWING1,
      '--dst',
      REBEL('cluster1'),
      '--dport',
      '80',
    ]);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      verdict: string;
      port: string;
      egress: { enforced: boolean; verdict: string; cluster: string; rules: unknown[] };
      ingress: { enforced: boolean; verdict: string };
    };
    assert.equal(doc.verdict, 'DENIED');
    assert.equal(doc.port, '80/TCP');
    assert.equal(doc.egress.enforced, true);
    assert.equal(doc.egress.verdict, 'denied');
    assert.equal(doc.egress.cluster, 'cluster1');
    assert.equal(doc.egress.rules.length, 1);
    assert.deepEqual([doc.ingress.enforced, doc.ingress.verdict], [false, 'allowed']);
  });

  it('bad input: one line, exit 1; usage errors exit 2', async () => {
    const base = ['-f', file('cross.yaml'), '--src', XWING1, '--dst', REBEL('cluster1')];
    const cases: [string[], number, RegExp][] = [
      [[...base, '--dport', '99999'], 1, /--dport "99999"/],
      [[...base, '--dport', '80/ICMP'], 1, /protocol must be TCP, UDP or SCTP/],
      [
        ['-f', file('cross.yaml'), '--src', 'k8s:=x', '--dst', 'app=y', '--dport', '80'],
        1,
        /--src "k8s:=x"/,
      ],
      [
        ['-f', file('cross.yaml'), '--src', 'bogus:app=x', '--dst', 'app=y', '--dport', '80'],
        1,
        /unknown label source "bogus"/,
      ],
      [base, 2, /--dport/],
      [['-f', file('cross.yaml'), '--dst', 'app=y', '--dport', '80'], 2, /exactly one of --src/],
      [[...base, '--src-ip', '10.0.0.1', '--dport', '80'], 2, /exactly one of --src/],
      [
        ['-f', file('bad.yaml'), '--src', XWING1, '--dst', 'app=y', '--dport', '80'],
        1,
        /bad\.yaml: document 1 \(CiliumNetworkPolicy default\/bad\)/,
      ],
      [[...base, '--dport', '80', '--policy-default-local-cluster', 'maybe'], 2, /maybe/],
    ];
    for (const [argv, code, re] of cases) {
      const r = await trace(...argv);
      assert.equal(r.code, code, `${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, re);
    }
  });
});
