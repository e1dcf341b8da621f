/**
 * KVStoreMesh on in-memory kvstores: what it writes into the local kvstore (exact
 * cache keys, values, canaries, cluster config), in which order, and how it reports.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import {
  KvstoreMeshHarness,
  expectedCache,
  sampleRemoteState,
  seedRemoteState,
  writeRemoteCanaries,
} from '../support/kvstoremesh.js';
import { eventually } from '../support/eventually.js';

const harnesses: KvstoreMeshHarness[] = [];
async function harness(): Promise<KvstoreMeshHarness> {
  const h = await KvstoreMeshHarness.create();
  harnesses.push(h);
  return h;
}
afterEach(async () => {
  for (const h of harnesses.splice(0)) await h.close();
});

const CANARIES = (c: string): string[] =>
  ['nodes', 'services', 'serviceexports', 'identities', 'ip'].map(
    (r) => `cilium/synced/${c}/cilium/cache/${r}/v1`,
  );

void describe('kvstoremesh: reflection into the local cache', () => {
  it('copies all five resources to the exact cache keys with identical values', async () => {
    const h = await harness();
    const state = sampleRemoteState('c2', 2);
    await seedRemoteState(h.client('c2'), 'c2', 2, state);
    await h.configure('c2');
    const km = await h.start({ healthAddr: '127.0.0.1:0' });
    await km.waitReady(5_000);

    const cache = await h.snapshot('cilium/cache/');
    assert.deepEqual([...cache.keys()].sort(), [
      'cilium/cache/identities/v1/c2/id/131073',
      'cilium/cache/ip/v1/c2/10.2.1.5',
      'cilium/cache/nodes/v1/c2/node-1',
      'cilium/cache/serviceexports/v1/c2/default/rebel-base',
      'cilium/cache/services/v1/c2/default/rebel-base',
    ]);
    assert.deepEqual(cache, expectedCache('c2', state));
    assert.equal(
      cache.get('cilium/cache/nodes/v1/c2/node-1'),
      state.get('cilium/state/nodes/v1/c2/node-1'),
    );

    const synced = await h.snapshot('cilium/synced/');
    assert.deepEqual([...synced.keys()].sort(), CANARIES('c2').sort());
    for (const v of synced.values()) assert.match(v, /^\d{4}-\d\d-\d\dT/);

    assert.equal(
      (await h.local.get('cilium/cluster-config/c2'))?.value,
      '{"id":2,"capabilities":{"syncedCanaries":true,"cached":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}',
    );
    // The cache keys and the config live on the writer's lease, as in the reference.
    assert.ok(
      (await h.local.get('cilium/cache/nodes/v1/c2/node-1'))?.lease !== undefined,
      "(await h.local.get('cilium/cache/nodes/v1/c2/node-1'))?.lease !== undefined",
    );
    assert.ok(
      (await h.local.get('cilium/cluster-config/c2'))?.lease !== undefined,
      "(await h.local.get('cilium/cluster-config/c2'))?.lease !== undefined",
    );

    const s = h.status('c2');
    assert.equal(s.ready, true);
    assert.deepEqual(
      [
        s['num-nodes'],
        s['num-endpoints'],
        s['num-identities'],
        s['num-shared-services'],
        s['num-service-exports'],
      ],
      [1, 1, 1, 1, 1],
    );
    assert.deepEqual(s.synced, {
      nodes: true,
      endpoints: true,
      identities: true,
      services: true,
      'service-exports': true,
    });
    assert.equal(s.config?.['service-exports-enabled'], false);

    const url = km.healthUrl ?? '';
    assert.equal((await fetch(`${url}/readyz`)).status, 200);
    assert.equal((await fetch(`${url}/healthz`)).status, 200);
    const status = (await (await fetch(`${url}/status`)).json()) as {
      clusters: { name: string; ready: boolean }[];
    };
    assert.deepEqual(
      status.clusters.map((c) => [c.name, c.ready]),
      [['c2', true]],
    );
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /^cilium_kvstoremesh_bootstrap_seconds\{source_cluster="local"\} \d/m);
    assert.match(
      metrics,
      /^cilium_kvstoremesh_remote_cluster_readiness_status\{source_cluster="local",target_cluster="c2"\} 1$/m,
    );
    assert.match(metrics, /^cilium_kvstoremesh_remote_clusters\{source_cluster="local"\} 1$/m);
    assert.match(
      metrics,
      /^cilium_kvstoremesh_kvstore_sync_queue_size\{scope="nodes\/v1",source_cluster="c2"\} 0$/m,
    );
    assert.match(metrics, /^# TYPE cilium_kvstoremesh_kvstore_sync_errors_total counter$/m);
    assert.match(
      metrics,
      /^cilium_kvstoremesh_kvstore_initial_sync_completed\{scope="ip\/v1",source_cluster="c2",action="write"\} 1$/m,
    );
  });

  it('writes each canary only after its resource is in the cache', async () => {
    const h = await harness();
    // More nodes than one transaction holds, so the cache is written in several batches.
    const state = sampleRemoteState('c2', 2, 400);
    await seedRemoteState(h.client('c2'), 'c2', 2, state);
    await h.configure('c2');
    const rec = h.record();
    await rec.listed;
    const km = await h.start();
    await km.waitReady(5_000);
    await rec.stop();

    const order = rec.events.flatMap((e) => (e.kind === 'upsert' ? [e.key] : []));
    for (const res of ['nodes', 'services', 'serviceexports', 'identities', 'ip']) {
      const canary = order.indexOf(`cilium/synced/c2/cilium/cache/${res}/v1`);
      assert.ok(canary >= 0, `canary of ${res} written`);
      const data = order
        .map((k, i) => [k, i] as const)
        .filter(([k]) => k.startsWith(`cilium/cache/${res}/v1/c2/`));
      assert.ok(data.length > 0, 'data.length > 0');
      for (const [k, i] of data) assert.ok(i < canary, `${k} written before the ${res} canary`);
    }
    assert.equal(
      order.filter((k) => k.startsWith('cilium/cache/nodes/v1/c2/')).length,
      400,
      'each node written once',
    );
    // The config comes before any data: agents switch to the cache, then wait for canaries.
    assert.ok(
      order.indexOf('cilium/cluster-config/c2') < order.findIndex((k) => k.includes('/cache/')),
      "order.indexOf('cilium/cluster-config/c2') < order.findIndex((k) => k.includes('/cache/'))",
    );
  });

  it('reflects nothing before the remote canaries exist, then each resource as its canary appears', async () => {
    const h = await harness();
    const remote = h.client('c2');
    await seedRemoteState(remote, 'c2', 2, sampleRemoteState('c2', 2), { canaries: false });
    await h.configure('c2');
    await h.start({ globalReadyTimeoutMs: 60_000 });
    await eventually(async () => {
      assert.notEqual(await h.local.get('cilium/cluster-config/c2'), undefined);
    }, 5_000);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal((await h.snapshot('cilium/cache/')).size, 0);
    assert.equal((await h.snapshot('cilium/synced/')).size, 0);
    assert.equal(h.mesh().ready, false);
    assert.equal(h.status('c2').ready, false);

    await writeRemoteCanaries(remote, 'c2', ['nodes']);
    await eventually(async () => {
      assert.deepEqual(
        [...(await h.snapshot('cilium/synced/')).keys()],
        ['cilium/synced/c2/cilium/cache/nodes/v1'],
      );
    }, 5_000);
    assert.deepEqual(
      [...(await h.snapshot('cilium/cache/')).keys()],
      ['cilium/cache/nodes/v1/c2/node-1'],
    );
    await writeRemoteCanaries(remote, 'c2');
    await h.mesh().waitReady(5_000);
    assert.equal((await h.snapshot('cilium/cache/')).size, 5);
  });

  it('follows remote updates and deletions', async () => {
    const h = await harness();
    const remote = h.client('c2');
    const state = sampleRemoteState('c2', 2, 3);
    await seedRemoteState(remote, 'c2', 2, state);
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);

    await remote.delete('cilium/state/nodes/v1/c2/node-2');
    await remote.put('cilium/state/nodes/v1/c2/node-3', '{"Name":"node-3","changed":true}');
    await remote.put('cilium/state/ip/v1/default/10.2.1.6', '{"IP":"10.2.1.6"}');
    state.delete('cilium/state/nodes/v1/c2/node-2');
    state.set('cilium/state/nodes/v1/c2/node-3', '{"Name":"node-3","changed":true}');
    state.set('cilium/state/ip/v1/default/10.2.1.6', '{"IP":"10.2.1.6"}');
    await eventually(async () => {
      assert.deepEqual(await h.snapshot('cilium/cache/'), expectedCache('c2', state));
    }, 5_000);
    assert.equal(h.status('c2')['num-nodes'], 2);
  });

  it('copies spoofed and malformed entries as-is: KVStoreMesh does not validate', async () => {
    const h = await harness();
    const state = new Map([
      // Claims to be a node of another cluster.
      [
        'cilium/state/nodes/v1/c2/evil',
        '{"Name":"evil","Cluster":"c3","ClusterID":3,"IPAddresses":[]}',
      ],
      // Identity of another cluster's range, IP that does not match its key.
      [
        'cilium/state/ip/v1/default/10.2.9.9',
        '{"IP":"10.9.9.9","Mask":null,"HostIP":"10.2.0.1","ID":196609,"Key":0,"Metadata":""}',
      ],
      ['cilium/state/identities/v1/id/42', 'not a label string at all'],
      ['cilium/state/services/v1/c2/default/broken', '{not json'],
    ]);
    await seedRemoteState(h.client('c2'), 'c2', 2, state);
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    assert.deepEqual(await h.snapshot('cilium/cache/'), expectedCache('c2', state));
  });

  it('restores the local cluster config when it is deleted', async () => {
    const h = await harness();
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2));
    await h.configure('c2');
    await (await h.start({ remote: { clusterConfigIntervalMs: 100 } })).waitReady(5_000);
    const before = (await h.local.get('cilium/cluster-config/c2'))?.value;
    assert.ok(before !== undefined, 'before !== undefined');
    await h.local.delete('cilium/cluster-config/c2');
    await eventually(async () => {
      assert.equal((await h.local.get('cilium/cluster-config/c2'))?.value, before);
    }, 3_000);
    await h.local.put('cilium/cluster-config/c2', '{"id":9}');
    await eventually(async () => {
      assert.equal((await h.local.get('cilium/cluster-config/c2'))?.value, before);
    }, 3_000);
  });

  it('does not watch service exports of a remote without support, but reports them synced', async () => {
    const h = await harness();
    const state = sampleRemoteState('c2', 2);
    await seedRemoteState(h.client('c2'), 'c2', 2, state, { serviceExportsEnabled: null });
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    const cache = await h.snapshot('cilium/cache/');
    assert.equal(cache.has('cilium/cache/serviceexports/v1/c2/default/rebel-base'), false);
    assert.equal(cache.size, 4);
    assert.notEqual(
      await h.local.get('cilium/synced/c2/cilium/cache/serviceexports/v1'),
      undefined,
    );
    const s = h.status('c2');
    // Neither reported for a remote without export support, as the reference does.
    assert.equal(s.synced['service-exports'], undefined);
    assert.equal(s.ready, true);
    assert.equal(s.config?.['service-exports-enabled'], undefined);
    assert.equal(
      (await h.local.get('cilium/cluster-config/c2'))?.value,
      '{"id":2,"capabilities":{"syncedCanaries":true,"cached":true,"maxConnectedClusters":255}}',
    );
  });

  it('reads a remote that is itself a KVStoreMesh cache from its cached layout', async () => {
    const h = await harness();
    const remote = h.client('c2');
    // c2's store is a cache written by another KVStoreMesh: cluster-scoped cache keys.
    const cached = new Map([
      ['cilium/cache/nodes/v1/c2/node-1', '{"Name":"node-1"}'],
      ['cilium/cache/identities/v1/c2/id/131073', 'k8s:app=x;'],
      ['cilium/cache/ip/v1/c2/10.2.1.5', '{"IP":"10.2.1.5"}'],
      ['cilium/cache/services/v1/c2/default/svc', '{"name":"svc"}'],
      // Another cluster's data in the same cache must not be picked up.
      ['cilium/cache/ip/v1/c9/10.9.1.5', '{"IP":"10.9.1.5"}'],
    ]);
    await remote.put(
      'cilium/cluster-config/c2',
      '{"id":2,"capabilities":{"syncedCanaries":true,"cached":true,"maxConnectedClusters":255}}',
    );
    for (const [k, v] of cached) await remote.put(k, v);
    for (const r of ['nodes', 'services', 'identities', 'ip']) {
      await remote.put(`cilium/synced/c2/cilium/cache/${r}/v1`, '2024-01-01T00:00:00Z');
    }
    await h.configure('c2');
    await (await h.start()).waitReady(5_000);
    cached.delete('cilium/cache/ip/v1/c9/10.9.1.5');
    assert.deepEqual(await h.snapshot('cilium/cache/'), cached);
  });

  it('kvstoremesh status prints the reference text, and -o json the model', async () => {
    const h = await harness();
    await seedRemoteState(h.client('c2'), 'c2', 2, sampleRemoteState('c2', 2));
    await h.configure('c2');
    await h.configure('c3');
    const km = await h.start({ healthAddr: '127.0.0.1:0', perClusterReadyTimeoutMs: 200 });
    await km.waitReady(5_000);
    const url = km.healthUrl ?? '';
    const run = async (...argv: string[]): Promise<{ code: number; out: string }> => {
      let out = '';
      const code = await runCli(argv, {
        stdout: (s) => (out += s),
        stderr: (s) => (out += s),
      });
      return { code, out };
    };
    // c3 retries its missing cluster config; its detail line settles on the kvstore status.
    let brief = '';
    await eventually(async () => {
      const text = await run('kvstoremesh', 'status', '--url', url);
      brief = text.out;
      assert.equal(text.code, 0, text.out);
      const lines = text.out.split('\n');
      assert.equal(lines[0], 'KVStoreMesh:   1/2 remote clusters ready');
      // Not verbose (brief): the ready cluster is one line, the other one is detailed.
      assert.match(lines[1] ?? '', /^ {3}c2: ready, 1 nodes, /);
      assert.match(lines[2] ?? '', /^ {3}c3: not-ready, 0 nodes, /);
      assert.match(lines[3] ?? '', /^ {3}└ {2}memory: /);
    });

    const verbose = await run('kvstoremesh', 'status', '--verbose', '--url', url);
    assert.match(
      verbose.out,
      /^ {3}c2: ready, 1 nodes, 1 endpoints, 1 identities, 1 services, 1 MCS-API service exports, 0 reconnections \(last: never\)$/m,
    );
    assert.match(
      verbose.out,
      /^ {3}└ {2}remote configuration: expected=true, retrieved=true, cluster-id=2, kvstoremesh=false, sync-canaries=true, service-exports=disabled$/m,
    );
    assert.match(
      verbose.out,
      /^ {3}└ {2}synchronization status: nodes=true, endpoints=true, identities=true, services=true, service-exports=true$/m,
    );
    // Everything of c2 came with the listing: nothing has been received since.
    assert.match(
      verbose.out,
      /^ {3}c2: ready[^\n]*\n(?: {3}└ [^\n]*\n){3} {3}└ {2}freshness: last heartbeat never, last event never, propagation delay unknown$/m,
    );
    assert.doesNotMatch(brief, /freshness/);

    const json = await run('-o', 'json', 'kvstoremesh', 'status', '--url', url);
    assert.doesNotMatch(json.out, /freshness/, 'not in the reference model');
    const doc = JSON.parse(json.out) as { clusters: { name: string }[] };
    assert.deepEqual(
      doc.clusters.map((c) => c.name),
      ['c2', 'c3'],
    );

    const down = await run('kvstoremesh', 'status', '--url', 'http://127.0.0.1:9');
    assert.equal(down.code, 1);
    assert.match(down.out, /^clustermesh: cannot reach kvstoremesh at http:\/\/127\.0\.0\.1:9/);
  });

  it('the daemon command reports missing required flags as usage errors', async () => {
    let err = '';
    const code = await runCli(['kvstoremesh', '--cluster-name', 'c1'], {
      stdout: () => undefined,
      stderr: (s) => (err += s),
    });
    assert.equal(code, 2);
    assert.equal(err, "error: required option '--cluster-id <id>' not specified\n");
  });
});
