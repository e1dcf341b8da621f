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
export function endpointLabel(ep: EndpointRecord): string {
  const hostname = ep.hostname ?? '';
  return (hostname !== '' ? hostname : ep.ip.replace(/[.:]/g, '-')).toLowerCase();
}
