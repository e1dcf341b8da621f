import { readFile, readdir, rename, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { z } from 'zod';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';

/**
 * `<state-dir>/<cluster>/cluster.json`: how the mesh-setup commands (`mesh enable`,
 * `connect`, `disconnect`, `status`, `certs rotate`) find a cluster: its etcd, its
 * certificates and the clustermesh config directories its daemons watch. `up` writes one
 * per cluster; `mesh enable --clustermesh-config …` writes one for daemons started by hand.
 */
export const CLUSTER_RECORD_FILE = 'cluster.json';

const recordSchema = z.object({
  version: z.literal(1),
  name: z.string().min(1),
  id: z.number().int().positive(),
  /** The endpoint other clusters dial: `https://<cluster>.mesh.cilium.io:<port>` with TLS. */
  kvstore: z.string().min(1),
  /** The IP `<cluster>.mesh.cilium.io` maps to (host aliases). */
  etcdIP: z.string().min(1).optional(),
  tls: z.boolean(),
  /** Certificates and per-user etcd configs (TLS). */
  etcdDir: z.string().min(1).optional(),
  /** The agents' `--clustermesh-config`. */
  configDir: z.string().min(1),
  /** KVStoreMesh's `--clustermesh-config`, when the cluster runs KVStoreMesh. */
  kvstoremeshConfigDir: z.string().min(1).optional(),
  /** Agent API URLs (status asks them). */
  agents: z.array(z.object({ node: z.string(), api: z.string() })),
  /** `mesh enable` done: the remote users and certificates exist. */
  enabled: z.boolean(),
});

export type ClusterRecord = z.infer<typeof recordSchema>;

export function recordPath(stateDir: string, cluster: string): string {
  return join(resolve(stateDir), cluster, CLUSTER_RECORD_FILE);
}

export async function writeClusterRecord(stateDir: string, rec: ClusterRecord): Promise<void> {
  const path = recordPath(stateDir, rec.name);
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(rec, null, 2)}\n`);
  await rename(tmp, path);
}

export async function readClusterRecord(stateDir: string, cluster: string): Promise<ClusterRecord> {
  const path = recordPath(stateDir, cluster);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      const known = (await listClusterRecords(stateDir)).map((r) => r.name);
      throw new ClusterMeshError(
        ErrorCode.ConfigNotFound,
        `cluster ${JSON.stringify(cluster.slice(0, 80))} not found in ${resolve(stateDir)}` +
          (known.length > 0
            ? ` (clusters: ${known.join(', ')})`
            : ' (start one with "clustermesh up", or pass --state-dir)'),
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
  const parsed = recordSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `${path}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid cluster record'}`,
    );
  }
  return parsed.data;
}

/** Every cluster recorded in `stateDir`, by name. */
export async function listClusterRecords(stateDir: string): Promise<ClusterRecord[]> {
  let names: string[];
  try {
    names = await readdir(resolve(stateDir));
  } catch {
    return [];
  }
  const out: ClusterRecord[] = [];
  for (const name of names.sort()) {
    const path = recordPath(stateDir, name);
    const text = await readFile(path, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    try {
      const parsed = recordSchema.safeParse(JSON.parse(text));
      if (parsed.success) out.push(parsed.data);
    } catch {
      // Not a cluster record: skipped, as a listing should.
    }
  }
  return out;
}
