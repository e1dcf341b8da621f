import { newAgentViews } from '../../src/agent/views.js';
/**
 * The agent's per-remote counts as the reference reports them: `num-shared-services`
 * is every entry of the remote's services store (`remoteServices.NumEntries()`), shared
 * or not, and a non-shared entry is still not merged into the service table.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AgentRemoteCluster } from '../../src/agent/remote-cluster.js';
import {
  encodeClusterService,
  makeClusterConfig,
  makeClusterService,
} from '../../src/keyspace/index.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { silentLogger } from '../../src/lib/logger.js';
import { ServiceTable } from '../../src/service/table.js';
import { eventually } from '../support/eventually.js';

void describe('wire: agent remote-cluster counts', () => {
  it('counts every remote service entry, shared or not', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    for (const [name, shared] of [
      ['a', true],
      ['b', false],
    ] as const) {
      await backend.put(
        `cilium/state/services/v1/c2/default/${name}`,
        encodeClusterService(
          makeClusterService({
            cluster: 'c2',
            namespace: 'default',
            name,
            shared,
            includeExternal: true,
            clusterID: 2,
          }),
        ),
      );
    }
    const services = new ServiceTable('c1');
    const remote = new AgentRemoteCluster(
      'c2',
      { id: 1, maxConnectedClusters: 255 },
      newAgentViews({ clusterName: 'c1', log: silentLogger, services: services }),
      silentLogger,
    );
    const ac = new AbortController();
    const run = remote.run(backend, makeClusterConfig(2, {}), () => undefined, ac.signal);
    try {
      await eventually(() => {
        assert.equal(remote.status().synced.services, true);
      }, 5_000);
      assert.equal(remote.status().numSharedServices, 2);
      assert.equal(services.numGlobalServices, 1);
    } finally {
      ac.abort();
      await run.catch(() => undefined);
      await backend.close();
    }
  });
});
