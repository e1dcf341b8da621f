/**
 * A VM of the local mesh: the agent in external-workload mode (registration, then the
 * cluster's nodes, identities, ipcache, services and policies read from its kvstore as
 * the `externalworkload` user), a datapath of its own at the VM's address, and an echo
 * workload on port 80 whose connections pass the VM's ingress policy.
 */
import type { Logger } from 'pino';
import { Agent, type AgentDatapath } from '../agent/module.js';
import type { AgentViews } from '../agent/views.js';
import {
  NodeDatapath,
  type Addr,
  type ConnectVerdict,
  type L4Proto,
} from '../datapath/datapath.js';
import type { FlowLog } from '../datapath/flows.js';
import { HEALTH_PORT } from '../health/prober.js';
import { DefaultMaxConnectedClusters } from '../keyspace/index.js';
import type { KvstoreConfig } from '../kvstore/config.js';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { resolveImage, type Workload } from '../workloads/images.js';
import { WorkloadRegistrar } from './join.js';

export const VM_API_PORT = 9876;
export const VM_WORKLOAD_PORT = 80;
/**
 * The TTL of the VM's session lease (unless its etcd config sets etcd.leaseTTL): its
 * registration lives on that lease, so a VM killed without unregistering shows
 * disconnected this long after its last keepalive (sent every third of it).
 */
export const VM_LEASE_TTL_SECONDS = 10;

export interface VmAgentOptions {
  readonly cluster: string;
  readonly clusterId: number;
  readonly name: string;
  readonly ip: string;
  /** The cluster's kvstore as the `externalworkload` user. */
  readonly kvstore: KvstoreConfig;
  /** Default `<ip>:9876`. */
  readonly apiAddr?: string | undefined;
  /** Run the echo workload on port 80 (default true). */
  readonly workload?: boolean | undefined;
  /** The VM's health endpoint (default on, port 4240 of its address, as a node's). */
  readonly health?: boolean | undefined;
  readonly answerTimeoutMs?: number | undefined;
  readonly onRefused?: ((message: string) => void) | undefined;
  readonly log: Logger;
}

/**
 * The VM's datapath: a node datapath whose only endpoint is the VM. Unlike a node of the
 * local mesh, a VM translates services itself (socket load-balancing), so its egress
 * policy decides on the backend a ClusterIP connection would go to.
 */
class VmDatapath implements AgentDatapath {
  constructor(readonly dp: NodeDatapath) {}

  get flows(): FlowLog {
    return this.dp.flows;
  }

  connect(src: Addr, dst: Addr, proto: L4Proto): ConnectVerdict {
    const t = proto === 'TCP' ? this.dp.translate(src, dst) : undefined;
    if (t === undefined) {
      const v = this.dp.connect(src, dst, proto);
      // A service without a usable backend: the proxy answers for it.
      return v;
    }
    const d = this.dp.egressDecision(src.ip, t.backend.ip, t.backend.port, proto);
    if (d !== undefined && d.enforced && !d.allowed) {
      const flow = this.dp.recordDropped(src, dst, 'POLICY_DENIED', t.frontend, t.backend, {
        decision: d,
      });
      return { verdict: 'dropped', reason: d.reason ?? 'POLICY_DENIED', flow };
    }
    return { verdict: 'allowed', flow: this.dp.recordForwarded(src, dst, t, d) };
  }

  backendHealth(address: string): 'healthy' | 'unhealthy' {
    return this.dp.backendHealth(address);
  }

  close(): void {
    this.dp.close();
  }
}

export class VmAgent {
  readonly agent: Agent;
  readonly registrar: WorkloadRegistrar;
  private datapath: VmDatapath | undefined;
  private workload: Workload | undefined;
  private readonly log: Logger;

  constructor(private readonly opts: VmAgentOptions) {
    this.log = opts.log.child({ vm: opts.name });
    this.registrar = new WorkloadRegistrar({
      name: opts.name,
      cluster: opts.cluster,
      clusterId: opts.clusterId,
      ip: opts.ip,
      log: this.log,
      answerTimeoutMs: opts.answerTimeoutMs,
      onRefused: opts.onRefused,
    });
    this.agent = new Agent({
      clusterName: opts.cluster,
      clusterId: opts.clusterId,
      nodeName: opts.name,
      maxConnectedClusters: DefaultMaxConnectedClusters,
      kvstore: {
        ...opts.kvstore,
        leaseTtlSeconds: opts.kvstore.leaseTtlSeconds ?? VM_LEASE_TTL_SECONDS,
      },
      apiAddr: opts.apiAddr ?? `${opts.ip}:${VM_API_PORT}`,
      healthAddr: opts.health === false ? undefined : `${opts.ip}:${HEALTH_PORT}`,
      joinCluster: this.registrar,
      log: this.log,
      datapath: (views: AgentViews, log: Logger) => {
        const dp = new VmDatapath(
          new NodeDatapath({
            cluster: opts.cluster,
            node: { name: opts.name, ip: opts.ip },
            services: views.services,
            ipcache: views.ipcache,
            identities: views.identities,
            health: false,
            log,
            policy: { enforcer: views.policy, endpoints: views.endpoints, nodes: views.nodes },
          }),
        );
        this.datapath = dp;
        return dp;
      },
    });
  }

  async start(): Promise<void> {
    try {
      await this.agent.start();
    } catch (err) {
      // etcd refused the certificate before the registration could be written: the
      // cluster counts it from etcd's log; the VM says so in one line of its own.
      if (!isClusterMeshError(err, ErrorCode.KvstoreTls)) throw err;
      const e = new ClusterMeshError(
        ErrorCode.ExternalWorkloadRefused,
        `registration of ${this.opts.name} refused: ${errorMessage(err)}`,
        { cause: err },
      );
      this.log.error(
        { code: e.code, reason: 'bad-certificate', err: errorMessage(err) },
        'External workload registration refused: the cluster’s etcd rejected the certificate',
      );
      throw e;
    }
    if (this.opts.workload === false) return;
    const image = resolveImage('clustermesh/echo');
    if (image === undefined) return;
    const started = await image.start({
      cluster: this.opts.cluster,
      node: this.opts.name,
      namespace: 'default',
      pod: this.opts.name,
      podIP: this.opts.ip,
      container: {
        name: 'vm',
        image: 'clustermesh/echo',
        ports: [{ containerPort: VM_WORKLOAD_PORT, protocol: 'TCP' }],
        env: [{ name: 'MESSAGE', value: JSON.stringify({ ExternalWorkload: this.opts.name }) }],
      },
      // Ingress at the VM: its own policy, its own ipcache's view of the source.
      onConnection: (c) => {
        const dp = this.datapath?.dp;
        if (dp === undefined) return true;
        const d = dp.ingressDecision(c.pod.ip, c.peer.ip, c.localPort, 'TCP');
        dp.recordIngress(c, d, true);
        return d?.allowed ?? true;
      },
      log: this.log,
    });
    if (!started.ok) {
      await this.agent.stop();
      throw new Error(started.message);
    }
    this.workload = started.workload;
  }

  async stop(): Promise<void> {
    await this.workload?.close().catch((err: unknown) => {
      this.log.warn({ err: errorMessage(err) }, 'stopping the workload failed');
    });
    await this.agent.stop();
  }

  get apiUrl(): string | undefined {
    return this.agent.apiUrl;
  }
}
