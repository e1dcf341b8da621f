import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { percentile } from '../../src/health/prober.js';
import { renderReport, report, type Check } from '../../src/troubleshoot/check.js';
import {
  clusterInfoChecks,
  podCidrChecks,
  sameEverywhereChecks,
  type ClusterFacts,
} from '../../src/troubleshoot/config.js';
import { diffKeys } from '../../src/troubleshoot/consistency.js';

function facts(name: string, id: number, mcc = 255, pdlc = true): ClusterFacts {
  return {
    name,
    id,
    maxConnectedClusters: new Map([[`${name}-node1`, mcc]]),
    policyDefaultLocalCluster: new Map([[`${name}-node1`, pdlc]]),
  };
}

describe('troubleshoot: configuration checks', () => {
  it('unique, valid names and IDs pass; a shared ID fails in both clusters', () => {
    assert.deepEqual(
      clusterInfoChecks([facts('c1', 1), facts('c2', 2)]).map((c) => c.status),
      ['ok', 'ok'],
    );
    const dup = clusterInfoChecks([facts('c1', 1), facts('c2', 1)]);
    assert.deepEqual(
      dup.map((c) => [c.status, c.message]),
      [
        ['fail', 'cluster ID 1 is also used by c2'],
        ['fail', 'cluster ID 1 is also used by c1'],
      ],
    );
    const bad = clusterInfoChecks([facts('Bad_Name', 300)]);
    assert.equal(bad[0]?.status, 'fail');
    assert.match(bad[0].message, /^name "Bad_Name": .*; ID 300: ClusterID > 255 is not supported$/);
  });

  it('max-connected-clusters must match everywhere (fail); policy-default-local-cluster too (warn)', () => {
    const mcc = sameEverywhereChecks(
      [facts('c1', 1, 255), facts('c2', 2, 511)],
      'max-connected-clusters',
    );
    assert.deepEqual(
      mcc.map((c) => c.status),
      ['fail', 'fail'],
    );
    assert.equal(
      mcc[0]?.message,
      'differs across the mesh: 255 on c1/c1-node1; 511 on c2/c2-node1',
    );
    const p = sameEverywhereChecks(
      [facts('c1', 1, 255, true), facts('c2', 2, 255, false)],
      'policy-default-local-cluster',
    );
    assert.deepEqual(
      p.map((c) => c.status),
      ['warn', 'warn'],
    );
    assert.deepEqual(
      sameEverywhereChecks([facts('c1', 1), facts('c2', 2)], 'max-connected-clusters').map(
        (c) => c.message,
      ),
      [
        'max-connected-clusters=255 on every agent of the mesh',
        'max-connected-clusters=255 on every agent of the mesh',
      ],
    );
  });

  it('pod CIDRs: disjoint ones pass; an overlap names both nodes, in each cluster involved', () => {
    const ok = podCidrChecks(
      ['c1', 'c2'],
      [
        { cluster: 'c1', node: 'n1', cidr: '10.1.1.0/24' },
        { cluster: 'c2', node: 'n1', cidr: '10.2.1.0/24' },
      ],
    );
    assert.deepEqual(
      ok.map((c) => c.status),
      ['ok', 'ok'],
    );
    const bad = podCidrChecks(
      ['c1', 'c2', 'c3'],
      [
        { cluster: 'c1', node: 'n1', cidr: '10.1.0.0/16' },
        { cluster: 'c2', node: 'n1', cidr: '10.1.7.0/24' },
        { cluster: 'c3', node: 'n1', cidr: '10.3.0.0/16' },
      ],
    );
    assert.deepEqual(
      bad.map((c) => [c.status, c.message]),
      [
        ['fail', '10.1.0.0/16 of c1/n1 overlaps 10.1.7.0/24 of c2/n1'],
        ['fail', '10.1.7.0/24 of c2/n1 overlaps 10.1.0.0/16 of c1/n1'],
        ['ok', "1 node pod CIDRs, none overlapping another node's in the mesh"],
      ],
    );
  });
});

describe('troubleshoot: consistency', () => {
  it('a key is stale only when both agent snapshots hold it, missing only when neither does', () => {
    const d = diffKeys(['a', 'b', 'new'], ['a', 'gone', 'racing-delete'], ['a', 'gone', 'new']);
    // `b`: in the remote, never held → missing. `new`: arrived between the snapshots → fine.
    // `gone`: held twice, not in the remote → stale. `racing-delete`: left between them → fine.
    assert.deepEqual(d, { stale: ['gone'], missing: ['b'] });
    assert.deepEqual(diffKeys([], [], []), { stale: [], missing: [] });
  });
});

describe('troubleshoot: report', () => {
  const checks: Check[] = [
    { id: 'config.cluster-info', cluster: 'c1', status: 'ok', message: 'fine' },
    {
      id: 'connection.tcp',
      cluster: 'c1',
      remote: 'c2',
      status: 'fail',
      message: 'cannot connect',
      hint: 'is it running?',
      log: 'remote cluster connection failed, reconnecting',
    },
    {
      id: 'sync.nodes',
      cluster: 'c1',
      remote: 'c2',
      node: 'n1',
      status: 'warn',
      message: 'slow',
      hint: 'h',
    },
  ];

  it('counts, fails on any ❌, renders hints and log lines under non-green checks only', () => {
    const r = report(checks);
    assert.deepEqual(r.summary, { ok: 1, warn: 1, fail: 1 });
    assert.equal(r.ok, false);
    assert.equal(
      renderReport(r),
      [
        'Cluster c1:',
        '  ✅ config.cluster-info: fine',
        '  Remote cluster c2:',
        '    ❌ connection.tcp: cannot connect',
        '       💡 is it running?',
        '       🔎 agent log: "remote cluster connection failed, reconnecting"',
        '    ⚠️  sync.nodes: [n1] slow',
        '       💡 h',
        '',
        'Summary: 1 ✅  1 ⚠️  1 ❌',
        '',
      ].join('\n'),
    );
    assert.equal(report(checks.slice(0, 1)).ok, true);
  });
});

describe('health: RTT percentiles', () => {
  it('nearest rank over the sorted samples', () => {
    const s = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(s, 50), 50);
    assert.equal(percentile(s, 95), 95);
    assert.equal(percentile(s, 99), 99);
    assert.equal(percentile([3], 99), 3);
    assert.equal(percentile([], 50), 0);
  });
});
