/**
 * Security-identity labels and the requirements selectors place on them. A label is
 * `(source, key, value)`, written `source:key=value`; selectors name a key with a
 * source, or with `any` to accept a label of any source.
 */
import { parseCIDR, parseIP } from '../keyspace/index.js';

export const SOURCE_ANY = 'any';
export const SOURCE_K8S = 'k8s';
export const SOURCE_RESERVED = 'reserved';
export const SOURCE_CIDR = 'cidr';
export const SOURCE_UNSPEC = 'unspec';

/** The sources Cilium defines; a selector naming another source is refused. */
export const KNOWN_SOURCES: ReadonlySet<string> = new Set([
  'unspec',
  'any',
  'k8s',
  'container',
  'cni',
  'reserved',
  'cidr',
  'cidrgroup',
  'node',
  'fqdn',
  'directory',
]);

export const LABEL_NAMESPACE = 'io.kubernetes.pod.namespace';
export const LABEL_CLUSTER = 'io.cilium.k8s.policy.cluster';
export const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';

export interface Label {
  readonly source: string;
  readonly key: string;
  readonly value: string;
}

function splitSource(s: string, defaultSource: string): { source: string; rest: string } {
  // `$host` and `reserved.host` are both shorthands for `reserved:host`.
  if (s.startsWith('$')) return { source: SOURCE_RESERVED, rest: s.slice(1) };
  const colon = s.indexOf(':');
  if (colon < 0) return { source: defaultSource, rest: s };
  const head = s.slice(0, colon);
  if (head.startsWith('reserved.')) return { source: SOURCE_RESERVED, rest: s.slice(9) };
  return { source: head, rest: s.slice(colon + 1) };
}

/** Parses an identity label (`k8s:app=x`, `reserved:host`, `cidr:10.0.0.1/32`). */
export function parseLabel(s: string): Label {
  if (s.startsWith('cidr:')) {
    // IPv6 prefixes hold colons; Cilium writes them with `-`, accept both.
    return { source: SOURCE_CIDR, key: s.slice(5).replaceAll('-', ':'), value: '' };
  }
  const { source, rest } = splitSource(s, SOURCE_UNSPEC);
  const eq = rest.indexOf('=');
  if (eq < 0) return { source, key: rest, value: '' };
  return { source, key: rest.slice(0, eq), value: rest.slice(eq + 1) };
}

export function formatLabel(l: Label): string {
  return l.value === '' ? `${l.source}:${l.key}` : `${l.source}:${l.key}=${l.value}`;
}

/** A parsed IP network (4 or 16 address bytes), for containment tests. */
export interface Prefix {
  readonly ip: Uint8Array;
  readonly prefixLen: number;
  readonly bits: number;
}

function toV4IfMapped(b: Uint8Array): Uint8Array {
  if (b.length !== 16) return b;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return b;
  if (b[10] !== 0xff || b[11] !== 0xff) return b;
  return b.slice(12);
}

/** A CIDR or a bare IP (a host prefix); `null` when neither parses. */
/** The labels an address outside the cluster carries: `reserved:world` and its host prefix. */
export function worldLabels(ip: string): string[] {
  return ['reserved:world', `cidr:${ip}/${ip.includes(':') ? 128 : 32}`];
}

export function parsePrefix(s: string): Prefix | null {
  if (s.includes('/')) {
    const c = parseCIDR(s);
    if (c === null) return null;
    const ip = toV4IfMapped(c.ip);
    const shift = c.ip.length - ip.length;
    return { ip, prefixLen: Math.max(0, c.prefixLen - shift * 8), bits: ip.length * 8 };
  }
  const ip = parseIP(s);
  if (ip === null) return null;
  const v = toV4IfMapped(ip);
  return { ip: v, prefixLen: v.length * 8, bits: v.length * 8 };
}

/** Whether `inner` lies inside `outer` (same family, longer or equal prefix). */
export function prefixContains(outer: Prefix, inner: Prefix): boolean {
  if (outer.bits !== inner.bits || inner.prefixLen < outer.prefixLen) return false;
  let left = outer.prefixLen;
  for (let i = 0; left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if (((outer.ip[i] ?? 0) & mask) !== ((inner.ip[i] ?? 0) & mask)) return false;
  }
  return true;
}

/**
 * An identity's labels indexed by key, so a requirement is one map lookup. `cidr:`
 * labels are kept apart as parsed prefixes: they match by containment, not equality.
 */
export class LabelSet {
  readonly labels: readonly Label[];
  private readonly byKey = new Map<string, Label[]>();
  readonly prefixes: readonly Prefix[];

  constructor(labels: readonly (string | Label)[]) {
    const parsed = labels.map((l) => (typeof l === 'string' ? parseLabel(l) : l));
    this.labels = parsed;
    const prefixes: Prefix[] = [];
    for (const l of parsed) {
      if (l.source === SOURCE_CIDR) {
        const p = parsePrefix(l.key);
        if (p !== null) prefixes.push(p);
        continue;
      }
      const list = this.byKey.get(l.key);
      if (list === undefined) this.byKey.set(l.key, [l]);
      else list.push(l);
    }
    this.prefixes = prefixes;
  }

  /** The first label with this key and source (`any` accepts every source). */
  lookup(source: string, key: string): Label | undefined {
    const list = this.byKey.get(key);
    if (list === undefined) return undefined;
    if (source === SOURCE_ANY) return list[0];
    return list.find((l) => l.source === source);
  }

  has(source: string, key: string, value?: string): boolean {
    const l = this.lookup(source, key);
    return l !== undefined && (value === undefined || l.value === value);
  }

  /** The world labels an address outside the cluster carries. */
  isWorld(): boolean {
    return (
      this.has(SOURCE_RESERVED, 'world') ||
      this.has(SOURCE_RESERVED, 'world-ipv4') ||
      this.has(SOURCE_RESERVED, 'world-ipv6')
    );
  }

  toStrings(): string[] {
    return this.labels.map((l) => (l.source === SOURCE_CIDR ? `cidr:${l.key}` : formatLabel(l)));
  }
}

/** One requirement of a label selector; every requirement of a selector must hold. */
export interface Requirement {
  readonly source: string;
  readonly key: string;
  readonly op: 'In' | 'NotIn' | 'Exists' | 'DoesNotExist';
  readonly values: readonly string[];
}

export function requirementMatches(r: Requirement, labels: LabelSet): boolean {
  const l = labels.lookup(r.source, r.key);
  switch (r.op) {
    case 'Exists':
      return l !== undefined;
    case 'DoesNotExist':
      return l === undefined;
    case 'In':
      return l !== undefined && r.values.includes(l.value);
    case 'NotIn':
      // An absent key satisfies NotIn, as in Kubernetes label selectors.
      return l === undefined || !r.values.includes(l.value);
  }
}

export function formatRequirement(r: Requirement): string {
  const k = `${r.source}:${r.key}`;
  switch (r.op) {
    case 'Exists':
      return k;
    case 'DoesNotExist':
      return `!${k}`;
    case 'In':
      return r.values.length === 1
        ? `${k}=${r.values[0] ?? ''}`
        : `${k} in (${r.values.join(',')})`;
    case 'NotIn':
      return `${k} notin (${r.values.join(',')})`;
  }
}
