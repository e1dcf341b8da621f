/**
 * The Helm chart deploy/helm/clustermesh, rendered by scripts/render-chart.mjs as a user
 * runs it: values.yaml meets values.schema.json (and bad values are refused as Helm
 * refuses them), every rendered document parses and names apiVersion, kind and
 * metadata.name, the committed deploy/manifests are what the chart renders, the Service
 * type follows `clustermesh.apiserver.service.type`, the cilium-clustermesh secret holds
 * one etcd config per remote cluster that our own config parser reads, the etcdinit
 * script creates exactly the users and roles src/etcd/users.ts plans, and each daemon's
 * ClusterRole grants list and watch of every kind it reads.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { etcdAuthPlan } from '../../src/etcd/users.js';
import { parseEtcdConfig } from '../../src/kvstore/config.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CHART = join(ROOT, 'deploy', 'helm', 'clustermesh');
const MESH_VALUES = join(ROOT, 'test', 'fixtures', 'deploy', 'values-mesh.yaml');

interface Doc {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [k: string]: unknown;
}

interface Rule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

function render(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [join(ROOT, 'scripts', 'render-chart.mjs'), ...args],
      { cwd: ROOT, timeout: 30_000 },
      (err, out, errOut) => {
        resolve({ code: err === null ? 0 : Number(err.code ?? 1), out, err: errOut });
      },
    );
  });
}

async function renderDocs(args: readonly string[]): Promise<Doc[]> {
  const r = await render(args);
  assert.equal(r.code, 0, r.err);
  return parseAllDocuments(r.out).map((d) => {
    assert.deepEqual(d.errors, [], 'a rendered document is invalid YAML');
    return d.toJS() as Doc;
  });
}

function find(docs: readonly Doc[], kind: string, name: string): Doc {
  const d = docs.find((x) => x.kind === kind && x.metadata.name === name);
  assert.ok(d !== undefined, `no ${kind} ${name} rendered`);
  return d;
}

function rulesOf(docs: readonly Doc[], role: string): Rule[] {
  return (find(docs, 'ClusterRole', role) as unknown as { rules: Rule[] }).rules;
}

function allows(rules: readonly Rule[], group: string, resource: string, verb: string): boolean {
  return rules.some(
    (r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb),
  );
}

void describe('Helm chart deploy/helm/clustermesh', () => {
  let defaults: Doc[];
  let mesh: Doc[];
  let dir: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-chart-'));
    defaults = await renderDocs([]);
    mesh = await renderDocs(['--values', MESH_VALUES]);
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('values.yaml (and the mesh example) meet values.schema.json; bad values are refused', async () => {
    const schema = z.fromJSONSchema(
      JSON.parse(await readFile(join(CHART, 'values.schema.json'), 'utf8')) as Record<
        string,
        unknown
      >,
    );
    const values = parseYaml(await readFile(join(CHART, 'values.yaml'), 'utf8')) as Record<
      string,
      unknown
    >;
    const ok = schema.safeParse(values);
    assert.ok(ok.success, JSON.stringify(ok.error?.issues));
    // Cilium's names are where the schema expects them.
    const v = values as {
      cluster: { name: string; id: number };
      clustermesh: {
        useAPIServer: boolean;
        enableMCSAPISupport: boolean;
        config: { clusters: unknown[] };
        apiserver: { service: { type: string } };
      };
    };
    assert.equal(typeof v.cluster.name, 'string');
    assert.equal(typeof v.cluster.id, 'number');
    assert.equal(v.clustermesh.apiserver.service.type, 'NodePort');
    assert.deepEqual(v.clustermesh.config.clusters, []);
    for (const [args, message] of [
      [['--set', 'clustermesh.apiserver.service.type=ExternalName'], /service\.type/],
      [['--set', 'cluster.id=0'], /cluster\.id/],
      [['--set', 'cluster.name=Bad_Name'], /cluster\.name/],
      [['--set', 'clustermesh.apiserver.servce.type=NodePort'], /servce/],
      [['--set', 'clustermesh.maxConnectedClusters=300'], /maxConnectedClusters/],
    ] as const) {
      const r = await render(args);
      assert.equal(r.code, 1, `${args.join(' ')} accepted`);
      assert.match(r.err, /^Error: values don't meet the specifications of the schema:/);
      assert.match(r.err, message);
    }
  });

  it('renders documents that each have apiVersion, kind, metadata.name (and a namespace when namespaced)', () => {
    const clusterScoped = new Set(['ClusterRole', 'ClusterRoleBinding', 'Namespace']);
    for (const docs of [defaults, mesh]) {
      assert.ok(docs.length >= 10, `only ${docs.length} documents`);
      for (const d of docs) {
        assert.equal(typeof d.apiVersion, 'string', JSON.stringify(d).slice(0, 80));
        assert.equal(typeof d.kind, 'string');
        assert.match(d.metadata.name, /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/);
        if (!clusterScoped.has(d.kind)) assert.equal(d.metadata.namespace, 'kube-system');
      }
    }
    const kinds = new Set(mesh.map((d) => `${d.kind}/${d.metadata.name}`));
    for (const k of [
      'Deployment/clustermesh-apiserver',
      'Service/clustermesh-apiserver',
      'ConfigMap/clustermesh-apiserver-etcdinit',
      'DaemonSet/cilium',
      'Deployment/cilium-operator',
      'ServiceAccount/cilium',
      'ServiceAccount/cilium-operator',
      'ServiceAccount/clustermesh-apiserver',
      'ClusterRole/cilium',
      'ClusterRoleBinding/cilium',
      'ClusterRole/clustermesh-apiserver',
      'ClusterRole/cilium-operator',
      'Secret/cilium-clustermesh',
      'Secret/cilium-kvstoremesh',
      'Secret/cilium-ca',
      'Secret/clustermesh-apiserver-server-cert',
      'Secret/clustermesh-apiserver-admin-cert',
      'Secret/clustermesh-apiserver-remote-cert',
    ]) {
      assert.ok(kinds.has(k), `${k} not rendered`);
    }
  });

  it('deploy/manifests/clustermesh.yaml is what the chart renders with its default values', async () => {
    const r = await render([]);
    assert.equal(r.code, 0, r.err);
    const committed = await readFile(join(ROOT, 'deploy', 'manifests', 'clustermesh.yaml'), 'utf8');
    assert.equal(
      committed,
      r.out,
      'deploy/manifests/clustermesh.yaml is stale: node scripts/render-chart.mjs --out deploy/manifests/clustermesh.yaml',
    );
  });

  it('exposes etcd as clustermesh.apiserver.service.type says', async () => {
    type Svc = { spec: { type: string; ports: { port: number; nodePort?: number }[] } };
    const np = find(defaults, 'Service', 'clustermesh-apiserver') as unknown as Svc;
    assert.equal(np.spec.type, 'NodePort');
    assert.deepEqual(
      np.spec.ports.map((p) => [p.port, p.nodePort]),
      [[2379, 32379]],
    );
    const lb = find(mesh, 'Service', 'clustermesh-apiserver') as unknown as Svc & {
      spec: { loadBalancerIP?: string };
    };
    assert.equal(lb.spec.type, 'LoadBalancer');
    assert.equal(lb.spec.loadBalancerIP, '192.0.2.10');
    assert.equal(lb.spec.ports[0]?.nodePort, undefined);
    const ci = (await renderDocs(['--set', 'clustermesh.apiserver.service.type=ClusterIP'])).find(
      (d) => d.kind === 'Service',
    ) as unknown as Svc;
    assert.equal(ci.spec.type, 'ClusterIP');
    assert.equal(ci.spec.ports[0]?.nodePort, undefined);
  });

  it('writes one etcd config per remote cluster, read by our config parser: into cilium-kvstoremesh with KVStoreMesh (the agents read its cache), else into cilium-clustermesh', async () => {
    const decode = (docs: Doc[], name: string): Record<string, string> =>
      Object.fromEntries(
        Object.entries(
          (find(docs, 'Secret', name) as unknown as { data: Record<string, string> }).data,
        ).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
      );
    const direct = await renderDocs([
      '--values',
      MESH_VALUES,
      '--set',
      'clustermesh.apiserver.kvstoremesh.enabled=false',
    ]);
    assert.equal(
      direct.some((d) => d.kind === 'Secret' && d.metadata.name === 'cilium-kvstoremesh'),
      false,
      'no cilium-kvstoremesh secret without KVStoreMesh',
    );
    const remotes = [decode(direct, 'cilium-clustermesh'), decode(mesh, 'cilium-kvstoremesh')];
    for (const decoded of remotes) {
      // The local cluster (cluster1) is not a remote of itself.
      assert.deepEqual(Object.keys(decoded).sort(), [
        'cluster2',
        'cluster2.etcd-client-ca.crt',
        'cluster2.etcd-client.crt',
        'cluster2.etcd-client.key',
        'cluster3',
        'common-etcd-client-ca.crt',
        'common-etcd-client.crt',
        'common-etcd-client.key',
      ]);
      const c2 = parseEtcdConfig(decoded.cluster2 ?? '', 'cluster2');
      assert.deepEqual(c2.endpoints, ['https://cluster2.mesh.cilium.io:32379']);
      assert.equal(c2.trustedCaFile, '/var/lib/cilium/clustermesh/cluster2.etcd-client-ca.crt');
      assert.equal(c2.certFile, '/var/lib/cilium/clustermesh/cluster2.etcd-client.crt');
      assert.equal(c2.keyFile, '/var/lib/cilium/clustermesh/cluster2.etcd-client.key');
      const c3 = parseEtcdConfig(decoded.cluster3 ?? '', 'cluster3');
      assert.deepEqual(c3.endpoints, ['https://cluster3.example.net:2379']);
      assert.equal(c3.certFile, '/var/lib/cilium/clustermesh/common-etcd-client.crt');
      assert.equal(decoded['cluster2.etcd-client.crt'], 'C2-CERT');
      assert.equal(decoded['common-etcd-client.crt'], 'REMOTE-CERT');
    }
    // With KVStoreMesh the agents' file for each remote names this cluster's own etcd, read
    // with the local-<cluster> certificate: no remote endpoint, no remote certificate.
    const agents = decode(mesh, 'cilium-clustermesh');
    assert.deepEqual(Object.keys(agents).sort(), [
      'cluster2',
      'cluster3',
      'common-etcd-client-ca.crt',
      'local-etcd-client.crt',
      'local-etcd-client.key',
    ]);
    assert.equal(agents['local-etcd-client.crt'], 'LOCAL-CERT');
    for (const remote of ['cluster2', 'cluster3']) {
      const c = parseEtcdConfig(agents[remote] ?? '', remote);
      assert.deepEqual(c.endpoints, ['https://clustermesh-apiserver.kube-system.svc:2379']);
      assert.equal(c.trustedCaFile, '/var/lib/cilium/clustermesh/common-etcd-client-ca.crt');
      assert.equal(c.certFile, '/var/lib/cilium/clustermesh/local-etcd-client.crt');
      assert.equal(c.keyFile, '/var/lib/cilium/clustermesh/local-etcd-client.key');
    }
    const ds = find(mesh, 'DaemonSet', 'cilium') as unknown as {
      spec: { template: { spec: { hostAliases: { ip: string; hostnames: string[] }[] } } };
    };
    assert.deepEqual(ds.spec.template.spec.hostAliases, [
      { ip: '192.0.2.20', hostnames: ['cluster2.mesh.cilium.io'] },
    ]);
    // Without clustermesh.config.enabled there is no secret (the volumes are optional).
    assert.ok(
      !defaults.some((d) => d.kind === 'Secret' && d.metadata.name === 'cilium-clustermesh'),
      'a cilium-clustermesh secret without clustermesh.config.enabled',
    );
  });

  it('runs the clustermesh-apiserver with an etcd sidecar, etcd-init, and KVStoreMesh on request', () => {
    type Pod = {
      spec: {
        template: {
          spec: {
            initContainers?: { name: string; command: string[] }[];
            containers: { name: string; args?: string[]; image: string }[];
          };
        };
      };
    };
    const plain = find(defaults, 'Deployment', 'clustermesh-apiserver') as unknown as Pod;
    const withKvm = find(mesh, 'Deployment', 'clustermesh-apiserver') as unknown as Pod;
    assert.deepEqual(
      plain.spec.template.spec.containers.map((c) => c.name),
      ['etcd', 'apiserver'],
    );
    assert.deepEqual(
      withKvm.spec.template.spec.containers.map((c) => c.name),
      ['etcd', 'apiserver', 'kvstoremesh'],
    );
    assert.deepEqual(
      plain.spec.template.spec.initContainers?.map((c) => c.name),
      ['etcd-init'],
    );
    const apiserver = withKvm.spec.template.spec.containers[1];
    assert.ok(apiserver !== undefined, 'an apiserver container');
    assert.deepEqual(apiserver.args?.slice(0, 4), [
      'apiserver',
      '--cluster-name=cluster1',
      '--cluster-id=1',
      '--max-connected-clusters=255',
    ]);
    assert.equal(apiserver.image, 'ghcr.io/clustermesh/clustermesh:0.1.0');
  });

  it("etcdinit creates exactly src/etcd/users.ts's users and roles, then enables auth", () => {
    const cm = find(mesh, 'ConfigMap', 'clustermesh-apiserver-etcdinit') as unknown as {
      data: Record<string, string>;
    };
    const script = cm.data['etcdinit.sh'] ?? '';
    const cmds = script
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.startsWith('etcdctl ') && !l.includes('endpoint health'));
    const users: [string, string][] = [];
    const roles = new Map<string, string[]>();
    for (const c of cmds) {
      let m = /^etcdctl user grant-role (\S+) (\S+)$/.exec(c);
      if (m !== null) users.push([m[1] ?? '', m[2] ?? '']);
      m = /^etcdctl role add (\S+)$/.exec(c);
      if (m !== null) roles.set(m[1] ?? '', []);
      m =
        /^etcdctl role grant-permission (\S+) (read|write|readwrite) (--prefix=true )?(\S+)$/.exec(
          c,
        );
      if (m !== null) {
        const key = (m[4] ?? '').replace(/^""$/, '');
        roles
          .get(m[1] ?? '')
          ?.push(
            `${m[2]} ${m[3] !== undefined ? (key === '' ? 'all' : `prefix ${key}`) : `key ${key}`}`,
          );
      }
    }
    const plan = etcdAuthPlan('cluster1');
    assert.deepEqual(
      users.sort(),
      plan.users.map((u) => [u.name, u.role] as [string, string]).sort(),
    );
    const want = new Map(
      plan.roles.map((r) => [
        r.name,
        r.permissions.map(
          (p) =>
            `${p.perm.toLowerCase()} ${p.all === true ? 'all' : p.prefix !== undefined ? `prefix ${p.prefix}` : `key ${p.key ?? ''}`}`,
        ),
      ]),
    );
    assert.deepEqual([...roles].sort(), [...want].sort(), 'etcdinit.sh and etcdAuthPlan disagree');
    assert.equal(cmds.at(-1), 'etcdctl auth enable');
  });

  it('grants each daemon list and watch of every kind it reads, and writes only to the operator', () => {
    const reads = {
      'clustermesh-apiserver': [
        ['cilium.io', 'ciliumnodes'],
        ['cilium.io', 'ciliumidentities'],
        ['cilium.io', 'ciliumendpoints'],
        ['', 'services'],
        ['', 'namespaces'],
        ['discovery.k8s.io', 'endpointslices'],
        ['multicluster.x-k8s.io', 'serviceexports'],
      ],
      cilium: [
        ['cilium.io', 'ciliumnodes'],
        ['cilium.io', 'ciliumidentities'],
        ['cilium.io', 'ciliumendpoints'],
        ['cilium.io', 'ciliumnetworkpolicies'],
        ['cilium.io', 'ciliumclusterwidenetworkpolicies'],
        ['networking.k8s.io', 'networkpolicies'],
      ],
      'cilium-operator': [
        ['multicluster.x-k8s.io', 'serviceexports'],
        ['multicluster.x-k8s.io', 'serviceimports'],
        ['', 'services'],
        ['', 'namespaces'],
        ['discovery.k8s.io', 'endpointslices'],
      ],
    } as const;
    for (const [role, kinds] of Object.entries(reads)) {
      const rules = rulesOf(mesh, role);
      for (const [g, r] of kinds) {
        for (const verb of ['list', 'watch']) {
          assert.ok(allows(rules, g, r, verb), `${role} cannot ${verb} ${r}.${g}`);
        }
      }
      const writes = rules.filter((r) =>
        r.verbs.some((v) => ['create', 'update', 'patch', 'delete'].includes(v)),
      );
      if (role !== 'cilium-operator') assert.deepEqual(writes, [], `${role} may write`);
      // Least privilege: no wildcards, no secrets.
      for (const r of rules) {
        assert.ok(!r.resources.includes('*') && !r.verbs.includes('*'), `${role} has a wildcard`);
        assert.ok(!r.resources.includes('secrets'), `${role} may read secrets`);
      }
    }
    for (const res of ['serviceimports', 'services', 'endpointslices']) {
      const g =
        res === 'serviceimports'
          ? 'multicluster.x-k8s.io'
          : res === 'services'
            ? ''
            : 'discovery.k8s.io';
      for (const verb of ['create', 'update', 'delete']) {
        assert.ok(
          allows(rulesOf(mesh, 'cilium-operator'), g, res, verb),
          `operator ${verb} ${res}`,
        );
      }
    }
    assert.ok(
      allows(
        rulesOf(mesh, 'cilium-operator'),
        'multicluster.x-k8s.io',
        'serviceexports/status',
        'update',
      ),
      'the operator cannot write ServiceExport conditions',
    );
    // Without MCS-API support there is no operator, hence no write access at all.
    assert.ok(
      !defaults.some((d) => d.metadata.name === 'cilium-operator'),
      'an operator without MCS-API support',
    );
    // Each ClusterRole is bound to its daemon's ServiceAccount.
    for (const role of Object.keys(reads)) {
      const b = find(mesh, 'ClusterRoleBinding', role) as unknown as {
        roleRef: { kind: string; name: string };
        subjects: { kind: string; name: string; namespace: string }[];
      };
      assert.deepEqual(b.roleRef.name, role);
      assert.deepEqual(b.subjects, [
        { kind: 'ServiceAccount', name: role, namespace: 'kube-system' },
      ]);
    }
  });

  it('refuses a template outside the supported subset with its file and line', async () => {
    const chart = join(dir, 'bad');
    await mkdir(join(chart, 'templates'), { recursive: true });
    await writeFile(join(chart, 'Chart.yaml'), 'apiVersion: v2\nname: bad\nversion: 0.0.1\n');
    await writeFile(join(chart, 'values.yaml'), 'a: {b: 1}\n');
    await writeFile(
      join(chart, 'templates', 'x.yaml'),
      'kind: A\n{{ with .Values.a }}\n{{ end }}\n',
    );
    const r = await render([chart]);
    assert.equal(r.code, 1);
    assert.equal(r.err, 'Error: x.yaml:2: {{ with }} is outside the supported subset\n');
    await writeFile(join(chart, 'templates', 'x.yaml'), 'a: {{ .Values.a }}\n');
    const r2 = await render([chart]);
    assert.equal(r2.code, 1);
    assert.equal(r2.err, 'Error: x.yaml:1: prints a map or list; pipe it to toYaml\n');
  });
});
