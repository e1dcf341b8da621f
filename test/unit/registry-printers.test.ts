/** `get`'s tables for the kinds the local mesh runs: where pods landed, how deployments stand. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { kindInfo } from '../../src/registry/kinds.js';
import { formatTable } from '../../src/registry/printers.js';
import type { RegistryObject } from '../../src/registry/types.js';

const NOW = new Date('2026-11-23T10:00:00Z');

function pod(name: string, status: Record<string, unknown>, nodeName?: string): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace: 'default', creationTimestamp: '2026-11-23T09:59:00Z' },
    spec: { containers: [{ name: 'c', image: 'clustermesh/echo' }], nodeName },
    status,
  };
}

void describe('registry printers', () => {
  it('serviceimports: TYPE and IP as the CRD columns print them (IP as a JSON list); serviceexports: AGE', () => {
    const si = (name: string, spec: Record<string, unknown>): RegistryObject => ({
      apiVersion: 'multicluster.x-k8s.io/v1beta1',
      kind: 'ServiceImport',
      metadata: { name, namespace: 'default', creationTimestamp: '2026-11-23T09:59:00Z' },
      spec,
    });
    assert.equal(
      formatTable(
        kindInfo('ServiceImport'),
        [
          si('rebel-base-mcsapi', { type: 'ClusterSetIP', ips: ['127.1.128.3'], ports: [] }),
          si('headless', { type: 'Headless', ports: [] }),
        ],
        { now: NOW },
      ),
      'NAME                TYPE           IP                AGE\n' +
        'rebel-base-mcsapi   ClusterSetIP   ["127.1.128.3"]   60s\n' +
        'headless            Headless       <none>            60s\n',
    );
    assert.equal(
      formatTable(
        kindInfo('ServiceExport'),
        [
          {
            apiVersion: 'multicluster.x-k8s.io/v1beta1',
            kind: 'ServiceExport',
            metadata: {
              name: 'x',
              namespace: 'default',
              creationTimestamp: '2026-11-23T09:59:00Z',
            },
          },
        ],
        { now: NOW },
      ),
      'NAME   AGE\nx      60s\n',
    );
  });

  it('pods: READY, STATUS (reason first), IP and NODE', () => {
    const text = formatTable(
      kindInfo('Pod'),
      [
        pod(
          'web-1',
          {
            phase: 'Running',
            podIP: '127.1.1.4',
            conditions: [{ type: 'Ready', status: 'True' }],
          },
          'cluster1-node1',
        ),
        pod('bad-1', { phase: 'Failed', reason: 'UnknownImage' }, 'cluster1-node2'),
      ],
      { now: NOW },
    );
    assert.deepEqual(text.trimEnd().split('\n'), [
      'NAME    READY   STATUS         IP          NODE             AGE',
      'web-1   1/1     Running        127.1.1.4   cluster1-node1   60s',
      'bad-1   0/1     UnknownImage   <none>      cluster1-node2   60s',
    ]);
  });

  it('deployments: READY ready/desired, UP-TO-DATE, AVAILABLE', () => {
    const text = formatTable(
      kindInfo('Deployment'),
      [
        {
          apiVersion: 'apps/v1',
          kind: 'Deployment',
          metadata: {
            name: 'web',
            namespace: 'default',
            creationTimestamp: '2026-11-23T09:59:00Z',
          },
          spec: { replicas: 3 },
          status: { readyReplicas: 2, updatedReplicas: 3, availableReplicas: 2 },
        },
      ],
      { now: NOW },
    );
    assert.deepEqual(text.trimEnd().split('\n'), [
      'NAME   READY   UP-TO-DATE   AVAILABLE   AGE',
      'web    2/3     3            2           60s',
    ]);
  });
});
