import { createHash } from 'node:crypto';
import { pino, type Logger } from 'pino';
import type { Deployment, Pod } from '../registry/objects.js';
import type { RegistryObject } from '../registry/types.js';
import type { Image } from './images.js';
import type { RuntimeNode } from './nodes.js';

/**
 * kube-system as a Cilium user finds it: one `cilium-<suffix>` agent pod per node (as the
 * DaemonSet makes them, host network), and the `clustermesh-apiserver` Deployment whose
 * pod's log is the cluster's apiserver log. The daemons themselves run in the mesh
 * process; these pods are how kubectl reaches them (exec, logs).
 */

export const KUBE_SYSTEM = 'kube-system';
export const CILIUM_IMAGE = 'quay.io/cilium/cilium';
export const APISERVER_IMAGE = 'quay.io/cilium/clustermesh-apiserver';
/** The tag the system pods carry (the Cilium release whose behaviour the mesh follows). */
export const CILIUM_TAG = 'v1.19.0';
export const CILIUM_AGENT_LABELS = { 'k8s-app': 'cilium' } as const;
export const APISERVER_LABELS = { 'k8s-app': 'clustermesh-apiserver' } as const;

/** The alphabet of Kubernetes' generated name suffixes (no vowels, no look-alikes). */
const SUFFIX_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';

/**
 * `cilium-g6btl`: a DaemonSet-style suffix, derived from the node so that a restarted mesh
 * names the same pod again.
 */
export function agentPodName(cluster: string, node: string): string {
  const digest = createHash('sha256').update(`${cluster}/${node}`).digest();
  let suffix = '';
  for (let i = 0; i < 5; i++)
    suffix += SUFFIX_ALPHABET.charAt((digest[i] ?? 0) % SUFFIX_ALPHABET.length);
  return `cilium-${suffix}`;
}

/**
 * `kube-system/kube-dns` on the cluster DNS server's address, 53/UDP and 53/TCP. The server
 * runs outside any pod, so the Service has no selector and its EndpointSlice is written
 * here, naming the server itself (so the service proxy leaves the address to it).
 */
function kubeDns(dnsIP: string): RegistryObject[] {
  const labels = { 'k8s-app': 'kube-dns', 'kubernetes.io/name': 'CoreDNS' };
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { namespace: KUBE_SYSTEM, name: 'kube-dns', labels },
      spec: {
        type: 'ClusterIP',
        clusterIP: dnsIP,
        ports: [
          { name: 'dns', port: 53, targetPort: 53, protocol: 'UDP' },
          { name: 'dns-tcp', port: 53, targetPort: 53, protocol: 'TCP' },
        ],
      },
    },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: {
        namespace: KUBE_SYSTEM,
        name: 'kube-dns-coredns',
        labels: { ...labels, 'kubernetes.io/service-name': 'kube-dns' },
      },
      addressType: 'IPv4',
      endpoints: [{ addresses: [dnsIP], conditions: { ready: true, serving: true } }],
      ports: [
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'dns-tcp', port: 53, protocol: 'TCP' },
      ],
    },
  ];
}

/** The kube-system objects of one cluster, for `registry.apply`. */
export function kubeSystemObjects(
  cluster: string,
  nodes: readonly RuntimeNode[],
  opts: { readonly dnsIP?: string | undefined } = {},
): RegistryObject[] {
  const agents = nodes.map((n): Pod => ({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      namespace: KUBE_SYSTEM,
      name: agentPodName(cluster, n.name),
      labels: { ...CILIUM_AGENT_LABELS },
    },
    spec: {
      nodeName: n.name,
      hostNetwork: true,
      serviceAccountName: 'cilium',
      containers: [{ name: 'cilium-agent', image: `${CILIUM_IMAGE}:${CILIUM_TAG}` }],
    },
  }));
  const apiserver: Deployment = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      namespace: KUBE_SYSTEM,
      name: 'clustermesh-apiserver',
      labels: { ...APISERVER_LABELS },
    },
    spec: {
      replicas: 1,
      selector: { matchLabels: { ...APISERVER_LABELS } },
      template: {
        metadata: { labels: { ...APISERVER_LABELS } },
        spec: {
          serviceAccountName: 'clustermesh-apiserver',
          // On its node's address: it adds no endpoint or identity to the cluster's views.
          hostNetwork: true,
          containers: [{ name: 'apiserver', image: `${APISERVER_IMAGE}:${CILIUM_TAG}` }],
        },
      },
    },
  };
  return [...agents, apiserver, ...(opts.dnsIP === undefined ? [] : kubeDns(opts.dnsIP))];
}

/** pino's numeric level of `info`. */
const INFO_LEVEL = 30;

/** Lines kept for a container that starts after the daemon logged them. */
const TAP_LINES = 2000;

/**
 * A daemon's log lines as its pod's container prints them: kept from the start, followed
 * by the pod's container while it runs.
 */
export class LogTap {
  private readonly lines: string[] = [];
  private readonly followers = new Set<(line: string) => void>();

  write(line: string): void {
    this.lines.push(line);
    if (this.lines.length > TAP_LINES) this.lines.splice(0, this.lines.length - TAP_LINES);
    for (const f of this.followers) f(line);
  }

  /** Replays what was logged so far, then every new line until the returned stop is called. */
  follow(onLine: (line: string) => void): () => void {
    for (const l of this.lines) onLine(l);
    this.followers.add(onLine);
    return () => {
      this.followers.delete(onLine);
    };
  }
}

function logfmtValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return /^[A-Za-z0-9_.:/@+-]+$/.test(s) ? s : JSON.stringify(s);
}

const PINO_LEVELS: Readonly<Record<number, string>> = {
  10: 'trace',
  20: 'debug',
  30: 'info',
  40: 'warn',
  50: 'error',
  60: 'fatal',
};

/** One pino JSON line as Cilium's daemons print theirs (logfmt: time, level, msg, fields). */
export function logfmtLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const { time, level, msg, pid: _pid, hostname: _host, ...fields } = rec;
  const parts = [
    `time=${logfmtValue(new Date(typeof time === 'number' ? time : Date.now()).toISOString())}`,
    `level=${typeof level === 'number' ? (PINO_LEVELS[level] ?? String(level)) : logfmtValue(level)}`,
    `msg=${JSON.stringify(typeof msg === 'string' ? msg : '')}`,
    ...Object.entries(fields).map(([k, v]) => `${k}=${logfmtValue(v)}`),
  ];
  return parts.join(' ');
}

/**
 * A logger writing what `main` would (to the process's stderr, at its level) and, from
 * info up, to `tap` in Cilium's format: the daemon's log as `kubectl logs` shows it.
 */
export function teeLogger(main: Logger, tap: LogTap): Logger {
  const streams: pino.StreamEntry[] = [
    {
      level: 'info',
      stream: {
        write: (s: string) => {
          tap.write(logfmtLine(s));
        },
      },
    },
  ];
  if (main.level !== 'silent') {
    streams.push({
      level: main.level as pino.Level,
      stream: pino.destination({ fd: 2, sync: true }),
    });
  }
  const minLevel = main.level === 'silent' || main.levelVal > INFO_LEVEL ? 'info' : main.level;
  return pino({ level: minLevel, base: main.bindings() }, pino.multistream(streams));
}

/**
 * The images of kube-system: the agent's does nothing in its pod (the agent runs in the
 * mesh process; exec reaches it), the apiserver's prints the apiserver's log.
 */
export function systemImages(opts: {
  readonly apiserverLog?: LogTap | undefined;
}): Map<string, Image> {
  const agent: Image = {
    name: CILIUM_IMAGE,
    description: "the Cilium agent's pod: exec runs cilium-dbg against the node's agent",
    start: (ctx) => {
      ctx.output?.(
        logfmtLine(
          JSON.stringify({
            time: Date.now(),
            level: 30,
            msg: 'Cilium agent of this node runs in the local mesh process',
            subsys: 'daemon',
            nodeName: ctx.node,
          }),
        ),
      );
      return Promise.resolve({ ok: true, workload: { close: () => Promise.resolve() } });
    },
  };
  const apiserver: Image = {
    name: APISERVER_IMAGE,
    description: "the clustermesh-apiserver's pod: its log is the cluster apiserver's",
    start: (ctx) => {
      const stop = opts.apiserverLog?.follow((line) => ctx.output?.(line));
      return Promise.resolve({
        ok: true,
        workload: {
          close: () => {
            stop?.();
            return Promise.resolve();
          },
        },
      });
    },
  };
  return new Map([
    [agent.name, agent],
    [apiserver.name, apiserver],
  ]);
}
