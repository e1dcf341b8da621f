import type { Answer, RecordType, SrvAnswer, TxtAnswer } from 'dns-packet';
import {
  NODATA,
  NXDOMAIN,
  SERVFAIL,
  addressRecords,
  canonicalName,
  found,
  soaRecord,
  type Lookup,
  type ZoneOptions,
} from './answer.js';
import {
  endpointLabel,
  type ImportedEndpointRecord,
  type ServiceImportRecord,
  type ServicePortRecord,
} from './records.js';

/**
 * The `clusterset.local` zone of the MCS DNS specification (KEP-1645), answered from the
 * cluster's ServiceImports and their MCS EndpointSlices:
 *
 *   <svc>.<ns>.svc.<zone>                      A/AAAA: ClusterSetIPs, or ready endpoints (Headless)
 *   _<port>._<proto>.<svc>.<ns>.svc.<zone>     SRV per named port (and endpoint, Headless)
 *   <svc>.<ns>.svc.<zone>                      SRV for every port, unnamed ones too
 *   <hostname>.<clusterid>.<svc>.<ns>.svc.<zone>  A/AAAA of one endpoint (Headless)
 *   dns-version.<zone>                         TXT, the schema version
 *
 * Anything else below `svc` is NXDOMAIN, `<clusterid>.<svc>.<ns>.svc.<zone>` above all:
 * the specification forbids names that pick one cluster's backends. Where the
 * specification leaves a choice (SRV weights, de-duplication, names of other types) the
 * answers are those of CoreDNS's `multicluster` plugin, which Cilium deploys.
 */

/** The version of the MCS DNS specification implemented, as its `dns-version` record says. */
export const DNS_SCHEMA_VERSION = '1.0.0';
/** The specification's example TTL for the version record, which never changes. */
const VERSION_TTL = 28_800;

export function lookupClusterSet(
  zone: ZoneOptions,
  qname: string,
  qtype: RecordType,
  name = canonicalName(qname),
): Lookup {
  const { domain } = zone;
  if (name === domain) {
    return qtype === 'SOA' ? found([soaRecord(zone, qname)]) : NODATA;
  }
  if (!name.endsWith(`.${domain}`)) return NXDOMAIN;
  const labels = name.slice(0, -domain.length - 1).split('.');
  if (labels.length === 1 && labels[0] === 'dns-version') {
    return qtype === 'TXT' ? found([versionRecord(qname)]) : NODATA;
  }
  if (labels.pop() !== 'svc') return NXDOMAIN;
  const source = zone.source.clusterset;
  // Until the informers have listed everything, absence proves nothing.
  const missing = source === undefined || source.synced ? NXDOMAIN : SERVFAIL;
  const ns = labels.pop();
  // `svc.<zone>` is an empty non-terminal: NXDOMAIN would deny everything below (RFC 8020).
  if (ns === undefined) return NODATA;
  const svcName = labels.pop();
  if (svcName === undefined) return source?.hasNamespace(ns) === true ? NODATA : missing;
  const imp = source?.serviceImport(ns, svcName);
  if (imp === undefined) return missing;
  const target = `${svcName}.${ns}.svc.${domain}`;

  if (labels.length === 0) {
    const ips = importIPs(imp);
    // No ClusterSetIP yet, or no ready endpoint: the specification wants NXDOMAIN.
    if (ips.length === 0) return missing;
    if (qtype === 'SRV') return srvAnswers(zone, qname, imp, target, () => true);
    return qtype === 'A' || qtype === 'AAAA'
      ? found(addressRecords(zone, qname, qtype, ips))
      : NODATA;
  }
  // One label left would be `<clusterid>`: a name the specification says must not exist.
  if (labels.length !== 2) return NXDOMAIN;
  const [first = '', second = ''] = labels;
  if (second.startsWith('_')) {
    if (first.length < 2 || !first.startsWith('_') || second.length < 2) return NXDOMAIN;
    const portName = first.slice(1);
    const protocol = second.slice(1);
    const matches = (p: ServicePortRecord): boolean =>
      (p.name ?? '').toLowerCase() === portName && p.protocol.toLowerCase() === protocol;
    const srv = srvAnswers(zone, qname, imp, target, matches);
    if (srv.answers.length === 0) return missing;
    return qtype === 'SRV' ? srv : NODATA;
  }
  if (imp.type !== 'Headless') return NXDOMAIN;
  // `<hostname>.<clusterid>`: every address of the endpoints of that name in that cluster.
  const ips = imp.endpoints
    .filter((ep) => ep.cluster.toLowerCase() === second && endpointLabel(ep) === first)
    .map((ep) => ep.ip);
  if (ips.length === 0) return missing;
  return qtype === 'A' || qtype === 'AAAA'
    ? found(addressRecords(zone, qname, qtype, ips))
    : NODATA;
}

/** What `<svc>.<ns>.svc.<zone>` resolves to: the ClusterSetIPs, or every ready address. */
function importIPs(imp: ServiceImportRecord): readonly string[] {
  if (imp.type === 'ClusterSetIP') return imp.ips;
  return [...new Set(imp.endpoints.map((ep) => ep.ip))];
}

/** The port number `ep` serves `port` on, or `undefined` where its cluster does not expose it. */
function endpointPort(ep: ImportedEndpointRecord, port: ServicePortRecord): number | undefined {
  if (ep.ports.length === 0) return port.port;
  const name = (port.name ?? '').toLowerCase();
  const protocol = port.protocol.toLowerCase();
  return ep.ports.find(
    (p) => (p.name ?? '').toLowerCase() === name && p.protocol.toLowerCase() === protocol,
  )?.port;
}

interface SrvCandidate {
  readonly target: string;
  readonly port: number;
  readonly ip: string;
}

/**
 * SRV records with the targets' addresses as additional records. As CoreDNS does, there is
 * one candidate per (address, port); the weight shares 100 among them, and candidates
 * equal in (target, port), such as tcp/42 and udp/42 of one ClusterSetIP, make one record.
 */
function srvAnswers(
  zone: ZoneOptions,
  qname: string,
  imp: ServiceImportRecord,
  serviceTarget: string,
  wanted: (p: ServicePortRecord) => boolean,
): Lookup & { readonly kind: 'found' } {
  const ports = imp.ports.filter(wanted);
  const candidates: SrvCandidate[] = [];
  if (imp.type === 'ClusterSetIP') {
    const ips = importIPs(imp);
    for (const p of ports) {
      for (const ip of ips) candidates.push({ target: serviceTarget, port: p.port, ip });
    }
  } else {
    for (const ep of imp.endpoints) {
      const target = `${endpointLabel(ep)}.${ep.cluster.toLowerCase()}.${serviceTarget}`;
      for (const p of ports) {
        const port = endpointPort(ep, p);
        if (port !== undefined) candidates.push({ target, port, ip: ep.ip });
      }
    }
  }
  const weight = Math.max(1, Math.floor(100 / Math.max(candidates.length, 1)));
  const answers: SrvAnswer[] = [];
  const additionals: Answer[] = [];
  const records = new Set<string>();
  const addresses = new Set<string>();
  for (const c of candidates) {
    const srvKey = `${c.target} ${String(c.port)}`;
    if (!records.has(srvKey)) {
      records.add(srvKey);
      answers.push({
        name: qname,
        type: 'SRV',
        class: 'IN',
        ttl: zone.ttl,
        data: { priority: 0, weight, port: c.port, target: c.target },
      });
    }
    const addressKey = `${c.target} ${c.ip}`;
    if (!addresses.has(addressKey)) {
      addresses.add(addressKey);
      additionals.push(
        ...addressRecords(zone, c.target, c.ip.includes(':') ? 'AAAA' : 'A', [c.ip]),
      );
    }
  }
  return { kind: 'found', answers, additionals };
}

function versionRecord(qname: string): TxtAnswer {
  return { name: qname, type: 'TXT', class: 'IN', ttl: VERSION_TTL, data: DNS_SCHEMA_VERSION };
}
