/**
 * STABLE KEYSPACE CONTRACT — the MCSAPIServiceSpec value at
 * `cilium/state/serviceexports/v1/<cluster>/<namespace>/<name>` (reference
 * `pkg/clustermesh/mcsapi/types/mcsapiservicespec.go`, 1.17+). Fields that newer
 * releases added are all `omitempty`, so without them the output equals 1.17's.
 */

import { z } from 'zod';
import { ClusterMeshError } from '../lib/errors.js';
import { goArray, goInt, goString, goStringMap, goStruct } from './gojson.js';
import { serviceKeyName } from './keys.js';
import { GO_ZERO_TIME_MS, formatRFC3339, parseRFC3339 } from './time.js';
import {
  goObject,
  type DecodeOptions,
  checkEntryCluster,
  checkNamespacedKey,
  invalidEntry,
  invalidValue,
  parseValue,
  zInt32,
  zList,
  zString,
} from './codec.js';

export type MCSServiceImportType = 'ClusterSetIP' | 'Headless';
export type MCSSessionAffinity = 'None' | 'ClientIP';
export type MCSInternalTrafficPolicy = 'Cluster' | 'Local';
export const MCSTrafficDistributions = ['PreferClose', 'PreferSameZone', 'PreferSameNode'] as const;

/** MCS `ServicePort` (`multicluster.x-k8s.io`). */
export interface MCSServicePort {
  readonly name?: string;
  /** `TCP` (default), `UDP` or `SCTP`. */
  readonly protocol?: string;
  readonly appProtocol?: string;
  readonly port: number;
}

export interface MCSSessionAffinityConfig {
  readonly clientIP?: { readonly timeoutSeconds?: number };
}

export interface MCSAPIServiceSpec {
  readonly cluster: string;
  readonly name: string;
  readonly namespace: string;
  /** Exported annotations (newer releases). */
  readonly annotations?: Readonly<Record<string, string>>;
  /** Exported labels (newer releases). */
  readonly labels?: Readonly<Record<string, string>>;
  /**
   * ServiceExport creation time, RFC 3339. Written as UTC with second precision
   * (k8s `metav1.Time`); the oldest export wins conflicts.
   */
  readonly exportCreationTimestamp: string;
  readonly ports: readonly MCSServicePort[];
  readonly type: MCSServiceImportType;
  readonly sessionAffinity: MCSSessionAffinity;
  readonly sessionAffinityConfig?: MCSSessionAffinityConfig;
  readonly ipFamilies?: readonly string[];
  readonly internalTrafficPolicy?: MCSInternalTrafficPolicy;
  readonly trafficDistribution?: string;
}

/** The key below `cilium/state/serviceexports/v1`: `<cluster>/<namespace>/<name>`. */
export function serviceExportKeyName(
  spec: Pick<MCSAPIServiceSpec, 'cluster' | 'namespace' | 'name'>,
): string {
  return serviceKeyName(spec.cluster, spec.namespace, spec.name);
}

function optionalMap(m: Readonly<Record<string, string>> | undefined) {
  return m === undefined || Object.keys(m).length === 0 ? undefined : goStringMap(m);
}

function optionalString(s: string | undefined) {
  return s === undefined || s === '' ? undefined : goString(s);
}

/** Serialises like the reference's `json.Marshal(spec)`. */
export function encodeMCSAPIServiceSpec(spec: MCSAPIServiceSpec): string {
  let timestamp: string;
  try {
    timestamp = formatRFC3339(parseRFC3339(spec.exportCreationTimestamp));
  } catch (err) {
    if (err instanceof ClusterMeshError) {
      throw invalidValue('service export', `exportCreationTimestamp: ${err.message}`);
    }
    throw err;
  }
  const affinity = spec.sessionAffinityConfig;
  const clientIP = affinity?.clientIP;
  return goStruct([
    ['cluster', goString(spec.cluster)],
    ['name', goString(spec.name)],
    ['namespace', goString(spec.namespace)],
    ['annotations', optionalMap(spec.annotations)],
    ['labels', optionalMap(spec.labels)],
    ['exportCreationTimestamp', goString(timestamp)],
    [
      'ports',
      goArray(spec.ports, (p) =>
        goStruct([
          ['name', optionalString(p.name)],
          ['protocol', optionalString(p.protocol)],
          ['appProtocol', p.appProtocol === undefined ? undefined : goString(p.appProtocol)],
          ['port', goInt(p.port)],
        ]),
      ),
    ],
    ['type', goString(spec.type)],
    ['sessionAffinity', goString(spec.sessionAffinity)],
    [
      'sessionAffinityConfig',
      affinity === undefined
        ? undefined
        : goStruct([
            [
              'clientIP',
              clientIP === undefined
                ? undefined
                : goStruct([
                    [
                      'timeoutSeconds',
                      clientIP.timeoutSeconds === undefined
                        ? undefined
                        : goInt(clientIP.timeoutSeconds),
                    ],
                  ]),
            ],
          ]),
    ],
    [
      'ipFamilies',
      spec.ipFamilies === undefined || spec.ipFamilies.length === 0
        ? undefined
        : goArray(spec.ipFamilies, goString),
    ],
    [
      'internalTrafficPolicy',
      spec.internalTrafficPolicy === undefined ? undefined : goString(spec.internalTrafficPolicy),
    ],
    [
      'trafficDistribution',
      spec.trafficDistribution === undefined ? undefined : goString(spec.trafficDistribution),
    ],
  ]);
}

const zOptStringMap = z.record(z.string(), z.string()).nullish();

const specSchema = goObject({
  cluster: zString,
  name: zString,
  namespace: zString,
  annotations: zOptStringMap,
  labels: zOptStringMap,
  // An intermediate release wrote these capitalised, next to the lower-case ones.
  Annotations: zOptStringMap,
  Labels: zOptStringMap,
  exportCreationTimestamp: z.string().nullish(),
  ports: zList(
    goObject({
      name: zString,
      protocol: zString,
      appProtocol: z.string().nullish(),
      // Go reads a missing port as 0.
      port: zInt32.nullish().transform((v) => v ?? 0),
    }),
  ),
  type: zString,
  sessionAffinity: zString,
  sessionAffinityConfig: goObject({
    clientIP: goObject({ timeoutSeconds: zInt32.nullish() }).nullish(),
  }).nullish(),
  ipFamilies: z.array(z.string()).nullish(),
  internalTrafficPolicy: z.string().nullish(),
  trafficDistribution: z.string().nullish(),
});

/**
 * Parses and validates a service-export value. `keySuffix` is the key below
 * `cilium/state/serviceexports/v1` (or its cache twin): `<cluster>/<namespace>/<name>`.
 * Only `expectedCluster` of the options applies (exports carry no cluster ID).
 */
export function decodeMCSAPIServiceSpec(
  keySuffix: string,
  value: string,
  opts: DecodeOptions = {},
): MCSAPIServiceSpec {
  const raw = parseValue(specSchema, 'service export', keySuffix, value);
  const fail = (reason: string) => invalidEntry('service export', keySuffix, reason);
  if (raw.cluster === '') throw fail('cluster is unset');
  if (raw.namespace === '') throw fail('namespace is unset');
  if (raw.name === '') throw fail('name is unset');

  const ts = raw.exportCreationTimestamp;
  if (ts === null || ts === undefined || ts === '') throw fail('exportCreationTimestamp is unset');
  let date: Date;
  try {
    date = parseRFC3339(ts);
  } catch (err) {
    throw invalidEntry(
      'service export',
      keySuffix,
      `exportCreationTimestamp: invalid RFC 3339 time ${JSON.stringify(ts)}`,
      err,
    );
  }
  // Go's zero time.Time (0001-01-01T00:00:00Z) also means "unset".
  if (date.getTime() === GO_ZERO_TIME_MS) throw fail('exportCreationTimestamp is unset');
  const timestamp = formatRFC3339(date);
  if (raw.type !== 'ClusterSetIP' && raw.type !== 'Headless') {
    throw fail(`type is unknown: ${raw.type}`);
  }
  if (raw.sessionAffinity !== 'ClientIP' && raw.sessionAffinity !== 'None') {
    throw fail(`session affinity is unknown: ${raw.sessionAffinity}`);
  }
  const itp = raw.internalTrafficPolicy ?? undefined;
  if (itp !== undefined && itp !== 'Cluster' && itp !== 'Local') {
    throw fail(`internal traffic policy is unknown: ${itp}`);
  }
  const td = raw.trafficDistribution ?? undefined;
  if (td !== undefined && !(MCSTrafficDistributions as readonly string[]).includes(td)) {
    throw fail(`traffic distribution is unknown: ${td}`);
  }
  checkEntryCluster('service export', keySuffix, raw.cluster, opts);
  checkNamespacedKey('service export', keySuffix, raw);

  const spec: { -readonly [K in keyof MCSAPIServiceSpec]: MCSAPIServiceSpec[K] } = {
    cluster: raw.cluster,
    name: raw.name,
    namespace: raw.namespace,
    exportCreationTimestamp: timestamp,
    ports: raw.ports.map((p) => {
      const port: { -readonly [K in keyof MCSServicePort]: MCSServicePort[K] } = { port: p.port };
      if (p.name !== '') port.name = p.name;
      if (p.protocol !== '') port.protocol = p.protocol;
      if (p.appProtocol !== null && p.appProtocol !== undefined) port.appProtocol = p.appProtocol;
      return port;
    }),
    type: raw.type,
    sessionAffinity: raw.sessionAffinity,
  };
  const annotations = raw.annotations ?? raw.Annotations;
  const labels = raw.labels ?? raw.Labels;
  if (annotations !== null && annotations !== undefined && Object.keys(annotations).length > 0) {
    spec.annotations = annotations;
  }
  if (labels !== null && labels !== undefined && Object.keys(labels).length > 0) {
    spec.labels = labels;
  }
  const sac = raw.sessionAffinityConfig;
  if (sac !== null && sac !== undefined) {
    const clientIP = sac.clientIP;
    spec.sessionAffinityConfig =
      clientIP === null || clientIP === undefined
        ? {}
        : {
            clientIP:
              clientIP.timeoutSeconds === null || clientIP.timeoutSeconds === undefined
                ? {}
                : { timeoutSeconds: clientIP.timeoutSeconds },
          };
  }
  if (raw.ipFamilies !== null && raw.ipFamilies !== undefined && raw.ipFamilies.length > 0) {
    spec.ipFamilies = raw.ipFamilies;
  }
  if (itp !== undefined) spec.internalTrafficPolicy = itp;
  if (td !== undefined) spec.trafficDistribution = td;
  return spec;
}
