/**
 * `npm run bench -- k8smode [--samples N (200)] [--warmup N (20)] [--endpoints N (2000)]`:
 * Kubernetes mode against registry mode, in the same run, every daemon in its own process
 * over real etcd processes.
 *
 * Two remote clusters feed one local cluster (cluster2):
 * - cluster1, registry mode: its clustermesh-apiserver reads its registry (etcd1) and
 *   exports into its kvstore (etcd1);
 * - cluster3, Kubernetes mode: its clustermesh-apiserver reads CiliumEndpoints through
 *   client-node informers from our Kubernetes API (over a registry in etcd3r) and exports
 *   into its kvstore (etcd3).
 * cluster2 runs two agents connected to both: one in registry mode, one in Kubernetes mode
 * (its own cluster read through cluster2's Kubernetes API).
 *
 * Propagation: a CiliumEndpoint created in cluster1's registry, or POSTed to cluster3's
 * Kubernetes API, until its IP is in the registry-mode agent's ipcache (polled through its
 * API every 2 ms, the same for both); samples alternate between the modes so both see the
 * same load, and each endpoint is deleted (untimed) before the next sample. Goal: p99 of
 * Kubernetes mode ≤ 1.5× registry mode.
 *
 * Memory: heap after two forced GCs (and RSS) of each agent, before and after `--endpoints`
 * remote endpoints from cluster1 and as many from cluster3: bytes per remote endpoint of
 * the Kubernetes-mode agent against the registry-mode agent, and per endpoint from the
 * Kubernetes-mode remote against the registry-mode remote (goal: unchanged).
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { kubeconfigYaml } from '../src/kubeapi/kubeconfig.js';
import { KubeApiServer } from '../src/kubeapi/server.js';
import { EtcdBackend } from '../src/kvstore/etcd.js';
import { freePort } from '../src/etcd/index.js';
import { Registry } from '../src/registry/registry.js';
import type { RegistryObject } from '../src/registry/types.js';
import { startEtcd, type EtcdServer } from '../test/support/etcd.js';
import { until } from '../test/support/eventually.js';
import { DaemonProcess } from '../test/support/mesh.js';
import { createCA, issueCert, loopbackServerCertOptions } from '../test/support/tls.js';
import { AgentProcess, type MemoryUsage } from './agent-process.js';
import { flag, report, summarize, type Row } from './lib.js';

const TOKEN = 'bench-token';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface RemoteCluster {
  readonly name: string;
  readonly id: number;
}
const CLUSTER1: RemoteCluster = { name: 'cluster1', id: 1 };
const CLUSTER3: RemoteCluster = { name: 'cluster3', id: 3 };

/** Data only: nothing ever connects to these addresses. */
function podIP(c: RemoteCluster, i: number): string {
  return `10.${String(c.id)}.${String(1 + (i >> 8))}.${String(i & 255)}`;
}

function endpoint(c: RemoteCluster, i: number, prefix: string): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumEndpoint',
    metadata: { name: `${prefix}-${String(i)}`, namespace: 'default' },
    status: {
      id: 1000 + i,
      identity: {
        id: c.id * 65536 + 100,
        labels: ['k8s:app=bench', `k8s:io.cilium.k8s.policy.cluster=${c.name}`],
      },
      networking: { addressing: [{ ipv4: podIP(c, i) }], node: `10.${String(c.id)}.0.1` },
    },
  };
}

function node(name: string, ip: string): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNode',
    metadata: { name },
    spec: { addresses: [{ type: 'InternalIP', ip }], ipam: { podCIDRs: ['10.2.1.0/24'] } },
  };
}

/** A request to one of our Kubernetes API servers; resolves with the status code. */
function kube(
  server: KubeApiServer,
  ca: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, server.url),
      {
        method,
        ca,
        headers: {
          Authorization: `Bearer ${TOKEN}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('error', reject);
    req.end(body === undefined ? undefined : JSON.stringify(body));
  });
}

interface IpcacheRow {
  readonly cidr: string;
}

async function ipcache(agent: AgentProcess): Promise<Set<string>> {
  const rows = (await agent.json('/v1/ipcache')) as IpcacheRow[];
  return new Set(rows.map((r) => r.cidr.replace(/\/32$/, '')));
}

/** The time (performance.now()) at which `ip` is (or is no longer) in `agent`'s ipcache. */
async function seen(agent: AgentProcess, ip: string, present: boolean): Promise<number> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const has = (await ipcache(agent)).has(ip);
    const t = performance.now();
    if (has === present) return t;
    if (t > deadline) throw new Error(`${ip} ${present ? 'never arrived' : 'never left'}`);
    await sleep(2);
  }
}

export async function main(args: string[]): Promise<void> {
  const samples = flag(args, 'samples', 'positive integer', 200);
  const warmup = flag(args, 'warmup', 'non-negative integer', 20);
  const endpoints = flag(args, 'endpoints', 'positive integer', 2000);

  const dir = await mkdtemp(join(tmpdir(), 'bench-k8smode-'));
  const cleanups: (() => Promise<void>)[] = [];
  try {
    const opts = { snapshotCount: 100_000, logLevel: 'error' } as const;
    const [etcd1, etcd2, etcd3, etcd3r] = await Promise.all([
      startEtcd({ ...opts, name: 'cluster1' }),
      startEtcd({ ...opts, name: 'cluster2' }),
      startEtcd({ ...opts, name: 'cluster3' }),
      startEtcd({ ...opts, name: 'cluster3-registry' }),
    ]);
    const etcds: EtcdServer[] = [etcd1, etcd2, etcd3, etcd3r];
    cleanups.push(async () => {
      await Promise.all(etcds.map((e) => e.destroy()));
    });
    const registryOf = async (etcd: EtcdServer): Promise<Registry> => {
      const backend = new EtcdBackend({ endpoints: etcd.endpoints, callTimeoutMs: 30_000 });
      await backend.connect();
      cleanups.push(() => backend.close());
      return new Registry(backend);
    };
    const [reg1, reg2, reg3] = await Promise.all([
      registryOf(etcd1),
      registryOf(etcd2),
      registryOf(etcd3r),
    ]);
    const authority = await createCA('bench-k8smode-ca');
    const leaf = await issueCert(authority, loopbackServerCertOptions('bench-kube'));
    const ca = authority.cert;
    const serve = async (registry: Registry, name: string): Promise<[KubeApiServer, string]> => {
      const server = new KubeApiServer({
        registry,
        tls: { ca, cert: leaf.cert, key: leaf.key },
        token: TOKEN,
        host: '127.0.0.1',
      });
      await server.start();
      cleanups.push(() => server.stop());
      const file = join(dir, `kubeconfig-${name}`);
      await writeFile(
        file,
        kubeconfigYaml([{ name, server: server.url, caPem: ca, token: TOKEN }]),
      );
      return [server, file];
    };
    const [kube3, kubeconfig3] = await serve(reg3, CLUSTER3.name);
    const [, kubeconfig2] = await serve(reg2, 'cluster2');
    await reg2.apply([node('node-r', '10.2.0.1'), node('node-k', '10.2.0.2')]);

    const apiserver = async (
      c: RemoteCluster,
      kvstore: EtcdServer,
      kubeconfig?: string,
    ): Promise<void> => {
      const health = await freePort('127.0.0.1');
      const d = new DaemonProcess(
        `apiserver-${c.name}`,
        [
          'apiserver',
          '--cluster-name',
          c.name,
          '--cluster-id',
          String(c.id),
          '--kvstore-opt',
          `etcd.address=${kvstore.endpoints.join(',')}`,
          '--health-addr',
          `127.0.0.1:${String(health)}`,
          ...(kubeconfig === undefined ? [] : ['--k8s-kubeconfig-path', kubeconfig]),
        ],
        join(dir, `apiserver-${c.name}.log`),
      );
      d.start();
      cleanups.push(() => d.stop());
    };
    await apiserver(CLUSTER1, etcd1);
    await apiserver(CLUSTER3, etcd3, kubeconfig3);
    const configDir = join(dir, 'clustermesh');
    await mkdir(configDir);
    await etcd1.writeClientConfig(join(configDir, CLUSTER1.name));
    await etcd3.writeClientConfig(join(configDir, CLUSTER3.name));

    const agent = async (nodeName: string, kubeconfig?: string): Promise<AgentProcess> => {
      const port = await freePort('127.0.0.1');
      const a = new AgentProcess(`http://127.0.0.1:${String(port)}`, [
        'agent',
        '--cluster-name',
        'cluster2',
        '--cluster-id',
        '2',
        '--node-name',
        nodeName,
        '--kvstore-opt',
        `etcd.address=${etcd2.endpoints.join(',')}`,
        '--clustermesh-config',
        configDir,
        '--api-addr',
        `127.0.0.1:${String(port)}`,
        '--clustermesh-retry-base',
        '100ms',
        ...(kubeconfig === undefined ? [] : ['--k8s-kubeconfig-path', kubeconfig]),
      ]);
      cleanups.push(() => a.stop());
      await a.waitHealthy(60_000);
      return a;
    };
    const [agentR, agentK] = await Promise.all([agent('node-r'), agent('node-k', kubeconfig2)]);
    for (const a of [agentR, agentK]) {
      await until(
        async () => {
          const cm = (await a.json('/v1/clustermesh')) as {
            clusters?: { name: string; ready?: boolean }[];
          };
          return [CLUSTER1.name, CLUSTER3.name].every(
            (n) => cm.clusters?.find((c) => c.name === n)?.ready === true,
          );
        },
        { timeoutMs: 60_000, intervalMs: 200, message: () => `agent connected\n${a.tail()}` },
      );
    }

    // ---- propagation, alternating ----
    const cepPath = '/apis/cilium.io/v2/namespaces/default/ciliumendpoints';
    const viaRegistry = async (i: number): Promise<number> => {
      const ep = endpoint(CLUSTER1, i, 'prop');
      const t0 = performance.now();
      await reg1.create(ep);
      const t = (await seen(agentR, podIP(CLUSTER1, i), true)) - t0;
      await reg1.delete('CiliumEndpoint', 'default', ep.metadata.name);
      await seen(agentR, podIP(CLUSTER1, i), false);
      return t;
    };
    const viaKube = async (i: number): Promise<number> => {
      const ep = endpoint(CLUSTER3, i, 'prop');
      const t0 = performance.now();
      const code = await kube(kube3, ca, 'POST', cepPath, ep);
      if (code !== 201) throw new Error(`POST ${ep.metadata.name}: HTTP ${String(code)}`);
      const t = (await seen(agentR, podIP(CLUSTER3, i), true)) - t0;
      const del = await kube(kube3, ca, 'DELETE', `${cepPath}/${ep.metadata.name}`);
      if (del !== 200) throw new Error(`DELETE ${ep.metadata.name}: HTTP ${String(del)}`);
      await seen(agentR, podIP(CLUSTER3, i), false);
      return t;
    };
    const registryMs: number[] = [];
    const kubeMs: number[] = [];
    for (let i = 0; i < warmup + samples; i++) {
      // Which mode goes first alternates too.
      const [first, second] = i % 2 === 0 ? [viaRegistry, viaKube] : [viaKube, viaRegistry];
      const a = await first(i);
      const b = await second(i);
      if (i < warmup) continue;
      if (first === viaRegistry) {
        registryMs.push(a);
        kubeMs.push(b);
      } else {
        kubeMs.push(a);
        registryMs.push(b);
      }
    }

    // ---- memory per remote endpoint ----
    const mem = async (): Promise<
      [MemoryUsage & { vmRss: number }, MemoryUsage & { vmRss: number }]
    > => [await agentR.memoryAfterGc(), await agentK.memoryAfterGc()];
    const until2 = async (count: number): Promise<void> => {
      for (const a of [agentR, agentK]) {
        await until(async () => (await ipcache(a)).size >= count, {
          timeoutMs: 120_000,
          intervalMs: 500,
          message: () => `${String(count)} ipcache entries\n${a.tail()}`,
        });
      }
    };
    const before = (await ipcache(agentR)).size;
    const m0 = await mem();
    for (let i = 0; i < endpoints; i += 256) {
      await reg1.apply(
        Array.from({ length: Math.min(256, endpoints - i) }, (_, j) =>
          endpoint(CLUSTER1, 4096 + i + j, 'mem'),
        ),
      );
    }
    await until2(before + endpoints);
    const m1 = await mem();
    for (let i = 0; i < endpoints; i += 256) {
      await reg3.apply(
        Array.from({ length: Math.min(256, endpoints - i) }, (_, j) =>
          endpoint(CLUSTER3, 4096 + i + j, 'mem'),
        ),
      );
    }
    await until2(before + 2 * endpoints);
    const m2 = await mem();
    const per = (a: number, b: number, n: number): number => (b - a) / n;

    const r = summarize(registryMs);
    const k = summarize(kubeMs);
    const rows: Row[] = [
      {
        metric: 'propagation p50 ms (create → remote agent ipcache)',
        ours: k.p50,
        raw: r.p50,
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        metric: 'propagation p99 ms (create → remote agent ipcache)',
        ours: k.p99,
        raw: r.p99,
        unit: 'ms',
        higherIsBetter: false,
        goal: '≤ 1.5×',
      },
      {
        metric: 'agent heap per remote endpoint, bytes (agent mode)',
        ours: per(m0[1].heapUsed, m2[1].heapUsed, 2 * endpoints),
        raw: per(m0[0].heapUsed, m2[0].heapUsed, 2 * endpoints),
        unit: 'B',
        higherIsBetter: false,
        goal: 'unchanged',
      },
      {
        metric: 'agent RSS per remote endpoint, bytes (agent mode)',
        ours: per(m0[1].vmRss, m2[1].vmRss, 2 * endpoints),
        raw: per(m0[0].vmRss, m2[0].vmRss, 2 * endpoints),
        unit: 'B',
        higherIsBetter: false,
        goal: 'report',
      },
      {
        metric: 'agent heap per remote endpoint, bytes (remote mode)',
        ours: per(m1[0].heapUsed, m2[0].heapUsed, endpoints),
        raw: per(m0[0].heapUsed, m1[0].heapUsed, endpoints),
        unit: 'B',
        higherIsBetter: false,
        goal: 'unchanged',
      },
    ];
    console.log(
      `ours: Kubernetes mode; baseline: registry mode, same run (${String(samples)} samples each, alternating; ${String(endpoints)} endpoints per remote for memory)\n` +
        `agent mode: the cluster2 agent reading its cluster through the Kubernetes API vs its registry; remote mode: endpoints exported by cluster3 (Kubernetes mode) vs cluster1 (registry mode), seen by the registry-mode agent`,
    );
    report('k8smode', rows, { samples, warmup, endpoints }, ['kubernetes mode', 'registry mode']);
  } finally {
    // Last started, first stopped.
    for (const c of cleanups.reverse()) await c().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}
