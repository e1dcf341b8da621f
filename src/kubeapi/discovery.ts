import { createHash } from 'node:crypto';
import type { ApiResource, ResourceTable } from './resources.js';

/**
 * `/version`, API discovery (aggregated `apidiscovery.k8s.io/v2` and the legacy
 * APIVersions/APIGroupList/APIResourceList documents) and the minimal OpenAPI v3 that lets
 * kubectl's default `apply` validation pass: for every kind, a PATCH operation carrying the
 * kind's group-version-kind and a `fieldValidation` parameter, so kubectl leaves field
 * validation to the server.
 */

/**
 * kubectl on these machines is a dispatcher that runs the kubectl binary matching the
 * server's minor version; 32 selects a kubectl whose exec speaks WebSocket.
 */
export const SERVER_VERSION = {
  major: '1',
  minor: '32',
  gitVersion: 'v1.32.0-clustermesh',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2026-01-01T00:00:00Z',
  goVersion: 'go1.23.4',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export const AGGREGATED_V2 = 'application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList';
export const AGGREGATED_V2BETA1 =
  'application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList';

/** The parameters of each media type of an Accept header, lowercase names. */
export function mediaTypes(accept: string): { type: string; params: Map<string, string> }[] {
  return accept.split(',').map((part) => {
    const [type = '', ...params] = part.split(';').map((s) => s.trim());
    return {
      type: type.toLowerCase(),
      params: new Map(
        params.map((p) => {
          const eq = p.indexOf('=');
          return [p.slice(0, eq).toLowerCase(), p.slice(eq + 1)] as [string, string];
        }),
      ),
    };
  });
}

/** Which aggregated discovery version an Accept header asks for, if any (v2 preferred). */
export function aggregatedVersion(accept: string): 'v2' | 'v2beta1' | undefined {
  const versions = mediaTypes(accept)
    .filter(
      (m) =>
        m.params.get('as') === 'APIGroupDiscoveryList' &&
        m.params.get('g') === 'apidiscovery.k8s.io',
    )
    .map((m) => m.params.get('v'));
  if (versions.includes('v2')) return 'v2';
  if (versions.includes('v2beta1')) return 'v2beta1';
  return undefined;
}

/** Whether an Accept header asks for a meta.k8s.io Table. */
export function wantsTable(accept: string): boolean {
  return mediaTypes(accept).some(
    (m) => m.params.get('as') === 'Table' && m.params.get('g') === 'meta.k8s.io',
  );
}

function resourceEntry(r: ApiResource): Record<string, unknown> {
  return {
    resource: r.resource,
    responseKind: { group: r.group, version: r.version, kind: r.kind },
    scope: r.namespaced ? 'Namespaced' : 'Cluster',
    singularResource: r.singular,
    verbs: r.verbs,
    ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}),
    ...(r.categories.length > 0 ? { categories: r.categories } : {}),
    ...(r.subresources.length > 0
      ? {
          subresources: r.subresources.map((s) => ({
            subresource: s.name,
            responseKind: { group: s.group, version: s.version, kind: s.kind },
            verbs: s.verbs,
          })),
        }
      : {}),
  };
}

/** `/api` (core) or `/apis` (every other group) as an APIGroupDiscoveryList. */
export function aggregatedDiscovery(
  table: ResourceTable,
  core: boolean,
  version: 'v2' | 'v2beta1',
): Record<string, unknown> {
  const groups = table.groupVersions.filter((g) => (g.group === '') === core);
  return {
    kind: 'APIGroupDiscoveryList',
    apiVersion: `apidiscovery.k8s.io/${version}`,
    metadata: {},
    items: groups.map((g) => ({
      metadata: { name: g.group, creationTimestamp: null },
      versions: g.versions.map((v) => ({
        version: v,
        resources: table.inGroupVersion(g.group, v).map(resourceEntry),
        freshness: 'Current',
      })),
    })),
  };
}

export function apiVersions(serverAddress: string): Record<string, unknown> {
  return {
    kind: 'APIVersions',
    versions: ['v1'],
    serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }],
  };
}

function apiGroup(group: string, versions: readonly string[]): Record<string, unknown> {
  const list = versions.map((v) => ({ groupVersion: `${group}/${v}`, version: v }));
  return { name: group, versions: list, preferredVersion: list[0] };
}

export function apiGroupList(table: ResourceTable): Record<string, unknown> {
  return {
    kind: 'APIGroupList',
    apiVersion: 'v1',
    groups: table.groupVersions
      .filter((g) => g.group !== '')
      .map((g) => apiGroup(g.group, g.versions)),
  };
}

export function apiGroupDoc(
  table: ResourceTable,
  group: string,
): Record<string, unknown> | undefined {
  const g = table.groupVersions.find((x) => x.group === group && group !== '');
  return g === undefined
    ? undefined
    : { kind: 'APIGroup', apiVersion: 'v1', ...apiGroup(g.group, g.versions) };
}

export function apiResourceList(
  table: ResourceTable,
  group: string,
  version: string,
): Record<string, unknown> | undefined {
  const resources = table.inGroupVersion(group, version);
  if (resources.length === 0) return undefined;
  const list: Record<string, unknown>[] = [];
  for (const r of resources) {
    list.push({
      name: r.resource,
      singularName: r.singular,
      namespaced: r.namespaced,
      kind: r.kind,
      verbs: r.verbs,
      ...(r.shortNames.length > 0 ? { shortNames: r.shortNames } : {}),
      ...(r.categories.length > 0 ? { categories: r.categories } : {}),
    });
    for (const s of r.subresources) {
      list.push({
        name: `${r.resource}/${s.name}`,
        singularName: '',
        namespaced: r.namespaced,
        ...(s.group !== r.group || s.version !== r.version
          ? { group: s.group, version: s.version }
          : {}),
        kind: s.kind,
        verbs: s.verbs,
      });
    }
  }
  return {
    kind: 'APIResourceList',
    apiVersion: 'v1',
    groupVersion: group === '' ? version : `${group}/${version}`,
    resources: list,
  };
}

/** `api/v1`, `apis/apps/v1`: how OpenAPI v3 names a group-version. */
function openapiPath(group: string, version: string): string {
  return group === '' ? `api/${version}` : `apis/${group}/${version}`;
}

/** The hash clients cache documents by: it changes only when the served kinds change. */
function tableHash(table: ResourceTable): string {
  const h = createHash('sha256');
  for (const r of table.resources) h.update(`${r.groupVersion}/${r.resource}/${r.kind};`);
  return h.digest('hex').slice(0, 16).toUpperCase();
}

export function openapiRoot(table: ResourceTable): Record<string, unknown> {
  const hash = tableHash(table);
  const paths: Record<string, { serverRelativeURL: string }> = {};
  for (const g of table.groupVersions) {
    for (const v of g.versions) {
      const p = openapiPath(g.group, v);
      paths[p] = { serverRelativeURL: `/openapi/v3/${p}?hash=${hash}` };
    }
  }
  return { paths };
}

/** The OpenAPI v3 document of one group-version (`api/v1`, `apis/apps/v1`), or undefined. */
export function openapiGroupVersion(
  table: ResourceTable,
  path: string,
): Record<string, unknown> | undefined {
  const m = /^(?:api\/([^/]+)|apis\/([^/]+)\/([^/]+))$/.exec(path);
  if (m === null) return undefined;
  const group = m[1] !== undefined ? '' : (m[2] ?? '');
  const version = m[1] ?? m[3] ?? '';
  const resources = table.inGroupVersion(group, version);
  if (resources.length === 0) return undefined;
  const paths: Record<string, unknown> = {};
  const base = group === '' ? `/api/${version}` : `/apis/${group}/${version}`;
  for (const r of resources) {
    const url = r.namespaced
      ? `${base}/namespaces/{namespace}/${r.resource}/{name}`
      : `${base}/${r.resource}/{name}`;
    const gvk = { group: r.group, version: r.version, kind: r.kind };
    const param = {
      name: 'fieldValidation',
      in: 'query',
      schema: { type: 'string', uniqueItems: true },
    };
    paths[url] = {
      get: {
        'x-kubernetes-action': 'get',
        'x-kubernetes-group-version-kind': gvk,
        responses: { '200': { description: 'OK' } },
      },
      put: {
        'x-kubernetes-action': 'put',
        'x-kubernetes-group-version-kind': gvk,
        parameters: [param],
        responses: { '200': { description: 'OK' } },
      },
      patch: {
        'x-kubernetes-action': 'patch',
        'x-kubernetes-group-version-kind': gvk,
        parameters: [param],
        responses: { '200': { description: 'OK' } },
      },
    };
    const collection = r.namespaced
      ? `${base}/namespaces/{namespace}/${r.resource}`
      : `${base}/${r.resource}`;
    paths[collection] = {
      post: {
        'x-kubernetes-action': 'post',
        'x-kubernetes-group-version-kind': gvk,
        parameters: [param],
        responses: { '201': { description: 'Created' } },
      },
    };
  }
  return {
    openapi: '3.0.0',
    info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion },
    paths,
    components: {},
  };
}
