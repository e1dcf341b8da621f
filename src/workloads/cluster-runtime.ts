import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { throwIfAborted } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { Registry } from '../registry/registry.js';
import type { Controller } from './controller.js';
import { DeploymentController } from './deployments.js';
import { EndpointSliceController } from './endpointslices.js';
import { IdentityAllocator } from './identity-allocator.js';
import type { ConnectionHook, Image } from './images.js';
import type { ExecProbeRunner } from './probes.js';
import { SharedInformers } from './informers.js';
import { registerNodes, validateNodes, type RuntimeNode } from './nodes.js';
import { PodController, type RunningPodInfo, type SystemEndpoint } from './pods.js';
import { ServiceIPAllocator, ServiceIPController } from './service-ips.js';

export type { RuntimeNode } from './nodes.js';
export type { ConnectionHook, WorkloadConnection } from './images.js';
export type { ExecProbeRunner } from './probes.js';
export type { RunningPodInfo, SystemEndpoint } from './pods.js';
export { PodLogs } from './pod-logs.js';
import { PodLogs } from './pod-logs.js';

export interface ClusterRuntimeOptions {
  readonly cluster: { readonly name: string; readonly id: number };
  readonly nodes: readonly RuntimeNode[];
  /** The cluster's kvstore; the registry lives in it. */
  readonly backend: Backend;
  /** `127.1.128.0/17`. */
  readonly serviceCIDR: string;
  /** Never allocated to a Service that does not ask for them (the DNS IP `127.1.128.10`). */
  readonly reservedServiceIPs?: readonly string[];
  /** pino. */
  readonly log: Logger;
  /** Endpoints the mesh runs outside pods (the DNS server), given identities at start. */
  readonly systemEndpoints?: readonly SystemEndpoint[] | undefined;
  /** Every connection a workload accepts (the lead records it as an ingress flow). */
  readonly onConnection?: ConnectionHook | undefined;
  /** Runs exec probes' commands as the pod (without it, exec probes pass). */
  readonly execProbe?: ExecProbeRunner | undefined;
  /** The restart back-off after liveness kills (default: the kubelet's 10 s → 5 min). */
  readonly restartBackoff?: { readonly initialMs: number; readonly maxMs: number } | undefined;
  /** Images beyond the built-in ones (kube-system's), by name without tag. */
  readonly images?: ReadonlyMap<string, Image> | undefined;
}

/**
 * The workloads of one cluster in local mode: the part of Kubernetes that `clustermesh up`
 * does not borrow. Controllers watch the cluster's registry and keep it and the running
 * workloads in line with what users applied:
 *
 * - pods: scheduling, pod IPs, identities, workloads, CiliumEndpoints, pod status;
 * - deployments: replicas, rollouts, status;
 * - service-ips: ClusterIPs;
 * - endpointslices: the EndpointSlices of Services with a selector.
 *
 * Nothing is kept outside the registry: a new runtime on the same kvstore rebuilds its
 * allocations from it and resumes the pods with their addresses and identities.
 */
export class ClusterRuntime {
  private readonly log: Logger;
  private readonly ac = new AbortController();
  private readonly tasks: Promise<void>[] = [];
  private state: 'new' | 'starting' | 'running' | 'stopped' = 'new';
  private podController: PodController | undefined;
  private unlink: (() => void) | undefined;

  constructor(private readonly opts: ClusterRuntimeOptions) {
    this.log = opts.log.child({ cluster: opts.cluster.name });
  }

  /** Registers the CiliumNodes, starts the controllers; resolves once every informer has synced and the existing objects were reconciled. */
  async start(signal?: AbortSignal): Promise<void> {
    if (this.state !== 'new') {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `cluster ${this.opts.cluster.name}: the workload runtime can be started once`,
      );
    }
    this.state = 'starting';
    const o = this.opts;
    validateNodes(o.cluster.name, o.nodes);
    const serviceIPs = new ServiceIPAllocator(o.serviceCIDR, o.reservedServiceIPs);
    if (signal !== undefined) {
      const onAbort = (): void => {
        this.ac.abort(signal.reason);
      };
      if (signal.aborted) onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      this.unlink = () => {
        signal.removeEventListener('abort', onAbort);
      };
    }
    const sig = this.ac.signal;
    try {
      const registry = new Registry(o.backend, { log: this.log });
      await registerNodes(registry, o.nodes);
      // Stopped meanwhile: start nothing that `stop` would not wait for.
      throwIfAborted(sig);
      const controllers = this.wire(registry, serviceIPs);
      await controllers.informers.synced(sig);
      // Allocations first: no reconcile may hand out an address a running pod holds.
      controllers.pods.restore();
      controllers.serviceIPs.restore();
      for (const c of controllers.all) this.spawn(c.name, c.run(sig));
      await Promise.all(controllers.all.map((c) => c.initialSync));
      for (const se of o.systemEndpoints ?? []) await controllers.pods.ensureSystemEndpoint(se);
      throwIfAborted(sig);
      this.state = 'running';
      this.log.info(
        { nodes: o.nodes.length, pods: this.pods().length },
        'workload runtime started',
      );
    } catch (err) {
      await this.stop();
      throw err;
    }
  }

  /** Stops controllers and every workload socket; leaves registry objects as they are. */
  async stop(): Promise<void> {
    if (this.state === 'stopped') return;
    this.state = 'stopped';
    this.ac.abort();
    this.unlink?.();
    await Promise.all(this.tasks);
    await this.podController?.closeAll();
  }

  /** Running pods (for exec and tests). */
  /** What the pods' containers wrote (`kubectl logs`); empty until started. */
  readonly logs = new PodLogs();

  pods(): readonly RunningPodInfo[] {
    return this.podController?.runningPods() ?? [];
  }

  private wire(
    registry: Registry,
    allocator: ServiceIPAllocator,
  ): {
    informers: SharedInformers;
    pods: PodController;
    serviceIPs: ServiceIPController;
    all: Controller[];
  } {
    const o = this.opts;
    const log = this.log;
    const informers = new SharedInformers(o.backend, log);
    const pods = informers.subscribe('Pod');
    const deployments = informers.subscribe('Deployment');
    const services = informers.subscribe('Service');
    const slices = informers.subscribe('EndpointSlice');
    const endpoints = informers.subscribe('CiliumEndpoint');
    informers.subscribe('CiliumIdentity');
    const namespaces = informers.subscribe('Namespace');
    const configMaps = informers.subscribe('ConfigMap');

    const identities = new IdentityAllocator(registry, o.cluster, log);
    const podCtl = new PodController({
      cluster: o.cluster,
      nodes: o.nodes,
      registry,
      pods,
      endpoints,
      namespaces,
      identities,
      log,
      onConnection: o.onConnection,
      logs: this.logs,
      images: o.images,
      configMaps,
      execProbe: o.execProbe,
      restartBackoff: o.restartBackoff,
    });
    const deployCtl = new DeploymentController({ registry, informers, deployments, pods, log });
    const ipCtl = new ServiceIPController({ registry, services, allocator, log });
    const sliceCtl = new EndpointSliceController({ registry, services, pods, slices, log });
    this.podController = podCtl;

    informers.subscribe('Pod', (ev) => {
      podCtl.onPod(ev);
      deployCtl.onPod(ev);
      sliceCtl.onPod(ev);
    });
    informers.subscribe('Deployment', (ev) => {
      deployCtl.onDeployment(ev);
    });
    informers.subscribe('Service', (ev) => {
      ipCtl.onService(ev);
      sliceCtl.onService(ev);
    });
    informers.subscribe('EndpointSlice', (ev) => {
      sliceCtl.onSlice(ev);
    });
    informers.subscribe('CiliumEndpoint', (ev) => {
      podCtl.onEndpoint(ev);
    });
    informers.subscribe('Namespace', (ev) => {
      podCtl.onNamespace(ev);
    });
    informers.subscribe('ConfigMap', (ev) => {
      podCtl.onConfigMap(ev);
    });
    informers.subscribe('CiliumIdentity', (ev) => {
      identities.observe(ev);
      podCtl.onIdentity(ev);
    });
    this.spawn('informers', informers.run(this.ac.signal));
    return {
      informers,
      pods: podCtl,
      serviceIPs: ipCtl,
      all: [podCtl.controller, deployCtl.controller, ipCtl.controller, sliceCtl.controller],
    };
  }

  /** Keeps a background task for `stop` to await; its failure is logged, never unhandled. */
  private spawn(name: string, task: Promise<void>): void {
    this.tasks.push(
      task.catch((err: unknown) => {
        this.log.error({ task: name, err: errorMessage(err) }, 'runtime task failed');
      }),
    );
  }
}
