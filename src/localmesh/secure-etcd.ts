import { readFile, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  USER_ROLES,
  clusterCertFiles,
  meshHostname,
  readCertificateInfo,
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
import { HeartbeatPath } from '../keyspace/index.js';
import { withTimeout } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { formatEtcdConfig } from '../kvstore/config.js';
import { EtcdBackend } from '../kvstore/etcd.js';
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

/**
 * An etcd and daemons started by hand (not by `up`): the cluster's certificate directory,
 * laid out as `up` lays it out, and what to start them with.
 */
export interface HandStartedEtcd {
  readonly cluster: string;
  readonly dir: string;
  /** The IP etcd listens on: what `<cluster>.mesh.cilium.io` maps to. */
  readonly host: string;
  readonly port: number;
  /** `https://<cluster>.mesh.cilium.io:<port>`: what other clusters dial. */
  readonly url: string;
  readonly files: ClusterCertFiles;
  readonly configs: Readonly<Record<UserRole, string>>;
  /** The TLS flags etcd must be started with (besides its own name and data dir). */
  readonly etcdFlags: readonly string[];
  /** What the cluster's own daemons (apiserver, KVStoreMesh, agents) are started with. */
  readonly daemonFlags: readonly string[];
  readonly caNotAfter: Date;
}

function hostPort(host: string, port: number): string {
  return `${isIP(host) === 6 ? `[${host}]` : host}:${port}`;
}

/**
 * `clustermesh certs create` and the first half of `mesh enable` for a hand-started etcd:
 * the CA, server and client certificates (the ones already there are kept, so running it
 * again against a live etcd changes nothing), the per-user client configs and the host
 * alias, in `dir`.
 */
export async function prepareHandStartedEtcd(opts: {
  readonly cluster: string;
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly validityDays?: number | undefined;
}): Promise<HandStartedEtcd> {
  const files = await writeClusterCerts(opts.dir, {
    cluster: opts.cluster,
    addresses: [opts.host],
    keepExisting: true,
    validityDays: opts.validityDays,
  });
  const { url, configs } = await writeAccessFiles(opts.dir, opts.cluster, opts.host, opts.port);
  const listen = `https://${hostPort(opts.host, opts.port)}`;
  const ca = await readCertificateInfo(files.caFile);
  return {
    cluster: opts.cluster,
    dir: opts.dir,
    host: opts.host,
    port: opts.port,
    url,
    files,
    configs,
    etcdFlags: [
      `--listen-client-urls=${listen}`,
      `--advertise-client-urls=${listen}`,
      '--client-cert-auth',
      `--trusted-ca-file=${files.caFile}`,
      `--cert-file=${files.server.certFile}`,
      `--key-file=${files.server.keyFile}`,
    ],
    daemonFlags: [`--kvstore-opt`, `etcd.config=${configs.admin}`],
    caNotAfter: ca.notAfter,
  };
}

/**
 * The second half of `mesh enable` for a hand-started etcd: proves it serves TLS with the
 * cluster's certificates (as `admin-<cluster>`), then creates every user and role of
 * Cilium's etcdinit and enables auth. Idempotent: once auth is on, `admin-<cluster>` (root
 * role) is who may add what is missing.
 */
export async function initHandStartedEtcd(e: HandStartedEtcd, timeoutMs = 10_000): Promise<void> {
  const creds = await readCredentials(e.files, 'admin');
  const name = meshHostname(e.cluster);
  const probe = new EtcdBackend({
    endpoints: [e.url],
    tls: {
      ca: Buffer.from(creds.ca),
      cert: Buffer.from(creds.cert),
      key: Buffer.from(creds.key),
    },
    hostAliases: new Map([[name, e.host]]),
    callTimeoutMs: timeoutMs,
  });
  try {
    await withTimeout(probe.get(HeartbeatPath), timeoutMs, `reaching etcd of ${e.cluster}`);
  } catch (err) {
    const code = isClusterMeshError(err) ? err.code : ErrorCode.KvstoreUnreachable;
    throw new ClusterMeshError(
      code === ErrorCode.Timeout ? ErrorCode.KvstoreUnreachable : code,
      `etcd of ${e.cluster} at https://${hostPort(e.host, e.port)}: ${errorMessage(err).slice(0, 300)}; ` +
        `start it with the flags "clustermesh certs create" prints, then run enable again`,
      { cause: err },
    );
  } finally {
    await probe.close();
  }
  const client = adminClient(e.cluster, e.host, e.port, creds);
  try {
    await initEtcdAuth(client, etcdAuthPlan(e.cluster));
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.KvstoreOperation,
      `etcd of ${e.cluster}: creating the users as admin-${e.cluster} failed: ${errorMessage(err).slice(0, 200)} ` +
        `(an etcd with auth already on must know admin-${e.cluster} as a root user)`,
      { cause: err },
    );
  } finally {
    client.close();
  }
}
