/**
 * External workloads: what the cluster knows about a VM that may join it, and the rules a
 * registration must follow. Pure functions; the apiserver's controller, the VM agent and
 * the CLI share them.
 */
import {
  LabelSource,
  PodNamespaceLabel,
  PolicyLabelCluster,
  parseCIDR,
  parseIP,
} from '../keyspace/index.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import type { CiliumExternalWorkload } from '../registry/objects.js';
import { labelValueProblem, qualifiedNameProblem } from '../registry/names.js';

export const CEW_API_VERSION = 'cilium.io/v2';
/** The namespace a workload's endpoint lives in when its labels name none. */
export const DEFAULT_WORKLOAD_NAMESPACE = 'default';
const PodNameLabel = 'io.kubernetes.pod.name';

/** Why a registration was refused: stable, the `reason` label of the refusal metric. */
export const RefusalReason = {
  /** No CiliumExternalWorkload has the registration's name. */
  UnknownWorkload: 'unknown-workload',
  /** Not a valid IPv4 address, or not exactly one address. */
  InvalidAddress: 'invalid-address',
  /** The address is outside the workload's `spec.ipv4-alloc-cidr`. */
  OutsideCidr: 'outside-cidr',
  /** The address belongs to another workload or endpoint of the cluster. */
  AddressInUse: 'address-in-use',
  /** The name is connected from another address: another VM claims it. */
  NameInUse: 'name-in-use',
  /** The registration does not parse, or names another cluster. */
  InvalidRegistration: 'invalid-registration',
  /**
   * etcd refused the client's TLS handshake (a certificate not of this cluster's CA):
   * read from etcd's log, since such a client never reaches the registration key.
   */
  BadCertificate: 'bad-certificate',
} as const;
export type RefusalReason = (typeof RefusalReason)[keyof typeof RefusalReason];

/** `k=v,k2=v2` (the `--labels` flag) as a label map; one line naming the bad pair. */
export function parseLabelsFlag(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (text.trim() === '') return out;
  for (const pair of text.split(',')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair.trim() : pair.slice(0, eq).trim();
    const value = eq < 0 ? '' : pair.slice(eq + 1).trim();
    const problem =
      eq < 0 ? 'expected key=value' : (qualifiedNameProblem(key) ?? labelValueProblem(value));
    if (problem !== null) {
      throw new ClusterMeshError(
        ErrorCode.InvalidArgument,
        `--labels ${JSON.stringify(pair.slice(0, 80))}: ${problem}`,
      );
    }
    out[key] = value;
  }
  return out;
}

/** The manifest `vm create` applies. */
export function externalWorkloadObject(
  name: string,
  opts: {
    readonly ipv4AllocCidr?: string | undefined;
    readonly labels?: Readonly<Record<string, string>>;
  },
): CiliumExternalWorkload {
  const labels = opts.labels ?? {};
  return {
    apiVersion: CEW_API_VERSION,
    kind: 'CiliumExternalWorkload',
    metadata: { name, ...(Object.keys(labels).length === 0 ? {} : { labels: { ...labels } }) },
    spec: opts.ipv4AllocCidr === undefined ? {} : { 'ipv4-alloc-cidr': opts.ipv4AllocCidr },
  };
}

/** The namespace of a workload's endpoint: its `io.kubernetes.pod.namespace` label, else default. */
export function workloadNamespace(cew: CiliumExternalWorkload): string {
  return cew.metadata.labels?.[PodNamespaceLabel] ?? DEFAULT_WORKLOAD_NAMESPACE;
}

/**
 * The identity labels of a workload, as Cilium derives them: its labels as `k8s:<key>`
 * (the namespace and pod-name labels defaulted to `default` and the workload's name), then
 * the cluster, which the workload cannot set itself.
 */
export function workloadIdentityLabels(
  cew: CiliumExternalWorkload,
  cluster: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(cew.metadata.labels ?? {})) {
    if (key.startsWith('io.cilium.k8s')) continue;
    out[`${LabelSource.K8s}:${key}`] = value;
  }
  out[`${LabelSource.K8s}:${PodNamespaceLabel}`] = workloadNamespace(cew);
  out[`${LabelSource.K8s}:${PodNameLabel}`] ??= cew.metadata.name;
  out[`${LabelSource.K8s}:${PolicyLabelCluster}`] = cluster;
  return out;
}

/** Whether IPv4 `ip` lies in `cidr`. */
export function ipInCidr(ip: string, cidr: string): boolean {
  const a = parseIP(ip);
  const c = parseCIDR(cidr);
  if (a === null || c === null || a.length * 8 !== c.bits) return false;
  let left = c.prefixLen;
  for (let i = 0; i < a.length && left > 0; i++, left -= 8) {
    const mask = left >= 8 ? 0xff : (0xff << (8 - left)) & 0xff;
    if (((a[i] ?? 0) & mask) !== ((c.ip[i] ?? 0) & mask)) return false;
  }
  return true;
}

export interface RegistrationRequest {
  readonly name: string;
  /** The addresses the VM registered with (InternalIP first). */
  readonly ips: readonly string[];
}

export interface RegistrationContext {
  /** The workload of that name, if any. */
  readonly workload: CiliumExternalWorkload | undefined;
  /** Who else holds `ip` in the cluster (`external workload vm2`, `endpoint default/x`). */
  readonly ownerOf: (ip: string) => string | undefined;
}

export type RegistrationVerdict =
  | { readonly ok: true; readonly ip: string }
  | { readonly ok: false; readonly reason: RefusalReason; readonly message: string };

/** The checks a registration passes before it gets anything: in this order, first failure wins. */
export function validateRegistration(
  req: RegistrationRequest,
  ctx: RegistrationContext,
): RegistrationVerdict {
  const cew = ctx.workload;
  if (cew === undefined) {
    return {
      ok: false,
      reason: RefusalReason.UnknownWorkload,
      message: `no CiliumExternalWorkload named ${JSON.stringify(req.name.slice(0, 80))} (create it with: clustermesh vm create ${req.name.slice(0, 80)})`,
    };
  }
  const ip = req.ips[0];
  if (req.ips.length !== 1 || ip === undefined || parseIP(ip)?.length !== 4) {
    return {
      ok: false,
      reason: RefusalReason.InvalidAddress,
      message: `expected exactly one IPv4 address, got ${JSON.stringify(req.ips.join(',').slice(0, 80))}`,
    };
  }
  const cidr = cew.spec['ipv4-alloc-cidr'];
  if (cidr !== undefined && !ipInCidr(ip, cidr)) {
    return {
      ok: false,
      reason: RefusalReason.OutsideCidr,
      message: `${ip} is outside ${req.name}'s ipv4-alloc-cidr ${cidr}`,
    };
  }
  const owner = ctx.ownerOf(ip);
  if (owner !== undefined) {
    return {
      ok: false,
      reason: RefusalReason.AddressInUse,
      message: `${ip} is the address of ${owner}`,
    };
  }
  const st = cew.status;
  if (st?.connected === true && st.ip !== undefined && st.ip !== '' && st.ip !== ip) {
    return {
      ok: false,
      reason: RefusalReason.NameInUse,
      message: `${req.name} is already connected from ${st.ip}`,
    };
  }
  return { ok: true, ip };
}
