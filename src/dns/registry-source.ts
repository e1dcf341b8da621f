import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { createInformer, runInformers } from '../registry/informer.js';
import type { EndpointSlice, Service } from '../registry/objects.js';
import { ServiceSliceIndex, type ServiceJoinEvent } from '../registry/service-join.js';
import type { Informer, RegistryObject } from '../registry/types.js';
import { ClusterSetIndex, shadowsLocalService } from './clusterset-source.js';
import type { DnsRecordSource, EndpointRecord, ServiceRecord } from './records.js';

export interface RegistryDnsSource {
  readonly source: DnsRecordSource;
  /** Runs the informers until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Every informer delivered its initial list. */
  readonly synced: boolean;
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * DNS records from the local registry: Services and their EndpointSlices for the cluster
 * zone, ServiceImports and MCS EndpointSlices for the clusterset zone. Every change
 * recomputes the record of the one name it touches, so a query is a single map lookup
 * whatever the cluster's size. One EndpointSlice informer feeds both zones.
 */
export function createRegistryDnsSource(backend: Backend, log: Logger): RegistryDnsSource {
  const informerLog = log.child({ component: 'dns-source' });
  const records = new Map<string, ServiceRecord>();
  const onJoin = ({ namespace, name, service, slices }: ServiceJoinEvent): void => {
    const key = keyOf(namespace, name);
    const record = service === undefined ? undefined : toRecord(service, slices);
    if (record === undefined) records.delete(key);
    else records.set(key, record);
  };
  const join = new ServiceSliceIndex();
  const clusterset = new ClusterSetIndex(() => informers.every((i) => i.hasSynced));

  const services = createInformer(
    backend,
    'Service',
    {
      onEvent: (ev) => {
        onJoin(join.onService(ev));
      },
    },
    { log: informerLog },
  );
  const slices = createInformer(
    backend,
    'EndpointSlice',
    {
      onEvent: (ev) => {
        // Other clusters' endpoints of `<svc>.<ns>` must not reach its cluster.local name:
        // only clusterset.local opts into the clusterset (KEP-1645).
        const local = shadowsLocalService(ev.object)
          ? { type: 'deleted' as const, object: ev.object }
          : ev;
        for (const change of join.onSlice(local)) onJoin(change);
        clusterset.onSlice(ev);
      },
    },
    { log: informerLog },
  );
  const imports = createInformer<RegistryObject>(
    backend,
    'ServiceImport',
    {
      onEvent: (ev) => {
        clusterset.onImport(ev);
      },
    },
    { log: informerLog },
  );
  const namespaces = createInformer(
    backend,
    'Namespace',
    {
      onEvent: (ev) => {
        clusterset.onNamespace(ev);
      },
    },
    { log: informerLog },
  );
  const informers: readonly Informer<RegistryObject>[] = [services, slices, imports, namespaces];

  return {
    source: {
      service: (namespace, name) => records.get(keyOf(namespace, name)),
      clusterset,
    },
    get synced() {
      return informers.every((i) => i.hasSynced);
    },
    run: (signal) => runInformers(informers, signal),
  };
}

/**
 * `undefined` for ExternalName Services: a CNAME to the external name would be needed,
 * which the record shape does not carry (yet). A ClusterIP still empty (not allocated)
 * is served like headless, so that such a Service still resolves, to its endpoints.
 */
function toRecord(svc: Service, slices: readonly EndpointSlice[]): ServiceRecord | undefined {
  if (svc.spec.type === 'ExternalName') return undefined;
  const clusterIP = svc.spec.clusterIP === '' ? undefined : svc.spec.clusterIP;
  const endpoints: EndpointRecord[] = [];
  const seen = new Set<string>();
  // The join lists slices by name: the answer order does not depend on event order.
  for (const slice of slices) {
    if (slice.addressType === 'FQDN') continue;
    for (const ep of slice.endpoints) {
      if (ep.conditions?.ready === false) continue;
      for (const ip of ep.addresses) {
        if (seen.has(ip)) continue;
        seen.add(ip);
        endpoints.push({ ip, hostname: ep.hostname });
      }
    }
  }
  return {
    clusterIP,
    ports: svc.spec.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
    endpoints,
  };
}
