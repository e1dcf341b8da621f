import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../support/etcd.js';

// The real launcher against a real etcd: what a user runs after `npm install`.
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let workDir: string;
let etcd: EtcdServer;
let admin: Etcd3;
let addr: string[];

function cli(args: readonly string[], stdin?: string): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      BIN,
      args,
      {
        cwd: workDir,
        env: { ...process.env, LOG_LEVEL: 'silent', CLUSTERMESH_DEBUG: '' },
        timeout: 20_000,
      },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === 'number') resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`could not run ${BIN}: ${err.message}`, { cause: err }));
      },
    );
    child.stdin?.end(stdin ?? '');
  });
}

const MESH = `# cluster1 of the global-service walkthrough
apiVersion: v1
kind: Service
metadata:
  name: rebel-base
  annotations:
    io.cilium/global-service: "true"
spec:
  type: ClusterIP
  clusterIP: 127.1.128.20
  ports:
  - port: 80
  selector:
    name: rebel-base
---
apiVersion: cilium.io/v2
kind: CiliumNode
metadata:
  name: node-1
spec:
  addresses:
  - type: InternalIP
    ip: 127.1.0.1
  ipam:
    podCIDRs: ["127.1.1.0/24"]
---
apiVersion: cilium.io/v2
kind: CiliumNode
metadata:
  name: node-2
spec:
  addresses:
  - type: InternalIP
    ip: 127.1.0.2
  ipam:
    podCIDRs: ["127.1.2.0/24"]
`;

const BAD = `apiVersion: cilium.io/v2
kind: CiliumNode
metadata:
  name: ok-node
---
apiVersion: v1
kind: Service
metadata:
  name: bad-base
spec:
  ports:
  - port: "eighty"
`;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'cli-registry-'));
  etcd = await startEtcd();
  addr = ['--kvstore-opt', `etcd.address=${etcd.endpoints.join(',')}`];
  admin = etcd.createClient();
  await Promise.all([
    writeFile(join(workDir, 'mesh.yaml'), MESH),
    writeFile(join(workDir, 'bad.yaml'), BAD),
  ]);
});

after(async () => {
  admin.close();
  await etcd.destroy();
  await rm(workDir, { recursive: true, force: true });
});

void describe('clustermesh apply/get/delete (etcd)', { concurrency: 2 }, () => {
  it('applies a manifest, gets it back and deletes it', async () => {
    const applied = await cli(['apply', '-f', 'mesh.yaml', ...addr]);
    assert.deepEqual(applied, {
      code: 0,
      stdout: 'service/rebel-base created\nciliumnode/node-1 created\nciliumnode/node-2 created\n',
      stderr: '',
    });
    const keys = await admin.getAll().prefix('registry/').keys();
    assert.deepEqual(keys.sort(), [
      'registry/ciliumnodes/node-1',
      'registry/ciliumnodes/node-2',
      'registry/services/default/rebel-base',
    ]);

    const [nodes, services] = await Promise.all([
      cli(['get', 'ciliumnodes', '-o', 'json', ...addr]),
      cli(['get', 'svc', '-n', 'default', ...addr]),
    ]);
    assert.equal(nodes.code, 0, nodes.stderr);
    const list = JSON.parse(nodes.stdout) as {
      kind: string;
      items: {
        kind: string;
        metadata: { name: string; uid: string; resourceVersion: string };
        spec: { ipam: { podCIDRs: string[] } };
      }[];
    };
    assert.equal(list.kind, 'List');
    assert.deepEqual(
      list.items.map((n) => [n.kind, n.metadata.name, n.spec.ipam.podCIDRs]),
      [
        ['CiliumNode', 'node-1', ['127.1.1.0/24']],
        ['CiliumNode', 'node-2', ['127.1.2.0/24']],
      ],
    );
    const res = await admin.kv.range({ key: Buffer.from('registry/ciliumnodes/node-1') });
    const [first] = list.items;
    assert.ok(first, 'first');
    assert.equal(first.metadata.resourceVersion, String(res.kvs[0]?.mod_revision));
    assert.match(first.metadata.uid, /^[0-9a-f-]{36}$/);

    assert.equal(services.code, 0, services.stderr);
    const lines = services.stdout.split('\n');
    assert.match(lines[0] ?? '', /^NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE$/);
    assert.match(lines[1] ?? '', /^rebel-base +ClusterIP +127\.1\.128\.20 +<none> +80\/TCP +\d+s$/);
    assert.equal(lines.length, 3);

    const deleted = await cli(['delete', '-f', 'mesh.yaml', ...addr]);
    assert.deepEqual(deleted, {
      code: 0,
      stdout:
        'service "rebel-base" deleted\nciliumnode "node-1" deleted\nciliumnode "node-2" deleted\n',
      stderr: '',
    });
    assert.deepEqual(await admin.getAll().prefix('registry/').keys(), []);
  });

  it('a bad file fails with one stderr line naming file, document and field, writing nothing', async () => {
    const [bad, fromStdin] = await Promise.all([
      cli(['apply', '-f', 'bad.yaml', ...addr]),
      cli(['apply', '-f', '-', ...addr], BAD),
    ]);
    assert.equal(bad.code, 1);
    assert.equal(bad.stdout, '');
    assert.equal(
      bad.stderr,
      'clustermesh: bad.yaml: document 2 (Service default/bad-base): spec.ports[0].port: expected number, received string\n',
    );
    assert.equal(fromStdin.code, 1);
    assert.match(
      fromStdin.stderr,
      /^clustermesh: <stdin>: document 2 \(Service default\/bad-base\): spec\.ports\[0\]\.port: [^\n]+\n$/,
    );
    // Document 1 was valid, but nothing is half-applied.
    assert.equal(await admin.get('registry/ciliumnodes/ok-node').string(), null);
  });
});
