import type { Logger } from 'pino';
import { GlobalServiceAnnotation, rfc3339Now, type ClusterService } from '../keyspace/index.js';
import type {
  Endpoint,
  EndpointPort,
  EndpointSlice,
  MCSPort,
  Namespace,
  Protocol,
  Service,
  ServiceExport,
  ServiceImport,
} from '../registry/objects.js';
import { SERVICE_NAME_LABEL } from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type { Condition } from '../registry/objects.js';
import type { Informer, RegistryObject } from '../registry/types.js';
import { Controller, keyOf, splitKey } from '../workloads/controller.js';
import { exportSpec, validCondition, type ExportResult } from './export.js';
import type { GlobalExports } from './global-exports.js';
import { mergeExports, type MergedImport } from './merge.js';
import {
  DERIVED_SERVICE_ANNOTATION,
  LOCAL_MIRROR_MANAGER,
  LOCAL_SLICE_LABEL,
  MANAGED_BY_LABEL,
  MCS_API_VERSION,
  MCS_SERVICE_NAME_LABEL,
  MCS_SOURCE_CLUSTER_LABEL,
  MESH_MIRROR_MANAGER,
  Reason,
  derivedServiceName,
  setConditions,
  type DesiredCondition,
} from './types.js';

/**
 * The operator's one controller, keyed by exported name (`<namespace>/<name>`). Each
 * reconcile brings four things in line with the local registry and the global view:
 * the local ServiceExport's conditions, the ServiceImport, its derived Service and the
 * MCS EndpointSlices. Level-triggered: it reads only current state, so a restart
 * rebuilds from the registry and rewrites nothing that is already right.
 */

/** Namespaces every Kubernetes cluster has, whether or not the registry stores them. */
const BUILTIN_NAMESPACES = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

/** Longest object name the registry accepts for a slice (DNS subdomain). */
const MAX_NAME = 253;

export interface ReconcilerInformers {
  readonly serviceExports: Informer<ServiceExport>;
  readonly serviceImports: Informer<ServiceImport>;
  readonly services: Informer<Service>;
  readonly slices: Informer<EndpointSlice>;
  readonly namespaces: Informer<Namespace>;
}

export interface ImportReconcilerOptions {
  readonly cluster: string;
  readonly registry: Registry;
  readonly informers: ReconcilerInformers;
  readonly global: GlobalExports;
  /**
   * Remote clusters configured but not listed since the operator started (unreachable
   * at start): what they contribute is not known yet.
   */
  readonly unlistedClusters?: (() => ReadonlySet<string>) | undefined;
  readonly log: Logger;
  readonly now?: (() => Date) | undefined;
}

export class ImportReconciler {
  readonly controller: Controller;
  private readonly log: Logger;
  private readonly now: () => Date;

  constructor(private readonly o: ImportReconcilerOptions) {
    this.log = o.log.child({ controller: 'mcsapi-import' });
    this.now = o.now ?? (() => new Date());
    this.controller = new Controller('mcsapi-import', (key) => this.reconcile(key), this.log);
  }

  enqueue(namespace: string | undefined, name: string): void {
    this.controller.enqueue(keyOf(namespace, name));
  }

  /** Every name to look at after a start: exported here or elsewhere, or imported here. */
  enqueueAll(): void {
    const i = this.o.informers;
    for (const se of i.serviceExports.list()) this.enqueue(se.metadata.namespace, se.metadata.name);
    for (const si of i.serviceImports.list()) this.enqueue(si.metadata.namespace, si.metadata.name);
    for (const n of this.o.global.names()) this.enqueue(n.namespace, n.name);
    // Leftovers of a name whose import was deleted while the operator was down.
    for (const s of i.services.list()) {
      const owner = s.metadata.labels?.[MCS_SERVICE_NAME_LABEL];
      if (owner !== undefined && s.metadata.name === derivedServiceName(ns(s), owner)) {
        this.enqueue(s.metadata.namespace, owner);
      }
    }
  }

  /** Maps a Service event to the name it concerns (derived Services to their import). */
  onService(svc: Service): void {
    const owner = svc.metadata.labels?.[MCS_SERVICE_NAME_LABEL];
    if (owner !== undefined && svc.metadata.name === derivedServiceName(ns(svc), owner)) {
      this.enqueue(svc.metadata.namespace, owner);
      return;
    }
    this.enqueue(svc.metadata.namespace, svc.metadata.name);
  }

  onSlice(slice: EndpointSlice): void {
    const mcs = slice.metadata.labels?.[MCS_SERVICE_NAME_LABEL];
    if (mcs !== undefined) {
      this.enqueue(slice.metadata.namespace, mcs);
      return;
    }
    const owner = slice.metadata.labels?.[SERVICE_NAME_LABEL];
    if (owner === undefined) return;
    const key = keyOf(slice.metadata.namespace, owner);
    // Only slices of exported Services are mirrored.
    if (this.o.informers.serviceExports.get(ns(slice), owner) !== undefined) {
      this.controller.enqueue(key);
    }
  }

  /** A namespace appearing or going: every name exported anywhere into it. */
  onNamespace(namespace: string): void {
    const i = this.o.informers;
    for (const n of this.o.global.names()) {
      if (n.namespace === namespace) this.enqueue(n.namespace, n.name);
    }
    for (const se of i.serviceExports.list()) {
      if (ns(se) === namespace) this.enqueue(namespace, se.metadata.name);
    }
    for (const si of i.serviceImports.list()) {
      if (ns(si) === namespace) this.enqueue(namespace, si.metadata.name);
    }
  }

  private namespaceExists(namespace: string): boolean {
    return (
      BUILTIN_NAMESPACES.has(namespace) ||
      this.o.informers.namespaces.get(undefined, namespace) !== undefined
    );
  }

  private async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const i = this.o.informers;
    const cluster = this.o.cluster;
    this.o.global.noteName(namespace, name);
    const svcExport = i.serviceExports.get(namespace, name);
    const local =
      svcExport === undefined
        ? undefined
        : exportSpec(cluster, svcExport, i.services.get(namespace, name));
    const specs = this.o.global.specsOf(namespace, name).filter((s) => s.cluster !== cluster);
    if (local?.valid === true) specs.push(local.spec);
    const merged = mergeExports(specs);

    if (svcExport !== undefined && local !== undefined) {
      await this.writeExportStatus(svcExport, local, merged);
    }
    const existing = i.serviceImports.get(namespace, name);
    const unlisted = this.o.unlistedClusters?.();
    const waitingFor = (existing?.status?.clusters ?? [])
      .map((c) => c.cluster)
      .filter((c) => c !== cluster && unlisted?.has(c) === true);
    if (waitingFor.length > 0) {
      // Rebuilt from the registry: the import stays as it is until every cluster it was
      // derived from is listed again (a restart during an outage must not flap it).
      this.log.debug(
        { serviceImport: key, waitingFor },
        'ServiceImport kept: contributing clusters not listed yet',
      );
      return;
    }
    if (merged === undefined || !this.namespaceExists(namespace)) {
      await this.removeImport(namespace, name);
      return;
    }
    const derived = derivedServiceName(namespace, name);
    const derivedSvc = await this.ensureDerivedService(namespace, name, derived, merged);
    await this.writeImport(namespace, name, derived, merged, derivedSvc);
    await this.syncSlices(namespace, name, derived, merged, local);
  }

  // ---- ServiceExport status ----

  private async writeExportStatus(
    svcExport: ServiceExport,
    local: ExportResult,
    merged: MergedImport | undefined,
  ): Promise<void> {
    const desired: DesiredCondition[] = [validCondition(local)];
    const removed: string[] = [];
    if (!local.valid || merged === undefined) {
      desired.push({
        type: 'Ready',
        status: 'False',
        reason: Reason.Pending,
        message: 'ServiceExport is not valid',
      });
      removed.push('Conflict');
    } else {
      desired.push({
        type: 'Ready',
        status: 'True',
        reason: Reason.Ready,
        message: 'ServiceExport is ready',
      });
      desired.push(
        merged.conflicts.length === 0
          ? {
              type: 'Conflict',
              status: 'False',
              reason: Reason.NoConflicts,
              message: 'ServiceExport has no conflicts',
            }
          : {
              type: 'Conflict',
              status: 'True',
              reason: merged.conflicts.map((c) => c.reason).join(','),
              message: merged.conflicts.map((c) => c.message).join(' '),
            },
      );
    }
    const now = rfc3339Now(this.now());
    const { namespace, name } = svcExport.metadata;
    await this.o.registry.patch('ServiceExport', namespace, name, (cur) => {
      if (cur.metadata.uid !== svcExport.metadata.uid) return undefined;
      const before = cur.status?.conditions;
      const after = setConditions(before, desired, removed, now);
      if (sameConditions(before ?? [], after)) return undefined;
      return { ...cur, status: { ...cur.status, conditions: after } };
    });
  }

  // ---- ServiceImport ----

  private async writeImport(
    namespace: string,
    name: string,
    derived: string,
    merged: MergedImport,
    derivedSvc: Service | undefined,
  ): Promise<void> {
    const headless = merged.type === 'Headless';
    const ip = derivedSvc?.spec.clusterIP;
    const ips = !headless && ip !== undefined && ip !== '' && ip !== 'None' ? [ip] : [];
    const ready = derivedSvc !== undefined && (headless || ips.length > 0);
    const current = this.o.informers.serviceImports.get(namespace, name);
    const conditions = setConditions(
      current?.status?.conditions,
      [
        ready
          ? {
              type: 'Ready',
              status: 'True',
              reason: Reason.Ready,
              message: 'ServiceImport is ready',
            }
          : {
              type: 'Ready',
              status: 'False',
              reason: Reason.Pending,
              message: 'Waiting for the derived Service to be created',
            },
      ],
      [],
      rfc3339Now(this.now()),
    );
    const spec: Record<string, unknown> = {
      ports: merged.ports.map(toImportPort),
      type: merged.type,
      sessionAffinity: merged.sessionAffinity,
      ipFamilies: merged.ipFamilies,
      internalTrafficPolicy: merged.internalTrafficPolicy,
    };
    if (ips.length > 0) spec.ips = ips;
    if (merged.sessionAffinityConfig !== undefined) {
      spec.sessionAffinityConfig = merged.sessionAffinityConfig;
    }
    if (merged.trafficDistribution !== undefined) {
      spec.trafficDistribution = merged.trafficDistribution;
    }
    const obj: RegistryObject = {
      apiVersion: MCS_API_VERSION,
      kind: 'ServiceImport',
      metadata: {
        name,
        namespace,
        ...(Object.keys(merged.labels).length > 0 ? { labels: { ...merged.labels } } : {}),
        annotations: { ...merged.annotations, [DERIVED_SERVICE_ANNOTATION]: derived },
      },
      spec,
      status: { clusters: merged.clusters.map((c) => ({ cluster: c })), conditions },
    };
    const [result] = await this.o.registry.apply([obj]);
    if (result !== undefined && result.action !== 'unchanged') {
      this.log.info(
        {
          serviceImport: `${namespace}/${name}`,
          action: result.action,
          type: merged.type,
          ips,
          clusters: merged.clusters,
        },
        'ServiceImport written',
      );
    }
  }

  /** Deletes the import and everything derived from it (no other exporter is left). */
  private async removeImport(namespace: string, name: string): Promise<void> {
    const i = this.o.informers;
    const derived = derivedServiceName(namespace, name);
    for (const slice of this.ownSlices(namespace, name)) {
      await this.o.registry.delete('EndpointSlice', namespace, slice.metadata.name);
    }
    const svc = i.services.get(namespace, derived);
    if (svc !== undefined && svc.metadata.labels?.[MCS_SERVICE_NAME_LABEL] === name) {
      await this.o.registry.delete('Service', namespace, derived);
    }
    if (i.serviceImports.get(namespace, name) !== undefined) {
      await this.o.registry.delete('ServiceImport', namespace, name);
      this.log.info({ serviceImport: `${namespace}/${name}` }, 'ServiceImport deleted');
    }
  }

  // ---- derived Service ----

  /**
   * The Service that carries the import's clusterset IP. It is global (and so shared):
   * every cluster's agents merge the backends every cluster's apiserver exports for the
   * same derived name, which is how remote endpoints reach it. No selector: its local
   * backends are the mirrored slices. The ClusterIP comes from the cluster's service
   * range like any Service's and survives updates; a headlessness flip recreates it.
   */
  private async ensureDerivedService(
    namespace: string,
    name: string,
    derived: string,
    merged: MergedImport,
  ): Promise<Service | undefined> {
    const headless = merged.type === 'Headless';
    const existing = this.o.informers.services.get(namespace, derived);
    if (existing !== undefined && (existing.spec.clusterIP === 'None') !== headless) {
      await this.o.registry.delete('Service', namespace, derived);
      this.log.info({ service: `${namespace}/${derived}` }, 'derived Service recreated: type flip');
    }
    const imp = this.o.informers.serviceImports.get(namespace, name);
    const ports = merged.ports.map((p) => ({
      ...(p.name === undefined ? {} : { name: p.name }),
      port: p.port,
      protocol: (p.protocol ?? 'TCP') as Protocol,
      ...(p.appProtocol === undefined ? {} : { appProtocol: p.appProtocol }),
    }));
    const obj: RegistryObject = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: {
        name: derived,
        namespace,
        labels: { ...merged.labels, [MCS_SERVICE_NAME_LABEL]: name },
        annotations: { ...merged.annotations, [GlobalServiceAnnotation]: 'true' },
        ...(imp?.metadata.uid === undefined
          ? {}
          : {
              ownerReferences: [
                {
                  apiVersion: MCS_API_VERSION,
                  kind: 'ServiceImport',
                  name,
                  uid: imp.metadata.uid,
                  controller: true,
                  blockOwnerDeletion: true,
                },
              ],
            }),
      },
      spec: {
        type: 'ClusterIP',
        ...(headless ? { clusterIP: 'None' } : {}),
        ports,
        internalTrafficPolicy: merged.internalTrafficPolicy,
        ...(merged.trafficDistribution === undefined
          ? {}
          : { trafficDistribution: merged.trafficDistribution }),
      },
    };
    const [result] = await this.o.registry.apply([obj]);
    if (result !== undefined && result.action === 'created') {
      this.log.info(
        { service: `${namespace}/${derived}`, serviceImport: name },
        'derived Service created',
      );
    }
    return this.o.registry.get('Service', namespace, derived);
  }

  // ---- MCS EndpointSlices ----

  private ownSlices(namespace: string, name: string): EndpointSlice[] {
    return this.o.informers.slices.list().filter((s) => {
      const l = s.metadata.labels ?? {};
      return (
        ns(s) === namespace &&
        l[MCS_SERVICE_NAME_LABEL] === name &&
        (l[MANAGED_BY_LABEL] === LOCAL_MIRROR_MANAGER ||
          l[MANAGED_BY_LABEL] === MESH_MIRROR_MANAGER)
      );
    });
  }

  /**
   * Local endpoints: each slice of the exported Service copied under the derived
   * Service, keeping only ports the import exposes with this cluster's own number, so
   * traffic to a port another cluster won is never sent here (KEP port rule). Remote
   * endpoints of a headless import: one slice per cluster, for DNS; ClusterSetIP
   * imports reach remote endpoints through the global-service merge instead.
   */
  private async syncSlices(
    namespace: string,
    name: string,
    derived: string,
    merged: MergedImport,
    local: ExportResult | undefined,
  ): Promise<void> {
    const i = this.o.informers;
    const cluster = this.o.cluster;
    const desired: RegistryObject[] = [];
    const svc = i.services.get(namespace, name);
    if (local?.valid === true && svc !== undefined) {
      for (const src of i.slices.list()) {
        const l = src.metadata.labels ?? {};
        if (ns(src) !== namespace || l[SERVICE_NAME_LABEL] !== name) continue;
        if (
          l[MANAGED_BY_LABEL] === LOCAL_MIRROR_MANAGER ||
          l[MANAGED_BY_LABEL] === MESH_MIRROR_MANAGER
        ) {
          continue;
        }
        const ports = src.ports.filter((sp) => portExported(sp, svc, merged));
        if (ports.length === 0) continue;
        desired.push(
          mcsSlice(namespace, name, derived, cluster, sliceName(derived, src.metadata.name), {
            managedBy: LOCAL_MIRROR_MANAGER,
            extraLabels: { [LOCAL_SLICE_LABEL]: src.metadata.name },
            addressType: src.addressType,
            endpoints: src.endpoints,
            ports,
          }),
        );
      }
    }
    if (merged.type === 'Headless') {
      for (const cs of this.o.global.servicesOf(namespace, derived)) {
        if (cs.cluster === cluster || !merged.clusters.includes(cs.cluster)) continue;
        desired.push(...remoteSlices(namespace, name, derived, cs));
      }
    }
    const want = new Set(desired.map((d) => d.metadata.name));
    if (desired.length > 0) await this.o.registry.apply(desired);
    for (const s of this.ownSlices(namespace, name)) {
      if (!want.has(s.metadata.name)) {
        await this.o.registry.delete('EndpointSlice', namespace, s.metadata.name);
      }
    }
  }
}

function ns(o: RegistryObject): string {
  return o.metadata.namespace ?? 'default';
}

function toImportPort(p: {
  readonly name?: string | undefined;
  readonly protocol?: string | undefined;
  readonly appProtocol?: string | undefined;
  readonly port: number;
}): MCSPort {
  return {
    ...(p.name === undefined ? {} : { name: p.name }),
    protocol: (p.protocol ?? 'TCP') as Protocol,
    ...(p.appProtocol === undefined ? {} : { appProtocol: p.appProtocol }),
    port: p.port,
  };
}

/**
 * A slice port (named like the Service port it serves) is exported when the import has
 * a port of that name with this cluster's Service port number and protocol.
 */
function portExported(sp: EndpointPort, svc: Service, merged: MergedImport): boolean {
  const name = sp.name ?? '';
  const mine = svc.spec.ports.find((p) => (p.name ?? '') === name);
  const imported = merged.ports.find((p) => (p.name ?? '') === name);
  return (
    mine !== undefined &&
    imported !== undefined &&
    imported.port === mine.port &&
    (imported.protocol ?? 'TCP') === mine.protocol
  );
}

function sliceName(derived: string, suffix: string): string {
  return `${derived}-${suffix}`.slice(0, MAX_NAME).replace(/[-.]+$/, '');
}

function mcsSlice(
  namespace: string,
  name: string,
  derived: string,
  sourceCluster: string,
  sliceNameText: string,
  o: {
    managedBy: string;
    extraLabels: Record<string, string>;
    addressType: 'IPv4' | 'IPv6' | 'FQDN';
    endpoints: readonly Endpoint[];
    ports: readonly EndpointPort[];
  },
): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: sliceNameText,
      namespace,
      labels: {
        [SERVICE_NAME_LABEL]: derived,
        [MCS_SERVICE_NAME_LABEL]: name,
        [MCS_SOURCE_CLUSTER_LABEL]: sourceCluster,
        [MANAGED_BY_LABEL]: o.managedBy,
        ...o.extraLabels,
      },
    },
    addressType: o.addressType,
    endpoints: o.endpoints,
    ports: o.ports,
  };
}

/** A remote cluster's endpoints of a headless import, one slice per address family. */
function remoteSlices(
  namespace: string,
  name: string,
  derived: string,
  cs: ClusterService,
): RegistryObject[] {
  const ports = new Map<string, EndpointPort>();
  const byFamily = new Map<'IPv4' | 'IPv6', Endpoint[]>();
  for (const ip of Object.keys(cs.backends).sort()) {
    for (const [portName, l4] of Object.entries(cs.backends[ip] ?? {})) {
      ports.set(portName, {
        ...(portName === '' ? {} : { name: portName }),
        port: l4.Port,
        protocol: l4.Protocol as Protocol,
      });
    }
    const family = ip.includes(':') ? 'IPv6' : 'IPv4';
    const hostname = cs.hostnames[ip];
    const list = byFamily.get(family) ?? [];
    list.push({
      addresses: [ip],
      conditions: { ready: true },
      ...(hostname === undefined || hostname === '' ? {} : { hostname }),
    });
    byFamily.set(family, list);
  }
  return [...byFamily].map(([family, endpoints]) =>
    mcsSlice(
      namespace,
      name,
      derived,
      cs.cluster,
      sliceName(derived, family === 'IPv4' ? cs.cluster : `${cs.cluster}-v6`),
      {
        managedBy: MESH_MIRROR_MANAGER,
        extraLabels: {},
        addressType: family,
        endpoints,
        ports: [...ports.values()],
      },
    ),
  );
}

function sameConditions(a: readonly Condition[], b: readonly Condition[]): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
