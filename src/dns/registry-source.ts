import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { createInformer } from '../registry/informer.js';
import { SERVICE_NAME_LABEL, type EndpointSlice, type Service } from '../registry/objects.js';
import type { ObjectEvent } from '../registry/types.js';
import type { DnsRecordSource, EndpointRecord, ServiceRecord } from './records.js';

export interface RegistryDnsSource {
  readonly source: DnsRecordSource;
  /** Runs the Service and EndpointSlice informers until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Both informers delivered their initial list. */
  readonly synced: boolean;
}

type Key = string;

function keyOf(namespace: string | undefined, name: string): Key {
  return `${namespace ?? 'default'}/${name}`;
}

/**
 * DNS records from the local registry. Every event recomputes the record of the one
 * Service it touches, so a query is a single map lookup whatever the cluster's size.
 */
export function createRegistryDnsSource(backend: Backend, log: Logger): RegistryDnsSource {
  const services = new Map<Key, Service>();
  /** Service key → its slices by slice key; the label may point at a Service not yet seen. */
  const slicesByService = new Map<Key, Map<Key, EndpointSlice>>();
  /** Slice key → the Service key it was filed under, to refile it when its label changes. */
  const sliceOwner = new Map<Key, Key>();
  const records = new Map<Key, ServiceRecord>();

  const refresh = (svcKey: Key): void => {
    const svc = services.get(svcKey);
    const record =
      svc === undefined ? undefined : toRecord(svc, slicesByService.get(svcKey)?.values() ?? []);
    if (record === undefined) records.delete(svcKey);
    else records.set(svcKey, record);
  };

  const onService = (ev: ObjectEvent<Service>): void => {
    const key = keyOf(ev.object.metadata.namespace, ev.object.metadata.name);
    if (ev.type === 'deleted') services.delete(key);
    else services.set(key, ev.object);
    refresh(key);
  };

  const onSlice = (ev: ObjectEvent<EndpointSlice>): void => {
    const meta = ev.object.metadata;
    const sliceKey = keyOf(meta.namespace, meta.name);
    const previous = sliceOwner.get(sliceKey);
    if (previous !== undefined) {
      const slices = slicesByService.get(previous);
      slices?.delete(sliceKey);
      if (slices?.size === 0) slicesByService.delete(previous);
      sliceOwner.delete(sliceKey);
    }
    const serviceName = meta.labels?.[SERVICE_NAME_LABEL];
    const owner =
      ev.type === 'deleted' || serviceName === undefined
        ? undefined
        : keyOf(meta.namespace, serviceName);
    if (owner !== undefined) {
      let slices = slicesByService.get(owner);
      if (slices === undefined) {
        slices = new Map();
        slicesByService.set(owner, slices);
      }
      slices.set(sliceKey, ev.object);
      sliceOwner.set(sliceKey, owner);
      refresh(owner);
    }
    if (previous !== undefined && previous !== owner) refresh(previous);
  };

  const dnsLog = log.child({ component: 'dns-source' });
  const serviceInformer = createInformer(
    backend,
    'Service',
    { onEvent: onService },
    { log: dnsLog },
  );
  const sliceInformer = createInformer(
    backend,
    'EndpointSlice',
    { onEvent: onSlice },
    { log: dnsLog },
  );

  return {
    source: {
      service: (namespace, name) => records.get(keyOf(namespace, name)),
    },
    get synced() {
      return serviceInformer.hasSynced && sliceInformer.hasSynced;
    },
    async run(signal: AbortSignal): Promise<void> {
      // Should one informer fail, the other must not run on with nobody awaiting it.
      const stop = new AbortController();
      const onAbort = (): void => {
        stop.abort(signal.reason);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.all(
          [serviceInformer, sliceInformer].map((informer) =>
            informer.run(stop.signal).catch((err: unknown) => {
              stop.abort();
              throw err;
            }),
          ),
        );
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
  };
}

/**
 * `undefined` for ExternalName Services: a CNAME to the external name would be needed,
 * which the record shape does not carry (yet). A ClusterIP still empty (not allocated)
 * is served like headless, so that such a Service still resolves, to its endpoints.
 */
function toRecord(svc: Service, slices: Iterable<EndpointSlice>): ServiceRecord | undefined {
  if (svc.spec.type === 'ExternalName') return undefined;
  const clusterIP = svc.spec.clusterIP === '' ? undefined : svc.spec.clusterIP;
  const endpoints: EndpointRecord[] = [];
  const seen = new Set<string>();
  // By name: the answer order must not depend on the order events arrived in.
  const ordered = [...slices].sort((a, b) => compare(a.metadata.name, b.metadata.name));
  for (const slice of ordered) {
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

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
