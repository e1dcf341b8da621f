/**
 * The plain manifests rendered from the Helm chart (deploy/manifests/) and a render with
 * every option on (KVStoreMesh, MCS-API, a LoadBalancer, the clustermesh secret) apply with
 * the real `kubectl apply --dry-run=server` against the Kubernetes API of `clustermesh up`
 * (its kubeconfig from mesh.json, its registry in a real etcd): every object is accepted and
 * nothing is stored. Runs on cluster IDs 7–9 under their up lock.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { UpProcess } from '../support/up-process.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const MANIFESTS = join(ROOT, 'deploy', 'manifests', 'clustermesh.yaml');
const MESH_VALUES = join(ROOT, 'test', 'fixtures', 'deploy', 'values-mesh.yaml');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function run(cmd: string, args: readonly string[], dir: string): Promise<Run> {
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { cwd: dir, env: { ...process.env, HOME: dir }, timeout: 60_000 },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`${cmd} ${args.join(' ')}: ${err.message}`, { cause: err }));
      },
    );
  });
}

before(() => acquireUpLock(600_000, 7));
after(() => releaseUpLock(7));

void describe(
  'deploy manifests against the Kubernetes API of clustermesh up',
  { timeout: 300_000 },
  () => {
    let dir: string;
    let up: UpProcess;
    let state: MeshState;

    const kubectl = async (args: readonly string[]): Promise<Run> =>
      run(
        'kubectl',
        [
          '--kubeconfig',
          state.kubeconfig ?? '',
          '--context',
          'cluster7',
          '--cache-dir',
          join(dir, 'cache'),
          ...args,
        ],
        dir,
      );

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'cm-deploy-'));
      up = new UpProcess(dir);
      up.start(['--clusters', '1', '--nodes', '1', '--first-cluster-id', '7', '--kvstore', 'etcd']);
      await eventually(async () => {
        state = await readMeshState(join(dir, '.clustermesh'));
        assert.ok(state.kubeconfig !== undefined, 'mesh.json names the kubeconfig');
      }, 120_000).catch((err: unknown) => {
        throw new Error(`up did not become ready: ${String(err)}\n${up.log}`);
      });
    });

    after(async () => {
      await up.stop();
      await rm(dir, { recursive: true, force: true });
    });

    /** Each object's resourceVersion, or undefined when the API does not have it. */
    const versions = async (
      docs: readonly { kind: string; metadata: { name: string } }[],
    ): Promise<(string | undefined)[]> => {
      const out: (string | undefined)[] = [];
      for (const d of docs) {
        const ns = d.kind.startsWith('Cluster') ? [] : ['-n', 'kube-system'];
        const got = await kubectl([
          'get',
          d.kind.toLowerCase(),
          d.metadata.name,
          ...ns,
          '-o',
          'jsonpath={.metadata.resourceVersion}',
        ]);
        if (got.code !== 0) assert.match(got.stderr, /NotFound/);
        out.push(got.code === 0 ? got.stdout : undefined);
      }
      return out;
    };

    const dryRun = async (file: string): Promise<void> => {
      const docs = parseAllDocuments(await readFile(file, 'utf8')).map(
        (d) => d.toJS() as { kind: string; apiVersion: string; metadata: { name: string } },
      );
      assert.ok(docs.length >= 10, `only ${docs.length} documents`);
      const before = await versions(docs);
      const r = await kubectl(['apply', '--dry-run=server', '-f', file]);
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, docs.length, r.stdout);
      for (const [i, d] of docs.entries()) {
        const group = d.apiVersion.includes('/') ? `.${d.apiVersion.split('/')[0] ?? ''}` : '';
        // up runs its own clustermesh-apiserver Deployment in kube-system: that one is changed.
        const action = before[i] === undefined ? 'created' : 'configured';
        assert.equal(
          lines[i],
          `${d.kind.toLowerCase()}${group}/${d.metadata.name} ${action} (server dry run)`,
        );
      }
      assert.ok(
        before.filter((v) => v === undefined).length >= docs.length - 1,
        'up holds more than its clustermesh-apiserver Deployment',
      );
      // Nothing was stored or changed.
      assert.deepEqual(await versions(docs), before);
    };

    void it('deploy/manifests/clustermesh.yaml: accepted, nothing stored', async () => {
      await dryRun(MANIFESTS);
    });

    void it('every option on (KVStoreMesh, MCS-API, LoadBalancer, clustermesh secret): accepted', async () => {
      const r = await run(
        process.execPath,
        [join(ROOT, 'scripts', 'render-chart.mjs'), '--values', MESH_VALUES],
        dir,
      );
      assert.equal(r.code, 0, r.stderr);
      const file = join(dir, 'mesh.yaml');
      await writeFile(file, r.stdout);
      await dryRun(file);
    });
  },
);
