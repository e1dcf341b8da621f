import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import {
  IPCachePrefix,
  IdentitiesIdPrefix,
  IdentitiesPrefix,
  IPIdentitiesPath,
  NodesPrefix,
  ServiceExportsPrefix,
  encodeIPIdentityPair,
  encodeNode,
  nodeKeyName,
} from '../keyspace/index.js';
import type { KvstoreMetrics } from '../metrics/kvstore.js';
import { createInformer } from '../registry/informer.js';
import type {
  CiliumEndpoint,
  CiliumIdentity,
  CiliumNode,
  Informer,
  ObjectEvent,
  RegistryObject,
} from '../registry/types.js';
import { SyncStore } from '../store/syncstore.js';
import {
  ipcacheEntriesFromEndpoint,
  labelStringFromCiliumIdentity,
  nodeFromCiliumNode,
  type LocalCluster,
} from '../convert/cilium.js';
import { IPOwners } from '../ipcache/owners.js';
import { servicesSynchronizer } from './services.js';

/** One registry kind mirrored into one SyncStore, with its canary. */
export interface Synchronizer {
  readonly name: string;
  readonly store: SyncStore;
  /** Runs the informer and the store until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
}

interface Deps {
  readonly backend: Backend;
  readonly cluster: LocalCluster;
  readonly log: Logger;
  readonly metrics: KvstoreMetrics;
}

function newStore(deps: Deps, prefix: string, syncedKey?: string): SyncStore {
  return new SyncStore({
    backend: deps.backend,
    sourceCluster: deps.cluster.name,
    prefix,
    syncedKey,
    log: deps.log,
    metrics: deps.metrics.syncStore(prefix),
  });
}

/** Mirrors the events of one kind through `apply`; the canary follows the informer's sync. */
function mirror<T extends RegistryObject>(
  deps: Deps,
  name: string,
  kind: string,
  store: SyncStore,
  apply: (ev: ObjectEvent<T>) => void,
): Synchronizer {
  const log = deps.log.child({ synchronizer: name });
  let informer: Informer<T> | undefined;
  return {
    name,
    store,
    run: async (signal) => {
      informer = createInformer<T>(
        deps.backend,
        kind,
        {
          onEvent: (ev) => {
            try {
              apply(ev);
            } catch (err) {
              log.warn(
                { err: String(err), object: ev.object.metadata.name },
                'cannot convert object',
              );
            }
          },
          onSynced: () => {
            store.synced();
          },
        },
        { log },
      );
      await Promise.all([store.run(signal), informer.run(signal)]);
    },
  };
}

export function nodesSynchronizer(deps: Deps): Synchronizer {
  const store = newStore(deps, NodesPrefix);
  return mirror<CiliumNode>(deps, 'nodes', 'CiliumNode', store, (ev) => {
    const key = nodeKeyName(deps.cluster.name, ev.object.metadata.name);
    if (ev.type === 'deleted') store.deleteKey(key);
    else store.upsertKey(key, encodeNode(nodeFromCiliumNode(ev.object, deps.cluster)));
  });
}

export function identitiesSynchronizer(deps: Deps): Synchronizer {
  // Canary `cilium/synced/<c>/cilium/state/identities/v1`, as the reference overrides it.
  const store = newStore(deps, IdentitiesIdPrefix, IdentitiesPrefix);
  return mirror<CiliumIdentity>(deps, 'identities', 'CiliumIdentity', store, (ev) => {
    const id = ev.object.metadata.name;
    const value = ev.type === 'deleted' ? undefined : labelStringFromCiliumIdentity(ev.object);
    if (value === undefined) {
      if (ev.type !== 'deleted')
        deps.log.warn({ identity: id }, 'identity without security labels skipped');
      store.deleteKey(id);
    } else {
      store.upsertKey(id, value);
    }
  });
}

export function endpointsSynchronizer(deps: Deps): Synchronizer {
  // Canary `cilium/synced/<c>/cilium/state/ip/v1`, as the reference overrides it.
  const store = newStore(deps, IPCachePrefix, IPIdentitiesPath);
  const owners = new IPOwners();
  return mirror<CiliumEndpoint>(deps, 'endpoints', 'CiliumEndpoint', store, (ev) => {
    const key = `${ev.object.metadata.namespace ?? 'default'}/${ev.object.metadata.name}`;
    const entries = ev.type === 'deleted' ? [] : ipcacheEntriesFromEndpoint(ev.object);
    for (const { ip, winner } of owners.update(key, entries)) {
      if (winner === undefined) store.deleteKey(ip);
      else store.upsertKey(ip, encodeIPIdentityPair(winner));
    }
  });
}

/**
 * Stores whose content arrives with later issues (global services, MCS-API
 * exports). They are synced at once, as the reference marks a disabled resource,
 * so that readers gated on their canaries do not wait forever.
 */
export function emptySynchronizer(deps: Deps, name: string, prefix: string): Synchronizer {
  const store = newStore(deps, prefix);
  return {
    name,
    store,
    run: async (signal) => {
      store.synced();
      await store.run(signal);
    },
  };
}

export function allSynchronizers(deps: Deps): Synchronizer[] {
  return [
    nodesSynchronizer(deps),
    identitiesSynchronizer(deps),
    endpointsSynchronizer(deps),
    servicesSynchronizer(deps),
    emptySynchronizer(deps, 'serviceexports', ServiceExportsPrefix),
  ];
}
