/**
 * A synthetic workload for the policy engine: N namespaced rules over M identities
 * spread across three clusters, then timed per-connection lookups on precomputed
 * endpoint policies. Used by `bench/` and, scaled down, by a unit test.
 */
import { performance } from 'node:perf_hooks';
import { PolicyEngine } from './engine.js';
import type { Protocol } from './rules.js';

export interface PolicyBenchOptions {
  rules?: number;
  identities?: number;
  lookups?: number;
  policyDefaultLocalCluster?: boolean;
  /**
   * Connections also explained with `trace` (the uncached path: every selecting rule is
   * walked and described), as a baseline in the same run. Default 0: none.
   */
  traceLookups?: number;
  /**
   * The engine to load and measure (a node's enforcer engine, reused afterwards by the
   * datapath benchmark); default: a new one.
   */
  engine?: PolicyEngine | undefined;
}

export interface PolicyBenchResult {
  rules: number;
  identities: number;
  lookups: number;
  /** Installing every identity and policy. */
  setupMs: number;
  /** Computing the endpoint policies the lookups use. */
  computeMs: number;
  lookupP50Ns: number;
  lookupP99Ns: number;
  lookupMaxNs: number;
  /** `trace` per connection; 0 when `traceLookups` is 0. */
  traceLookups: number;
  traceP50Ns: number;
  traceP99Ns: number;
}

const CLUSTERS = ['cluster1', 'cluster2', 'cluster3'];
const NAMESPACES = 20;
const APPS = 200;

/** Deterministic pseudo-random numbers, so runs compare. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 0x100000000;
  };
}

function podLabels(i: number): string[] {
  return [
    `k8s:app=app${i % APPS}`,
    `k8s:tier=t${i % 7}`,
    `k8s:io.kubernetes.pod.namespace=ns${i % NAMESPACES}`,
    `k8s:io.cilium.k8s.policy.serviceaccount=sa${i % 13}`,
    `k8s:io.cilium.k8s.policy.cluster=${CLUSTERS[i % CLUSTERS.length] ?? 'cluster1'}`,
  ];
}

export interface SyntheticWorkload {
  /** Every identity installed, in order (cluster1's are every third one, from the first). */
  readonly ids: readonly number[];
}

/**
 * Installs `identities` pod identities over three clusters and `rules` namespaced
 * policies into `engine` (reserved identities are the caller's). `rand` drives the rule
 * shapes; the same seed gives the same workload.
 */
export function loadSyntheticWorkload(
  engine: PolicyEngine,
  options: { readonly rules: number; readonly identities: number },
  rand: () => number = rng(42),
): SyntheticWorkload {
  const ids: number[] = [];
  for (let i = 0; i < options.identities; i++) {
    const cluster = (i % CLUSTERS.length) + 1;
    const id = (cluster << 16) | (256 + i);
    ids.push(id);
    engine.upsertIdentity(id, podLabels(i));
  }
  for (let r = 0; r < options.rules; r++) {
    const app = Math.floor(rand() * APPS);
    const peerApp = Math.floor(rand() * APPS);
    const port = 1000 + Math.floor(rand() * 50);
    const ingress =
      r % 5 === 0
        ? [{ fromEndpoints: [{ matchLabels: { app: `app${peerApp}` } }] }]
        : r % 5 === 1
          ? [{ fromCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }] }]
          : [
              {
                fromEndpoints: [
                  {
                    matchLabels: { app: `app${peerApp}` },
                    matchExpressions: [
                      { key: 'io.cilium.k8s.policy.cluster', operator: 'Exists' as const },
                    ],
                  },
                ],
                toPorts: [{ ports: [{ port: String(port), endPort: port + 10, protocol: 'TCP' }] }],
              },
            ];
    engine.upsertPolicy({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: `p${r}`, namespace: `ns${app % NAMESPACES}` },
      spec: {
        endpointSelector: { matchLabels: { app: `app${app}` } },
        ingress,
        egressDeny: r % 10 === 0 ? [{ toEntities: ['world'] }] : undefined,
      },
    });
  }
  return { ids };
}

export function runPolicyBenchmark(options: PolicyBenchOptions = {}): PolicyBenchResult {
  const rules = options.rules ?? 1000;
  const identities = options.identities ?? 20000;
  const lookups = options.lookups ?? 100000;
  const rand = rng(42);
  const t0 = performance.now();
  const engine =
    options.engine ??
    new PolicyEngine({
      clusterName: 'cluster1',
      policyDefaultLocalCluster: options.policyDefaultLocalCluster ?? true,
    });
  for (const [id, l] of [
    [1, 'reserved:host'],
    [2, 'reserved:world'],
    [6, 'reserved:remote-node'],
  ] as const) {
    engine.upsertIdentity(id, [l]);
  }
  const { ids } = loadSyntheticWorkload(engine, { rules, identities }, rand);
  const t1 = performance.now();
  // Subjects: local pods (cluster1 identities are every third one).
  const subjects = ids.filter((_, i) => i % CLUSTERS.length === 0).slice(0, 500);
  const policies = subjects.map((id) => engine.computeEndpointPolicy(id));
  const t2 = performance.now();
  const samples = new Float64Array(lookups);
  const protos: Protocol[] = ['TCP', 'UDP'];
  let allowed = 0;
  for (let n = 0; n < lookups; n++) {
    const ep = policies[Math.floor(rand() * policies.length)];
    const peer = ids[Math.floor(rand() * ids.length)] ?? 2;
    const port = 1000 + Math.floor(rand() * 60);
    const proto = protos[n & 1] ?? 'TCP';
    if (ep === undefined) continue;
    const start = process.hrtime.bigint();
    const v = ep.ingress.lookup(peer, undefined, port, proto, undefined);
    samples[n] = Number(process.hrtime.bigint() - start);
    if (v.allowed) allowed++;
  }
  samples.sort();
  const at = (q: number): number =>
    samples[Math.min(samples.length - 1, Math.floor(q * samples.length))] ?? 0;
  const traceLookups = options.traceLookups ?? 0;
  const traced = new Float64Array(traceLookups);
  for (let n = 0; n < traceLookups; n++) {
    const subject = subjects[Math.floor(rand() * subjects.length)] ?? 0;
    const peer = ids[Math.floor(rand() * ids.length)] ?? 2;
    const start = process.hrtime.bigint();
    const t = engine.trace({
      src: { identity: peer },
      dst: { identity: subject },
      dport: 1000 + Math.floor(rand() * 60),
      proto: protos[n & 1] ?? 'TCP',
      direction: 'ingress',
    });
    traced[n] = Number(process.hrtime.bigint() - start);
    if (t.verdict === 'ALLOWED') allowed++;
  }
  traced.sort();
  const tat = (q: number): number =>
    traced[Math.min(traced.length - 1, Math.floor(q * traced.length))] ?? 0;
  // Keep the result alive so the loop cannot be optimized away.
  if (allowed < 0) throw new Error('unreachable');
  return {
    rules,
    identities,
    lookups,
    setupMs: t1 - t0,
    computeMs: t2 - t1,
    lookupP50Ns: at(0.5),
    lookupP99Ns: at(0.99),
    lookupMaxNs: at(1),
    traceLookups,
    traceP50Ns: tat(0.5),
    traceP99Ns: tat(0.99),
  };
}
