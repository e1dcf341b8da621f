/**
 * Table responses (kubectl's columns, `-o wide` priorities, rows carrying the object's
 * metadata for `-A` and `--show-labels`), selectors, discovery negotiation and Status wording.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { aggregatedVersion, apiResourceList, wantsTable } from '../../src/kubeapi/discovery.js';
import { ResourceTable } from '../../src/kubeapi/resources.js';
import {
  matchesFields,
  matchesLabels,
  parseFieldSelector,
  parseLabelSelector,
} from '../../src/kubeapi/selectors.js';
import { ApiError, conflict, invalid, notFound } from '../../src/kubeapi/status.js';
import { tableCells, timedCells, toTable } from '../../src/kubeapi/tables.js';
import type { RegistryObject } from '../../src/registry/types.js';

const NOW = new Date('2026-12-05T10:00:00Z');

const pod: RegistryObject = {
  apiVersion: 'v1',
  kind: 'Pod',
  metadata: {
    name: 'x-wing-1',
    namespace: 'default',
    labels: { name: 'x-wing' },
    resourceVersion: '42',
    creationTimestamp: '2026-12-05T09:55:00Z',
  },
  spec: { containers: [{ name: 'c', image: 'i' }], nodeName: 'cluster1-node1' },
  status: {
    phase: 'Running',
    podIP: '127.1.1.5',
    conditions: [{ type: 'Ready', status: 'True' }],
  },
};

void describe('kubeapi tables', () => {
  void it('serves pods with kubectl columns, wide ones at priority 1, ages as text', () => {
    const t = toTable('Pod', [pod], '50', { now: NOW });
    assert.deepEqual(
      t.columnDefinitions?.map((c) => `${c.name}:${c.priority}`),
      [
        'Name:0',
        'Ready:0',
        'Status:0',
        'Restarts:0',
        'Age:0',
        'IP:1',
        'Node:1',
        'Nominated Node:1',
        'Readiness Gates:1',
      ],
    );
    assert.deepEqual(t.rows[0]?.cells, [
      'x-wing-1',
      '1/1',
      'Running',
      '0',
      '5m',
      '127.1.1.5',
      'cluster1-node1',
      '<none>',
      '<none>',
    ]);
    const defs: readonly { name: string; type: string }[] = t.columnDefinitions;
    assert.equal(
      defs.find((c) => c.name === 'Age')?.type,
      'string',
      'never a date: kubectl would print the timestamp',
    );
    assert.deepEqual(t.rows.map((r) => r.object)[0], {
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: pod.metadata,
    });
    assert.deepEqual(t.metadata, { resourceVersion: '50' });
  });

  void it('serves services and deployments with their wide selector, containers and images', () => {
    const svc: RegistryObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'rebel-base', creationTimestamp: '2026-12-05T09:00:00Z' },
      spec: {
        type: 'ClusterIP',
        clusterIP: '127.1.128.2',
        ports: [{ port: 80, protocol: 'TCP' }],
        selector: { name: 'rebel-base' },
      },
    };
    assert.deepEqual(toTable('Service', [svc], '1', { now: NOW }).rows[0]?.cells, [
      'rebel-base',
      'ClusterIP',
      '127.1.128.2',
      '<none>',
      '80/TCP',
      '60m',
      'name=rebel-base',
    ]);
    const dep: RegistryObject = {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'x-wing', creationTimestamp: '2026-12-05T09:59:30Z' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { name: 'x-wing' } },
        template: {
          spec: {
            containers: [
              { name: 'x', image: 'json-mock' },
              { name: 'y', image: 'nginx' },
            ],
          },
        },
      },
      status: { readyReplicas: 1, updatedReplicas: 2, availableReplicas: 1 },
    };
    const t = toTable('Deployment', [dep], '1', { now: NOW });
    assert.deepEqual(
      t.columnDefinitions?.map((c) => c.name),
      ['Name', 'Ready', 'Up-to-date', 'Available', 'Age', 'Containers', 'Images', 'Selector'],
    );
    assert.deepEqual(t.rows[0]?.cells, [
      'x-wing',
      '1/2',
      '2',
      '1',
      '30s',
      'x,y',
      'json-mock,nginx',
      'name=x-wing',
    ]);
  });

  void it('serves CRD kinds with their printer columns and configmaps with DATA', () => {
    const t = toTable(
      'ConfigMap',
      [{ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'cm' }, data: { a: '1', b: '2' } }],
      '1',
      { now: NOW },
    );
    assert.deepEqual(
      t.columnDefinitions?.map((c) => c.name),
      ['Name', 'Data', 'Age'],
    );
    assert.deepEqual(t.rows[0]?.cells, ['cm', '2', '<unknown>']);
    const cnp = toTable('CiliumNetworkPolicy', [], '1');
    assert.deepEqual(
      cnp.columnDefinitions?.map((c) => c.name),
      ['Name', 'Age', 'Valid'],
    );
  });
});

void describe('kubeapi selectors', () => {
  const labels = { name: 'x-wing', tier: 'front', 'app.kubernetes.io/part-of': 'rebels' };

  void it('names the cells that depend on the clock (age, restarts ago), for built-in kinds only', () => {
    const later = new Date(NOW.getTime() + 60_000);
    assert.equal(timedCells('Pod', pod, NOW), '0\u00005m');
    assert.equal(timedCells('Pod', pod, later), '0\u00006m');
    const restarted: RegistryObject = {
      ...pod,
      status: {
        containerStatuses: [
          {
            name: 'c',
            restartCount: 2,
            lastState: { terminated: { exitCode: 137, finishedAt: '2026-12-05T09:59:45Z' } },
            state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 20s' } },
          },
        ],
      },
    };
    assert.equal(timedCells('Pod', restarted, NOW), '2 (15s ago)\u00005m');
    assert.deepEqual(tableCells('Pod', restarted, NOW).slice(1, 4), [
      '0/1',
      'CrashLoopBackOff',
      '2 (15s ago)',
    ]);
    // Kinds whose printer columns come from the registry may read the clock themselves.
    assert.equal(
      timedCells(
        'CiliumIdentity',
        { ...pod, apiVersion: 'cilium.io/v2', kind: 'CiliumIdentity' },
        NOW,
      ),
      undefined,
    );
  });

  void it('parses and matches every label selector operator', () => {
    const cases: [string, boolean][] = [
      ['name=x-wing', true],
      ['name==x-wing', true],
      ['name!=x-wing', false],
      ['name=x-wing,tier=back', false],
      ['tier in (front,back)', true],
      ['tier notin (front)', false],
      ['tier notin (a,b),name', true],
      ['!missing', true],
      ['app.kubernetes.io/part-of', true],
      ['missing', false],
      ['', true],
    ];
    for (const [text, want] of cases) {
      assert.equal(matchesLabels(parseLabelSelector(text), labels), want, text);
    }
  });

  void it('answers 400 for a malformed label selector', () => {
    assert.throws(
      () => parseLabelSelector('name=x wing'),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 400 &&
        /unable to parse requirement/.test(err.message),
    );
  });

  void it('selects on metadata.name and metadata.namespace, and refuses other fields', () => {
    assert.equal(matchesFields(parseFieldSelector('metadata.name=x-wing-1', 'Pod'), pod), true);
    assert.equal(matchesFields(parseFieldSelector('metadata.name!=x-wing-1', 'Pod'), pod), false);
    assert.equal(
      matchesFields(
        parseFieldSelector('metadata.namespace==default,status.phase=Running', 'Pod'),
        pod,
      ),
      true,
    );
    assert.throws(
      () => parseFieldSelector('spec.foo=bar', 'Service'),
      (err: unknown) =>
        err instanceof ApiError &&
        err.code === 400 &&
        /field label not supported: spec\.foo/.test(err.message),
    );
  });
});

void describe('kubeapi discovery and Status', () => {
  void it('answers aggregated discovery only when asked, preferring v2', () => {
    const k132 =
      'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json';
    assert.equal(aggregatedVersion(k132), 'v2');
    assert.equal(
      aggregatedVersion(
        'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json',
      ),
      'v2beta1',
    );
    assert.equal(aggregatedVersion('application/json, */*'), undefined);
    assert.equal(wantsTable('application/json;as=Table;v=v1;g=meta.k8s.io,application/json'), true);
    assert.equal(wantsTable('application/json'), false);
  });

  void it('lists every registry kind with short names and subresources (legacy discovery)', () => {
    const table = new ResourceTable();
    const core = apiResourceList(table, '', 'v1') as {
      resources: { name: string; shortNames?: string[]; kind: string }[];
    };
    const names = core.resources.map((r) => r.name);
    for (const n of ['pods', 'pods/status', 'services', 'configmaps', 'namespaces'])
      assert.ok(names.includes(n), n);
    assert.deepEqual(core.resources.find((r) => r.name === 'services')?.shortNames, ['svc']);
    const apps = apiResourceList(table, 'apps', 'v1') as {
      resources: { name: string; kind: string; group?: string }[];
    };
    assert.deepEqual(
      apps.resources.find((r) => r.name === 'deployments/scale'),
      {
        name: 'deployments/scale',
        singularName: '',
        namespaced: true,
        group: 'autoscaling',
        version: 'v1',
        kind: 'Scale',
        verbs: ['get', 'patch', 'update'],
      },
    );
    for (const [g, v, res] of [
      ['cilium.io', 'v2', 'ciliumnetworkpolicies'],
      ['multicluster.x-k8s.io', 'v1alpha1', 'serviceexports'],
      ['multicluster.x-k8s.io', 'v1beta1', 'serviceimports'],
    ] as const) {
      assert.ok(table.find(g, v, res) !== undefined, `${g}/${v} ${res}`);
    }
  });

  void it('words errors as the Kubernetes API server does', () => {
    assert.equal(
      notFound({ resource: 'deployments', group: 'apps' }, 'nope').message,
      'deployments.apps "nope" not found',
    );
    assert.equal(
      conflict({ resource: 'configmaps', group: '' }, 'c').message,
      'Operation cannot be fulfilled on configmaps "c": the object has been modified; please apply your changes to the latest version and try again',
    );
    const bad = invalid('Service', '', 'x', [
      {
        reason: 'FieldValueInvalid',
        message: 'Invalid value: 70000: must be <= 65535',
        field: 'spec.ports[0].port',
      },
    ]).toStatus();
    assert.equal(bad.code, 422);
    assert.equal(
      bad.message,
      'Service "x" is invalid: spec.ports[0].port: Invalid value: 70000: must be <= 65535',
    );
    assert.deepEqual(bad.details?.kind, 'Service');
  });
});
