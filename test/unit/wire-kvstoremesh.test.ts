/**
 * KVStoreMesh against the reference's `kvstoremesh_test.go` cases (remote "foo"):
 * which keys it mirrors, the cluster config it writes for each source config, and
 * that it mirrors remotes the agent would refuse (cluster ID 0, another cluster's ID).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { KvstoreMeshHarness } from '../support/kvstoremesh.js';
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

/** The source keys of the reference test, non-cached layout. */
const SOURCE: ReadonlyArray<readonly [string, string]> = [
  ['cilium/state/nodes/v1/foo/bar', 'qux1'],
  ['cilium/state/services/v1/foo/bar', 'qux2'],
  ['cilium/state/serviceexports/v1/foo/bar', 'qux3'],
  ['cilium/state/identities/v1/id/bar', 'qux4'],
  ['cilium/state/identities/v1/value/bar', 'qux5'],
  ['cilium/state/ip/v1/default/bar', 'qux6'],
];

const CASES: ReadonlyArray<{ src: string; dst: string; exports: boolean }> = [
  { src: '{}', dst: '{"capabilities":{"syncedCanaries":true,"cached":true}}', exports: false },
  {
    src: '{"capabilities":{"serviceExportsEnabled":true,"syncedCanaries":true}}',
    dst: '{"capabilities":{"syncedCanaries":true,"cached":true,"serviceExportsEnabled":true}}',
    exports: true,
  },
  {
    src: '{"id":10,"capabilities":{"cached":true,"serviceExportsEnabled":false}}',
    dst: '{"id":10,"capabilities":{"syncedCanaries":true,"cached":true,"serviceExportsEnabled":false}}',
    exports: true,
  },
];

async function seed(h: KvstoreMeshHarness, config: string, cached: boolean): Promise<void> {
  const remote = h.client('foo');
  await remote.put('cilium/cluster-config/foo', config);
  for (const [k, v] of SOURCE) {
    const key = cached
      ? k
          .replace(/^cilium\/state\/(nodes|services|serviceexports)\/v1\//, 'cilium/cache/$1/v1/')
          .replace('cilium/state/identities/v1/', 'cilium/cache/identities/v1/foo/')
          .replace('cilium/state/ip/v1/default/', 'cilium/cache/ip/v1/foo/')
      : k;
    await remote.put(key, v);
  }
  const synced = cached ? 'cache' : 'state';
  for (const r of ['nodes', 'services', 'serviceexports', 'identities', 'ip']) {
    await remote.put(`cilium/synced/foo/cilium/${synced}/${r}/v1`, 'true');
  }
}

void describe('wire: KVStoreMesh reflection (reference kvstoremesh_test.go)', () => {
  for (const c of CASES) {
    const cached = c.src.includes('"cached":true');
    it(`source config ${c.src} is mirrored with ${c.dst}`, async () => {
      const h = await harness();
      await seed(h, c.src, cached);
      await h.configure('foo');
      const km = await h.start();
      await km.waitReady(5_000);
      await eventually(async () => {
        assert.equal((await h.local.get('cilium/cluster-config/foo'))?.value, c.dst);
      }, 5_000);
      const cache = await h.snapshot('cilium/cache/');
      const expected = new Map([
        ['cilium/cache/nodes/v1/foo/bar', 'qux1'],
        ['cilium/cache/services/v1/foo/bar', 'qux2'],
        ['cilium/cache/identities/v1/foo/id/bar', 'qux4'],
        ['cilium/cache/ip/v1/foo/bar', 'qux6'],
      ]);
      if (c.exports) expected.set('cilium/cache/serviceexports/v1/foo/bar', 'qux3');
      assert.deepEqual(new Map([...cache].sort()), new Map([...expected].sort()));
      // Exactly one identities key: `value/bar` is not reflected.
      assert.deepEqual(
        [...cache.keys()].filter((k) => k.startsWith('cilium/cache/identities/v1/')),
        ['cilium/cache/identities/v1/foo/id/bar'],
      );
      // The reference writes the service-exports canary only for a remote with export
      // support; this project also writes it for one without (see docs/compatibility.md).
      const canaries = [...(await h.snapshot('cilium/synced/foo/')).keys()].sort();
      const want = ['nodes', 'services', 'identities', 'ip', 'serviceexports']
        .map((r) => `cilium/synced/foo/cilium/cache/${r}/v1`)
        .sort();
      assert.deepEqual(canaries, want);
    });
  }

  it('mirrors a remote whose cluster ID collides with the local one (the agent refuses it)', async () => {
    const h = await harness();
    // The harness's local cluster has ID 1.
    await seed(h, '{"id":1,"capabilities":{"maxConnectedClusters":255}}', false);
    await h.configure('foo');
    await (await h.start()).waitReady(5_000);
    assert.equal((await h.snapshot('cilium/cache/')).get('cilium/cache/nodes/v1/foo/bar'), 'qux1');
  });
});
