import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { parse as parseYaml, stringify as toYaml } from 'yaml';
import { z } from 'zod';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';

/**
 * Host aliases: what the seeds' `hostAliases` in the agent's pod spec do, without editing
 * /etc/hosts. Agents dial a remote cluster's etcd as `https://<cluster>.mesh.cilium.io:2379`;
 * that name resolves nowhere, so a file `hostaliases.yaml` next to an etcd config file maps
 * names to IPs, in the pod spec's shape:
 *
 *   - ip: 127.2.128.2
 *     hostnames:
 *       - cluster2.mesh.cilium.io
 *
 * The client then connects to the IP while TLS still verifies the name (gRPC's target name
 * override), exactly as a pod whose /etc/hosts carries the alias would. The file holds no
 * `endpoints:`, so the clustermesh config-dir watcher never takes it for a cluster.
 */
export const HOST_ALIASES_FILE = 'hostaliases.yaml';

const aliasSchema = z.array(
  z.object({
    ip: z.string().refine((s) => isIP(s) !== 0, 'not an IP address'),
    hostnames: z.array(z.string().min(1)).min(1),
  }),
);

export interface HostAlias {
  readonly ip: string;
  readonly hostnames: readonly string[];
}

/** Hostname → IP. */
export type HostAliases = ReadonlyMap<string, string>;

export function parseHostAliases(text: string, path: string): HostAlias[] {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `${path}: invalid YAML: ${errorMessage(err)}`,
    );
  }
  const parsed = aliasSchema.safeParse(doc ?? []);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `${path}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid host aliases'}`,
    );
  }
  return parsed.data;
}

/** The aliases of `dir` (its hostaliases.yaml); empty when there is none. */
export async function readHostAliasesIn(dir: string): Promise<HostAlias[]> {
  const path = join(dir, HOST_ALIASES_FILE);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ClusterMeshError(ErrorCode.InvalidConfig, `${path}: ${errorMessage(err)}`);
  }
  return parseHostAliases(text, path);
}

export function aliasMap(aliases: readonly HostAlias[]): Map<string, string> {
  const m = new Map<string, string>();
  for (const a of aliases) for (const h of a.hostnames) m.set(h.toLowerCase(), a.ip);
  return m;
}

export function formatHostAliases(aliases: readonly HostAlias[]): string {
  return toYaml(aliases.map((a) => ({ ip: a.ip, hostnames: [...a.hostnames] })));
}

/** `aliases` with `hostname` mapped to `ip` (replacing what mapped it before). */
export function withHostAlias(
  aliases: readonly HostAlias[],
  hostname: string,
  ip: string,
): HostAlias[] {
  const out: HostAlias[] = [];
  for (const a of aliases) {
    const rest = a.hostnames.filter((h) => h !== hostname);
    if (rest.length > 0) out.push({ ip: a.ip, hostnames: rest });
  }
  const same = out.find((a) => a.ip === ip);
  if (same !== undefined) out[out.indexOf(same)] = { ip, hostnames: [...same.hostnames, hostname] };
  else out.push({ ip, hostnames: [hostname] });
  return out;
}

export function withoutHostAlias(aliases: readonly HostAlias[], hostname: string): HostAlias[] {
  return aliases
    .map((a) => ({ ip: a.ip, hostnames: a.hostnames.filter((h) => h !== hostname) }))
    .filter((a) => a.hostnames.length > 0);
}

/**
 * gRPC channel options that make TLS verify `serverName` (the aliased endpoint's own name)
 * while the channel dials its IP; none without an alias or without TLS.
 */
export function tlsNameOverride(
  serverName: string | undefined,
  tls: boolean,
): Record<string, string> {
  return serverName === undefined || !tls
    ? {}
    : { 'grpc.ssl_target_name_override': serverName, 'grpc.default_authority': serverName };
}

/**
 * Endpoints with aliased hostnames replaced by their IPs, and the name TLS must verify
 * (the first aliased hostname: one gRPC channel option serves every endpoint, and a
 * cluster's endpoints all carry its one name).
 */
export function applyHostAliases(
  endpoints: readonly string[],
  aliases: HostAliases | undefined,
): { endpoints: string[]; serverName: string | undefined } {
  if (aliases === undefined || aliases.size === 0) {
    return { endpoints: [...endpoints], serverName: undefined };
  }
  let serverName: string | undefined;
  const mapped = endpoints.map((ep) => {
    let url: URL;
    try {
      url = new URL(ep);
    } catch {
      return ep;
    }
    const ip = aliases.get(url.hostname.toLowerCase());
    if (ip === undefined) return ep;
    serverName ??= url.hostname;
    url.hostname = isIP(ip) === 6 ? `[${ip}]` : ip;
    return url.toString().replace(/\/$/, '');
  });
  return { endpoints: mapped, serverName };
}
