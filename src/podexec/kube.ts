import type { Logger } from 'pino';
import { agentEgressVerdict } from '../exec/egress.js';
import type { ExecSession, PodExecutor } from '../kubeapi/exec.js';
import { ApiError, badRequest } from '../kubeapi/status.js';
import type { Registry } from '../registry/registry.js';
import type { Container } from '../registry/objects.js';
import type { ExecProbeRunner, PodLogs, RunningPodInfo } from '../workloads/cluster-runtime.js';
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

/** What a command run in `pod`'s `container` sees (its IP, DNS, node's egress policy, image). */
function execContext(
  c: Pick<PodExecCluster, 'name' | 'dns' | 'agentApi' | 'imageCommands'>,
  pod: {
    readonly namespace: string;
    readonly pod: string;
    readonly ip: string;
    readonly node: string;
  },
  container: Container,
): PodExecContext {
  const agent = c.agentApi(pod.node);
  const env: Record<string, string> = {
    PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
    HOSTNAME: pod.pod,
  };
  for (const e of container.env ?? []) {
    if (typeof e.value === 'string') env[e.name] = e.value;
  }
  return {
    cluster: c.name,
    namespace: pod.namespace,
    pod: pod.pod,
    ip: pod.ip,
    dns: c.dns(),
    env,
    beforeConnect:
      agent === undefined ? undefined : (ip, port) => agentEgressVerdict(agent, pod.ip, ip, port),
    commands: c.imageCommands?.(container.image, pod.node),
  };
}

/** The kubelet's exec probes: the command runs as `kubectl exec` would run it, output dropped. */
export function execProbeRunner(
  c: Pick<PodExecCluster, 'name' | 'dns' | 'agentApi' | 'imageCommands'>,
): ExecProbeRunner {
  return (target, command, signal) =>
    runPodCommand(command, execContext(c, target, target.container), {
      stdout: () => undefined,
      stderr: () => undefined,
      signal,
    });
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
    const ctx = execContext(
      c,
      { namespace: req.namespace, pod: req.pod, ip: running.ip, node: running.node },
      container,
    );
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
