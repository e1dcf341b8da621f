import { readFile } from 'node:fs/promises';
import type { Logger } from 'pino';
import { parse as parseYaml } from 'yaml';
import type { Backend } from '../kvstore/backend.js';
import { etcdTls, loadEtcdConfigFile, sharedMemoryStore } from '../kvstore/config.js';
import { EtcdBackend } from '../kvstore/etcd.js';
import { MemoryBackend } from '../kvstore/memory.js';

export interface RemoteBackendRequest {
  readonly clusterName: string;
  /** The cluster's file in the clustermesh config directory. */
  readonly configPath: string;
  /** Deadline of each kvstore call, so a black-holed remote cannot hang a controller. */
  readonly callTimeoutMs: number;
  readonly log: Logger;
}

/**
 * Creates the (not yet connected) client of one remote cluster. Injectable so that
 * tests and the in-process local mesh can use memory backends.
 */
export type RemoteBackendFactory = (req: RemoteBackendRequest) => Promise<Backend>;

const MEMORY_SCHEME = 'memory://';

/**
 * The etcd client YAML of the reference, plus one extension for the in-process
 * local mesh: a single endpoint `memory://<store>` joins the named in-memory store
 * (kvstore `sharedMemoryStore`) instead of dialling etcd.
 */
/** What remote connections inherit from the local kvstore options (as in the reference). */
export interface InheritedKvstoreOptions {
  readonly listLimit?: number | undefined;
  readonly qps?: number | undefined;
  readonly maxInflight?: number | undefined;
}

/** A factory whose connections use the local `etcd.limit`, `etcd.qps`, `etcd.maxInflight`. */
export function remoteBackendFactory(inherit: InheritedKvstoreOptions = {}): RemoteBackendFactory {
  return async (req) => {
    const store = await memoryStoreName(req.configPath);
    if (store !== undefined) {
      return new MemoryBackend(sharedMemoryStore(store), {
        log: req.log,
        listLimit: inherit.listLimit,
      });
    }
    const cfg = await loadEtcdConfigFile(req.configPath);
    return new EtcdBackend({
      endpoints: cfg.endpoints,
      hostAliases: cfg.hostAliases,
      tls: await etcdTls(cfg),
      callTimeoutMs: req.callTimeoutMs,
      listLimit: inherit.listLimit,
      qps: inherit.qps,
      maxInflight: inherit.maxInflight,
      log: req.log,
    });
  };
}

export const defaultRemoteBackendFactory: RemoteBackendFactory = remoteBackendFactory();

async function memoryStoreName(path: string): Promise<string | undefined> {
  let doc: unknown;
  try {
    doc = parseYaml(await readFile(path, 'utf8'));
  } catch {
    // Let the etcd loader produce its precise error message.
    return undefined;
  }
  if (typeof doc !== 'object' || doc === null || !('endpoints' in doc)) return undefined;
  const eps: unknown = doc.endpoints;
  if (!Array.isArray(eps) || eps.length !== 1) return undefined;
  const ep: unknown = eps[0];
  if (typeof ep !== 'string' || !ep.startsWith(MEMORY_SCHEME)) return undefined;
  const name = ep.slice(MEMORY_SCHEME.length);
  return name === '' ? undefined : name;
}
