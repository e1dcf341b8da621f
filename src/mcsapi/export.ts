import type { ObjectSource } from '../registry/source.js';
import type { Logger } from 'pino';
import type {
  MCSAPIServiceSpec,
  MCSInternalTrafficPolicy,
  MCSServicePort,
  MCSSessionAffinityConfig,
} from '../keyspace/index.js';
import { canonicalIP, ipFamily, parseIP } from '../keyspace/index.js';
import type { Namespace, Service, ServiceExport } from '../registry/objects.js';
import { GLOBAL_NAMESPACE_ANNOTATION, Reason, type DesiredCondition } from './types.js';

/**
 * The export half of MCS-API: a ServiceExport and the same-named Service become one
 * MCSAPIServiceSpec, the value the apiserver writes under
 * `cilium/state/serviceexports/v1/<cluster>/<ns>/<name>` and the operator merges.
 */

/** Why an export is not exported: the KEP's `Valid=False` reasons. */
export interface InvalidExport {
  readonly reason:
    typeof Reason.NoService | typeof Reason.InvalidServiceType | typeof Reason.NamespaceNotGlobal;
  readonly message: string;
}

export type ExportResult =
  | { readonly valid: true; readonly spec: MCSAPIServiceSpec }
  | { readonly valid: false; readonly invalid: InvalidExport };

/** Kubernetes' default timeout of ClientIP session affinity (3 hours). */
const DEFAULT_CLIENT_IP_TIMEOUT = 10_800;

/**
 * The spec of `svcExport` with `service` (the Service of the same namespace and name, if
 * any), as Cilium's `FromCiliumServiceToMCSAPIServiceSpec` builds it. Fields the
 * Kubernetes API server would default (sessionAffinity `None`, internalTrafficPolicy
 * `Cluster`, ipFamilies from the ClusterIPs, the ClientIP timeout) are defaulted here,
 * because the registry stores Services as written and remote clusters compare values.
 */
export function exportSpec(
  cluster: string,
  svcExport: ServiceExport,
  service: Service | undefined,
  namespace?: Namespace,
): ExportResult {
  if (!namespaceIsGlobal(namespace)) {
    return {
      valid: false,
      invalid: {
        reason: Reason.NamespaceNotGlobal,
        message: `Namespace ${svcExport.metadata.namespace ?? 'default'} is not marked for global export`,
      },
    };
  }
  if (service === undefined) {
    return {
      valid: false,
      invalid: { reason: Reason.NoService, message: "Service doesn't exist" },
    };
  }
  if (service.spec.type === 'ExternalName') {
    return {
      valid: false,
      invalid: {
        reason: Reason.InvalidServiceType,
        message: 'Service type ExternalName is not supported',
      },
    };
  }
  const spec = service.spec;
  const ports: MCSServicePort[] = spec.ports.map((p) => {
    const appProtocol = (p as { appProtocol?: unknown }).appProtocol;
    return {
      ...(p.name === undefined || p.name === '' ? {} : { name: p.name }),
      protocol: p.protocol,
      ...(typeof appProtocol === 'string' ? { appProtocol } : {}),
      port: p.port,
    };
  });
  const affinity = spec.sessionAffinity ?? 'None';
  const out: { -readonly [K in keyof MCSAPIServiceSpec]: MCSAPIServiceSpec[K] } = {
    cluster,
    name: svcExport.metadata.name,
    namespace: svcExport.metadata.namespace ?? 'default',
    exportCreationTimestamp: svcExport.metadata.creationTimestamp ?? '',
    ports,
    type: spec.clusterIP === 'None' ? 'Headless' : 'ClusterSetIP',
    sessionAffinity: affinity,
    ipFamilies: ipFamiliesOf(service),
    internalTrafficPolicy: internalTrafficPolicyOf(service),
  };
  const exportedLabels = svcExport.spec?.exportedLabels;
  const exportedAnnotations = svcExport.spec?.exportedAnnotations;
  if (exportedAnnotations !== undefined && Object.keys(exportedAnnotations).length > 0) {
    out.annotations = exportedAnnotations;
  }
  if (exportedLabels !== undefined && Object.keys(exportedLabels).length > 0) {
    out.labels = exportedLabels;
  }
  const config = sessionAffinityConfigOf(service, affinity);
  if (config !== undefined) out.sessionAffinityConfig = config;
  const td = spec.trafficDistribution;
  if (typeof td === 'string' && td !== '') out.trafficDistribution = td;
  return { valid: true, spec: out };
}

/** Whether a namespace's Services may join the clusterset (see GLOBAL_NAMESPACE_ANNOTATION). */
export function namespaceIsGlobal(namespace: Namespace | undefined): boolean {
  return namespace?.metadata.annotations?.[GLOBAL_NAMESPACE_ANNOTATION] !== 'false';
}

function sessionAffinityConfigOf(
  service: Service,
  affinity: 'None' | 'ClientIP',
): MCSSessionAffinityConfig | undefined {
  const given = service.spec.sessionAffinityConfig as
    { clientIP?: { timeoutSeconds?: unknown } } | undefined;
  const timeout = given?.clientIP?.timeoutSeconds;
  if (typeof timeout === 'number') return { clientIP: { timeoutSeconds: timeout } };
  return affinity === 'ClientIP'
    ? { clientIP: { timeoutSeconds: DEFAULT_CLIENT_IP_TIMEOUT } }
    : undefined;
}

function internalTrafficPolicyOf(service: Service): MCSInternalTrafficPolicy {
  const itp = service.spec.internalTrafficPolicy;
  return itp === 'Local' ? 'Local' : 'Cluster';
}

/**
 * `spec.ipFamilies` when written, else the families of the ClusterIPs, else IPv4: the
 * local mesh is single-stack IPv4, which is what the API server would default to.
 */
function ipFamiliesOf(service: Service): string[] {
  const given = service.spec.ipFamilies;
  if (Array.isArray(given)) {
    const fams = given.filter((f): f is string => f === 'IPv4' || f === 'IPv6');
    if (fams.length > 0) return fams;
  }
  const ips = service.spec.clusterIPs ?? (service.spec.clusterIP ? [service.spec.clusterIP] : []);
  const fams: string[] = [];
  for (const text of ips) {
    const ip = canonicalIP(text);
    const bytes = ip === null ? null : parseIP(ip);
    if (bytes === null) continue;
    const fam = ipFamily(bytes) === 6 ? 'IPv6' : 'IPv4';
    if (!fams.includes(fam)) fams.push(fam);
  }
  return fams.length > 0 ? fams : ['IPv4'];
}

/** The `Valid` condition of an export result (message texts as Cilium writes them). */
export function validCondition(result: ExportResult): DesiredCondition {
  return result.valid
    ? { type: 'Valid', status: 'True', reason: Reason.Valid, message: 'ServiceExport is valid' }
    : {
        type: 'Valid',
        status: 'False',
        reason: result.invalid.reason,
        message: result.invalid.message,
      };
}

/** One exported name whose ServiceExport or Service changed. */
export interface ExportJoinEvent {
  readonly namespace: string;
  readonly name: string;
  readonly serviceExport: ServiceExport | undefined;
  readonly service: Service | undefined;
  /** The Namespace object, when the registry has one (its annotation decides globality). */
  readonly namespaceObject?: Namespace | undefined;
}

/**
 * The local ServiceExports joined with their Services by namespace and name: every
 * change of either reports the pair. Synced once both informers listed.
 */
export function joinServiceExports(
  objects: ObjectSource,
  handlers: { onEvent(ev: ExportJoinEvent): void; onSynced?(): void },
  opts: { readonly log?: Logger | undefined } = {},
): { run(signal: AbortSignal): Promise<void>; readonly hasSynced: boolean } {
  let waiting = 3;
  const synced = (): void => {
    waiting--;
    if (waiting === 0) handlers.onSynced?.();
  };
  const report = (namespace: string | undefined, name: string): void => {
    const ns = namespace ?? 'default';
    handlers.onEvent({
      namespace: ns,
      name,
      serviceExport: exports.get(ns, name),
      service: services.get(ns, name),
      namespaceObject: namespaces.get(undefined, ns),
    });
  };
  const exports = objects.informer(
    'ServiceExport',
    {
      onEvent: (ev) => {
        report(ev.object.metadata.namespace, ev.object.metadata.name);
      },
      onSynced: synced,
    },
    { log: opts.log },
  );
  const services = objects.informer(
    'Service',
    {
      onEvent: (ev) => {
        // Services without an export are not exported: nothing to report until one exists.
        const { namespace, name } = ev.object.metadata;
        if (exports.get(namespace ?? 'default', name) !== undefined || ev.type === 'deleted') {
          report(namespace, name);
        }
      },
      onSynced: synced,
    },
    { log: opts.log },
  );
  const namespaces = objects.informer(
    'Namespace',
    {
      // A namespace turning global or not: every export in it.
      onEvent: (ev) => {
        for (const se of exports.list()) {
          if ((se.metadata.namespace ?? 'default') === ev.object.metadata.name) {
            report(se.metadata.namespace, se.metadata.name);
          }
        }
      },
      onSynced: synced,
    },
    { log: opts.log },
  );
  return {
    get hasSynced() {
      return exports.hasSynced && services.hasSynced && namespaces.hasSynced;
    },
    async run(signal: AbortSignal): Promise<void> {
      const stop = new AbortController();
      const onAbort = (): void => {
        stop.abort(signal.reason);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener('abort', onAbort, { once: true });
      try {
        await Promise.all(
          [exports, services, namespaces].map((i) =>
            i.run(stop.signal).catch((err: unknown) => {
              stop.abort();
              throw err;
            }),
          ),
        );
      } finally {
        signal.removeEventListener('abort', onAbort);
      }
    },
  };
}
