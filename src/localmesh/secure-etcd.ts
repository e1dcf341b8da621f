import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  USER_ROLES,
  clusterCertFiles,
  meshHostname,
  writeClusterCerts,
  type ClusterCertFiles,
  type UserRole,
} from '../certs/index.js';
import type { Etcd3 } from 'etcd3';
import { createEtcdClient, startEtcd, type EtcdServer } from '../etcd/index.js';
import {
  applyEtcdAuthPlan,
  etcdAdminPlan,
  etcdAuthPlan,
  etcdMeshPlan,
  initEtcdAuth,
} from '../etcd/users.js';
import { formatEtcdConfig } from '../kvstore/config.js';
import { HOST_ALIASES_FILE, formatHostAliases } from '../kvstore/host-aliases.js';

/**
 * A cluster's etcd as the clustermesh-apiserver pod runs it: TLS with a server certificate
 * for `*.mesh.cilium.io`, client certificate authentication, and the users and roles of
 * Cilium's etcdinit created before anything else connects. The cluster's directory then
 * holds its certificates (src/certs layout), `hostaliases.yaml` mapping
 * `<cluster>.mesh.cilium.io` to the etcd's address, and one etcd client config per user
 * (`admin.yaml`, `remote.yaml`, `local.yaml`, `externalworkload.yaml`) naming the endpoint
 * `https://<cluster>.mesh.cilium.io:<port>`.
 */

/** Cilium's clustermesh-apiserver etcd port. */
export const ETCD_PORT = 2379;

export interface PemCredentials {
  readonly ca: string;
  readonly cert: string;
  readonly key: string;
}

export interface EtcdAccess {
  readonly etcd: EtcdServer;
  /** `https://<cluster>.mesh.cilium.io:<port>`. */
  readonly url: string;
  readonly files: ClusterCertFiles;
  /** The etcd client config of each user. */
  readonly configs: Readonly<Record<UserRole, string>>;
  /** The CA and the client certificate and key of `user`, as PEM. */
  credentials(user: UserRole): Promise<PemCredentials>;
}

export interface SecureEtcdOptions {
  readonly cluster: string;
  /** Certificates, configs and aliases go here (created). */
  readonly dir: string;
  /** Loopback address etcd listens on: what `<cluster>.mesh.cilium.io` maps to. */
  readonly host: string;
  readonly port: number;
  /**
   * Also create what other clusters need (`remote`, `local`, `externalworkload` users and
   * certificates), as `mesh enable` does later otherwise. Default true.
   */
  readonly enable?: boolean | undefined;
}

export function userConfigPath(dir: string, role: UserRole): string {
  return join(dir, `${role}.yaml`);
}

/** Writes the per-user client configs and the host alias of a cluster's etcd directory. */
export async function writeAccessFiles(
  dir: string,
  cluster: string,
  host: string,
  port: number,
  roles: readonly UserRole[] = USER_ROLES,
): Promise<{ url: string; configs: Record<UserRole, string> }> {
  const files = clusterCertFiles(dir, cluster);
  const name = meshHostname(cluster);
  const url = `https://${name}:${port}`;
  await writeFile(
    join(dir, HOST_ALIASES_FILE),
    formatHostAliases([{ ip: host, hostnames: [name] }]),
  );
  const configs = {} as Record<UserRole, string>;
  for (const role of USER_ROLES) configs[role] = userConfigPath(dir, role);
  for (const role of roles) {
    const path = userConfigPath(dir, role);
    await writeFile(
      path,
      formatEtcdConfig({
        endpoints: [url],
        trustedCaFile: files.caFile,
        certFile: files.clients[role].certFile,
        keyFile: files.clients[role].keyFile,
      }),
    );
  }
  return { url, configs };
}

export async function readCredentials(
  files: ClusterCertFiles,
  role: UserRole,
): Promise<PemCredentials> {
  const [ca, cert, key] = await Promise.all([
    readFile(files.caFile, 'utf8'),
    readFile(files.clients[role].certFile, 'utf8'),
    readFile(files.clients[role].keyFile, 'utf8'),
  ]);
  return { ca, cert, key };
}

export async function startSecureEtcd(opts: SecureEtcdOptions): Promise<EtcdAccess> {
  const enable = opts.enable !== false;
  const files = await writeClusterCerts(opts.dir, {
    cluster: opts.cluster,
    addresses: [opts.host],
    roles: enable ? USER_ROLES : ['admin'],
  });
  const admin = files.clients.admin;
  const etcd = await startEtcd({
    name: opts.cluster,
    clientHost: opts.host,
    clientPort: opts.port,
    tlsServerName: meshHostname(opts.cluster),
    tls: {
      caFile: files.caFile,
      serverCertFile: files.server.certFile,
      serverKeyFile: files.server.keyFile,
      // Health probes and the auth setup below go as admin (root role).
      clientCertFile: admin.certFile,
      clientKeyFile: admin.keyFile,
    },
  });
  try {
    const name = meshHostname(opts.cluster);
    // Dialled by IP, verified by name: TLS must not be sent an IP as server name.
    const client = etcd.createClient({
      grpcOptions: { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name },
    });
    try {
      await initEtcdAuth(client, enable ? etcdAuthPlan(opts.cluster) : etcdAdminPlan(opts.cluster));
    } finally {
      client.close();
    }
    const { url, configs } = await writeAccessFiles(
      opts.dir,
      opts.cluster,
      opts.host,
      opts.port,
      enable ? USER_ROLES : ['admin'],
    );
    return {
      etcd,
      url,
      files,
      configs,
      credentials: (role) => readCredentials(files, role),
    };
  } catch (err) {
    await etcd.destroy();
    throw err;
  }
}

/**
 * `mesh enable` on a cluster whose etcd already runs with TLS and auth: issues the
 * `remote`, `local` and `externalworkload` certificates from its CA, creates those roles and
 * users (as the cluster's admin), and writes their client configs. Idempotent.
 */
export async function enableSecureEtcd(opts: {
  readonly cluster: string;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
}): Promise<void> {
  const roles: UserRole[] = ['remote', 'local', 'externalworkload'];
  await writeClusterCerts(opts.dir, {
    cluster: opts.cluster,
    addresses: [opts.host],
    roles,
    server: false,
  });
  const client = adminClient(
    opts.cluster,
    opts.host,
    opts.port,
    await readCredentials(clusterCertFiles(opts.dir, opts.cluster), 'admin'),
  );
  try {
    await applyEtcdAuthPlan(client, etcdMeshPlan(opts.cluster));
  } finally {
    client.close();
  }
  await writeAccessFiles(opts.dir, opts.cluster, opts.host, opts.port, roles);
}

/** A raw etcd3 client as the cluster's admin, dialled by IP and verified by mesh name. */
export function adminClient(
  cluster: string,
  host: string,
  port: number,
  creds: PemCredentials,
): Etcd3 {
  const name = meshHostname(cluster);
  return createEtcdClient(
    { endpoints: [`https://${host}:${port}`], tls: creds },
    { grpcOptions: { 'grpc.ssl_target_name_override': name, 'grpc.default_authority': name } },
  );
}
