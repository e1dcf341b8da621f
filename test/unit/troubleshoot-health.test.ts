import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HealthProber, startHealthEndpoint } from '../../src/health/prober.js';
import { silentLogger } from '../../src/lib/logger.js';
import { until } from '../support/eventually.js';

describe('health prober', () => {
  it('probes every peer: RTT percentiles for the reachable, the last error for the others', async () => {
    const endpoint = await startHealthEndpoint('127.0.0.1:0');
    const port = Number(new URL(endpoint.url).port);
    let cut = false;
    const prober = new HealthProber({
      self: { cluster: 'c1', name: 'n1', ip: '127.0.0.1' },
      peers: () => [
        { cluster: 'c1', name: 'n1', ip: '127.0.0.1' },
        { cluster: 'c2', name: 'n1', ip: '127.0.0.2' },
      ],
      port,
      intervalMs: 50,
      // Long enough that a loaded machine's slow answer is not a failure.
      timeoutMs: 1500,
      unreachable: (ip) => cut && ip === '127.0.0.1',
      log: silentLogger,
    });
    try {
      prober.start();
      await until(() => prober.status().nodes.every((n) => n.probes >= 5), 20_000);
      const [self, other] = prober.status().nodes;
      assert.ok(self !== undefined && other !== undefined, 'two nodes');
      assert.equal(self.local, true);
      assert.equal(self.status, 'ok');
      assert.equal(self.failures, 0);
      assert.ok(
        self.rtt !== undefined && self.rtt.p50 > 0 && self.rtt.p50 <= self.rtt.p99,
        JSON.stringify(self.rtt),
      );
      assert.equal(other.status, 'failed');
      assert.equal(other.rtt, undefined);
      assert.match(other.lastError ?? '', /ECONNREFUSED 127\.0\.0\.2/);
      // A partition: no answer, reported after the probe timeout.
      cut = true;
      await until(() => prober.status().nodes[0]?.status === 'failed', 15_000);
      assert.equal(prober.status().nodes[0]?.lastError, 'no answer within 1500 ms');
    } finally {
      prober.close();
      await endpoint.close();
    }
  });
});
