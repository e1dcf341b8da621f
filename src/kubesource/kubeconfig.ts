import { readFileSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { inKubernetesPod } from './in-cluster.js';

function cut(s: string, n = 80): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

/**
 * The Kubernetes client configuration of `--k8s-kubeconfig-path FILE`, or the pod's
 * in-cluster configuration when the flag is absent inside a pod, as Cilium's daemons do.
 * Throws ClusterMeshError(InvalidConfig) with one line naming the file and the reason.
 */
export function loadKubeConfig(path: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (path === undefined) {
    if (!inKubernetesPod()) {
      throw new ClusterMeshError(
        ErrorCode.InvalidConfig,
        'Kubernetes mode needs --k8s-kubeconfig-path FILE outside a pod (no in-cluster service account found)',
      );
    }
    kc.loadFromCluster();
    return kc;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `--k8s-kubeconfig-path ${cut(path)}: ${errorMessage(err)}`,
    );
  }
  try {
    kc.loadFromString(text);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `--k8s-kubeconfig-path ${cut(path)}: not a kubeconfig: ${cut(errorMessage(err))}`,
    );
  }
  const cluster = kc.getCurrentCluster();
  if (cluster === null) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `--k8s-kubeconfig-path ${cut(path)}: no current context with a cluster`,
    );
  }
  try {
    const url = new URL(cluster.server);
    if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new Error('not http(s)');
  } catch {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `--k8s-kubeconfig-path ${cut(path)}: cluster ${cluster.name} has no valid server URL: ${cut(JSON.stringify(cluster.server))}`,
    );
  }
  return kc;
}
