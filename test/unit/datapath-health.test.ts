/**
 * Health-aware failover of the userspace datapath with real sockets: passive ejection
 * after failed connections, active TCP probes, one retry on another backend, fail open
 * when every backend is down, and health shown next to the state. Addresses stay in
 * 127.206/16; other suites use other loopback ranges concurrently.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, get, type Server } from 'node:http';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { BACKEND_UNHEALTHY, NodeDatapath } from '../../src/datapath/datapath.js';
import {
  BackendHealth,
  isHealthProbe,
  isHealthProbeConnection,
} from '../../src/datapath/health.js';
import { ServiceProxy } from '../../src/datapath/service-proxy.js';
import { IPCache } from '../../src/ipcache/ipcache.js';
import {
  makeClusterService,
  type PortConfiguration,
  type ServiceAffinity,
} from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { ServiceTable } from '../../src/service/table.js';
import { until } from '../support/eventually.js';
import { freePort } from '../support/ports.js';

const LOCAL = 'cluster1';
const REMOTE = 'cluster2';
const NODE_IP = '127.206.0.1';
const CLIENT_IP = '127.206.2.5';
const LOCAL_BACKENDS = ['127.206.1.1', '127.206.1.2'];
const REMOTE_BACKENDS = ['127.206.9.1', '127.206.9.2'];

let backendPort = 0;
let frontendPort = 0;
const servers = new Map<string, Server>();

async function startBackend(ip: string): Promise<void> {
  const server = createHttpServer((_req, res) => {
    res.end(ip);
  });
  await new Promise<void>((resolve) => server.listen(backendPort, ip, resolve));
  servers.set(ip, server);
}

/** Abrupt death: no new connections, established ones reset. */
async function killBackend(ip: string): Promise<void> {
  const s = servers.get(ip);
  if (s === undefined) return;
  servers.delete(ip);
  s.closeAllConnections();
  await new Promise<void>((resolve) => s.close(() => resolve()));
}

before(async () => {
  backendPort = await freePort('127.206.1.1');
  frontendPort = await freePort('127.206.128.1');
});

after(async () => {
  for (const ip of [...servers.keys()]) await killBackend(ip);
});

const ports = (port: number): PortConfiguration => ({ http: { Protocol: 'TCP', Port: port } });
const backendsOf = (ips: readonly string[]): Record<string, PortConfiguration> =>
  Object.fromEntries(ips.map((ip) => [ip, ports(backendPort)]));
const address = (ip: string): string => `${ip}:${backendPort}/TCP`;

function service(table: ServiceTable, cip: string, affinity: ServiceAffinity): void {
  table.upsertLocal({
    service: makeClusterService({
      cluster: LOCAL,
      clusterID: 1,
      namespace: 'default',
      name: 'rebel-base',
      frontends: { [cip]: ports(frontendPort) },
      backends: backendsOf(LOCAL_BACKENDS),
      includeExternal: true,
      shared: true,
    }),
    global: true,
    affinity,
    type: 'ClusterIP',
  });
  table.upsertRemote(
    makeClusterService({
      cluster: REMOTE,
      clusterID: 2,
      namespace: 'default',
      name: 'rebel-base',
      frontends: { '127.206.200.1': ports(frontendPort) },
      backends: backendsOf(REMOTE_BACKENDS),
      includeExternal: true,
      shared: true,
    }),
  );
}

interface Fixture {
  readonly dp: NodeDatapath;
  readonly proxy: ServiceProxy;
  close(): Promise<void>;
}

async function fixture(
  cip: string,
  affinity: ServiceAffinity,
  health: ConstructorParameters<typeof NodeDatapath>[0]['health'],
): Promise<Fixture> {
  const table = new ServiceTable(LOCAL);
  service(table, cip, affinity);
  const dp = new NodeDatapath({
    cluster: LOCAL,
    node: { name: 'node1', ip: NODE_IP },
    services: table,
    ipcache: new IPCache(),
    log: silentLogger,
    health,
  });
  const proxy = new ServiceProxy({
    cluster: LOCAL,
    frontends: dp.lb,
    route: () => dp,
    log: silentLogger,
    connectTimeoutMs: 1000,
  });
  await proxy.start();
  return {
    dp,
    proxy,
    close: async () => {
      await proxy.stop();
      dp.close();
    },
  };
}

/** GET / through the ClusterIP; resolves to the backend that answered. */
function request(cip: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get(
      { host: cip, port: frontendPort, path: '/', localAddress: CLIENT_IP, agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          resolve(body);
        });
        res.on('error', reject);
      },
    );
    req.setTimeout(3000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

async function requests(cip: string, n: number): Promise<{ ok: Set<string>; failed: number }> {
  const ok = new Set<string>();
  let failed = 0;
  const results = await Promise.allSettled(Array.from({ length: n }, () => request(cip)));
  for (const r of results) {
    if (r.status === 'fulfilled') ok.add(r.value);
    else failed++;
  }
  return { ok, failed };
}

function selection(dp: NodeDatapath, cip: string): string[] {
  const f = dp.frontendOf(cip, frontendPort);
  assert.ok(f !== undefined, 'f !== undefined');
  return f.lb.selectionSet().map((b) => b.address);
}

void describe('BackendHealth', () => {
  it('ejects after consecutive failed connections, for the back-off period', async () => {
    const h = new BackendHealth({
      log: silentLogger,
      probeIntervalMs: 0,
      ejectAfterFailures: 2,
      ejectBackoffMs: 150,
    });
    const changes: string[] = [];
    h.onChange((a, healthy) => changes.push(`${a}=${String(healthy)}`));
    try {
      h.setTargets([{ address: 'a', ip: '127.206.3.1', port: 1 }]);
      h.reportFailure('a', 'ECONNREFUSED');
      assert.equal(h.isHealthy('a'), true, 'one failure is below the threshold');
      h.reportSuccess('a');
      h.reportFailure('a', 'ECONNREFUSED');
      assert.equal(h.isHealthy('a'), true, 'a success resets the count');
      h.reportFailure('a', 'ECONNRESET');
      assert.equal(h.healthOf('a'), 'unhealthy');
      assert.equal(h.stats.ejections, 1);
      await until(() => h.isHealthy('a'), { timeoutMs: 2000 });
      assert.deepEqual(changes, ['a=false', 'a=true']);
      assert.equal(h.isHealthy('unknown'), true, 'unknown backends are healthy');
    } finally {
      h.close();
    }
  });

  it('probes: a dead backend is down within two periods, back on the first passing probe', async () => {
    const live = '127.206.4.1';
    const dead = '127.206.4.2';
    await startBackend(live);
    const h = new BackendHealth({
      log: silentLogger,
      sourceIP: NODE_IP,
      probeIntervalMs: 50,
      probeTimeoutMs: 200,
      probeFailures: 2,
    });
    try {
      h.setTargets([
        { address: 'live', ip: live, port: backendPort },
        { address: 'dead', ip: dead, port: backendPort },
      ]);
      const t0 = Date.now();
      await until(() => !h.isHealthy('dead'), { timeoutMs: 2000 });
      assert.ok(Date.now() - t0 < 1000, `down after ${Date.now() - t0} ms`);
      assert.equal(h.isHealthy('live'), true);
      await startBackend(dead);
      await until(() => h.isHealthy('dead'), { timeoutMs: 2000 });
      await killBackend(live);
      await until(() => !h.isHealthy('live'), { timeoutMs: 2000 });
      // Forgotten targets stop being probed and count as healthy.
      h.setTargets([{ address: 'dead', ip: dead, port: backendPort }]);
      assert.equal(h.isHealthy('live'), true);
    } finally {
      h.close();
      await killBackend(live);
      await killBackend(dead);
    }
  });

  it('marks its own probes so the workload runtime does not record them as flows', async () => {
    const ip = '127.206.5.1';
    let seen = false;
    const server = createHttpServer();
    server.on('connection', (s) => {
      if (isHealthProbe(NODE_IP, ip, backendPort)) seen = true;
      s.destroy();
    });
    await new Promise<void>((resolve) => server.listen(backendPort, ip, resolve));
    const h = new BackendHealth({ log: silentLogger, sourceIP: NODE_IP, probeIntervalMs: 30 });
    try {
      h.setTargets([{ address: 'x', ip, port: backendPort }]);
      await until(() => seen, { timeoutMs: 2000 });
      assert.equal(isHealthProbe('127.206.2.5', ip, backendPort), false);

      // Other traffic of the node shares the probe's address, not its source port.
      const verdicts: boolean[] = [];
      server.removeAllListeners('connection');
      server.on('connection', (s) => {
        const peer = s.remotePort ?? 0;
        setImmediate(() => {
          verdicts.push(isHealthProbeConnection(NODE_IP, peer, ip, backendPort));
        });
        s.destroy();
      });
      await until(() => verdicts.includes(true), { timeoutMs: 2000 });
      h.close();
      const own = connect({ host: ip, port: backendPort, localAddress: NODE_IP });
      own.on('error', () => undefined);
      const count = verdicts.length;
      await until(() => verdicts.length > count, { timeoutMs: 2000 });
      assert.equal(verdicts.at(-1), false, 'a connection of the node that is not a probe');
    } finally {
      h.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});

void describe('health-aware failover through the service proxy', () => {
  it('a backend that dies abruptly: no request fails (retry), it is ejected, and comes back', async () => {
    const cip = '127.206.128.1';
    for (const ip of [...LOCAL_BACKENDS, ...REMOTE_BACKENDS]) await startBackend(ip);
    // Probes slow enough that the passive path is what the first requests meet.
    const fx = await fixture(cip, 'none', { probeIntervalMs: 2000, ejectBackoffMs: 60_000 });
    try {
      const before = await requests(cip, 40);
      assert.equal(before.failed, 0);
      assert.equal(before.ok.size, 4);

      const victim = REMOTE_BACKENDS[0] ?? '';
      await killBackend(victim);
      const during = await requests(cip, 60);
      assert.equal(during.failed, 0, 'the retry covers the connections that met the dead backend');
      assert.ok(!during.ok.has(victim), '!during.ok.has(victim)');
      assert.equal(fx.dp.backendHealth(address(victim)), 'unhealthy');
      assert.ok(
        !selection(fx.dp, cip).includes(address(victim)),
        '!selection(fx.dp, cip).includes(address(victim))',
      );
      assert.ok(fx.proxy.stats.retried >= 1, 'fx.proxy.stats.retried >= 1');
      const drops = fx.dp.flows.list().flows.filter((f) => f.dropReason === BACKEND_UNHEALTHY);
      const drop = drops[0];
      assert.ok(drop !== undefined, 'drop !== undefined');
      assert.equal(drop.error, 'ECONNREFUSED');
      assert.equal(drop.backend?.ip, victim);

      // Back: the first passing probe lifts the ejection.
      await startBackend(victim);
      await until(() => fx.dp.backendHealth(address(victim)) === 'healthy', { timeoutMs: 5000 });
      assert.ok(
        selection(fx.dp, cip).includes(address(victim)),
        'selection(fx.dp, cip).includes(address(victim))',
      );
    } finally {
      await fx.close();
      for (const ip of [...LOCAL_BACKENDS, ...REMOTE_BACKENDS]) await killBackend(ip);
    }
  });

  it('probes alone steer new connections away within about a second', async () => {
    const cip = '127.206.128.2';
    for (const ip of [...LOCAL_BACKENDS, ...REMOTE_BACKENDS]) await startBackend(ip);
    const fx = await fixture(cip, 'none', { probeIntervalMs: 200, probeTimeoutMs: 200 });
    try {
      await requests(cip, 8);
      const t0 = Date.now();
      for (const ip of REMOTE_BACKENDS) await killBackend(ip);
      await until(
        () => selection(fx.dp, cip).every((a) => LOCAL_BACKENDS.some((ip) => a === address(ip))),
        { timeoutMs: 3000 },
      );
      const ms = Date.now() - t0;
      assert.ok(ms < 1000, `remote backends avoided after ${ms} ms`);
      const after = await requests(cip, 20);
      assert.equal(after.failed, 0);
      assert.equal(fx.proxy.stats.retried, 0, 'no connection met a dead backend');
    } finally {
      await fx.close();
      for (const ip of [...LOCAL_BACKENDS, ...REMOTE_BACKENDS]) await killBackend(ip);
    }
  });

  it('affinity applies to the healthy backends: preferred healthy first, then the others', async () => {
    const cip = '127.206.128.3';
    for (const ip of [...LOCAL_BACKENDS, ...REMOTE_BACKENDS]) await startBackend(ip);
    const fx = await fixture(cip, 'local', { probeIntervalMs: 100, probeTimeoutMs: 200 });
    try {
      assert.deepEqual(selection(fx.dp, cip), LOCAL_BACKENDS.map(address));
      // One preferred backend down: the other preferred one takes everything.
      await killBackend(LOCAL_BACKENDS[0] ?? '');
      await until(() => selection(fx.dp, cip).length === 1, { timeoutMs: 3000 });
      assert.deepEqual(selection(fx.dp, cip), [address(LOCAL_BACKENDS[1] ?? '')]);
      // No preferred backend healthy: the remote (healthy) ones.
      await killBackend(LOCAL_BACKENDS[1] ?? '');
      await until(() => selection(fx.dp, cip).every((a) => a.startsWith('127.206.9.')), {
        timeoutMs: 3000,
      });
      assert.deepEqual(selection(fx.dp, cip), REMOTE_BACKENDS.map(address));
      const r = await requests(cip, 10);
      assert.equal(r.failed, 0);
      assert.deepEqual([...r.ok].sort(), REMOTE_BACKENDS);
      // A preferred backend back: it takes the new flows again.
      await startBackend(LOCAL_BACKENDS[0] ?? '');
      await until(() => selection(fx.dp, cip).length === 1, { timeoutMs: 3000 });
      assert.deepEqual(selection(fx.dp, cip), [address(LOCAL_BACKENDS[0] ?? '')]);
    } finally {
      await fx.close();
      for (const ip of [...LOCAL_BACKENDS, ...REMOTE_BACKENDS]) await killBackend(ip);
    }
  });

  it('fails open when every backend is unhealthy: new connections still try them', async () => {
    const cip = '127.206.128.4';
    const fx = await fixture(cip, 'none', { probeIntervalMs: 100, probeTimeoutMs: 200 });
    try {
      const all = [...LOCAL_BACKENDS, ...REMOTE_BACKENDS];
      await until(() => all.every((ip) => fx.dp.backendHealth(address(ip)) === 'unhealthy'), {
        timeoutMs: 3000,
      });
      assert.equal(selection(fx.dp, cip).length, 4, 'all of them, not none');
      // The first backend back answers at once, before any probe has noticed.
      await startBackend(REMOTE_BACKENDS[1] ?? '');
      const r = await requests(cip, 10);
      assert.ok(r.ok.size > 0, 'some connections reach the live backend');
    } finally {
      await fx.close();
      await killBackend(REMOTE_BACKENDS[1] ?? '');
    }
  });

  it('without health checking every backend counts as healthy', async () => {
    const cip = '127.206.128.5';
    const fx = await fixture(cip, 'none', false);
    try {
      assert.equal(fx.dp.health, undefined);
      assert.equal(fx.dp.backendHealth(address(LOCAL_BACKENDS[0] ?? '')), 'healthy');
      assert.equal(selection(fx.dp, cip).length, 4);
    } finally {
      await fx.close();
    }
  });
});
