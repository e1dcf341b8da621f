import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Registry } from 'prom-client';
import { observeWatchEvents, RemoteFreshness } from '../../src/clustermesh/freshness.js';
import type { RemoteClusterStatus } from '../../src/clustermesh/status.js';
import {
  formatClusterMeshStatus,
  formatFreshness,
  shortDuration,
} from '../../src/clustermesh/status-text.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { clusterMeshMetrics } from '../../src/metrics/clustermesh.js';

const now = new Date('2026-11-23T10:00:00.000Z');
const at = (msBefore: number): string => new Date(now.getTime() - msBefore).toISOString();

function cluster(over: Partial<RemoteClusterStatus> = {}): RemoteClusterStatus {
  return {
    name: 'c2',
    connected: true,
    ready: true,
    status: 'etcd: 1/1 connected',
    'num-nodes': 1,
    'num-endpoints': 0,
    'num-identities': 0,
    'num-shared-services': 0,
    'num-failures': 0,
    synced: { nodes: true, endpoints: true, identities: true, services: true },
    ...over,
  };
}

void describe('clustermesh freshness', () => {
  it('records heartbeats with the delay from their time, and events', () => {
    let clock = Date.parse('2026-11-23T10:00:01.700Z');
    const f = new RemoteFreshness(() => clock);
    assert.deepEqual(f.status(), {});
    f.heartbeat('2026-11-23T10:00:00Z');
    assert.deepEqual(f.status(), {
      'last-heartbeat': '2026-11-23T10:00:01.700Z',
      'propagation-delay-ms': 1_700,
    });
    clock += 500;
    f.event();
    assert.equal(f.status()['last-event'], '2026-11-23T10:00:02.200Z');
    // A heartbeat time ahead of ours (clock skew) is no negative delay.
    f.heartbeat('2026-11-23T10:00:09Z');
    assert.equal(f.status()['propagation-delay-ms'], 0);
    f.heartbeat('garbage');
    assert.equal(f.status()['propagation-delay-ms'], undefined);
    assert.equal(f.status()['last-heartbeat'], '2026-11-23T10:00:02.200Z');
  });

  it('counts the changes a watch delivers after its listing, not the listing', async () => {
    const store = new MemoryStore();
    const writer = new MemoryBackend(store);
    const reader = new MemoryBackend(store);
    await writer.put('p/listed', 'x');
    let events = 0;
    const observed = observeWatchEvents(reader, () => {
      events++;
    });
    assert.equal((await observed.get('p/listed'))?.value, 'x');
    const ac = new AbortController();
    const seen: string[] = [];
    const done = (async () => {
      for await (const ev of observed.listAndWatch('p/', ac.signal)) {
        seen.push(ev.kind === 'listDone' ? 'listDone' : `${ev.kind} ${ev.key}`);
        if (ev.kind === 'listDone') await writer.put('p/new', 'y');
        if (ev.kind === 'upsert' && ev.key === 'p/new') await writer.delete('p/listed');
        if (ev.kind === 'delete') ac.abort();
      }
    })();
    await done;
    assert.deepEqual(seen, ['upsert p/listed', 'listDone', 'upsert p/new', 'delete p/listed']);
    assert.equal(events, 2);
    await writer.close();
    await reader.close();
    store.close();
  });

  it('prints a freshness line in verbose status only, and only when reported', () => {
    const fresh = cluster({
      freshness: {
        'last-heartbeat': at(400),
        'last-event': at(12_340),
        'propagation-delay-ms': 1_250,
      },
    });
    const verbose = formatClusterMeshStatus({ clusters: [fresh] }, { now, verbose: true });
    assert.equal(
      verbose.at(-1),
      '   └  freshness: last heartbeat 400ms ago, last event 12.3s ago, propagation delay ≤ 1.2s',
    );
    assert.deepEqual(formatClusterMeshStatus({ clusters: [fresh] }, { now }), [
      'ClusterMesh:   1/1 remote clusters ready, 0 global-services',
    ]);
    assert.deepEqual(formatFreshness(cluster({ freshness: {} }), now), [
      '   └  freshness: last heartbeat never, last event never, propagation delay unknown',
    ]);
    // Daemons that do not report it (and the reference's documented output) print no line.
    assert.deepEqual(formatFreshness(cluster(), now), []);
  });

  it('writes short durations with sub-second precision', () => {
    assert.equal(shortDuration(0), '0ms');
    assert.equal(shortDuration(0.4), '400ms');
    assert.equal(shortDuration(0.9996), '1s');
    assert.equal(shortDuration(12.36), '12.3s');
    assert.equal(shortDuration(59.99), '59.9s');
    assert.equal(shortDuration(90), '1m30s');
    assert.equal(shortDuration(7_500), '2h5m0s');
  });

  it('exports the freshness gauges under the daemon prefix, absent until sampled', async () => {
    const registry = new Registry();
    const m = clusterMeshMetrics(registry, 'cilium_clustermesh', { cluster: 'c1', node: 'n1' });
    const labels = 'source_cluster="c1",source_node_name="n1",target_cluster="c2"';
    m.remoteClusterFreshness('c2', {
      heartbeatAgeSeconds: undefined,
      lastEventAgeSeconds: undefined,
      propagationDelaySeconds: undefined,
    });
    assert.doesNotMatch(await registry.metrics(), /target_cluster="c2"/);
    m.remoteClusterFreshness('c2', {
      heartbeatAgeSeconds: 0.4,
      lastEventAgeSeconds: 12.5,
      propagationDelaySeconds: 1.25,
    });
    m.remoteClusterLastFailureTs('c2', 1_796_459_087);
    const text = await registry.metrics();
    for (const line of [
      `cilium_clustermesh_remote_cluster_heartbeat_age_seconds{${labels}} 0.4`,
      `cilium_clustermesh_remote_cluster_last_event_age_seconds{${labels}} 12.5`,
      `cilium_clustermesh_remote_cluster_propagation_delay_seconds{${labels}} 1.25`,
      `cilium_clustermesh_remote_cluster_last_failure_ts{${labels}} 1796459087`,
    ]) {
      assert.ok(text.split('\n').includes(line), `missing ${line} in:\n${text}`);
    }
    m.remoteClusterRemoved('c2');
    assert.doesNotMatch(await registry.metrics(), /target_cluster="c2"/);
  });
});
