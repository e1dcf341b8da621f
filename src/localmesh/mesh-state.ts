import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { DEFAULT_STATE_DIR } from './state-dir.js';

/**
 * `<state-dir>/mesh.json`: how the CLI finds a running `clustermesh up` (its clusters'
 * kvstores and DNS servers, every agent's API, the control API that applies manifests
 * when the kvstore lives in the `up` process). Written by `up` once the mesh is ready,
 * removed when it stops. Stable: scripts and tests read it.
 */

export const STATE_FILE = 'mesh.json';

const agentSchema = z.object({
  node: z.string().min(1),
  /** The node IP (`127.c.0.n`). */
  ip: z.string().min(1),
  podCIDR: z.string().min(1),
  /** `http://ip:port` of the agent API. */
  api: z.string().min(1),
});

const clusterSchema = z.object({
  name: z.string().min(1),
  id: z.number().int().positive(),
  /**
   * etcd client URL (`https://<cluster>.mesh.cilium.io:<port>` with TLS), or
   * `memory://<store>` (reachable through `control` only).
   */
  kvstore: z.string().min(1),
  /** With TLS: the admin's etcd client config (certificates, host alias beside it). */
  kvstoreConfig: z.string().min(1).optional(),
  /** With TLS: the directory of the cluster's CA, certificates and per-user configs. */
  etcdDir: z.string().min(1).optional(),
  /** The address `<cluster>.mesh.cilium.io` stands for. */
  etcdIP: z.string().min(1).optional(),
  /** `ip:port` of the cluster's DNS server. */
  dns: z.string().min(1),
  podCIDR: z.string().min(1),
  serviceCIDR: z.string().min(1),
  /** Where the cluster's VMs live (`127.c.250.0/24`); absent in older files. */
  vmCIDR: z.string().min(1).optional(),
  /** The cluster's clustermesh-apiserver: `http://ip:port` of its health and metrics servers. */
  apiserver: z
    .object({ health: z.string().min(1), metrics: z.string().min(1).optional() })
    .optional(),
  agents: z.array(agentSchema),
});

const stateSchema = z.object({
  version: z.literal(1),
  pid: z.number().int().positive(),
  startedAt: z.string(),
  kvstore: z.enum(['etcd', 'memory']),
  kvstoremesh: z.boolean(),
  /** `up --k8s-mode`: the daemons read (and the operators write) through the Kubernetes APIs. */
  k8sMode: z.boolean().optional(),
  /** etcd with TLS, client certificates and users (absent in files of older versions: false). */
  tls: z.boolean().optional(),
  /** Whether `up` meshed the clusters (false with --no-connect). */
  connected: z.boolean().optional(),
  /** `http://127.0.0.1:port` of the control API (registry access, pod lookups). */
  control: z.string().min(1),
  /** `<state-dir>/kubeconfig`: one kubectl context per cluster (`cluster1`, …). */
  kubeconfig: z.string().min(1).optional(),
  /** `http://127.0.0.1:port` of the browser view (`clustermesh ui`); absent in older files. */
  ui: z.string().min(1).optional(),
  clusters: z.array(clusterSchema),
});

export type MeshStateAgent = z.infer<typeof agentSchema>;
export type MeshStateCluster = z.infer<typeof clusterSchema>;
export type MeshState = z.infer<typeof stateSchema>;

export function stateFile(dir: string): string {
  return join(resolve(dir), STATE_FILE);
}

/** Reads and validates mesh.json; a one-line error when no mesh runs there. */
export async function readMeshState(dir: string = DEFAULT_STATE_DIR): Promise<MeshState> {
  const path = stateFile(dir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ClusterMeshError(
        ErrorCode.ConfigNotFound,
        `no running mesh: ${path} not found (start one with "clustermesh up", or pass --state-dir)`,
      );
    }
    throw new ClusterMeshError(ErrorCode.InvalidConfig, `${path}: ${errorMessage(err)}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ClusterMeshError(ErrorCode.InvalidConfig, `${path}: ${errorMessage(err)}`);
  }
  const parsed = stateSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const where = issue === undefined ? '' : `${issue.path.join('.')}: ${issue.message}`;
    throw new ClusterMeshError(ErrorCode.InvalidConfig, `${path}: invalid mesh state (${where})`);
  }
  return parsed.data;
}

/**
 * `--kvstore-opt` values that reach `cluster`'s kvstore as its admin: the TLS config file when
 * there is one, else the plain address.
 */
export function kvstoreOptsOf(cluster: MeshStateCluster): string[] {
  return cluster.kvstoreConfig !== undefined
    ? [`etcd.config=${cluster.kvstoreConfig}`]
    : [`etcd.address=${cluster.kvstore}`];
}

/** The cluster named `name`, or a one-line error listing the mesh's clusters. */
export function clusterOf(state: MeshState, name: string): MeshStateCluster {
  const c = state.clusters.find((x) => x.name === name);
  if (c === undefined) {
    const known = state.clusters.map((x) => x.name).join(', ');
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `cluster ${JSON.stringify(name)} is not part of the running mesh (clusters: ${known})`,
    );
  }
  return c;
}

/** An agent of the mesh, named as `cluster/node` (what `up` prints and errors list). */
export interface MeshAgentRef {
  readonly cluster: MeshStateCluster;
  readonly agent: MeshStateAgent;
  readonly label: string;
}

/**
 * The agent named by `ref` (`CLUSTER/NODE`, or a node name alone: node names are unique
 * across the mesh), or the first agent of the first cluster when `ref` is undefined. A
 * one-line error lists the valid nodes otherwise.
 */
export function agentOf(state: MeshState, ref?: string): MeshAgentRef {
  const all = state.clusters.flatMap((cluster) =>
    cluster.agents.map((agent) => ({ cluster, agent, label: `${cluster.name}/${agent.node}` })),
  );
  if (ref === undefined) {
    const first = all[0];
    if (first === undefined) {
      throw new ClusterMeshError(ErrorCode.ConfigNotFound, 'the running mesh lists no agents');
    }
    return first;
  }
  const found = all.find((a) => a.label === ref || a.agent.node === ref);
  if (found === undefined) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `node ${JSON.stringify(ref)} is not part of the running mesh (nodes: ${all.map((a) => a.label).join(', ')})`,
    );
  }
  return found;
}
