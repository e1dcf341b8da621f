/**
 * Datapath throughput with policy: HTTP through a ClusterIP (ServiceProxy + NodeDatapath,
 * as bench/datapath.ts) from client pods whose node enforces a large policy set, against
 * the same path on a node whose enforcer holds no rule, in the same run. The load
 * generator is bench/datapath.ts's child process.
 *
 * Both nodes share the backends and the client addresses; each has its own ClusterIP, so
 * both proxies stay up and the phases alternate between them. Keep-alive connections are
 * decided once per connection, so a new connection per request is measured too: there
 * every request pays a decision.
 */
import { createServer, type Server } from 'node:http';
import { NodeDatapath } from '../src/datapath/datapath.js';
import { ServiceProxy } from '../src/datapath/service-proxy.js';
import { EndpointTable } from '../src/endpoint/table.js';
import { IPCache } from '../src/ipcache/ipcache.js';
import { makeClusterService, type PortConfiguration } from '../src/keyspace/index.js';
import { silentLogger } from '../src/lib/logger.js';
import { NodeManager } from '../src/node/manager.js';
import type { PolicyEnforcer } from '../src/policy/enforcer.js';
import { policyKey } from '../src/policy/rules.js';
import { ServiceTable } from '../src/service/table.js';
import { freePort } from '../test/support/ports.js';
import { close, listen, runPhase, type Measured, type WorkerConfig } from './datapath.js';
import { fmt } from './lib.js';

const NODE_IP = '127.207.0.1';
const clientIP = (i: number): string => `127.207.2.${i + 1}`;
const backendIP = (i: number): string => `127.207.1.${i + 1}`;
const clusterIP = (i: number): string => `127.207.128.${i + 1}`;

/**
 * The client pods: app0 of ns0 in cluster1, which the synthetic workload's rules select
 * too (its egress-deny rules are looked up on every connection); the echo pods are new.
 */
const CLIENT_ID = (1 << 16) | 0xff00;
const ECHO_ID = (1 << 16) | 0xff01;
const CLIENT_LABELS = [
  'k8s:app=app0',
  'k8s:io.kubernetes.pod.namespace=ns0',
  'k8s:io.cilium.k8s.policy.cluster=cluster1',
];
const ECHO_LABELS = [
  'k8s:app=bench-echo',
  'k8s:io.kubernetes.pod.namespace=ns0',
  'k8s:io.cilium.k8s.policy.cluster=cluster1',
];

export interface ThroughputOptions {
  /** Already holding the rules and identities to measure; the client's policy is added. */
  readonly enforcer: PolicyEnforcer;
  /** The same enforcer type with no rule (the baseline node). */
  readonly empty: PolicyEnforcer;
  readonly seconds: number;
  readonly warmup: number;
  readonly connections: number;
  readonly backends: number;
  readonly clients: number;
  /** Phases per side and connection kind, alternating with the other side's. */
  readonly rounds: number;
  /** Also a new connection per request (twice as many phases). */
  readonly newConnections: boolean;
}

export interface ThroughputSide {
  readonly keepAlive: Measured;
  readonly newConn: Measured | undefined;
}

export interface ThroughputResult {
  readonly rules: ThroughputSide;
  readonly none: ThroughputSide;
  /** Proxied connections egress policy denied (must be 0: the client's policy allows). */
  readonly policyDenied: number;
  /** The rules node's verdict for the probe connection, to show it is enforced. */
  readonly enforced: boolean;
  /** Mean cost of the proxy's egress decision per new connection, µs. */
  readonly decisionUs: { readonly rules: number; readonly none: number };
  /** Per round: with rules / without. */
  readonly keepAliveRoundRatios: readonly number[];
  readonly newConnRoundRatios: readonly number[];
}

interface Side {
  readonly dp: NodeDatapath;
  readonly proxy: ServiceProxy;
  readonly target: { readonly host: string; readonly port: number };
}

export async function runThroughput(o: ThroughputOptions): Promise<ThroughputResult> {
  const backendPort = await freePort(backendIP(0));
  const body = Buffer.from('ok\n');
  const servers: Server[] = [];
  const sides: Side[] = [];
  try {
    for (let i = 0; i < o.backends; i++) {
      const server = createServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': body.length });
        res.end(body);
      });
      server.keepAliveTimeout = 30_000;
      await listen(server, backendIP(i), backendPort);
      servers.push(server);
    }
    // The client's egress policy: the echo pods on their port, and nothing else.
    const allow = {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'bench-client-egress', namespace: 'ns0' },
      spec: {
        endpointSelector: { matchLabels: { app: 'app0' } },
        egress: [
          {
            toEndpoints: [{ matchLabels: { app: 'bench-echo' } }],
            toPorts: [{ ports: [{ port: String(backendPort), protocol: 'TCP' }] }],
          },
        ],
      },
    };
    const ref = {
      kind: 'CiliumNetworkPolicy' as const,
      namespace: 'ns0',
      name: allow.metadata.name,
    };
    for (const e of [o.enforcer, o.empty]) {
      e.engine.upsertIdentity(CLIENT_ID, CLIENT_LABELS);
      e.engine.upsertIdentity(ECHO_ID, ECHO_LABELS);
    }
    if (!o.enforcer.upsertPolicy(allow, ref)) throw new Error(`${policyKey(ref)} rejected`);

    for (const [i, enforcer] of [o.empty, o.enforcer].entries()) {
      const frontendPort = await freePort(clusterIP(i));
      sides.push(await startSide(enforcer, clusterIP(i), frontendPort, backendPort, o));
    }
    const [none, rules] = sides;
    if (none === undefined || rules === undefined) throw new Error('unreachable');
    const probe = rules.dp.egressDecision(clientIP(0), backendIP(0), backendPort, 'TCP');
    const enforced = probe?.enforced === true && probe.allowed;
    const unenforced = none.dp.egressDecision(clientIP(0), backendIP(0), backendPort, 'TCP');
    if (!enforced || unenforced?.enforced !== false) {
      throw new Error('throughput: the rules node must enforce and allow, the other not enforce');
    }

    const decisionUs = (side: Side): number => {
      const n = 100_000;
      const t = performance.now();
      for (let i = 0; i < n; i++) {
        side.dp.egressDecision(
          clientIP(i % o.clients),
          backendIP(i % o.backends),
          backendPort,
          'TCP',
        );
      }
      return ((performance.now() - t) * 1000) / n;
    };
    const decision = { rules: decisionUs(rules), none: decisionUs(none) };

    const localAddresses = Array.from({ length: o.clients }, (_, i) => clientIP(i));
    const base = {
      connections: o.connections,
      seconds: o.seconds,
      warmup: o.warmup,
      localAddresses,
    };
    const phase = async (name: string, side: Side, keepAlive: boolean): Promise<Measured> => {
      const cfg: WorkerConfig = { ...base, targets: [side.target], keepAlive };
      const r = await runPhase(cfg);
      console.error(
        `throughput ${name}: ${fmt(r.rps)} req/s, p50 ${r.p50.toFixed(3)} ms, ` +
          `p99 ${r.p99.toFixed(3)} ms, CPU/request ${fmt(r.cpuUs)} µs, ${String(r.errors)} errors`,
      );
      return r;
    };
    // Rounds of one phase per side, the order swapped every round: load from anything
    // else on the machine then falls on both sides alike.
    const rounds = async (keepAlive: boolean): Promise<[Measured, Measured, number[]]> => {
      const kind = keepAlive ? 'keep-alive' : 'new-conn';
      const withRules: Measured[] = [];
      const without: Measured[] = [];
      const ratios: number[] = [];
      for (let i = 0; i < o.rounds; i++) {
        const order = i % 2 === 0 ? [none, rules] : [rules, none];
        for (const side of order) {
          const r = await phase(
            `${kind} ${side === rules ? 'with rules' : 'no rules'}`,
            side,
            keepAlive,
          );
          (side === rules ? withRules : without).push(r);
        }
        const a = withRules[i];
        const b = without[i];
        if (a !== undefined && b !== undefined) ratios.push(a.rps / b.rps);
      }
      return [merge(withRules), merge(without), ratios];
    };
    const [kaRules, kaNone, kaRatios] = await rounds(true);
    const [ncRules, ncNone, ncRatios] = o.newConnections
      ? await rounds(false)
      : [undefined, undefined, []];
    return {
      rules: { keepAlive: kaRules, newConn: ncRules },
      none: { keepAlive: kaNone, newConn: ncNone },
      policyDenied: rules.proxy.stats.policyDenied + none.proxy.stats.policyDenied,
      enforced,
      decisionUs: decision,
      keepAliveRoundRatios: kaRatios,
      newConnRoundRatios: ncRatios,
    };
  } finally {
    for (const s of sides) {
      await s.proxy.stop();
      s.dp.close();
    }
    for (const s of servers) await close(s);
  }
}

async function startSide(
  enforcer: PolicyEnforcer,
  ip: string,
  frontendPort: number,
  backendPort: number,
  o: ThroughputOptions,
): Promise<Side> {
  const http: PortConfiguration = { http: { Protocol: 'TCP', Port: backendPort } };
  const table = new ServiceTable('cluster1');
  table.upsertLocal({
    service: makeClusterService({
      cluster: 'cluster1',
      clusterID: 1,
      namespace: 'ns0',
      name: 'echo',
      frontends: { [ip]: { http: { Protocol: 'TCP', Port: frontendPort } } },
      backends: Object.fromEntries(
        Array.from({ length: o.backends }, (_, i) => [backendIP(i), http]),
      ),
    }),
    global: false,
    affinity: 'none',
    type: 'ClusterIP',
  });
  const ipcache = new IPCache();
  const endpoints = new EndpointTable();
  const pod = (addr: string, name: string, identity: number, labels: string[]): void => {
    ipcache.upsert({
      cidr: `${addr}/32`,
      identity,
      hostIP: NODE_IP,
      encryptKey: 0,
      cluster: 'cluster1',
      k8sNamespace: 'ns0',
      k8sPodName: name,
      source: 'local',
    });
    endpoints.upsert({
      id: endpoints.list().length + 1,
      namespace: 'ns0',
      pod: name,
      identity,
      labels,
      ipv4: addr,
      ipv6: undefined,
      nodeIP: NODE_IP,
      state: 'ready',
      namedPorts: undefined,
    });
  };
  for (let i = 0; i < o.clients; i++) pod(clientIP(i), `client-${i}`, CLIENT_ID, CLIENT_LABELS);
  for (let i = 0; i < o.backends; i++) pod(backendIP(i), `echo-${i}`, ECHO_ID, ECHO_LABELS);
  const dp = new NodeDatapath({
    cluster: 'cluster1',
    node: { name: 'node1', ip: NODE_IP },
    services: table,
    ipcache,
    log: silentLogger,
    policy: { enforcer, endpoints, nodes: new NodeManager() },
  });
  const proxy = new ServiceProxy({
    cluster: 'cluster1',
    frontends: dp.lb,
    route: () => dp,
    log: silentLogger,
  });
  await proxy.start();
  return { dp, proxy, target: { host: ip, port: frontendPort } };
}

/** Phases of equal length as one: rates, CPU and p50 averaged, p99 the worst. */
function merge(phases: readonly Measured[]): Measured {
  const mean = (f: (m: Measured) => number): number =>
    phases.reduce((n, m) => n + f(m), 0) / Math.max(1, phases.length);
  return {
    clientCpuUs: mean((m) => m.clientCpuUs),
    cpuUs: mean((m) => m.cpuUs),
    requests: phases.reduce((n, m) => n + m.requests, 0),
    errors: phases.reduce((n, m) => n + m.errors, 0),
    rps: mean((m) => m.rps),
    p50: mean((m) => m.p50),
    p99: Math.max(...phases.map((m) => m.p99)),
  };
}
