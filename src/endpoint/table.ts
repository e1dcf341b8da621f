/**
 * The endpoints of the local cluster, as their CiliumEndpoints describe them: endpoint
 * ID, pod, identity, addresses, the node they run on and their named ports. The agent
 * enforces policy for the ones on its own node and lists them (`endpoint list`).
 */
import type { CiliumEndpoint } from '../registry/types.js';

export interface NamedPortSpec {
  readonly port: number;
  readonly protocol: 'TCP' | 'UDP' | 'SCTP';
}

export interface LocalEndpoint {
  readonly id: number;
  readonly namespace: string;
  readonly pod: string;
  readonly identity: number;
  /** The identity's labels as the endpoint's status carries them. */
  readonly labels: readonly string[];
  readonly ipv4: string | undefined;
  readonly ipv6: string | undefined;
  /** The IP of the node the endpoint runs on. */
  readonly nodeIP: string;
  readonly state: string;
  readonly namedPorts: Readonly<Record<string, NamedPortSpec>> | undefined;
}

export type EndpointListener = (event: 'upsert' | 'delete', ep: LocalEndpoint) => void;

function protocolOf(p: string | undefined): NamedPortSpec['protocol'] {
  return p === 'UDP' || p === 'SCTP' ? p : 'TCP';
}

/** The endpoint a CiliumEndpoint describes; undefined while it has no address or node. */
export function endpointFromCEP(cep: CiliumEndpoint): LocalEndpoint | undefined {
  const st = cep.status;
  const addr = st.networking?.addressing[0];
  const nodeIP = st.networking?.node;
  if (addr === undefined || nodeIP === undefined) return undefined;
  let namedPorts: Record<string, NamedPortSpec> | undefined;
  for (const p of st['named-ports'] ?? []) {
    namedPorts ??= {};
    namedPorts[p.name] = { port: p.port, protocol: protocolOf(p.protocol) };
  }
  return {
    id: st.id ?? 0,
    namespace: cep.metadata.namespace ?? 'default',
    pod: cep.metadata.name,
    identity: st.identity?.id ?? 0,
    labels: [...(st.identity?.labels ?? [])].sort(),
    ipv4: addr.ipv4,
    ipv6: addr.ipv6,
    nodeIP,
    state: st.state ?? 'waiting-for-identity',
    namedPorts,
  };
}

export class EndpointTable {
  private readonly byKey = new Map<string, LocalEndpoint>();
  private readonly byIP = new Map<string, LocalEndpoint>();
  private readonly listeners = new Set<EndpointListener>();

  upsert(ep: LocalEndpoint): void {
    const key = `${ep.namespace}/${ep.pod}`;
    const prev = this.byKey.get(key);
    if (prev !== undefined) this.unindex(prev);
    this.byKey.set(key, ep);
    for (const ip of [ep.ipv4, ep.ipv6]) if (ip !== undefined) this.byIP.set(ip, ep);
    for (const l of this.listeners) l('upsert', ep);
  }

  delete(namespace: string, pod: string): void {
    const key = `${namespace}/${pod}`;
    const prev = this.byKey.get(key);
    if (prev === undefined) return;
    this.byKey.delete(key);
    this.unindex(prev);
    for (const l of this.listeners) l('delete', prev);
  }

  /** The endpoint holding `ip` (plain, not a CIDR). */
  lookup(ip: string): LocalEndpoint | undefined {
    return this.byIP.get(ip);
  }

  get(id: number, nodeIP: string): LocalEndpoint | undefined {
    for (const ep of this.byKey.values()) if (ep.id === id && ep.nodeIP === nodeIP) return ep;
    return undefined;
  }

  /** Sorted by endpoint ID; only the endpoints of node `nodeIP` when given. */
  list(nodeIP?: string): LocalEndpoint[] {
    return [...this.byKey.values()]
      .filter((ep) => nodeIP === undefined || ep.nodeIP === nodeIP)
      .sort((a, b) => a.id - b.id || a.pod.localeCompare(b.pod));
  }

  onChange(listener: EndpointListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private unindex(ep: LocalEndpoint): void {
    for (const ip of [ep.ipv4, ep.ipv6]) {
      if (ip !== undefined && this.byIP.get(ip) === ep) this.byIP.delete(ip);
    }
  }
}
