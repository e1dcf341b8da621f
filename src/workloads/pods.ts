import type { Logger } from 'pino';
import { rfc3339Now } from '../keyspace/index.js';
import { errorMessage } from '../lib/errors.js';
import { sameJson } from '../registry/codec.js';
import type { ConfigMap, Namespace, Pod, PodStatus } from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type { CiliumEndpoint, CiliumIdentity, Informer, ObjectEvent } from '../registry/types.js';
import { Controller, keyOf, oldestFirst, splitKey } from './controller.js';
import {
  EndpointIds,
  deleteEndpoint,
  desiredEndpoint,
  isOwnedByPod,
  writeEndpoint,
} from './endpoints.js';
import { IdentityAllocator, podSecurityLabels } from './identity-allocator.js';
import {
  BUILTIN_IMAGES,
  imageName,
  resolveImage,
  type ConnectionHook,
  type Image,
  type Workload,
} from './images.js';
import { PodIPAM } from './ipam.js';
import type { RuntimeNode } from './nodes.js';
import { PodLogs } from './pod-logs.js';
import { PodReason, isPodTerminal, notRunningStatus, runningStatus } from './pod-status.js';
import { pickNode, placementOf } from './scheduler.js';
import { configMapsOf, containerFiles, missingConfigMap } from './volumes.js';
import { PodProbes, type ExecProbeRunner } from './probes.js';

/**
 * The kubelet and scheduler of the local cluster in one controller: it places pods on
 * nodes, gives them an IP from the node's CIDR and an identity, starts their workloads in
 * this process, and writes their CiliumEndpoint and status.
 */

export interface PodControllerOptions {
  readonly cluster: { readonly name: string; readonly id: number };
  readonly nodes: readonly RuntimeNode[];
  readonly registry: Registry;
  readonly pods: Informer<Pod>;
  readonly endpoints: Informer<CiliumEndpoint>;
  /** Namespace labels are part of a pod's identity (NetworkPolicy namespaceSelector). */
  readonly namespaces?: Informer<Namespace> | undefined;
  readonly identities: IdentityAllocator;
  readonly log: Logger;
  readonly onConnection?: ConnectionHook | undefined;
  readonly now?: (() => Date) | undefined;
  /** Where containers write their output (default: a store of the controller's own). */
  readonly logs?: PodLogs | undefined;
  /**
   * Images of this cluster beyond the built-in ones, by name without tag (the Cilium
   * agent and clustermesh-apiserver images of kube-system, which the mesh provides).
   */
  readonly images?: ReadonlyMap<string, Image> | undefined;
  /** Runs exec probes' commands in a pod (without it, exec probes pass). */
  readonly execProbe?: ExecProbeRunner | undefined;
  /** The ConfigMaps pods mount (a pod waits for a missing one). */
  readonly configMaps?: Informer<ConfigMap> | undefined;
  /**
   * The kubelet's restart back-off after a liveness kill: the first restart is at once,
   * each later one waits `initialMs` doubled per restart up to `maxMs` (10 s and 5 min, as
   * the kubelet); a container that ran `2 × maxMs` since its last kill starts over.
   */
  readonly restartBackoff?: { readonly initialMs: number; readonly maxMs: number } | undefined;
}

/** A pod whose killed containers wait for their restart (`CrashLoopBackOff`). */
interface CrashLoop {
  readonly containers: ReadonlySet<string>;
  /** When the restart is due (epoch ms). */
  readonly until: number;
  readonly delayMs: number;
  readonly timer: NodeJS.Timeout;
}

/** `spec.hostNetwork: true`: the pod shares its node's address and has no endpoint. */
export function isHostNetwork(pod: Pod): boolean {
  return pod.spec.hostNetwork === true;
}

/** A pod whose workloads run in this process. */
interface RunningPod {
  readonly uid: string;
  readonly namespace: string;
  readonly name: string;
  readonly node: RuntimeNode;
  readonly ip: string;
  /** What the workloads were started from; a change restarts them. */
  readonly signature: string;
  readonly workloads: readonly Workload[];
  identity: number;
  /** Its readiness and liveness probes, while it runs. */
  probes?: PodProbes | undefined;
}

/**
 * An endpoint the runtime provides itself rather than as a pod: the cluster DNS server,
 * which policy must see as `k8s:k8s-app=kube-dns` in `kube-system` (a default-deny
 * egress policy then blocks DNS unless it allows it, as in Cilium).
 */
export interface SystemEndpoint {
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly labels: Readonly<Record<string, string>>;
  readonly serviceAccount: string;
}

export interface RunningPodInfo {
  readonly namespace: string;
  readonly name: string;
  readonly node: string;
  readonly ip: string;
  readonly phase: string;
}

export class PodController {
  readonly controller: Controller;
  private readonly ipam: PodIPAM;
  private readonly endpointIds = new EndpointIds();
  private readonly running = new Map<string, RunningPod>();
  /** Containers whose liveness probe failed, to restart at the pod's next reconcile. */
  private readonly toRestart = new Map<string, Set<string>>();
  /** Restarts per `namespace/pod/container` (containerStatuses' restartCount). */
  private readonly restarts = new Map<string, number>();
  /** Pods waiting for an address on a full node → the node. */
  private readonly waitingForIP = new Map<string, string>();
  /** Pods in a restart back-off. */
  private readonly crashLoops = new Map<string, CrashLoop>();
  /** Per `namespace/pod/container`: its last liveness kill (lastState.terminated). */
  private readonly terminations = new Map<string, { startedAt: string; finishedAt: string }>();
  /** Per `namespace/pod/container`: restarts counted towards the back-off. */
  private readonly backoffSteps = new Map<string, number>();
  /** When each running pod's containers last started (epoch ms). */
  private readonly startedAt = new Map<string, number>();
  private readonly log: Logger;
  private readonly now: () => Date;
  /** What the pods' containers wrote (`kubectl logs`). */
  readonly logs: PodLogs;

  constructor(private readonly o: PodControllerOptions) {
    this.logs = o.logs ?? new PodLogs();
    this.log = o.log.child({ controller: 'pods' });
    this.ipam = new PodIPAM(o.nodes);
    this.now = o.now ?? (() => new Date());
    this.controller = new Controller('pods', (key) => this.reconcile(key), this.log);
  }

  onPod(ev: ObjectEvent<Pod>): void {
    this.controller.enqueue(keyOf(ev.object.metadata.namespace, ev.object.metadata.name));
  }

  /** An endpoint changed by someone else is repaired; one left over from a gone pod is deleted. */
  onEndpoint(ev: ObjectEvent<CiliumEndpoint>): void {
    if (isOwnedByPod(ev.object)) {
      this.controller.enqueue(keyOf(ev.object.metadata.namespace, ev.object.metadata.name));
    }
  }

  /** Relabelling a namespace changes the identity of each of its pods. */
  onNamespace(ev: ObjectEvent<Namespace>): void {
    for (const key of this.running.keys()) {
      if (splitKey(key).namespace === ev.object.metadata.name) this.controller.enqueue(key);
    }
  }

  /** A ConfigMap that appears lets the pods waiting to mount it start. */
  onConfigMap(ev: ObjectEvent<ConfigMap>): void {
    const ns = ev.object.metadata.namespace ?? 'default';
    for (const pod of this.o.pods.list()) {
      if ((pod.metadata.namespace ?? 'default') !== ns) continue;
      if (configMapsOf(pod).includes(ev.object.metadata.name)) {
        this.controller.enqueue(keyOf(ns, pod.metadata.name));
      }
    }
  }

  /** A deleted identity is replaced for the pods that used it. */
  onIdentity(ev: ObjectEvent<CiliumIdentity>): void {
    if (ev.type !== 'deleted') return;
    const id = Number(ev.object.metadata.name);
    for (const [key, run] of this.running) if (run.identity === id) this.controller.enqueue(key);
  }

  /**
   * Claims the addresses and endpoint IDs recorded in the registry, before any pod is
   * reconciled, so that pods keep them across restarts. Oldest pods first: should two
   * claim one address, the younger one gets a new one.
   */
  restore(): void {
    const pods = [...this.o.pods.list()].sort(oldestFirst);
    for (const pod of pods) {
      const ip = pod.status?.podIP;
      const placement = placementOf(pod, this.o.nodes);
      if (ip === undefined || isPodTerminal(pod) || placement.kind !== 'bound') continue;
      if (isHostNetwork(pod)) continue;
      this.ipam.claim(keyOf(pod.metadata.namespace, pod.metadata.name), placement.node.name, ip);
    }
    for (const cep of this.o.endpoints.list()) {
      const node = this.o.nodes.find((n) => n.ip === cep.status.networking?.node);
      const key = keyOf(cep.metadata.namespace, cep.metadata.name);
      if (node !== undefined && cep.status.id !== undefined && isOwnedByPod(cep)) {
        this.endpointIds.allocate(key, node.name, cep.status.id);
      }
    }
  }

  /**
   * Gives a system endpoint its identity and CiliumEndpoint (on the first node). The
   * endpoint carries no Pod owner, so the pod reconciler leaves it alone.
   */
  async ensureSystemEndpoint(se: SystemEndpoint): Promise<void> {
    const node = this.o.nodes[0];
    if (node === undefined) return;
    const pod: Pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { namespace: se.namespace, name: se.name, labels: { ...se.labels } },
      spec: { containers: [], serviceAccountName: se.serviceAccount },
    };
    const nsLabels = this.o.namespaces?.get(undefined, se.namespace)?.metadata.labels;
    const identity = await this.o.identities.allocate(
      podSecurityLabels(pod, this.o.cluster.name, nsLabels),
    );
    const key = keyOf(se.namespace, se.name);
    const cached = this.o.endpoints.get(se.namespace, se.name);
    const endpointId = this.endpointIds.allocate(key, node.name, cached?.status.id);
    if (endpointId === undefined) return;
    const desired = desiredEndpoint({ pod, node, ip: se.ip, endpointId, identity });
    const { ownerReferences: _owners, ...metadata } = desired.metadata;
    await writeEndpoint(this.o.registry, this.o.endpoints, { ...desired, metadata });
    this.log.info({ endpoint: key, ip: se.ip, identity: identity.id }, 'system endpoint ready');
  }

  runningPods(): RunningPodInfo[] {
    return [...this.running.values()].map((r) => ({
      namespace: r.namespace,
      name: r.name,
      node: r.node.name,
      ip: r.ip,
      phase: 'Running',
    }));
  }

  /** Stops every workload (the registry keeps the pods: a restart resumes them). */
  async closeAll(): Promise<void> {
    const all = [...this.running.values()];
    this.running.clear();
    for (const r of all) r.probes?.stop();
    await Promise.all(all.map((r) => closeWorkloads(r.workloads, this.log)));
  }

  private async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const pod = this.o.pods.get(namespace, name);
    if (pod === undefined) {
      await this.release(key);
      await deleteEndpoint(this.o.registry, namespace, name);
      this.logs.drop(namespace, name);
      return;
    }
    const placement = placementOf(pod, this.o.nodes);
    if (placement.kind === 'unknown-node') {
      const known = this.o.nodes.map((n) => n.name).join(', ');
      await this.notRunning(pod, 'Failed', PodReason.NodeNotFound, {
        message: `node ${JSON.stringify(placement.nodeName)} is not a node of cluster ${this.o.cluster.name} (nodes: ${known})`,
      });
      return;
    }
    const node = placement.kind === 'bound' ? placement.node : this.schedule(key);
    if (node === undefined) return;
    const log = this.log.child({ node: node.name, pod: key });

    const unknown = pod.spec.containers.find((c) => this.image(c.image) === undefined);
    if (unknown !== undefined) {
      await this.notRunning(pod, 'Failed', PodReason.UnknownImage, {
        node,
        message: `container ${JSON.stringify(unknown.name)}: image ${JSON.stringify(unknown.image)} is not a built-in image (built-in: ${BUILTIN_IMAGES.join(', ')}, any tag)`,
      });
      return;
    }

    const mount = missingConfigMap(pod, (n) => this.o.configMaps?.get(namespace, n));
    if (mount !== undefined && this.o.configMaps !== undefined) {
      // As the kubelet: the pod stays ContainerCreating until the ConfigMap exists.
      await this.notRunning(pod, 'Pending', PodReason.ContainerCreating, { node, message: mount });
      return;
    }

    if (isHostNetwork(pod)) {
      await this.reconcileHostNetwork(key, pod, node, log);
      return;
    }
    const ip = this.address(key, pod, node);
    if (ip === undefined) {
      await this.notRunning(pod, 'Pending', PodReason.IPExhausted, {
        node,
        message: `no free pod IP in ${this.ipam.cidrOf(node.name) ?? '?'} on node ${node.name}; the pod starts when one is released`,
      });
      this.waitingForIP.set(key, node.name);
      return;
    }
    this.waitingForIP.delete(key);

    const nsLabels = this.o.namespaces?.get(undefined, namespace)?.metadata.labels;
    const identity = await this.o.identities.allocate(
      podSecurityLabels(pod, this.o.cluster.name, nsLabels),
    );

    const uid = pod.metadata.uid ?? '';
    const signature = JSON.stringify([uid, node.name, ip, pod.spec.containers]);
    let run = this.running.get(key);
    let restart = this.toRestart.get(key);
    this.toRestart.delete(key);
    const crash = this.crashLoops.get(key);
    if (crash !== undefined && run === undefined && this.now().getTime() < crash.until) {
      // Still backing off (this reconcile is another change's): the status says so.
      await this.writeStatus(pod, node, (cur) => this.statusOf(key, cur, ip, node, undefined));
      return;
    }
    if (crash !== undefined) {
      clearTimeout(crash.timer);
      this.crashLoops.delete(key);
      restart = new Set([...(restart ?? []), ...crash.containers]);
    } else if (restart !== undefined && run?.signature === signature) {
      const delayMs = this.backoffOf(key, restart);
      this.recordKill(key, restart);
      if (delayMs > 0) {
        // The kubelet kills the container now and starts it again only after the delay.
        this.running.delete(key);
        run.probes?.stop();
        await closeWorkloads(run.workloads, log);
        const timer = setTimeout(() => this.controller.enqueue(key), delayMs);
        timer.unref();
        this.crashLoops.set(key, {
          containers: restart,
          until: this.now().getTime() + delayMs,
          delayMs,
          timer,
        });
        log.info({ containers: [...restart], delayMs }, 'Back-off restarting failed container');
        await this.writeStatus(pod, node, (cur) => this.statusOf(key, cur, ip, node, undefined));
        return;
      }
    } else if (restart !== undefined) {
      this.recordKill(key, restart);
    }
    if (run?.signature !== signature || restart !== undefined) {
      if (run !== undefined) {
        this.running.delete(key);
        run.probes?.stop();
        await closeWorkloads(run.workloads, log);
      }
      for (const c of restart ?? []) {
        const rk = `${key}/${c}`;
        this.restarts.set(rk, (this.restarts.get(rk) ?? 0) + 1);
      }
      const started = await this.start(pod, node, ip, log);
      if (!started.ok) {
        await this.notRunning(pod, 'Failed', started.reason, { node, message: started.message });
        return;
      }
      run = {
        uid,
        namespace,
        name,
        node,
        ip,
        signature,
        workloads: started.workloads,
        identity: identity.id,
      };
      run.probes = this.probe(key, pod, node, ip, log);
      this.running.set(key, run);
      this.startedAt.set(key, this.now().getTime());
      log.info({ ip, identity: identity.id }, 'pod started');
    }
    run.identity = identity.id;

    const cached = this.o.endpoints.get(namespace, name);
    const endpointId = this.endpointIds.allocate(key, node.name, cached?.status.id);
    if (endpointId !== undefined) {
      await writeEndpoint(
        this.o.registry,
        this.o.endpoints,
        desiredEndpoint({ pod, node, ip, endpointId, identity }),
      );
    } else {
      log.warn('no free endpoint ID on the node; the pod runs without a CiliumEndpoint');
    }
    const probes = run.probes;
    await this.writeStatus(pod, node, (cur) => this.statusOf(key, cur, ip, node, probes));
  }

  /** A started pod's status: probes' readiness, restarts, and a back-off in progress. */
  private statusOf(
    key: string,
    cur: Pod,
    ip: string,
    node: RuntimeNode,
    probes: PodProbes | undefined,
  ): PodStatus {
    const crash = this.crashLoops.get(key);
    const { namespace, name } = splitKey(key);
    return runningStatus(
      cur,
      {
        podIP: ip,
        hostIP: node.ip,
        ready: (c) => probes?.isReady(c) ?? true,
        restartCount: (c) => this.restarts.get(`${key}/${c}`) ?? 0,
        waiting: (c) =>
          crash?.containers.has(c) === true
            ? {
                reason: 'CrashLoopBackOff',
                message: `back-off ${formatSeconds(crash.delayMs)} restarting failed container=${c} pod=${name}_${namespace}(${cur.metadata.uid ?? ''})`,
              }
            : undefined,
        lastTerminated: (c) => this.terminations.get(`${key}/${c}`),
      },
      this.now(),
    );
  }

  /** The delay before restarting `containers` after a liveness kill (the longest of them). */
  private backoffOf(key: string, containers: ReadonlySet<string>): number {
    const { initialMs, maxMs } = this.o.restartBackoff ?? { initialMs: 10_000, maxMs: 300_000 };
    const now = this.now().getTime();
    let delay = 0;
    for (const c of containers) {
      const rk = `${key}/${c}`;
      const ranFor = now - (this.startedAt.get(key) ?? now);
      // A container that ran long enough since its last kill starts over.
      const steps = ranFor >= 2 * maxMs ? 0 : (this.backoffSteps.get(rk) ?? 0);
      this.backoffSteps.set(rk, steps + 1);
      if (steps > 0) delay = Math.max(delay, Math.min(maxMs, initialMs * 2 ** (steps - 1)));
    }
    return delay;
  }

  private recordKill(key: string, containers: ReadonlySet<string>): void {
    const now = this.now();
    const started = this.startedAt.get(key);
    for (const c of containers) {
      this.terminations.set(`${key}/${c}`, {
        startedAt: rfc3339Now(started === undefined ? now : new Date(started)),
        finishedAt: rfc3339Now(now),
      });
    }
  }

  /** The kubelet's probes of a started pod; their verdicts come back as reconciles. */
  private probe(
    key: string,
    pod: Pod,
    node: RuntimeNode,
    ip: string,
    log: Logger,
  ): PodProbes | undefined {
    const probed = pod.spec.containers.some(
      (c) => c.readinessProbe !== undefined || c.livenessProbe !== undefined,
    );
    if (!probed) return undefined;
    return new PodProbes(
      {
        namespace: pod.metadata.namespace ?? 'default',
        pod: pod.metadata.name,
        ip,
        nodeIP: node.ip,
        node: node.name,
      },
      pod.spec.containers,
      {
        exec: this.o.execProbe,
        log,
        onChange: () => {
          this.controller.enqueue(key);
        },
        onLivenessFailure: (container) => {
          const set = this.toRestart.get(key) ?? new Set<string>();
          set.add(container);
          this.toRestart.set(key, set);
          this.controller.enqueue(key);
        },
      },
    );
  }

  private image(ref: string): Image | undefined {
    return this.o.images?.get(imageName(ref)) ?? resolveImage(ref);
  }

  /**
   * A host-network pod (the Cilium agent's): its node's address, no pod IP, no identity
   * and no CiliumEndpoint, as Cilium leaves host-network pods to the host endpoint.
   */
  private async reconcileHostNetwork(
    key: string,
    pod: Pod,
    node: RuntimeNode,
    log: Logger,
  ): Promise<void> {
    const uid = pod.metadata.uid ?? '';
    const signature = JSON.stringify([uid, node.name, 'host', pod.spec.containers]);
    const run = this.running.get(key);
    if (run?.signature !== signature) {
      if (run !== undefined) {
        this.running.delete(key);
        await closeWorkloads(run.workloads, log);
      }
      // An address it held before it became host-network goes back to the node.
      const freed = this.ipam.release(key);
      if (freed !== undefined) this.wakeWaiting(freed.node);
      const started = await this.start(pod, node, node.ip, log);
      if (!started.ok) {
        await this.notRunning(pod, 'Failed', started.reason, { node, message: started.message });
        return;
      }
      this.running.set(key, {
        uid,
        namespace: pod.metadata.namespace ?? 'default',
        name: pod.metadata.name,
        node,
        ip: node.ip,
        signature,
        workloads: started.workloads,
        identity: 0,
      });
      log.info({ ip: node.ip }, 'host-network pod started');
    }
    await this.writeStatus(pod, node, (cur) =>
      runningStatus(cur, { podIP: node.ip, hostIP: node.ip }, this.now()),
    );
  }

  /**
   * A node for an unbound pod: the one where it already holds an address (its binding was
   * not written yet), else the least loaded.
   */
  private schedule(key: string): RuntimeNode | undefined {
    const held = this.ipam.addressOf(key);
    const node = this.o.nodes.find((n) => n.name === held?.node);
    return node ?? pickNode(this.o.nodes, (n) => this.ipam.used(n));
  }

  /** The pod's address on `node`: kept, taken back from its status, or the lowest free. */
  private address(key: string, pod: Pod, node: RuntimeNode): string | undefined {
    const held = this.ipam.addressOf(key);
    if (held?.node === node.name) return held.ip;
    const previous = pod.status?.podIP;
    let ip: string | undefined;
    if (previous !== undefined && pod.status?.hostIP === node.ip) {
      if (this.ipam.claim(key, node.name, previous)) ip = previous;
    }
    ip ??= this.ipam.allocate(key, node.name);
    // Moving frees an address on the old node.
    if (ip !== undefined && held !== undefined) this.wakeWaiting(held.node);
    return ip;
  }

  private async start(
    pod: Pod,
    node: RuntimeNode,
    ip: string,
    log: Logger,
  ): Promise<{ ok: true; workloads: Workload[] } | { ok: false; reason: string; message: string }> {
    const workloads: Workload[] = [];
    for (const container of pod.spec.containers) {
      const image = this.image(container.image);
      if (image === undefined) continue;
      const r = await image.start({
        cluster: this.o.cluster.name,
        node: node.name,
        namespace: pod.metadata.namespace ?? 'default',
        pod: pod.metadata.name,
        podIP: ip,
        container,
        onConnection: this.o.onConnection,
        files: () =>
          containerFiles(pod, container, (n) =>
            this.o.configMaps?.get(pod.metadata.namespace ?? 'default', n),
          ),
        log: log.child({ container: container.name }),
        output: (line) => {
          this.logs.write(
            pod.metadata.namespace ?? 'default',
            pod.metadata.name,
            container.name,
            line,
          );
        },
      });
      if (!r.ok) {
        await closeWorkloads(workloads, log);
        return r;
      }
      workloads.push(r.workload);
    }
    return { ok: true, workloads };
  }

  /** Stops what runs for the pod, frees its resources and records why it does not run. */
  private async notRunning(
    pod: Pod,
    phase: 'Pending' | 'Failed',
    reason: string,
    opts: { readonly node?: RuntimeNode; readonly message: string },
  ): Promise<void> {
    const key = keyOf(pod.metadata.namespace, pod.metadata.name);
    const node = opts.node;
    await this.release(key);
    await deleteEndpoint(this.o.registry, pod.metadata.namespace ?? 'default', pod.metadata.name);
    if (pod.status?.reason !== reason) {
      this.log.warn(
        { pod: key, node: node?.name, reason, message: opts.message },
        'pod not running',
      );
    }
    await this.writeStatus(pod, node, (cur) =>
      notRunningStatus(cur, phase, reason, opts.message, node?.ip, this.now()),
    );
  }

  private async release(key: string): Promise<void> {
    this.waitingForIP.delete(key);
    const run = this.running.get(key);
    if (run !== undefined) {
      this.running.delete(key);
      run.probes?.stop();
      await closeWorkloads(run.workloads, this.log);
      this.log.info({ pod: key, node: run.node.name, ip: run.ip }, 'pod stopped');
    }
    this.toRestart.delete(key);
    const crash = this.crashLoops.get(key);
    if (crash !== undefined) clearTimeout(crash.timer);
    this.crashLoops.delete(key);
    this.startedAt.delete(key);
    for (const m of [this.restarts, this.terminations, this.backoffSteps]) {
      for (const rk of m.keys()) if (rk.startsWith(`${key}/`)) m.delete(rk);
    }
    this.endpointIds.release(key);
    const freed = this.ipam.release(key);
    if (freed !== undefined) this.wakeWaiting(freed.node);
  }

  private wakeWaiting(node: string): void {
    for (const [key, n] of this.waitingForIP) if (n === node) this.controller.enqueue(key);
  }

  /**
   * Binds the pod to `node` (spec.nodeName, as the scheduler does) and writes the status
   * built from the stored pod, unless the cached pod already says so.
   */
  private async writeStatus(
    pod: Pod,
    node: RuntimeNode | undefined,
    build: (cur: Pod) => PodStatus,
  ): Promise<void> {
    const change = (cur: Pod): Pod | undefined => {
      const nodeName = node?.name ?? cur.spec.nodeName;
      const status = build(cur);
      if (cur.spec.nodeName === nodeName && sameJson(cur.status, status)) return undefined;
      return { ...cur, spec: { ...cur.spec, nodeName }, status };
    };
    if (change(pod) === undefined) return;
    await this.o.registry.patch('Pod', pod.metadata.namespace, pod.metadata.name, (cur) =>
      // A pod deleted and created again under the same name is another pod.
      cur.metadata.uid === pod.metadata.uid ? change(cur) : undefined,
    );
  }
}

async function closeWorkloads(workloads: readonly Workload[], log: Logger): Promise<void> {
  await Promise.all(
    workloads.map(async (w) => {
      try {
        await w.close();
      } catch (err) {
        log.warn({ err: errorMessage(err) }, 'workload did not close cleanly');
      }
    }),
  );
}

/** `10s`, `5m0s`: durations as the kubelet's back-off messages print them. */
function formatSeconds(ms: number): string {
  const s = Math.round(ms / 1000);
  return s < 60 ? `${s}s` : `${Math.floor(s / 60)}m${s % 60}s`;
}
