/**
 * Network policy benchmark, every figure against a baseline measured in the same run:
 *
 *   verdict     cost per new connection, 1,000 rules over 20,000 identities, looked up in
 *               the computed per-endpoint policy; baseline: `trace`, which walks every
 *               selecting rule without that cache;
 *   apply       a policy applied → enforced by every agent of a 4 × 4 local mesh
 *               (bench/policy-mesh.ts); baseline: a plain watch of the kvstore sees it;
 *   remote      a new identity of cluster2 → allowed by cluster1's existing policy in a
 *               cluster1 agent's datapath; baseline: that identity's propagation to the
 *               same agent (ipcache and identity cache);
 *   throughput  HTTP through a ClusterIP from pods whose node enforces the verdict
 *               workload (bench/policy-throughput.ts), keep-alive and a new connection
 *               per request; baseline: a node with no rule, in alternating rounds (the
 *               ratio is the median of the per-round ratios).
 *
 *   npm run bench -- policy [--only verdict,apply,remote,throughput]
 *     [--rules 1000] [--identities 20000] [--lookups 200000] [--traces 20000]
 *     [--kvstore memory|etcd (memory)] [--clusters 4] [--nodes 4] [--applies 30]
 *     [--remotes 30] [--gap 20 (ms between samples)]
 *     [--seconds 2] [--warmup 0.5] [--rounds 5] [--connections 32] [--backends 3]
 *     [--clients 8] [--no-new-conn]
 */
import { silentLogger } from '../src/lib/logger.js';
import { loadSyntheticWorkload, runPolicyBenchmark } from '../src/policy/bench.js';
import { PolicyEnforcer } from '../src/policy/enforcer.js';
import { runThroughput } from './policy-throughput.js';
import { runMeshBench } from './policy-mesh.js';
import { flag, percentile, report, stringFlag, summarize, type Row } from './lib.js';

const PARTS = ['verdict', 'apply', 'remote', 'throughput'] as const;
type Part = (typeof PARTS)[number];

const GOALS = {
  verdictP99Us: 5,
  applyP99Ms: 100,
  remoteRatio: 1.5,
  throughputRatio: 0.9,
};

function parts(args: readonly string[]): Set<Part> {
  const only = stringFlag(args, 'only');
  if (only === undefined) return new Set(PARTS);
  const out = new Set<Part>();
  for (const w of only.split(',')) {
    const p = PARTS.find((x) => x === w.trim());
    if (p === undefined) throw new Error(`--only: expected some of ${PARTS.join(',')}`);
    out.add(p);
  }
  return out;
}

const round = (n: number, digits = 3): number => Number(n.toFixed(digits));
const median = (xs: readonly number[]): number =>
  percentile(
    [...xs].sort((a, b) => a - b),
    50,
  );

export async function main(args: string[]): Promise<void> {
  const run = parts(args);
  const rules = flag(args, 'rules', 'positive integer', 1000);
  const identities = flag(args, 'identities', 'positive integer', 20000);
  const lookups = flag(args, 'lookups', 'positive integer', 200000);
  const traces = flag(args, 'traces', 'positive integer', 20000);
  const kvstoreFlag = stringFlag(args, 'kvstore') ?? 'memory';
  if (kvstoreFlag !== 'memory' && kvstoreFlag !== 'etcd') {
    throw new Error('--kvstore: expected memory or etcd');
  }
  const clusters = flag(args, 'clusters', 'positive integer', 4);
  const nodes = flag(args, 'nodes', 'positive integer', 4);
  const applies = flag(args, 'applies', 'positive integer', 30);
  const remotes = flag(args, 'remotes', 'positive integer', 30);
  const gapMs = flag(args, 'gap', 'non-negative integer', 20);
  const seconds = flag(args, 'seconds', 'positive', 2);
  const warmup = flag(args, 'warmup', 'positive', 0.5);
  const connections = flag(args, 'connections', 'positive integer', 32);
  const backends = flag(args, 'backends', 'positive integer', 3);
  const clients = flag(args, 'clients', 'positive integer', 8);
  const rounds = flag(args, 'rounds', 'positive integer', 5);
  const newConnections = !args.includes('--no-new-conn');

  const rows: Row[] = [];
  const extra: Record<string, unknown> = { parts: [...run] };
  const goals: Record<string, boolean> = {};
  const us = (ns: number): number => ns / 1000;
  const t0 = performance.now();

  // One node's enforcer holds the workload: the verdict part measures its engine, the
  // throughput part enforces with it.
  const needsWorkload = run.has('verdict') || run.has('throughput');
  const enforcer = needsWorkload
    ? new PolicyEnforcer({ clusterName: 'cluster1', log: silentLogger })
    : undefined;
  if (enforcer !== undefined) {
    extra.rules = rules;
    extra.identities = identities;
  }
  if (run.has('verdict') && enforcer !== undefined) {
    const r = runPolicyBenchmark({
      rules,
      identities,
      lookups,
      traceLookups: traces,
      engine: enforcer.engine,
    });
    rows.push(
      {
        metric: 'verdict p50',
        ours: us(r.lookupP50Ns),
        raw: us(r.traceP50Ns),
        unit: 'µs',
        higherIsBetter: false,
      },
      {
        metric: 'verdict p99',
        ours: us(r.lookupP99Ns),
        raw: us(r.traceP99Ns),
        unit: 'µs',
        higherIsBetter: false,
        goal: `<= ${String(GOALS.verdictP99Us)} µs`,
      },
    );
    goals.verdict = us(r.lookupP99Ns) <= GOALS.verdictP99Us;
    Object.assign(extra, {
      lookups: r.lookups,
      traces: r.traceLookups,
      setupMs: round(r.setupMs, 1),
      computeMs: round(r.computeMs, 1),
      lookupMaxUs: round(us(r.lookupMaxNs)),
    });
  } else if (enforcer !== undefined) {
    const s = performance.now();
    loadSyntheticWorkload(enforcer.engine, { rules, identities });
    extra.setupMs = round(performance.now() - s, 1);
  }

  if (run.has('throughput') && enforcer !== undefined) {
    const r = await runThroughput({
      enforcer,
      empty: new PolicyEnforcer({ clusterName: 'cluster1', log: silentLogger }),
      seconds,
      warmup,
      connections,
      backends,
      clients,
      rounds,
      newConnections,
    });
    // Paired rounds: the ratio is the median of the per-round ratios (load from anything
    // else on the machine moves both sides of a round alike), and the table's ratio column,
    // which divides the two columns, is given that ratio.
    const ka = median(r.keepAliveRoundRatios);
    rows.push(
      {
        metric: 'keep-alive throughput',
        ours: r.none.keepAlive.rps * ka,
        raw: r.none.keepAlive.rps,
        unit: 'req/s',
        higherIsBetter: true,
        goal: `>= ${GOALS.throughputRatio.toFixed(2)}x`,
      },
      {
        metric: 'datapath decision',
        ours: r.decisionUs.rules,
        raw: r.decisionUs.none,
        unit: 'µs/conn',
        higherIsBetter: false,
      },
      {
        metric: 'keep-alive p99',
        ours: r.rules.keepAlive.p99,
        raw: r.none.keepAlive.p99,
        unit: 'ms',
        higherIsBetter: false,
      },
    );
    goals.throughput = ka >= GOALS.throughputRatio;
    const rulesNc = r.rules.newConn;
    const noneNc = r.none.newConn;
    if (rulesNc !== undefined && noneNc !== undefined) {
      rows.push(
        {
          metric: 'new-conn throughput',
          ours: noneNc.rps * median(r.newConnRoundRatios),
          raw: noneNc.rps,
          unit: 'req/s',
          higherIsBetter: true,
        },
        {
          metric: 'new-conn p99',
          ours: rulesNc.p99,
          raw: noneNc.p99,
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          metric: 'new-conn server CPU',
          ours: rulesNc.cpuUs,
          raw: noneNc.cpuUs,
          unit: 'µs/req',
          higherIsBetter: false,
        },
      );
      extra.newConnRatio = round(median(r.newConnRoundRatios));
    }
    Object.assign(extra, {
      keepAliveRatio: round(ka),
      keepAliveRoundRatios: r.keepAliveRoundRatios.map((x) => round(x)),
      newConnRoundRatios: r.newConnRoundRatios.map((x) => round(x)),
      rounds,
      connections,
      seconds,
      clients,
      backends,
      policyDenied: r.policyDenied,
      errors: [r.rules, r.none].reduce(
        (n, s) => n + s.keepAlive.errors + (s.newConn?.errors ?? 0),
        0,
      ),
    });
  }
  enforcer?.close();

  if (run.has('apply') || run.has('remote')) {
    const m = await runMeshBench({
      kvstore: kvstoreFlag,
      clusters,
      nodes,
      applies: run.has('apply') ? applies : 0,
      remotes: run.has('remote') ? remotes : 0,
      gapMs,
    });
    Object.assign(extra, {
      mesh: `${String(clusters)}x${String(nodes)}`,
      kvstore: m.kvstore,
      meshStartMs: Math.round(m.startMs),
      lockWaitMs: Math.round(m.lockWaitMs),
    });
    if (m.apply !== undefined) {
      const e = summarize(m.apply.enforced);
      const w = summarize(m.apply.watched);
      rows.push(
        {
          metric: 'apply→enforced p50',
          ours: e.p50,
          raw: w.p50,
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          metric: 'apply→enforced p99',
          ours: e.p99,
          raw: w.p99,
          unit: 'ms',
          higherIsBetter: false,
          goal: `<= ${String(GOALS.applyP99Ms)} ms`,
        },
      );
      goals.apply = e.p99 <= GOALS.applyP99Ms;
      Object.assign(extra, {
        applies,
        applySamples: m.apply.enforced.length,
        applyMaxMs: round(Math.max(...m.apply.enforced)),
        applyWriteP50Ms: round(summarize(m.apply.written).p50),
        applyWriteP99Ms: round(summarize(m.apply.written).p99),
      });
    }
    if (m.remote !== undefined) {
      const a = summarize(m.remote.propagated);
      const b = summarize(m.remote.allowed);
      const ratio = summarize(m.remote.ratios);
      rows.push(
        {
          metric: 'remote identity→allowed p50',
          ours: b.p50,
          raw: a.p50,
          unit: 'ms',
          higherIsBetter: false,
        },
        {
          metric: 'remote identity→allowed p99',
          ours: b.p99,
          raw: a.p99,
          unit: 'ms',
          higherIsBetter: false,
          goal: `<= ${GOALS.remoteRatio.toFixed(1)}x`,
        },
      );
      goals.remote = b.p99 / a.p99 <= GOALS.remoteRatio;
      Object.assign(extra, {
        remotes,
        remoteObservers: m.remote.observers,
        remoteSamples: m.remote.ratios.length,
        remoteRatioP50: round(ratio.p50),
        remoteRatioP99: round(ratio.p99),
      });
    }
  }
  extra.goalsMet = goals;
  extra.totalS = round((performance.now() - t0) / 1000, 1);
  report('policy', rows, extra, ['measured', 'baseline']);
}
