import { existsSync } from 'node:fs';

/** Where a pod finds its ServiceAccount token. */
const SERVICE_ACCOUNT_TOKEN = '/var/run/secrets/kubernetes.io/serviceaccount/token';

/**
 * Running in a pod with a ServiceAccount: the in-cluster configuration applies. Kept apart
 * from kubeconfig.ts so the CLI can ask without importing the Kubernetes client.
 */
export function inKubernetesPod(): boolean {
  return process.env.KUBERNETES_SERVICE_HOST !== undefined && existsSync(SERVICE_ACCOUNT_TOKEN);
}
