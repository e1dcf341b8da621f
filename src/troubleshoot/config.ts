/**
 * Static configuration checks across the mesh (pure: the gathering is elsewhere): names
 * and IDs valid and unique, `max-connected-clusters` and `policy-default-local-cluster`
 * the same everywhere, pod CIDRs disjoint.
 */
import {
  clusterIdProblem,
  clusterNameProblem,
  type MaxConnectedClusters,
} from '../keyspace/index.js';
import type { Check } from './check.js';

export interface ClusterFacts {
  readonly name: string;
  /** The ID its agents run with. */
  readonly id: number;
  /** Per agent (node → value). */
  readonly maxConnectedClusters: ReadonlyMap<string, number>;
  readonly policyDefaultLocalCluster: ReadonlyMap<string, boolean>;
}

export interface NodeCidr {
  readonly cluster: string;
  readonly node: string;
  readonly cidr: string;
}

function mcc(v: number): MaxConnectedClusters {
  return v === 511 ? 511 : 255;
}

/** Name and ID valid (within max-connected-clusters), and no other cluster runs with the ID. */
export function clusterInfoChecks(clusters: readonly ClusterFacts[]): Check[] {
  return clusters.map((c): Check => {
    const max = Math.max(0, ...c.maxConnectedClusters.values());
    const nameProblem = clusterNameProblem(c.name);
    const idProblem = clusterIdProblem(c.id, mcc(max || 255));
    const problems: string[] = [];
    if (nameProblem !== null) problems.push(`name ${JSON.stringify(c.name)}: ${nameProblem}`);
    if (idProblem !== null) problems.push(`ID ${c.id}: ${idProblem}`);
    const twins = clusters.filter((o) => o !== c && o.id === c.id).map((o) => o.name);
    if (twins.length > 0) problems.push(`cluster ID ${c.id} is also used by ${twins.join(', ')}`);
    return problems.length === 0
      ? {
          id: 'config.cluster-info',
          cluster: c.name,
          status: 'ok',
          message: `name ${c.name} and ID ${c.id} valid and unique in the mesh`,
        }
      : {
          id: 'config.cluster-info',
          cluster: c.name,
          status: 'fail',
          message: problems.join('; '),
          hint: 'Give every cluster a unique name and a unique ID in 1..max-connected-clusters (--cluster-name, --cluster-id)',
        };
  });
}

/** Every agent of the mesh runs with the same value. */
export function sameEverywhereChecks(
  clusters: readonly ClusterFacts[],
  what: 'max-connected-clusters' | 'policy-default-local-cluster',
): Check[] {
  const valuesOf = (c: ClusterFacts): ReadonlyMap<string, number | boolean> =>
    what === 'max-connected-clusters' ? c.maxConnectedClusters : c.policyDefaultLocalCluster;
  const all = new Map<string, string[]>();
  for (const c of clusters) {
    for (const [node, v] of valuesOf(c)) {
      const k = String(v);
      all.set(k, [...(all.get(k) ?? []), `${c.name}/${node}`]);
    }
  }
  return clusters.map((c): Check => {
    const mine = [...new Set([...valuesOf(c).values()].map(String))];
    if (all.size <= 1) {
      return {
        id: `config.${what}`,
        cluster: c.name,
        status: 'ok',
        message: `${what}=${mine.join(',') || '?'} on every agent of the mesh`,
      };
    }
    const spread = [...all].map(([v, who]) => `${v} on ${who.join(', ')}`).join('; ');
    const hint =
      what === 'max-connected-clusters'
        ? 'max-connected-clusters must be the same on every cluster (it sizes the cluster ID bits of identities); it can only be set on new clusters'
        : 'Set --policy-default-local-cluster the same everywhere: otherwise the same policy selects different clusters depending on where it is applied';
    return {
      id: `config.${what}`,
      cluster: c.name,
      // A policy scope mismatch changes meaning but breaks nothing; an ID-width mismatch breaks identities.
      status: what === 'max-connected-clusters' ? 'fail' : 'warn',
      message: `differs across the mesh: ${spread}`,
      hint,
    };
  });
}

function parseV4(cidr: string): { base: number; size: number } | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\/(\d+)$/.exec(cidr);
  if (m === null) return undefined;
  const ip = [m[1], m[2], m[3], m[4]].reduce((a, o) => a * 256 + Number(o), 0);
  const size = 2 ** (32 - Number(m[5]));
  return { base: ip - (ip % size), size };
}

/** Pod CIDRs of one cluster's nodes must not overlap any other node's, in any cluster. */
export function podCidrChecks(clusters: readonly string[], cidrs: readonly NodeCidr[]): Check[] {
  const parsed = cidrs.flatMap((c) => {
    const net = parseV4(c.cidr);
    return net === undefined ? [] : [{ ...c, net }];
  });
  return clusters.map((cluster): Check => {
    const overlaps: string[] = [];
    for (const a of parsed.filter((p) => p.cluster === cluster)) {
      for (const b of parsed) {
        if (b === a || (b.cluster === a.cluster && b.node === a.node)) continue;
        if (b.cluster === cluster && b.node < a.node) continue;
        const overlap =
          a.net.base < b.net.base + b.net.size && b.net.base < a.net.base + a.net.size;
        if (overlap) {
          overlaps.push(
            `${a.cidr} of ${a.cluster}/${a.node} overlaps ${b.cidr} of ${b.cluster}/${b.node}`,
          );
        }
      }
    }
    const own = parsed.filter((p) => p.cluster === cluster).length;
    return overlaps.length === 0
      ? {
          id: 'config.pod-cidrs',
          cluster,
          status: 'ok',
          message: `${own} node pod CIDRs, none overlapping another node's in the mesh`,
        }
      : {
          id: 'config.pod-cidrs',
          cluster,
          status: 'fail',
          message: overlaps.join('; '),
          hint: 'Pod CIDRs must be unique across the mesh: the ipcache maps each IP to one endpoint (overlapping CIDRs are not supported, as in Cilium)',
          details: { overlaps },
        };
  });
}
