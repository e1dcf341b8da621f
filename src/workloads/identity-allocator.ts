import type { Logger } from 'pino';
import {
  clusterIdentityRange,
  MinimalNumericIdentity,
  LabelSource,
  PodNamespaceLabel,
  PolicyLabelCluster,
  formatLabel,
  formatLabelsForKVStore,
  labelsFromRecord,
  sortLabels,
} from '../keyspace/index.js';
import { ClusterMeshError, ErrorCode, isClusterMeshError } from '../lib/errors.js';
import type { Pod } from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type { CiliumIdentity, ObjectEvent } from '../registry/types.js';

/**
 * Security identities in local mode: create-if-absent CiliumIdentity objects inside the
 * cluster's range (clusterIdentityRange). Identities no pod uses any more are left in
 * place, as Cilium's CRD allocator keeps them until its garbage collector runs; a later pod with
 * the same labels gets the same ID back.
 */

export interface AllocatedIdentity {
  readonly id: number;
  /** `k8s:app=rebel-base` …, sorted by key: what a CiliumEndpoint's status carries. */
  readonly labels: readonly string[];
}

/**
 * Pod labels that change with every rollout or pod, which Cilium's default label filter
 * leaves out of identities so that the replicas of a workload share one identity.
 */
const IGNORED_POD_LABELS = new Set([
  'pod-template-hash',
  'pod-template-generation',
  'controller-revision-hash',
  'statefulset.kubernetes.io/pod-name',
  'apps.kubernetes.io/pod-index',
  'batch.kubernetes.io/job-completion-index',
]);

/**
 * The `security-labels` of a pod, as Cilium derives them: its labels as `k8s:<key>`, the
 * labels of its namespace as `k8s:io.cilium.k8s.namespace.labels.<key>` (always with
 * `kubernetes.io/metadata.name`, which Kubernetes sets on every namespace), its service
 * account, its namespace and the cluster. Those come last and pod labels with Cilium's
 * reserved prefix are dropped, so that a pod cannot claim another namespace or cluster by
 * labelling itself.
 */
export function podSecurityLabels(
  pod: Pod,
  cluster: string,
  namespaceLabels: Readonly<Record<string, string>> = {},
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(pod.metadata.labels ?? {})) {
    if (IGNORED_POD_LABELS.has(key) || key.startsWith('io.cilium.k8s')) continue;
    out[`${LabelSource.K8s}:${key}`] = value;
  }
  const namespace = pod.metadata.namespace ?? 'default';
  const nsLabels = { ...namespaceLabels, 'kubernetes.io/metadata.name': namespace };
  for (const [key, value] of Object.entries(nsLabels)) {
    out[`${LabelSource.K8s}:${NAMESPACE_LABELS_PREFIX}${key}`] = value;
  }
  const sa = pod.spec.serviceAccountName;
  out[`${LabelSource.K8s}:${SERVICE_ACCOUNT_LABEL}`] =
    typeof sa === 'string' && sa !== '' ? sa : 'default';
  out[`${LabelSource.K8s}:${PodNamespaceLabel}`] = namespace;
  out[`${LabelSource.K8s}:${PolicyLabelCluster}`] = cluster;
  return out;
}

const NAMESPACE_LABELS_PREFIX = 'io.cilium.k8s.namespace.labels.';
const SERVICE_ACCOUNT_LABEL = 'io.cilium.k8s.policy.serviceaccount';

export class IdentityAllocator {
  /** Identity ID → label string, for every identity of the cluster's range in the registry. */
  private readonly byId = new Map<number, string>();
  private readonly min: number;
  private readonly max: number;
  /** Allocations run one at a time, so two pods never race for the same free ID. */
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly registry: Registry,
    cluster: { readonly name: string; readonly id: number },
    private readonly log: Logger,
  ) {
    const range = clusterIdentityRange(cluster.id);
    // The first 256 IDs of every range stay unused, like the reserved ones below 256.
    this.min = range.min + MinimalNumericIdentity;
    this.max = range.max;
  }

  /** Feeds the CiliumIdentity informer's events. */
  observe(ev: ObjectEvent<CiliumIdentity>): void {
    const id = Number(ev.object.metadata.name);
    if (id < this.min || id > this.max) return;
    if (ev.type === 'deleted') {
      this.byId.delete(id);
      return;
    }
    // An identity whose labels cannot be keyed still holds its ID ('' matches no labels).
    this.byId.set(id, labelKey(ev.object['security-labels']) ?? '');
  }

  /** Whether the ID still names an identity (a deleted one must be replaced). */
  has(id: number): boolean {
    return this.byId.has(id);
  }

  /** The identity with exactly these labels: the lowest existing one, else a new one. */
  allocate(labels: Readonly<Record<string, string>>): Promise<AllocatedIdentity> {
    const run = this.tail.then(() => this.allocateNow(labels));
    this.tail = run.catch(() => undefined);
    return run;
  }

  private async allocateNow(labels: Readonly<Record<string, string>>): Promise<AllocatedIdentity> {
    const key = labelKey(labels);
    if (key === undefined) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, 'an identity needs at least one label');
    }
    const list = sortLabels(labelsFromRecord(labels)).map(formatLabel);
    let found: number | undefined;
    for (const [id, k] of this.byId) {
      if (k === key && (found === undefined || id < found)) found = id;
    }
    if (found !== undefined) return { id: found, labels: list };
    for (let id = this.min; id <= this.max; id++) {
      if (this.byId.has(id)) continue;
      try {
        await this.registry.create<CiliumIdentity>({
          apiVersion: 'cilium.io/v2',
          kind: 'CiliumIdentity',
          metadata: { name: String(id) },
          'security-labels': { ...labels },
        });
      } catch (err) {
        if (!isClusterMeshError(err, ErrorCode.Conflict)) throw err;
        // Taken by a writer the informer has not reported yet: maybe with our labels.
        const existing = await this.registry.get('CiliumIdentity', undefined, String(id));
        const existingKey =
          existing === undefined ? undefined : labelKey(existing['security-labels']);
        this.byId.set(id, existingKey ?? '');
        if (existingKey === key) return { id, labels: list };
        continue;
      }
      this.byId.set(id, key);
      this.log.info({ identity: id, labels: key }, 'identity allocated');
      return { id, labels: list };
    }
    throw new ClusterMeshError(
      ErrorCode.Conflict,
      `no free identity left in ${this.min}..${this.max} for ${key}`,
    );
  }
}

/** The identity label string (the kvstore form), or `undefined` without labels. */
function labelKey(labels: Readonly<Record<string, string>>): string | undefined {
  if (Object.keys(labels).length === 0) return undefined;
  try {
    return formatLabelsForKVStore(labels);
  } catch {
    return undefined;
  }
}
