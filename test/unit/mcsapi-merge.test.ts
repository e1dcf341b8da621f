/**
 * The merge of every cluster's export into one ServiceImport, and the conflict matrix
 * (ports, type, sessionAffinity and its config, labels/annotations, IP families). Tests
 * named after an mcs-api conformance case check what that case checks, on the merge.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { MCSAPIServiceSpec } from '../../src/keyspace/index.js';
import { mergeExports as mergeOrNone, type MergedImport } from '../../src/mcsapi/merge.js';
import { derivedServiceName, setConditions } from '../../src/mcsapi/types.js';

const T0 = '2026-12-01T10:00:00Z';
const T1 = '2026-12-01T10:00:02Z';

function spec(cluster: string, over: Partial<MCSAPIServiceSpec> = {}): MCSAPIServiceSpec {
  return {
    cluster,
    name: 'hello',
    namespace: 'default',
    exportCreationTimestamp: T0,
    ports: [
      { name: 'tcp', protocol: 'TCP', port: 42 },
      { name: 'udp', protocol: 'UDP', port: 42 },
    ],
    type: 'ClusterSetIP',
    sessionAffinity: 'None',
    ipFamilies: ['IPv4'],
    internalTrafficPolicy: 'Cluster',
    ...over,
  };
}

function mergeExports(specs: readonly MCSAPIServiceSpec[]): MergedImport {
  const m = mergeOrNone(specs);
  assert.ok(m, 'an import');
  return m;
}

function sortedPorts(ports: readonly { name?: string; protocol?: string; port: number }[]) {
  return [...ports]
    .map((p) => `${p.name ?? ''} ${p.port}/${p.protocol ?? 'TCP'}`)
    .sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
}

describe('MCS-API merge and conflict resolution', () => {
  it('nothing exported → no import', () => {
    assert.equal(mergeOrNone([]), undefined);
  });

  it('The ports for a ClusterSetIP ServiceImport should match those of the exported service', () => {
    const m = mergeExports([spec('cluster1')]);
    assert.deepEqual(sortedPorts(m.ports), ['tcp 42/TCP', 'udp 42/UDP']);
    assert.deepEqual(m.conflicts, []);
    assert.deepEqual(m.clusters, ['cluster1']);
    assert.equal(m.type, 'ClusterSetIP');
  });

  it("The SessionAffinity for a ClusterSetIP ServiceImport should match the exported service's SessionAffinity", () => {
    const m = mergeExports([
      spec('cluster1', {
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } },
      }),
    ]);
    assert.equal(m.sessionAffinity, 'ClientIP');
    assert.deepEqual(m.sessionAffinityConfig, { clientIP: { timeoutSeconds: 10 } });
  });

  it('A ClusterIP service exported on two clusters should expose the union of the constituent service ports and raise a conflict', () => {
    const m = mergeExports([
      spec('cluster1'),
      spec('cluster2', {
        exportCreationTimestamp: T1,
        ports: [
          { name: 'tcp', protocol: 'TCP', port: 42 },
          { name: 'stcp', protocol: 'SCTP', port: 142 },
        ],
      }),
    ]);
    assert.deepEqual(sortedPorts(m.ports), ['stcp 142/SCTP', 'tcp 42/TCP', 'udp 42/UDP']);
    assert.deepEqual(
      m.conflicts.map((c) => c.reason),
      ['PortConflict'],
    );
    assert.equal(
      m.conflicts.at(0)?.message,
      'Ports from cluster cluster1 does not match ports of oldest service export in cluster cluster1. ' +
        'Ports from cluster cluster2 does not match ports of oldest service export in cluster cluster1.',
    );
  });

  it('A ClusterIP service exported on two clusters with conflicting ports should apply the conflict resolution policy and report a Conflict condition on each ServiceExport', () => {
    const m = mergeExports([
      spec('cluster2', {
        exportCreationTimestamp: T1,
        ports: [{ name: 'tcp', protocol: 'TCP', port: 43 }],
      }),
      spec('cluster1'),
    ]);
    // cluster2's tcp/43 reuses an older port's name: dropped; cluster1's ports stay.
    assert.deepEqual(sortedPorts(m.ports), ['tcp 42/TCP', 'udp 42/UDP']);
    assert.equal(m.conflicts.at(0)?.reason, 'PortConflict');
    assert.match(
      m.conflicts.at(0)?.message ?? '',
      /^Duplicated port name "tcp" in cluster "cluster2": using 42\/TCP from cluster "cluster1"\. /,
    );
  });

  it('the same (port, protocol) under another name or appProtocol keeps the oldest definition', () => {
    const renamed = mergeExports([
      spec('cluster1', { ports: [{ name: 'http', protocol: 'TCP', port: 80 }] }),
      spec('cluster2', {
        exportCreationTimestamp: T1,
        ports: [{ name: 'web', protocol: 'TCP', port: 80 }],
      }),
    ]);
    assert.deepEqual(renamed.ports, [{ name: 'http', protocol: 'TCP', port: 80 }]);
    assert.match(renamed.conflicts.at(0)?.message ?? '', /^Conflicting port name for 80\/TCP/);
    const app = mergeExports([
      spec('cluster1', { ports: [{ name: 'http', protocol: 'TCP', port: 80 }] }),
      spec('cluster2', {
        exportCreationTimestamp: T1,
        ports: [{ name: 'http', protocol: 'TCP', port: 80, appProtocol: 'h2c' }],
      }),
    ]);
    assert.deepEqual(app.ports, [{ name: 'http', protocol: 'TCP', port: 80 }]);
    assert.match(app.conflicts.at(0)?.message ?? '', /^Conflicting appProtocol for 80\/TCP/);
  });

  it('A service exported on two clusters with conflicting headlessness should apply the conflict resolution policy and report a Conflict condition on the ServiceExport', () => {
    const m = mergeExports([
      spec('cluster1'),
      spec('cluster2', { exportCreationTimestamp: T1, type: 'Headless' }),
    ]);
    assert.equal(m.type, 'ClusterSetIP');
    assert.deepEqual(m.conflicts, [
      {
        reason: 'TypeConflict',
        message:
          'Conflicting type. 1/2 clusters disagree. Using "ClusterSetIP" from oldest service export in cluster "cluster1".',
      },
    ]);
  });

  it('sessionAffinity and its config: the oldest wins, each its own reason, combined with commas by the operator', () => {
    const m = mergeExports([
      spec('cluster3', { exportCreationTimestamp: T1 }),
      spec('cluster1', {
        sessionAffinity: 'ClientIP',
        sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } },
      }),
      spec('cluster2', { exportCreationTimestamp: T1 }),
    ]);
    assert.equal(m.sessionAffinity, 'ClientIP');
    assert.deepEqual(m.conflicts, [
      {
        reason: 'SessionAffinityConflict',
        message:
          'Conflicting sessionAffinity. 2/3 clusters disagree. Using "ClientIP" from oldest service export in cluster "cluster1".',
      },
      {
        reason: 'SessionAffinityConfigConflict',
        message:
          'Conflicting sessionAffinityConfig. 2/3 clusters disagree. Using "10" from oldest service export in cluster "cluster1".',
      },
    ]);
  });

  it('A service exported on two clusters with conflicting annotations and labels should apply the conflict resolution policy and report a Conflict condition on each ServiceExport', () => {
    const m = mergeExports([
      spec('cluster1', {
        annotations: { 'dummy-annotation': 'true' },
        labels: { 'dummy-label': 'true' },
      }),
      spec('cluster2', {
        exportCreationTimestamp: T1,
        annotations: { 'dummy-annotation2': 'true' },
        labels: { 'dummy-label2': 'true' },
      }),
    ]);
    assert.deepEqual(m.annotations, { 'dummy-annotation': 'true' });
    assert.deepEqual(m.labels, { 'dummy-label': 'true' });
    assert.deepEqual(
      m.conflicts.map((c) => c.reason),
      ['AnnotationsConflict', 'LabelsConflict'],
    );
  });

  it('equal timestamps (second precision) are ordered by cluster name', () => {
    const m = mergeExports([
      spec('cluster2', { type: 'Headless' }),
      spec('cluster1', { type: 'ClusterSetIP' }),
    ]);
    assert.equal(m.oldest, 'cluster1');
    assert.equal(m.type, 'ClusterSetIP');
  });

  it('IP families: the intersection; a cluster sharing none is skipped and reported', () => {
    const m = mergeExports([
      spec('cluster1', { ipFamilies: ['IPv4', 'IPv6'] }),
      spec('cluster2', { exportCreationTimestamp: T1, ipFamilies: ['IPv4'] }),
      spec('cluster3', { exportCreationTimestamp: T1, ipFamilies: ['IPv6'] }),
      spec('cluster4', { exportCreationTimestamp: T1, ipFamilies: [] }),
    ]);
    assert.deepEqual(m.ipFamilies, ['IPv4']);
    assert.equal(m.conflicts.at(0)?.reason, 'IPFamilyConflict');
    assert.match(
      m.conflicts.at(0)?.message ?? '',
      /Cluster 'cluster3' has no IPFamilies in common\./,
    );
  });

  it('internalTrafficPolicy and trafficDistribution follow the oldest export', () => {
    const m = mergeExports([
      spec('cluster1', { trafficDistribution: 'PreferClose' }),
      spec('cluster2', { exportCreationTimestamp: T1, internalTrafficPolicy: 'Local' }),
    ]);
    assert.equal(m.internalTrafficPolicy, 'Cluster');
    assert.equal(m.trafficDistribution, 'PreferClose');
    assert.deepEqual(
      m.conflicts.map((c) => c.reason),
      ['InternalTrafficPolicyConflict', 'TrafficDistributionConflict'],
    );
  });

  it('derived Service names match the mcs-api reference controllers', () => {
    assert.equal(derivedServiceName('default', 'hello'), 'derived-k5cuvo1ge4');
    assert.equal(derivedServiceName('my-ns', 'my-svc'), 'derived-a2v4k9sqn6');
  });

  it('conditions keep their transition time while their status holds', () => {
    const first = setConditions(
      undefined,
      [{ type: 'Conflict', status: 'False', reason: 'NoConflicts', message: 'm' }],
      [],
      T0,
    );
    const same = setConditions(
      first,
      [{ type: 'Conflict', status: 'False', reason: 'NoConflicts', message: 'm2' }],
      [],
      T1,
    );
    assert.equal(same.at(0)?.lastTransitionTime, T0);
    const flipped = setConditions(
      same,
      [{ type: 'Conflict', status: 'True', reason: 'PortConflict', message: 'm' }],
      [],
      T1,
    );
    assert.equal(flipped.at(0)?.lastTransitionTime, T1);
    assert.deepEqual(setConditions(flipped, [], ['Conflict'], T1), []);
  });
});
