/**
 * What the DNS server asks about the cluster. Kept apart from the registry so the server
 * can be tested (and later fed by a Kubernetes adapter) without a kvstore.
 */

export interface ServicePortRecord {
  readonly name?: string | undefined;
  readonly port: number;
  readonly protocol: string;
}

export interface EndpointRecord {
  readonly ip: string;
  readonly hostname?: string | undefined;
}

export interface ServiceRecord {
  /** undefined or 'None' = headless (A records are the endpoints' IPs). */
  readonly clusterIP?: string | undefined;
  readonly ports: readonly ServicePortRecord[];
  /** Ready endpoints (for headless services and SRV targets of headless). */
  readonly endpoints: readonly EndpointRecord[];
}

export interface DnsRecordSource {
  /** Called once per query: must be cheap (a map lookup). */
  service(namespace: string, name: string): ServiceRecord | undefined;
  /**
   * What the `clusterset.local` zone answers from. A source without it (a cluster with no
   * MCS-API) still gets the zone, empty: every service name there is NXDOMAIN.
   */
  readonly clusterset?: ClusterSetRecordSource | undefined;
}

/** `multicluster.x-k8s.io` ServiceImport `spec.type`. */
export type ServiceImportType = 'ClusterSetIP' | 'Headless';

/** One ready address of an exporting cluster, from the MCS EndpointSlices of an import. */
export interface ImportedEndpointRecord {
  /** The slice's `multicluster.kubernetes.io/source-cluster` label: the cluster id in names. */
  readonly cluster: string;
  readonly ip: string;
  readonly hostname?: string | undefined;
  /**
   * The slice's ports: what the endpoint really listens on, and only the ports its cluster
   * exposes. Empty when the slice lists none; the import's ports stand in then.
   */
  readonly ports: readonly ServicePortRecord[];
}

export interface ServiceImportRecord {
  readonly type: ServiceImportType;
  /** The ClusterSetIP(s), valid addresses, at most one per family; empty for Headless. */
  readonly ips: readonly string[];
  readonly ports: readonly ServicePortRecord[];
  /** Ready endpoints of every exporting cluster, ordered by cluster. */
  readonly endpoints: readonly ImportedEndpointRecord[];
}

export interface ClusterSetRecordSource {
  /** Called once per query: must be cheap (a map lookup). */
  serviceImport(namespace: string, name: string): ServiceImportRecord | undefined;
  /** `<ns>.svc.clusterset.local` exists (NODATA) rather than not at all (NXDOMAIN). */
  hasNamespace(namespace: string): boolean;
  /**
   * False until the initial lists are in. Meanwhile a name not found is answered SERVFAIL:
   * an NXDOMAIN would be cached by the client for the negative TTL although the name may
   * exist.
   */
  readonly synced: boolean;
}

export function isHeadless(svc: ServiceRecord): boolean {
  return (
    svc.clusterIP === undefined || svc.clusterIP === '' || svc.clusterIP.toLowerCase() === 'none'
  );
}

/**
 * The label naming an endpoint under its headless service (`<label>.<svc>.<ns>.svc.<domain>`):
 * its hostname, or its IP with dashes as Kubernetes DNS does.
 */
export function endpointLabel(ep: EndpointRecord | ImportedEndpointRecord): string {
  const hostname = ep.hostname ?? '';
  return (hostname !== '' ? hostname : ep.ip.replace(/[.:]/g, '-')).toLowerCase();
}
