import { formatAge, formatLabelSelector, kindColumns } from '../registry/printers.js';
import { isRecord } from '../registry/validation.js';
import type { RegistryObject } from '../registry/types.js';

/**
 * `meta.k8s.io/v1` Table responses: the columns kubectl prints for each kind (priority 1
 * columns only with `-o wide`), cells formatted by the server (ages as `5m`, never as
 * timestamps, which kubectl would print verbatim), and each row's PartialObjectMetadata,
 * which kubectl needs for `-A`'s NAMESPACE column and for `--show-labels`.
 */

export interface ColumnDefinition {
  readonly name: string;
  readonly type: 'string' | 'integer' | 'date' | 'number' | 'boolean';
  readonly format: string;
  readonly description: string;
  readonly priority: number;
}

interface Column {
  readonly def: ColumnDefinition;
  readonly cell: (o: RegistryObject, now: Date) => string | number;
  /** Whether the cell depends on `now` (ages). */
  readonly timed?: boolean;
}

export interface TableRow {
  readonly cells: (string | number)[];
  readonly object: PartialObjectMetadata;
}

export interface PartialObjectMetadata {
  readonly kind: 'PartialObjectMetadata';
  readonly apiVersion: 'meta.k8s.io/v1';
  readonly metadata: RegistryObject['metadata'];
}

export interface Table {
  readonly kind: 'Table';
  readonly apiVersion: 'meta.k8s.io/v1';
  readonly metadata: { resourceVersion?: string };
  readonly columnDefinitions: readonly ColumnDefinition[] | null;
  readonly rows: TableRow[];
}

function timed(c: Column): Column {
  return { ...c, timed: true };
}

function col(
  name: string,
  cell: Column['cell'],
  opts: {
    priority?: number;
    format?: string;
    description?: string;
    type?: ColumnDefinition['type'];
  } = {},
): Column {
  return {
    def: {
      name,
      type: opts.type ?? 'string',
      format: opts.format ?? '',
      description: opts.description ?? name,
      priority: opts.priority ?? 0,
    },
    cell,
  };
}

function field(obj: unknown, ...path: string[]): unknown {
  let v = obj;
  for (const p of path) v = isRecord(v) ? v[p] : undefined;
  return v;
}

function records(v: unknown): Record<string, unknown>[] {
  return Array.isArray(v) ? v.filter(isRecord) : [];
}

function str(v: unknown, empty = '<none>'): string {
  return typeof v === 'string' && v !== '' ? v : typeof v === 'number' ? String(v) : empty;
}

const nameCol = col('Name', (o) => o.metadata.name, {
  format: 'name',
  description: 'Name must be unique within a namespace.',
});
const ageCol = timed(
  col('Age', (o, now) => formatAge(o.metadata.creationTimestamp, now), {
    description:
      'CreationTimestamp is a timestamp representing the server time when this object was created.',
  }),
);

function podReady(o: RegistryObject): string {
  const containers = records(field(o, 'spec', 'containers')).length;
  const statuses = records(field(o, 'status', 'containerStatuses'));
  if (statuses.length > 0) {
    return `${statuses.filter((s) => s.ready === true).length}/${containers}`;
  }
  const ready = records(field(o, 'status', 'conditions')).some(
    (c) => c.type === 'Ready' && c.status === 'True',
  );
  return `${ready ? containers : 0}/${containers}`;
}

function podStatus(o: RegistryObject): string {
  if (field(o, 'metadata', 'deletionTimestamp') !== undefined) return 'Terminating';
  let reason = str(field(o, 'status', 'reason'), '') || str(field(o, 'status', 'phase'), 'Pending');
  // As kubectl: a waiting container's reason (CrashLoopBackOff) names the pod's state.
  for (const s of records(field(o, 'status', 'containerStatuses')).reverse()) {
    const waiting = isRecord(s.state) ? s.state.waiting : undefined;
    if (isRecord(waiting) && typeof waiting.reason === 'string' && waiting.reason !== '') {
      reason = waiting.reason;
    }
  }
  return reason;
}

/** `3`, or `3 (25s ago)` once a container was killed: kubectl's RESTARTS. */
function podRestarts(o: RegistryObject, now: Date): string {
  let n = 0;
  let last = '';
  for (const s of records(field(o, 'status', 'containerStatuses'))) {
    n += typeof s.restartCount === 'number' ? s.restartCount : 0;
    const terminated = isRecord(s.lastState) ? s.lastState.terminated : undefined;
    const at = isRecord(terminated) ? terminated.finishedAt : undefined;
    if (typeof at === 'string' && (last === '' || Date.parse(at) > Date.parse(last))) last = at;
  }
  return n !== 0 && last !== '' ? `${n} (${formatAge(last, now)} ago)` : String(n);
}

function servicePorts(o: RegistryObject): string {
  const ports = records(field(o, 'spec', 'ports')).map((p) => {
    const node = typeof p.nodePort === 'number' ? `:${p.nodePort}` : '';
    return `${str(p.port, '')}${node}/${str(p.protocol, 'TCP')}`;
  });
  return ports.length === 0 ? '<none>' : ports.join(',');
}

function externalIP(o: RegistryObject): string {
  const type = field(o, 'spec', 'type');
  if (type === 'ExternalName') return str(field(o, 'spec', 'externalName'));
  const ingress = records(field(o, 'status', 'loadBalancer', 'ingress'))
    .map((i) => str(i.ip ?? i.hostname, ''))
    .filter((s) => s !== '');
  const external = field(o, 'spec', 'externalIPs');
  const ips = [...ingress, ...(Array.isArray(external) ? external.map((x) => str(x, '')) : [])];
  if (ips.length > 0) return ips.join(',');
  return type === 'LoadBalancer' ? '<pending>' : '<none>';
}

function serviceSelector(o: RegistryObject): string {
  const sel = field(o, 'spec', 'selector');
  return isRecord(sel) && Object.keys(sel).length > 0
    ? formatLabelSelector({ matchLabels: sel })
    : '<none>';
}

function containerField(o: RegistryObject, key: 'name' | 'image'): string {
  const list = records(field(o, 'spec', 'template', 'spec', 'containers')).map((c) =>
    str(c[key], ''),
  );
  return list.length === 0 ? '<none>' : list.join(',');
}

function num(o: RegistryObject, ...path: string[]): string {
  const v = field(o, ...path);
  return typeof v === 'number' ? String(v) : '0';
}

/** Columns between Name and Age (and after Age), per kind: kubectl's printers. */
const BUILTIN: Readonly<Record<string, { before: Column[]; after?: Column[] }>> = {
  Pod: {
    before: [
      col('Ready', podReady, {
        description: 'The aggregate readiness state of this pod for accepting traffic.',
      }),
      col('Status', podStatus, {
        description: 'The aggregate status of the containers in this pod.',
      }),
      timed(
        col('Restarts', podRestarts, {
          description: 'The number of times the containers in this pod have been restarted.',
        }),
      ),
    ],
    after: [
      col('IP', (o) => str(field(o, 'status', 'podIP')), {
        priority: 1,
        description: 'The IP address assigned to the pod',
      }),
      col('Node', (o) => str(field(o, 'spec', 'nodeName')), {
        priority: 1,
        description: 'The name of the node the pod is assigned to',
      }),
      col('Nominated Node', (o) => str(field(o, 'status', 'nominatedNodeName')), { priority: 1 }),
      col(
        'Readiness Gates',
        (o) => {
          const gates = records(field(o, 'spec', 'readinessGates'));
          return gates.length === 0 ? '<none>' : `0/${gates.length}`;
        },
        { priority: 1 },
      ),
    ],
  },
  Service: {
    before: [
      col('Type', (o) => str(field(o, 'spec', 'type'), 'ClusterIP')),
      col('Cluster-IP', (o) => str(field(o, 'spec', 'clusterIP'))),
      col('External-IP', externalIP),
      col('Port(s)', servicePorts),
    ],
    after: [col('Selector', serviceSelector, { priority: 1 })],
  },
  Deployment: {
    before: [
      col(
        'Ready',
        (o) => `${num(o, 'status', 'readyReplicas')}/${str(field(o, 'spec', 'replicas'), '1')}`,
      ),
      col('Up-to-date', (o) => num(o, 'status', 'updatedReplicas')),
      col('Available', (o) => num(o, 'status', 'availableReplicas')),
    ],
    after: [
      col('Containers', (o) => containerField(o, 'name'), { priority: 1 }),
      col('Images', (o) => containerField(o, 'image'), { priority: 1 }),
      col('Selector', (o) => formatLabelSelector(field(o, 'spec', 'selector')), { priority: 1 }),
    ],
  },
  Namespace: { before: [col('Status', (o) => str(field(o, 'status', 'phase'), 'Active'))] },
};

const columnCache = new Map<string, Column[]>();

/** Name, the kind's columns, Age and the kind's wide columns. */
export function columnsOf(kind: string): Column[] {
  const cached = columnCache.get(kind);
  if (cached !== undefined) return cached;
  const builtin = BUILTIN[kind];
  let columns: Column[];
  if (builtin !== undefined) {
    columns = [nameCol, ...builtin.before, ageCol, ...(builtin.after ?? [])];
  } else {
    // The registry CLI's columns (the CRDs' printer columns), headers in kubectl's casing.
    const { before, after } = kindColumns(kind);
    const wrap = (c: (typeof before)[number]): Column => col(titleCase(c.header), (o) => c.cell(o));
    columns = [nameCol, ...before.map(wrap), ageCol, ...after.map(wrap)];
  }
  columnCache.set(kind, columns);
  return columns;
}

function titleCase(header: string): string {
  return header
    .toLowerCase()
    .split(' ')
    .map((w) =>
      w === 'ip' || w === 'ipv4' || w === 'ipv6'
        ? w.toUpperCase()
        : w.charAt(0).toUpperCase() + w.slice(1),
    )
    .join(' ');
}

export function partialMetadata(o: RegistryObject): PartialObjectMetadata {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function tableRow(kind: string, o: RegistryObject, now: Date): TableRow {
  return { cells: tableCells(kind, o, now), object: partialMetadata(o) };
}

/**
 * The cells of a row that depend on `now`, when every other cell depends only on the
 * object (the built-in kinds): a row whose timed cells read the same as when it was last
 * serialised can be sent as it was. Undefined for kinds whose cells may read the clock.
 */
export function timedCells(kind: string, o: RegistryObject, now: Date): string | undefined {
  if (BUILTIN[kind] === undefined) return undefined;
  return columnsOf(kind)
    .filter((c) => c.timed === true)
    .map((c) => String(c.cell(o, now)))
    .join('\u0000');
}

/** A row's cells (ages depend on `now`, so they are computed per answer). */
export function tableCells(kind: string, o: RegistryObject, now: Date): (string | number)[] {
  return columnsOf(kind).map((c) => c.cell(o, now));
}

export function toTable(
  kind: string,
  objects: readonly RegistryObject[],
  resourceVersion: string | undefined,
  opts: { now?: Date; withColumns?: boolean } = {},
): Table {
  const now = opts.now ?? new Date();
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: resourceVersion === undefined ? {} : { resourceVersion },
    columnDefinitions: opts.withColumns === false ? null : columnsOf(kind).map((c) => c.def),
    rows: objects.map((o) => tableRow(kind, o, now)),
  };
}
