import type { LocalCluster } from '../convert/cilium.js';
import {
  canonicalIP,
  globalServiceSettings,
  makeClusterService,
  type ClusterService,
  type L4Addr,
  type PortConfiguration,
} from '../keyspace/index.js';
import type { Endpoint, EndpointSlice, Service } from '../registry/objects.js';

/**
 * The local cluster's Services in the ClusterService shape, shared by the apiserver's
 * export and the agent's service table; both feed it from the Service ⇄ EndpointSlice
 * join of src/registry/service-join.ts.
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
