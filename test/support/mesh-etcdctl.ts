import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { clusterCertFiles } from '../../src/certs/cluster.js';
import type { MeshStateCluster } from '../../src/localmesh/mesh-state.js';

const run = promisify(execFile);

/**
 * The real etcdctl against a cluster of `clustermesh up`, as that cluster's admin: over
 * TLS with the admin client certificate when the mesh is secure, plain otherwise. It dials
 * the etcd's IP (the server certificate covers it) rather than `<cluster>.mesh.cilium.io`,
 * which resolves only through the mesh's host aliases.
 */
export async function meshEtcdctl(c: MeshStateCluster, args: readonly string[]): Promise<string> {
  const flags: string[] = [];
  if (c.etcdDir !== undefined && c.etcdIP !== undefined) {
    const port = new URL(c.kvstore).port;
    const files = clusterCertFiles(c.etcdDir, c.name);
    flags.push(
      `--endpoints=https://${c.etcdIP}:${port}`,
      `--cacert=${files.caFile}`,
      `--cert=${files.clients.admin.certFile}`,
      `--key=${files.clients.admin.keyFile}`,
    );
  } else {
    flags.push(`--endpoints=${c.kvstore}`);
  }
  const r = await run('etcdctl', [...flags, ...args], {
    env: { ...process.env, ETCDCTL_API: '3' },
  });
  return r.stdout;
}
