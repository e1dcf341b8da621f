/**
 * `clustermesh up --k8s-mode` (IDs 7–8): every cluster's apiserver, agent, operator and
 * KVStoreMesh read their cluster through its own Kubernetes API (a kubeconfig with only
 * that cluster's context), and the operators write back through it. The mesh core, global
 * services and the MCS-API, driven with the real kubectl: a Deployment applied in cluster7
 * reaches cluster8's agent (node, identity, ipcache); the global rebel-base answers from
 * both clusters; a ServiceExport made with kubectl becomes a ServiceImport, a derived
 * Service and EndpointSlices that kubectl lists, its clusterset.local name resolves (dig)
 * and answers across clusters (curl through `clustermesh exec`).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { MeshState } from '../../src/localmesh/mesh-state.js';
import { derivedServiceName } from '../../src/mcsapi/types.js';
import { eventually } from '../support/eventually.js';
import { getJson } from '../support/mesh.js';
import { UpProcess } from '../support/up-process.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));
const C1 = 'cluster7';
const C2 = 'cluster8';

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

interface KubeObject {
  readonly metadata: {
    readonly name: string;
    readonly uid?: string;
    readonly labels?: Record<string, string>;
    readonly ownerReferences?: readonly { uid: string }[];
  };
  readonly spec?: { clusterIP?: string; ips?: readonly string[] };
  readonly status?: {
    readonly clusters?: readonly { cluster: string }[];
    readonly conditions?: readonly { type: string; status: string }[];
  };
  readonly endpoints?: readonly { addresses: readonly string[] }[];
}

function run(cmd: string, args: readonly string[], dir: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: dir, env: { ...process.env, HOME: dir, LOG_LEVEL: 'silent' }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`, { cause: err }));
      },
    );
  });
}

/** A Deployment of the echo image with its Service (ClusterIP, port 80). */
function echoApp(name: string): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  type: ClusterIP
  selector:
    name: ${name}
  ports:
  - name: http
    port: 80
    protocol: TCP
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: ${name}
  namespace: default
spec:
  replicas: 1
  selector:
    matchLabels:
      name: ${name}
  template:
    metadata:
      labels:
        name: ${name}
    spec:
      containers:
      - name: echo
        image: clustermesh/echo
        ports:
        - containerPort: 80
        env:
        - name: MESSAGE
          value: '{"App":"${name}"}'
`;
}

function exportYaml(name: string): string {
  return `apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata:
  name: ${name}
  namespace: default
`;
}

before(() => acquireUpLock(600_000, 7));
after(() => releaseUpLock(7));

void describe(
  'clustermesh up --k8s-mode (2 clusters × 1 node, etcd, IDs 7–8)',
  {
    timeout: 300_000,
  },
  () => {
    let dir: string;
    let up: UpProcess;
    let state: MeshState;

    const kubectl = async (context: string, args: readonly string[], input?: string) => {
      let file: string | undefined;
      if (input !== undefined) {
        file = join(dir, `in-${Math.random().toString(36).slice(2)}.yaml`);
        await writeFile(file, input);
      }
      const r = await run(
        'kubectl',
        [
          '--kubeconfig',
          state.kubeconfig ?? '',
          '--context',
          context,
          '--cache-dir',
          join(dir, 'cache'),
          ...args,
          ...(file === undefined ? [] : ['-f', file]),
        ],
        dir,
      );
      assert.equal(r.code, 0, `kubectl ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const getObject = async (
      context: string,
      resource: string,
      name: string,
    ): Promise<KubeObject | undefined> => {
      const out = await kubectl(context, [
        'get',
        resource,
        name,
        '-o',
        'json',
        '--ignore-not-found',
      ]);
      return out.trim() === '' ? undefined : (JSON.parse(out) as KubeObject);
    };
    const clustermesh = async (args: readonly string[]): Promise<string> => {
      const r = await run(BIN, args, dir);
      assert.equal(r.code, 0, `clustermesh ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const agentApi = (cluster: string): string => {
      const a = state.clusters.find((c) => c.name === cluster)?.agents[0]?.api;
      assert.ok(a !== undefined, `agent of ${cluster}`);
      return a;
    };
    /**
     * Which clusters answer `url` from cluster's x-wing: requests until every cluster in
     * `want` answered, at most `max` of them.
     */
    const answering = async (
      cluster: string,
      url: string,
      want: readonly string[],
      max: number,
    ): Promise<string[]> => {
      const seen = new Set<string>();
      for (let i = 0; i < max && !want.every((c) => seen.has(c)); i++) {
        const out = await clustermesh([
          'exec',
          `${cluster}/x-wing`,
          '--',
          'curl',
          '-s',
          '-m',
          '5',
          url,
        ]);
        seen.add((JSON.parse(out) as { Cluster: string }).Cluster);
      }
      return [...seen].sort();
    };
    const dig = async (cluster: string, name: string): Promise<string[]> => {
      const [ip = '', port = '53'] = (
        state.clusters.find((c) => c.name === cluster)?.dns ?? ''
      ).split(':');
      const r = await run(
        'dig',
        [`@${ip}`, '-p', port, '+short', '+tries=2', '+time=2', name, 'A'],
        dir,
      );
      return r.stdout.split('\n').filter((l) => l !== '' && !l.startsWith(';'));
    };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cm-k8smode-'));
      up = new UpProcess(dir);
      up.start([
        '--k8s-mode',
        '--clusters',
        '2',
        '--first-cluster-id',
        '7',
        '--nodes',
        '1',
        '--kvstore',
        'etcd',
        '--example',
        'rebel-base',
      ]);
      state = await up.ready(150_000);
    });

    after(async () => {
      await up.stop();
      await rm(dir, { recursive: true, force: true });
    });

    void it('records Kubernetes mode; each daemon reads its own cluster through its own context', async () => {
      assert.equal(state.k8sMode, true);
      await eventually(() => {
        assert.match(
          up.log,
          /^clustermesh: 2 clusters × 1 node \(etcd kvstore, Kubernetes mode\)/m,
        );
      });
      for (const c of [C1, C2]) {
        const kc = await readFile(join(dir, '.clustermesh', c, 'kubeconfig'), 'utf8');
        assert.match(kc, new RegExp(`current-context: ${c}\\n`));
        assert.equal((kc.match(/server: /g) ?? []).length, 1, `${c}: only its own cluster`);
        // The agent's status names its API server, as `cilium status` does.
        const out = await clustermesh(['status', '--node', `${c}/${c}-node1`]);
        const ip = c === C1 ? '127.7.0.1' : '127.8.0.1';
        assert.match(
          out,
          new RegExp(`^Kubernetes:\\s+Ok \\(https://${ip.replace(/\./g, '\\.')}:\\d+\\)$`, 'm'),
        );
      }
    });

    void it('a Deployment applied with kubectl in cluster7 reaches cluster8: identity and ipcache, and the node', async () => {
      await kubectl(C1, ['apply'], echoApp('probe'));
      let podIP = '';
      await eventually(async () => {
        const pods = JSON.parse(
          await kubectl(C1, ['get', 'pods', '-l', 'name=probe', '-o', 'json']),
        ) as {
          items: { status?: { podIP?: string; phase?: string } }[];
        };
        podIP = pods.items[0]?.status?.podIP ?? '';
        assert.equal(pods.items[0]?.status?.phase, 'Running');
      }, 30_000);
      await eventually(async () => {
        const nodes = await getJson<{ Name: string; Cluster: string }[]>(
          `${agentApi(C2)}/v1/nodes`,
        );
        assert.ok(
          nodes.some((n) => n.Cluster === C1 && n.Name === `${C1}-node1`),
          JSON.stringify(nodes),
        );
        const ids = await getJson<{ id: number; labels: readonly string[] }[]>(
          `${agentApi(C2)}/v1/identities`,
        );
        const id = ids.find(
          (i) =>
            i.labels.includes('k8s:name=probe') &&
            i.labels.some((l) => l.endsWith(`cluster=${C1}`)),
        );
        assert.ok(id !== undefined, JSON.stringify(ids.slice(0, 5)));
        const ips = await getJson<{ cidr: string; identity: number }[]>(
          `${agentApi(C2)}/v1/ipcache`,
        );
        assert.ok(
          ips.some((e) => e.cidr.startsWith(`${podIP}/`) && e.identity === id.id),
          `${podIP} → ${id.id}: ${JSON.stringify(ips.slice(0, 8))}`,
        );
      }, 30_000);
    });

    void it('the global rebel-base answers from both clusters', async () => {
      await eventually(async () => {
        assert.deepEqual(await answering(C1, 'rebel-base', [C1, C2], 16), [C1, C2]);
      }, 30_000);
    });

    void it('a ServiceExport applied with kubectl: ServiceImport, derived Service and EndpointSlices through kubectl, clusterset.local resolves and answers across clusters', async () => {
      await kubectl(C1, ['apply'], echoApp('echo') + '---\n' + exportYaml('echo'));
      const derived = derivedServiceName('default', 'echo');
      let ip = '';
      await eventually(async () => {
        const se = await getObject(C1, 'serviceexports.multicluster.x-k8s.io', 'echo');
        const conds = Object.fromEntries(
          (se?.status?.conditions ?? []).map((c) => [c.type, c.status]),
        );
        assert.deepEqual(conds, { Valid: 'True', Ready: 'True', Conflict: 'False' });
        const si = await getObject(C2, 'serviceimports.multicluster.x-k8s.io', 'echo');
        assert.deepEqual(si?.status?.clusters, [{ cluster: C1 }]);
        assert.equal(si.status.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
        const svc = await getObject(C2, 'service', derived);
        assert.ok(svc !== undefined, 'derived Service');
        assert.equal(
          svc.metadata.ownerReferences?.[0]?.uid,
          si.metadata.uid,
          'owned by the import',
        );
        assert.deepEqual(si.spec?.ips, [svc.spec?.clusterIP]);
        ip = svc.spec?.clusterIP ?? '';
        // cluster7's own endpoints, mirrored under the derived Service.
        const slices = JSON.parse(
          await kubectl(C1, [
            'get',
            'endpointslices',
            '-l',
            'multicluster.kubernetes.io/service-name=echo',
            '-o',
            'json',
          ]),
        ) as { items: KubeObject[] };
        const [mirror] = slices.items;
        assert.ok(mirror !== undefined && slices.items.length === 1, JSON.stringify(slices.items));
        const labels = mirror.metadata.labels ?? {};
        assert.equal(labels['kubernetes.io/service-name'], derived);
        assert.equal(labels['multicluster.kubernetes.io/source-cluster'], C1);
      }, 45_000).catch((err: unknown) => {
        throw new Error(`${String(err)}\n${up.log.slice(-3000)}`);
      });
      await eventually(async () => {
        assert.deepEqual(await dig(C2, 'echo.default.svc.clusterset.local.'), [ip]);
      }, 20_000);
      await eventually(async () => {
        assert.deepEqual(
          await answering(C2, 'echo.default.svc.clusterset.local', [C1, C2], 2),
          [C1],
          'cluster8 reaches the only exporter',
        );
      }, 20_000);
    });
  },
);
