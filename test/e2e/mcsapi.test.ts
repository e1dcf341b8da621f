/**
 * MCS-API end to end on `clustermesh up --example rebel-base-mcsapi` (2 and 3 clusters,
 * real etcd): the operator of each cluster imports what any cluster exports, the derived
 * Service balances over every cluster, conflicts and invalid exports show in the
 * ServiceExport's conditions, a namespace created later gets its import, and deleting
 * the last export removes the import everywhere. With agents and operators reading the
 * remote kvstores directly, and (2 clusters) through KVStoreMesh. Tests named after an mcs-api
 * conformance case check what that case checks. Everything goes through the CLI.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { derivedServiceName } from '../../src/mcsapi/types.js';
import { eventually } from '../support/eventually.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));
const NAME = 'rebel-base-mcsapi';
const DERIVED = derivedServiceName('default', NAME);

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason: string;
  readonly message: string;
}

interface ServiceImportJson {
  readonly metadata: { name: string; annotations?: Record<string, string> };
  readonly spec: {
    type: string;
    ips?: string[];
    ipFamilies?: string[];
    ports: { name?: string; protocol: string; port: number }[];
    sessionAffinity?: string;
  };
  readonly status?: { clusters?: { cluster: string }[] };
}

interface ObjectJson {
  readonly metadata: { name: string; labels?: Record<string, string> };
  readonly spec?: { clusterIP?: string };
  readonly status?: { conditions?: Condition[] };
  readonly endpoints?: { addresses: string[] }[];
}

before(() => acquireUpLock());
after(() => releaseUpLock());

async function cli(dir: string, args: readonly string[]): Promise<string> {
  const { stdout } = await run(BIN, args, {
    env: { ...process.env, LOG_LEVEL: 'silent' },
    cwd: dir,
    timeout: 60_000,
  });
  return stdout;
}

async function getJson<T>(dir: string, cluster: string, args: readonly string[]): Promise<T> {
  return JSON.parse(await cli(dir, ['get', ...args, '--cluster', cluster, '-o', 'json'])) as T;
}

/** `get KIND` as a list (the CLI prints a List for several objects, one object for a name). */
async function list<T>(dir: string, cluster: string, kind: string, ns = 'default'): Promise<T[]> {
  const out = await getJson<{ items?: T[] } | T[]>(dir, cluster, [kind, '-n', ns]);
  return Array.isArray(out) ? out : (out.items ?? []);
}

async function apply(dir: string, cluster: string, yaml: string): Promise<void> {
  const file = join(dir, `apply-${cluster}-${Date.now()}-${Math.random()}.yaml`);
  await writeFile(file, yaml);
  await cli(dir, ['apply', '--cluster', cluster, '-f', file]);
}

function conditionsOf(o: ObjectJson | undefined): Record<string, string> {
  return Object.fromEntries(
    (o?.status?.conditions ?? []).map((c) => [c.type, `${c.status}/${c.reason}`]),
  );
}

function exportYaml(name: string, namespace = 'default'): string {
  return `apiVersion: multicluster.x-k8s.io/v1beta1
kind: ServiceExport
metadata:
  name: ${name}
  namespace: ${namespace}
`;
}

class Up {
  private child: ChildProcess | undefined;
  private output = '';
  private exited: Promise<void> = Promise.resolve();

  constructor(readonly dir: string) {}

  start(args: readonly string[]): void {
    const child = spawn(BIN, ['up', ...args], {
      cwd: this.dir,
      env: { ...process.env, LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.on('data', (d: Buffer) => (this.output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (this.output += d.toString()));
    this.exited = new Promise((resolve) => child.on('exit', () => resolve()));
    this.child = child;
  }

  get log(): string {
    return this.output;
  }

  async stop(): Promise<void> {
    if (this.child === undefined || this.child.exitCode !== null) return;
    this.child.kill('SIGINT');
    const killed = setTimeout(() => this.child?.kill('SIGKILL'), 60_000);
    await this.exited;
    clearTimeout(killed);
  }
}

function scenario(n: number, kvstoremesh: boolean): void {
  const title = `MCS-API on clustermesh up (${n} clusters, etcd${kvstoremesh ? ', KVStoreMesh' : ''})`;
  describe(title, { timeout: 300_000 }, () => {
    let dir: string;
    let up: Up;
    let state: MeshState;
    const clusters = Array.from({ length: n }, (_, i) => `cluster${i + 1}`);
    const all = clusters.map((cluster) => ({ cluster }));

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cm-mcsapi-'));
      up = new Up(dir);
      up.start([
        '--clusters',
        String(n),
        '--nodes',
        '1',
        '--kvstore',
        'etcd',
        '--example',
        NAME,
        ...(kvstoremesh ? ['--kvstoremesh'] : []),
      ]);
      await eventually(async () => {
        state = await readMeshState(join(dir, '.clustermesh'));
      }, 120_000).catch((err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${up.log}`);
      });
    });

    after(async () => {
      await up.stop();
      await rm(dir, { recursive: true, force: true });
    });

    it("Exporting a ClusterIP service should create a ServiceImport of type ClusterSetIP in the service's namespace in each cluster", async () => {
      for (const c of clusters) {
        await eventually(async () => {
          const si = await getJson<ServiceImportJson>(dir, c, ['serviceimport', NAME]);
          assert.equal(si.spec.type, 'ClusterSetIP');
          assert.deepEqual(si.status?.clusters, all);
          assert.equal(
            si.metadata.annotations?.['multicluster.kubernetes.io/derived-service'],
            DERIVED,
          );
          const se = await getJson<ObjectJson>(dir, c, ['serviceexport', NAME]);
          assert.deepEqual(conditionsOf(se), {
            Valid: 'True/Valid',
            Ready: 'True/Ready',
            Conflict: 'False/NoConflicts',
          });
        }, 30_000);
      }
    });

    it('An IP should be allocated for a ClusterSetIP ServiceImport for each IP family: the derived ClusterIP from the service range', async () => {
      for (const [i, c] of clusters.entries()) {
        await eventually(async () => {
          const si = await getJson<ServiceImportJson>(dir, c, ['serviceimport', NAME]);
          const derived = await getJson<ObjectJson>(dir, c, ['service', DERIVED]);
          const ip = derived.spec?.clusterIP ?? '';
          assert.match(ip, new RegExp(`^127\\.${i + 1}\\.(1(2[89]|[3-9]\\d)|2\\d\\d)\\.\\d+$`));
          assert.deepEqual(si.spec.ips, [ip]);
          assert.deepEqual(si.spec.ipFamilies, ['IPv4']);
        }, 30_000);
      }
      const table = await cli(dir, ['get', 'serviceimports', '--cluster', 'cluster1']);
      const [header, row] = table.trimEnd().split('\n');
      assert.match(header ?? '', /^NAME\s+TYPE\s+IP\s+AGE$/);
      assert.match(
        row ?? '',
        new RegExp(`^${NAME}\\s+ClusterSetIP\\s+\\["127\\.1\\.\\d+\\.\\d+"\\]\\s+\\d+s$`),
      );
    });

    it('clustermesh exec cluster1/x-wing -- curl -s <derived ClusterIP> reaches the backends of every cluster', async () => {
      const si = await getJson<ServiceImportJson>(dir, 'cluster1', ['serviceimport', NAME]);
      const ip = si.spec.ips?.[0] ?? '';
      const seen = new Set<string>();
      await eventually(async () => {
        for (let k = 0; k < 10; k++) {
          const out = await cli(dir, [
            'exec',
            'cluster1/x-wing',
            '--',
            'curl',
            '-s',
            '-m',
            '5',
            ip,
          ]);
          seen.add((JSON.parse(out) as { Cluster: string }).Cluster);
        }
        assert.deepEqual([...seen].sort(), clusters);
      }, 60_000);
      // The agent's service table lists the derived Service with every cluster's backends.
      const services = JSON.parse(await cli(dir, ['service', 'list', '-o', 'json'])) as {
        frontend: string;
        backends: { cluster: string }[];
      }[];
      const derived = services.find((s) => s.frontend === `${ip}:80/TCP`);
      assert.ok(derived !== undefined, `${ip}:80/TCP in service list`);
      assert.deepEqual([...new Set(derived.backends.map((b) => b.cluster))].sort(), clusters);
      assert.equal(state.clusters.length, n);
    });

    it('MCS EndpointSlices: the local backends mirrored under the derived Service with the MCS labels', async () => {
      for (const c of clusters) {
        await eventually(async () => {
          const slices = (await list<ObjectJson>(dir, c, 'endpointslices')).filter(
            (s) => s.metadata.labels?.['multicluster.kubernetes.io/service-name'] === NAME,
          );
          assert.equal(slices.length, 1);
          const l = slices[0]?.metadata.labels ?? {};
          assert.equal(l['multicluster.kubernetes.io/source-cluster'], c);
          assert.equal(l['kubernetes.io/service-name'], DERIVED);
          assert.notEqual(
            l['endpointslice.kubernetes.io/managed-by'],
            'endpointslice-controller.k8s.io',
          );
          assert.equal(slices[0]?.endpoints?.length, 2);
        }, 30_000);
      }
    });

    it('conflict matrix on a live mesh: a sessionAffinity that differs is a Conflict on every export, the oldest wins', async () => {
      await apply(
        dir,
        'cluster2',
        `apiVersion: v1
kind: Service
metadata:
  name: ${NAME}
  namespace: default
spec:
  type: ClusterIP
  sessionAffinity: ClientIP
  ports:
  - port: 80
  selector:
    name: ${NAME}
`,
      );
      for (const c of clusters) {
        await eventually(async () => {
          const se = await getJson<ObjectJson>(dir, c, ['serviceexport', NAME]);
          const conflict = se.status?.conditions?.find((x) => x.type === 'Conflict');
          assert.equal(conflict?.status, 'True');
          assert.equal(conflict.reason, 'SessionAffinityConflict,SessionAffinityConfigConflict');
          assert.match(
            conflict.message,
            /^Conflicting sessionAffinity\. 1\/\d clusters disagree\. Using "None" from oldest service export in cluster "cluster1"\./,
          );
          const si = await getJson<ServiceImportJson>(dir, c, ['serviceimport', NAME]);
          assert.equal(si.spec.sessionAffinity, 'None');
        }, 30_000);
      }
      // `-o yaml` shows the conditions.
      const yaml = await cli(dir, [
        'get',
        'serviceexport',
        NAME,
        '--cluster',
        'cluster1',
        '-o',
        'yaml',
      ]);
      const doc = parseYaml(yaml) as ObjectJson;
      assert.equal(
        conditionsOf(doc).Conflict,
        'True/SessionAffinityConflict,SessionAffinityConfigConflict',
      );
      await apply(
        dir,
        'cluster2',
        `apiVersion: v1
kind: Service
metadata:
  name: ${NAME}
  namespace: default
spec:
  type: ClusterIP
  sessionAffinity: None
  ports:
  - port: 80
  selector:
    name: ${NAME}
`,
      );
      await eventually(async () => {
        const se = await getJson<ObjectJson>(dir, 'cluster1', ['serviceexport', NAME]);
        assert.equal(conditionsOf(se).Conflict, 'False/NoConflicts');
      }, 30_000);
    });

    it('Exporting an ExternalName service should set ServiceExport Valid condition to False', async () => {
      await apply(
        dir,
        'cluster1',
        `apiVersion: v1
kind: Service
metadata:
  name: external
  namespace: default
spec:
  type: ExternalName
  externalName: example.com
---
${exportYaml('external')}---
${exportYaml('missing')}`,
      );
      await eventually(async () => {
        const ext = await getJson<ObjectJson>(dir, 'cluster1', ['serviceexport', 'external']);
        assert.deepEqual(conditionsOf(ext), {
          Valid: 'False/InvalidServiceType',
          Ready: 'False/Pending',
        });
        const missing = await getJson<ObjectJson>(dir, 'cluster1', ['serviceexport', 'missing']);
        assert.deepEqual(conditionsOf(missing), {
          Valid: 'False/NoService',
          Ready: 'False/Pending',
        });
      }, 30_000);
      for (const c of clusters) {
        const names = (await list<ServiceImportJson>(dir, c, 'serviceimports')).map(
          (s) => s.metadata.name,
        );
        assert.deepEqual(names, [NAME]);
      }
    });

    it('Exporting a headless service should create a ServiceImport of type Headless in each cluster; No clusterset IP should be allocated for a Headless ServiceImport', async () => {
      await apply(
        dir,
        'cluster2',
        `apiVersion: v1
kind: Service
metadata:
  name: headless
  namespace: default
spec:
  clusterIP: None
  ports:
  - port: 80
  selector:
    name: ${NAME}
---
${exportYaml('headless')}`,
      );
      for (const c of clusters) {
        await eventually(async () => {
          const si = await getJson<ServiceImportJson>(dir, c, ['serviceimport', 'headless']);
          assert.equal(si.spec.type, 'Headless');
          assert.equal(si.spec.ips, undefined);
          // One MCS slice per source cluster: here cluster2's endpoints, in every cluster.
          const slices = (await list<ObjectJson>(dir, c, 'endpointslices')).filter(
            (s) => s.metadata.labels?.['multicluster.kubernetes.io/service-name'] === 'headless',
          );
          assert.deepEqual(
            slices.map((s) => s.metadata.labels?.['multicluster.kubernetes.io/source-cluster']),
            ['cluster2'],
          );
          assert.equal(slices[0]?.endpoints?.length, 2);
        }, 30_000);
      }
    });

    it('namespace sameness: a namespace created later gets its import then', async () => {
      await apply(
        dir,
        'cluster1',
        `apiVersion: v1
kind: Namespace
metadata:
  name: team-a
---
apiVersion: v1
kind: Service
metadata:
  name: hello
  namespace: team-a
spec:
  ports:
  - port: 42
---
${exportYaml('hello', 'team-a')}`,
      );
      await eventually(async () => {
        const si = await list<ServiceImportJson>(dir, 'cluster1', 'serviceimports', 'team-a');
        assert.deepEqual(
          si.map((s) => s.metadata.name),
          ['hello'],
        );
      }, 30_000);
      assert.deepEqual(await list(dir, 'cluster2', 'serviceimports', 'team-a'), []);
      await apply(dir, 'cluster2', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-a\n');
      await eventually(async () => {
        const si = await list<ServiceImportJson>(dir, 'cluster2', 'serviceimports', 'team-a');
        assert.deepEqual(
          si.map((s) => s.metadata.name),
          ['hello'],
        );
      }, 30_000);
    });

    it("A ServiceImport should only exist as long as there's at least one exporting cluster: export deletion removes the import and derived objects everywhere", async () => {
      await cli(dir, ['delete', 'serviceexport', NAME, '--cluster', 'cluster1']);
      for (const c of clusters) {
        await eventually(async () => {
          const si = await getJson<ServiceImportJson>(dir, c, ['serviceimport', NAME]);
          assert.deepEqual(si.status?.clusters, all.slice(1));
        }, 30_000);
      }
      for (const c of clusters.slice(1)) {
        await cli(dir, ['delete', 'serviceexport', NAME, '--cluster', c]);
      }
      for (const c of clusters) {
        await eventually(async () => {
          const names = (await list<ServiceImportJson>(dir, c, 'serviceimports')).map(
            (s) => s.metadata.name,
          );
          assert.ok(!names.includes(NAME), `${c}: ${names.join(',')}`);
          const services = (await list<ObjectJson>(dir, c, 'services')).map((s) => s.metadata.name);
          assert.ok(!services.includes(DERIVED), `${c}: derived Service left`);
          const slices = (await list<ObjectJson>(dir, c, 'endpointslices')).filter(
            (s) => s.metadata.labels?.['multicluster.kubernetes.io/service-name'] === NAME,
          );
          assert.deepEqual(slices, []);
        }, 30_000);
      }
    });
  });
}

scenario(2, false);
scenario(2, true);
scenario(3, false);
