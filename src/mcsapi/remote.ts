import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import {
  decodeClusterService,
  decodeMCSAPIServiceSpec,
  remoteClusterLayout,
  type CiliumClusterConfig,
  type ClusterService,
  type MCSAPIServiceSpec,
  type MaxConnectedClusters,
} from '../keyspace/index.js';
import type { RemoteClusterLogic } from '../clustermesh/remote-cluster.js';
import type { RemoteLogicStatus } from '../clustermesh/status.js';
import { WatchStore } from '../store/watchstore.js';
import { newWatchStoreManager } from '../store/watchstoremgr.js';
import type { GlobalExports } from './global-exports.js';

/** Counts rejected remote entries per cluster and kind (a metric). */
export type OperatorRejectHook = (cluster: string, kind: 'serviceexports' | 'services') => void;

/**
 * The operator's logic for one remote cluster (Cilium's operator `RemoteCluster.Run`):
 * the remote's service exports, and its derived Services' endpoints for headless
 * imports. Where it reads follows the remote's cluster config exactly as the agent's
 * does: the remote's own `cilium/state/…` prefixes, or the local KVStoreMesh cache
 * (`cilium/cache/…/<cluster>`) when the config read says `cached`. A remote that does
 * not export (no `serviceExportsEnabled`) counts as synced with nothing.
 */
export class OperatorRemoteCluster implements RemoteClusterLogic {
  private readonly exports: WatchStore<MCSAPIServiceSpec>;
  private readonly services: WatchStore<ClusterService>;
  private clusterId = 0;
  private exportsSupported = true;
  private exportsListed = false;
  private servicesListed = false;

  constructor(
    private readonly name: string,
    local: { readonly id: number; readonly maxConnectedClusters: MaxConnectedClusters },
    private readonly global: GlobalExports,
    private readonly log: Logger,
    onReject?: OperatorRejectHook,
    /** Called when the remote's state is listed for the first time. */
    private readonly onListed?: () => void,
  ) {
    const common = { clusterName: name, log, stopOnClusterChange: true };
    this.exports = new WatchStore<MCSAPIServiceSpec>({
      ...common,
      decode: (key, value) =>
        decodeMCSAPIServiceSpec(`${name}/${key}`, value, { expectedCluster: name }),
      onSync: [
        () => {
          this.exportsListed = true;
          this.notifyListed();
        },
      ],
      observer: {
        onUpdate: (_key, spec) => {
          this.global.upsert(spec);
        },
        onDelete: (_key, spec) => {
          this.global.delete(name, spec.namespace, spec.name);
        },
      },
      metrics: { invalid: () => onReject?.(name, 'serviceexports') },
    });
    this.services = new WatchStore<ClusterService>({
      ...common,
      decode: (key, value) =>
        decodeClusterService(`${name}/${key}`, value, {
          localClusterId: local.id,
          maxConnectedClusters: local.maxConnectedClusters,
          expectedCluster: name,
          expectedClusterId: this.clusterId,
        }),
      onSync: [
        () => {
          this.servicesListed = true;
          this.notifyListed();
        },
      ],
      observer: {
        onUpdate: (_key, cs) => {
          // Only derived Services matter here: they carry the endpoints of imports.
          if (cs.name.startsWith('derived-')) this.global.upsertService(cs);
        },
        onDelete: (_key, cs) => {
          this.global.deleteService(name, cs.namespace, cs.name);
        },
      },
      metrics: { invalid: () => onReject?.(name, 'services') },
    });
  }

  async run(
    backend: Backend,
    config: CiliumClusterConfig,
    ready: () => void,
    signal: AbortSignal,
  ): Promise<void> {
    this.clusterId = config.id;
    const layout = remoteClusterLayout(this.name, config.capabilities.cached);
    const mgr = newWatchStoreManager(
      backend,
      this.name,
      config.capabilities.syncedCanaries,
      this.log,
    );
    this.exportsSupported = config.capabilities.serviceExportsEnabled !== null;
    this.notifyListed();
    if (this.exportsSupported) {
      mgr.register(layout.serviceexports.syncedKey, (s) =>
        this.exports.watch(backend, layout.serviceexports.watchPrefix, s),
      );
    } else {
      this.log.info('remote cluster does not export MCS-API services');
    }
    mgr.register(layout.services.syncedKey, (s) =>
      this.services.watch(backend, layout.services.watchPrefix, s),
    );
    ready();
    await mgr.run(signal);
  }

  private notifyListed(): void {
    if (this.listed) this.onListed?.();
  }

  drain(): void {
    this.exports.drain();
    this.services.drain();
  }

  /**
   * Both stores were listed at least once (a remote without exports counts as listed):
   * from then on the operator's view of this cluster is complete, also across outages.
   */
  get listed(): boolean {
    return (!this.exportsSupported || this.exportsListed) && this.servicesListed;
  }

  /** A connection reached the point of registering the watches. */
  get connected(): boolean {
    return this.clusterId !== 0;
  }

  status(): RemoteLogicStatus {
    return {
      numNodes: 0,
      numEndpoints: 0,
      numIdentities: 0,
      numSharedServices: this.services.numEntries,
      numServiceExports: this.exports.numEntries,
      // The operator never watches nodes, endpoints or identities: reported synced, as Cilium's.
      synced: {
        nodes: true,
        endpoints: true,
        identities: true,
        services: this.services.synced,
        ...(this.exportsSupported ? { serviceExports: this.exports.synced } : {}),
      },
    };
  }
}
