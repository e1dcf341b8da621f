import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import type { Logger } from 'pino';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import type { Backend } from './backend.js';
import { EtcdBackend, type EtcdTls } from './etcd.js';
import { aliasMap, readHostAliasesIn, type HostAliases } from './host-aliases.js';
import { MemoryBackend } from './memory.js';
import { MemoryStore } from './memory-store.js';

/**
 * The etcd client YAML of the reference (go.etcd.io clientv3/yaml): `endpoints`,
 * `trusted-ca-file`, `cert-file`, `key-file`. Unknown keys are tolerated (the
 * reference's files carry more). Relative file paths resolve against the
 * directory of the config file.
 */
const etcdFileSchema = z.looseObject({
  endpoints: z.array(z.string().min(1)).min(1),
  'trusted-ca-file': z.string().min(1).optional(),
  'cert-file': z.string().min(1).optional(),
  'key-file': z.string().min(1).optional(),
});

export interface EtcdClientConfig {
  readonly endpoints: readonly string[];
  readonly trustedCaFile?: string | undefined;
  readonly certFile?: string | undefined;
  readonly keyFile?: string | undefined;
  /** Names the endpoints use and their IPs (host-aliases.ts); TLS still verifies the name. */
  readonly hostAliases?: HostAliases | undefined;
}

export interface KvstoreConfig {
  readonly kind: 'etcd' | 'memory';
  /** etcd.address or the endpoints of etcd.config. */
  readonly etcd?: EtcdClientConfig | undefined;
  readonly configFile?: string | undefined;
  readonly qps: number;
  readonly bootstrapQps?: number | undefined;
  readonly maxInflight: number;
  readonly listLimit: number;
  readonly leaseTtlSeconds?: number | undefined;
}

export async function loadEtcdConfigFile(path: string): Promise<EtcdClientConfig> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ClusterMeshError(
      code === 'ENOENT' ? ErrorCode.ConfigNotFound : ErrorCode.InvalidConfig,
      code === 'ENOENT'
        ? `etcd config file ${path} not found`
        : `etcd config file ${path}: ${errorMessage(err)}`,
    );
  }
  return withDirAliases(path, parseEtcdConfig(text, path));
}

export function parseEtcdConfig(text: string, path: string): EtcdClientConfig {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `etcd config file ${path}: invalid YAML: ${errorMessage(err)}`,
    );
  }
  const parsed = etcdFileSchema.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') ?? '';
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `etcd config file ${path}: ${field === '' ? 'document' : field}: ${issue?.message ?? 'invalid'}`,
    );
  }
  const base = dirname(path);
  const file = (p: string | undefined): string | undefined =>
    p === undefined ? undefined : resolve(base, p);
  for (const ep of parsed.data.endpoints) checkEndpoint(ep, path);
  return {
    endpoints: parsed.data.endpoints,
    trustedCaFile: file(parsed.data['trusted-ca-file']),
    certFile: file(parsed.data['cert-file']),
    keyFile: file(parsed.data['key-file']),
  };
}

/**
 * The config file at `path` with the host aliases of its directory (the seeds' hostAliases:
 * `<cluster>.mesh.cilium.io` resolves through them, see host-aliases.ts).
 */
async function withDirAliases(path: string, cfg: EtcdClientConfig): Promise<EtcdClientConfig> {
  const aliases = aliasMap(await readHostAliasesIn(dirname(path)));
  return aliases.size === 0 ? cfg : { ...cfg, hostAliases: aliases };
}

/** The etcd client YAML for `cfg` (paths as given: absolute ones stay valid wherever it lands). */
export function formatEtcdConfig(cfg: EtcdClientConfig): string {
  const lines = ['endpoints:', ...cfg.endpoints.map((e) => `  - ${e}`)];
  if (cfg.trustedCaFile !== undefined) lines.push(`trusted-ca-file: ${cfg.trustedCaFile}`);
  if (cfg.certFile !== undefined) lines.push(`cert-file: ${cfg.certFile}`);
  if (cfg.keyFile !== undefined) lines.push(`key-file: ${cfg.keyFile}`);
  return `${lines.join('\n')}\n`;
}

function checkEndpoint(ep: string, where: string): void {
  let url: URL;
  try {
    url = new URL(ep);
  } catch {
    throw new ClusterMeshError(ErrorCode.InvalidConfig, `${where}: invalid etcd endpoint "${ep}"`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      `${where}: etcd endpoint "${ep}" must use http:// or https://`,
    );
  }
}

function positiveInt(name: string, value: string, allowZero = true): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || (!allowZero && n === 0)) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `--kvstore-opt ${name}=${value}: must be a ${allowZero ? 'non-negative' : 'positive'} integer`,
    );
  }
  return n;
}

/**
 * `--kvstore` and `--kvstore-opt k=v` as the reference takes them. Options:
 * etcd.address, etcd.config, etcd.qps, etcd.bootstrapQps, etcd.maxInflight,
 * etcd.limit, etcd.leaseTTL (seconds; the reference's --kvstore-lease-ttl).
 */
export async function resolveKvstoreConfig(
  kind: string | undefined,
  opts: readonly string[],
): Promise<KvstoreConfig> {
  const kv = new Map<string, string>();
  for (const o of opts) {
    const eq = o.indexOf('=');
    if (eq <= 0) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `--kvstore-opt "${o}": expected key=value`,
      );
    }
    kv.set(o.slice(0, eq), o.slice(eq + 1));
  }
  const known = new Set([
    'etcd.address',
    'etcd.config',
    'etcd.qps',
    'etcd.bootstrapQps',
    'etcd.maxInflight',
    'etcd.limit',
    'etcd.leaseTTL',
  ]);
  for (const k of kv.keys()) {
    if (!known.has(k)) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `--kvstore-opt ${k}: unknown option (known: ${[...known].join(', ')})`,
      );
    }
  }
  const effectiveKind = kind ?? (kv.size > 0 ? 'etcd' : 'memory');
  if (effectiveKind !== 'etcd' && effectiveKind !== 'memory') {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `--kvstore ${effectiveKind}: must be "etcd" or "memory"`,
    );
  }
  const common = {
    qps: kv.has('etcd.qps') ? positiveInt('etcd.qps', kv.get('etcd.qps') ?? '') : 0,
    bootstrapQps: kv.has('etcd.bootstrapQps')
      ? positiveInt('etcd.bootstrapQps', kv.get('etcd.bootstrapQps') ?? '')
      : undefined,
    maxInflight: kv.has('etcd.maxInflight')
      ? positiveInt('etcd.maxInflight', kv.get('etcd.maxInflight') ?? '')
      : 0,
    listLimit: kv.has('etcd.limit')
      ? positiveInt('etcd.limit', kv.get('etcd.limit') ?? '', false)
      : 256,
    leaseTtlSeconds: kv.has('etcd.leaseTTL')
      ? positiveInt('etcd.leaseTTL', kv.get('etcd.leaseTTL') ?? '', false)
      : undefined,
  };
  if (effectiveKind === 'memory') return { kind: 'memory', ...common };

  const address = kv.get('etcd.address');
  const file = kv.get('etcd.config');
  if (address === undefined && file === undefined) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      'etcd kvstore needs --kvstore-opt etcd.address=URL or --kvstore-opt etcd.config=FILE',
    );
  }
  let etcd: EtcdClientConfig;
  if (file !== undefined) {
    etcd = await loadEtcdConfigFile(file);
  } else {
    const endpoints = (address ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter((s) => s !== '');
    for (const ep of endpoints) checkEndpoint(ep, '--kvstore-opt etcd.address');
    etcd = { endpoints };
  }
  return { kind: 'etcd', etcd, configFile: file, ...common };
}

async function readPem(path: string | undefined, what: string): Promise<Buffer | undefined> {
  if (path === undefined) return undefined;
  try {
    return await readFile(path);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.ConfigNotFound,
      `${what} ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : errorMessage(err)}`,
    );
  }
}

export async function etcdTls(cfg: EtcdClientConfig): Promise<EtcdTls | undefined> {
  const ca = await readPem(cfg.trustedCaFile, 'trusted-ca-file');
  const cert = await readPem(cfg.certFile, 'cert-file');
  const key = await readPem(cfg.keyFile, 'key-file');
  if (ca === undefined && cert === undefined && key === undefined) return undefined;
  if ((cert === undefined) !== (key === undefined)) {
    throw new ClusterMeshError(
      ErrorCode.InvalidConfig,
      'etcd config: cert-file and key-file must be given together',
    );
  }
  return { ca, cert, key };
}

/** Memory stores by name, so that several clients in one process can share one. */
const memoryStores = new Map<string, MemoryStore>();
export function sharedMemoryStore(name: string): MemoryStore {
  let s = memoryStores.get(name);
  if (s === undefined) {
    s = new MemoryStore();
    memoryStores.set(name, s);
  }
  return s;
}

export interface CreateBackendOptions {
  readonly log?: Logger | undefined;
  /** For `memory`: the name of the in-process store to join. */
  readonly memoryStoreName?: string | undefined;
  readonly leaseTtlSeconds?: number | undefined;
  /** Deadline of each etcd call (default 15 s). */
  readonly callTimeoutMs?: number | undefined;
}

export async function createBackend(
  cfg: KvstoreConfig,
  opts: CreateBackendOptions = {},
): Promise<Backend> {
  const leaseTtlSeconds = cfg.leaseTtlSeconds ?? opts.leaseTtlSeconds;
  if (cfg.kind === 'memory') {
    return new MemoryBackend(sharedMemoryStore(opts.memoryStoreName ?? 'default'), {
      log: opts.log,
      listLimit: cfg.listLimit,
      leaseTtlSeconds,
    });
  }
  const etcd = cfg.etcd;
  if (etcd === undefined) {
    throw new ClusterMeshError(ErrorCode.InvalidConfig, 'etcd kvstore without endpoints');
  }
  return new EtcdBackend({
    endpoints: etcd.endpoints,
    hostAliases: etcd.hostAliases,
    tls: await etcdTls(etcd),
    qps: cfg.bootstrapQps ?? cfg.qps,
    maxInflight: cfg.maxInflight,
    listLimit: cfg.listLimit,
    leaseTtlSeconds,
    callTimeoutMs: opts.callTimeoutMs,
    log: opts.log,
  });
}
