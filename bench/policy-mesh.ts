/**
 * Policy timings on a running local mesh (LocalMesh in this process, every agent's
 * enforcer and datapath observed directly):
 *
 * apply:  the same CiliumNetworkPolicy applied to every cluster's registry at once,
 *         alternating between allowing and not allowing a probe flow (bench-client →
 *         bench-server:80 of the agent's cluster), so every apply flips the verdict.
 *         Per agent, from its cluster's apply call to the first enforcer change after
 *         which the probe gives the new verdict. Baseline: the same write seen by a
 *         plain watch of that cluster's kvstore.
 * remote: cluster1 allows egress of bench-client to `bench-role=peer` of cluster2; a new
 *         identity with those labels and an endpoint holding it are written to cluster2's
 *         registry (as cluster2's agent would write them). Per cluster1 agent with a
 *         local bench-client: until its ipcache and identity cache know them (the
 *         propagation, baseline) and until its datapath decision for bench-client → the
 *         new IP:80 turns from denied (world) to allowed.
 *
 * `up` binds fixed loopback addresses, so the mesh runs under the lock e2e tests take.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { hostCidr } from '../src/ipcache/ipcache.js';
import { clusterIdentityRange } from '../src/keyspace/index.js';
import type { Backend } from '../src/kvstore/backend.js';
import { createBackend, resolveKvstoreConfig } from '../src/kvstore/config.js';
import { sleep } from '../src/lib/abort.js';
import { silentLogger } from '../src/lib/logger.js';
import { kvstoreOptsOf, type MeshStateCluster } from '../src/localmesh/mesh-state.js';
import { LocalMesh, type MeshAgentView } from '../src/localmesh/up.js';
import { objectKey } from '../src/registry/codec.js';
import { kindInfo } from '../src/registry/kinds.js';
import { Registry } from '../src/registry/registry.js';
import type { CiliumEndpoint, CiliumIdentity, RegistryObject } from '../src/registry/types.js';
import { acquireUpLock, releaseUpLock } from '../test/support/up-lock.js';

const WAIT_MS = 30_000;
const PROBE_PORT = 80;
const CLUSTER_LABEL = 'k8s:io.cilium.k8s.policy.cluster';

export interface MeshBenchOptions {
  readonly kvstore: 'memory' | 'etcd';
  readonly clusters: number;
  readonly nodes: number;
  /** 0 skips the part. */
  readonly applies: number;
  readonly remotes: number;
  /** Pause between samples, so each starts from a quiet mesh. */
  readonly gapMs: number;
}

export interface ApplySamples {
  /** Per agent per apply: apply call → verdict changed in that agent's enforcer, ms. */
  readonly enforced: number[];
  /** Per cluster per apply: apply call → a plain watch of that kvstore sees the write, ms. */
  readonly watched: number[];
  /** Per cluster per apply: how long the apply call itself took (the write), ms. */
  readonly written: number[];
  readonly agents: number;
}

export interface RemoteSamples {
  /** Per observing agent per identity: write → ipcache and identity cache know it, ms. */
  readonly propagated: number[];
  /** Same agent, same identity: write → the datapath decision allows the new IP, ms. */
  readonly allowed: number[];
  /** allowed / propagated, per sample. */
  readonly ratios: number[];
  readonly observers: number;
}

export interface MeshBenchResult {
  readonly kvstore: 'memory' | 'etcd';
  readonly lockWaitMs: number;
  readonly startMs: number;
  readonly apply: ApplySamples | undefined;
  readonly remote: RemoteSamples | undefined;
}

interface ClusterClient {
  readonly name: string;
  readonly backend: Backend;
  readonly registry: Registry;
}

async function waitFor(what: string, pred: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!pred()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

/** What `kubectl` would be to this cluster: a client of its kvstore, by mesh.json's URL. */
async function clientOf(cluster: MeshStateCluster): Promise<ClusterClient> {
  const { name, kvstore: url } = cluster;
  // TLS meshes name the admin's etcd config; plaintext ones the address.
  const opts = kvstoreOptsOf(cluster);
  const memory = 'memory://';
  const backend = url.startsWith(memory)
    ? await createBackend(await resolveKvstoreConfig('memory', []), {
        log: silentLogger,
        memoryStoreName: url.slice(memory.length),
      })
    : await createBackend(await resolveKvstoreConfig('etcd', opts), {
        log: silentLogger,
      });
  return { name, backend, registry: new Registry(backend, { log: silentLogger }) };
}

function deployment(name: string, replicas: number): RegistryObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, namespace: 'default' },
    spec: {
      replicas,
      selector: { matchLabels: { name } },
      template: {
        metadata: { labels: { name } },
        spec: { containers: [{ name, image: 'clustermesh/idle' }] },
      },
    },
  };
}

function egressPolicy(name: string, to: Record<string, string>, port: number): RegistryObject {
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumNetworkPolicy',
    metadata: { name, namespace: 'default' },
    spec: {
      endpointSelector: { matchLabels: { name: 'bench-client' } },
      egress: [
        {
          toEndpoints: [{ matchLabels: to }],
          toPorts: [{ ports: [{ port: String(port), protocol: 'TCP' }] }],
        },
      ],
    },
  };
}

/** The identity of the `name` pods of `cluster`, as this agent knows it. */
function identityOf(a: MeshAgentView, cluster: string, name: string): number | undefined {
  const want = [`k8s:name=${name}`, `${CLUSTER_LABEL}=${cluster}`];
  return a.views.identities.list().find((i) => want.every((l) => i.labels.includes(l)))?.id;
}

function localClientIP(a: MeshAgentView): string | undefined {
  return a.views.endpoints.list(a.node.ip).find((ep) => ep.pod.startsWith('bench-client-'))?.ipv4;
}

export async function runMeshBench(o: MeshBenchOptions): Promise<MeshBenchResult> {
  const lock0 = performance.now();
  await acquireUpLock();
  const lockWaitMs = performance.now() - lock0;
  const dir = await mkdtemp(join(tmpdir(), 'cm-policy-bench-'));
  const mesh = new LocalMesh({
    clusters: o.clusters,
    nodes: o.nodes,
    kvstore: o.kvstore,
    stateDir: join(dir, 'state'),
    log: silentLogger,
  });
  const clients: ClusterClient[] = [];
  try {
    const t0 = performance.now();
    const state = await mesh.start();
    const startMs = performance.now() - t0;
    for (const c of state.clusters) clients.push(await clientOf(c));
    const agents = mesh.agents();
    await Promise.all(
      clients.map((c) =>
        c.registry.apply([deployment('bench-client', o.nodes), deployment('bench-server', 1)]),
      ),
    );
    await waitFor('the bench pods to be known to every agent', () =>
      agents.every(
        (a) =>
          identityOf(a, a.cluster, 'bench-client') !== undefined &&
          identityOf(a, a.cluster, 'bench-server') !== undefined,
      ),
    );
    const apply = o.applies > 0 ? await applyBench(o, clients, agents) : undefined;
    const remote = o.remotes > 0 ? await remoteBench(o, clients, agents) : undefined;
    return { kvstore: o.kvstore, lockWaitMs, startMs, apply, remote };
  } finally {
    for (const c of clients) await c.backend.close();
    await mesh.stop();
    await rm(dir, { recursive: true, force: true });
    await releaseUpLock();
  }
}

type Verdict = 'allowed' | 'denied' | 'unenforced';

async function applyBench(
  o: MeshBenchOptions,
  clients: readonly ClusterClient[],
  agents: readonly MeshAgentView[],
): Promise<ApplySamples> {
  const probes = agents.map((a) => {
    const subject = identityOf(a, a.cluster, 'bench-client');
    const peer = identityOf(a, a.cluster, 'bench-server');
    if (subject === undefined || peer === undefined) throw new Error('unreachable');
    const verdict = (): Verdict => {
      const d = a.views.policy.egress(subject, { kind: 'identity', id: peer }, PROBE_PORT, 'TCP');
      return !d.enforced ? 'unenforced' : d.allowed ? 'allowed' : 'denied';
    };
    return { a, verdict };
  });
  const NAME = 'bench-apply';
  // Allowing another port keeps egress enforced, so the probe is denied, not unenforced.
  const version = (v: Verdict): RegistryObject =>
    egressPolicy(NAME, { name: 'bench-server' }, v === 'allowed' ? PROBE_PORT : PROBE_PORT + 1);

  // A plain watch per cluster of the policy's key: when the write is visible to a reader.
  const key = objectKey(kindInfo('CiliumNetworkPolicy'), 'default', NAME);
  const seen = new Map<string, number>();
  const watching = new AbortController();
  let listed = 0;
  const watches = clients.map(async (c) => {
    for await (const ev of c.backend.listAndWatch(key, watching.signal)) {
      if (ev.kind === 'listDone') listed++;
      else if (ev.kind === 'upsert' && ev.key === key && !seen.has(c.name)) {
        seen.set(c.name, performance.now());
      }
    }
  });
  try {
    await waitFor('the kvstore watches', () => listed >= clients.length);
    await Promise.all(clients.map((c) => c.registry.apply([version('denied')])));
    await waitFor('the first version on every agent', () =>
      probes.every((p) => p.verdict() === 'denied'),
    );
    await sleep(o.gapMs);

    const enforced: number[] = [];
    const watched: number[] = [];
    const written: number[] = [];
    for (let k = 0; k < o.applies; k++) {
      const want: Verdict = k % 2 === 0 ? 'allowed' : 'denied';
      const reached = new Map<MeshAgentView, number>();
      const unsubscribe = probes.map((p) =>
        p.a.views.policy.onChange(() => {
          if (!reached.has(p.a) && p.verdict() === want) reached.set(p.a, performance.now());
        }),
      );
      seen.clear();
      const started = new Map<string, number>();
      const obj = version(want);
      try {
        await Promise.all(
          clients.map(async (c) => {
            const t = performance.now();
            started.set(c.name, t);
            await c.registry.apply([obj]);
            written.push(performance.now() - t);
          }),
        );
        await waitFor(`apply ${String(k)} on every agent`, () => reached.size === probes.length);
        await waitFor(
          `apply ${String(k)} in every kvstore watch`,
          () => seen.size === clients.length,
        );
      } finally {
        for (const u of unsubscribe) u();
      }
      for (const [a, t] of reached) enforced.push(t - (started.get(a.cluster) ?? t));
      for (const [c, t] of seen) watched.push(t - (started.get(c) ?? t));
      await sleep(o.gapMs);
    }
    return { enforced, watched, written, agents: probes.length };
  } finally {
    watching.abort();
    await Promise.allSettled(watches);
  }
}

async function remoteBench(
  o: MeshBenchOptions,
  clients: readonly ClusterClient[],
  agents: readonly MeshAgentView[],
): Promise<RemoteSamples> {
  const [home, far] = clients;
  if (home === undefined || far === undefined) throw new Error('remote: needs two clusters');
  const farId = Number(/\d+$/.exec(far.name)?.[0] ?? NaN);
  const observers = agents.flatMap((a) => {
    const ip = localClientIP(a);
    const dp = a.datapath;
    return a.cluster === home.name && ip !== undefined && dp !== undefined
      ? [{ a, dp, clientIP: ip }]
      : [];
  });
  if (observers.length === 0) throw new Error(`remote: no agent of ${home.name} runs a client`);
  const NAME = 'bench-remote';
  await home.registry.apply([
    egressPolicy(
      NAME,
      { 'bench-role': 'peer', 'io.cilium.k8s.policy.cluster': far.name },
      PROBE_PORT,
    ),
  ]);
  await waitFor(`${NAME} on ${home.name}'s agents`, () =>
    observers.every((x) => x.a.views.policy.engine.listPolicies().some((r) => r.name === NAME)),
  );
  await sleep(o.gapMs);

  // High in the far cluster's range, above what its allocator hands out to the pods here.
  const firstId = clusterIdentityRange(farId).min + 0xc000;
  const propagated: number[] = [];
  const allowed: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < o.remotes; i++) {
    const id = firstId + i;
    // Inside the far cluster's pod CIDR, past its nodes' /24s: no pod there gets it.
    const ip = `127.${String(farId)}.${String(120 + Math.floor(i / 250))}.${String((i % 250) + 1)}`;
    const name = `bench-peer-${String(i)}`;
    const labels: Record<string, string> = {
      'k8s:bench-role': 'peer',
      'k8s:name': name,
      'k8s:io.kubernetes.pod.namespace': 'default',
      [CLUSTER_LABEL]: far.name,
    };
    const marks = observers.map((x) => {
      const m: { known?: number; allowed?: number } = {};
      const check = (): void => {
        if (m.known === undefined) {
          const entry = x.a.views.ipcache.lookup(hostCidr(ip));
          if (entry?.identity === id && x.a.views.identities.get(id) !== undefined) {
            m.known = performance.now();
          }
        }
        if (m.allowed === undefined) {
          const d = x.dp.egressDecision(x.clientIP, ip, PROBE_PORT, 'TCP');
          if (d?.allowed === true) m.allowed = performance.now();
        }
      };
      const before = x.dp.egressDecision(x.clientIP, ip, PROBE_PORT, 'TCP');
      if (before?.enforced !== true || before.allowed) {
        throw new Error(`remote: ${ip} is not denied on ${x.a.node.name} before it exists`);
      }
      const subs = [
        x.a.views.ipcache.onChange(check),
        x.a.views.identities.onChange(check),
        x.a.views.policy.onChange(check),
      ];
      return { m, unsubscribe: () => subs.forEach((u) => u()) };
    });
    const t0 = performance.now();
    try {
      await far.registry.create<CiliumIdentity>({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumIdentity',
        metadata: { name: String(id) },
        'security-labels': labels,
      });
      await far.registry.create<CiliumEndpoint>({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumEndpoint',
        metadata: { name, namespace: 'default' },
        status: {
          id: 0xc000 + i,
          identity: {
            id,
            labels: Object.entries(labels)
              .map(([k, v]) => `${k}=${v}`)
              .sort(),
          },
          networking: { addressing: [{ ipv4: ip }], node: `127.${String(farId)}.0.1` },
          state: 'ready',
        },
      });
      await waitFor(`${ip} allowed on ${home.name}`, () =>
        marks.every(({ m }) => m.known !== undefined && m.allowed !== undefined),
      );
    } finally {
      for (const { unsubscribe } of marks) unsubscribe();
    }
    for (const { m } of marks) {
      const known = (m.known ?? t0) - t0;
      const ok = (m.allowed ?? t0) - t0;
      propagated.push(known);
      allowed.push(ok);
      ratios.push(ok / known);
    }
    await sleep(o.gapMs);
  }
  return { propagated, allowed, ratios, observers: observers.length };
}
