/**
 * Normalized policy rules and the parser from user objects (api.ts) to them. Every
 * element of an ingress/egress/ingressDeny/egressDeny list (or a NetworkPolicy peer)
 * becomes one independent entry `{subject, direction, allow|deny, peers, ports,
 * defaultDeny}`; namespace and cluster defaulting happen here, so the engine only
 * matches labels. Anything the engine cannot represent is refused with one line
 * naming the field.
 */
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  KNOWN_SOURCES,
  LABEL_CLUSTER,
  LABEL_NAMESPACE,
  NAMESPACE_LABELS_PREFIX,
  SOURCE_ANY,
  SOURCE_K8S,
  SOURCE_RESERVED,
  formatRequirement,
  parsePrefix,
  prefixContains,
  type Prefix,
  type Requirement,
} from './labels.js';

export type Direction = 'ingress' | 'egress';
export type Protocol = 'TCP' | 'UDP' | 'SCTP';
export type PolicyKind = 'CiliumNetworkPolicy' | 'CiliumClusterwideNetworkPolicy' | 'NetworkPolicy';

/** Which policy an entry came from, in Hubble's `Policy {name, namespace, kind}` form. */
export interface PolicyRef {
  readonly kind: PolicyKind;
  /** Empty for a CiliumClusterwideNetworkPolicy. */
  readonly namespace: string;
  readonly name: string;
}

export function policyKey(ref: PolicyRef): string {
  return `${ref.kind}/${ref.namespace}/${ref.name}`;
}

/** ANDed requirements; none at all selects every identity. `key` is canonical (dedupe). */
export interface LabelSelectorN {
  readonly kind: 'labels';
  readonly requirements: readonly Requirement[];
  readonly key: string;
}

export interface CIDRSelector {
  readonly kind: 'cidr';
  readonly cidr: string;
  readonly prefix: Prefix;
  readonly except: readonly Prefix[];
  readonly exceptText: readonly string[];
  readonly key: string;
}

export type PeerSelector = LabelSelectorN | CIDRSelector;

/** `port` 0 = every port; `name` set = a named port, resolved against the destination. */
export interface PortSpec {
  readonly port: number;
  readonly endPort: number;
  readonly name: string | null;
  readonly protocols: readonly Protocol[];
}

export interface RuleEntry {
  readonly policy: PolicyRef;
  /** Where in the object the entry came from, e.g. `specs[1].ingressDeny[0]`. */
  readonly path: string;
  readonly direction: Direction;
  readonly action: 'allow' | 'deny';
  readonly subject: LabelSelectorN;
  /** `null` (or empty) = matches no peer; the entry still counts for default deny. */
  readonly peers: readonly PeerSelector[] | null;
  /** Empty = every port and protocol (an L3-only entry). */
  readonly ports: readonly PortSpec[];
  readonly defaultDeny: boolean;
}

export interface ParsedPolicy {
  readonly ref: PolicyRef;
  readonly entries: readonly RuleEntry[];
}

export interface ParseOptions {
  /** The local cluster's name (`cluster` entity, cluster defaulting). Default `default`. */
  clusterName?: string;
  /** Cilium 1.19's `--policy-default-local-cluster`, default true. */
  policyDefaultLocalCluster?: boolean;
}

export function selectorKey(reqs: readonly Requirement[]): string {
  return reqs.map(formatRequirement).sort().join(',');
}

export function labelSelector(reqs: readonly Requirement[]): LabelSelectorN {
  return { kind: 'labels', requirements: reqs, key: `L{${selectorKey(reqs)}}` };
}

export const WILDCARD: LabelSelectorN = labelSelector([]);

const ALL_PROTOCOLS: readonly Protocol[] = ['TCP', 'UDP', 'SCTP'];

// ---------------------------------------------------------------------------------
// Input checking helpers

class Ctx {
  constructor(readonly what: string) {}
  fail(path: string, msg: string): never {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `${this.what}: ${path}: ${msg}`);
  }
}

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(ctx: Ctx, v: unknown, path: string): Obj {
  if (!isObj(v)) ctx.fail(path, 'must be an object');
  return v;
}

function list(ctx: Ctx, v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) ctx.fail(path, 'must be a list');
  return v as unknown[];
}

function str(ctx: Ctx, v: unknown, path: string): string {
  if (typeof v !== 'string') ctx.fail(path, 'must be a string');
  return v;
}

function onlyFields(ctx: Ctx, o: Obj, path: string, allowed: readonly string[], why = ''): void {
  for (const k of Object.keys(o)) {
    if (o[k] === undefined) continue;
    if (!allowed.includes(k)) {
      ctx.fail(join(path, k), `not supported${why === '' ? '' : ` (${why})`}`);
    }
  }
}

function join(path: string, field: string): string {
  return path === '' ? field : `${path}.${field}`;
}

// ---------------------------------------------------------------------------------
// Selectors

type KeyMode = 'cilium' | 'k8s';

/** A selector key as written → (source, key). Cilium: no source = any; KNP: always k8s. */
function selectorKeyOf(ctx: Ctx, raw: string, mode: KeyMode, path: string): [string, string] {
  if (raw === '') ctx.fail(path, 'empty label key');
  if (mode === 'k8s') return [SOURCE_K8S, raw];
  let source = SOURCE_ANY;
  let key = raw;
  if (raw.startsWith('$')) {
    source = SOURCE_RESERVED;
    key = raw.slice(1);
  } else if (raw.startsWith('reserved.')) {
    source = SOURCE_RESERVED;
    key = raw.slice(9);
  } else {
    const colon = raw.indexOf(':');
    if (colon >= 0) {
      source = raw.slice(0, colon);
      key = raw.slice(colon + 1);
      if (!KNOWN_SOURCES.has(source)) ctx.fail(path, `unknown label source "${source}"`);
    }
  }
  const colon = key.indexOf(':');
  if (colon >= 0 && KNOWN_SOURCES.has(key.slice(0, colon))) {
    ctx.fail(path, `label key "${raw}" names two sources`);
  }
  if (key === '') ctx.fail(path, `empty label key in "${raw}"`);
  return [source, key];
}

function parseLabelSelector(ctx: Ctx, v: unknown, path: string, mode: KeyMode): Requirement[] {
  const o = obj(ctx, v, path);
  onlyFields(ctx, o, path, ['matchLabels', 'matchExpressions']);
  const reqs: Requirement[] = [];
  if (o.matchLabels !== undefined && o.matchLabels !== null) {
    const ml = obj(ctx, o.matchLabels, join(path, 'matchLabels'));
    for (const [k, val] of Object.entries(ml)) {
      const p = join(path, `matchLabels.${k}`);
      const [source, key] = selectorKeyOf(ctx, k, mode, p);
      reqs.push({ source, key, op: 'In', values: [str(ctx, val ?? '', p)] });
    }
  }
  if (o.matchExpressions !== undefined && o.matchExpressions !== null) {
    const exprs = list(ctx, o.matchExpressions, join(path, 'matchExpressions'));
    exprs.forEach((e, i) => {
      const p = join(path, `matchExpressions[${i}]`);
      const eo = obj(ctx, e, p);
      onlyFields(ctx, eo, p, ['key', 'operator', 'values']);
      const [source, key] = selectorKeyOf(
        ctx,
        str(ctx, eo.key, join(p, 'key')),
        mode,
        join(p, 'key'),
      );
      const op = eo.operator;
      const values =
        eo.values === undefined || eo.values === null
          ? []
          : list(ctx, eo.values, join(p, 'values')).map((x, j) =>
              str(ctx, x, join(p, `values[${j}]`)),
            );
      if (op === 'In' || op === 'NotIn') {
        if (values.length === 0) ctx.fail(join(p, 'values'), `must be non-empty for ${op}`);
      } else if (op === 'Exists' || op === 'DoesNotExist') {
        if (values.length > 0) ctx.fail(join(p, 'values'), `must be empty for ${op}`);
      } else {
        ctx.fail(join(p, 'operator'), 'must be one of In, NotIn, Exists, DoesNotExist');
      }
      reqs.push({ source, key, op, values });
    });
  }
  return reqs;
}

function hasKey(reqs: readonly Requirement[], sources: readonly string[], key: string): boolean {
  return reqs.some((r) => r.key === key && sources.includes(r.source));
}

const K8S_OR_ANY = [SOURCE_K8S, SOURCE_ANY];

function eq(source: string, key: string, value: string): Requirement {
  return { source, key, op: 'In', values: [value] };
}

function exists(source: string, key: string): Requirement {
  return { source, key, op: 'Exists', values: [] };
}

/**
 * The `cluster` entity: the local cluster's reserved identities plus its pods. It uses
 * the real local cluster name, never the default-local-cluster setting.
 */
const CLUSTER_RESERVED = [
  'host',
  'remote-node',
  'init',
  'ingress',
  'health',
  'unmanaged',
  'kube-apiserver',
];

function entitySelectors(
  ctx: Ctx,
  entity: unknown,
  path: string,
  cluster: string,
): LabelSelectorN[] {
  const reserved = (name: string): LabelSelectorN => labelSelector([exists(SOURCE_RESERVED, name)]);
  switch (entity) {
    case 'all':
      return [WILDCARD];
    case 'world':
      return [reserved('world'), reserved('world-ipv4'), reserved('world-ipv6')];
    case 'world-ipv4':
    case 'world-ipv6':
    case 'host':
    case 'remote-node':
    case 'kube-apiserver':
    case 'health':
    case 'init':
    case 'ingress':
    case 'unmanaged':
    case 'none':
      return [reserved(entity)];
    case 'cluster':
      return [
        ...CLUSTER_RESERVED.map(reserved),
        labelSelector([eq(SOURCE_K8S, LABEL_CLUSTER, cluster)]),
      ];
    case 'cluster-mesh':
      // Not in Cilium 1.19 (added later, selector list unpublished): read as the
      // `cluster` reserved set plus the pods of every cluster of the mesh, never world.
      return [
        ...CLUSTER_RESERVED.map(reserved),
        labelSelector([exists(SOURCE_K8S, LABEL_CLUSTER)]),
      ];
    default:
      return ctx.fail(path, `unknown entity ${JSON.stringify(entity)}`);
  }
}

function parseCidr(ctx: Ctx, v: unknown, path: string): { text: string; prefix: Prefix } {
  const text = str(ctx, v, path);
  const prefix = parsePrefix(text);
  if (prefix === null) ctx.fail(path, `invalid CIDR "${text}"`);
  return { text, prefix };
}

function cidrSelector(
  ctx: Ctx,
  cidr: { text: string; prefix: Prefix },
  except: { text: string; prefix: Prefix }[],
  path: string,
): CIDRSelector {
  for (const e of except) {
    if (!prefixContains(cidr.prefix, e.prefix)) {
      ctx.fail(join(path, 'except'), `"${e.text}" is not inside "${cidr.text}"`);
    }
  }
  const exceptText = except.map((e) => e.text);
  return {
    kind: 'cidr',
    cidr: cidr.text,
    prefix: cidr.prefix,
    except: except.map((e) => e.prefix),
    exceptText,
    key: `C{${cidr.text}${exceptText.length > 0 ? ` except ${[...exceptText].sort().join(',')}` : ''}}`,
  };
}

// ---------------------------------------------------------------------------------
// Ports

function parsePortNumber(ctx: Ctx, v: unknown, path: string): number {
  const n = typeof v === 'string' && /^\d+$/.test(v) ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n > 65535) {
    ctx.fail(path, 'must be a port number 0..65535');
  }
  return n;
}

const PORT_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;

function portSpec(
  ctx: Ctx,
  portRaw: unknown,
  endPortRaw: unknown,
  protocols: readonly Protocol[],
  path: string,
): PortSpec {
  if (typeof portRaw === 'string' && !/^\d+$/.test(portRaw)) {
    // Named ports are case-insensitive names; endPort means nothing for them.
    const name = portRaw.toLowerCase();
    if (!PORT_NAME.test(name) || !/[a-z]/.test(name))
      ctx.fail(join(path, 'port'), `invalid port name "${portRaw}"`);
    return { port: 0, endPort: 0, name, protocols };
  }
  const port = parsePortNumber(ctx, portRaw, join(path, 'port'));
  let endPort = port;
  if (endPortRaw !== undefined && endPortRaw !== null && endPortRaw !== 0) {
    endPort = parsePortNumber(ctx, endPortRaw, join(path, 'endPort'));
    if (port === 0) ctx.fail(join(path, 'endPort'), 'needs a non-zero port');
    if (endPort < port) ctx.fail(join(path, 'endPort'), 'must not be below port');
  }
  return { port, endPort: port === 0 ? 65535 : endPort, name: null, protocols };
}

function parseCiliumPorts(ctx: Ctx, v: unknown, path: string): PortSpec[] {
  const out: PortSpec[] = [];
  list(ctx, v, path).forEach((pr, i) => {
    const p = `${path}[${i}]`;
    const o = obj(ctx, pr, p);
    onlyFields(ctx, o, p, ['ports'], 'only L3/L4 ports are evaluated');
    if (o.ports === undefined || o.ports === null) return;
    const ports = list(ctx, o.ports, join(p, 'ports'));
    if (ports.length > 40) ctx.fail(join(p, 'ports'), 'at most 40 ports per port rule');
    ports.forEach((pp, j) => {
      const q = join(p, `ports[${j}]`);
      const po = obj(ctx, pp, q);
      onlyFields(ctx, po, q, ['port', 'endPort', 'protocol']);
      const proto = po.protocol ?? 'ANY';
      let protocols: readonly Protocol[];
      if (proto === 'ANY' || proto === '') protocols = ALL_PROTOCOLS;
      else if (proto === 'TCP' || proto === 'UDP' || proto === 'SCTP') protocols = [proto];
      else return ctx.fail(join(q, 'protocol'), 'must be TCP, UDP, SCTP or ANY');
      if (po.port === undefined || po.port === null || po.port === '') {
        ctx.fail(join(q, 'port'), 'required');
      }
      out.push(portSpec(ctx, po.port, po.endPort, protocols, q));
    });
  });
  return out;
}

// ---------------------------------------------------------------------------------
// CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy

interface CiliumCtx {
  ctx: Ctx;
  ref: PolicyRef;
  clustered: boolean;
  namespace: string;
  cluster: string;
  defaultLocal: boolean;
}

const L3_FIELDS = {
  ingress: ['fromEndpoints', 'fromEntities', 'fromCIDR', 'fromCIDRSet'],
  egress: ['toEndpoints', 'toEntities', 'toCIDR', 'toCIDRSet'],
} as const;

function defaultPeer(c: CiliumCtx, reqs: Requirement[], subjectHasInit: boolean): Requirement[] {
  // A peer naming a reserved label is taken as written: no namespace, no cluster.
  if (reqs.some((r) => r.source === SOURCE_RESERVED)) return reqs;
  const out = [...reqs];
  if (!hasKey(reqs, K8S_OR_ANY, LABEL_NAMESPACE)) {
    if (!c.clustered) {
      const nsLabels = reqs.some(
        (r) => K8S_OR_ANY.includes(r.source) && r.key.startsWith(NAMESPACE_LABELS_PREFIX),
      );
      if (!nsLabels) out.push(eq(SOURCE_K8S, LABEL_NAMESPACE, c.namespace));
    } else if (!subjectHasInit) {
      // A clusterwide `{}` peer means "any pod", not host/world/reserved identities.
      out.push(exists(SOURCE_K8S, LABEL_NAMESPACE));
    }
  }
  if (c.defaultLocal && !hasKey(reqs, K8S_OR_ANY, LABEL_CLUSTER)) {
    out.push(eq(SOURCE_K8S, LABEL_CLUSTER, c.cluster));
  }
  return out;
}

function parseCiliumSection(
  c: CiliumCtx,
  v: unknown,
  path: string,
  direction: Direction,
  action: 'allow' | 'deny',
  subject: LabelSelectorN,
  subjectHasInit: boolean,
  defaultDeny: boolean,
  out: RuleEntry[],
): void {
  const ctx: Ctx = c.ctx;
  const [fEndpoints, fEntities, fCIDR, fCIDRSet] = L3_FIELDS[direction];
  list(ctx, v, path).forEach((item, i) => {
    const p = `${path}[${i}]`;
    const o = obj(ctx, item, p);
    onlyFields(
      ctx,
      o,
      p,
      [fEndpoints, fEntities, fCIDR, fCIDRSet, 'toPorts'],
      'only L3/L4 endpoint, entity, CIDR and port rules are evaluated',
    );
    const present = [fEndpoints, fEntities, fCIDR, fCIDRSet].filter(
      (f) => o[f] !== undefined && o[f] !== null,
    );
    const nonEmpty = present.filter((f) => Array.isArray(o[f]) && (o[f] as unknown[]).length > 0);
    if (nonEmpty.length > 1) {
      ctx.fail(
        join(p, nonEmpty[1] ?? ''),
        `combining ${nonEmpty[0] ?? ''} and ${nonEmpty[1] ?? ''} is not supported`,
      );
    }
    const ports =
      o.toPorts === undefined || o.toPorts === null
        ? []
        : parseCiliumPorts(ctx, o.toPorts, join(p, 'toPorts'));
    // Port rules listed but none naming a port (`toPorts: [{}]`) allow nothing, unlike an
    // absent or empty toPorts, which leaves the entry L3-only.
    const noPorts =
      Array.isArray(o.toPorts) && (o.toPorts as unknown[]).length > 0 && ports.length === 0;
    let peers: PeerSelector[] | null;
    if (noPorts) {
      peers = null;
    } else if (present.length === 0) {
      // No L3 field: with ports, every peer; without, the rule allows nothing but still
      // turns on default deny.
      peers = ports.length > 0 ? [WILDCARD] : null;
    } else {
      peers = [];
      for (const f of present) {
        const items = list(ctx, o[f], join(p, f));
        items.forEach((x, j) => {
          const q = join(p, `${f}[${j}]`);
          if (f === fEndpoints) {
            const reqs = parseLabelSelector(ctx, x, q, 'cilium');
            peers?.push(labelSelector(defaultPeer(c, reqs, subjectHasInit)));
          } else if (f === fEntities) {
            peers?.push(...entitySelectors(ctx, x, q, c.cluster));
          } else if (f === fCIDR) {
            peers?.push(cidrSelector(ctx, parseCidr(ctx, x, q), [], q));
          } else {
            const co = obj(ctx, x, q);
            onlyFields(ctx, co, q, ['cidr', 'except'], 'CIDR groups are not evaluated');
            const cidr = parseCidr(ctx, co.cidr, join(q, 'cidr'));
            const except =
              co.except === undefined || co.except === null
                ? []
                : list(ctx, co.except, join(q, 'except')).map((e, k) =>
                    parseCidr(ctx, e, join(q, `except[${k}]`)),
                  );
            peers?.push(cidrSelector(ctx, cidr, except, q));
          }
        });
      }
    }
    out.push({ policy: c.ref, path: p, direction, action, subject, peers, ports, defaultDeny });
  });
}

function parseCiliumRule(c: CiliumCtx, v: unknown, path: string, out: RuleEntry[]): void {
  const ctx: Ctx = c.ctx;
  const o = obj(ctx, v, path);
  if (o.nodeSelector !== undefined) {
    ctx.fail(join(path, 'nodeSelector'), 'not supported (host policies need the host firewall)');
  }
  onlyFields(ctx, o, path, [
    'endpointSelector',
    'ingress',
    'egress',
    'ingressDeny',
    'egressDeny',
    'enableDefaultDeny',
    'labels',
    'description',
    'log',
  ]);
  if (o.endpointSelector === undefined || o.endpointSelector === null) {
    ctx.fail(join(path, 'endpointSelector'), 'required');
  }
  let reqs = parseLabelSelector(ctx, o.endpointSelector, join(path, 'endpointSelector'), 'cilium');
  const subjectHasInit = hasKey(reqs, [SOURCE_RESERVED], 'init');
  if (!c.clustered) {
    // The policy's namespace always wins over a `k8s:` namespace the user wrote.
    reqs = reqs.filter((r) => !(r.source === SOURCE_K8S && r.key === LABEL_NAMESPACE));
    reqs.push(eq(SOURCE_K8S, LABEL_NAMESPACE, c.namespace));
  }
  const subject = labelSelector(reqs);
  let ddIngress = true;
  let ddEgress = true;
  if (o.enableDefaultDeny !== undefined && o.enableDefaultDeny !== null) {
    const p = join(path, 'enableDefaultDeny');
    const dd = obj(ctx, o.enableDefaultDeny, p);
    onlyFields(ctx, dd, p, ['ingress', 'egress']);
    for (const d of ['ingress', 'egress'] as const) {
      const val = dd[d];
      if (val === undefined || val === null) continue;
      if (typeof val !== 'boolean') ctx.fail(join(p, d), 'must be a boolean');
      if (d === 'ingress') ddIngress = val;
      else ddEgress = val;
    }
  }
  const sections = [
    ['ingress', 'ingress', 'allow', ddIngress],
    ['ingressDeny', 'ingress', 'deny', ddIngress],
    ['egress', 'egress', 'allow', ddEgress],
    ['egressDeny', 'egress', 'deny', ddEgress],
  ] as const;
  for (const [field, direction, action, dd] of sections) {
    if (o[field] === undefined || o[field] === null) continue;
    parseCiliumSection(
      c,
      o[field],
      join(path, field),
      direction,
      action,
      subject,
      subjectHasInit,
      dd,
      out,
    );
  }
}

// ---------------------------------------------------------------------------------
// NetworkPolicy

function parseK8sPorts(ctx: Ctx, v: unknown, path: string): PortSpec[] {
  return list(ctx, v, path).map((pp, j) => {
    const q = `${path}[${j}]`;
    const po = obj(ctx, pp, q);
    onlyFields(ctx, po, q, ['port', 'endPort', 'protocol']);
    const proto = po.protocol ?? 'TCP';
    if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') {
      ctx.fail(join(q, 'protocol'), 'must be TCP, UDP or SCTP');
    }
    const port = po.port === undefined || po.port === null ? 0 : po.port;
    if (typeof port === 'string' && po.endPort !== undefined && po.endPort !== null) {
      // Kubernetes accepts endPort only with a numeric port.
      ctx.fail(join(q, 'endPort'), 'needs a numeric port');
    }
    return portSpec(ctx, port, po.endPort, [proto], q);
  });
}

interface K8sCtx {
  ctx: Ctx;
  namespace: string;
  cluster: string;
  defaultLocal: boolean;
}

function parseK8sPeer(k: K8sCtx, v: unknown, path: string): PeerSelector {
  const ctx: Ctx = k.ctx;
  const o = obj(ctx, v, path);
  onlyFields(ctx, o, path, ['podSelector', 'namespaceSelector', 'ipBlock']);
  const hasPod = o.podSelector !== undefined && o.podSelector !== null;
  const hasNs = o.namespaceSelector !== undefined && o.namespaceSelector !== null;
  const hasIp = o.ipBlock !== undefined && o.ipBlock !== null;
  if (hasIp) {
    if (hasPod || hasNs) {
      ctx.fail(join(path, 'ipBlock'), 'may not be combined with podSelector or namespaceSelector');
    }
    const p = join(path, 'ipBlock');
    const b = obj(ctx, o.ipBlock, p);
    onlyFields(ctx, b, p, ['cidr', 'except']);
    const cidr = parseCidr(ctx, b.cidr, join(p, 'cidr'));
    const except =
      b.except === undefined || b.except === null
        ? []
        : list(ctx, b.except, join(p, 'except')).map((e, i) =>
            parseCidr(ctx, e, join(p, `except[${i}]`)),
          );
    return cidrSelector(ctx, cidr, except, p);
  }
  if (!hasPod && !hasNs) ctx.fail(path, 'needs podSelector, namespaceSelector or ipBlock');
  const pod = hasPod
    ? parseLabelSelector(ctx, o.podSelector, join(path, 'podSelector'), 'k8s')
    : [];
  const reqs: Requirement[] = [...pod];
  if (hasNs) {
    const ns = parseLabelSelector(ctx, o.namespaceSelector, join(path, 'namespaceSelector'), 'k8s');
    if (ns.length === 0) reqs.push(exists(SOURCE_K8S, LABEL_NAMESPACE));
    for (const r of ns) reqs.push({ ...r, key: `${NAMESPACE_LABELS_PREFIX}${r.key}` });
  } else {
    reqs.push(eq(SOURCE_K8S, LABEL_NAMESPACE, k.namespace));
  }
  if (k.defaultLocal && !pod.some((r) => r.key === LABEL_CLUSTER)) {
    reqs.push(eq(SOURCE_K8S, LABEL_CLUSTER, k.cluster));
  }
  return labelSelector(reqs);
}

function parseNetworkPolicy(
  ctx: Ctx,
  o: Obj,
  ref: PolicyRef,
  cluster: string,
  defaultLocal: boolean,
): RuleEntry[] {
  const spec = obj(ctx, o.spec, 'spec');
  onlyFields(ctx, spec, 'spec', ['podSelector', 'policyTypes', 'ingress', 'egress']);
  if (spec.podSelector === undefined || spec.podSelector === null) {
    ctx.fail('spec.podSelector', 'required');
  }
  const subjectReqs = parseLabelSelector(ctx, spec.podSelector, 'spec.podSelector', 'k8s');
  subjectReqs.push(eq(SOURCE_K8S, LABEL_NAMESPACE, ref.namespace));
  const subject = labelSelector(subjectReqs);
  const ingress =
    spec.ingress === undefined || spec.ingress === null
      ? []
      : list(ctx, spec.ingress, 'spec.ingress');
  const egress =
    spec.egress === undefined || spec.egress === null ? [] : list(ctx, spec.egress, 'spec.egress');
  let types: Direction[];
  if (spec.policyTypes === undefined || spec.policyTypes === null) {
    // The Kubernetes API server's defaulting: Ingress always, Egress when egress rules exist.
    types = egress.length > 0 ? ['ingress', 'egress'] : ['ingress'];
  } else {
    types = list(ctx, spec.policyTypes, 'spec.policyTypes').map((t, i) => {
      if (t === 'Ingress') return 'ingress';
      if (t === 'Egress') return 'egress';
      return ctx.fail(`spec.policyTypes[${i}]`, 'must be Ingress or Egress');
    });
  }
  const k: K8sCtx = { ctx, namespace: ref.namespace, cluster, defaultLocal };
  const out: RuleEntry[] = [];
  const sections = [
    ['ingress', ingress, 'from'],
    ['egress', egress, 'to'],
  ] as const;
  for (const [direction, rules, peerField] of sections) {
    // A direction policyTypes leaves out is not enforced, as in Kubernetes (Cilium still
    // enforces present sections there, an open upstream bug we do not copy).
    if (!types.includes(direction)) continue;
    rules.forEach((r, i) => {
      const p = `spec.${direction}[${i}]`;
      const ro = obj(ctx, r, p);
      onlyFields(ctx, ro, p, [peerField, 'ports']);
      const ports =
        ro.ports === undefined || ro.ports === null
          ? []
          : parseK8sPorts(ctx, ro.ports, join(p, 'ports'));
      const peersRaw =
        ro[peerField] === undefined || ro[peerField] === null
          ? []
          : list(ctx, ro[peerField], join(p, peerField));
      if (peersRaw.length === 0) {
        out.push({
          policy: ref,
          path: p,
          direction,
          action: 'allow',
          subject,
          peers: [WILDCARD],
          ports,
          defaultDeny: true,
        });
        return;
      }
      peersRaw.forEach((peer, j) => {
        const q = join(p, `${peerField}[${j}]`);
        out.push({
          policy: ref,
          path: q,
          direction,
          action: 'allow',
          subject,
          peers: [parseK8sPeer(k, peer, q)],
          ports,
          defaultDeny: true,
        });
      });
    });
    if (rules.length === 0) {
      // Selecting the pods with no rules in this direction isolates them: deny all.
      out.push({
        policy: ref,
        path: `spec.${direction}`,
        direction,
        action: 'allow',
        subject,
        peers: null,
        ports: [],
        defaultDeny: true,
      });
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------

const NAME = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * Parses a CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy into
 * normalized entries. Throws ERR_INVALID_ARGUMENT naming the offending field.
 */
export function parsePolicy(input: unknown, options: ParseOptions = {}): ParsedPolicy {
  const cluster = options.clusterName ?? 'default';
  const defaultLocal = options.policyDefaultLocalCluster ?? true;
  const pre: Ctx = new Ctx('policy');
  const o = obj(pre, input, '(object)');
  const kind = o.kind;
  const apiVersion = o.apiVersion;
  if (kind === 'CiliumNetworkPolicy' || kind === 'CiliumClusterwideNetworkPolicy') {
    if (apiVersion !== 'cilium.io/v2') pre.fail('apiVersion', `must be cilium.io/v2 for ${kind}`);
  } else if (kind === 'NetworkPolicy') {
    if (apiVersion !== 'networking.k8s.io/v1')
      pre.fail('apiVersion', 'must be networking.k8s.io/v1 for NetworkPolicy');
  } else {
    pre.fail(
      'kind',
      'must be CiliumNetworkPolicy, CiliumClusterwideNetworkPolicy or NetworkPolicy',
    );
  }
  const meta = obj(pre, o.metadata, 'metadata');
  const name = str(pre, meta.name, 'metadata.name');
  if (!NAME.test(name)) pre.fail('metadata.name', `invalid name "${name}"`);
  const clustered = kind === 'CiliumClusterwideNetworkPolicy';
  let namespace = '';
  if (!clustered) {
    namespace =
      meta.namespace === undefined || meta.namespace === null || meta.namespace === ''
        ? 'default'
        : str(pre, meta.namespace, 'metadata.namespace');
  }
  const ref: PolicyRef = { kind, namespace, name };
  const ctx: Ctx = new Ctx(clustered ? `${kind} ${name}` : `${kind} ${namespace}/${name}`);
  onlyFields(ctx, o, '', ['apiVersion', 'kind', 'metadata', 'spec', 'specs', 'status']);
  if (kind === 'NetworkPolicy') {
    return { ref, entries: parseNetworkPolicy(ctx, o, ref, cluster, defaultLocal) };
  }
  const c: CiliumCtx = { ctx, ref, clustered, namespace, cluster, defaultLocal };
  const entries: RuleEntry[] = [];
  const hasSpec = o.spec !== undefined && o.spec !== null;
  const hasSpecs = o.specs !== undefined && o.specs !== null;
  if (!hasSpec && !hasSpecs) ctx.fail('spec', 'spec or specs is required');
  if (hasSpec) parseCiliumRule(c, o.spec, 'spec', entries);
  if (hasSpecs) {
    list(ctx, o.specs, 'specs').forEach((r, i) => {
      parseCiliumRule(c, r, `specs[${i}]`, entries);
    });
  }
  return { ref, entries };
}
