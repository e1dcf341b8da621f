/**
 * Strategic merge patch as kubectl's client-side apply sends it, and the JSON merge patch
 * of annotate/label/scale: a re-apply must never lose a field the registry stores.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  jsonMergePatch,
  patchSchemaOf,
  strategicMergePatch,
  type Json,
} from '../../src/kubeapi/smp.js';

const deployment = (): Json => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'd', namespace: 'default', labels: { a: '1' }, finalizers: ['x'] },
  spec: {
    replicas: 2,
    template: {
      metadata: { labels: { name: 'd' } },
      spec: {
        containers: [
          {
            name: 'a',
            image: 'a:1',
            env: [
              { name: 'X', value: 'x' },
              { name: 'Y', value: 'y' },
            ],
            ports: [{ containerPort: 80 }, { containerPort: 81 }],
            volumeMounts: [{ name: 'v1', mountPath: '/data' }],
          },
          { name: 'b', image: 'b:1' },
        ],
        volumes: [{ name: 'v1', emptyDir: {} }],
      },
    },
  },
});

const smp = (orig: Json, patch: Json): Json =>
  strategicMergePatch(orig, patch, patchSchemaOf('Deployment'));

void describe('strategic merge patch', () => {
  void it('applies the patch kubectl sends when a manifest drops an env var, a port, a container and swaps a volume source', () => {
    // The body kubectl 1.32 sent for that change, as captured.
    const patch: Json = {
      spec: {
        template: {
          spec: {
            '$setElementOrder/containers': [{ name: 'a' }],
            '$setElementOrder/volumes': [{ name: 'v1' }],
            containers: [
              {
                name: 'a',
                image: 'a:2',
                '$setElementOrder/env': [{ name: 'Y' }],
                env: [{ $patch: 'delete', name: 'X' }],
                '$setElementOrder/ports': [{ containerPort: 81 }],
                ports: [{ $patch: 'delete', containerPort: 80 }],
              },
              { $patch: 'delete', name: 'b' },
            ],
            volumes: [
              {
                $retainKeys: ['configMap', 'name'],
                configMap: { name: 'cm' },
                emptyDir: null,
                name: 'v1',
              },
            ],
          },
        },
      },
    };
    const out = smp(deployment(), patch) as { spec: { template: { spec: unknown } } };
    assert.deepEqual(out.spec.template.spec, {
      containers: [
        {
          name: 'a',
          image: 'a:2',
          env: [{ name: 'Y', value: 'y' }],
          ports: [{ containerPort: 81 }],
          volumeMounts: [{ name: 'v1', mountPath: '/data' }],
        },
      ],
      volumes: [{ name: 'v1', configMap: { name: 'cm' } }],
    });
  });

  void it('keeps every field the patch does not name (a changed replicas count and label)', () => {
    const out = smp(deployment(), {
      metadata: { labels: { x: 'z' } },
      spec: { replicas: 3 },
    }) as Record<string, Record<string, unknown>>;
    const expected = deployment() as Record<string, Record<string, unknown>>;
    assert.deepEqual(out.metadata?.labels, { a: '1', x: 'z' });
    assert.equal(out.spec?.replicas, 3);
    assert.deepEqual(out.spec.template, expected.spec?.template, 'the pod template is untouched');
  });

  void it('merges list items on their merge key and appends new ones', () => {
    const out = smp(deployment(), {
      spec: {
        template: {
          spec: {
            containers: [
              { name: 'b', env: [{ name: 'Z', value: 'z' }] },
              { name: 'c', image: 'c:1' },
            ],
          },
        },
      },
    }) as {
      spec: {
        template: { spec: { containers: { name: string; image: string; env?: unknown }[] } };
      };
    };
    const cs = out.spec.template.spec.containers;
    assert.deepEqual(
      cs.map((c) => `${c.name}:${c.image}`),
      ['a:a:1', 'b:b:1', 'c:c:1'],
    );
    assert.deepEqual(cs[1]?.env, [{ name: 'Z', value: 'z' }]);
  });

  void it('orders a merged list by $setElementOrder, keeping items it does not name after the named ones', () => {
    const out = smp(deployment(), {
      spec: {
        template: { spec: { '$setElementOrder/containers': [{ name: 'b' }, { name: 'a' }] } },
      },
    }) as { spec: { template: { spec: { containers: { name: string }[] } } } };
    assert.deepEqual(
      out.spec.template.spec.containers.map((c) => c.name),
      ['b', 'a'],
    );
  });

  void it('treats lists without a merge key as atomic (command, args)', () => {
    const orig: Json = {
      spec: {
        template: { spec: { containers: [{ name: 'a', image: 'i', command: ['x', 'y'] }] } },
      },
    };
    const out = smp(orig, {
      spec: { template: { spec: { containers: [{ name: 'a', command: ['z'] }] } } },
    }) as { spec: { template: { spec: { containers: { command: string[] }[] } } } };
    assert.deepEqual(out.spec.template.spec.containers[0]?.command, ['z']);
  });

  void it('merges primitive sets (finalizers) and removes with $deleteFromPrimitiveList', () => {
    const added = smp(deployment(), { metadata: { finalizers: ['y', 'x'] } }) as {
      metadata: { finalizers: string[] };
    };
    assert.deepEqual(added.metadata.finalizers, ['x', 'y']);
    const removed = smp(added, {
      metadata: { '$deleteFromPrimitiveList/finalizers': ['x'] },
    }) as {
      metadata: { finalizers: string[] };
    };
    assert.deepEqual(removed.metadata.finalizers, ['y']);
  });

  void it('replaces a map or a list with $patch: replace and deletes keys set to null', () => {
    const out = smp(deployment(), {
      metadata: { labels: { $patch: 'replace', only: 'me' } },
      spec: {
        replicas: null,
        template: { spec: { volumes: [{ $patch: 'replace' }, { name: 'new', emptyDir: {} }] } },
      },
    }) as {
      metadata: { labels: unknown };
      spec: Record<string, unknown> & { template: { spec: { volumes: unknown } } };
    };
    assert.deepEqual(out.metadata.labels, { only: 'me' });
    assert.equal('replicas' in out.spec, false);
    assert.deepEqual(out.spec.template.spec.volumes, [{ name: 'new', emptyDir: {} }]);
  });

  void it('merges Service ports on port and pod conditions on type', () => {
    const svc: Json = {
      spec: {
        ports: [
          { port: 80, name: 'http' },
          { port: 443, name: 'https' },
        ],
      },
    };
    const out = strategicMergePatch(
      svc,
      { spec: { ports: [{ port: 443, targetPort: 8443 }] } },
      patchSchemaOf('Service'),
    ) as {
      spec: { ports: unknown[] };
    };
    assert.deepEqual(out.spec.ports, [
      { port: 80, name: 'http' },
      { port: 443, name: 'https', targetPort: 8443 },
    ]);
    const pod: Json = {
      status: {
        conditions: [
          { type: 'Ready', status: 'False' },
          { type: 'PodScheduled', status: 'True' },
        ],
      },
    };
    const ready = strategicMergePatch(
      pod,
      { status: { conditions: [{ type: 'Ready', status: 'True' }] } },
      patchSchemaOf('Pod'),
    ) as {
      status: { conditions: unknown[] };
    };
    assert.deepEqual(ready.status.conditions, [
      { type: 'Ready', status: 'True' },
      { type: 'PodScheduled', status: 'True' },
    ]);
  });

  void it('refuses a list item without its merge key and an unknown directive (400)', () => {
    assert.throws(
      () => smp(deployment(), { spec: { template: { spec: { containers: [{ image: 'x' }] } } } }),
      /does not contain declared merge key: name/,
    );
    assert.throws(
      () => smp(deployment(), { spec: { $patch: 'explode' } }),
      /Unknown patch type: "explode"/,
    );
  });
});

void describe('JSON merge patch', () => {
  void it('merges maps, replaces lists and deletes keys set to null (RFC 7386)', () => {
    assert.deepEqual(
      jsonMergePatch(
        { metadata: { annotations: { a: '1', b: '2' } }, spec: { ports: [1, 2] } },
        { metadata: { annotations: { a: null, c: '3' } }, spec: { ports: [3] } },
      ),
      { metadata: { annotations: { b: '2', c: '3' } }, spec: { ports: [3] } },
    );
  });
});
