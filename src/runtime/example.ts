import type { RegistryObject } from '../registry/index.js';

/**
 * `clustermesh up --example rebel-base`: the seeds' global-service example. In every
 * cluster: the global Service `rebel-base` (annotation io.cilium/global-service), a
 * Deployment `rebel-base` of 2 echo servers replying with their cluster's name, and the
 * client Deployment `x-wing`. The same objects as YAML are in examples/rebel-base/.
 */

export const EXAMPLES = ['rebel-base'] as const;
export type ExampleName = (typeof EXAMPLES)[number];

const BUILDERS: Readonly<Record<ExampleName, () => RegistryObject[]>> = {
  'rebel-base': rebelBase,
};

/** The example's objects; the same in every cluster (the echo reply names the cluster). */
export function exampleObjects(example: ExampleName): RegistryObject[] {
  return BUILDERS[example]();
}

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
        replicas: 2,
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
