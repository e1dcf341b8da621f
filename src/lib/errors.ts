/**
 * Every error the project raises on purpose carries a stable `code`, so callers
 * branch on codes (never on messages) and the CLI can print one line without a stack.
 */
export const ErrorCode = {
  InvalidArgument: 'ERR_INVALID_ARGUMENT',
  InvalidConfig: 'ERR_INVALID_CONFIG',
  ConfigNotFound: 'ERR_CONFIG_NOT_FOUND',
  KvstoreUnreachable: 'ERR_KVSTORE_UNREACHABLE',
  KvstoreTls: 'ERR_KVSTORE_TLS',
  KvstoreClosed: 'ERR_KVSTORE_CLOSED',
  KvstoreOperation: 'ERR_KVSTORE_OPERATION',
  EtcdClusterIdMismatch: 'ERR_ETCD_CLUSTER_ID_MISMATCH',
  Compacted: 'ERR_KVSTORE_COMPACTED',
  LeaseLost: 'ERR_KVSTORE_LEASE_LOST',
  KeyNotFound: 'ERR_KEY_NOT_FOUND',
  /** Optimistic-concurrency failure or create of an existing object (registry). */
  Conflict: 'ERR_CONFLICT',
  InvalidEntry: 'ERR_INVALID_ENTRY',
  Aborted: 'ERR_ABORTED',
  Timeout: 'ERR_TIMEOUT',
  /** The etcd binary `up` and the tests run is not installed (or not executable). */
  EtcdNotFound: 'ERR_ETCD_NOT_FOUND',
  /** `mesh connect` on a cluster where `mesh enable` has not run (no remote users yet). */
  ClustermeshNotEnabled: 'ERR_CLUSTERMESH_NOT_ENABLED',
  /** `mesh status --wait` gave up: not every agent is connected to every remote in time. */
  ClustermeshNotReady: 'ERR_CLUSTERMESH_NOT_READY',
  /** A node's agent API did not answer (exec asks it for the pod's egress verdict). */
  AgentUnreachable: 'ERR_AGENT_UNREACHABLE',
  /** A cluster's Kubernetes API server could not listen on its address (port in use). */
  KubeApiListen: 'ERR_KUBEAPI_LISTEN',
  /** Kubernetes mode: the API server did not answer a list, or answered with an error. */
  KubeApiUnreachable: 'ERR_KUBEAPI_UNREACHABLE',
  /** Kubernetes mode: the API server refused a request (RBAC); the message names the permission. */
  KubeApiForbidden: 'ERR_KUBEAPI_FORBIDDEN',
  /** The cluster refused an external workload's registration (the reason follows). */
  ExternalWorkloadRefused: 'ERR_EXTERNAL_WORKLOAD_REFUSED',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export class ClusterMeshError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClusterMeshError';
    this.code = code;
  }
}

export function isClusterMeshError(err: unknown, code?: ErrorCode): err is ClusterMeshError {
  return err instanceof ClusterMeshError && (code === undefined || err.code === code);
}

/** A short, single-line description of any thrown value, for logs and CLI output. */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message.split('\n')[0] ?? err.name;
  return String(err);
}

/** Any thrown value as an Error, so it can be an abort reason and a status text. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}
