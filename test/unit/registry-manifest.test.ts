import assert from 'node:assert/strict';
import { mkdtemp, mkdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { loadManifests, parseManifest } from '../../src/registry/manifest.js';

const SERVICE = `apiVersion: v1
kind: Service
metadata:
  name: rebel-base
  annotations:
    io.cilium/global-service: "true"
spec:
  type: ClusterIP
  ports:
  - port: 80
  selector:
    name: rebel-base
`;

const NODE = `apiVersion: cilium.io/v2
kind: CiliumNode
metadata:
  name: node-1
spec:
  addresses:
  - {type: InternalIP, ip: 127.1.0.1}
`;

/** Asserts a one-line ERR_INVALID_ARGUMENT with exactly this message. */
function rejects(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(isClusterMeshError(e, ErrorCode.InvalidArgument), String(e));
    assert.ok(!e.message.includes('\n'), e.message);
    if (typeof message === 'string') assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'registry-manifest-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('registry manifests', () => {
  it('reads multi-document YAML with document indexes, skipping empty documents', () => {
    const objs = parseManifest(`---\n${SERVICE}---\n---\n${NODE}---\n`, 'rebel.yaml');
    assert.deepEqual(
      objs.map((o) => [o.info.kind, o.object.metadata.name, o.source, o.document]),
      [
        ['Service', 'rebel-base', 'rebel.yaml', 1],
        ['CiliumNode', 'node-1', 'rebel.yaml', 3],
      ],
    );
  });

  it('names file, document, object, field and reason in one line', () => {
    const bad = SERVICE.replace(
      'name: rebel-base\n  annotations',
      'name: rebel-base\n  namespace: default\n  annotations',
    ).replace('port: 80', 'port: "80"');
    rejects(
      () => parseManifest(`${NODE}---\n${bad}`, 'rebel.yaml'),
      'rebel.yaml: document 2 (Service default/rebel-base): spec.ports[0].port: expected number, received string',
    );
    rejects(
      () => parseManifest('apiVersion: v1\nkind: Gizmo\nmetadata: {name: g}\n', 'x.yaml'),
      /^x\.yaml: document 1 \(Gizmo g\): kind: unknown kind "Gizmo" \(known: /,
    );
    rejects(
      () => parseManifest('just text\n', 'x.yaml'),
      'x.yaml: document 1: expected a mapping (object), received string',
    );
  });

  it('reports YAML syntax errors with file and line', () => {
    rejects(
      () =>
        parseManifest(
          `${NODE}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: x\n spec: {\n`,
          'bad.yaml',
        ),
      /^bad\.yaml: document 2: line 13, column \d+: invalid YAML: /,
    );
    rejects(
      () => parseManifest('a: 1\na: 2\n', 'dup.yaml'),
      /^dup\.yaml: document 1: line 2, column 1: invalid YAML: Map keys must be unique/,
    );
  });

  it('flattens kind: List and typed lists, numbering items', () => {
    const list = JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'prod' } },
        { apiVersion: 'v1', kind: 'Service', metadata: { name: 'a', namespace: 'prod' } },
      ],
    });
    const objs = parseManifest(list, 'list.json');
    assert.deepEqual(
      objs.map((o) => [o.info.kind, o.document, o.item]),
      [
        ['Namespace', 1, 1],
        ['Service', 1, 2],
      ],
    );
    rejects(
      () =>
        parseManifest(
          'apiVersion: v1\nkind: ServiceList\nitems:\n- {apiVersion: v1, kind: Service, metadata: {name: a}, spec: {ports: [{port: 0}]}}\n',
          'l.yaml',
        ),
      'l.yaml: document 1, item 1 (Service default/a): spec.ports[0].port: must be >= 1, received 0',
    );
  });

  it('loads a directory in name order, files and stdin; validates everything first', async () => {
    const d = join(dir, 'manifests');
    await mkdir(d);
    await writeFile(join(d, 'b-node.yml'), NODE);
    await writeFile(join(d, 'a-svc.yaml'), SERVICE);
    await writeFile(join(d, 'README.md'), 'not a manifest');
    const objs = await loadManifests([d, '-'], {
      readStdin: () =>
        Promise.resolve('{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"prod"}}'),
    });
    assert.deepEqual(
      objs.map((o) => [o.source, o.object.metadata.name]),
      [
        [join(d, 'a-svc.yaml'), 'rebel-base'],
        [join(d, 'b-node.yml'), 'node-1'],
        ['<stdin>', 'prod'],
      ],
    );
    await writeFile(
      join(d, 'c-bad.yaml'),
      `${NODE}---\n${NODE}---\n${NODE.replace('127.1.0.1', 'nope')}`,
    );
    await assert.rejects(loadManifests([d]), (e: unknown) => {
      assert.ok(
        isClusterMeshError(e, ErrorCode.InvalidArgument),
        'isClusterMeshError(e, ErrorCode.InvalidArgument)',
      );
      assert.equal(
        e.message,
        `${join(d, 'c-bad.yaml')}: document 3 (CiliumNode node-1): spec.addresses[0].ip: must be a valid IP address, received "nope"`,
      );
      return true;
    });
    await assert.rejects(
      loadManifests([join(dir, 'missing.yaml')]),
      /the path ".*missing\.yaml" does not exist/,
    );
  });

  it('identity-only validation locates objects that would not validate in full', () => {
    const bad = SERVICE.replace('port: 80', 'port: "80"');
    const [obj] = parseManifest(bad, 's.yaml', { identityOnly: true });
    assert.equal(obj?.object.metadata.namespace, 'default');
    rejects(
      () =>
        parseManifest('apiVersion: v1\nkind: Service\nmetadata: {name: Bad}\n', 's.yaml', {
          identityOnly: true,
        }),
      /^s\.yaml: document 1 \(Service default\/Bad\): metadata\.name: must be a lowercase RFC 1035 label/,
    );
  });
});
