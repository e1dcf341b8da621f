import { stringify } from 'yaml';

/**
 * A kubeconfig naming one context per cluster (`cluster1`, …): the server URL, the CA that
 * signed its certificate and the bearer token. kubectl and client libraries read it as is.
 */

export interface KubeconfigCluster {
  /** Context, cluster and user names derive from it. */
  readonly name: string;
  readonly server: string;
  readonly caPem: string;
  readonly token: string;
  /** The context's default namespace (default `default`). */
  readonly namespace?: string | undefined;
}

export function kubeconfigYaml(
  clusters: readonly KubeconfigCluster[],
  current: string | undefined = clusters[0]?.name,
): string {
  const doc = {
    apiVersion: 'v1',
    kind: 'Config',
    preferences: {},
    clusters: clusters.map((c) => ({
      name: c.name,
      cluster: {
        server: c.server,
        'certificate-authority-data': Buffer.from(c.caPem).toString('base64'),
      },
    })),
    users: clusters.map((c) => ({ name: `${c.name}-admin`, user: { token: c.token } })),
    contexts: clusters.map((c) => ({
      name: c.name,
      context: { cluster: c.name, user: `${c.name}-admin`, namespace: c.namespace ?? 'default' },
    })),
    'current-context': current ?? '',
  };
  return stringify(doc);
}
