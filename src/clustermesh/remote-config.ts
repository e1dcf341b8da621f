import { mkdir, readFile, rm, writeFile, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { formatEtcdConfig } from '../kvstore/config.js';
import {
  HOST_ALIASES_FILE,
  formatHostAliases,
  readHostAliasesIn,
  withHostAlias,
  withoutHostAlias,
} from '../kvstore/host-aliases.js';

/**
 * Writing a remote cluster into a clustermesh config directory, as `cilium clustermesh
 * connect` fills the `cilium-clustermesh` secret: `<name>` (the etcd client YAML),
 * `<name>.etcd-client-ca.crt`, `<name>.etcd-client.crt` and `<name>.etcd-client.key`, plus
 * the name → IP alias in `hostaliases.yaml` (what the seeds put in the agents' hostAliases).
 * The config file is written last: the directory watcher connects only once the files it
 * names are in place.
 */

/** How to reach one cluster's etcd, and with which credentials. */
export interface RemoteAccess {
  /** Cluster name: the config file's name. */
  readonly cluster: string;
  /** `https://<cluster>.mesh.cilium.io:<port>` (or `http://ip:port` without TLS). */
  readonly endpoint: string;
  /** The endpoint hostname's IP, when the hostname needs an alias. */
  readonly aliasIp?: string | undefined;
  /** PEM material; absent for a plaintext etcd. */
  readonly tls?: { readonly ca: string; readonly cert: string; readonly key: string } | undefined;
}

export function remoteCertFiles(
  dir: string,
  cluster: string,
): { caFile: string; certFile: string; keyFile: string } {
  return {
    caFile: join(dir, `${cluster}.etcd-client-ca.crt`),
    certFile: join(dir, `${cluster}.etcd-client.crt`),
    keyFile: join(dir, `${cluster}.etcd-client.key`),
  };
}

async function atomicWrite(path: string, text: string, mode: number): Promise<void> {
  // `..`-prefixed names are a mount's internals to the config-dir watcher: never a cluster.
  const tmp = join(dirname(path), `..${basename(path)}.tmp-${process.pid}`);
  await writeFile(tmp, text, { mode });
  await rename(tmp, path);
}

/** Adds (or replaces) `access` in the config directory `dir`. */
export async function writeRemoteConfig(dir: string, access: RemoteAccess): Promise<void> {
  await mkdir(dir, { recursive: true });
  const files = remoteCertFiles(dir, access.cluster);
  if (access.tls !== undefined) {
    await atomicWrite(files.caFile, access.tls.ca, 0o644);
    await atomicWrite(files.certFile, access.tls.cert, 0o644);
    await atomicWrite(files.keyFile, access.tls.key, 0o600);
  }
  if (access.aliasIp !== undefined) {
    const host = new URL(access.endpoint).hostname;
    const aliases = withHostAlias(await readHostAliasesIn(dir), host, access.aliasIp);
    await atomicWrite(join(dir, HOST_ALIASES_FILE), formatHostAliases(aliases), 0o644);
  }
  const config = formatEtcdConfig({
    endpoints: [access.endpoint],
    ...(access.tls === undefined
      ? {}
      : { trustedCaFile: files.caFile, certFile: files.certFile, keyFile: files.keyFile }),
  });
  await atomicWrite(join(dir, access.cluster), config, 0o644);
}

/**
 * Replaces the certificate material of `cluster` in `dir`, leaving its config file alone:
 * rotated credentials for an established connection (the config-dir watcher notices the
 * new content of the files the config names).
 */
export async function updateRemoteCerts(
  dir: string,
  cluster: string,
  tls: { readonly ca: string; readonly cert: string; readonly key: string },
): Promise<boolean> {
  const files = remoteCertFiles(dir, cluster);
  const present = await readFile(join(dir, cluster), 'utf8').then(
    () => true,
    () => false,
  );
  if (!present) return false;
  await atomicWrite(files.caFile, tls.ca, 0o644);
  await atomicWrite(files.keyFile, tls.key, 0o600);
  await atomicWrite(files.certFile, tls.cert, 0o644);
  return true;
}

/** Removes `cluster` from `dir`: config first (the watcher disconnects), then its files. */
export async function removeRemoteConfig(dir: string, cluster: string): Promise<boolean> {
  const config = join(dir, cluster);
  let existed = true;
  try {
    await rm(config);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    existed = false;
  }
  const files = remoteCertFiles(dir, cluster);
  await Promise.all(
    [files.caFile, files.certFile, files.keyFile].map((f) => rm(f, { force: true })),
  );
  const aliases = await readHostAliasesIn(dir);
  const host = `${cluster}.mesh.cilium.io`;
  const rest = withoutHostAlias(aliases, host);
  if (
    rest.length !== aliases.length ||
    rest.some((a, i) => a.hostnames.length !== aliases[i]?.hostnames.length)
  ) {
    await atomicWrite(join(dir, HOST_ALIASES_FILE), formatHostAliases(rest), 0o644);
  }
  return existed;
}
