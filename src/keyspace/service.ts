/**
 * STABLE KEYSPACE CONTRACT — the ClusterService value at
 * `cilium/state/services/v1/<cluster>/<namespace>/<name>` (reference
 * `pkg/clustermesh/store/store.go`, earlier `pkg/service/store/store.go`), plus the
 * global-service annotations that decide what is exported.
 *
 * Empty maps are written as `{}`: the reference builds every map with
 * `NewClusterService`, so it never writes `null` for them. `hostnames` is always
 * written (1.14–1.16 had no `omitempty`; later readers accept it either way).
 */

import { z } from 'zod';
import {
  type JsonFragment,
  goBool,
  goArray,
  goInt,
  goMap,
  goString,
  goStringMap,
  goStruct,
} from './gojson.js';
import { isValidAddr } from './ip.js';
import { serviceKeyName } from './keys.js';
import {
  foldFieldNames,
  goObject,
  type DecodeOptions,
  checkEntryCluster,
  checkNamespacedKey,
  checkClusterIdRange,
  checkExpectedClusterId,
  invalidEntry,
  parseValue,
  zBool,
  zList,
  zString,
  zStringMap,
  zUint32,
} from './codec.js';

/** `loadbalancer.L4Addr` (no JSON tags, hence PascalCase). */
export interface L4Addr {
  /** `TCP`, `UDP`, `SCTP`, `ANY` or `NONE`. */
  readonly Protocol: string;
  readonly Port: number;
}

/** Port name (`''` for an unnamed port) → L4 address. */
export type PortConfiguration = Readonly<Record<string, L4Addr>>;

export interface BackendZone {
  readonly zone: string;
  readonly forZones: readonly { readonly name: string }[];
}

export interface ClusterService {
  readonly cluster: string;
  readonly namespace: string;
  readonly name: string;
  /** Frontend IP → ports. */
  readonly frontends: Readonly<Record<string, PortConfiguration>>;
  /** Backend IP → ports. */
  readonly backends: Readonly<Record<string, PortConfiguration>>;
  /** Backend IP → hostname. */
  readonly hostnames: Readonly<Record<string, string>>;
  /** Newer releases only (topology-aware routing); written when non-empty. */
  readonly zones?: Readonly<Record<string, BackendZone>>;
  readonly labels: Readonly<Record<string, string>>;
  readonly selector: Readonly<Record<string, string>>;
  /** Merge remote backends (the service is global). */
  readonly includeExternal: boolean;
  /** Export local backends to other clusters. */
  readonly shared: boolean;
  readonly clusterID: number;
}

export function makeClusterService(
  fields: Pick<ClusterService, 'cluster' | 'namespace' | 'name'> & Partial<ClusterService>,
): ClusterService {
  return {
    frontends: {},
    backends: {},
    hostnames: {},
    labels: {},
    selector: {},
    includeExternal: false,
    shared: false,
    clusterID: 0,
    ...fields,
  };
}

/** The key below `cilium/state/services/v1`: `<cluster>/<namespace>/<name>`. */
export function clusterServiceKeyName(
  svc: Pick<ClusterService, 'cluster' | 'namespace' | 'name'>,
): string {
  return serviceKeyName(svc.cluster, svc.namespace, svc.name);
}

function encodePorts(ports: PortConfiguration): JsonFragment {
  return goMap(ports, (a) =>
    goStruct([
      ['Protocol', goString(a.Protocol)],
      ['Port', goInt(a.Port)],
    ]),
  );
}

/** Serialises like the reference's `json.Marshal(svc)`. */
export function encodeClusterService(svc: ClusterService): string {
  const zones = svc.zones;
  return goStruct([
    ['cluster', goString(svc.cluster)],
    ['namespace', goString(svc.namespace)],
    ['name', goString(svc.name)],
    ['frontends', goMap(svc.frontends, encodePorts)],
    ['backends', goMap(svc.backends, encodePorts)],
    ['hostnames', goStringMap(svc.hostnames)],
    [
      'zones',
      zones === undefined || Object.keys(zones).length === 0
        ? undefined
        : goMap(zones, (z) =>
            goStruct([
              ['zone', goString(z.zone)],
              ['forZones', goArray(z.forZones, (f) => goStruct([['name', goString(f.name)]]))],
            ]),
          ),
    ],
    ['labels', goStringMap(svc.labels)],
    ['selector', goStringMap(svc.selector)],
    ['includeExternal', goBool(svc.includeExternal)],
    ['shared', goBool(svc.shared)],
    ['clusterID', goInt(svc.clusterID)],
  ]);
}

/**
 * Frontend/backend maps are checked by hand rather than by a zod record of records:
 * a 1,000-backend update is decoded on every change of a remote service, and the
 * schema walk dominated the agent's CPU. Identical port configurations (nearly every
 * backend of a service has the same one) are shared, which also saves memory.
 */
class AddressMapError extends Error {}

function parseAddressMap(
  v: unknown,
  field: string,
  shared: Map<string, PortConfiguration>,
): Record<string, PortConfiguration> {
  if (v === null || v === undefined) return {};
  if (typeof v !== 'object' || Array.isArray(v))
    throw new AddressMapError(`${field}: expected object`);
  const out: Record<string, PortConfiguration> = {};
  for (const [address, ports] of Object.entries(v as Record<string, unknown>)) {
    out[address] = parsePorts(ports, `${field}.${address}`, shared);
  }
  return out;
}

function parsePorts(
  v: unknown,
  field: string,
  shared: Map<string, PortConfiguration>,
): PortConfiguration {
  if (v === null || v === undefined) return EMPTY_PORTS;
  if (typeof v !== 'object' || Array.isArray(v))
    throw new AddressMapError(`${field}: expected object`);
  let signature = '';
  const entries = Object.entries(v as Record<string, unknown>);
  for (const [name, addr] of entries) {
    if (typeof addr !== 'object' || addr === null || Array.isArray(addr)) {
      throw new AddressMapError(`${field}.${name}: expected object`);
    }
    const { Protocol, Port } = foldFieldNames(addr, L4_FIELDS) as {
      Protocol?: unknown;
      Port?: unknown;
    };
    if (Protocol !== undefined && Protocol !== null && typeof Protocol !== 'string') {
      throw new AddressMapError(`${field}.${name}.Protocol: expected string`);
    }
    if (
      Port !== undefined &&
      Port !== null &&
      !(typeof Port === 'number' && Number.isInteger(Port) && Port >= 0 && Port <= 65535)
    ) {
      throw new AddressMapError(`${field}.${name}.Port: expected integer 0..65535`);
    }
    signature += `${name}\0${Protocol ?? ''}\0${Port ?? 0}\0`;
  }
  const known = shared.get(signature);
  if (known !== undefined) return known;
  const out: Record<string, L4Addr> = {};
  for (const [name, addr] of entries) {
    const { Protocol, Port } = foldFieldNames(addr, L4_FIELDS) as {
      Protocol?: string | null;
      Port?: number | null;
    };
    out[name] = Object.freeze({ Protocol: Protocol ?? '', Port: Port ?? 0 });
  }
  const frozen = Object.freeze(out);
  shared.set(signature, frozen);
  return frozen;
}

const L4_FIELDS = ['Protocol', 'Port'];

const EMPTY_PORTS: PortConfiguration = Object.freeze({});

const serviceSchema = goObject({
  cluster: zString,
  namespace: zString,
  name: zString,
  // Optional: zod 4 requires a key declared `z.unknown()`, Go defaults it to empty.
  frontends: z.unknown().optional(),
  backends: z.unknown().optional(),
  hostnames: zStringMap,
  zones: z
    .record(z.string(), goObject({ zone: zString, forZones: zList(goObject({ name: zString })) }))
    .nullish(),
  labels: zStringMap,
  selector: zStringMap,
  includeExternal: zBool,
  shared: zBool,
  clusterID: zUint32,
});

/**
 * Parses and validates a shared-service value. `keySuffix` is the key below
 * `cilium/state/services/v1` (or its cache twin): `<cluster>/<namespace>/<name>`.
 */
export function decodeClusterService(
  keySuffix: string,
  value: string,
  opts: DecodeOptions = {},
): ClusterService {
  const parsed = parseValue(serviceSchema, 'service', keySuffix, value);
  const fail = (reason: string) => invalidEntry('service', keySuffix, reason);
  const shared = new Map<string, PortConfiguration>();
  let raw: Omit<typeof parsed, 'frontends' | 'backends'> & {
    frontends: Record<string, PortConfiguration>;
    backends: Record<string, PortConfiguration>;
  };
  try {
    raw = {
      ...parsed,
      frontends: parseAddressMap(parsed.frontends, 'frontends', shared),
      backends: parseAddressMap(parsed.backends, 'backends', shared),
    };
  } catch (err) {
    if (err instanceof AddressMapError) throw fail(err.message);
    throw err;
  }
  if (raw.cluster === '') throw fail('cluster is unset');
  if (raw.namespace === '') throw fail('namespace is unset');
  if (raw.name === '') throw fail('name is unset');
  // The reference's order: value checks, then the cluster-name, namespaced-name and
  // cluster-ID validators, so that a spoofed entry is reported with the same reason.
  checkClusterIdRange('service', keySuffix, raw.clusterID, opts);
  for (const [kind, map] of [
    ['frontend', raw.frontends],
    ['backend', raw.backends],
  ] as const) {
    for (const address of Object.keys(map)) {
      if (!isValidAddr(address)) throw fail(`invalid ${kind} address ${JSON.stringify(address)}`);
    }
  }
  checkEntryCluster('service', keySuffix, raw.cluster, opts);
  checkNamespacedKey('service', keySuffix, raw);
  checkExpectedClusterId('service', keySuffix, raw.clusterID, opts);
  const { zones, ...rest } = raw;
  return zones === null || zones === undefined || Object.keys(zones).length === 0
    ? rest
    : { ...rest, zones };
}

// ---------------------------------------------------------------------------------
// Global-service annotations (reference `pkg/annotation/k8s.go`)
// ---------------------------------------------------------------------------------

export const GlobalServiceAnnotation = 'service.cilium.io/global';
export const GlobalServiceAnnotationAlias = 'io.cilium/global-service';
export const SharedServiceAnnotation = 'service.cilium.io/shared';
export const SharedServiceAnnotationAlias = 'io.cilium/shared-service';
export const ServiceAffinityAnnotation = 'service.cilium.io/affinity';
export const ServiceAffinityAnnotationAlias = 'io.cilium/service-affinity';
export const GlobalSyncEndpointSlicesAnnotation = 'service.cilium.io/global-sync-endpoint-slices';

export type ServiceAffinity = 'local' | 'remote' | 'none';

/** The new annotation name wins; the legacy alias is read only when it is absent. */
function annotation(
  annotations: Readonly<Record<string, string>> | undefined,
  name: string,
  alias: string,
): string | undefined {
  if (annotations === undefined) return undefined;
  return Object.hasOwn(annotations, name)
    ? annotations[name]
    : Object.hasOwn(annotations, alias)
      ? annotations[alias]
      : undefined;
}

export interface GlobalServiceSettings {
  /** Annotated global: merge remote backends (`includeExternal`). */
  readonly global: boolean;
  /** Export local backends; defaults to true, only meaningful when global. */
  readonly shared: boolean;
  readonly affinity: ServiceAffinity;
}

/**
 * Reads the global-service annotations of a Service. `shared` and `affinity` are
 * only evaluated for global services (otherwise false / `none`).
 */
export function globalServiceSettings(
  annotations: Readonly<Record<string, string>> | undefined,
): GlobalServiceSettings {
  const global =
    annotation(
      annotations,
      GlobalServiceAnnotation,
      GlobalServiceAnnotationAlias,
    )?.toLowerCase() === 'true';
  if (!global) return { global: false, shared: false, affinity: 'none' };
  const sharedText = annotation(annotations, SharedServiceAnnotation, SharedServiceAnnotationAlias);
  const shared = sharedText === undefined ? true : sharedText.toLowerCase() === 'true';
  const affinityText = annotation(
    annotations,
    ServiceAffinityAnnotation,
    ServiceAffinityAnnotationAlias,
  )?.toLowerCase();
  const affinity: ServiceAffinity =
    affinityText === 'local' || affinityText === 'remote' ? affinityText : 'none';
  return { global, shared, affinity };
}

/**
 * Whether a Service's EndpointSlices are synced across clusters (reference
 * `doesServiceSyncEndpointSlice`): only when `service.cilium.io/global` itself (not
 * its legacy alias) is `true`; then `service.cilium.io/global-sync-endpoint-slices`
 * if set, else on for headless Services only.
 */
export function globalSyncEndpointSlices(
  annotations: Readonly<Record<string, string>> | undefined,
  headless: boolean,
): boolean {
  if (annotations?.[GlobalServiceAnnotation]?.toLowerCase() !== 'true') return false;
  const text = annotations[GlobalSyncEndpointSlicesAnnotation];
  if (text === undefined) return headless;
  return text.toLowerCase() === 'true';
}
