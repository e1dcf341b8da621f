import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import type { EndpointSlice, Service } from '../registry/objects.js';
import { joinServices } from '../registry/service-join.js';
import type { DnsRecordSource, EndpointRecord, ServiceRecord } from './records.js';

export interface RegistryDnsSource {
  readonly source: DnsRecordSource;
  /** Runs the Service and EndpointSlice informers until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Both informers delivered their initial list. */
  readonly synced: boolean;
}

function keyOf(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * DNS records from the local registry. Every change recomputes the record of the one
 * Service it touches, so a query is a single map lookup whatever the cluster's size.
 */
export function createRegistryDnsSource(backend: Backend, log: Logger): RegistryDnsSource {
  const records = new Map<string, ServiceRecord>();
  const join = joinServices(
    backend,
    {
      onEvent: ({ namespace, name, service, slices }) => {
        const key = keyOf(namespace, name);
        const record = service === undefined ? undefined : toRecord(service, slices);
        if (record === undefined) records.delete(key);
        else records.set(key, record);
      },
    },
    { log: log.child({ component: 'dns-source' }) },
  );
  return {
    source: {
      service: (namespace, name) => records.get(keyOf(namespace, name)),
    },
    get synced() {
      return join.hasSynced;
    },
    run: (signal) => join.run(signal),
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
