/**
 * The userspace datapath with real sockets: ServiceProxy listening on ClusterIPs,
 * NodeDatapath translating to local (127.204.1.x) and "remote cluster" (127.205.1.x)
 * backends, flows recorded on the client's node. Addresses stay in 127.204/16 and
 * 127.205/16; other suites use other loopback ranges concurrently.
 */
import assert from 'node:assert/strict';
import { createServer as createHttpServer, get, type Server as HttpServer } from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { NodeDatapath } from '../../src/datapath/datapath.js';
import type { Flow } from '../../src/datapath/flows.js';
import { ServiceProxy } from '../../src/datapath/service-proxy.js';
import { IdentityCache } from '../../src/identity/cache.js';
import { IPCache } from '../../src/ipcache/ipcache.js';
import {
  makeClusterService,
  parseLabel,
  type PortConfiguration,
  type ServiceAffinity,
} from '../../src/keyspace/index.js';
import { silentLogger } from '../../src/lib/logger.js';
import { ServiceTable } from '../../src/service/table.js';
import { until } from '../support/eventually.js';
import { freePort } from '../support/ports.js';

const LOCAL = 'cluster1';
const REMOTE = 'cluster2';
const CLIENT_ID = 65792; // cluster 1, local identity 256
const LOCAL_BACKEND_ID = 65793;
const REMOTE_BACKEND_ID = 131328; // cluster 2, local identity 256
const CLIENT_IP = '127.204.2.5'; // a pod of node1
const CLIENT2_IP = '127.204.3.5'; // a pod of node2
const LOCAL_BACKENDS = ['127.204.1.1', '127.204.1.2'];
const REMOTE_BACKENDS = ['127.205.1.1', '127.205.1.2'];
const ALL_BACKENDS = [...LOCAL_BACKENDS, ...REMOTE_BACKENDS];
const ECHO_IP = '127.204.1.20';
const DEAD_IP = '127.204.1.99';

let backendPort = 0;
let frontendPort = 0;
const servers: (HttpServer | Server)[] = [];

/** Each backend answers `<its ip> <the client address it sees> <and port>`. */
async function startBackend(ip: string): Promise<void> {
  const server = createHttpServer((req, res) => {
    res.end(`${ip} ${req.socket.remoteAddress ?? '?'} ${String(req.socket.remotePort)}`);
  });
  await new Promise<void>((resolve) => server.listen(backendPort, ip, resolve));
  servers.push(server);
}

/** A raw TCP backend that answers only once the client has half-closed. */
async function startEchoOnEnd(ip: string): Promise<void> {
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (c: Buffer) => chunks.push(c));
    s.on('end', () => {
      s.end(`got:${Buffer.concat(chunks).toString()}`);
    });
    s.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(backendPort, ip, resolve));
  servers.push(server);
}

before(async () => {
  backendPort = await freePort('127.204.1.1');
  frontendPort = await freePort('127.204.128.1');
  for (const ip of ALL_BACKENDS) await startBackend(ip);
  await startEchoOnEnd(ECHO_IP);
});

after(async () => {
  for (const s of servers) {
    if ('closeAllConnections' in s) s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
  }
});

const ports = (port: number): PortConfiguration => ({ http: { Protocol: 'TCP', Port: port } });

function backendsOf(ips: readonly string[]): Record<string, PortConfiguration> {
  return Object.fromEntries(ips.map((ip) => [ip, ports(backendPort)]));
}

function upsertLocal(
  table: ServiceTable,
  name: string,
  clusterIP: string,
  backends: readonly string[],
  affinity: ServiceAffinity = 'none',
): void {
  table.upsertLocal({
    service: makeClusterService({
      cluster: LOCAL,
      clusterID: 1,
      namespace: 'default',
      name,
      frontends: { [clusterIP]: ports(frontendPort) },
      backends: backendsOf(backends),
      includeExternal: true,
      shared: true,
    }),
    global: true,
    affinity,
    type: 'ClusterIP',
  });
}

function upsertRemote(table: ServiceTable, name: string, backends: readonly string[]): void {
  table.upsertRemote(
    makeClusterService({
      cluster: REMOTE,
      clusterID: 2,
      namespace: 'default',
      name,
      frontends: { '127.205.128.1': ports(frontendPort) },
      backends: backendsOf(backends),
      includeExternal: true,
      shared: true,
    }),
  );
}

interface Fixture {
  readonly table: ServiceTable;
  readonly node1: NodeDatapath;
  readonly node2: NodeDatapath;
  readonly proxy: ServiceProxy;
  close(): Promise<void>;
}

function ipcacheWithPods(): IPCache {
  const ipcache = new IPCache();
  const pod = (ip: string, cluster: string, identity: number, name: string): void => {
    ipcache.upsert({
      cidr: `${ip}/32`,
      identity,
      hostIP: cluster === LOCAL ? '127.204.0.1' : '127.205.0.1',
      encryptKey: 0,
      cluster,
      k8sNamespace: 'default',
      k8sPodName: name,
      source: cluster === LOCAL ? 'local' : 'clustermesh',
    });
  };
  pod(CLIENT_IP, LOCAL, CLIENT_ID, 'x-wing');
  pod(CLIENT2_IP, LOCAL, CLIENT_ID, 'x-wing-2');
  LOCAL_BACKENDS.forEach((ip, i) => {
    pod(ip, LOCAL, LOCAL_BACKEND_ID, `rebel-base-${i}`);
  });
  REMOTE_BACKENDS.forEach((ip, i) => {
    pod(ip, REMOTE, REMOTE_BACKEND_ID, `rebel-base-remote-${i}`);
  });
  return ipcache;
}

/** Two nodes of cluster1 sharing one service table; the proxy routes 127.204.3.x to node2. */
async function fixture(setup: (table: ServiceTable) => void): Promise<Fixture> {
  const table = new ServiceTable(LOCAL);
  setup(table);
  const ipcache = ipcacheWithPods();
  const identities = new IdentityCache();
  identities.upsert(CLIENT_ID, [parseLabel('k8s:app=x-wing')], LOCAL);
  const common = { cluster: LOCAL, services: table, ipcache, identities, log: silentLogger };
  const node1 = new NodeDatapath({ ...common, node: { name: 'node1', ip: '127.204.0.1' } });
  const node2 = new NodeDatapath({ ...common, node: { name: 'node2', ip: '127.204.0.2' } });
  const proxy = new ServiceProxy({
    cluster: LOCAL,
    frontends: node1.lb,
    route: (ip) => (ip.startsWith('127.204.3.') ? node2 : node1),
    log: silentLogger,
    bindRetryMs: 50,
  });
  await proxy.start();
  return {
    table,
    node1,
    node2,
    proxy,
    close: async () => {
      await proxy.stop();
      node1.close();
      node2.close();
    },
  };
}

/**
 * GET / through `ip`; resolves to `[backend, source seen by the backend, whether the
 * backend saw the client's own source port]`.
 */
function request(ip: string, from: string | null = CLIENT_IP): Promise<[string, string, boolean]> {
  return new Promise((resolve, reject) => {
    const req = get(
      {
        host: ip,
        port: frontendPort,
        path: '/',
        localAddress: from ?? undefined,
        agent: false,
        timeout: 5000,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const [backend = '', source = '', port = ''] = body.split(' ');
          resolve([backend, source, Number(port) === localPort]);
        });
        res.on('error', reject);
      },
    );
    let localPort = -1;
    req.on('socket', (sock) => {
      sock.once('connect', () => {
        localPort = sock.localPort ?? -1;
      });
    });
    req.on('timeout', () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
  });
}

async function requestError(ip: string): Promise<string> {
  try {
    await request(ip);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
  return 'no error';
}

async function spread(ip: string, n: number): Promise<Map<string, number>> {
  const counts = new Map<string, number>();
  for (let i = 0; i < n; i += 10) {
    const batch = await Promise.all(Array.from({ length: Math.min(10, n - i) }, () => request(ip)));
    for (const [backend] of batch) counts.set(backend, (counts.get(backend) ?? 0) + 1);
  }
  return counts;
}

function lastFlow(dp: NodeDatapath): Flow {
  const { flows } = dp.flows.list({ limit: 1 });
  const f = flows[0];
  assert.ok(f !== undefined, 'no flow recorded');
  return f;
}

void describe('ServiceProxy + NodeDatapath', () => {
  it('forwards a pod connection to a backend, which sees the pod IP, and records the flow', async () => {
    const cip = '127.204.128.1';
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS);
      upsertRemote(t, 'rebel-base', REMOTE_BACKENDS);
    });
    try {
      assert.deepEqual(fx.proxy.bound(), [`${cip}:${frontendPort}/TCP`]);
      const [backend, source, samePort] = await request(cip);
      assert.ok(ALL_BACKENDS.includes(backend), backend);
      assert.equal(source, CLIENT_IP);
      assert.ok(samePort, 'the upstream keeps the client port');
      assert.equal(fx.proxy.stats.sourceFallbacks, 0);

      const f = lastFlow(fx.node1);
      assert.equal(f.verdict, 'FORWARDED');
      assert.equal(f.direction, 'egress');
      assert.equal(f.node, 'node1');
      assert.deepEqual(
        { ...f.source, port: 0 },
        {
          ip: CLIENT_IP,
          port: 0,
          cluster: LOCAL,
          namespace: 'default',
          pod: 'x-wing',
          identity: CLIENT_ID,
          labels: ['k8s:app=x-wing'],
        },
      );
      assert.deepEqual(f.destination, { ip: cip, port: frontendPort });
      assert.deepEqual(f.service, {
        namespace: 'default',
        name: 'rebel-base',
        frontend: `${cip}:${frontendPort}/TCP`,
      });
      const remote = backend.startsWith('127.205.');
      const b = f.backend;
      assert.ok(b !== undefined, 'b !== undefined');
      assert.equal(b.ip, backend);
      assert.equal(b.port, backendPort);
      assert.equal(b.cluster, remote ? REMOTE : LOCAL);
      assert.equal(b.identity, remote ? REMOTE_BACKEND_ID : LOCAL_BACKEND_ID);
      assert.match(b.pod ?? '', /^rebel-base-/);
      assert.equal(fx.node2.flows.lastSeq, 0, 'node2 saw nothing');

      // A pod of node2: its own node records the flow.
      const [, source2] = await request(cip, CLIENT2_IP);
      assert.equal(source2, CLIENT2_IP);
      assert.equal(lastFlow(fx.node2).source.pod, 'x-wing-2');
    } finally {
      await fx.close();
    }
  });

  it('spreads 100 connections over every backend of both clusters', async () => {
    const cip = '127.204.128.2';
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS);
      upsertRemote(t, 'rebel-base', REMOTE_BACKENDS);
    });
    try {
      const counts = await spread(cip, 100);
      assert.deepEqual([...counts.keys()].sort(), [...ALL_BACKENDS].sort());
      assert.equal(fx.node1.flows.forwarded, 100);
      assert.equal(fx.proxy.stats.forwarded, 100);
    } finally {
      await fx.close();
    }
  });

  it('honours affinity local until the local backends are gone, then uses remote ones', async () => {
    const cip = '127.204.128.3';
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS, 'local');
      upsertRemote(t, 'rebel-base', REMOTE_BACKENDS);
    });
    try {
      const local = await spread(cip, 30);
      assert.deepEqual([...local.keys()].sort(), LOCAL_BACKENDS);
      upsertLocal(fx.table, 'rebel-base', cip, [], 'local');
      const remote = await spread(cip, 30);
      assert.deepEqual([...remote.keys()].sort(), REMOTE_BACKENDS);
    } finally {
      await fx.close();
    }
  });

  it('sends no new connection to a backend removed from the table', async () => {
    const cip = '127.204.128.4';
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS);
      upsertRemote(t, 'rebel-base', REMOTE_BACKENDS);
    });
    try {
      upsertLocal(fx.table, 'rebel-base', cip, ['127.204.1.2']);
      const counts = await spread(cip, 40);
      assert.equal(counts.get('127.204.1.1'), undefined);
      assert.deepEqual([...counts.keys()].sort(), ['127.204.1.2', ...REMOTE_BACKENDS].sort());
    } finally {
      await fx.close();
    }
  });

  it('binds a new service and refuses connections once it is removed', async () => {
    const cip = '127.204.128.5';
    const added = '127.204.128.6';
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS);
    });
    try {
      assert.equal(await requestError(added), 'ECONNREFUSED');
      upsertLocal(fx.table, 'tie-fighter', added, ['127.204.1.2']);
      await fx.proxy.settled();
      assert.deepEqual((await request(added)).slice(0, 2), ['127.204.1.2', CLIENT_IP]);
      assert.equal(lastFlow(fx.node1).service?.name, 'tie-fighter');

      fx.table.deleteLocal('default', 'tie-fighter');
      assert.equal(await requestError(added), 'ECONNREFUSED');
      assert.deepEqual(fx.proxy.bound(), [`${cip}:${frontendPort}/TCP`]);
      // The other service is untouched.
      assert.equal((await request(cip))[1], CLIENT_IP);
    } finally {
      await fx.close();
    }
  });

  it('leaves a frontend served by its own address to that server (kube-dns on the DNS server), and takes it back once it is not', async () => {
    const cip = '127.204.128.8';
    const key = `${cip}:${frontendPort}/TCP`;
    const selfBacked = (backends: Record<string, PortConfiguration>): void => {
      fx.table.upsertLocal({
        service: makeClusterService({
          cluster: LOCAL,
          clusterID: 1,
          namespace: 'kube-system',
          name: 'kube-dns',
          frontends: { [cip]: ports(frontendPort) },
          backends,
          includeExternal: true,
          shared: true,
        }),
        global: false,
        affinity: 'none',
        type: 'ClusterIP',
      });
    };
    const fx = await fixture(() => undefined);
    // The server listens on the ClusterIP itself, as the cluster DNS server does.
    const own = createHttpServer((_req, res) => res.end(`own ${cip}`));
    await new Promise<void>((resolve) => own.listen(frontendPort, cip, resolve));
    try {
      selfBacked({ [cip]: ports(frontendPort) });
      await fx.proxy.settled();
      assert.ok(!fx.proxy.bound().includes(key), 'no proxy on a self-served address');
      assert.equal((await request(cip))[0], 'own');
      assert.equal(fx.proxy.stats.bindFailures, 0);
      // Another backend: the address is a real frontend again, so the proxy wants it.
      await new Promise<void>((resolve) => own.close(() => resolve()));
      selfBacked({ [cip]: ports(frontendPort), ...backendsOf(['127.204.1.1']) });
      await fx.proxy.settled();
      await until(() => fx.proxy.bound().includes(key), { timeoutMs: 5000, message: 'bound' });
      // Served by its own address again: the proxy lets go of it.
      selfBacked({ [cip]: ports(frontendPort) });
      await fx.proxy.settled();
      assert.ok(!fx.proxy.bound().includes(key), 'released once self-served again');
    } finally {
      if (own.listening) await new Promise<void>((resolve) => own.close(() => resolve()));
      await fx.close();
    }
  });

  it('resets a connection to a service without backends and records DROPPED', async () => {
    const cip = '127.204.128.7';
    const fx = await fixture((t) => {
      upsertLocal(t, 'empty', cip, []);
    });
    try {
      assert.equal(await requestError(cip), 'ECONNRESET');
      const f = lastFlow(fx.node1);
      assert.equal(f.verdict, 'DROPPED');
      assert.equal(f.dropReason, 'no backends');
      assert.equal(f.service?.name, 'empty');
      assert.equal(f.source.pod, 'x-wing');
      assert.equal(f.backend, undefined);
      assert.equal(fx.proxy.stats.dropped, 1);
    } finally {
      await fx.close();
    }
  });

  it('resets a connection whose backend is unreachable and records the error', async () => {
    const cip = '127.204.128.8';
    const fx = await fixture((t) => {
      upsertLocal(t, 'dead', cip, [DEAD_IP]);
    });
    try {
      assert.equal(await requestError(cip), 'ECONNRESET');
      const f = lastFlow(fx.node1);
      assert.equal(f.verdict, 'DROPPED');
      assert.equal(f.dropReason, 'ECONNREFUSED');
      assert.equal(f.backend?.ip, DEAD_IP);
    } finally {
      await fx.close();
    }
  });

  it('serves host traffic (no pod source) as the host identity', async () => {
    const cip = '127.204.128.9';
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS);
    });
    try {
      const [backend, source] = await request(cip, null);
      assert.ok(LOCAL_BACKENDS.includes(backend), 'LOCAL_BACKENDS.includes(backend)');
      const f = lastFlow(fx.node1);
      assert.equal(f.source.ip, source);
      assert.equal(f.source.identity, 1);
      assert.deepEqual(f.source.labels, ['reserved:host']);
    } finally {
      await fx.close();
    }
  });

  it('keeps half-closed connections open for the reply', async () => {
    const cip = '127.204.128.10';
    const fx = await fixture((t) => {
      upsertLocal(t, 'echo', cip, [ECHO_IP]);
    });
    try {
      const reply = await new Promise<string>((resolve, reject) => {
        const s = connect({ host: cip, port: frontendPort, localAddress: CLIENT_IP });
        let got = '';
        s.setEncoding('utf8');
        s.on('data', (c: string) => (got += c));
        s.on('end', () => resolve(got));
        s.on('error', reject);
        s.end('hello');
      });
      assert.equal(reply, 'got:hello');
      await until(() => fx.proxy.stats.sockets === 0, {
        timeoutMs: 5000,
        intervalMs: 20,
        message: 'sockets closed',
      });
    } finally {
      await fx.close();
    }
  });

  it('retries a frontend it could not bind, and closes everything on stop', async () => {
    const cip = '127.204.128.11';
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(frontendPort, cip, resolve));
    const fx = await fixture((t) => {
      upsertLocal(t, 'rebel-base', cip, LOCAL_BACKENDS);
    });
    try {
      assert.deepEqual(fx.proxy.bound(), []);
      assert.ok(fx.proxy.stats.bindFailures >= 1, 'fx.proxy.stats.bindFailures >= 1');
      await new Promise<void>((resolve) => blocker.close(() => resolve()));
      await until(() => fx.proxy.bound().length === 1, {
        timeoutMs: 5000,
        intervalMs: 20,
        message: 'frontend bound',
      });
      assert.equal((await request(cip))[1], CLIENT_IP);

      // A connection held open across stop() is torn down by it.
      const held = connect({ host: cip, port: frontendPort, localAddress: CLIENT_IP });
      const heldClosed = new Promise<void>((resolve) => held.once('close', () => resolve()));
      held.on('error', () => undefined);
      await until(() => fx.proxy.stats.sockets === 2, {
        timeoutMs: 5000,
        intervalMs: 20,
        message: 'held connection proxied',
      });
      await fx.proxy.stop();
      await heldClosed;
      assert.equal(fx.proxy.stats.sockets, 0);
      assert.equal(await requestError(cip), 'ECONNREFUSED');
    } finally {
      await fx.close();
    }
  });
});
