import { isIP } from 'node:net';
import type { Answer, RecordType, SrvAnswer, StringAnswer } from 'dns-packet';
import { endpointLabel, isHeadless, type DnsRecordSource, type ServiceRecord } from './records.js';

/**
 * The zone logic of the per-cluster DNS server, free of sockets and wire format:
 * the Kubernetes DNS schema (services, headless endpoints, SRV, pod records) for one
 * cluster domain.
 */

export interface ZoneOptions {
  /** Lower case, without leading or trailing dots. */
  readonly domain: string;
  readonly source: DnsRecordSource;
  readonly ttl: number;
  /**
   * Which naming scheme the zone follows: the cluster's own Services (Kubernetes DNS
   * specification) or the imports of the clusterset (MCS DNS specification). Default
   * `cluster`.
   */
  readonly schema?: 'cluster' | 'clusterset' | undefined;
}

export type Lookup =
  /** Outside the domain: we are authoritative for one zone and do not recurse. */
  | { readonly kind: 'refused' }
  | { readonly kind: 'nxdomain' }
  /** The records are not known yet (informers not synced): the client should retry. */
  | { readonly kind: 'servfail' }
  /** `answers` empty = NODATA (the name exists, not with this type). */
  | { readonly kind: 'found'; readonly answers: Answer[]; readonly additionals: Answer[] };

export const NXDOMAIN: Lookup = { kind: 'nxdomain' };
export const SERVFAIL: Lookup = { kind: 'servfail' };
export const REFUSED: Lookup = { kind: 'refused' };
export const NODATA: Lookup = { kind: 'found', answers: [], additionals: [] };

/**
 * The served zone a name (canonical) falls in, the most specific one should zones nest;
 * `undefined` outside all of them.
 */
export function zoneOf<Z extends ZoneOptions>(zones: readonly Z[], name: string): Z | undefined {
  let best: Z | undefined;
  for (const zone of zones) {
    if (name !== zone.domain && !name.endsWith(`.${zone.domain}`)) continue;
    if (best === undefined || zone.domain.length > best.domain.length) best = zone;
  }
  return best;
}

/** Lower case, no trailing dot: the form names are compared in. */
export function canonicalName(name: string): string {
  const lower = name.toLowerCase();
  // Queries arrive without the trailing dot (dns-packet strips it): skip the regex then.
  return lower.endsWith('.') ? lower.replace(/\.+$/, '') : lower;
}

/**
 * Answers one question. `qname` is echoed as received in the answers' owner names, since
 * resolvers that randomise the case of queries (0x20) compare it byte for byte.
 */
export function lookup(
  zone: ZoneOptions,
  qname: string,
  qtype: RecordType,
  name = canonicalName(qname),
): Lookup {
  const { domain } = zone;
  if (name === domain) {
    return qtype === 'SOA' ? found([soaRecord(zone, qname)]) : NODATA;
  }
  if (!name.endsWith(`.${domain}`)) return REFUSED;
  const labels = name.slice(0, -domain.length - 1).split('.');
  const kind = labels.pop();
  // `svc.<domain>`, `<ns>.svc.<domain>` and the `pod` equivalents are empty non-terminals:
  // answering NXDOMAIN would tell caching resolvers (RFC 8020) that nothing lies below.
  if (labels.length <= 1 && (kind === 'svc' || kind === 'pod')) return NODATA;
  if (kind === 'svc') return lookupService(zone, qname, qtype, labels);
  if (kind === 'pod' && labels.length === 2) return lookupPod(zone, qname, qtype, labels[0] ?? '');
  return NXDOMAIN;
}

function lookupService(
  zone: ZoneOptions,
  qname: string,
  qtype: RecordType,
  labels: readonly string[],
): Lookup {
  // labels, from the left: [_port, _proto,] [endpoint,] service, namespace
  const [ns, svcName] = [labels[labels.length - 1] ?? '', labels[labels.length - 2] ?? ''];
  const svc = zone.source.service(ns, svcName);
  if (svc === undefined) return NXDOMAIN;
  const target = `${svcName}.${ns}.svc.${zone.domain}`;
  switch (labels.length) {
    case 2:
      if (qtype === 'SRV') return srvAnswers(zone, qname, svc, target, svc.ports);
      return addressAnswers(zone, qname, qtype, serviceIPs(svc));
    case 3: {
      const host = labels[0] ?? '';
      if (!isHeadless(svc)) return NXDOMAIN;
      const ips = svc.endpoints.filter((ep) => endpointLabel(ep) === host).map((ep) => ep.ip);
      return ips.length === 0 ? NXDOMAIN : addressAnswers(zone, qname, qtype, ips);
    }
    case 4: {
      const [portLabel = '', protoLabel = ''] = labels;
      const ok = [portLabel, protoLabel].every((l) => l.length > 1 && l.startsWith('_'));
      if (!ok) return NXDOMAIN;
      const ports = svc.ports.filter(
        (p) =>
          (p.name ?? '').toLowerCase() === portLabel.slice(1) &&
          p.protocol.toLowerCase() === protoLabel.slice(1),
      );
      if (ports.length === 0) return NXDOMAIN;
      return qtype === 'SRV' ? srvAnswers(zone, qname, svc, target, ports) : NODATA;
    }
    default:
      return NXDOMAIN;
  }
}

/** `a-b-c-d.<ns>.pod.<domain>` (IPv6: colons as dashes); like CoreDNS `pods insecure`. */
function lookupPod(zone: ZoneOptions, qname: string, qtype: RecordType, label: string): Lookup {
  const v4 = label.replaceAll('-', '.');
  const ip = isIP(v4) === 4 ? v4 : label.replaceAll('-', ':');
  if (isIP(ip) === 0) return NXDOMAIN;
  return addressAnswers(zone, qname, qtype, [ip]);
}

function serviceIPs(svc: ServiceRecord): string[] {
  if (!isHeadless(svc)) return [svc.clusterIP ?? ''];
  return [...new Set(svc.endpoints.map((ep) => ep.ip))];
}

function addressAnswers(
  zone: ZoneOptions,
  qname: string,
  qtype: RecordType,
  ips: readonly string[],
): Lookup {
  if (qtype !== 'A' && qtype !== 'AAAA') return NODATA;
  return found(addressRecords(zone, qname, qtype, ips));
}

export function addressRecords(
  zone: ZoneOptions,
  name: string,
  type: 'A' | 'AAAA',
  ips: readonly string[],
): StringAnswer[] {
  // Sources hold valid addresses only: a colon tells the family apart, cheaper than isIP.
  const v6 = type === 'AAAA';
  const out: StringAnswer[] = [];
  for (const ip of ips) {
    if (ip.includes(':') === v6) out.push({ name, type, class: 'IN', ttl: zone.ttl, data: ip });
  }
  return out;
}

/**
 * One SRV per port (and, headless, per endpoint), with the targets' addresses as
 * additional records so that clients need no second round trip.
 */
function srvAnswers(
  zone: ZoneOptions,
  qname: string,
  svc: ServiceRecord,
  serviceTarget: string,
  ports: ServiceRecord['ports'],
): Lookup {
  const targets: { readonly name: string; readonly ips: readonly string[] }[] = isHeadless(svc)
    ? svc.endpoints.map((ep) => ({ name: `${endpointLabel(ep)}.${serviceTarget}`, ips: [ep.ip] }))
    : [{ name: serviceTarget, ips: serviceIPs(svc) }];
  const answers: SrvAnswer[] = [];
  for (const p of ports) {
    for (const t of targets) {
      answers.push({
        name: qname,
        type: 'SRV',
        class: 'IN',
        ttl: zone.ttl,
        data: { priority: 0, weight: 100, port: p.port, target: t.name },
      });
    }
  }
  const additionals: Answer[] = [];
  const seen = new Set<string>();
  for (const t of answers.length === 0 ? [] : targets) {
    if (seen.has(t.name)) continue;
    seen.add(t.name);
    additionals.push(...addressRecords(zone, t.name, 'A', t.ips));
    additionals.push(...addressRecords(zone, t.name, 'AAAA', t.ips));
  }
  return { kind: 'found', answers, additionals };
}

export function found(answers: Answer[]): Lookup {
  return { kind: 'found', answers, additionals: [] };
}

/** Changes whenever the process restarts; secondaries do not exist, so no more is needed. */
const SERIAL = Math.floor(Date.now() / 1000) >>> 0;

/** The zone's SOA, also sent in the authority section of negative answers (RFC 2308). */
export function soaRecord(zone: ZoneOptions, name = zone.domain): Answer {
  return {
    name,
    type: 'SOA',
    class: 'IN',
    ttl: zone.ttl,
    data: {
      mname: `ns.dns.${zone.domain}`,
      rname: `hostmaster.${zone.domain}`,
      serial: SERIAL,
      refresh: 7200,
      retry: 1800,
      expire: 86400,
      minimum: zone.ttl,
    },
  };
}
