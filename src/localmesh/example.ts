import type { RegistryObject } from '../registry/types.js';

import { derivedServiceName } from '../mcsapi/types.js';

/**
 * `clustermesh up --example rebel-base`: the seeds' global-service example. In every
 * cluster: the global Service `rebel-base` (annotation io.cilium/global-service), a
 * Deployment `rebel-base` of 2 echo servers replying with their cluster's name, and the
 * client Deployment `x-wing`. The objects live here only; `clustermesh get KIND -o yaml`
 * prints them from a running mesh.
 *
 * `--example rebel-base-mcsapi`: the same through MCS-API instead of annotations: a plain
 * Service `rebel-base-mcsapi` with its ServiceExport in every cluster, so each cluster
 * imports it and its derived Service balances over every cluster's backends.
 */

export const EXAMPLES = ['rebel-base', 'rebel-base-mcsapi'] as const;
export type ExampleName = (typeof EXAMPLES)[number];

export interface Example {
  /** Applied to every cluster alike (the echo reply names the cluster). */
  readonly objects: readonly RegistryObject[];
  /**
   * The Service (`ns/name`) every agent must balance over every cluster's backends: the
   * global Service, or the derived Service of the MCS-API import.
   */
  readonly globalService: string;
  /** Its backends per cluster, once the example's Deployments run. */
  readonly backendsPerCluster: number;
}

const EXAMPLES_BY_NAME: Readonly<Record<ExampleName, () => Example>> = {
  'rebel-base': () => ({
    objects: rebelBase(),
    globalService: 'default/rebel-base',
    backendsPerCluster: REBEL_BASE_REPLICAS,
  }),
  'rebel-base-mcsapi': () => ({
    objects: rebelBaseMcsapi(),
    globalService: `default/${derivedServiceName('default', 'rebel-base-mcsapi')}`,
    backendsPerCluster: REBEL_BASE_REPLICAS,
  }),
};

export function example(name: ExampleName): Example {
  return EXAMPLES_BY_NAME[name]();
}

const REBEL_BASE_REPLICAS = 2;

function rebelBase(): RegistryObject[] {
  return [...rebelBaseBackends('rebel-base', { 'io.cilium/global-service': 'true' }), xWing()];
}

function rebelBaseMcsapi(): RegistryObject[] {
  return [
    ...rebelBaseBackends('rebel-base-mcsapi', undefined),
    {
      apiVersion: 'multicluster.x-k8s.io/v1beta1',
      kind: 'ServiceExport',
      metadata: { name: 'rebel-base-mcsapi', namespace: 'default' },
    },
    xWing(),
  ];
}

function rebelBaseBackends(
  name: string,
  annotations: Record<string, string> | undefined,
): RegistryObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name,
        namespace: 'default',
        ...(annotations === undefined ? {} : { annotations }),
      },
      spec: { type: 'ClusterIP', ports: [{ port: 80 }], selector: { name } },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: 'default' },
      spec: {
        replicas: REBEL_BASE_REPLICAS,
        selector: { matchLabels: { name } },
        template: {
          metadata: { labels: { name } },
          spec: {
            containers: [
              {
                name: 'rebel-base',
                image: 'clustermesh/echo',
                ports: [{ containerPort: 80 }],
                env: [{ name: 'MESSAGE', value: JSON.stringify({ Galaxy: 'Alderaan' }) }],
              },
            ],
          },
        },
      },
    },
  ];
}

function xWing(): RegistryObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'x-wing', namespace: 'default' },
    spec: {
      replicas: 1,
      selector: { matchLabels: { name: 'x-wing' } },
      template: {
        metadata: { labels: { name: 'x-wing' } },
        spec: { containers: [{ name: 'x-wing', image: 'clustermesh/idle' }] },
      },
    },
  };
}
