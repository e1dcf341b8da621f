/**
 * Userspace datapath benchmark: HTTP requests through a ClusterIP (ServiceProxy +
 * NodeDatapath: accept, translate, dial the backend from the client's pod IP, record
 * the flow, splice) against the same requests sent directly to the backend pods, in
 * the same run.
 *
 *   npm run bench -- datapath [--seconds 5] [--warmup 1] [--connections 32] [--backends 3]
 *                             [--clients 8] [--rate R]
 *
 * `--clients`: client pod IPs the users send from (each IP has its own ephemeral ports,
 * and new-connection phases leave many in TIME_WAIT). `--rate`: the paced phase, req/s
 * (default: a fifth of the direct keep-alive throughput).
 *
 * This process runs the backends (plain node:http servers on 127.206.1.x) and the
 * proxy; the load generator runs in a child process per phase, so client CPU does not
 * share the proxy's event loop. Phases, in order:
 *   1. keep-alive, closed loop (`--connections` users as fast as they can): direct, then
 *      via ClusterIP; throughput, where the ≥ 50% goal applies;
 *   2. keep-alive, open loop at `--rate`: direct, then via ClusterIP; latency below
 *      saturation, where the ≤ 1 ms added p99 goal applies (at saturation any path's
 *      latency is just connections / throughput, so it measures throughput again);
 *   3. a new connection per request: direct, then via ClusterIP.
 * Direct requests are spread over the same backends (user i → backend i mod n) as the
 * proxy spreads its connections. Per phase: requests/s, p50/p99 latency, and the CPU
 * per request of this process (proxy + backends) and of the load generator.
 */
import { spawn } from 'node:child_process';
import { Agent, createServer, request, type Server } from 'node:http';
import { fileURLToPath } from 'node:url';
import { NodeDatapath } from '../src/datapath/datapath.js';
import { ServiceProxy } from '../src/datapath/service-proxy.js';
import { IPCache } from '../src/ipcache/ipcache.js';
import { makeClusterService, type PortConfiguration } from '../src/keyspace/index.js';
import { silentLogger } from '../src/lib/logger.js';
import { ServiceTable } from '../src/service/table.js';
import { freePort } from '../test/support/ports.js';
import { flag, fmt, percentile, report } from './lib.js';

const clientIP = (i: number): string => `127.206.2.${i + 1}`;
const CLUSTER_IP = '127.206.128.1';
const backendIP = (i: number): string => `127.206.1.${i + 1}`;

interface Target {
  readonly host: string;
  readonly port: number;
}

export interface WorkerConfig {
  readonly targets: readonly Target[];
  readonly connections: number;
  readonly keepAlive: boolean;
  readonly seconds: number;
  readonly warmup: number;
  /** Client pod IPs; user i sends from localAddresses[i mod n]. */
  readonly localAddresses: readonly string[];
  /** Open loop at this many requests/s in total; latency counts from the scheduled send. */
  readonly rate?: number | undefined;
}

interface PhaseResult {
  /** CPU of the load generator per request, µs (it can be the bottleneck on 2 cores). */
  readonly clientCpuUs: number;
  readonly requests: number;
  readonly errors: number;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
}

export interface Measured extends PhaseResult {
  /** CPU of this (proxy + backends) process per request, µs. */
  readonly cpuUs: number;
}

// ---------------------------------------------------------------------------------
// Load generator (child process)
// ---------------------------------------------------------------------------------

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function once(target: Target, agent: Agent | false, localAddress: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: target.host, port: target.port, path: '/', agent, localAddress },
      (res) => {
        res.on('data', () => undefined);
        res.on('end', () => {
          if (res.statusCode === 200) resolve();
          else reject(new Error(`status ${String(res.statusCode)}`));
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

async function runWorker(cfg: WorkerConfig): Promise<void> {
  const start = performance.now();
  const measureFrom = start + cfg.warmup * 1000;
  const end = measureFrom + cfg.seconds * 1000;
  const latencies: number[] = [];
  let errors = 0;
  // Paced users send on a fixed schedule; a late response delays the next send, but the
  // latency still counts from when it should have gone (no coordinated omission).
  const interval = cfg.rate === undefined ? 0 : (cfg.connections / cfg.rate) * 1000;
  const user = async (i: number): Promise<void> => {
    const target = cfg.targets[i % cfg.targets.length];
    const from = cfg.localAddresses[i % cfg.localAddresses.length];
    if (target === undefined || from === undefined) return;
    // One agent with one socket per user: a persistent connection each.
    const agent = cfg.keepAlive ? new Agent({ keepAlive: true, maxSockets: 1 }) : false;
    let scheduled = start + (i * interval) / cfg.connections;
    try {
      for (;;) {
        let t0 = performance.now();
        if (interval > 0) {
          if (scheduled >= end) break;
          if (scheduled > t0) await sleep(scheduled - t0);
          // Late: count from the schedule. Early (timers are ms-grained): from the send.
          t0 = Math.min(scheduled, performance.now());
          scheduled += interval;
        }
        if (t0 >= end) break;
        try {
          await once(target, agent, from);
          const t1 = performance.now();
          if (t0 >= measureFrom && t1 <= end) latencies.push(t1 - t0);
        } catch {
          if (t0 >= measureFrom) errors++;
        }
      }
    } finally {
      if (agent !== false) agent.destroy();
    }
  };
  const cpu0 = process.cpuUsage();
  await Promise.all(Array.from({ length: cfg.connections }, (_, i) => user(i)));
  const cpu = process.cpuUsage(cpu0);
  latencies.sort((a, b) => a - b);
  const result: PhaseResult = {
    clientCpuUs: (cpu.user + cpu.system) / Math.max(1, latencies.length + errors),
    requests: latencies.length,
    errors,
    rps: latencies.length / cfg.seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

export function runPhase(cfg: WorkerConfig): Promise<Measured> {
  const runTs = fileURLToPath(new URL('./run.ts', import.meta.url));
  return new Promise((resolve, reject) => {
    const cpu0 = process.cpuUsage();
    const child = spawn(
      process.execPath,
      [...process.execArgv, runTs, 'datapath', '--worker', JSON.stringify(cfg)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c: string) => (out += c));
    child.on('error', reject);
    child.on('close', (code) => {
      const cpu = process.cpuUsage(cpu0);
      const line = out.trim().split('\n').pop() ?? '';
      if (code !== 0 || line === '') {
        reject(new Error(`load generator exited with ${String(code)}`));
        return;
      }
      const r = JSON.parse(line) as PhaseResult;
      // Startup and warm-up are in the CPU window too, but they are mostly idle here.
      const cpuUs = (cpu.user + cpu.system) / Math.max(1, r.requests + r.errors);
      resolve({ ...r, cpuUs });
    });
  });
}

// ---------------------------------------------------------------------------------
// Backends + proxy (this process)
// ---------------------------------------------------------------------------------

export async function listen(server: Server, host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.closeAllConnections();
    server.close(() => {
      resolve();
    });
  });
}

interface Row {
  readonly metric: string;
  readonly viaClusterIP: number;
  readonly direct: number;
  readonly unit: string;
  readonly goal?: string;
}

/** bench/lib.ts `report` with this benchmark's column names (JSON: ours = ClusterIP, raw = direct). */
function print(rows: readonly Row[], extra: Record<string, unknown>): void {
  report(
    'datapath',
    rows.map((r) => ({
      metric: r.metric,
      ours: r.viaClusterIP,
      raw: r.direct,
      unit: r.unit,
      higherIsBetter: r.unit === 'req/s',
      goal: r.goal,
    })),
    extra,
    ['via ClusterIP', 'direct'],
  );
}

export async function main(args: string[]): Promise<void> {
  if (args[0] === '--worker') {
    await runWorker(JSON.parse(args[1] ?? '{}') as WorkerConfig);
    return;
  }
  const seconds = flag(args, 'seconds', 'positive', 5);
  const warmup = flag(args, 'warmup', 'positive', 1);
  const connections = Math.round(flag(args, 'connections', 'positive', 32));
  const nBackends = Math.round(flag(args, 'backends', 'positive', 3));
  const nClients = Math.round(flag(args, 'clients', 'positive', 8));
  const rateFlag = args.includes('--rate') ? flag(args, 'rate', 'positive', 1) : undefined;

  const backendPort = await freePort(backendIP(0));
  const frontendPort = await freePort(CLUSTER_IP);
  const servers: Server[] = [];
  const body = Buffer.from('ok\n');
  for (let i = 0; i < nBackends; i++) {
    const server = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
      res.end(body);
    });
    server.keepAliveTimeout = 30_000;
    await listen(server, backendIP(i), backendPort);
    servers.push(server);
  }

  const http: PortConfiguration = { http: { Protocol: 'TCP', Port: backendPort } };
  const table = new ServiceTable('cluster1');
  table.upsertLocal({
    service: makeClusterService({
      cluster: 'cluster1',
      clusterID: 1,
      namespace: 'default',
      name: 'echo',
      frontends: { [CLUSTER_IP]: { http: { Protocol: 'TCP', Port: frontendPort } } },
      backends: Object.fromEntries(servers.map((_, i) => [backendIP(i), http])),
    }),
    global: false,
    affinity: 'none',
    type: 'ClusterIP',
  });
  const ipcache = new IPCache();
  const pod = (ip: string, name: string, identity: number): void => {
    ipcache.upsert({
      cidr: `${ip}/32`,
      identity,
      hostIP: '127.206.0.1',
      encryptKey: 0,
      cluster: 'cluster1',
      k8sNamespace: 'default',
      k8sPodName: name,
      source: 'local',
    });
  };
  for (let i = 0; i < nClients; i++) pod(clientIP(i), `client-${i}`, 65792);
  servers.forEach((_, i) => {
    pod(backendIP(i), `echo-${i}`, 65793);
  });
  const dp = new NodeDatapath({
    cluster: 'cluster1',
    node: { name: 'node1', ip: '127.206.0.1' },
    services: table,
    ipcache,
    log: silentLogger,
  });
  const proxy = new ServiceProxy({
    cluster: 'cluster1',
    frontends: dp.lb,
    route: () => dp,
    log: silentLogger,
  });
  await proxy.start();

  try {
    const direct = servers.map((_, i) => ({ host: backendIP(i), port: backendPort }));
    const viaClusterIP = [{ host: CLUSTER_IP, port: frontendPort }];
    const localAddresses = Array.from({ length: nClients }, (_, i) => clientIP(i));
    const base = { connections, seconds, warmup, localAddresses };
    const phase = async (name: string, cfg: WorkerConfig): Promise<Measured> => {
      const r = await runPhase(cfg);
      console.error(
        `${name}: ${fmt(r.rps)} req/s, p50 ${r.p50.toFixed(3)} ms, p99 ${r.p99.toFixed(3)} ms, ` +
          `CPU/request ${fmt(r.cpuUs)} µs (client ${fmt(r.clientCpuUs)} µs), ${String(r.errors)} errors`,
      );
      return r;
    };
    const kaDirect = await phase('keep-alive direct', {
      ...base,
      targets: direct,
      keepAlive: true,
    });
    const kaProxy = await phase('keep-alive ClusterIP', {
      ...base,
      targets: viaClusterIP,
      keepAlive: true,
    });
    // Latency below saturation: both paths at the same offered load, a fifth of what the
    // direct path sustained (pacing costs the client more CPU per request than a closed
    // loop), so queueing does not dominate the added latency.
    const rate = rateFlag ?? Math.max(100, Math.round(kaDirect.rps / 5));
    const paced = { ...base, keepAlive: true, rate };
    const ratedDirect = await phase(`${rate} req/s direct`, { ...paced, targets: direct });
    const ratedProxy = await phase(`${rate} req/s ClusterIP`, { ...paced, targets: viaClusterIP });
    const flows0 = dp.flows.lastSeq;
    const ncDirect = await phase('new-conn direct', { ...base, targets: direct, keepAlive: false });
    const flows1 = dp.flows.lastSeq;
    const ncProxy = await phase('new-conn ClusterIP', {
      ...base,
      targets: viaClusterIP,
      keepAlive: false,
    });
    const flowsRecorded = dp.flows.lastSeq - flows1;

    const ratio = kaProxy.rps / kaDirect.rps;
    const addedP99 = ratedProxy.p99 - ratedDirect.p99;
    const rows: Row[] = [
      {
        metric: 'keep-alive throughput',
        viaClusterIP: kaProxy.rps,
        direct: kaDirect.rps,
        unit: 'req/s',
        goal: '>= 0.50x',
      },
      { metric: 'keep-alive p50', viaClusterIP: kaProxy.p50, direct: kaDirect.p50, unit: 'ms' },
      { metric: 'keep-alive p99', viaClusterIP: kaProxy.p99, direct: kaDirect.p99, unit: 'ms' },
      {
        metric: 'keep-alive client CPU',
        viaClusterIP: kaProxy.clientCpuUs,
        direct: kaDirect.clientCpuUs,
        unit: 'µs/req',
      },
      {
        metric: 'keep-alive server CPU',
        viaClusterIP: kaProxy.cpuUs,
        direct: kaDirect.cpuUs,
        unit: 'µs/req',
      },
      {
        metric: `p50 at ${rate} req/s`,
        viaClusterIP: ratedProxy.p50,
        direct: ratedDirect.p50,
        unit: 'ms',
      },
      {
        metric: `p99 at ${rate} req/s`,
        viaClusterIP: ratedProxy.p99,
        direct: ratedDirect.p99,
        unit: 'ms',
        goal: '<= +1 ms',
      },
      {
        metric: 'new-conn throughput',
        viaClusterIP: ncProxy.rps,
        direct: ncDirect.rps,
        unit: 'req/s',
      },
      { metric: 'new-conn p50', viaClusterIP: ncProxy.p50, direct: ncDirect.p50, unit: 'ms' },
      { metric: 'new-conn p99', viaClusterIP: ncProxy.p99, direct: ncDirect.p99, unit: 'ms' },
      {
        metric: 'new-conn server CPU',
        viaClusterIP: ncProxy.cpuUs,
        direct: ncDirect.cpuUs,
        unit: 'µs/req',
      },
    ];
    print(rows, {
      connections,
      seconds,
      backends: nBackends,
      clients: nClients,
      sourceFallbacks: proxy.stats.sourceFallbacks,
      keepAliveRatio: Number(ratio.toFixed(3)),
      pacedRate: rate,
      addedP99Ms: Number(addedP99.toFixed(3)),
      saturatedAddedP99Ms: Number((kaProxy.p99 - kaDirect.p99).toFixed(3)),
      newConnAddedP99Ms: Number((ncProxy.p99 - ncDirect.p99).toFixed(3)),
      goalsMet: ratio >= 0.5 && addedP99 <= 1,
      errors: [kaDirect, kaProxy, ratedDirect, ratedProxy, ncDirect, ncProxy].reduce(
        (n, r) => n + r.errors,
        0,
      ),
      // Every proxied connection is one flow (the direct phase must record none).
      flowsRecorded,
      flowsDuringDirect: flows1 - flows0,
    });
  } finally {
    await proxy.stop();
    dp.close();
    for (const s of servers) await close(s);
  }
}
