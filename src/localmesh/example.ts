import type { RegistryObject } from '../registry/types.js';

/**
 * `clustermesh up --example rebel-base`: the seeds' global-service example. In every
 * cluster: the global Service `rebel-base` (annotation io.cilium/global-service), a
 * Deployment `rebel-base` of 2 echo servers replying with their cluster's name, and the
 * client Deployment `x-wing`. The objects live here only; `clustermesh get KIND -o yaml`
 * prints them from a running mesh.
 */

export const EXAMPLES = ['rebel-base'] as const;
export type ExampleName = (typeof EXAMPLES)[number];

export interface Example {
  /** Applied to every cluster alike (the echo reply names the cluster). */
  readonly objects: readonly RegistryObject[];
  /** The global Service (`ns/name`) every agent must balance over every cluster's backends. */
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
};

export function example(name: ExampleName): Example {
  return EXAMPLES_BY_NAME[name]();
}

const REBEL_BASE_REPLICAS = 2;

function rebelBase(): RegistryObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: 'rebel-base',
        namespace: 'default',
        annotations: { 'io.cilium/global-service': 'true' },
      },
      spec: { type: 'ClusterIP', ports: [{ port: 80 }], selector: { name: 'rebel-base' } },
    },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'rebel-base', namespace: 'default' },
      spec: {
        replicas: REBEL_BASE_REPLICAS,
        selector: { matchLabels: { name: 'rebel-base' } },
        template: {
          metadata: { labels: { name: 'rebel-base' } },
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
    {
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
    },
  ];
}
