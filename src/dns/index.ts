/** The per-cluster DNS server (`<svc>.<ns>.svc.<domain>`), its registry feed and a stub resolver. */
export type {
  DnsRecordSource,
  EndpointRecord,
  ServicePortRecord,
  ServiceRecord,
} from './records.js';
export type { DnsServerOptions, RunningDnsServer } from './server.js';
export { startDnsServer } from './server.js';
export type { DnsStats } from './handler.js';
export type { ResolveOptions } from './client.js';
export { podSearchPath, resolveA } from './client.js';
export type { RegistryDnsSource } from './registry-source.js';
export { createRegistryDnsSource } from './registry-source.js';
