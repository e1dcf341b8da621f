import type { Logger } from 'pino';
import { agentEgressVerdict } from '../exec/egress.js';
import type { ExecSession, PodExecutor } from '../kubeapi/exec.js';
import { ApiError, badRequest } from '../kubeapi/status.js';
import type { Registry } from '../registry/registry.js';
import type { PodLogs, RunningPodInfo } from '../workloads/cluster-runtime.js';
import type { PodLogSource, PodLogStream } from '../kubeapi/logs.js';
import { runPodCommand, type PodCommand, type PodExecContext } from './commands.js';

/**
 * `kubectl exec` into the pods of one cluster: the pod must be running in the workload
 * runtime, and the command runs as it (its IP, its DNS, its node's egress policy).
 */

export interface PodExecCluster {
  readonly name: string;
  readonly registry: Registry;
  readonly pods: () => readonly RunningPodInfo[];
  /** `ip:port` of the cluster DNS (known once it is started). */
  readonly dns: () => string;
  /** The agent API URL of a node, for its egress verdicts. */
  readonly agentApi: (node: string) => string | undefined;
  /** Programs a container's image adds (the Cilium agent's `cilium`), by image and node. */
  readonly imageCommands?:
    ((image: string, node: string) => ReadonlyMap<string, PodCommand> | undefined) | undefined;
  readonly log: Logger;
}

export function podExecutor(c: PodExecCluster): PodExecutor {
  return async (req): Promise<ExecSession> => {
    const pod = await c.registry.get('Pod', req.namespace, req.pod);
    if (pod === undefined) {
      throw new ApiError(404, 'NotFound', `pods ${JSON.stringify(req.pod)} not found`, {
        name: req.pod,
        kind: 'pods',
      });
    }
    const containers = pod.spec.containers;
    const container =
      req.container === undefined
        ? containers[0]
        : containers.find((x) => x.name === req.container);
    if (container === undefined) {
      throw badRequest(
        `container ${req.container ?? ''} is not valid for pod ${req.pod}`.slice(0, 200),
      );
    }
    const running = c.pods().find((p) => p.namespace === req.namespace && p.name === req.pod);
    if (running === undefined || running.ip === '') {
      throw badRequest(`unable to upgrade connection: container not found ("${container.name}")`);
    }
    const agent = c.agentApi(running.node);
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOSTNAME: req.pod,
    };
    for (const e of container.env ?? []) {
      if (typeof e.value === 'string') env[e.name] = e.value;
    }
    const ctx: PodExecContext = {
      cluster: c.name,
      namespace: req.namespace,
      pod: req.pod,
      ip: running.ip,
      dns: c.dns(),
      env,
      beforeConnect:
        agent === undefined
          ? undefined
          : (ip, port) => agentEgressVerdict(agent, running.ip, ip, port),
      commands: c.imageCommands?.(container.image, running.node),
    };
    c.log.debug({ pod: `${req.namespace}/${req.pod}`, command: req.command }, 'exec');
    return (io) => runPodCommand(req.command, ctx, io);
  };
}

export interface PodLogCluster {
  readonly registry: Registry;
  readonly logs: PodLogs;
}

/** `kubectl logs`: the lines the pod's containers wrote in the workload runtime. */
export function podLogSource(c: PodLogCluster): PodLogSource {
  return async (req): Promise<PodLogStream> => {
    const pod = await c.registry.get('Pod', req.namespace, req.pod);
    if (pod === undefined) {
      throw new ApiError(404, 'NotFound', `pods ${JSON.stringify(req.pod)} not found`, {
        name: req.pod,
        kind: 'pods',
      });
    }
    const containers = pod.spec.containers.map((x) => x.name);
    const container = req.container ?? containers[0] ?? '';
    if (!containers.includes(container)) {
      throw badRequest(`container ${container} is not valid for pod ${req.pod}`.slice(0, 200));
    }
    return {
      lines: c.logs.read(req.namespace, req.pod, container, req.tailLines),
      follow: (onLine) => c.logs.follow(req.namespace, req.pod, container, onLine),
    };
  };
}
