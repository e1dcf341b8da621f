import { rfc3339Now } from '../keyspace/index.js';
import type {
  ConditionStatus,
  Pod,
  PodCondition,
  PodPhase,
  PodStatus,
} from '../registry/objects.js';

/**
 * Pod statuses as the kubelet writes them. Builders take the current status and keep its
 * timestamps where nothing changed, so reconciling an unchanged pod yields an equal
 * status and no write.
 */

/** Pod status reasons set by the runtime (stable: tests and users read them). */
export const PodReason = {
  /** An image that is not built in: `status.message` lists the built-in ones. */
  UnknownImage: 'UnknownImage',
  /** `spec.nodeName` names no node of the cluster. */
  NodeNotFound: 'NodeNotFound',
  /** The node's pod CIDR has no free address; the pod starts once one is released. */
  IPExhausted: 'IPExhausted',
  /** A ConfigMap volume cannot be mounted yet; the pod starts once the ConfigMap exists. */
  ContainerCreating: 'ContainerCreating',
} as const;

const CONDITION_TYPES = ['PodScheduled', 'Initialized', 'ContainersReady', 'Ready'] as const;

export interface RunningState {
  readonly podIP: string;
  readonly hostIP: string;
  /** Whether a container passes its readiness probe (default: every container is ready). */
  readonly ready?: ((container: string) => boolean) | undefined;
  /** How often a container was restarted (its liveness probe failed). */
  readonly restartCount?: ((container: string) => number) | undefined;
  /** A container that does not run now: waiting to be restarted (`CrashLoopBackOff`). */
  readonly waiting?: ((container: string) => ContainerWaiting | undefined) | undefined;
  /** When a container last stopped (killed by its liveness probe), for `lastState`. */
  readonly lastTerminated?: ((container: string) => ContainerTermination | undefined) | undefined;
}

export interface ContainerWaiting {
  readonly reason: string;
  readonly message: string;
}

export interface ContainerTermination {
  readonly startedAt: string;
  readonly finishedAt: string;
}

export function runningStatus(pod: Pod, s: RunningState, now: Date): PodStatus {
  const cur = pod.status;
  const startTime = cur?.startTime ?? rfc3339Now(now);
  const waiting = (c: string): ContainerWaiting | undefined => s.waiting?.(c);
  const ready = (c: string): boolean => waiting(c) === undefined && (s.ready?.(c) ?? true);
  const all: ConditionStatus = pod.spec.containers.every((c) => ready(c.name)) ? 'True' : 'False';
  return {
    phase: 'Running',
    conditions: conditions(cur, now, {
      PodScheduled: 'True',
      Initialized: 'True',
      ContainersReady: all,
      Ready: all,
    }),
    hostIP: s.hostIP,
    hostIPs: [{ ip: s.hostIP }],
    podIP: s.podIP,
    podIPs: [{ ip: s.podIP }],
    startTime,
    containerStatuses: pod.spec.containers.map((c) => {
      const w = waiting(c.name);
      const last = s.lastTerminated?.(c.name);
      return {
        name: c.name,
        image: c.image,
        ready: ready(c.name),
        started: w === undefined,
        restartCount: s.restartCount?.(c.name) ?? 0,
        state:
          w === undefined
            ? { running: { startedAt: last?.finishedAt ?? startTime } }
            : { waiting: { reason: w.reason, message: w.message } },
        // A liveness kill, as the kubelet reports it (SIGKILL: 137).
        ...(last === undefined
          ? {}
          : {
              lastState: {
                terminated: {
                  exitCode: 137,
                  reason: 'Error',
                  startedAt: last.startedAt,
                  finishedAt: last.finishedAt,
                },
              },
            }),
      };
    }),
  };
}

/**
 * A pod that does not run: `Failed`, or `Pending` when it may start later. `hostIP` is set
 * once the pod was placed on a node.
 */
export function notRunningStatus(
  pod: Pod,
  phase: Extract<PodPhase, 'Pending' | 'Failed'>,
  reason: string,
  message: string,
  hostIP: string | undefined,
  now: Date,
): PodStatus {
  const scheduled: ConditionStatus = hostIP === undefined ? 'False' : 'True';
  return {
    phase,
    reason,
    message,
    conditions: conditions(pod.status, now, {
      PodScheduled: scheduled,
      Initialized: scheduled,
      ContainersReady: 'False',
      Ready: 'False',
    }),
    ...(hostIP === undefined ? {} : { hostIP, hostIPs: [{ ip: hostIP }] }),
    ...(pod.status?.startTime === undefined ? {} : { startTime: pod.status.startTime }),
  };
}

function conditions(
  cur: PodStatus | undefined,
  now: Date,
  want: Readonly<Record<(typeof CONDITION_TYPES)[number], ConditionStatus>>,
): PodCondition[] {
  return CONDITION_TYPES.map((type) => {
    const status = want[type];
    const prev = cur?.conditions?.find((c) => c.type === type);
    return {
      type,
      status,
      lastTransitionTime:
        prev?.status === status && prev.lastTransitionTime !== undefined
          ? prev.lastTransitionTime
          : rfc3339Now(now),
    };
  });
}

/** Running and Ready: what Services send traffic to. */
export function isPodReady(pod: Pod): boolean {
  return (
    pod.status?.phase === 'Running' &&
    pod.status.conditions?.some((c) => c.type === 'Ready' && c.status === 'True') === true
  );
}

/** Failed or Succeeded: the pod will not run again. */
export function isPodTerminal(pod: Pod): boolean {
  return pod.status?.phase === 'Failed' || pod.status?.phase === 'Succeeded';
}
