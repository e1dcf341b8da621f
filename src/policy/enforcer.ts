/**
 * One node's policy enforcement state: a PolicyEngine fed with every identity the agent
 * knows (local and remote, plus the reserved ones) and with its cluster's policies, and
 * the per-connection decisions the datapath asks for. Decisions come from the engine's
 * computed per-endpoint policies, so a new connection costs a map lookup and a few port
 * checks; anything that changes a policy, an identity or a label only invalidates the
 * endpoints it affects.
 */
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import {
  PolicyEngine,
  type DirectionVerdict,
  type NamedPorts,
  type PolicyChange,
} from './engine.js';
import { LabelSet, worldLabels } from './labels.js';
import { policyKey, type Direction, type PolicyRef, type Protocol } from './rules.js';

/** Reserved identities (Cilium's numbering) and their labels. */
export const ReservedIdentity = {
  Host: 1,
  World: 2,
  Unmanaged: 3,
  Health: 4,
  Init: 5,
  RemoteNode: 6,
  KubeApiserver: 7,
} as const;

const RESERVED_LABELS: readonly (readonly [number, readonly string[]])[] = [
  [ReservedIdentity.Host, ['reserved:host']],
  [ReservedIdentity.World, ['reserved:world']],
  [ReservedIdentity.Unmanaged, ['reserved:unmanaged']],
  [ReservedIdentity.Health, ['reserved:health']],
  [ReservedIdentity.Init, ['reserved:init']],
  [ReservedIdentity.RemoteNode, ['reserved:remote-node']],
  [ReservedIdentity.KubeApiserver, ['reserved:kube-apiserver', 'reserved:remote-node']],
];

export function reservedLabels(id: number): readonly string[] | undefined {
  return RESERVED_LABELS.find(([n]) => n === id)?.[1];
}

/**
 * A connection's peer as the datapath classifies its address: a known identity, or an
 * address outside the cluster (world, carrying its host prefix for CIDR rules).
 */
export type PeerIdentity =
  | { readonly kind: 'identity'; readonly id: number }
  | { readonly kind: 'world'; readonly ip: string };

export interface PolicyDecision extends DirectionVerdict {
  readonly direction: Direction;
}

const ALLOW_UNENFORCED = (direction: Direction): PolicyDecision => ({
  direction,
  enforced: false,
  allowed: true,
  reason: null,
  allowedBy: [],
  deniedBy: [],
});

export interface PolicyEnforcerOptions {
  readonly clusterName: string;
  /** `--policy-default-local-cluster` (Cilium 1.19's default: true). */
  readonly policyDefaultLocalCluster?: boolean | undefined;
  readonly log: Logger;
}

export interface IdentitySource {
  list(): readonly { readonly id: number; readonly labels: readonly string[] }[];
  onChange(
    listener: (
      event: 'upsert' | 'delete',
      identity: { readonly id: number; readonly labels: readonly string[] },
    ) => void,
  ): () => void;
}

export type EnforcerListener = (change: PolicyChange & { readonly revision: number }) => void;

export class PolicyEnforcer {
  readonly engine: PolicyEngine;
  private readonly log: Logger;
  private rev = 1;
  private readonly listeners = new Set<EnforcerListener>();
  private unsubscribe: (() => void) | undefined;
  /** Policy objects the engine refused (key → reason), for status and the counter. */
  private readonly rejected = new Map<string, string>();
  private rejectedTotal = 0;
  private importedTotal = 0;

  constructor(opts: PolicyEnforcerOptions) {
    this.engine = new PolicyEngine({
      clusterName: opts.clusterName,
      policyDefaultLocalCluster: opts.policyDefaultLocalCluster ?? true,
    });
    this.log = opts.log.child({ subsys: 'policy' });
    for (const [id, labels] of RESERVED_LABELS) this.engine.upsertIdentity(id, labels);
  }

  /** Follows an identity cache: every identity it holds now and every later change. */
  follow(identities: IdentitySource): void {
    this.unsubscribe?.();
    for (const i of identities.list()) this.applyIdentity('upsert', i.id, i.labels);
    this.unsubscribe = identities.onChange((event, i) => {
      this.applyIdentity(event, i.id, i.labels);
    });
  }

  close(): void {
    this.unsubscribe?.();
    this.unsubscribe = undefined;
  }

  /** Increases with every change that may alter a verdict (policies, identities). */
  get revision(): number {
    return this.rev;
  }

  get rejectedPolicies(): number {
    return this.rejectedTotal;
  }

  /** Policy changes (imports and deletions) since start, by outcome. */
  get changeCounts(): { readonly success: number; readonly fail: number } {
    return { success: this.importedTotal, fail: this.rejectedTotal };
  }

  onChange(listener: EnforcerListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Installs or replaces a policy; an invalid one is logged, counted and not installed. */
  upsertPolicy(obj: unknown, ref: PolicyRef): boolean {
    const key = policyKey(ref);
    let change: PolicyChange;
    try {
      change = this.engine.upsertPolicy(obj);
    } catch (err) {
      this.rejectedTotal++;
      this.rejected.set(key, errorMessage(err));
      // The previous version keeps no rules either: half of an edit is never enforced.
      this.removePolicy(ref);
      this.log.warn(
        { policy: key, err: errorMessage(err) },
        'Policy rejected: not enforced until it is fixed',
      );
      return false;
    }
    this.rejected.delete(key);
    this.importedTotal++;
    this.log.info(
      { policy: key, affectedEndpoints: change.changed.length },
      'Policy imported, recalculating endpoint policies',
    );
    this.bump(change);
    return true;
  }

  removePolicy(ref: PolicyRef): void {
    const change = this.engine.removePolicy(ref);
    this.rejected.delete(policyKey(ref));
    this.importedTotal++;
    this.log.info({ policy: policyKey(ref) }, 'Policy deleted');
    this.bump(change);
  }

  /**
   * Egress of local endpoint `src` (an identity this agent enforces) toward `peer`;
   * `named`: the destination's named ports, when it has any.
   */
  egress(
    src: number,
    peer: PeerIdentity,
    dport: number,
    proto: Protocol,
    named?: NamedPorts,
  ): PolicyDecision {
    return this.decide('egress', src, peer, dport, proto, named);
  }

  /** Ingress of local endpoint `dst` (named ports: its own) from `peer`. */
  ingress(
    dst: number,
    peer: PeerIdentity,
    dport: number,
    proto: Protocol,
    named?: NamedPorts,
  ): PolicyDecision {
    return this.decide('ingress', dst, peer, dport, proto, named);
  }

  private decide(
    direction: Direction,
    subject: number,
    peer: PeerIdentity,
    dport: number,
    proto: Protocol,
    named: NamedPorts | undefined,
  ): PolicyDecision {
    if (this.engine.labelSetOf(subject) === undefined) {
      // An endpoint whose identity the agent has not learnt yet is still initialising:
      // Cilium gives it reserved:init, which is enforced with default deny.
      subject = ReservedIdentity.Init;
    }
    const ep = this.engine.computeEndpointPolicy(subject);
    const dp = direction === 'ingress' ? ep.ingress : ep.egress;
    if (!dp.enforced) return ALLOW_UNENFORCED(direction);
    const v =
      peer.kind === 'identity'
        ? dp.lookup(peer.id, this.engine.labelSetOf(peer.id), dport, proto, named)
        : dp.lookup(new LabelSet(worldLabels(peer.ip)), undefined, dport, proto, named);
    return { direction, ...v };
  }

  private applyIdentity(event: 'upsert' | 'delete', id: number, labels: readonly string[]): void {
    // Reserved identities are this agent's own; nothing from a kvstore replaces them.
    if (reservedLabels(id) !== undefined) return;
    try {
      const change =
        event === 'delete'
          ? this.engine.removeIdentity(id)
          : this.engine.upsertIdentity(id, labels);
      this.bump(change);
    } catch (err) {
      this.log.warn({ identity: id, err: errorMessage(err) }, 'identity ignored by policy');
    }
  }

  private bump(change: PolicyChange): void {
    this.rev++;
    const ev = { ...change, revision: this.rev };
    for (const l of this.listeners) l(ev);
  }
}
