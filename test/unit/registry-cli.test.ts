import { runCliCaptured, type CapturedRun } from '../support/cli.js';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { formatAge } from '../../src/registry/printers.js';

// In-process runs with `--kvstore memory` share the process-wide `default` memory store,
// so objects applied by one run are seen by the next (the e2e test does the same on etcd).
const MEM = ['--kvstore', 'memory'];

function run(...argv: string[]): Promise<CapturedRun> {
  return runCliCaptured([...argv, ...MEM]);
}

const MANIFEST = `apiVersion: v1
kind: Service
metadata:
  name: rebel-base
  annotations:
    io.cilium/global-service: "true"
spec:
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
  - {type: InternalIP, ip: 127.1.0.1}
  - {type: CiliumInternalIP, ip: 127.1.1.1}
  ipam: {podCIDRs: [127.1.1.0/24]}
---
apiVersion: v1
kind: Service
metadata: {name: tie-fighter, namespace: empire}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30080, protocol: UDP}]
`;

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'registry-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function file(name: string, text: string): Promise<string> {
  const path = join(dir, name);
  await writeFile(path, text);
  return path;
}

void describe('clustermesh apply/get/delete (memory kvstore)', () => {
  it('applies, prints kubectl lines, and reports unchanged on re-apply', async () => {
    const path = await file('mesh.yaml', MANIFEST);
    const first = await run('apply', '-f', path);
    assert.deepEqual(first, {
      code: 0,
      stdout:
        'service/rebel-base created\nciliumnode/node-1 created\nservice/tie-fighter created\n',
      stderr: '',
    });
    const again = await run('apply', '-f', path);
    assert.equal(
      again.stdout,
      'service/rebel-base unchanged\nciliumnode/node-1 unchanged\nservice/tie-fighter unchanged\n',
    );
    const json = await run('apply', '-f', path, '-o', 'json');
    assert.deepEqual(JSON.parse(json.stdout), [
      { kind: 'Service', namespace: 'default', name: 'rebel-base', result: 'unchanged' },
      { kind: 'CiliumNode', name: 'node-1', result: 'unchanged' },
      { kind: 'Service', namespace: 'empire', name: 'tie-fighter', result: 'unchanged' },
    ]);
  });

  it('get prints kubectl-like tables, -A adds NAMESPACE', async () => {
    await run('apply', '-f', await file('get.yaml', MANIFEST));
    const svc = await run('get', 'svc');
    assert.equal(svc.code, 0);
    assert.match(
      svc.stdout,
      /^NAME {9}TYPE {8}CLUSTER-IP {5}EXTERNAL-IP {3}PORT\(S\) {3}AGE\nrebel-base {3}ClusterIP {3}127\.1\.128\.20 {3}<none> {8}80\/TCP {4}\d+s\n$/,
    );
    const all = await run('get', 'services', '-A');
    const lines = all.stdout.trimEnd().split('\n');
    assert.match(
      lines[0] ?? '',
      /^NAMESPACE +NAME +TYPE +CLUSTER-IP +EXTERNAL-IP +PORT\(S\) +AGE$/,
    );
    assert.match(lines[1] ?? '', /^default +rebel-base +ClusterIP /);
    assert.match(
      lines[2] ?? '',
      /^empire +tie-fighter +NodePort +<none> +<none> +80:30080\/UDP +\d+s$/,
    );
    const nodes = await run('get', 'cn');
    assert.match(
      nodes.stdout,
      /^NAME +CILIUMINTERNALIP +INTERNALIP +AGE\nnode-1 +127\.1\.1\.1 +127\.1\.0\.1 +\d+s\n$/,
    );
    const empty = await run('get', 'cep', '-n', 'nowhere');
    assert.deepEqual(empty, {
      code: 0,
      stdout: '',
      stderr: 'No resources found in nowhere namespace.\n',
    });
  });

  it('get -o json|yaml prints the object or a List, with server fields', async () => {
    await run('apply', '-f', await file('json.yaml', MANIFEST));
    const one = await run('get', 'CiliumNode', 'node-1', '-o', 'json');
    const obj = JSON.parse(one.stdout) as {
      kind: string;
      metadata: Record<string, unknown>;
      spec: unknown;
    };
    assert.equal(obj.kind, 'CiliumNode');
    assert.deepEqual(Object.keys(obj.metadata).sort(), [
      'creationTimestamp',
      'generation',
      'name',
      'resourceVersion',
      'uid',
    ]);
    const list = JSON.parse((await run('get', 'ciliumnodes', '-o', 'json')).stdout) as {
      kind: string;
      items: { metadata: { name: string } }[];
    };
    assert.equal(list.kind, 'List');
    assert.ok(
      list.items.some((i) => i.metadata.name === 'node-1'),
      "list.items.some((i) => i.metadata.name === 'node-1')",
    );
    const yaml = await run('get', 'svc', 'tie-fighter', '-n', 'empire', '-o', 'yaml');
    assert.match(
      yaml.stdout,
      /^apiVersion: v1\nkind: Service\nmetadata:\n {2}name: tie-fighter\n {2}namespace: empire\n/,
    );
  });

  it('fails with one line for missing objects and unknown kinds', async () => {
    assert.deepEqual(await run('get', 'svc', 'death-star'), {
      code: 1,
      stdout: '',
      stderr: 'clustermesh: services "death-star" not found\n',
    });
    const unknown = await run('get', 'gizmos');
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /^clustermesh: unknown resource type "gizmos" \(known: namespaces, services, .*\)\n$/,
    );
  });

  it('a bad document 3 of 3 writes nothing and names file, document and field', async () => {
    const path = await file(
      'half.yaml',
      MANIFEST.replace(/rebel-base/g, 'half-a')
        .replace('node-1', 'half-node')
        .replace('tie-fighter', 'half-c')
        .replace('port: 80, nodePort', 'port: "80", nodePort'),
    );
    const r = await run('apply', '-f', path);
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      `clustermesh: ${path}: document 3 (Service empire/half-c): spec.ports[0].port: expected number, received string\n`,
    );
    const keys = sharedMemoryStore('default')
      .range('registry/', undefined, 0)
      .result.kvs.map((kv) => kv.key);
    assert.ok(!keys.some((k) => k.includes('half')), keys.join(','));
  });

  it('delete -f and delete KIND NAME, with not-found handling', async () => {
    const path = await file(
      'del.yaml',
      MANIFEST.replace(/rebel-base/g, 'del-a')
        .replace('node-1', 'del-node')
        .replace('tie-fighter', 'del-c'),
    );
    await run('apply', '-f', path);
    const byFile = await run('delete', '-f', path);
    assert.deepEqual(byFile, {
      code: 0,
      stdout: 'service "del-a" deleted\nciliumnode "del-node" deleted\nservice "del-c" deleted\n',
      stderr: '',
    });
    assert.equal((await run('get', 'svc', 'del-a')).code, 1);
    const again = await run('delete', '-f', path);
    assert.deepEqual(again, {
      code: 1,
      stdout: '',
      stderr: 'clustermesh: services "del-a" not found (and 2 more)\n',
    });
    assert.equal((await run('delete', '-f', path, '--ignore-not-found')).code, 0);

    await run('apply', '-f', path);
    assert.deepEqual(await run('delete', 'svc', 'del-c', '-n', 'empire'), {
      code: 0,
      stdout: 'service "del-c" deleted\n',
      stderr: '',
    });
    assert.deepEqual(await run('delete', 'ciliumnodes', 'del-node'), {
      code: 0,
      stdout: 'ciliumnode "del-node" deleted\n',
      stderr: '',
    });
    const usage = await run('delete', 'svc');
    assert.equal(usage.code, 2);
    assert.equal(usage.stderr, 'error: resource(s) were provided, but no name was specified\n');
  });

  it('formats ages like kubectl', () => {
    const now = new Date('2026-01-10T00:00:00Z');
    const ago = (s: number): string => new Date(now.getTime() - s * 1000).toISOString();
    const cases: [number, string][] = [
      [5, '5s'],
      [119, '119s'],
      [190, '3m10s'],
      [45 * 60, '45m'],
      [5 * 3600 + 60, '5h1m'],
      [30 * 3600, '30h'],
      [3 * 86400 + 3600, '3d1h'],
      [40 * 86400, '40d'],
    ];
    for (const [s, text] of cases) assert.equal(formatAge(ago(s), now), text);
    assert.equal(formatAge(undefined, now), '<unknown>');
  });
});
