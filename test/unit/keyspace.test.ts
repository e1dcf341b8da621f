import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import {
  apiserverCanaryKey,
  cachePrefix,
  clusterConfigKey,
  clusterIdentityRange,
  clusterIdShift,
  clusterLabel,
  clusterNameProblem,
  decodeHeartbeat,
  formatLabel,
  formatLabelsForKVStore,
  formatRFC3339,
  HeartbeatPath,
  identitiesCachePrefix,
  identityClusterId,
  identityKey,
  identityValueKey,
  ipcacheCachePrefix,
  ipcacheKey,
  isIdentityInClusterRange,
  joinKey,
  keySuffix,
  kvstoremeshCanaryKey,
  labelsFromRecord,
  labelsToRecord,
  nodeKey,
  nodesClusterPrefix,
  parseLabel,
  parseLabelsFromKVStore,
  parseRFC3339,
  remoteClusterLayout,
  ReservedIdentity,
  rfc3339Now,
  serviceExportKey,
  serviceKey,
  stateToCachePrefix,
  syncedCanaryKey,
  validateClusterId,
  validateClusterInfo,
  validateClusterName,
  validateMaxConnectedClusters,
} from '../../src/keyspace/index.js';

function throwsCode(fn: () => unknown, code: ErrorCode, message: string | RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isClusterMeshError(err, code), `expected ${code}, got ${String(err)}`);
    if (typeof message === 'string') assert.equal(err.message, message);
    else assert.match(err.message, message);
    return true;
  });
}

void describe('keyspace keys', () => {
  void it('uses the reference constants', () => {
    assert.equal(HeartbeatPath, 'cilium/.heartbeat');
    assert.equal(clusterConfigKey('c2'), 'cilium/cluster-config/c2');
  });

  void it('builds state keys', () => {
    assert.equal(nodeKey('c2', 'node-a'), 'cilium/state/nodes/v1/c2/node-a');
    assert.equal(nodesClusterPrefix('c2'), 'cilium/state/nodes/v1/c2');
    assert.equal(identityKey(131073), 'cilium/state/identities/v1/id/131073');
    assert.equal(
      identityValueKey('k8s:app=foo;', '10.0.0.1'),
      'cilium/state/identities/v1/value/k8s:app=foo;/10.0.0.1',
    );
    assert.equal(ipcacheKey('10.2.0.61'), 'cilium/state/ip/v1/default/10.2.0.61');
    assert.equal(ipcacheKey('10.2.0.0/24'), 'cilium/state/ip/v1/default/10.2.0.0/24');
    assert.equal(
      serviceKey('c2', 'default', 'rebel-base'),
      'cilium/state/services/v1/c2/default/rebel-base',
    );
    assert.equal(
      serviceExportKey('c2', 'default', 'rebel-base'),
      'cilium/state/serviceexports/v1/c2/default/rebel-base',
    );
  });

  void it('joins like Go path.Join: no empty parts, no trailing or double slash', () => {
    assert.equal(joinKey('cilium/state', '', 'nodes/', 'v1/'), 'cilium/state/nodes/v1');
    assert.equal(joinKey('a//b', 'c'), 'a/b/c');
    assert.equal(joinKey(), '');
    assert.equal(nodesClusterPrefix(''), 'cilium/state/nodes/v1');
  });

  void it('strips a base from a key', () => {
    assert.equal(keySuffix('cilium/state/nodes/v1/c2/n', 'cilium/state/nodes/v1'), 'c2/n');
    assert.equal(keySuffix('cilium/state/nodes/v1', 'cilium/state/nodes/v1'), null);
    assert.equal(keySuffix('cilium/state/nodes/v10/x', 'cilium/state/nodes/v1'), null);
  });

  void it('maps state prefixes to cache prefixes', () => {
    assert.equal(stateToCachePrefix('cilium/state/nodes/v1'), 'cilium/cache/nodes/v1');
    assert.equal(stateToCachePrefix('cilium/synced/c1'), 'cilium/synced/c1');
    assert.equal(cachePrefix('services', 'c3'), 'cilium/cache/services/v1/c3');
    assert.equal(identitiesCachePrefix('c3'), 'cilium/cache/identities/v1/c3');
    assert.equal(ipcacheCachePrefix('c3'), 'cilium/cache/ip/v1/c3');
  });

  void it('builds canary keys', () => {
    assert.equal(
      syncedCanaryKey('c2', 'cilium/state/nodes/v1'),
      'cilium/synced/c2/cilium/state/nodes/v1',
    );
    assert.equal(
      apiserverCanaryKey('c2', 'identities'),
      'cilium/synced/c2/cilium/state/identities/v1',
    );
    assert.equal(apiserverCanaryKey('c2', 'ip'), 'cilium/synced/c2/cilium/state/ip/v1');
    assert.equal(
      apiserverCanaryKey('c2', 'serviceexports'),
      'cilium/synced/c2/cilium/state/serviceexports/v1',
    );
    assert.equal(kvstoremeshCanaryKey('c2', 'ip'), 'cilium/synced/c2/cilium/cache/ip/v1');
  });

  void it('describes where a reader finds a remote cluster, direct and cached', () => {
    const direct = remoteClusterLayout('c2', false);
    assert.deepEqual(direct.nodes, {
      watchPrefix: 'cilium/state/nodes/v1/c2',
      keyBase: 'cilium/state/nodes/v1',
      syncedKey: 'cilium/state/nodes/v1',
    });
    assert.deepEqual(direct.ip, {
      watchPrefix: 'cilium/state/ip/v1/default',
      keyBase: 'cilium/state/ip/v1/default',
      syncedKey: 'cilium/state/ip/v1',
    });
    assert.equal(direct.identities.watchPrefix, 'cilium/state/identities/v1');
    const cached = remoteClusterLayout('c2', true);
    assert.deepEqual(cached.services, {
      watchPrefix: 'cilium/cache/services/v1/c2',
      keyBase: 'cilium/cache/services/v1',
      syncedKey: 'cilium/cache/services/v1',
    });
    assert.deepEqual(cached.ip, {
      watchPrefix: 'cilium/cache/ip/v1/c2',
      keyBase: 'cilium/cache/ip/v1/c2',
      syncedKey: 'cilium/cache/ip/v1',
    });
    assert.deepEqual(cached.identities, {
      watchPrefix: 'cilium/cache/identities/v1/c2',
      keyBase: 'cilium/cache/identities/v1/c2',
      syncedKey: 'cilium/cache/identities/v1',
    });
  });
});

void describe('keyspace cluster validation', () => {
  void it('accepts valid names', () => {
    for (const name of ['c1', 'a', 'cluster-1', 'x'.repeat(32), '0']) {
      validateClusterName(name);
    }
  });

  void it('rejects invalid names with the reference texts', () => {
    throwsCode(() => validateClusterName(''), ErrorCode.InvalidArgument, 'must not be empty');
    throwsCode(
      () => validateClusterName('x'.repeat(33)),
      ErrorCode.InvalidArgument,
      'must not be more than 32 characters',
    );
    const regexText =
      "must consist of lower case alphanumeric characters and '-', and must start and end with an alphanumeric character";
    for (const name of ['-a', 'a-', 'Cluster1', 'a_b', 'a.b', 'a/b']) {
      assert.equal(clusterNameProblem(name), regexText, name);
    }
  });

  void it('validates cluster IDs', () => {
    validateClusterId(1);
    validateClusterId(255);
    validateClusterId(511, 511);
    throwsCode(() => validateClusterId(0), ErrorCode.InvalidArgument, 'ClusterID 0 is reserved');
    throwsCode(
      () => validateClusterId(256),
      ErrorCode.InvalidArgument,
      'ClusterID > 255 is not supported',
    );
    throwsCode(
      () => validateClusterId(512, 511),
      ErrorCode.InvalidArgument,
      'ClusterID > 511 is not supported',
    );
  });

  void it('validates max-connected-clusters', () => {
    assert.equal(validateMaxConnectedClusters(511), 511);
    throwsCode(
      () => validateMaxConnectedClusters(127),
      ErrorCode.InvalidArgument,
      '--max-connected-clusters=127 is invalid; supported values are [255, 511]',
    );
  });

  void it('validates the local cluster info', () => {
    validateClusterInfo({ name: 'default', id: 0, maxConnectedClusters: 255 });
    validateClusterInfo({ name: 'c1', id: 1, maxConnectedClusters: 255 });
    throwsCode(
      () => validateClusterInfo({ name: 'default', id: 3, maxConnectedClusters: 255 }),
      ErrorCode.InvalidArgument,
      'cannot use default cluster name (default) with option cluster-id',
    );
    throwsCode(
      () => validateClusterInfo({ name: 'c1', id: 300, maxConnectedClusters: 255 }),
      ErrorCode.InvalidArgument,
      'invalid cluster id 300: must be in range 0..255',
    );
    throwsCode(
      () => validateClusterInfo({ name: 'C1', id: 1, maxConnectedClusters: 255 }),
      ErrorCode.InvalidArgument,
      /^invalid cluster name: must consist of/,
    );
  });
});

void describe('keyspace identity ranges', () => {
  void it('uses shift 16 with 255 clusters and 15 with 511', () => {
    assert.equal(clusterIdShift(255), 16);
    assert.equal(clusterIdShift(511), 15);
  });

  void it('computes per-cluster ranges', () => {
    assert.deepEqual(clusterIdentityRange(0), { min: 256, max: 65535 });
    assert.deepEqual(clusterIdentityRange(1), { min: 65536, max: 131071 });
    assert.deepEqual(clusterIdentityRange(255), { min: 16711680, max: 16777215 });
    assert.deepEqual(clusterIdentityRange(1, 511), { min: 32768, max: 65535 });
    assert.deepEqual(clusterIdentityRange(511, 511), { min: 16744448, max: 16777215 });
    throwsCode(() => clusterIdentityRange(256), ErrorCode.InvalidArgument, /not supported/);
  });

  void it('extracts the cluster ID of an identity', () => {
    assert.equal(identityClusterId(131071), 1);
    assert.equal(identityClusterId(131072), 2);
    assert.equal(identityClusterId(ReservedIdentity.Host), 0);
    assert.equal(identityClusterId(65536, 511), 2);
    // Local-scope identities (bit 24) carry no cluster.
    assert.equal(identityClusterId(0x01000005), 0);
    assert.equal(isIdentityInClusterRange(65536, 1), true);
    assert.equal(isIdentityInClusterRange(65535, 1), false);
  });
});

void describe('keyspace labels', () => {
  void it('formats identity label strings sorted by key, each ending with ;', () => {
    const value = formatLabelsForKVStore([
      { source: 'k8s', key: 'io.kubernetes.pod.namespace', value: 'default' },
      { source: 'k8s', key: 'app', value: 'foo' },
      clusterLabel('c2'),
      { source: 'k8s', key: 'io.cilium.k8s.policy.serviceaccount', value: 'default' },
    ]);
    assert.equal(
      value,
      'k8s:app=foo;k8s:io.cilium.k8s.policy.cluster=c2;k8s:io.cilium.k8s.policy.serviceaccount=default;k8s:io.kubernetes.pod.namespace=default;',
    );
  });

  void it('sorts by key, not by source', () => {
    assert.equal(
      formatLabelsForKVStore({ 'k8s:b': '1', 'any:c': '', 'reserved:a': '' }),
      'reserved:a=;k8s:b=1;any:c=;',
    );
  });

  void it('parses label strings back', () => {
    const labels = parseLabelsFromKVStore(
      'k8s:io.kubernetes.pod.namespace=default;k8s:app=foo;reserved:host=;',
    );
    // Stored order, as the reference's NewLabelArrayFromSortedList keeps it.
    assert.deepEqual(labels, [
      { source: 'k8s', key: 'io.kubernetes.pod.namespace', value: 'default' },
      { source: 'k8s', key: 'app', value: 'foo' },
      { source: 'reserved', key: 'host', value: '' },
    ]);
    assert.deepEqual(parseLabelsFromKVStore(''), []);
    // Duplicates are kept.
    assert.equal(parseLabelsFromKVStore('k8s:a=1;k8s:a=2;').length, 2);
  });

  void it('round-trips', () => {
    const text = 'k8s:app.kubernetes.io/name=x-wing;k8s:io.cilium.k8s.policy.cluster=c1;';
    assert.equal(formatLabelsForKVStore(parseLabelsFromKVStore(text)), text);
  });

  void it('parses single labels, defaulting the source to unspec', () => {
    assert.deepEqual(parseLabel('k8s:app=foo'), { source: 'k8s', key: 'app', value: 'foo' });
    assert.deepEqual(parseLabel('app=foo'), { source: 'unspec', key: 'app', value: 'foo' });
    // The source ends at the first `:` anywhere, even after `=`.
    assert.deepEqual(parseLabel('app=a:b'), { source: 'app=a', key: 'b', value: '' });
    assert.deepEqual(parseLabel('k8s:app=a:b'), { source: 'k8s', key: 'app', value: 'a:b' });
    assert.deepEqual(parseLabel(':app=a'), { source: 'unspec', key: 'app', value: 'a' });
    assert.deepEqual(parseLabel('reserved:host'), { source: 'reserved', key: 'host', value: '' });
    assert.deepEqual(parseLabel('$world'), { source: 'reserved', key: 'world', value: '' });
    assert.equal(formatLabel({ source: 'k8s', key: 'app', value: 'foo' }), 'k8s:app=foo');
    assert.equal(formatLabel({ source: 'reserved', key: 'host', value: '' }), 'reserved:host');
  });

  void it('converts security-labels records', () => {
    const labels = labelsFromRecord({ 'k8s:app': 'foo', 'k8s:io.cilium.k8s.policy.cluster': 'c1' });
    assert.deepEqual(labelsToRecord(labels), {
      'k8s:app': 'foo',
      'k8s:io.cilium.k8s.policy.cluster': 'c1',
    });
  });

  void it('writes labels raw and keeps one label per key, as Map2Labels does', () => {
    assert.equal(formatLabelsForKVStore([{ source: 'k8s', key: 'a', value: 'x;y' }]), 'k8s:a=x;y;');
    assert.equal(
      formatLabelsForKVStore({ 'k8s:app': 'a', 'container:app': 'b', 'k8s:z': '' }),
      'container:app=b;k8s:z=;',
    );
  });
});

void describe('keyspace timestamps', () => {
  void it('formats RFC 3339 like Go, without fractional seconds', () => {
    const date = new Date(Date.UTC(2026, 10, 23, 2, 18, 54, 789));
    assert.equal(formatRFC3339(date), '2026-11-23T02:18:54Z');
    assert.equal(rfc3339Now(date), '2026-11-23T02:18:54Z');
    assert.match(rfc3339Now(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  void it('parses offsets and fractions', () => {
    assert.equal(
      parseRFC3339('2026-11-23T04:18:54+02:00').toISOString(),
      '2026-11-23T02:18:54.000Z',
    );
    assert.equal(
      parseRFC3339('2026-11-23T02:18:54.5-00:30').toISOString(),
      '2026-11-23T02:48:54.500Z',
    );
    assert.equal(
      decodeHeartbeat('2026-11-23T02:18:54Z').getTime(),
      Date.UTC(2026, 10, 23, 2, 18, 54),
    );
  });

  void it('rejects malformed timestamps', () => {
    for (const bad of [
      '',
      'now',
      '2026-11-23 02:18:54Z',
      '2026-02-30T00:00:00Z',
      '2026-11-23T24:00:00Z',
    ]) {
      throwsCode(() => parseRFC3339(bad), ErrorCode.InvalidEntry, /invalid RFC 3339 time/);
    }
  });
});
