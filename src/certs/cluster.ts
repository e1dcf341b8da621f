import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import {
  createCA,
  issueCert,
  loadCA,
  certificateInfo,
  DEFAULT_VALIDITY_DAYS,
  type CertificateAuthority,
  type CertificateInfo,
  type PemKeyPair,
} from './x509.js';

/**
 * One cluster's certificates, as Cilium's certgen lays them out for the clustermesh-apiserver:
 * a CA, the etcd server certificate (SANs `*.mesh.cilium.io`, `<cluster>.mesh.cilium.io`,
 * `clustermesh-apiserver.kube-system.svc`, loopback and the cluster's addresses) and one
 * client certificate per etcd user, whose common name is the user (etcd maps the CN of a
 * verified client certificate to the user; the users have no password).
 *
 * On disk, in one directory: `ca.crt`, `ca.key`, `server.crt`, `server.key` and
 * `<user>.crt`, `<user>.key` for each user. Keys are written 0600.
 */

/** The wildcard every clustermesh etcd server certificate covers. */
export const MESH_DOMAIN = 'mesh.cilium.io';
export const APISERVER_SERVICE_NAME = 'clustermesh-apiserver.kube-system.svc';

/** `<cluster>.mesh.cilium.io`: the name agents dial a remote cluster's etcd by. */
export function meshHostname(cluster: string): string {
  return `${cluster}.${MESH_DOMAIN}`;
}

/** The etcd users of a cluster with a client certificate each (Cilium's etcdinit names). */
export interface ClusterUsers {
  /** Root role: the cluster's apiserver and KVStoreMesh. */
  readonly admin: string;
  /** Read-only on what another cluster reads; every remote cluster connects as it. */
  readonly remote: string;
  /** Read-only on the KVStoreMesh cache: the cluster's own agents. */
  readonly local: string;
  readonly externalworkload: string;
}

export function clusterUsers(cluster: string): ClusterUsers {
  return {
    admin: `admin-${cluster}`,
    remote: 'remote',
    local: `local-${cluster}`,
    externalworkload: 'externalworkload',
  };
}

export type UserRole = keyof ClusterUsers;
export const USER_ROLES: readonly UserRole[] = ['admin', 'remote', 'local', 'externalworkload'];

export interface CertPaths {
  readonly certFile: string;
  readonly keyFile: string;
}

export interface ClusterCertFiles {
  readonly dir: string;
  readonly caFile: string;
  readonly caKeyFile: string;
  readonly server: CertPaths;
  readonly clients: Readonly<Record<UserRole, CertPaths>>;
}

export function clusterCertFiles(dir: string, cluster: string): ClusterCertFiles {
  const users = clusterUsers(cluster);
  const pair = (name: string): CertPaths => ({
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
  });
  return {
    dir,
    caFile: join(dir, 'ca.crt'),
    caKeyFile: join(dir, 'ca.key'),
    server: pair('server'),
    clients: {
      admin: pair(users.admin),
      remote: pair(users.remote),
      local: pair(users.local),
      externalworkload: pair(users.externalworkload),
    },
  };
}

export interface ClusterCertOptions {
  readonly cluster: string;
  /** The cluster's addresses (the etcd server's IP among them): IP SANs of the server certificate. */
  readonly addresses?: readonly string[] | undefined;
  /** Extra DNS SANs of the server certificate. */
  readonly dnsNames?: readonly string[] | undefined;
  readonly validityDays?: number | undefined;
  /** Which client certificates to issue (default: every user's). */
  readonly roles?: readonly UserRole[] | undefined;
  /** Issue the server certificate too (default true). */
  readonly server?: boolean | undefined;
  /**
   * Keep the certificates already in the directory and issue only the missing ones
   * (`certs create` and `mesh enable` run again on a live etcd must not change its files).
   */
  readonly keepExisting?: boolean | undefined;
}

export function serverDnsNames(cluster: string, extra: readonly string[] = []): string[] {
  return [
    `*.${MESH_DOMAIN}`,
    meshHostname(cluster),
    APISERVER_SERVICE_NAME,
    'localhost',
    ...extra,
  ].filter((n, i, all) => all.indexOf(n) === i);
}

function serverIps(addresses: readonly string[] = []): string[] {
  return ['127.0.0.1', '::1', ...addresses].filter((a, i, all) => all.indexOf(a) === i);
}

/**
 * Creates the CA and every certificate of a cluster in `dir` (created). Used by `up` and
 * `mesh enable`; an existing CA in `dir` is kept (re-enabling must not invalidate the
 * certificates already handed to other clusters).
 */
export async function writeClusterCerts(
  dir: string,
  opts: ClusterCertOptions,
): Promise<ClusterCertFiles> {
  const files = clusterCertFiles(dir, opts.cluster);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  let ca = await readExistingCA(files);
  if (ca === undefined) {
    ca = await createCA(`clustermesh-${opts.cluster}-ca`, { validityDays: opts.validityDays });
    await writePem(files.caFile, ca.cert, false);
    await writePem(files.caKeyFile, ca.key, true);
  }
  await issueLeaves(ca, files, opts);
  return files;
}

/**
 * Replaces the server certificate and the client certificates present with new ones from
 * the same CA.
 * Each file is replaced atomically (rename), so etcd (which reads its files on every
 * handshake) and clients never read half a file; connections established before keep going.
 */
export async function rotateClusterCerts(
  dir: string,
  opts: ClusterCertOptions,
): Promise<ClusterCertFiles> {
  const files = clusterCertFiles(dir, opts.cluster);
  let ca: CertificateAuthority;
  try {
    ca = await readCA(files);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.ConfigNotFound,
      `certs of ${opts.cluster}: no CA in ${dir} (${errorMessage(err)}); run "clustermesh mesh enable" first`,
    );
  }
  const present: UserRole[] = [];
  for (const role of USER_ROLES) {
    if (await exists(files.clients[role].certFile)) present.push(role);
  }
  await issueLeaves(ca, files, { ...opts, roles: present, server: true });
  return files;
}

async function exists(path: string): Promise<boolean> {
  return readFile(path).then(
    () => true,
    () => false,
  );
}

async function issueLeaves(
  ca: CertificateAuthority,
  files: ClusterCertFiles,
  opts: ClusterCertOptions,
): Promise<void> {
  const users = clusterUsers(opts.cluster);
  const validityDays = opts.validityDays ?? DEFAULT_VALIDITY_DAYS;
  const leaves: [CertPaths, PemKeyPair][] = [];
  const wanted = async (paths: CertPaths): Promise<boolean> =>
    opts.keepExisting !== true ||
    !((await exists(paths.certFile)) && (await exists(paths.keyFile)));
  if (opts.server !== false && (await wanted(files.server))) {
    const server = await issueCert(ca, {
      commonName: APISERVER_SERVICE_NAME,
      serverAuth: true,
      // etcd also dials itself with it (grpc-gateway) when serving TLS.
      clientAuth: true,
      dnsNames: serverDnsNames(opts.cluster, opts.dnsNames),
      ipAddresses: serverIps(opts.addresses),
      validityDays,
    });
    leaves.push([files.server, server]);
  }
  for (const role of opts.roles ?? USER_ROLES) {
    if (!(await wanted(files.clients[role]))) continue;
    const leaf = await issueCert(ca, { commonName: users[role], clientAuth: true, validityDays });
    leaves.push([files.clients[role], leaf]);
  }
  for (const [paths, pem] of leaves) {
    await writePem(paths.keyFile, pem.key, true);
    await writePem(paths.certFile, pem.cert, false);
  }
}

/**
 * The CA of `files`; undefined when there is none yet. A CA that is there but unreadable
 * (garbage, a key that does not match) is an error: silently replacing it would invalidate
 * every certificate already handed out.
 */
async function readExistingCA(files: ClusterCertFiles): Promise<CertificateAuthority | undefined> {
  const [cert, key] = await Promise.all([exists(files.caFile), exists(files.caKeyFile)]);
  if (!cert && !key) return undefined;
  if (!cert || !key) {
    throw new ClusterMeshError(
      ErrorCode.ConfigNotFound,
      `CA of ${files.dir}: ${cert ? files.caKeyFile : files.caFile} is missing (ca.crt and ca.key go together)`,
    );
  }
  try {
    return await readCA(files);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `CA in ${files.caFile}: not a PEM certificate and PKCS#8 key pair (${errorMessage(err).slice(0, 80)})`,
    );
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g;

/** The certificates of a PEM bundle, each as its own PEM. */
export function pemCertificates(pem: string): string[] {
  return (pem.match(PEM_CERT) ?? []).map((c) => (c.endsWith('\n') ? c : `${c}\n`));
}

/**
 * The signing CA of `files`: the first certificate of `ca.crt` (during a CA rotation the
 * file also trusts the previous CA, after it) with `ca.key`.
 */
async function readCA(files: ClusterCertFiles): Promise<CertificateAuthority> {
  const [bundle, key] = await Promise.all([
    readFile(files.caFile, 'utf8'),
    readFile(files.caKeyFile, 'utf8'),
  ]);
  return loadCA({ cert: pemCertificates(bundle)[0] ?? bundle, key });
}

/**
 * CA rotation, step 1: a new CA signs from now on; `ca.crt` trusts both (new first, then
 * the previous one), so that every party given the bundle accepts certificates of either.
 * Nothing else changes: etcd verifies client certificates against the CAs it read at start,
 * so leaves from the new CA are issued only once etcd runs with the bundle
 * (`reissueAfterCaRotation`).
 */
export async function startCaRotation(
  dir: string,
  cluster: string,
  validityDays?: number,
): Promise<{ bundle: string }> {
  const files = clusterCertFiles(dir, cluster);
  const bundle = await readFile(files.caFile, 'utf8').catch(() => '');
  const present = pemCertificates(bundle);
  if (present.length === 0) {
    throw new ClusterMeshError(
      ErrorCode.ConfigNotFound,
      `certs of ${cluster}: no CA in ${files.caFile}; run "clustermesh mesh enable" first`,
    );
  }
  if (present.length > 1) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `certs of ${cluster}: a CA rotation is under way (${files.caFile} holds ${present.length} CAs): run "--ca reissue" then "--ca finish"`,
    );
  }
  await readCA(files);
  const ca = await createCA(`clustermesh-${cluster}-ca-${new Date().toISOString().slice(0, 19)}`, {
    validityDays,
  });
  // One certificate per line block, each ending in a newline: parsers split on them.
  const next = (pemCertificates(ca.cert)[0] ?? `${ca.cert}\n`) + (present[0] ?? '');
  // Key first: a reader pairing the new ca.crt with the old key would issue unverifiable leaves.
  await writePem(files.caKeyFile, ca.key, true);
  await writePem(files.caFile, next, false);
  return { bundle: next };
}

/** The CAs `ca.crt` trusts: more than one while a rotation is under way. */
export async function trustedCAs(dir: string, cluster: string): Promise<string[]> {
  return pemCertificates(await readFile(clusterCertFiles(dir, cluster).caFile, 'utf8'));
}

/**
 * CA rotation, last step: `ca.crt` trusts only the new CA. Refused while a certificate in
 * the directory is still signed by the previous one.
 */
export async function finishCaRotation(dir: string, cluster: string): Promise<{ ca: string }> {
  const files = clusterCertFiles(dir, cluster);
  const cas = await trustedCAs(dir, cluster);
  const current = cas[0];
  if (current === undefined || cas.length < 2) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `certs of ${cluster}: no CA rotation under way (start one with "--ca start")`,
    );
  }
  const subject = certificateInfo(current).subject;
  const leaves = [files.server, ...USER_ROLES.map((r) => files.clients[r])];
  for (const leaf of leaves) {
    const pem = await readFile(leaf.certFile, 'utf8').catch(() => undefined);
    if (pem === undefined) continue;
    if (certificateInfo(pem).issuer !== subject) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `certs of ${cluster}: ${leaf.certFile} is still signed by the previous CA: run "--ca reissue" first`,
      );
    }
  }
  await writePem(files.caFile, current, false);
  return { ca: current };
}

/** Writes through a temp file and a rename; keys 0600, certificates 0644. */
export async function writePem(path: string, pem: string, secret: boolean): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, pem, { mode: secret ? 0o600 : 0o644 });
  // The mode of writeFile applies only to files it creates.
  await chmod(tmp, secret ? 0o600 : 0o644);
  await rename(tmp, path);
}

/** The certificate in `path`, parsed; a one-line error when unreadable. */
export async function readCertificateInfo(path: string): Promise<CertificateInfo> {
  let pem: string;
  try {
    pem = await readFile(path, 'utf8');
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.ConfigNotFound,
      `certificate ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : errorMessage(err)}`,
    );
  }
  try {
    return certificateInfo(pem);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `certificate ${path}: not a PEM certificate (${errorMessage(err)})`,
    );
  }
}
