import { KINDS, type KindInfo } from '../registry/kinds.js';

/**
 * The API resources a cluster serves, derived from the registry's kind table: one per kind
 * and served version, with the names, verbs and subresources discovery advertises and the
 * router resolves. Subresources with their own handlers (pods' `log` and `exec`) are added
 * by whoever provides the handler, so discovery never lists something that answers 404.
 */

export interface SubresourceInfo {
  /** `status`, `scale`, `log`, … */
  readonly name: string;
  /** The kind the subresource answers with (`Scale`, `PodExecOptions`). */
  readonly kind: string;
  readonly group: string;
  readonly version: string;
  readonly verbs: readonly string[];
}

export interface ApiResource {
  readonly info: KindInfo;
  readonly group: string;
  readonly version: string;
  /** `apps/v1`, or `v1` for the core group. */
  readonly groupVersion: string;
  readonly resource: string;
  readonly kind: string;
  readonly singular: string;
  readonly namespaced: boolean;
  readonly shortNames: readonly string[];
  readonly categories: readonly string[];
  readonly verbs: readonly string[];
  readonly subresources: SubresourceInfo[];
  /** Built-in Kubernetes kinds take strategic merge patches; custom resources do not. */
  readonly builtin: boolean;
}

export const VERBS = ['create', 'delete', 'get', 'list', 'patch', 'update', 'watch'] as const;
const SUB_VERBS = ['get', 'patch', 'update'];

/** Kinds whose `status` is written through `/status` only (a main-resource write keeps it). */
const STATUS_SUBRESOURCE = new Set([
  'Pod',
  'Deployment',
  'Service',
  'Namespace',
  'ServiceExport',
  'ServiceImport',
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
  'CiliumExternalWorkload',
]);

/** kubectl's `get all` category, as the Kubernetes API server assigns it. */
const ALL_CATEGORY = new Set(['Pod', 'Service', 'Deployment']);

const BUILTIN_GROUPS = new Set([
  '',
  'apps',
  'discovery.k8s.io',
  'networking.k8s.io',
  'rbac.authorization.k8s.io',
]);

/** Cilium's CRDs put their kinds in the `cilium` category (`kubectl get cilium`). */
function categories(info: KindInfo): string[] {
  if (ALL_CATEGORY.has(info.kind)) return ['all'];
  if (info.group === 'cilium.io') return ['cilium'];
  return [];
}

export function hasStatusSubresource(kind: string): boolean {
  return STATUS_SUBRESOURCE.has(kind);
}

/** Every served group-version's resources. */
export class ResourceTable {
  readonly resources: readonly ApiResource[];
  /** Group-versions in discovery order: the core group first, then groups by kind table order. */
  readonly groupVersions: readonly { group: string; versions: readonly string[] }[];

  constructor(kinds: readonly KindInfo[] = KINDS) {
    const resources: ApiResource[] = [];
    const groups = new Map<string, string[]>();
    for (const info of kinds) {
      for (const apiVersion of info.apiVersions) {
        const version = apiVersion.includes('/') ? (apiVersion.split('/')[1] ?? '') : apiVersion;
        const subresources: SubresourceInfo[] = [];
        if (STATUS_SUBRESOURCE.has(info.kind)) {
          subresources.push({
            name: 'status',
            kind: info.kind,
            group: info.group,
            version,
            verbs: SUB_VERBS,
          });
        }
        if (info.kind === 'Deployment') {
          subresources.push({
            name: 'scale',
            kind: 'Scale',
            group: 'autoscaling',
            version: 'v1',
            verbs: SUB_VERBS,
          });
        }
        resources.push({
          info,
          group: info.group,
          version,
          groupVersion: apiVersion,
          resource: info.resource,
          kind: info.kind,
          singular: info.singular,
          namespaced: info.namespaced,
          shortNames: info.shortNames,
          categories: categories(info),
          verbs: VERBS,
          subresources,
          builtin: BUILTIN_GROUPS.has(info.group),
        });
        const versions = groups.get(info.group) ?? [];
        if (!versions.includes(version)) versions.push(version);
        groups.set(info.group, versions);
      }
    }
    this.resources = resources;
    const core = groups.get('');
    this.groupVersions = [
      ...(core === undefined ? [] : [{ group: '', versions: core }]),
      ...[...groups].filter(([g]) => g !== '').map(([group, versions]) => ({ group, versions })),
    ];
  }

  /** The resource `resource` of group/version, or undefined. */
  find(group: string, version: string, resource: string): ApiResource | undefined {
    return this.resources.find(
      (r) => r.group === group && r.version === version && r.resource === resource,
    );
  }

  inGroupVersion(group: string, version: string): ApiResource[] {
    return this.resources.filter((r) => r.group === group && r.version === version);
  }

  /**
   * Declares a subresource served by an extra handler (pods' `log`, `exec`), so that
   * discovery lists it for every version of the resource.
   */
  addSubresource(resource: string, sub: Omit<SubresourceInfo, 'group' | 'version'>): void {
    for (const r of this.resources) {
      if (r.resource !== resource || r.subresources.some((s) => s.name === sub.name)) continue;
      r.subresources.push({ ...sub, group: r.group, version: r.version });
    }
  }
}
