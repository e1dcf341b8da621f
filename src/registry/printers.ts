import { tabwrite } from '../lib/table.js';
import type { KindInfo } from './kinds.js';
import { isRecord } from './validation.js';
import type { RegistryObject } from './types.js';

/**
 * `kubectl get`'s text output: a table with the kind's usual columns, NAMESPACE first with
 * --all-namespaces, AGE last, columns padded like Go's tabwriter (3 spaces).
 */

export interface Column {
  readonly header: string;
  readonly cell: (obj: RegistryObject) => string;
}

export interface TableOptions {
  /** Adds the NAMESPACE column (namespaced kinds). */
  readonly allNamespaces?: boolean | undefined;
  readonly now?: Date | undefined;
}

export function formatTable(
  info: KindInfo,
  objects: readonly RegistryObject[],
  opts: TableOptions = {},
): string {
  const now = opts.now ?? new Date();
  const columns: Column[] = [
    ...(opts.allNamespaces === true && info.namespaced
      ? [{ header: 'NAMESPACE', cell: (o: RegistryObject) => o.metadata.namespace ?? '' }]
      : []),
    { header: 'NAME', cell: (o) => o.metadata.name },
    ...(KIND_COLUMNS[info.kind] ?? []),
    { header: 'AGE', cell: (o) => formatAge(o.metadata.creationTimestamp, now) },
    ...(COLUMNS_AFTER_AGE[info.kind] ?? []),
  ];
  const rows = [columns.map((c) => c.header), ...objects.map((o) => columns.map((c) => c.cell(o)))];
  return tabwrite(rows, 3, 0);
}

/** The columns `formatTable` prints between NAME and AGE, and after AGE, for a kind. */
export function kindColumns(kind: string): {
  readonly before: readonly Column[];
  readonly after: readonly Column[];
} {
  return { before: KIND_COLUMNS[kind] ?? [], after: COLUMNS_AFTER_AGE[kind] ?? [] };
}

/** Kubernetes' HumanDuration of the time since `timestamp`: `45s`, `3m10s`, `5h`, `12d`. */
export function formatAge(timestamp: string | undefined, now: Date): string {
  const created = timestamp === undefined ? NaN : Date.parse(timestamp);
  if (Number.isNaN(created)) return '<unknown>';
  const seconds = Math.floor((now.getTime() - created) / 1000);
  if (seconds < -1) return '<invalid>';
  if (seconds < 0) return '0s';
  if (seconds < 120) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return withRest(minutes, 'm', seconds % 60, 's');
  if (minutes < 180) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return withRest(hours, 'h', minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (hours < 24 * 8) return withRest(days, 'd', hours % 24, 'h');
  if (hours < 24 * 365 * 2) return `${days}d`;
  const years = Math.floor(days / 365);
  if (hours < 24 * 365 * 8) return withRest(years, 'y', days % 365, 'd');
  return `${years}y`;
}

function withRest(n: number, unit: string, rest: number, restUnit: string): string {
  return rest === 0 ? `${n}${unit}` : `${n}${unit}${rest}${restUnit}`;
}

// ---- kind-specific columns (loosely typed: the table must print whatever is stored) ----

function field(obj: unknown, ...path: string[]): unknown {
  let v = obj;
  for (const p of path) v = isRecord(v) ? v[p] : undefined;
  return v;
}

function str(v: unknown, empty = '<none>'): string {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : empty;
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

function list(values: readonly string[], empty = '<none>', max = Infinity): string {
  if (values.length === 0) return empty;
  const shown = values.slice(0, max).join(',');
  return values.length > max ? `${shown} + ${values.length - max} more...` : shown;
}

function servicePorts(o: RegistryObject): string {
  return list(
    records(field(o, 'spec', 'ports')).map((p) => {
      const node = typeof p.nodePort === 'number' ? `:${p.nodePort}` : '';
      return `${str(p.port, '')}${node}/${str(p.protocol, 'TCP')}`;
    }),
  );
}

function externalIP(o: RegistryObject): string {
  const type = field(o, 'spec', 'type');
  if (type === 'ExternalName') return str(field(o, 'spec', 'externalName'));
  const ingress = records(field(o, 'status', 'loadBalancer', 'ingress')).map((i) =>
    str(i.ip ?? i.hostname, ''),
  );
  if (type === 'LoadBalancer')
    return list(
      ingress.filter((s) => s !== ''),
      '<pending>',
    );
  return '<none>';
}

function nodeAddress(o: RegistryObject, type: string): string {
  const found = records(field(o, 'spec', 'addresses')).find((a) => a.type === type);
  return str(found?.ip);
}

function cepAddress(o: RegistryObject, family: 'ipv4' | 'ipv6'): string {
  const addrs = records(field(o, 'status', 'networking', 'addressing'));
  return list(
    addrs.map((a) => str(a[family], '')).filter((s) => s !== ''),
    '',
  );
}

function podReady(o: RegistryObject): boolean {
  return records(field(o, 'status', 'conditions')).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );
}

/**
 * A label selector as kubectl prints it (apimachinery's FormatLabelSelector): requirements
 * sorted by key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; `<none>` when empty.
 */
export function formatLabelSelector(selector: unknown): string {
  const reqs: [string, string][] = [];
  const matchLabels = field(selector, 'matchLabels');
  if (isRecord(matchLabels)) {
    for (const [k, v] of Object.entries(matchLabels)) reqs.push([k, `${k}=${str(v, '')}`]);
  }
  for (const e of records(field(selector, 'matchExpressions'))) {
    const key = str(e.key, '');
    const values = Array.isArray(e.values) ? e.values.map((v) => str(v, '')).sort() : [];
    const set = `(${values.join(',')})`;
    const text =
      e.operator === 'In'
        ? `${key} in ${set}`
        : e.operator === 'NotIn'
          ? `${key} notin ${set}`
          : e.operator === 'DoesNotExist'
            ? `!${key}`
            : key;
    reqs.push([key, text]);
  }
  if (reqs.length === 0) return '<none>';
  return reqs
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([, t]) => t)
    .join(',');
}

/**
 * Cilium's policy CRDs print the status of the Valid condition the agents set. The registry
 * stores only policies that pass the same validation, so one without the condition is valid.
 */
function policyValid(o: RegistryObject): string {
  const valid = records(field(o, 'status', 'conditions')).find((c) => c.type === 'Valid');
  return str(valid?.status, 'True');
}

/** Columns a CRD declares after its Age column. */
const COLUMNS_AFTER_AGE: Partial<Record<string, readonly Column[]>> = {
  CiliumNetworkPolicy: [{ header: 'VALID', cell: policyValid }],
  CiliumClusterwideNetworkPolicy: [{ header: 'VALID', cell: policyValid }],
};

const KIND_COLUMNS: Partial<Record<string, readonly Column[]>> = {
  ConfigMap: [
    {
      header: 'DATA',
      cell: (o) => {
        const data = field(o, 'data');
        const binary = field(o, 'binaryData');
        const n =
          (isRecord(data) ? Object.keys(data).length : 0) +
          (isRecord(binary) ? Object.keys(binary).length : 0);
        return String(n);
      },
    },
  ],
  NetworkPolicy: [
    { header: 'POD-SELECTOR', cell: (o) => formatLabelSelector(field(o, 'spec', 'podSelector')) },
  ],
  Namespace: [{ header: 'STATUS', cell: (o) => str(field(o, 'status', 'phase'), 'Active') }],
  Service: [
    { header: 'TYPE', cell: (o) => str(field(o, 'spec', 'type'), 'ClusterIP') },
    { header: 'CLUSTER-IP', cell: (o) => str(field(o, 'spec', 'clusterIP')) },
    { header: 'EXTERNAL-IP', cell: externalIP },
    { header: 'PORT(S)', cell: servicePorts },
  ],
  EndpointSlice: [
    { header: 'ADDRESSTYPE', cell: (o) => str(field(o, 'addressType'), '') },
    {
      header: 'PORTS',
      cell: (o) =>
        list(
          records(field(o, 'ports')).map((p) => str(p.port, '')),
          '<unset>',
        ),
    },
    {
      header: 'ENDPOINTS',
      cell: (o) =>
        list(
          records(field(o, 'endpoints')).flatMap((e) =>
            Array.isArray(e.addresses) ? e.addresses.map((a) => str(a, '')) : [],
          ),
          '<unset>',
          3,
        ),
    },
  ],
  // kubectl's columns, with -o wide's IP and NODE always shown: the local mesh has no
  // other way to see where a pod landed.
  Pod: [
    {
      header: 'READY',
      cell: (o) => {
        const n = records(field(o, 'spec', 'containers')).length;
        return `${podReady(o) ? n : 0}/${n}`;
      },
    },
    {
      header: 'STATUS',
      cell: (o) =>
        str(field(o, 'status', 'reason'), '') || str(field(o, 'status', 'phase'), 'Pending'),
    },
    { header: 'IP', cell: (o) => str(field(o, 'status', 'podIP')) },
    { header: 'NODE', cell: (o) => str(field(o, 'spec', 'nodeName')) },
  ],
  Deployment: [
    {
      header: 'READY',
      cell: (o) =>
        `${str(field(o, 'status', 'readyReplicas'), '0')}/${str(field(o, 'spec', 'replicas'), '1')}`,
    },
    { header: 'UP-TO-DATE', cell: (o) => str(field(o, 'status', 'updatedReplicas'), '0') },
    { header: 'AVAILABLE', cell: (o) => str(field(o, 'status', 'availableReplicas'), '0') },
  ],
  CiliumNode: [
    { header: 'CILIUMINTERNALIP', cell: (o) => nodeAddress(o, 'CiliumInternalIP') },
    { header: 'INTERNALIP', cell: (o) => nodeAddress(o, 'InternalIP') },
  ],
  CiliumEndpoint: [
    { header: 'SECURITY IDENTITY', cell: (o) => str(field(o, 'status', 'identity', 'id'), '') },
    { header: 'ENDPOINT STATE', cell: (o) => str(field(o, 'status', 'state'), '') },
    { header: 'IPV4', cell: (o) => cepAddress(o, 'ipv4') },
    { header: 'IPV6', cell: (o) => cepAddress(o, 'ipv6') },
  ],
  CiliumIdentity: [
    {
      header: 'NAMESPACE',
      cell: (o) => str(field(o, 'security-labels', 'k8s:io.kubernetes.pod.namespace'), '<none>'),
    },
  ],
  ServiceImport: [
    { header: 'TYPE', cell: (o) => str(field(o, 'spec', 'type'), '') },
    // The CRD's printer column is the JSONPath `.spec.ips`: kubectl prints the list as JSON.
    {
      header: 'IP',
      cell: (o) => {
        const ips = field(o, 'spec', 'ips');
        return Array.isArray(ips) ? JSON.stringify(ips) : '<none>';
      },
    },
  ],
};
