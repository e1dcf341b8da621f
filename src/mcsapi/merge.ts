import type {
  MCSAPIServiceSpec,
  MCSInternalTrafficPolicy,
  MCSServiceImportType,
  MCSServicePort,
  MCSSessionAffinity,
  MCSSessionAffinityConfig,
} from '../keyspace/index.js';
import { Reason } from './types.js';

/**
 * The merge of every cluster's export of one namespaced name into the properties of
 * its ServiceImport (KEP-1645 conflict resolution, Cilium's evaluation order). Pure: the
 * operator of every cluster runs it over the same global view, so every cluster derives
 * the same import and every constituent export reports the same conflict.
 */

export interface MergedImport {
  /** The union of the ports, each taken from the oldest export defining it. */
  readonly ports: readonly MCSServicePort[];
  readonly type: MCSServiceImportType;
  readonly sessionAffinity: MCSSessionAffinity;
  readonly sessionAffinityConfig?: MCSSessionAffinityConfig | undefined;
  /** The families every export has (exports without families are ignored). */
  readonly ipFamilies: readonly string[];
  readonly internalTrafficPolicy: MCSInternalTrafficPolicy;
  readonly trafficDistribution?: string | undefined;
  /** The oldest export's exported labels and annotations. */
  readonly labels: Readonly<Record<string, string>>;
  readonly annotations: Readonly<Record<string, string>>;
  /** Every exporting cluster, sorted by name (`status.clusters`). */
  readonly clusters: readonly string[];
  /** The export every conflict is resolved for. */
  readonly oldest: string;
  /**
   * Every conflict found, in evaluation order: ports, IP families, type, session
   * affinity, its config, annotations, labels, internal traffic policy, traffic
   * distribution. The KEP lets a condition combine reasons with commas.
   */
  readonly conflicts: readonly { readonly reason: string; readonly message: string }[];
}

/** Oldest export first; equal timestamps (second precision) are ordered by cluster name. */
export function byPrecedence(a: MCSAPIServiceSpec, b: MCSAPIServiceSpec): number {
  const ta = Date.parse(a.exportCreationTimestamp);
  const tb = Date.parse(b.exportCreationTimestamp);
  if (ta !== tb) return (Number.isNaN(ta) ? Infinity : ta) - (Number.isNaN(tb) ? Infinity : tb);
  return a.cluster < b.cluster ? -1 : a.cluster > b.cluster ? 1 : 0;
}

/** `undefined` when there is no export at all. */
export function mergeExports(specs: readonly MCSAPIServiceSpec[]): MergedImport | undefined {
  const ordered = [...specs].sort(byPrecedence);
  const oldest = ordered[0];
  if (oldest === undefined) return undefined;
  const conflicts: { reason: string; message: string }[] = [];

  const ports = mergePorts(ordered);
  if (ports.messages.length > 0) {
    conflicts.push({ reason: Reason.PortConflict, message: ports.messages.join(' ') });
  }

  const families = mergeFamilies(ordered);
  if (families.messages.length > 0) {
    conflicts.push({ reason: Reason.IPFamilyConflict, message: families.messages.join(' ') });
  }

  const field = (reason: string, name: string, value: (s: MCSAPIServiceSpec) => string): void => {
    const want = value(oldest);
    const disagree = ordered.filter((s) => value(s) !== want).length;
    if (disagree === 0) return;
    conflicts.push({
      reason,
      message:
        `Conflicting ${name}. ${disagree}/${ordered.length} clusters disagree. ` +
        `Using "${want}" from oldest service export in cluster "${oldest.cluster}".`,
    });
  };
  field(Reason.TypeConflict, 'type', (s) => s.type);
  field(Reason.SessionAffinityConflict, 'sessionAffinity', (s) => s.sessionAffinity);
  field(Reason.SessionAffinityConfigConflict, 'sessionAffinityConfig', (s) =>
    String(s.sessionAffinityConfig?.clientIP?.timeoutSeconds ?? ''),
  );
  field(Reason.AnnotationsConflict, 'annotations', (s) => canonicalMap(s.annotations));
  field(Reason.LabelsConflict, 'labels', (s) => canonicalMap(s.labels));
  field(
    Reason.InternalTrafficPolicyConflict,
    'internalTrafficPolicy',
    (s) => s.internalTrafficPolicy ?? 'Cluster',
  );
  field(
    Reason.TrafficDistributionConflict,
    'trafficDistribution',
    (s) => s.trafficDistribution ?? '',
  );

  return {
    ports: ports.merged,
    type: oldest.type,
    sessionAffinity: oldest.sessionAffinity,
    sessionAffinityConfig: oldest.sessionAffinityConfig,
    ipFamilies: families.merged,
    internalTrafficPolicy: oldest.internalTrafficPolicy ?? 'Cluster',
    trafficDistribution: oldest.trafficDistribution,
    labels: oldest.labels ?? {},
    annotations: oldest.annotations ?? {},
    clusters: ordered.map((s) => s.cluster).sort(),
    oldest: oldest.cluster,
    conflicts,
  };
}

function protocolOf(p: MCSServicePort): string {
  return p.protocol ?? 'TCP';
}

function portKey(p: MCSServicePort): string {
  return `${p.port}/${protocolOf(p)}`;
}

/**
 * KEP rule: merge by name first, then by (protocol, port); the oldest definition wins.
 * A port whose name an older export gives to another (port, protocol) is dropped (a
 * Service cannot carry one name twice); the same (port, protocol) under another name or
 * appProtocol keeps the oldest. Any export whose ports differ from the union conflicts.
 */
function mergePorts(ordered: readonly MCSAPIServiceSpec[]): {
  merged: MCSServicePort[];
  messages: string[];
} {
  const merged: MCSServicePort[] = [];
  const byName = new Map<string, { port: MCSServicePort; cluster: string }>();
  const byKey = new Map<string, { port: MCSServicePort; cluster: string }>();
  const messages: string[] = [];
  for (const spec of ordered) {
    for (const p of spec.ports) {
      const name = p.name ?? '';
      const named = byName.get(name);
      if (named !== undefined && portKey(named.port) !== portKey(p)) {
        messages.push(
          `Duplicated port name "${name}" in cluster "${spec.cluster}": using ` +
            `${portKey(named.port)} from cluster "${named.cluster}".`,
        );
        continue;
      }
      const same = byKey.get(portKey(p));
      if (same !== undefined) {
        if ((same.port.name ?? '') !== name) {
          messages.push(
            `Conflicting port name for ${portKey(p)} in cluster "${spec.cluster}": using ` +
              `"${same.port.name ?? ''}" from cluster "${same.cluster}".`,
          );
        } else if (same.port.appProtocol !== p.appProtocol) {
          messages.push(
            `Conflicting appProtocol for ${portKey(p)} in cluster "${spec.cluster}": using ` +
              `"${same.port.appProtocol ?? ''}" from cluster "${same.cluster}".`,
          );
        }
        continue;
      }
      const entry = { port: p, cluster: spec.cluster };
      byName.set(name, entry);
      byKey.set(portKey(p), entry);
      merged.push(p);
    }
  }
  const oldest = ordered[0]?.cluster ?? '';
  const union = canonicalPorts(merged);
  for (const spec of ordered) {
    if (canonicalPorts(spec.ports) !== union) {
      messages.push(
        `Ports from cluster ${spec.cluster} does not match ports of oldest service export in cluster ${oldest}.`,
      );
    }
  }
  // Each message once: the same clash is often reported by two rules.
  return { merged, messages: [...new Set(messages)] };
}

function canonicalPorts(ports: readonly MCSServicePort[]): string {
  return ports
    .map((p) => `${p.name ?? ''}|${portKey(p)}|${p.appProtocol ?? ''}`)
    .sort()
    .join(',');
}

/**
 * The families every export has, in the oldest export's order; exports that list none
 * (older releases) are ignored, one sharing no family with the rest is skipped.
 */
function mergeFamilies(ordered: readonly MCSAPIServiceSpec[]): {
  merged: string[];
  messages: string[];
} {
  let merged: string[] | undefined;
  const messages: string[] = [];
  for (const spec of ordered) {
    const fams = spec.ipFamilies ?? [];
    if (fams.length === 0) continue;
    if (merged === undefined) {
      merged = [...fams];
      continue;
    }
    const common = merged.filter((f) => fams.includes(f));
    if (common.length === 0) {
      messages.push(`IPFamilies conflict. Cluster '${spec.cluster}' has no IPFamilies in common.`);
      continue;
    }
    if (common.length !== merged.length || fams.length !== common.length) {
      messages.push(
        `IPFamilies conflict. Cluster '${spec.cluster}' has IPFamilies ${fams.join(',')}; using ${common.join(',')}.`,
      );
    }
    merged = common;
  }
  return { merged: merged ?? ['IPv4'], messages };
}

/** A label or annotation map as one comparable, printable string (keys sorted). */
function canonicalMap(m: Readonly<Record<string, string>> | undefined): string {
  const entries = Object.entries(m ?? {}).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return entries.length === 0 ? '{}' : JSON.stringify(Object.fromEntries(entries));
}
