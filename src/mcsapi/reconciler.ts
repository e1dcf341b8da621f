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
import type { ObjectWriter } from '../registry/source.js';
import type { Condition } from '../registry/objects.js';
import type { Informer, ObjectEvent, RegistryObject } from '../registry/types.js';
import type { ApplyResult } from '../registry/registry.js';
import { keyOf, splitKey } from '../workloads/controller.js';
import { WorkQueue } from '../lib/workqueue.js';
import { errorMessage } from '../lib/errors.js';
import { exportSpec, namespaceIsGlobal, validCondition, type ExportResult } from './export.js';
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
  /** Where ServiceImports, derived Services, MCS slices and export conditions are written. */
  readonly writer: ObjectWriter;
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

/** Names reconciled together: their writes share registry transactions. */
const BATCH = 128;

/**
 * The work queue of {@link ImportReconciler}: keys coalesce while queued, and the worker
 * takes up to {@link BATCH} of them at once, so a burst of exports costs a few
 * transactions per batch instead of several round trips per name.
 */
export class BatchController {
  private readonly queue = new WorkQueue<string>({ initialMs: 100, maxMs: 30_000 });
  private readonly initial = new Set<string>();
  private started = false;
  private resolveInitial!: () => void;
  /** Resolves once every key queued before `run` was reconciled once (or the run ended). */
  readonly initialSync: Promise<void> = new Promise((resolve) => {
    this.resolveInitial = resolve;
  });

  constructor(
    private readonly reconcile: (keys: readonly string[]) => Promise<Failures>,
    private readonly log: Logger,
  ) {}

  enqueue(key: string): void {
    if (!this.started) this.initial.add(key);
    this.queue.add(key);
  }

  /** Keys queued or being reconciled (tests and the bench wait for 0). */
  get pending(): number {
    return this.queue.pending;
  }

  /**
   * The batch, or, when one of its writes fails (a transaction carries every name's
   * objects, so one bad object fails all), each name on its own: only the names that fail
   * alone are retried, the others are not held back by them.
   */
  private async reconcileOrSplit(batch: readonly string[]): Promise<Failures> {
    try {
      return await this.reconcile(batch);
    } catch (err) {
      if (batch.length === 1) return new Map([[batch[0] ?? '', errorMessage(err)]]);
      this.log.debug({ keys: batch.length, err: errorMessage(err) }, 'batch failed: one by one');
      const failed = new Map<string, string>();
      for (const key of batch) {
        for (const [k, e] of await this.reconcileOrSplit([key])) failed.set(k, e);
      }
      return failed;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    this.started = true;
    if (this.initial.size === 0) this.resolveInitial();
    const shutdown = (): void => {
      this.queue.shutdown();
    };
    if (signal.aborted) shutdown();
    signal.addEventListener('abort', shutdown, { once: true });
    try {
      for (;;) {
        const batch = await this.queue.getBatch(BATCH);
        if (batch === undefined || signal.aborted) break;
        const failed = await this.reconcileOrSplit(batch);
        for (const key of batch) {
          // Re-read: the signal may have aborted during the batch.
          const err = failed.get(key);
          if (err !== undefined && !isAborted(signal)) {
            const retries = this.queue.retries(key);
            this.log[retries < 3 ? 'debug' : 'warn'](
              { controller: 'mcsapi-import', key, retries, err },
              'reconcile failed, retrying',
            );
            this.queue.addRateLimited(key);
          } else {
            this.queue.forget(key);
          }
          this.queue.done(key);
          if (this.initial.delete(key) && this.initial.size === 0) this.resolveInitial();
        }
      }
    } finally {
      signal.removeEventListener('abort', shutdown);
      this.resolveInitial();
    }
  }
}

/** Key → why its reconcile failed. */
type Failures = ReadonlyMap<string, string>;

/** What one name's reconcile decided, before anything is written. */
interface Plan {
  readonly key: string;
  readonly namespace: string;
  readonly name: string;
  readonly derived: string;
  readonly merged: MergedImport;
  readonly local: ExportResult | undefined;
}

export class ImportReconciler {
  readonly controller: BatchController;
  private readonly log: Logger;
  private readonly now: () => Date;
  /** `<ns>/<service>` → names of the slices of that Service (not our mirrors). */
  private readonly sourceSlices = new Map<string, Set<string>>();
  /** `<ns>/<exported name>` → names of the MCS slices this operator wrote for it. */
  private readonly mirrorSlices = new Map<string, Set<string>>();
  /** `<ns>/<slice>` → where {@link sourceSlices} / {@link mirrorSlices} list it. */
  private readonly sliceIndex = new Map<string, { source?: string; mirror?: string }>();

  constructor(private readonly o: ImportReconcilerOptions) {
    this.log = o.log.child({ controller: 'mcsapi-import' });
    this.now = o.now ?? (() => new Date());
    this.controller = new BatchController((keys) => this.reconcileBatch(keys), this.log);
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
    for (const key of this.mirrorSlices.keys()) this.controller.enqueue(key);
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

  /**
   * Keeps the slice indexes (so a reconcile reads its own slices, never all of them) and
   * queues the name a slice concerns: the import of an MCS slice, the exported Service of
   * a source slice.
   */
  onSlice(ev: ObjectEvent<EndpointSlice>): void {
    const slice = ev.object;
    const id = keyOf(slice.metadata.namespace, slice.metadata.name);
    const before = this.sliceIndex.get(id);
    const l = slice.metadata.labels ?? {};
    const ours =
      l[MANAGED_BY_LABEL] === LOCAL_MIRROR_MANAGER || l[MANAGED_BY_LABEL] === MESH_MIRROR_MANAGER;
    const mcs = l[MCS_SERVICE_NAME_LABEL];
    const owner = l[SERVICE_NAME_LABEL];
    const after =
      ev.type === 'deleted'
        ? undefined
        : {
            ...(ours && mcs !== undefined ? { mirror: keyOf(slice.metadata.namespace, mcs) } : {}),
            ...(!ours && owner !== undefined && owner !== ''
              ? { source: keyOf(slice.metadata.namespace, owner) }
              : {}),
          };
    if (before?.source !== undefined)
      removeFrom(this.sourceSlices, before.source, slice.metadata.name);
    if (before?.mirror !== undefined)
      removeFrom(this.mirrorSlices, before.mirror, slice.metadata.name);
    if (after?.source !== undefined) addTo(this.sourceSlices, after.source, slice.metadata.name);
    if (after?.mirror !== undefined) addTo(this.mirrorSlices, after.mirror, slice.metadata.name);
    if (after === undefined || (after.source === undefined && after.mirror === undefined)) {
      this.sliceIndex.delete(id);
    } else {
      this.sliceIndex.set(id, after);
    }
    const touched = new Set(
      [before?.mirror, after?.mirror].filter((k): k is string => k !== undefined),
    );
    // Only slices of exported Services are mirrored.
    for (const k of [before?.source, after?.source]) {
      if (k === undefined) continue;
      const { namespace, name } = splitKey(k);
      if (this.o.informers.serviceExports.get(namespace, name) !== undefined) touched.add(k);
    }
    for (const k of touched) this.controller.enqueue(k);
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

  /**
   * One pass over a batch of names. Desired objects are compared with the informers'
   * caches first, so a name whose objects are already right costs no kvstore request; the
   * rest is written kind by kind, each kind in as few transactions as the batch needs:
   * imports first (the derived Services' owner references need their uids), then derived
   * Services, then MCS slices. Returns the names to retry.
   */
  private async reconcileBatch(keys: readonly string[]): Promise<Failures> {
    const failed = new Map<string, string>();
    const plans: Plan[] = [];
    const statusWrites: Promise<void>[] = [];
    const removals: string[] = [];
    for (const key of keys) {
      const plan = this.plan(key, (w) => {
        statusWrites.push(
          w.catch((err: unknown) => {
            failed.set(key, `ServiceExport status: ${errorMessage(err)}`);
          }),
        );
      });
      if (plan === 'remove') removals.push(key);
      else if (plan !== undefined) plans.push(plan);
    }
    await Promise.all(statusWrites);
    for (const key of removals) {
      const { namespace, name } = splitKey(key);
      await this.removeImport(namespace, name).catch((err: unknown) => {
        failed.set(key, `removal: ${errorMessage(err)}`);
      });
    }
    if (plans.length === 0) return failed;

    const i = this.o.informers;
    const imports = plans.flatMap((p) => {
      const obj = this.desiredImport(p);
      return sameImport(obj, i.serviceImports.get(p.namespace, p.name)) ? [] : [obj];
    });
    const uids = new Map<string, string>();
    for (const r of await this.applyLogged(imports)) {
      const { namespace, name, uid } = r.object.metadata;
      if (uid !== undefined) uids.set(keyOf(namespace, name), uid);
      if (r.action !== 'unchanged') {
        const spec = r.object.spec as { type?: string; ips?: string[] } | undefined;
        this.log.info(
          {
            serviceImport: keyOf(namespace, name),
            action: r.action,
            type: spec?.type,
            ips: spec?.ips ?? [],
          },
          'ServiceImport written',
        );
      }
    }

    const services: RegistryObject[] = [];
    for (const p of plans) {
      const existing = i.services.get(p.namespace, p.derived);
      const headless = p.merged.type === 'Headless';
      if (existing !== undefined && (existing.spec.clusterIP === 'None') !== headless) {
        // clusterIP is immutable: a headlessness flip recreates the Service.
        await this.o.writer.delete('Service', p.namespace, p.derived);
        this.log.info(
          { service: `${p.namespace}/${p.derived}` },
          'derived Service recreated: type flip',
        );
      }
      const uid = uids.get(p.key) ?? i.serviceImports.get(p.namespace, p.name)?.metadata.uid;
      const obj = derivedService(p, uid);
      if (!sameService(obj, existing)) services.push(obj);
    }
    for (const r of await this.applyLogged(services)) {
      if (r.action === 'created') {
        this.log.info(
          { service: keyOf(r.object.metadata.namespace, r.object.metadata.name) },
          'derived Service created',
        );
      }
    }

    const slices: RegistryObject[] = [];
    const deletes: { namespace: string; name: string }[] = [];
    for (const p of plans) {
      const desired = this.desiredSlices(p);
      const want = new Set(desired.map((d) => d.metadata.name));
      for (const d of desired) {
        if (!sameSlice(d, i.slices.get(p.namespace, d.metadata.name))) slices.push(d);
      }
      for (const s of this.mirrorSlices.get(p.key) ?? []) {
        if (!want.has(s)) deletes.push({ namespace: p.namespace, name: s });
      }
    }
    await this.applyLogged(slices);
    for (const d of deletes) await this.o.writer.delete('EndpointSlice', d.namespace, d.name);
    return failed;
  }

  private async applyLogged(objects: readonly RegistryObject[]): Promise<ApplyResult[]> {
    return objects.length === 0 ? [] : this.o.writer.apply(objects);
  }

  /**
   * The merge of one name, its local export's status queued for writing through `write`;
   * `'remove'` when nothing (or nothing importable here) is left, `undefined` when the
   * import must stay as it is.
   */
  private plan(key: string, write: (w: Promise<void>) => void): Plan | 'remove' | undefined {
    const { namespace, name } = splitKey(key);
    const i = this.o.informers;
    const cluster = this.o.cluster;
    this.o.global.noteName(namespace, name);
    const svcExport = i.serviceExports.get(namespace, name);
    const local =
      svcExport === undefined
        ? undefined
        : exportSpec(
            cluster,
            svcExport,
            i.services.get(namespace, name),
            i.namespaces.get(undefined, namespace),
          );
    const specs = this.o.global.specsOf(namespace, name).filter((s) => s.cluster !== cluster);
    if (local?.valid === true) specs.push(local.spec);
    const merged = mergeExports(specs);
    if (svcExport !== undefined && local !== undefined) {
      const w = this.writeExportStatus(svcExport, local, merged);
      if (w !== undefined) write(w);
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
      return undefined;
    }
    if (
      merged === undefined ||
      !this.namespaceExists(namespace) ||
      !namespaceIsGlobal(i.namespaces.get(undefined, namespace))
    ) {
      return 'remove';
    }
    return { key, namespace, name, derived: derivedServiceName(namespace, name), merged, local };
  }

  // ---- ServiceExport status ----

  /** The status write, or `undefined` when the cached conditions are already right. */
  private writeExportStatus(
    svcExport: ServiceExport,
    local: ExportResult,
    merged: MergedImport | undefined,
  ): Promise<void> | undefined {
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
    const cached = svcExport.status?.conditions ?? [];
    if (sameConditions(cached, setConditions(cached, desired, removed, now))) return undefined;
    const { namespace, name } = svcExport.metadata;
    return this.o.writer
      .patch('ServiceExport', namespace, name, (cur) => {
        if (cur.metadata.uid !== svcExport.metadata.uid) return undefined;
        const before = cur.status?.conditions;
        const after = setConditions(before, desired, removed, now);
        if (sameConditions(before ?? [], after)) return undefined;
        return { ...cur, status: { ...cur.status, conditions: after } };
      })
      .then(() => undefined);
  }

  // ---- ServiceImport ----

  private desiredImport(p: Plan): RegistryObject {
    const { namespace, name, derived, merged } = p;
    const headless = merged.type === 'Headless';
    const derivedSvc = this.o.informers.services.get(namespace, derived);
    // A derived Service of the other type is about to be recreated: its IP is not this import's.
    const usable = derivedSvc !== undefined && (derivedSvc.spec.clusterIP === 'None') === headless;
    const ip = usable ? derivedSvc.spec.clusterIP : undefined;
    const ips = !headless && ip !== undefined && ip !== '' && ip !== 'None' ? [ip] : [];
    const ready = usable && (headless || ips.length > 0);
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
    return {
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
  }

  /** Deletes the import and everything derived from it (no other exporter is left). */
  private async removeImport(namespace: string, name: string): Promise<void> {
    const i = this.o.informers;
    const derived = derivedServiceName(namespace, name);
    for (const slice of [...(this.mirrorSlices.get(keyOf(namespace, name)) ?? [])]) {
      await this.o.writer.delete('EndpointSlice', namespace, slice);
    }
    const svc = i.services.get(namespace, derived);
    if (svc !== undefined && svc.metadata.labels?.[MCS_SERVICE_NAME_LABEL] === name) {
      await this.o.writer.delete('Service', namespace, derived);
    }
    if (i.serviceImports.get(namespace, name) !== undefined) {
      await this.o.writer.delete('ServiceImport', namespace, name);
      this.log.info({ serviceImport: `${namespace}/${name}` }, 'ServiceImport deleted');
    }
  }

  // ---- MCS EndpointSlices ----

  /**
   * Local endpoints: each slice of the exported Service copied under the derived
   * Service, keeping only ports the import exposes with this cluster's own number, so
   * traffic to a port another cluster won is never sent here (KEP port rule). Remote
   * endpoints: one slice per exporting cluster and family, from the endpoints its
   * apiserver shares for the derived Service (for DNS and for the KEP's "one slice per
   * source cluster"; the Service ⇄ EndpointSlice join leaves them out, remote backends
   * reach the datapath through the global-service merge).
   */
  private desiredSlices(p: Plan): RegistryObject[] {
    const { namespace, name, derived, merged, local } = p;
    const i = this.o.informers;
    const cluster = this.o.cluster;
    const desired: RegistryObject[] = [];
    const svc = i.services.get(namespace, name);
    if (local?.valid === true && svc !== undefined) {
      for (const srcName of this.sourceSlices.get(keyOf(namespace, name)) ?? []) {
        const src = i.slices.get(namespace, srcName);
        if (src === undefined) continue;
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
    for (const cs of this.o.global.servicesOf(namespace, derived)) {
      if (cs.cluster === cluster || !merged.clusters.includes(cs.cluster)) continue;
      desired.push(...remoteSlices(namespace, name, derived, cs));
    }
    return desired;
  }
}

function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function addTo(m: Map<string, Set<string>>, key: string, v: string): void {
  let s = m.get(key);
  if (s === undefined) {
    s = new Set();
    m.set(key, s);
  }
  s.add(v);
}

function removeFrom(m: Map<string, Set<string>>, key: string, v: string): void {
  const s = m.get(key);
  if (s === undefined) return;
  s.delete(v);
  if (s.size === 0) m.delete(key);
}

/**
 * The Service that carries the import's clusterset IP. It is global (and so shared):
 * every cluster's agents merge the backends every cluster's apiserver exports for the
 * same derived name, which is how remote endpoints reach it. No selector: its local
 * backends are the mirrored slices. The ClusterIP comes from the cluster's service
 * range like any Service's and survives updates (an apply without one keeps it).
 */
function derivedService(p: Plan, importUid: string | undefined): RegistryObject {
  const { namespace, name, derived, merged } = p;
  const ports = merged.ports.map((port) => ({
    ...(port.name === undefined ? {} : { name: port.name }),
    port: port.port,
    protocol: (port.protocol ?? 'TCP') as Protocol,
    ...(port.appProtocol === undefined ? {} : { appProtocol: port.appProtocol }),
  }));
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: {
      name: derived,
      namespace,
      labels: { ...merged.labels, [MCS_SERVICE_NAME_LABEL]: name },
      annotations: { ...merged.annotations, [GlobalServiceAnnotation]: 'true' },
      ...(importUid === undefined
        ? {}
        : {
            ownerReferences: [
              {
                apiVersion: MCS_API_VERSION,
                kind: 'ServiceImport',
                name,
                uid: importUid,
                controller: true,
                blockOwnerDeletion: true,
              },
            ],
          }),
    },
    spec: {
      type: 'ClusterIP',
      ...(merged.type === 'Headless' ? { clusterIP: 'None' } : {}),
      ports,
      internalTrafficPolicy: merged.internalTrafficPolicy,
      ...(merged.trafficDistribution === undefined
        ? {}
        : { trafficDistribution: merged.trafficDistribution }),
    },
  };
}

/**
 * Deep equality of JSON-like values: key order does not matter, `undefined` members count
 * as absent (what a stored object would show), arrays compare in order. Runs for every
 * object of every reconcile, so it allocates nothing.
 */
function same(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!same(a[i], b[i])) return false;
    return true;
  }
  const x = a as Record<string, unknown>;
  const y = b as Record<string, unknown>;
  let defined = 0;
  for (const k in x) {
    if (x[k] === undefined) continue;
    defined++;
    if (!same(x[k], y[k])) return false;
  }
  for (const k in y) if (y[k] !== undefined) defined--;
  return defined === 0;
}

/**
 * Whether `cur` already is what applying `want` would store, judged on the fields the
 * operator writes (a false "different" only costs an apply that writes nothing).
 */
function sameImport(want: RegistryObject, cur: RegistryObject | undefined): boolean {
  return (
    cur !== undefined &&
    same(want.metadata.labels ?? {}, cur.metadata.labels ?? {}) &&
    same(want.metadata.annotations ?? {}, cur.metadata.annotations ?? {}) &&
    same(want.spec, cur.spec) &&
    same(want.status, cur.status)
  );
}

function sameService(want: RegistryObject, cur: Service | undefined): boolean {
  if (cur === undefined) return false;
  const spec = want.spec as Record<string, unknown>;
  const have = cur.spec as unknown as Record<string, unknown>;
  return (
    same(want.metadata.labels ?? {}, cur.metadata.labels ?? {}) &&
    same(want.metadata.annotations ?? {}, cur.metadata.annotations ?? {}) &&
    same(want.metadata.ownerReferences ?? [], cur.metadata.ownerReferences ?? []) &&
    Object.keys(spec).every((k) => same(spec[k], have[k]))
  );
}

function sameSlice(want: RegistryObject, cur: EndpointSlice | undefined): boolean {
  if (cur === undefined) return false;
  const w = want as unknown as EndpointSlice;
  return (
    same(w.metadata.labels ?? {}, cur.metadata.labels ?? {}) &&
    w.addressType === cur.addressType &&
    same(w.endpoints, cur.endpoints) &&
    same(w.ports, cur.ports)
  );
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
