/**
 * The agent's policy metrics, under Cilium's names: `cilium_policy` (policies loaded),
 * `cilium_policy_max_revision`, `cilium_policy_change_total{outcome}`,
 * `cilium_policy_endpoint_enforcement_status{enforcement}` and
 * `cilium_drop_count_total{reason,direction}` (reasons in Cilium's words, so "Policy
 * denied" for POLICY_DENIED). Values are read from their sources before each scrape.
 */
import { Gauge, type Registry } from 'prom-client';

export interface PolicyMetricSources {
  policies(): number;
  revision(): number;
  changes(): { readonly success: number; readonly fail: number };
  /** Per endpoint of this node: whether ingress and egress are enforced. */
  enforcement(): readonly { readonly ingress: boolean; readonly egress: boolean }[];
  drops(): readonly { reason: string; direction: 'egress' | 'ingress'; count: number }[];
}

const DROP_REASON_TEXT: Readonly<Record<string, string>> = {
  POLICY_DENIED: 'Policy denied',
  POLICY_DENY: 'Policy denied by denylist',
};

const ENFORCEMENT_KINDS = ['none', 'ingress', 'egress', 'both'] as const;

/** Registers the metrics; the returned function refreshes them (call before a scrape). */
export function registerPolicyMetrics(registry: Registry, src: PolicyMetricSources): () => void {
  const policy = new Gauge({
    name: 'cilium_policy',
    help: 'Number of policies currently loaded',
    registers: [registry],
  });
  const maxRevision = new Gauge({
    name: 'cilium_policy_max_revision',
    help: 'Highest policy revision number in the agent',
    registers: [registry],
  });
  // A gauge set from the enforcer's own monotonic counts: prom-client counters cannot be set.
  const changes = new Gauge({
    name: 'cilium_policy_change_total',
    help: 'Number of policy changes by outcome',
    labelNames: ['outcome'],
    registers: [registry],
  });
  const enforcement = new Gauge({
    name: 'cilium_policy_endpoint_enforcement_status',
    help: 'Number of endpoints labelled by policy enforcement status',
    labelNames: ['enforcement'],
    registers: [registry],
  });
  const drops = new Gauge({
    name: 'cilium_drop_count_total',
    help: 'Total dropped connections, tagged by drop reason and direction',
    labelNames: ['reason', 'direction'],
    registers: [registry],
  });
  return () => {
    policy.set(src.policies());
    maxRevision.set(src.revision());
    const c = src.changes();
    changes.set({ outcome: 'success' }, c.success);
    changes.set({ outcome: 'fail' }, c.fail);
    const counts = { none: 0, ingress: 0, egress: 0, both: 0 };
    for (const e of src.enforcement()) {
      counts[e.ingress ? (e.egress ? 'both' : 'ingress') : e.egress ? 'egress' : 'none']++;
    }
    for (const k of ENFORCEMENT_KINDS) enforcement.set({ enforcement: k }, counts[k]);
    for (const d of src.drops()) {
      drops.set(
        { reason: DROP_REASON_TEXT[d.reason] ?? d.reason, direction: d.direction.toUpperCase() },
        d.count,
      );
    }
  };
}
