/**
 * The policy engine: installed policies, the known identities (local and remote), a
 * selector cache over them, and per-endpoint computed policies that make a
 * per-connection verdict a map lookup plus a few port checks.
 *
 * Per direction, for subject endpoint E and peer P: rules selecting E decide whether
 * the direction is enforced and default-deny; a matching deny wins (POLICY_DENY); else
 * a matching allow admits; else the local host is admitted on ingress (allow-localhost
 * always); else default deny drops (POLICY_DENIED); else (only rules that opted out of
 * default deny) the traffic passes.
 *
 * Choices where Cilium's behaviour is unsettled or buggy (semantics otherwise follow
 * Cilium 1.19):
 * - NetworkPolicy `ipBlock` peers admit only addresses in the block, as Kubernetes
 *   defines; Cilium 1.19's ingress parser also admits same-namespace local pods when
 *   policy-default-local-cluster is on, which we do not copy.
 * - NetworkPolicy `policyTypes`: a direction it leaves out is not enforced even when
 *   rules for it are present (Kubernetes' meaning; Cilium enforces them).
 * - The `cluster-mesh` entity (newer than 1.19) is the `cluster` reserved set plus the
 *   pods of every cluster of the mesh, never world.
 * - Namespace-label keys (`io.cilium.k8s.namespace.labels.*`) in CNP peers are honoured
 *   and suppress namespace defaulting, as the 1.16+ code does (the docs say otherwise).
 * - Named ports resolve against the destination's ports on both ingress and egress.
 * - Defaults are Kubernetes mode: enable-policy=default, allow-localhost=always.
 * - Only this cluster's endpoints are subjects: pods of other clusters are enforced by
 *   their own agents with their own policies, and the host only with a host firewall.
 */
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  LABEL_CLUSTER,
  LABEL_NAMESPACE,
  LabelSet,
  SOURCE_K8S,
  SOURCE_RESERVED,
  parsePrefix,
  worldLabels,
} from './labels.js';
import {
  parsePolicy,
  policyKey,
  type Direction,
  type ParsedPolicy,
  type PeerSelector,
  type PolicyRef,
  type PortSpec,
  type Protocol,
  type RuleEntry,
} from './rules.js';
import { SelectorCache, selectorMatches } from './selector-cache.js';

export interface EngineOptions {
  /** The local cluster's name. Default `default`, Cilium's default cluster name. */
  clusterName?: string;
  /** `--policy-default-local-cluster`; Cilium 1.19's default, true. */
  policyDefaultLocalCluster?: boolean;
  /** `--enable-policy`; default `default` (enforce once a rule selects the endpoint). */
  enablePolicy?: 'default' | 'always' | 'never';
  /** `--allow-localhost`; `always` (Kubernetes mode) admits the local host on ingress. */
  allowLocalhost?: 'always' | 'policy';
}

export interface NamedPort {
  readonly port: number;
  readonly protocol: Protocol;
}
/** Container port name → number and protocol, as a pod declares them. */
export type NamedPorts = Readonly<Record<string, NamedPort>>;

/** A flow end: a known numeric identity, or an address outside the cluster (world). */
export type Peer = { identity: number } | { ip: string };

export interface FlowQuery {
  src: Peer;
  dst: Peer;
  dport: number;
  proto: Protocol;
  /** Only this side; both (egress of src, then ingress of dst) when absent. */
  direction?: Direction;
  /** The destination's named ports (its container ports). */
  dstNamedPorts?: NamedPorts;
}

export type DropReason = 'POLICY_DENIED' | 'POLICY_DENY';

export interface DirectionVerdict {
  readonly enforced: boolean;
  readonly allowed: boolean;
  readonly reason: DropReason | null;
  readonly allowedBy: readonly PolicyRef[];
  readonly deniedBy: readonly PolicyRef[];
}

export interface FlowVerdict {
  verdict: 'ALLOWED' | 'DENIED';
  dropReason: DropReason | null;
  /** The side that dropped the flow. */
  deniedAt: Direction | null;
  egress_allowed_by: PolicyRef[];
  ingress_allowed_by: PolicyRef[];
  egress_denied_by: PolicyRef[];
  ingress_denied_by: PolicyRef[];
}

export interface PolicyChange {
  /** Endpoint identities whose computed policy changed, ascending. */
  changed: number[];
}

const NOT_ENFORCED: DirectionVerdict = {
  enforced: false,
  allowed: true,
  reason: null,
  allowedBy: [],
  deniedBy: [],
};

function portMatches(
  p: PortSpec,
  dport: number,
  proto: Protocol,
  named: NamedPorts | undefined,
): boolean {
  if (p.name !== null) {
    // An unresolvable name, or one whose protocol the rule does not cover, allows nothing.
    const np = named?.[p.name];
    return (
      np !== undefined && np.port === dport && np.protocol === proto && p.protocols.includes(proto)
    );
  }
  return p.protocols.includes(proto) && dport >= p.port && dport <= p.endPort;
}

export function entryPortsMatch(
  e: RuleEntry,
  dport: number,
  proto: Protocol,
  named: NamedPorts | undefined,
): boolean {
  if (e.ports.length === 0) return true;
  for (const p of e.ports) if (portMatches(p, dport, proto, named)) return true;
  return false;
}

function uniqueRefs(entries: readonly RuleEntry[]): PolicyRef[] {
  const seen = new Map<string, PolicyRef>();
  for (const e of entries) seen.set(policyKey(e.policy), e.policy);
  return [...seen.values()].sort((a, b) => policyKey(a).localeCompare(policyKey(b)));
}

export interface DirectionSummary {
  enforced: boolean;
  defaultDeny: boolean;
  entries: {
    policy: PolicyRef;
    path: string;
    action: 'allow' | 'deny';
    peers: number[] | '*';
    cidrs: string[];
    ports: string[];
  }[];
}

/** One direction of an endpoint's computed policy. */
export class DirectionPolicy {
  /** Entries of peers matched through the selector cache, per peer identity. */
  private readonly byPeer = new Map<number, RuleEntry[]>();
  /** Entries with a wildcard peer: they apply to every peer. */
  private readonly anyPeer: RuleEntry[] = [];

  constructor(
    readonly direction: Direction,
    readonly enforced: boolean,
    readonly defaultDeny: boolean,
    /** Every entry whose subject selects the endpoint in this direction. */
    readonly entries: readonly RuleEntry[],
    private readonly peerIds: (sel: PeerSelector) => {
      wildcard: boolean;
      ids: ReadonlySet<number>;
    },
    private readonly allowLocalhost: boolean,
  ) {
    for (const e of entries) {
      if (e.peers === null) continue;
      let wildcard = false;
      for (const s of e.peers) if (peerIds(s).wildcard) wildcard = true;
      if (wildcard) {
        this.anyPeer.push(e);
        continue;
      }
      for (const s of e.peers) {
        for (const id of peerIds(s).ids) {
          const list = this.byPeer.get(id);
          if (list === undefined) this.byPeer.set(id, [e]);
          else if (list[list.length - 1] !== e) list.push(e);
        }
      }
    }
  }

  /**
   * A plain description for views and debugging: per entry, the peer identities it
   * currently covers (`*` = every peer), its CIDR selectors (which also cover addresses
   * outside the identity table) and its port ranges.
   */
  summary(): DirectionSummary {
    return {
      enforced: this.enforced,
      defaultDeny: this.defaultDeny,
      entries: this.entries.map((e) => {
        const sels = e.peers ?? [];
        const wildcard = sels.some((s) => this.peerIds(s).wildcard);
        const ids = new Set<number>();
        if (!wildcard) for (const s of sels) for (const id of this.peerIds(s).ids) ids.add(id);
        return {
          policy: e.policy,
          path: e.path,
          action: e.action,
          peers: wildcard ? '*' : [...ids].sort((a, b) => a - b),
          cidrs: sels.flatMap((s) => (s.kind === 'cidr' ? [describePeer(s)] : [])),
          ports: e.ports.length === 0 ? ['0/ANY'] : e.ports.map(describePort),
        };
      }),
    };
  }

  /** Number of (peer identity, entry) pairs materialized; a size indicator. */
  get size(): number {
    let n = this.anyPeer.length;
    for (const l of this.byPeer.values()) n += l.length;
    return n;
  }

  /**
   * The decision for one connection. `peer` is a known identity (looked up in the
   * precomputed map) or a label set outside the identity table (matched directly).
   */
  lookup(
    peer: number | LabelSet,
    peerLabels: LabelSet | undefined,
    dport: number,
    proto: Protocol,
    named: NamedPorts | undefined,
  ): DirectionVerdict {
    if (!this.enforced) return NOT_ENFORCED;
    let candidates: readonly RuleEntry[];
    if (typeof peer === 'number') {
      const specific = this.byPeer.get(peer);
      candidates =
        specific === undefined
          ? this.anyPeer
          : this.anyPeer.length === 0
            ? specific
            : [...specific, ...this.anyPeer];
    } else {
      candidates = this.entries.filter(
        (e) => e.peers !== null && e.peers.some((s) => selectorMatches(s, peer)),
      );
    }
    let denied: RuleEntry[] | null = null;
    let allowed: RuleEntry[] | null = null;
    for (const e of candidates) {
      if (!entryPortsMatch(e, dport, proto, named)) continue;
      if (e.action === 'deny') (denied ??= []).push(e);
      else (allowed ??= []).push(e);
    }
    if (denied !== null) {
      return {
        enforced: true,
        allowed: false,
        reason: 'POLICY_DENY',
        allowedBy: [],
        deniedBy: uniqueRefs(denied),
      };
    }
    if (allowed !== null) {
      return {
        enforced: true,
        allowed: true,
        reason: null,
        allowedBy: uniqueRefs(allowed),
        deniedBy: [],
      };
    }
    const labels = typeof peer === 'number' ? peerLabels : peer;
    if (
      this.direction === 'ingress' &&
      this.allowLocalhost &&
      labels?.has(SOURCE_RESERVED, 'host') === true
    ) {
      return { enforced: true, allowed: true, reason: null, allowedBy: [], deniedBy: [] };
    }
    if (this.defaultDeny) {
      return {
        enforced: true,
        allowed: false,
        reason: 'POLICY_DENIED',
        allowedBy: [],
        deniedBy: [],
      };
    }
    return { enforced: true, allowed: true, reason: null, allowedBy: [], deniedBy: [] };
  }
}

/** The computed policy of one endpoint identity, both directions. */
export class EndpointPolicy {
  constructor(
    readonly identity: number,
    readonly ingress: DirectionPolicy,
    readonly egress: DirectionPolicy,
    /** The endpoint's own named ports, used for ingress when a lookup names none. */
    readonly namedPorts: NamedPorts | undefined,
  ) {}

  withNamedPorts(named: NamedPorts | undefined): EndpointPolicy {
    return named === this.namedPorts
      ? this
      : new EndpointPolicy(this.identity, this.ingress, this.egress, named);
  }

  /** Ingress decision for a connection from `peer` to this endpoint. */
  allowsIngress(
    peer: number | LabelSet,
    peerLabels: LabelSet | undefined,
    dport: number,
    proto: Protocol,
  ): DirectionVerdict {
    return this.ingress.lookup(peer, peerLabels, dport, proto, this.namedPorts);
  }
}

/** One rule's part in a trace. */
export interface TraceRule {
  policy: PolicyRef;
  path: string;
  action: 'allow' | 'deny';
  peers: string[];
  ports: string[];
  peerMatched: boolean;
  portMatched: boolean;
  result: 'allows' | 'denies' | 'no match';
}

export interface DirectionTrace {
  subject: string[];
  enforced: boolean;
  defaultDeny: boolean;
  rulesSelected: number;
  rulesTotal: number;
  rules: TraceRule[];
  verdict: 'allowed' | 'denied';
  reason: string;
  allowedBy: PolicyRef[];
  deniedBy: PolicyRef[];
}

export interface PolicyTrace {
  verdict: 'ALLOWED' | 'DENIED';
  from: string[];
  to: string[];
  port: string;
  egress: DirectionTrace | null;
  ingress: DirectionTrace | null;
}

interface Installed {
  parsed: ParsedPolicy;
  raw: unknown;
}

interface SelectorUse {
  subjects: number;
  /** Subject selector key → how many entries use this selector as a peer under it. */
  peerOf: Map<string, number>;
}

export function describePeer(s: PeerSelector): string {
  if (s.kind === 'cidr') return s.key.slice(2, -1);
  return s.key.slice(1);
}

export function describePort(p: PortSpec): string {
  const protos = p.protocols.length === 3 ? 'ANY' : p.protocols.join('|');
  if (p.name !== null) return `${p.name}/${protos}`;
  if (p.port === 0) return `0/${protos}`;
  return p.endPort === p.port ? `${p.port}/${protos}` : `${p.port}-${p.endPort}/${protos}`;
}

export class PolicyEngine {
  readonly clusterName: string;
  readonly policyDefaultLocalCluster: boolean;
  private readonly enablePolicy: 'default' | 'always' | 'never';
  private readonly allowLocalhost: boolean;
  private readonly identities = new Map<number, LabelSet>();
  private readonly cache = new SelectorCache(this.identities);
  private readonly uses = new Map<string, SelectorUse>();
  private readonly policies = new Map<string, Installed>();
  private readonly computed = new Map<number, EndpointPolicy>();

  constructor(options: EngineOptions = {}) {
    this.clusterName = options.clusterName ?? 'default';
    this.policyDefaultLocalCluster = options.policyDefaultLocalCluster ?? true;
    this.enablePolicy = options.enablePolicy ?? 'default';
    this.allowLocalhost = (options.allowLocalhost ?? 'always') === 'always';
  }

  // -------------------------------------------------------------------------------
  // Identities

  /** Adds or replaces an identity; returns the endpoints whose computed policy changed. */
  upsertIdentity(id: number, labels: readonly string[]): PolicyChange {
    if (!Number.isInteger(id) || id < 0) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `identity ${id}: not a valid numeric identity`,
      );
    }
    const set = new LabelSet(labels);
    const affected = new Set<number>();
    const old = this.identities.get(id);
    if (old !== undefined) {
      const a = [...old.toStrings()].sort().join('\n');
      const b = [...set.toStrings()].sort().join('\n');
      if (a === b) return { changed: [] };
      this.collect(this.cache.identityRemoved(id), id, affected);
    }
    this.identities.set(id, set);
    this.collect(this.cache.identityAdded(id, set), id, affected);
    return this.finish(affected);
  }

  removeIdentity(id: number): PolicyChange {
    if (!this.identities.has(id)) return { changed: [] };
    const affected = new Set<number>();
    // Collect before forgetting, so subjects it was part of are still known.
    const left = this.cache.identityRemoved(id);
    this.collect(left, id, affected);
    this.identities.delete(id);
    this.computed.delete(id);
    affected.delete(id);
    return this.finish(affected);
  }

  identityLabels(id: number): string[] | undefined {
    return this.identities.get(id)?.toStrings();
  }

  /** The identity's labels as the engine matches them (no copy: do not keep). */
  labelSetOf(id: number): LabelSet | undefined {
    return this.identities.get(id);
  }

  get identityCount(): number {
    return this.identities.size;
  }

  // -------------------------------------------------------------------------------
  // Policies

  /** Parses and installs (or replaces) a policy object. */
  upsertPolicy(obj: unknown): PolicyChange {
    const parsed = parsePolicy(obj, {
      clusterName: this.clusterName,
      policyDefaultLocalCluster: this.policyDefaultLocalCluster,
    });
    const key = policyKey(parsed.ref);
    const affected = new Set<number>();
    const old = this.policies.get(key);
    if (old !== undefined) this.uninstall(old.parsed, affected);
    this.policies.set(key, { parsed, raw: obj });
    for (const e of parsed.entries) {
      const subj = this.cache.acquire(e.subject);
      this.use(e.subject.key).subjects++;
      for (const id of subj.ids) affected.add(id);
      for (const p of e.peers ?? []) {
        this.cache.acquire(p);
        const u = this.use(p.key);
        u.peerOf.set(e.subject.key, (u.peerOf.get(e.subject.key) ?? 0) + 1);
      }
    }
    return this.finish(affected);
  }

  removePolicy(ref: PolicyRef): PolicyChange {
    const key = policyKey(ref);
    const old = this.policies.get(key);
    if (old === undefined) return { changed: [] };
    const affected = new Set<number>();
    this.uninstall(old.parsed, affected);
    this.policies.delete(key);
    return this.finish(affected);
  }

  listPolicies(): PolicyRef[] {
    return [...this.policies.values()].map((p) => p.parsed.ref);
  }

  get selectorCount(): number {
    return this.cache.size;
  }

  private uninstall(parsed: ParsedPolicy, affected: Set<number>): void {
    for (const e of parsed.entries) {
      for (const id of this.cache.get(e.subject.key)?.ids ?? []) affected.add(id);
      for (const p of e.peers ?? []) {
        const u = this.uses.get(p.key);
        if (u !== undefined) {
          const n = (u.peerOf.get(e.subject.key) ?? 0) - 1;
          if (n <= 0) u.peerOf.delete(e.subject.key);
          else u.peerOf.set(e.subject.key, n);
          this.dropUse(p.key, u);
        }
        this.cache.release(p.key);
      }
      const su = this.uses.get(e.subject.key);
      if (su !== undefined) {
        su.subjects--;
        this.dropUse(e.subject.key, su);
      }
      this.cache.release(e.subject.key);
    }
  }

  private use(key: string): SelectorUse {
    let u = this.uses.get(key);
    if (u === undefined) {
      u = { subjects: 0, peerOf: new Map() };
      this.uses.set(key, u);
    }
    return u;
  }

  private dropUse(key: string, u: SelectorUse): void {
    if (u.subjects <= 0 && u.peerOf.size === 0) this.uses.delete(key);
  }

  /** Selectors that gained or lost `id`: it changes as a subject, its peers' subjects change. */
  private collect(selectorKeys: readonly string[], id: number, affected: Set<number>): void {
    for (const key of selectorKeys) {
      const u = this.uses.get(key);
      if (u === undefined) continue;
      if (u.subjects > 0) affected.add(id);
      for (const subjectKey of u.peerOf.keys()) {
        for (const s of this.cache.get(subjectKey)?.ids ?? []) affected.add(s);
      }
    }
  }

  private finish(affected: Set<number>): PolicyChange {
    const changed: number[] = [];
    for (const id of affected) {
      this.computed.delete(id);
      const labels = this.identities.get(id);
      if (labels !== undefined && this.isPolicyEndpoint(labels)) changed.push(id);
    }
    return { changed: changed.sort((a, b) => a - b) };
  }

  // -------------------------------------------------------------------------------
  // Computed policies and verdicts

  /**
   * Whether this cluster's agent enforces policy for the identity: local pods, health
   * and init endpoints. The host (no host firewall), remote nodes, world and pods of
   * other clusters (their own cluster enforces them) are never subjects here.
   */
  isPolicyEndpoint(labels: LabelSet): boolean {
    if (labels.has(SOURCE_RESERVED, 'host')) return false;
    if (labels.has(SOURCE_RESERVED, 'health') || labels.has(SOURCE_RESERVED, 'init')) return true;
    if (!labels.has(SOURCE_K8S, LABEL_NAMESPACE)) return false;
    const cluster = labels.lookup(SOURCE_K8S, LABEL_CLUSTER);
    return cluster === undefined || cluster.value === this.clusterName;
  }

  /** The computed policy of an endpoint identity (cached until something affects it). */
  computeEndpointPolicy(identity: number, namedPorts?: NamedPorts): EndpointPolicy {
    const labels = this.identities.get(identity);
    if (labels === undefined) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, `identity ${identity}: unknown`);
    }
    let ep = this.computed.get(identity);
    if (ep === undefined) {
      ep = this.build(identity, labels);
      this.computed.set(identity, ep);
    }
    return ep.withNamedPorts(namedPorts);
  }

  private build(identity: number, labels: LabelSet): EndpointPolicy {
    const ingress: RuleEntry[] = [];
    const egress: RuleEntry[] = [];
    const subjectOk = this.enablePolicy !== 'never' && this.isPolicyEndpoint(labels);
    if (subjectOk) {
      for (const p of this.policies.values()) {
        for (const e of p.parsed.entries) {
          if (this.cache.get(e.subject.key)?.ids.has(identity) !== true) continue;
          (e.direction === 'ingress' ? ingress : egress).push(e);
        }
      }
    }
    const forced =
      subjectOk && (this.enablePolicy === 'always' || labels.has(SOURCE_RESERVED, 'init'));
    const peerIds = (sel: PeerSelector): { wildcard: boolean; ids: ReadonlySet<number> } => {
      const c = this.cache.get(sel.key);
      return c ?? { wildcard: false, ids: new Set() };
    };
    const dir = (d: Direction, entries: RuleEntry[]): DirectionPolicy =>
      new DirectionPolicy(
        d,
        entries.length > 0 || forced,
        forced || entries.some((e) => e.defaultDeny),
        entries,
        peerIds,
        this.allowLocalhost,
      );
    return new EndpointPolicy(identity, dir('ingress', ingress), dir('egress', egress), undefined);
  }

  private resolvePeer(peer: Peer, side: string): { id: number | null; labels: LabelSet } {
    if ('identity' in peer) {
      const labels = this.identities.get(peer.identity);
      if (labels === undefined) {
        throw new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `${side}: unknown identity ${peer.identity}`,
        );
      }
      return { id: peer.identity, labels };
    }
    const prefix = parsePrefix(peer.ip);
    if (prefix === null || peer.ip.includes('/')) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, `${side}: invalid IP "${peer.ip}"`);
    }
    // An address outside the identity table is world, carrying its host prefix.
    return { id: null, labels: new LabelSet(worldLabels(peer.ip)) };
  }

  private side(
    subject: { id: number | null; labels: LabelSet },
    peer: { id: number | null; labels: LabelSet },
    direction: Direction,
    q: FlowQuery,
  ): DirectionVerdict {
    if (subject.id === null) return NOT_ENFORCED;
    const ep = this.computeEndpointPolicy(subject.id);
    const dp = direction === 'ingress' ? ep.ingress : ep.egress;
    return dp.lookup(peer.id ?? peer.labels, peer.labels, q.dport, q.proto, q.dstNamedPorts);
  }

  /** The verdict for one new connection: egress of the source, then ingress of the destination. */
  verdict(q: FlowQuery): FlowVerdict {
    checkFlow(q);
    const src = this.resolvePeer(q.src, 'src');
    const dst = this.resolvePeer(q.dst, 'dst');
    const out: FlowVerdict = {
      verdict: 'ALLOWED',
      dropReason: null,
      deniedAt: null,
      egress_allowed_by: [],
      ingress_allowed_by: [],
      egress_denied_by: [],
      ingress_denied_by: [],
    };
    if (q.direction !== 'ingress') {
      const e = this.side(src, dst, 'egress', q);
      if (!e.allowed) {
        return {
          ...out,
          verdict: 'DENIED',
          dropReason: e.reason,
          deniedAt: 'egress',
          egress_denied_by: [...e.deniedBy],
        };
      }
      out.egress_allowed_by = [...e.allowedBy];
    }
    if (q.direction !== 'egress') {
      const i = this.side(dst, src, 'ingress', q);
      if (!i.allowed) {
        return {
          ...out,
          verdict: 'DENIED',
          dropReason: i.reason,
          deniedAt: 'ingress',
          ingress_denied_by: [...i.deniedBy],
        };
      }
      out.ingress_allowed_by = [...i.allowedBy];
    }
    return out;
  }

  /**
   * Explains a connection: the rules selecting the source (egress) and destination
   * (ingress), what each one does to this peer and port, and the verdicts. A side that
   * no rule selects is `null`, as nothing is enforced there.
   */
  trace(q: FlowQuery): PolicyTrace {
    checkFlow(q);
    const src = this.resolvePeer(q.src, 'src');
    const dst = this.resolvePeer(q.dst, 'dst');
    const egress = q.direction === 'ingress' ? null : this.traceSide(src, dst, 'egress', q);
    const ingress = q.direction === 'egress' ? null : this.traceSide(dst, src, 'ingress', q);
    const allowed =
      (egress?.verdict ?? 'allowed') === 'allowed' && (ingress?.verdict ?? 'allowed') === 'allowed';
    return {
      verdict: allowed ? 'ALLOWED' : 'DENIED',
      from: src.labels.toStrings(),
      to: dst.labels.toStrings(),
      port: `${q.dport}/${q.proto}`,
      egress,
      ingress,
    };
  }

  private traceSide(
    subject: { id: number | null; labels: LabelSet },
    peer: { id: number | null; labels: LabelSet },
    direction: Direction,
    q: FlowQuery,
  ): DirectionTrace | null {
    if (subject.id === null) return null;
    const ep = this.computeEndpointPolicy(subject.id);
    const dp = direction === 'ingress' ? ep.ingress : ep.egress;
    if (!dp.enforced) return null;
    const v = dp.lookup(peer.id ?? peer.labels, peer.labels, q.dport, q.proto, q.dstNamedPorts);
    let total = 0;
    for (const p of this.policies.values()) {
      for (const e of p.parsed.entries) if (e.direction === direction) total++;
    }
    const rules = dp.entries.map((e): TraceRule => {
      const peerMatched = e.peers !== null && e.peers.some((s) => selectorMatches(s, peer.labels));
      const portMatched = entryPortsMatch(e, q.dport, q.proto, q.dstNamedPorts);
      const hit = peerMatched && portMatched;
      return {
        policy: e.policy,
        path: e.path,
        action: e.action,
        peers: e.peers === null ? [] : e.peers.map(describePeer),
        ports: e.ports.length === 0 ? ['0/ANY'] : e.ports.map(describePort),
        peerMatched,
        portMatched,
        result: !hit ? 'no match' : e.action === 'deny' ? 'denies' : 'allows',
      };
    });
    let reason: string;
    if (v.reason === 'POLICY_DENY') reason = 'a deny rule matched (POLICY_DENY)';
    else if (v.reason === 'POLICY_DENIED') reason = 'no rule allows (POLICY_DENIED)';
    else if (v.allowedBy.length > 0) reason = 'an allow rule matched';
    else if (direction === 'ingress' && peer.labels.has(SOURCE_RESERVED, 'host')) {
      reason = 'the local host is always allowed in';
    } else reason = 'the selecting rules do not enable default deny';
    return {
      subject: subject.labels.toStrings(),
      enforced: dp.enforced,
      defaultDeny: dp.defaultDeny,
      rulesSelected: dp.entries.length,
      rulesTotal: total,
      rules,
      verdict: v.allowed ? 'allowed' : 'denied',
      reason,
      allowedBy: [...v.allowedBy],
      deniedBy: [...v.deniedBy],
    };
  }
}

function checkFlow(q: FlowQuery): void {
  if (!Number.isInteger(q.dport) || q.dport < 0 || q.dport > 65535) {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `dport: must be 0..65535`);
  }
  // Callers may pass unchecked input (CLI, API), whatever the static type says.
  const proto: string = q.proto;
  if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `proto: must be TCP, UDP or SCTP`);
  }
}
