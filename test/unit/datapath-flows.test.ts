import { newAgentViews } from '../../src/agent/views.js';
/**
 * Flow log, LB map and translation without sockets; `/v1/flows` on a real agent API
 * and `clustermesh observe` reading it through a fake mesh.json (127.204.200.x).
 */
import { runCliCaptured, type CapturedRun } from '../support/cli.js';
import { until } from '../support/eventually.js';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startAgentApi } from '../../src/agent/api.js';
import { formatFlow, observeFlows } from '../../src/cli/observe.js';
import { NodeDatapath } from '../../src/datapath/datapath.js';
import { FlowLog, type Flow, type FlowRecord } from '../../src/datapath/flows.js';
import { LoadBalancerMap } from '../../src/datapath/lb-map.js';
import { IdentityCache } from '../../src/identity/cache.js';
import { IPCache } from '../../src/ipcache/ipcache.js';
import { makeClusterService, type PortConfiguration } from '../../src/keyspace/index.js';
import type { RunningHttpServer } from '../../src/lib/http-server.js';
import { silentLogger } from '../../src/lib/logger.js';
import { ServiceTable } from '../../src/service/table.js';

const HTTP: PortConfiguration = { http: { Protocol: 'TCP', Port: 80 } };

function record(src: string, extra: Partial<FlowRecord> = {}): FlowRecord {
  return {
    node: 'node1',
    verdict: 'FORWARDED',
    protocol: 'TCP',
    direction: 'egress',
    source: { ip: src, port: 1000 },
    destination: { ip: '127.204.128.1', port: 80 },
    ...extra,
  };
}

function svc(
  table: ServiceTable,
  name: string,
  ip: string,
  backends: readonly string[],
  affinity: 'none' | 'local' = 'none',
): void {
  table.upsertLocal({
    service: makeClusterService({
      cluster: 'cluster1',
      clusterID: 1,
      namespace: 'default',
      name,
      frontends: { [ip]: HTTP },
      backends: Object.fromEntries(backends.map((b) => [b, HTTP])),
      includeExternal: true,
      shared: true,
    }),
    global: true,
    affinity,
    type: 'ClusterIP',
  });
}

void describe('FlowLog', () => {
  it('keeps the most recent flows and pages forward from a cursor', () => {
    const log = new FlowLog(5);
    for (let i = 1; i <= 8; i++) log.record(record(`127.204.2.${i}`));
    assert.equal(log.lastSeq, 8);
    const all = log.list();
    assert.deepEqual(
      all.flows.map((f) => f.seq),
      [4, 5, 6, 7, 8],
    );
    assert.equal(all.next, 8);
    assert.match(all.flows[0]?.time ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.deepEqual(
      log.list({ limit: 2 }).flows.map((f) => f.seq),
      [7, 8],
    );
    // Forward paging: oldest first after the cursor, clamped to what the ring still has.
    const page = log.list({ since: 1, limit: 2 });
    assert.deepEqual(
      page.flows.map((f) => f.seq),
      [4, 5],
    );
    assert.equal(page.next, 5);
    assert.deepEqual(log.list({ since: 8 }), { flows: [], next: 8 });
    // A cursor from before a restart (beyond the last seq) starts over.
    assert.deepEqual(
      log.list({ since: 100, limit: 1 }).flows.map((f) => f.seq),
      [4],
    );
    log.record(record('127.204.2.9', { verdict: 'DROPPED', dropReason: 'no backends' }));
    assert.deepEqual([log.forwarded, log.dropped], [8, 1]);
    assert.throws(() => new FlowLog(0), RangeError);
  });
});

void describe('LoadBalancerMap', () => {
  it('follows the table incrementally and reports frontend set changes only', () => {
    const table = new ServiceTable('cluster1');
    svc(table, 'a', '127.204.128.1', ['127.204.1.1']);
    const map = new LoadBalancerMap(table, silentLogger);
    let changes = 0;
    map.onFrontendsChanged(() => changes++);
    const a = map.lookup('127.204.128.1', 80);
    assert.ok(a !== undefined, 'a !== undefined');
    assert.equal(map.lookup('127.204.128.1', 81), undefined);

    svc(table, 'b', '127.204.128.2', ['127.204.1.2']);
    assert.equal(changes, 1);
    const builds = a.lb.tableBuilds;
    svc(table, 'b', '127.204.128.2', ['127.204.1.2', '127.204.1.3']);
    assert.equal(changes, 1, 'backend-only change');
    assert.equal(a.lb.tableBuilds, builds, 'service a untouched');
    assert.deepEqual(
      map
        .lookup('127.204.128.2', 80)
        ?.lb.selectionSet()
        .map((x) => x.address),
      ['127.204.1.2:80/TCP', '127.204.1.3:80/TCP'],
    );
    table.deleteLocal('default', 'b');
    assert.equal(changes, 2);
    assert.equal(map.lookup('127.204.128.2', 80), undefined);
    assert.deepEqual(
      map.frontendAddresses().map((f) => f.key),
      ['127.204.128.1:80/TCP'],
    );
    map.close();
    svc(table, 'c', '127.204.128.3', []);
    assert.equal(changes, 2, 'closed maps stop listening');
  });
});

void describe('NodeDatapath', () => {
  it('translates with affinity and enriches endpoints from the ipcache', () => {
    const table = new ServiceTable('cluster1');
    svc(table, 'rebel-base', '127.204.128.1', ['127.204.1.1'], 'local');
    table.upsertRemote(
      makeClusterService({
        cluster: 'cluster2',
        clusterID: 2,
        namespace: 'default',
        name: 'rebel-base',
        frontends: { '127.205.128.1': HTTP },
        backends: { '127.205.1.1': HTTP },
        includeExternal: true,
        shared: true,
      }),
    );
    const ipcache = new IPCache();
    ipcache.upsert({
      cidr: '127.205.1.1/32',
      identity: 131328,
      hostIP: '127.205.0.1',
      encryptKey: 0,
      cluster: 'cluster2',
      k8sNamespace: 'default',
      k8sPodName: 'rebel-base-r',
      source: 'clustermesh',
    });
    const identities = new IdentityCache();
    const dp = new NodeDatapath({
      cluster: 'cluster1',
      node: { name: 'node1', ip: '127.204.0.1' },
      services: table,
      ipcache,
      identities,
      log: silentLogger,
      flowCapacity: 10,
    });
    try {
      for (let port = 1000; port < 1020; port++) {
        const t = dp.translate({ ip: '127.204.2.5', port }, { ip: '127.204.128.1', port: 80 });
        assert.equal(t?.backend.ip, '127.204.1.1', 'affinity local');
      }
      assert.equal(
        dp.translate({ ip: '127.204.2.5', port: 1 }, { ip: '127.204.9.9', port: 80 }),
        undefined,
      );
      svc(table, 'rebel-base', '127.204.128.1', [], 'local');
      const t = dp.translate({ ip: '127.204.2.5', port: 1 }, { ip: '127.204.128.1', port: 80 });
      assert.ok(t !== undefined, 't !== undefined');
      assert.deepEqual(dp.backendEndpoint(t.backend), {
        ip: '127.205.1.1',
        port: 80,
        cluster: 'cluster2',
        namespace: 'default',
        pod: 'rebel-base-r',
        identity: 131328,
        labels: undefined,
      });
      assert.deepEqual(dp.endpointOf('127.204.0.1', 5), {
        ip: '127.204.0.1',
        port: 5,
        cluster: 'cluster1',
        identity: 1,
        labels: ['reserved:host'],
        node: 'node1',
      });
      assert.equal(dp.endpointOf('8.8.8.8', 53).identity, 2);

      const f = dp.recordIngress({
        pod: { namespace: 'default', name: 'rebel-base-0', ip: '127.204.1.1' },
        localPort: 80,
        peer: { ip: '127.205.1.1', port: 4000 },
      });
      assert.ok(f !== undefined, 'f !== undefined');
      assert.equal(f.direction, 'ingress');
      assert.deepEqual(f.destination, {
        ip: '127.204.1.1',
        port: 80,
        cluster: 'cluster1',
        namespace: 'default',
        pod: 'rebel-base-0',
        node: 'node1',
      });
      assert.equal(f.source.pod, 'rebel-base-r');
      assert.match(formatFlow(f), / to-endpoint FORWARDED$/);
    } finally {
      dp.close();
    }
  });
});

// ---------------------------------------------------------------------------------------
// /v1/flows and `clustermesh observe`
// ---------------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function apiSources(flows: FlowLog | undefined): Parameters<typeof startAgentApi>[1] {
  return {
    views: newAgentViews({
      clusterName: 'cluster1',
      log: silentLogger,
      services: new ServiceTable('cluster1'),
    }),
    clustermeshStatus: () => ({}),
    agentStatus: () => ({}),
    metrics: () => Promise.resolve({ contentType: 'text/plain', body: '' }),
    healthy: () => true,
    flows,
  };
}

function run(...argv: string[]): Promise<CapturedRun> {
  return runCliCaptured(argv);
}

function forwarded(
  node: string,
  from: string,
  srcCluster: string,
  backendCluster: string,
): FlowRecord {
  return {
    node,
    verdict: 'FORWARDED',
    protocol: 'TCP',
    direction: 'egress',
    source: {
      ip: from,
      port: 41234,
      cluster: srcCluster,
      namespace: 'default',
      pod: 'x-wing',
      identity: 65792,
    },
    destination: { ip: '127.204.128.1', port: 80 },
    service: { namespace: 'default', name: 'rebel-base', frontend: '127.204.128.1:80/TCP' },
    backend: {
      ip: '127.205.1.3',
      port: 80,
      cluster: backendCluster,
      namespace: 'default',
      pod: 'rebel-base-r',
      identity: 131328,
    },
  };
}

void describe('/v1/flows and clustermesh observe', () => {
  const log1 = new FlowLog();
  const log2 = new FlowLog();
  let api1: RunningHttpServer;
  let api2: RunningHttpServer;
  let bare: RunningHttpServer;
  let dir: string;
  let stateDir: string;

  before(async () => {
    api1 = await startAgentApi('127.204.200.1:0', apiSources(log1));
    api2 = await startAgentApi('127.204.200.2:0', apiSources(log2));
    bare = await startAgentApi('127.204.200.3:0', apiSources(undefined));
    dir = await mkdtemp(join(tmpdir(), 'datapath-observe-'));
    stateDir = join(dir, 'state');
    const cluster = (name: string, id: number, api: string): unknown => ({
      name,
      id,
      kvstore: `memory://${name}`,
      dns: `127.204.128.10:53`,
      podCIDR: `127.${203 + id}.0.0/17`,
      serviceCIDR: `127.${203 + id}.128.0/17`,
      agents: [
        { node: `${name}-node1`, ip: `127.${203 + id}.0.1`, podCIDR: '127.204.1.0/24', api },
      ],
    });
    await mkdirState(stateDir, {
      version: 1,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      kvstore: 'memory',
      kvstoremesh: false,
      control: 'http://127.204.200.9:1',
      clusters: [cluster('cluster1', 1, api1.url), cluster('cluster2', 2, api2.url)],
    });
    // Interleaved in time across the two agents.
    log1.record(forwarded('cluster1-node1', '127.204.2.5', 'cluster1', 'cluster2'));
    await sleep(3);
    log2.record(forwarded('cluster2-node1', '127.205.2.5', 'cluster2', 'cluster2'));
    await sleep(3);
    log1.record({
      ...forwarded('cluster1-node1', '127.204.2.6', 'cluster1', 'cluster1'),
      verdict: 'DROPPED',
      dropReason: 'no backends',
      backend: undefined,
    });
  });

  after(async () => {
    await api1.close();
    await api2.close();
    await bare.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function mkdirState(path: string, state: unknown): Promise<void> {
    await mkdir(path, { recursive: true });
    await writeFile(join(path, 'mesh.json'), JSON.stringify(state));
  }

  it('serves pages of flows with a cursor', async () => {
    const get = async (base: string, q: string): Promise<unknown> => {
      const res = await fetch(`${base}/v1/flows${q}`);
      return { status: res.status, body: await res.json() };
    };
    const all = (await get(api1.url, '')) as {
      status: number;
      body: { flows: Flow[]; next: number };
    };
    assert.equal(all.status, 200);
    assert.deepEqual(
      all.body.flows.map((f) => f.seq),
      [1, 2],
    );
    assert.equal(all.body.next, 2);
    const after1 = (await get(api1.url, '?since=1&limit=5')) as { body: { flows: Flow[] } };
    assert.deepEqual(
      after1.body.flows.map((f) => f.verdict),
      ['DROPPED'],
    );
    assert.deepEqual(await get(bare.url, '?since=3'), {
      status: 200,
      body: { flows: [], next: 0 },
    });
    assert.equal(((await get(api1.url, '?limit=x')) as { status: number }).status, 400);
  });

  it('observe -o json merges every agent of mesh.json by time', async () => {
    const r = await run('-o', 'json', 'observe', '--state-dir', stateDir);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    const flows = JSON.parse(r.stdout) as Flow[];
    assert.deepEqual(
      flows.map((f) => [f.node, f.source.ip, f.verdict]),
      [
        ['cluster1-node1', '127.204.2.5', 'FORWARDED'],
        ['cluster2-node1', '127.205.2.5', 'FORWARDED'],
        ['cluster1-node1', '127.204.2.6', 'DROPPED'],
      ],
    );
    const last1 = JSON.parse(
      (await run('-o', 'json', 'observe', '--state-dir', stateDir, '--last', '1')).stdout,
    ) as Flow[];
    assert.deepEqual(
      last1.map((f) => f.source.ip),
      ['127.204.2.6'],
    );
    const c2 = JSON.parse(
      (await run('-o', 'json', 'observe', '--state-dir', stateDir, '--cluster', 'cluster2')).stdout,
    ) as Flow[];
    assert.deepEqual(
      c2.map((f) => f.node),
      ['cluster2-node1'],
    );
  });

  it('prints Hubble-like lines', async () => {
    const r = await run('observe', '--state-dir', stateDir);
    assert.equal(r.code, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 3);
    assert.match(
      lines[0] ?? '',
      /^[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d\.\d{3} \[cluster1-node1\] default\/x-wing\(cluster1, 65792\) 127\.204\.2\.5:41234 -> default\/rebel-base \(127\.204\.128\.1:80\) => default\/rebel-base-r\(cluster2, 131328\) 127\.205\.1\.3:80 FORWARDED$/,
    );
    assert.match(
      lines[2] ?? '',
      /-> default\/rebel-base \(127\.204\.128\.1:80\) DROPPED \(no backends\)$/,
    );
  });

  it('reads one agent with -H, filtered by cluster', async () => {
    const r = await run('-H', api1.url, '-o', 'json', 'observe', '--cluster', 'cluster2');
    assert.equal(r.code, 0);
    assert.deepEqual(
      (JSON.parse(r.stdout) as Flow[]).map((f) => f.source.ip),
      ['127.204.2.5'],
    );
  });

  it('follows new flows until aborted', async () => {
    let out = '';
    const ac = new AbortController();
    const done = observeFlows({
      host: api2.url,
      stateDir,
      last: 0,
      follow: true,
      output: 'json',
      io: { stdout: (s) => (out += s), stderr: () => undefined },
      signal: ac.signal,
      pollMs: 20,
    });
    // A flow recorded before the follower's first read is history (`last: 0` prints none of
    // it), and on a loaded machine that first read can come late: record a new flow each
    // round until one is printed; the ones printed must be exactly new flows, in order.
    const sent: string[] = [];
    try {
      await until(
        () => {
          if (out !== '') return true;
          const ip = `127.205.2.${String(7 + sent.length)}`;
          sent.push(ip);
          log2.record(forwarded('cluster2-node1', ip, 'cluster2', 'cluster2'));
          return false;
        },
        { timeoutMs: 20_000, intervalMs: 250, message: 'a new flow' },
      );
      await sleep(300);
    } finally {
      ac.abort();
      await done;
    }
    const printed = out
      .trimEnd()
      .split('\n')
      .map((l) => (JSON.parse(l) as Flow).source.ip);
    assert.ok(printed.length > 0, 'a flow was printed');
    assert.deepEqual(printed, sent.slice(sent.length - printed.length), 'only new flows, in order');
  });

  it('fails with one line when no mesh runs or the cluster is unknown', async () => {
    const none = await run('observe', '--state-dir', join(dir, 'nothing'));
    assert.equal(none.code, 1);
    assert.match(none.stderr, /^clustermesh: no running mesh: .*mesh\.json not found.*\n$/);
    const unknown = await run('observe', '--state-dir', stateDir, '--cluster', 'cluster9');
    assert.equal(unknown.code, 1);
    assert.match(
      unknown.stderr,
      /^clustermesh: cluster "cluster9" is not part of the running mesh/,
    );
    const bad = await run('observe', '--last', '-1');
    assert.equal(bad.code, 2);
  });
});
