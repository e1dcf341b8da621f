import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import {
  clusterCertFiles,
  finishCaRotation,
  rotateClusterCerts,
  startCaRotation,
  trustedCAs,
  type UserRole,
} from '../certs/index.js';
import {
  removeRemoteConfig,
  updateRemoteCerts,
  writeRemoteConfig,
  type RemoteAccess,
} from '../clustermesh/remote-config.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  listClusterRecords,
  readClusterRecord,
  writeClusterRecord,
  type ClusterRecord,
} from './cluster-record.js';
import {
  enableSecureEtcd,
  initHandStartedEtcd,
  prepareHandStartedEtcd,
  readCredentials,
  type HandStartedEtcd,
} from './secure-etcd.js';

/**
 * The seeds' setup, step by step, on clusters recorded in a state dir (cluster-record.ts):
 * `enable` (the remote users and certificates of a cluster), `connect` (both directions, as
 * `cilium clustermesh connect`), `disconnect` (exactly one pair) and `rotate`. They only
 * write files: the clusters' daemons watch their clustermesh config directories and act on
 * what appears there, without a restart.
 */

function portOf(url: string): number {
  return Number(new URL(url).port || '2379');
}

/** A cluster whose daemons were started by hand: what `mesh enable` records for it. */
export interface HandStartedCluster {
  readonly id: number;
  /**
   * Where its etcd listens: `http://…` (plaintext, dialled as is) or, with `tlsDir`,
   * `https://<ip>:<port>` (dialled as `https://<cluster>.mesh.cilium.io:<port>`).
   */
  readonly endpoint: string;
  /** The cluster's certificate directory (created if missing): its etcd serves TLS. */
  readonly tlsDir?: string | undefined;
  readonly configDir: string;
  readonly kvstoremeshConfigDir?: string | undefined;
  readonly agents: readonly { node: string; api: string }[];
}

/**
 * The IP and port of a hand-started etcd serving TLS, from `https://<ip>:<port>`: the
 * address its server certificate covers and `<cluster>.mesh.cilium.io` maps to.
 */
export function parseTlsEndpoint(endpoint: string): { host: string; port: number } {
  let url: URL | undefined;
  try {
    url = new URL(endpoint);
  } catch {
    url = undefined;
  }
  const host = url?.hostname.replace(/^\[(.*)\]$/, '$1') ?? '';
  if (url === undefined || url.protocol !== 'https:' || isIP(host) === 0) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `--kvstore-endpoint ${JSON.stringify(endpoint.slice(0, 80))}: expected https://<ip>:<port> (the address etcd listens on) with --tls-dir`,
    );
  }
  return { host, port: portOf(endpoint) };
}

/**
 * Creates the cluster's `remote`, `local` and `externalworkload` users and certificates.
 * `register` records a cluster started by hand first: plaintext as is, or with `tlsDir`
 * its certificates created there and every etcdinit user created on its etcd (auth on).
 */
export async function enableCluster(
  stateDir: string,
  name: string,
  register?: HandStartedCluster,
): Promise<{ record: ClusterRecord; handStarted?: HandStartedEtcd | undefined }> {
  let handStarted: HandStartedEtcd | undefined;
  if (register?.tlsDir !== undefined) {
    const { host, port } = parseTlsEndpoint(register.endpoint);
    handStarted = await prepareHandStartedEtcd({ cluster: name, dir: register.tlsDir, host, port });
    await initHandStartedEtcd(handStarted);
  }
  if (register !== undefined) {
    const { mkdir } = await import('node:fs/promises');
    await mkdir(join(stateDir, name), { recursive: true });
    await writeClusterRecord(stateDir, {
      version: 1,
      name,
      id: register.id,
      ...(handStarted === undefined
        ? { kvstore: register.endpoint, tls: false }
        : {
            kvstore: handStarted.url,
            tls: true,
            etcdIP: handStarted.host,
            etcdDir: handStarted.dir,
          }),
      configDir: register.configDir,
      ...(register.kvstoremeshConfigDir === undefined
        ? {}
        : { kvstoremeshConfigDir: register.kvstoremeshConfigDir }),
      agents: [...register.agents],
      enabled: false,
    });
  }
  const rec = await readClusterRecord(stateDir, name);
  if (rec.tls && handStarted === undefined) {
    if (rec.etcdDir === undefined || rec.etcdIP === undefined) {
      throw new ClusterMeshError(
        ErrorCode.InvalidConfig,
        `cluster ${name}: its record names no etcd certificate directory or address`,
      );
    }
    await enableSecureEtcd({
      cluster: rec.name,
      dir: rec.etcdDir,
      host: rec.etcdIP,
      port: portOf(rec.kvstore),
    });
  }
  const enabled = { ...rec, enabled: true };
  await writeClusterRecord(stateDir, enabled);
  return { record: enabled, handStarted };
}

function requireEnabled(rec: ClusterRecord): void {
  if (!rec.enabled) {
    throw new ClusterMeshError(
      ErrorCode.ClustermeshNotEnabled,
      `clustermesh is not enabled in cluster ${rec.name}: run "clustermesh mesh enable --cluster ${rec.name}" first`,
    );
  }
}

/** How a party reaches `rec`'s kvstore as `role`. */
async function accessOf(
  rec: ClusterRecord,
  role: UserRole,
  asCluster = rec.name,
): Promise<RemoteAccess> {
  if (!rec.tls || rec.etcdDir === undefined) return { cluster: asCluster, endpoint: rec.kvstore };
  return {
    cluster: asCluster,
    endpoint: rec.kvstore,
    aliasIp: rec.etcdIP,
    tls: await readCredentials(clusterCertFiles(rec.etcdDir, rec.name), role),
  };
}

/**
 * Makes `local` see `remote`: its KVStoreMesh dials `remote` as `remote` and its agents read
 * the cache as `local-<cluster>`; without KVStoreMesh its agents dial `remote` directly.
 */
async function writeSide(local: ClusterRecord, remote: ClusterRecord): Promise<void> {
  if (local.kvstoremeshConfigDir !== undefined) {
    await writeRemoteConfig(local.kvstoremeshConfigDir, await accessOf(remote, 'remote'));
    await writeRemoteConfig(local.configDir, await accessOf(local, 'local', remote.name));
  } else {
    await writeRemoteConfig(local.configDir, await accessOf(remote, 'remote'));
  }
}

export async function connectClusters(stateDir: string, a: string, b: string): Promise<void> {
  if (a === b) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `cannot connect cluster ${a} to itself: --destination-cluster must name another cluster`,
    );
  }
  const [ra, rb] = await Promise.all([
    readClusterRecord(stateDir, a),
    readClusterRecord(stateDir, b),
  ]);
  if (ra.id === rb.id) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `clusters ${a} and ${b} have the same cluster ID ${ra.id}: IDs must be unique in a mesh`,
    );
  }
  requireEnabled(ra);
  requireEnabled(rb);
  await writeSide(ra, rb);
  await writeSide(rb, ra);
}

/** Removes exactly the pair `a` ↔ `b`; false when they were not connected. */
export async function disconnectClusters(stateDir: string, a: string, b: string): Promise<boolean> {
  const [ra, rb] = await Promise.all([
    readClusterRecord(stateDir, a),
    readClusterRecord(stateDir, b),
  ]);
  let any = false;
  for (const [local, remote] of [
    [ra, rb],
    [rb, ra],
  ] as const) {
    if (await removeRemoteConfig(local.configDir, remote.name)) any = true;
    if (local.kvstoremeshConfigDir !== undefined) {
      if (await removeRemoteConfig(local.kvstoremeshConfigDir, remote.name)) any = true;
    }
  }
  return any;
}

/** The remote clusters configured in `rec`'s directories (agents', or KVStoreMesh's). */
export async function configuredRemotes(rec: ClusterRecord): Promise<string[]> {
  const { readdir } = await import('node:fs/promises');
  const dir = rec.kvstoremeshConfigDir ?? rec.configDir;
  const names = await readdir(dir).catch(() => [] as string[]);
  const out: string[] = [];
  for (const n of names.sort()) {
    if (n.startsWith('.') || n.includes('.')) continue;
    const text = await readFile(join(dir, n), 'utf8').catch(() => '');
    if (text.includes('endpoints:')) out.push(n);
  }
  return out;
}

/** A CA rotation step of `certs rotate --ca` (see `rotateClusterCa`). */
export type CaRotationStep = 'start' | 'reissue' | 'finish';

async function tlsRecord(
  stateDir: string,
  name: string,
): Promise<ClusterRecord & { etcdDir: string }> {
  const rec = await readClusterRecord(stateDir, name);
  if (!rec.tls || rec.etcdDir === undefined) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `cluster ${name} runs without TLS (up --insecure): it has no certificates to rotate`,
    );
  }
  return { ...rec, etcdDir: rec.etcdDir };
}

/**
 * The copies other clusters hold of `rec`'s access (its CA file and `remote` certificate),
 * and of its `local` one in its own agents' directory, replaced in place from its
 * directory: the config-dir watchers see the new files and reconnect with them.
 */
async function redistribute(stateDir: string, rec: ClusterRecord): Promise<string[]> {
  const updated: string[] = [];
  const remoteCreds = (await accessOf(rec, 'remote')).tls;
  if (remoteCreds === undefined) return updated;
  for (const other of await listClusterRecords(stateDir)) {
    if (other.name === rec.name) continue;
    const dir = other.kvstoremeshConfigDir ?? other.configDir;
    if (await updateRemoteCerts(dir, rec.name, remoteCreds)) {
      updated.push(`${other.name}/${rec.name}`);
    }
    if (rec.kvstoremeshConfigDir !== undefined) {
      const local = (await accessOf(rec, 'local')).tls;
      if (local !== undefined && (await updateRemoteCerts(rec.configDir, other.name, local))) {
        updated.push(`${rec.name}/${other.name} (local)`);
      }
    }
  }
  return updated;
}

/**
 * New server and client certificates for `name` from its CA, then the copies other clusters
 * hold replaced in place.
 */
export async function rotateCluster(
  stateDir: string,
  name: string,
): Promise<{ updated: string[] }> {
  const rec = await tlsRecord(stateDir, name);
  await rotateClusterCerts(rec.etcdDir, {
    cluster: name,
    addresses: rec.etcdIP === undefined ? [] : [rec.etcdIP],
  });
  return { updated: await redistribute(stateDir, rec) };
}

/**
 * Replacing a cluster's CA without dropping a connection, in three steps, because etcd
 * reads the CAs it verifies client certificates with only when it starts:
 * - `start`: a new CA; `ca.crt` and every copy other clusters hold trust both CAs (agents
 *   reconnect with the bundle, their certificates unchanged). Then restart the etcd.
 * - `reissue`: (etcd now trusts both) server and client certificates from the new CA,
 *   handed out as by `rotateCluster`.
 * - `finish`: `ca.crt` and the copies trust only the new CA (a restart of etcd later makes
 *   it stop accepting the old one).
 */
export async function rotateClusterCa(
  stateDir: string,
  name: string,
  step: CaRotationStep,
): Promise<{ updated: string[] }> {
  const rec = await tlsRecord(stateDir, name);
  if (step === 'start') {
    await startCaRotation(rec.etcdDir, name);
  } else if (step === 'reissue') {
    if ((await trustedCAs(rec.etcdDir, name)).length < 2) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `certs of ${name}: no CA rotation under way (start one with "--ca start")`,
      );
    }
    await rotateClusterCerts(rec.etcdDir, {
      cluster: name,
      addresses: rec.etcdIP === undefined ? [] : [rec.etcdIP],
    });
  } else {
    await finishCaRotation(rec.etcdDir, name);
  }
  return { updated: await redistribute(stateDir, rec) };
}
