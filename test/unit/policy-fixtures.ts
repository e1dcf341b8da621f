// Shared identities and policy builders for the policy engine tests.
import { PolicyEngine, type Peer } from '../../src/policy/engine.js';

export const LOCAL = 'cluster1';

const NS_LABELS: Record<string, Record<string, string>> = {
  default: { 'kubernetes.io/metadata.name': 'default', env: 'dev' },
  prod: { 'kubernetes.io/metadata.name': 'prod', env: 'prod' },
  production: { 'kubernetes.io/metadata.name': 'production', env: 'prod' },
  other: { 'kubernetes.io/metadata.name': 'other' },
};

const CLUSTER_IDS: Record<string, number> = {
  cluster1: 1,
  cluster2: 2,
  cluster3: 3,
  'cluster-a': 4,
};

function podLabels(cluster: string, ns: string, labels: Record<string, string>): string[] {
  const out = Object.entries(labels).map(([k, v]) => `k8s:${k}=${v}`);
  out.push(`k8s:io.kubernetes.pod.namespace=${ns}`);
  for (const [k, v] of Object.entries(NS_LABELS[ns] ?? {})) {
    out.push(`k8s:io.cilium.k8s.namespace.labels.${k}=${v}`);
  }
  out.push('k8s:io.cilium.k8s.policy.serviceaccount=default');
  out.push(`k8s:io.cilium.k8s.policy.cluster=${cluster}`);
  return out;
}

interface Fixture {
  id: number;
  labels: string[];
}

/** Named identities: `cluster/namespace/app` pods, plus reserved and CIDR identities. */
export const IDENTITIES: Record<string, Fixture> = {};
let next = 300;
function pod(cluster: string, ns: string, app: string, extra: Record<string, string> = {}): void {
  const id = ((CLUSTER_IDS[cluster] ?? 9) << 16) | next++;
  IDENTITIES[`${cluster}/${ns}/${app}`] = { id, labels: podLabels(cluster, ns, { app, ...extra }) };
}
for (const c of ['cluster1', 'cluster2', 'cluster3']) {
  for (const ns of ['default', 'prod']) {
    pod(c, ns, 'frontend', { tier: 'web' });
    pod(c, ns, 'backend', { tier: 'api' });
    pod(c, ns, 'db');
  }
}
pod('cluster1', 'other', 'db');
pod('cluster1', 'production', 'backend');
pod('cluster1', 'production', 'frontend');
pod('cluster2', 'production', 'frontend');
pod('cluster-a', 'production', 'frontend');
IDENTITIES.host = { id: 1, labels: ['reserved:host'] };
IDENTITIES.world = { id: 2, labels: ['reserved:world'] };
IDENTITIES.health = { id: 4, labels: ['reserved:health'] };
IDENTITIES.init = { id: 5, labels: ['reserved:init'] };
IDENTITIES['remote-node'] = { id: 6, labels: ['reserved:remote-node'] };
IDENTITIES['kube-apiserver'] = {
  id: 7,
  labels: ['reserved:kube-apiserver', 'reserved:remote-node'],
};
IDENTITIES.ingress = { id: 8, labels: ['reserved:ingress'] };
IDENTITIES['cidr:10.5.5.5'] = { id: 16777217, labels: ['cidr:10.5.5.5/32', 'reserved:world'] };

/** A name from IDENTITIES, or `ip:<address>` for an address outside the cluster. */
export function peer(name: string): Peer {
  if (name.startsWith('ip:')) return { ip: name.slice(3) };
  const f = IDENTITIES[name];
  if (f === undefined) throw new Error(`no fixture identity ${name}`);
  return { identity: f.id };
}

export function idOf(name: string): number {
  const f = IDENTITIES[name];
  if (f === undefined) throw new Error(`no fixture identity ${name}`);
  return f.id;
}

export function engineWith(
  policies: readonly unknown[],
  policyDefaultLocalCluster: boolean,
): PolicyEngine {
  const e = new PolicyEngine({ clusterName: LOCAL, policyDefaultLocalCluster });
  for (const f of Object.values(IDENTITIES)) e.upsertIdentity(f.id, f.labels);
  for (const p of policies) e.upsertPolicy(p);
  return e;
}

export function cnp(name: string, namespace: string, spec: unknown): unknown {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name, namespace },
    spec,
  };
}

export function ccnp(name: string, spec: unknown): unknown {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumClusterwideNetworkPolicy',
    metadata: { name },
    spec,
  };
}

export function knp(name: string, namespace: string, spec: unknown): unknown {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name, namespace },
    spec,
  };
}
