import { isIP } from 'node:net';
import { z } from 'zod';
import type { EndpointSlice, Namespace } from '../registry/objects.js';
import type { ObjectEvent, RegistryObject } from '../registry/types.js';
import type {
  ClusterSetRecordSource,
  ImportedEndpointRecord,
  ServiceImportRecord,
  ServicePortRecord,
} from './records.js';

/**
 * The state behind the `clusterset.local` zone: a cluster's ServiceImports joined with the
 * MCS EndpointSlices (KEP-1645) that carry the exporting clusters' endpoints. Fed by
 * informers; every change recomputes the record of the one import it touches, so that a
 * query stays a map lookup.
 */

/** Links an MCS EndpointSlice to its ServiceImport, as `kubernetes.io/service-name` does. */
export const MCS_SERVICE_NAME_LABEL = 'multicluster.kubernetes.io/service-name';
/** The cluster an MCS EndpointSlice's endpoints are in: the `<clusterid>` of DNS names. */
export const MCS_SOURCE_CLUSTER_LABEL = 'multicluster.kubernetes.io/source-cluster';

const importPort = z.looseObject({
  name: z.string().optional(),
  protocol: z.string().default('TCP'),
  port: z.number().int().min(1).max(65535),
});

/** The fields DNS reads (what CoreDNS's `multicluster` plugin reads too). */
const importSpec = z.looseObject({
  type: z.enum(['ClusterSetIP', 'Headless']),
  ips: z.array(z.string()).default([]),
  ports: z.array(importPort).default([]),
});

type ImportSpec = z.infer<typeof importSpec>;

/**
 * The import's DNS view, or `undefined` when its spec does not have one (a ServiceImport
 * the registry stores only checked for its identity).
 */
export function parseServiceImport(obj: RegistryObject): ImportSpec | undefined {
  const parsed = importSpec.safeParse(obj.spec);
  return parsed.success ? parsed.data : undefined;
}

/** An MCS slice that would make a cluster.local name resolve to other clusters' endpoints. */
export function shadowsLocalService(slice: EndpointSlice): boolean {
  const labels = slice.metadata.labels ?? {};
  const mcsName = labels[MCS_SERVICE_NAME_LABEL];
  return mcsName !== undefined && mcsName === labels['kubernetes.io/service-name'];
}

function keyOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? 'default'}/${name}`;
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

export class ClusterSetIndex implements ClusterSetRecordSource {
  /** `<ns>/<name>` → the import's spec. */
  private readonly imports = new Map<string, ImportSpec>();
  /** `<ns>/<import>` → slice name → slice. */
  private readonly slicesByImport = new Map<string, Map<string, EndpointSlice>>();
  /** `<ns>/<slice>` → `<ns>/<import>`: a delete event's object may carry a stale label. */
  private readonly sliceOwners = new Map<string, string>();
  private readonly records = new Map<string, ServiceImportRecord>();
  private readonly namespaces = new Set<string>();
  /** Imports per namespace: the registry does not require Namespace objects. */
  private readonly importsIn = new Map<string, number>();

  /** `isSynced`: whether the informers feeding the index have listed everything. */
  constructor(private readonly isSynced: () => boolean = () => true) {}

  get synced(): boolean {
    return this.isSynced();
  }

  serviceImport(namespace: string, name: string): ServiceImportRecord | undefined {
    return this.records.get(keyOf(namespace, name));
  }

  hasNamespace(namespace: string): boolean {
    return this.namespaces.has(namespace) || (this.importsIn.get(namespace) ?? 0) > 0;
  }

  /** `spec` = the parsed spec, `undefined` = deleted or without a usable spec. */
  onImport(ev: ObjectEvent<RegistryObject>, spec = parseServiceImport(ev.object)): void {
    const { namespace = 'default', name } = ev.object.metadata;
    const key = keyOf(namespace, name);
    const had = this.imports.has(key);
    const next = ev.type === 'deleted' ? undefined : spec;
    if (next === undefined) this.imports.delete(key);
    else this.imports.set(key, next);
    const has = next !== undefined;
    if (had !== has) {
      const count = (this.importsIn.get(namespace) ?? 0) + (has ? 1 : -1);
      if (count > 0) this.importsIn.set(namespace, count);
      else this.importsIn.delete(namespace);
    }
    this.rebuild(key);
  }

  onSlice(ev: ObjectEvent<EndpointSlice>): void {
    const sliceName = ev.object.metadata.name;
    const sliceId = keyOf(ev.object.metadata.namespace, sliceName);
    const before = this.sliceOwners.get(sliceId);
    const mcsName = ev.object.metadata.labels?.[MCS_SERVICE_NAME_LABEL];
    const after =
      ev.type === 'deleted' || mcsName === undefined || mcsName === ''
        ? undefined
        : keyOf(ev.object.metadata.namespace, mcsName);
    if (before !== undefined) {
      const slices = this.slicesByImport.get(before);
      slices?.delete(sliceName);
      if (slices?.size === 0) this.slicesByImport.delete(before);
      this.sliceOwners.delete(sliceId);
    }
    if (after !== undefined) {
      let slices = this.slicesByImport.get(after);
      if (slices === undefined) {
        slices = new Map();
        this.slicesByImport.set(after, slices);
      }
      slices.set(sliceName, ev.object);
      this.sliceOwners.set(sliceId, after);
    }
    if (before !== undefined && before !== after) this.rebuild(before);
    if (after !== undefined) this.rebuild(after);
  }

  onNamespace(ev: ObjectEvent<Namespace>): void {
    if (ev.type === 'deleted') this.namespaces.delete(ev.object.metadata.name);
    else this.namespaces.add(ev.object.metadata.name);
  }

  private rebuild(key: string): void {
    const spec = this.imports.get(key);
    if (spec === undefined) {
      this.records.delete(key);
      return;
    }
    const slices = [...(this.slicesByImport.get(key)?.values() ?? [])];
    this.records.set(key, toRecord(spec, slices));
  }
}

function toRecord(spec: ImportSpec, slices: readonly EndpointSlice[]): ServiceImportRecord {
  const sourced = slices.flatMap((slice) => {
    const cluster = slice.metadata.labels?.[MCS_SOURCE_CLUSTER_LABEL] ?? '';
    // Without its cluster an endpoint has no `<hostname>.<clusterid>` name; an FQDN slice
    // has no address to answer with.
    return cluster === '' || slice.addressType === 'FQDN' ? [] : [{ cluster, slice }];
  });
  // Answers must not depend on the order events arrived in.
  sourced.sort(
    (a, b) =>
      compare(a.cluster, b.cluster) || compare(a.slice.metadata.name, b.slice.metadata.name),
  );
  const endpoints: ImportedEndpointRecord[] = [];
  const seen = new Set<string>();
  for (const { cluster, slice } of sourced) {
    const ports: ServicePortRecord[] = slice.ports.flatMap((p) =>
      p.port === undefined ? [] : [{ name: p.name, port: p.port, protocol: p.protocol }],
    );
    for (const ep of slice.endpoints) {
      // An unset `ready` means ready, as for any EndpointSlice consumer.
      if (ep.conditions?.ready === false) continue;
      for (const ip of ep.addresses) {
        const id = `${cluster} ${ip}`;
        if (seen.has(id)) continue;
        seen.add(id);
        endpoints.push({ cluster, ip, hostname: ep.hostname, ports });
      }
    }
  }
  return {
    type: spec.type,
    // Not checked by the registry; the zone relies on valid addresses.
    ips: spec.type === 'ClusterSetIP' ? spec.ips.filter((ip) => isIP(ip) !== 0) : [],
    ports: spec.ports.map((p) => ({ name: p.name, port: p.port, protocol: p.protocol })),
    endpoints,
  };
}
