/**
 * Global services → `cilium/state/services/v1/<cluster>/<namespace>/<name>`, as the
 * reference apiserver exports them (`k8s.NewClusterService` run in "shared only" mode,
 * spec §6.2): a Service is written while it is global and shared and has a ClusterIP;
 * otherwise its key is deleted.
 */
import type { Logger } from 'pino';
import type { LocalCluster } from '../convert/cilium.js';
import type { Backend } from '../kvstore/backend.js';
import {
  ServicesPrefix,
  encodeClusterService,
  globalServiceSettings,
  serviceKeyName,
  type ClusterService,
} from '../keyspace/index.js';
import { errorMessage } from '../lib/errors.js';
import type { KvstoreMetrics } from '../metrics/kvstore.js';
import type { EndpointSlice, Service } from '../registry/objects.js';
import { serviceToClusterService, watchServices } from '../service/local-services.js';
import { SyncStore } from '../store/syncstore.js';
import type { Synchronizer } from './synchronizers.js';

/** What the services synchronizer needs; the same shape as the other synchronizers' deps. */
export interface ServicesDeps {
  readonly backend: Backend;
  readonly cluster: LocalCluster;
  readonly log: Logger;
  readonly metrics: KvstoreMetrics;
}

/**
 * The ClusterService to export for `svc`, or `undefined` when the reference would not
 * export it: not global, not shared, ExternalName, or without a ClusterIP.
 */
export function clusterServiceFromService(
  svc: Service,
  slices: readonly EndpointSlice[],
  cluster: LocalCluster,
): ClusterService | undefined {
  const settings = globalServiceSettings(svc.metadata.annotations);
  if (!settings.global || !settings.shared) return undefined;
  return serviceToClusterService(svc, slices, cluster);
}

/**
 * Mirrors global shared Services, with the ready backends of their EndpointSlices,
 * into `cilium/state/services/v1` through one SyncStore. The canary
 * `cilium/synced/<cluster>/cilium/state/services/v1` is requested once both the
 * Service and the EndpointSlice informers have delivered their initial lists, so that
 * readers never see a service whose backends are still missing.
 */
export function servicesSynchronizer(deps: ServicesDeps): Synchronizer {
  const log = deps.log.child({ synchronizer: 'services' });
  const store = new SyncStore({
    backend: deps.backend,
    sourceCluster: deps.cluster.name,
    prefix: ServicesPrefix,
    log: deps.log,
    metrics: deps.metrics.syncStore(ServicesPrefix),
  });
  const watcher = watchServices(
    deps.backend,
    log,
    (id, svc, slices) => {
      const [namespace = 'default', name = ''] = id.split('/');
      const key = serviceKeyName(deps.cluster.name, namespace, name);
      let exported: ClusterService | undefined;
      if (svc !== undefined) {
        try {
          exported = clusterServiceFromService(svc, slices, deps.cluster);
        } catch (err) {
          // Withdrawing is safer than leaving a stale export behind.
          log.warn({ service: id, err: errorMessage(err) }, 'cannot convert service');
        }
      }
      if (exported === undefined) store.deleteKey(key);
      else store.upsertKey(key, encodeClusterService(exported));
    },
    () => {
      store.synced();
    },
  );
  return {
    name: 'services',
    store,
    run: async (signal) => {
      await Promise.all([store.run(signal), watcher.run(signal)]);
    },
  };
}
