/**
 * Policy verdict cost per new connection: 1,000 rules over 20,000 identities, looked up
 * in the computed per-endpoint policy (what the datapath will consult), against `trace`,
 * which walks and describes every selecting rule without that cache, in the same run.
 * `npm run bench -- policy [--rules N (1000)] [--identities N (20000)]
 * [--lookups N (200000)] [--traces N (20000)]`.
 */
import { runPolicyBenchmark } from '../src/policy/bench.js';
import { flag, report } from './lib.js';

export function main(args: string[]): Promise<void> {
  const rules = flag(args, 'rules', 'positive integer', 1000);
  const identities = flag(args, 'identities', 'positive integer', 20000);
  const lookups = flag(args, 'lookups', 'positive integer', 200000);
  const traces = flag(args, 'traces', 'positive integer', 20000);
  const r = runPolicyBenchmark({ rules, identities, lookups, traceLookups: traces });
  const us = (ns: number): number => ns / 1000;
  report(
    'policy',
    [
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
        goal: '<= 5 µs',
      },
    ],
    {
      rules: r.rules,
      identities: r.identities,
      lookups: r.lookups,
      traces: r.traceLookups,
      setupMs: Number(r.setupMs.toFixed(1)),
      computeMs: Number(r.computeMs.toFixed(1)),
      lookupMaxUs: Number(us(r.lookupMaxNs).toFixed(3)),
    },
    ['computed policy', 'trace (uncached)'],
  );
  return Promise.resolve();
}
