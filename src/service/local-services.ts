import type { Logger } from 'pino';
import type { LocalCluster } from '../convert/cilium.js';
import type { Backend } from '../kvstore/backend.js';
import {
  canonicalIP,
  globalServiceSettings,
  makeClusterService,
  type ClusterService,
  type L4Addr,
  type PortConfiguration,
} from '../keyspace/index.js';
import { createInformer } from '../registry/informer.js';
import {
  SERVICE_NAME_LABEL,
  type Endpoint,
  type EndpointSlice,
  type Service,
} from '../registry/objects.js';
import type { ObjectEvent } from '../registry/types.js';

/**
 * The local cluster's Services joined with their EndpointSlices (by the
 * `kubernetes.io/service-name` label), shared by the apiserver's export and the
 * agent's service table.
 */

/**
 * The frontend addresses of a Service: its ClusterIPs (every family), canonical and
 * without duplicates. Empty for headless (`None`) and not-yet-allocated (`''`) ones.
 */
function frontendIPs(svc: Service): string[] {
  const listed = svc.spec.clusterIPs ?? [];
  const raw =
    listed.length > 0 ? listed : svc.spec.clusterIP === undefined ? [] : [svc.spec.clusterIP];
  const ips = new Set<string>();
  for (const text of raw) {
    if (text === '' || text.toLowerCase() === 'none') continue;
    const ip = canonicalIP(text);
    if (ip !== null) ips.add(ip);
  }
  return [...ips];
}

/**
 * Whether an endpoint is exported as a backend (reference `ParseEndpointSliceV1`):
 * ready ones, and not-ready ones that still serve, i.e. terminating pods draining
 * their connections. A missing condition counts as true, as the API defines it.
 */
function isServing(ep: Endpoint): boolean {
  const c = ep.conditions;
  if (c?.ready !== false) return true;
  return c.serving === true;
}

/**
 * A Service with the serving backends of its EndpointSlices in the ClusterService
 * shape (reference `k8s.NewClusterService`, later `service_sync.go`), whatever its
 * global-service settings: the export filters on them, the agent's service table uses
 * every Service. A Service without a ClusterIP (headless, or not yet allocated) has
 * no frontends but keeps its backends and hostnames, which is what remote clusters
 * need for cross-cluster DNS and MCS-API. `undefined` only for ExternalName; the
 * reference's NodePort-with-externalIPs case does not occur here.
 */
export function serviceToClusterService(
  svc: Service,
  slices: readonly EndpointSlice[],
  cluster: LocalCluster,
): ClusterService | undefined {
  const settings = globalServiceSettings(svc.metadata.annotations);
  if (svc.spec.type === 'ExternalName') return undefined;
  const ips = frontendIPs(svc);

  const frontendPorts: Record<string, L4Addr> = {};
  for (const p of svc.spec.ports) {
    frontendPorts[p.name ?? ''] = { Protocol: p.protocol, Port: p.port };
  }
  const frontends: Record<string, PortConfiguration> = {};
  for (const ip of ips) frontends[ip] = frontendPorts;

  const backends: Record<string, Record<string, L4Addr>> = {};
  const hostnames: Record<string, string> = {};
  // The reference merges slices in map order; sorting by name makes the result, and so
  // the written JSON, independent of event order (the SyncStore then skips rewrites).
  const ordered = [...slices].sort((a, b) =>
    a.metadata.name < b.metadata.name ? -1 : a.metadata.name > b.metadata.name ? 1 : 0,
  );
  for (const slice of ordered) {
    if (slice.addressType === 'FQDN') continue;
    const ports: Record<string, L4Addr> = {};
    for (const p of slice.ports) {
      // A port without a number means "all ports": nothing a load-balancer can target.
      if (p.port === undefined) continue;
      ports[p.name ?? ''] = { Protocol: p.protocol, Port: p.port };
    }
    for (const ep of slice.endpoints) {
      if (!isServing(ep)) continue;
      for (const text of ep.addresses) {
        const ip = canonicalIP(text);
        if (ip === null) continue;
        // An address listed by several slices keeps the union of their ports, as the
        // reference's `EndpointSlices.GetEndpoints` does; its first hostname stays.
        const known = backends[ip];
        if (known === undefined) {
          backends[ip] = { ...ports };
          if (ep.hostname !== undefined && ep.hostname !== '') hostnames[ip] = ep.hostname;
        } else {
          Object.assign(known, ports);
        }
      }
    }
  }

  return makeClusterService({
    cluster: cluster.name,
    clusterID: cluster.id,
    namespace: svc.metadata.namespace ?? 'default',
    name: svc.metadata.name,
    frontends,
    backends,
    hostnames,
    labels: { ...svc.metadata.labels },
    selector: { ...svc.spec.selector },
    includeExternal: settings.global,
    shared: settings.shared,
  });
}

function namespaced(namespace: string | undefined, name: string): string {
  return `${namespace ?? 'default'}/${name}`;
}

/** `<namespace>/<service>` of the Service a slice belongs to; `undefined` if unlabelled. */
function ownerOf(slice: EndpointSlice): string | undefined {
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return name === undefined || name === '' ? undefined : namespaced(slice.metadata.namespace, name);
}

/** Called with the Service (undefined once deleted) and its current slices. */
export type ServiceChange = (id: string, svc: Service | undefined, slices: EndpointSlice[]) => void;

/**
 * Watches Services and EndpointSlices of one registry and reports every Service whose
 * object or slices changed. `onSynced` fires once both informers delivered their
 * initial lists (the reference exports its canary only then).
 */
export function watchServices(
  backend: Backend,
  log: Logger,
  onChange: ServiceChange,
  onSynced: () => void,
): { run(signal: AbortSignal): Promise<void> } {
  // `<ns>/<name>` → Service.
  const services = new Map<string, Service>();
  // `<ns>/<service>` → slice name → slice.
  const slicesByService = new Map<string, Map<string, EndpointSlice>>();
  // `<ns>/<slice>` → `<ns>/<service>`: a relabelled slice must leave its former Service,
  // and a delete event's object is the only thing that identifies it.
  const sliceOwners = new Map<string, string>();

  const changed = (id: string): void => {
    onChange(id, services.get(id), [...(slicesByService.get(id)?.values() ?? [])]);
  };

  const onService = (ev: ObjectEvent<Service>): void => {
    const id = namespaced(ev.object.metadata.namespace, ev.object.metadata.name);
    if (ev.type === 'deleted') services.delete(id);
    else services.set(id, ev.object);
    changed(id);
  };

  const onSlice = (ev: ObjectEvent<EndpointSlice>): void => {
    const sliceId = namespaced(ev.object.metadata.namespace, ev.object.metadata.name);
    const sliceName = ev.object.metadata.name;
    const before = sliceOwners.get(sliceId);
    const after = ev.type === 'deleted' ? undefined : ownerOf(ev.object);
    if (before !== undefined) {
      const slices = slicesByService.get(before);
      slices?.delete(sliceName);
      if (slices?.size === 0) slicesByService.delete(before);
      sliceOwners.delete(sliceId);
    }
    if (after !== undefined && ev.type !== 'deleted') {
      let slices = slicesByService.get(after);
      if (slices === undefined) {
        slices = new Map();
        slicesByService.set(after, slices);
      }
      slices.set(sliceName, ev.object);
      sliceOwners.set(sliceId, after);
    }
    if (before !== undefined && before !== after) changed(before);
    if (after !== undefined) changed(after);
  };

  return {
    run: async (signal) => {
      let waiting = 2;
      const synced = (): void => {
        waiting--;
        if (waiting === 0) onSynced();
      };
      const serviceInformer = createInformer(
        backend,
        'Service',
        { onEvent: onService, onSynced: synced },
        { log },
      );
      const sliceInformer = createInformer(
        backend,
        'EndpointSlice',
        { onEvent: onSlice, onSynced: synced },
        { log },
      );
      await Promise.all([serviceInformer.run(signal), sliceInformer.run(signal)]);
    },
  };
}
