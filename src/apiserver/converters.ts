import {
  ipcacheEntriesFromEndpoint,
  labelStringFromCiliumIdentity,
  nodeFromCiliumNode,
  type LocalCluster,
} from '../convert/cilium.js';
import { IPOwners } from '../ipcache/owners.js';
import {
  encodeClusterService,
  encodeIPIdentityPair,
  encodeMCSAPIServiceSpec,
  encodeNode,
  globalServiceSettings,
  nodeKeyName,
  serviceExportKeyName,
  serviceKeyName,
  type ClusterService,
} from '../keyspace/index.js';
import { exportSpec, type ExportJoinEvent } from '../mcsapi/export.js';
import { errorMessage } from '../lib/errors.js';
import type { EndpointSlice, Service } from '../registry/objects.js';
import type { ServiceJoinEvent } from '../registry/service-join.js';
import type { CiliumEndpoint, CiliumIdentity, CiliumNode, ObjectEvent } from '../registry/types.js';
import { serviceToClusterService } from '../service/local-services.js';
import { describeObject, type Converter, type KeyUpdate } from './synchronizer.js';

/**
 * One converter per kind the clustermesh-apiserver exports: registry objects in, keys of
 * the kind's store out, in the formats of src/convert/cilium.ts and src/keyspace.
 */

/** CiliumNode → `<cluster>/<node>` holding the node's JSON. */
export function nodeConverter(cluster: LocalCluster): Converter<ObjectEvent<CiliumNode>> {
  return {
    describe: describeObject,
    convert: (ev) => {
      const key = nodeKeyName(cluster.name, ev.object.metadata.name);
      const value =
        ev.type === 'deleted' ? undefined : encodeNode(nodeFromCiliumNode(ev.object, cluster));
      return [{ key, value }];
    },
  };
}

/**
 * CiliumIdentity → `<id>` holding its label string. An identity without security labels
 * is withdrawn: agents could not match anything against it.
 */
export function identityConverter(): Converter<ObjectEvent<CiliumIdentity>> {
  return {
    describe: describeObject,
    convert: (ev, log) => {
      const id = ev.object.metadata.name;
      const value = ev.type === 'deleted' ? undefined : labelStringFromCiliumIdentity(ev.object);
      if (value === undefined && ev.type !== 'deleted') {
        log.warn({ identity: id }, 'identity without security labels skipped');
      }
      return [{ key: id, value }];
    },
  };
}

/**
 * CiliumEndpoint → one `<ip>` per address it claims. Several endpoints may claim one IP
 * (a pod being replaced); the first claimant keeps it until it lets go.
 */
export function endpointConverter(): Converter<ObjectEvent<CiliumEndpoint>> {
  const owners = new IPOwners();
  return {
    describe: describeObject,
    convert: (ev) => {
      const owner = `${ev.object.metadata.namespace ?? 'default'}/${ev.object.metadata.name}`;
      const entries = ev.type === 'deleted' ? [] : ipcacheEntriesFromEndpoint(ev.object);
      return owners.update(owner, entries).map(({ ip, winner }): KeyUpdate => ({
        key: ip,
        value: winner === undefined ? undefined : encodeIPIdentityPair(winner),
      }));
    },
  };
}

/**
 * The ClusterService to export for `svc`, or `undefined` when Cilium would not export it:
 * not global, not shared, or ExternalName. Headless Services are exported with empty
 * frontends, their backends and hostnames, as Cilium exports them.
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
 * Service with its EndpointSlices → `<cluster>/<namespace>/<name>`, as the reference
 * apiserver exports services (`k8s.NewClusterService` in "shared only" mode): written
 * while the Service is global and shared, deleted otherwise.
 */
export function serviceConverter(cluster: LocalCluster): Converter<ServiceJoinEvent> {
  return {
    describe: (ev) => `${ev.namespace}/${ev.name}`,
    convert: (ev, log) => {
      const key = serviceKeyName(cluster.name, ev.namespace, ev.name);
      let exported: ClusterService | undefined;
      if (ev.service !== undefined) {
        try {
          exported = clusterServiceFromService(ev.service, ev.slices, cluster);
        } catch (err) {
          // Withdrawing is safer than leaving a stale export behind.
          log.warn(
            { service: `${ev.namespace}/${ev.name}`, err: errorMessage(err) },
            'cannot convert service',
          );
        }
      }
      return [{ key, value: exported === undefined ? undefined : encodeClusterService(exported) }];
    },
  };
}

/**
 * ServiceExport with its Service → `<cluster>/<namespace>/<name>` holding the
 * MCSAPIServiceSpec, while both exist and the Service is not ExternalName (Cilium's
 * `serviceexportsync`) in a global namespace; deleted otherwise. The export's conditions are the operator's.
 */
export function serviceExportConverter(cluster: LocalCluster): Converter<ExportJoinEvent> {
  return {
    describe: (ev) => `${ev.namespace}/${ev.name}`,
    convert: (ev) => {
      const key = serviceExportKeyName({ cluster: cluster.name, ...ev });
      if (ev.serviceExport === undefined) return [{ key, value: undefined }];
      const result = exportSpec(cluster.name, ev.serviceExport, ev.service, ev.namespaceObject);
      return [{ key, value: result.valid ? encodeMCSAPIServiceSpec(result.spec) : undefined }];
    },
  };
}
