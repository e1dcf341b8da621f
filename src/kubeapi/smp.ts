import { badRequest } from './status.js';

/**
 * Strategic merge patch, the patch kubectl's client-side `apply` sends for built-in kinds.
 * Maps merge recursively; a list merges item by item on its merge key when the Kubernetes
 * type declares one (containers by name, ports by containerPort, …), is a set when it
 * declares a primitive merge (finalizers), and is replaced whole otherwise. Directives:
 * `$patch: replace|delete|merge`, `$setElementOrder/<list>`, `$deleteFromPrimitiveList/<list>`,
 * `$retainKeys`, and `null` deleting a key.
 *
 * The merge keys below are those of the Kubernetes Go types' `patchMergeKey` tags, for every
 * list field of the kinds the registry stores.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonMap = { [key: string]: Json };

export interface PatchSchema {
  readonly fields?: Readonly<Record<string, PatchSchema>>;
  /** For lists: merge items on this key. */
  readonly mergeKey?: string;
  /** For lists of scalars: merge as a set. */
  readonly set?: boolean;
  /** The schema of list items (or of every value of a map). */
  readonly items?: PatchSchema;
  /** Every value of a map field has this schema (e.g. labels have none). */
  readonly values?: PatchSchema;
}

const byName = (items?: PatchSchema): PatchSchema => ({
  mergeKey: 'name',
  ...(items ? { items } : {}),
});
const byType: PatchSchema = { mergeKey: 'type' };

const objectMeta: PatchSchema = {
  fields: { ownerReferences: { mergeKey: 'uid' }, finalizers: { set: true } },
};

const container: PatchSchema = {
  fields: {
    ports: { mergeKey: 'containerPort' },
    env: byName(),
    volumeMounts: { mergeKey: 'mountPath' },
    volumeDevices: { mergeKey: 'devicePath' },
    resizePolicy: { mergeKey: 'resourceName' },
  },
};

const podSpec: PatchSchema = {
  fields: {
    containers: byName(container),
    initContainers: byName(container),
    ephemeralContainers: byName(container),
    volumes: byName(),
    imagePullSecrets: byName(),
    hostAliases: { mergeKey: 'ip' },
    topologySpreadConstraints: { mergeKey: 'topologyKey' },
    resourceClaims: byName(),
    schedulingGates: byName(),
  },
};

const podTemplate: PatchSchema = { fields: { metadata: objectMeta, spec: podSpec } };

const podStatus: PatchSchema = {
  fields: { conditions: byType, podIPs: { mergeKey: 'ip' }, hostIPs: { mergeKey: 'ip' } },
};

/** Per kind: the schema of the whole object. Kinds without list merge keys need none. */
export const PATCH_SCHEMAS: Readonly<Record<string, PatchSchema>> = {
  Pod: { fields: { metadata: objectMeta, spec: podSpec, status: podStatus } },
  Deployment: {
    fields: {
      metadata: objectMeta,
      spec: { fields: { template: podTemplate } },
      status: { fields: { conditions: byType } },
    },
  },
  Service: {
    fields: {
      metadata: objectMeta,
      spec: { fields: { ports: { mergeKey: 'port' } } },
      status: { fields: { conditions: byType } },
    },
  },
  Namespace: { fields: { metadata: objectMeta, status: { fields: { conditions: byType } } } },
  ConfigMap: { fields: { metadata: objectMeta } },
  EndpointSlice: { fields: { metadata: objectMeta } },
  NetworkPolicy: { fields: { metadata: objectMeta } },
};

export function patchSchemaOf(kind: string): PatchSchema {
  return PATCH_SCHEMAS[kind] ?? { fields: { metadata: objectMeta } };
}

function isMap(v: unknown): v is JsonMap {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

const SET_ORDER = '$setElementOrder/';
const DELETE_FROM = '$deleteFromPrimitiveList/';

/** Applies a strategic merge patch to `original` (not modified); 400 on a malformed patch. */
export function strategicMergePatch(original: Json, patch: Json, schema: PatchSchema): Json {
  if (!isMap(patch)) throw badRequest('a strategic merge patch must be a JSON object');
  const out = mergeMap(isMap(original) ? original : {}, patch, schema);
  return out ?? {};
}

/** Returns undefined when the map itself is deleted (`$patch: delete`). */
function mergeMap(
  original: JsonMap,
  patch: JsonMap,
  schema: PatchSchema | undefined,
): JsonMap | undefined {
  const directive = patch.$patch;
  if (directive === 'delete') return undefined;
  if (directive === 'replace') return withoutDirectives(patch);
  if (directive !== undefined && directive !== 'merge') {
    throw badRequest(`Unknown patch type: ${JSON.stringify(directive)}`);
  }
  const result: JsonMap = { ...original };
  const orders = new Map<string, Json[]>();
  const deletions = new Map<string, Json[]>();
  for (const [key, value] of Object.entries(patch)) {
    if (key === '$patch' || key === '$retainKeys') continue;
    if (key.startsWith(SET_ORDER)) {
      if (!Array.isArray(value)) throw badRequest(`${key} must be a list`);
      orders.set(key.slice(SET_ORDER.length), value);
      continue;
    }
    if (key.startsWith(DELETE_FROM)) {
      if (!Array.isArray(value)) throw badRequest(`${key} must be a list`);
      deletions.set(key.slice(DELETE_FROM.length), value);
      continue;
    }
    const fieldSchema = schema?.fields?.[key] ?? schema?.values;
    if (value === null) {
      Reflect.deleteProperty(result, key);
    } else if (isMap(value)) {
      const cur = result[key];
      const merged = mergeMap(isMap(cur) ? cur : {}, value, fieldSchema);
      if (merged === undefined) Reflect.deleteProperty(result, key);
      else result[key] = merged;
    } else if (Array.isArray(value)) {
      result[key] = mergeList(result[key], value, fieldSchema);
    } else {
      result[key] = value;
    }
  }
  for (const [key, values] of deletions) {
    const cur = result[key];
    if (Array.isArray(cur)) {
      result[key] = cur.filter((v) => !values.some((d) => sameJson(d, v)));
    }
  }
  for (const [key, order] of orders) {
    const cur = result[key];
    if (Array.isArray(cur)) result[key] = applyOrder(cur, order, schema?.fields?.[key]?.mergeKey);
  }
  const retain = patch.$retainKeys;
  if (retain !== undefined) {
    if (!Array.isArray(retain)) throw badRequest('$retainKeys must be a list');
    const keep = new Set(retain.filter((k): k is string => typeof k === 'string'));
    for (const key of Object.keys(result)) if (!keep.has(key)) Reflect.deleteProperty(result, key);
  }
  return result;
}

function mergeList(
  original: Json | undefined,
  patch: Json[],
  schema: PatchSchema | undefined,
): Json[] {
  const cur = Array.isArray(original) ? original : [];
  // `{"$patch": "replace"}` as an item: the rest of the patch list is the new list.
  if (patch.some((p) => isMap(p) && p.$patch === 'replace' && Object.keys(p).length === 1)) {
    return patch.filter((p) => !(isMap(p) && p.$patch === 'replace')).map(stripItem);
  }
  if (schema?.set === true) {
    const out = [...cur];
    for (const v of patch) if (!out.some((x) => sameJson(x, v))) out.push(v);
    return out;
  }
  const key = schema?.mergeKey;
  if (key === undefined) return patch.map(stripItem);
  const out: Json[] = cur.map((x) => x);
  for (const item of patch) {
    if (!isMap(item)) {
      throw badRequest(`a list merged on ${JSON.stringify(key)} must hold objects`);
    }
    const id = item[key];
    if (id === undefined) {
      throw badRequest(`map: ${JSON.stringify(item)} does not contain declared merge key: ${key}`);
    }
    const at = out.findIndex((x) => isMap(x) && sameJson(x[key], id));
    if (item.$patch === 'delete') {
      if (at >= 0) out.splice(at, 1);
      continue;
    }
    if (at >= 0) {
      const merged = mergeMap(out[at] as JsonMap, item, schema?.items);
      if (merged === undefined) out.splice(at, 1);
      else out[at] = merged;
    } else {
      out.push(mergeMap({}, item, schema?.items) ?? {});
    }
  }
  return out;
}

/**
 * Orders a merged list as `$setElementOrder` says; items it does not name (written by the
 * server or another client) keep their relative order after the named ones.
 */
function applyOrder(list: Json[], order: Json[], mergeKey: string | undefined): Json[] {
  const idOf = (v: Json): Json => (mergeKey !== undefined && isMap(v) ? (v[mergeKey] ?? null) : v);
  const orderIds = order.map(idOf);
  const rank = (v: Json): number => {
    const i = orderIds.findIndex((o) => sameJson(o, idOf(v)));
    return i < 0 ? orderIds.length : i;
  };
  return list
    .map((v, i) => ({ v, i, r: rank(v) }))
    .sort((a, b) => a.r - b.r || a.i - b.i)
    .map((x) => x.v);
}

function stripItem(v: Json): Json {
  return isMap(v) ? withoutDirectives(v) : v;
}

function withoutDirectives(m: JsonMap): JsonMap {
  const out: JsonMap = {};
  for (const [k, v] of Object.entries(m)) {
    if (
      k === '$patch' ||
      k === '$retainKeys' ||
      k.startsWith(SET_ORDER) ||
      k.startsWith(DELETE_FROM)
    ) {
      continue;
    }
    out[k] = isMap(v) ? withoutDirectives(v) : Array.isArray(v) ? v.map(stripItem) : v;
  }
  return out;
}

/** RFC 7386 JSON merge patch. */
export function jsonMergePatch(original: Json, patch: Json): Json {
  if (!isMap(patch)) return patch;
  const result: JsonMap = isMap(original) ? { ...original } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) Reflect.deleteProperty(result, key);
    else result[key] = jsonMergePatch(result[key] ?? null, value);
  }
  return result;
}

function sameJson(a: Json | undefined, b: Json | undefined): boolean {
  if (a === b) return true;
  if (Array.isArray(a))
    return Array.isArray(b) && a.length === b.length && a.every((x, i) => sameJson(x, b[i]));
  if (!isMap(a) || !isMap(b)) return false;
  const ka = Object.keys(a);
  return ka.length === Object.keys(b).length && ka.every((k) => sameJson(a[k], b[k]));
}
