/**
 * STABLE KEYSPACE CONTRACT — global identities under `cilium/state/identities/v1`
 * (master keys `id/<decimal id>` whose value is the sorted label string; in kvstore
 * allocation mode also `value/<label string>/<suffix>` reference keys), and the
 * anti-spoofing checks a reader applies to identities and ipcache entries of a remote
 * cluster (reference `pkg/identity/cache/allocator.go`, `pkg/ipcache/kvstore.go`).
 */

import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  type MaxConnectedClusters,
  ReservedIdentity,
  isIdentityInClusterRange,
  isReservedIdentity,
} from './cluster.js';
import { invalidEntry } from './codec.js';
import {
  type Label,
  LabelSource,
  PolicyLabelCluster,
  formatLabelsForKVStore,
  parseLabelsFromKVStore,
} from './labels.js';

export interface GlobalIdentity {
  readonly id: number;
  /** In stored order (sorted by key when the writer follows the reference). */
  readonly labels: readonly Label[];
}

const CANONICAL_ID = /^(?:0|[1-9]\d{0,9})$/;
const DIGITS = /^\d+$/;

/**
 * Parses an identity written canonically (`123`, no leading zeros), as in object
 * names; `null` unless it is a uint32.
 */
export function parseIdentityId(text: string): number | null {
  if (!CANONICAL_ID.test(text)) return null;
  const n = Number(text);
  return n <= 0xffffffff ? n : null;
}

/**
 * Parses the identity of a master key the way the reference's allocator does
 * (`strconv.ParseUint(s, 10, 64)`): leading zeros are accepted, so `id/0123` is 123.
 * `null` unless it is a uint32.
 */
export function parseIdentityKeyId(text: string): number | null {
  if (!DIGITS.test(text)) return null;
  const n = Number(text);
  return n <= 0xffffffff ? n : null;
}

export type IdentityKeySuffix =
  | { readonly kind: 'id'; readonly id: number }
  | { readonly kind: 'value'; readonly labels: string; readonly suffix: string }
  | { readonly kind: 'other'; readonly suffix: string };

/**
 * Classifies a key below an identities base (`cilium/state/identities/v1` or
 * `cilium/cache/identities/v1/<cluster>`). Value keys are split at the last `/`,
 * because label strings may contain slashes.
 */
export function parseIdentityKeySuffix(suffix: string): IdentityKeySuffix {
  if (suffix.startsWith('id/')) {
    const id = parseIdentityKeyId(suffix.slice(3));
    if (id !== null) return { kind: 'id', id };
  } else if (suffix.startsWith('value/')) {
    const rest = suffix.slice(6);
    const slash = rest.lastIndexOf('/');
    if (slash > 0 && slash < rest.length - 1) {
      return { kind: 'value', labels: rest.slice(0, slash), suffix: rest.slice(slash + 1) };
    }
  }
  return { kind: 'other', suffix };
}

/** Value of a master key: the sorted label string. */
export function encodeIdentity(identity: Pick<GlobalIdentity, 'labels'>): string {
  return formatLabelsForKVStore(identity.labels);
}

/**
 * Decodes a master key. `idText` is the key part after `…/identities/v1/id/` (or the
 * cache equivalent); it must be a decimal uint32.
 */
export function decodeIdentity(idText: string, value: string): GlobalIdentity {
  const id = parseIdentityKeyId(idText);
  if (id === null) throw invalidEntry('identity', idText, 'key is not a decimal identity');
  return { id, labels: parseLabelsFromKVStore(value) };
}

export interface RemoteClusterRef {
  readonly clusterName: string;
  readonly clusterId: number;
  readonly maxConnectedClusters?: MaxConnectedClusters;
}

function rejected(message: string): ClusterMeshError {
  return new ClusterMeshError(ErrorCode.InvalidEntry, message);
}

/**
 * Anti-spoofing for a remote identity event: the ID must lie in the remote cluster's
 * allocation range (every event kind); an upsert must carry the label
 * `k8s:io.cilium.k8s.policy.cluster=<remote name>`. Deletions are not label-checked
 * because their labels may not be propagated.
 */
export function validateRemoteIdentity(
  kind: 'upsert' | 'delete',
  identity: GlobalIdentity,
  remote: RemoteClusterRef,
): void {
  const max = remote.maxConnectedClusters ?? 255;
  if (!isIdentityInClusterRange(identity.id, remote.clusterId, max)) {
    throw rejected(
      `ID ${identity.id} does not belong to the allocation range of cluster ID ${remote.clusterId}`,
    );
  }
  if (kind !== 'upsert') return;
  let found = false;
  for (const l of identity.labels) {
    if (l.key !== PolicyLabelCluster) continue;
    if (l.source !== LabelSource.K8s) {
      throw rejected(
        `unexpected source for cluster label: got ${l.source}, expected ${LabelSource.K8s}`,
      );
    }
    if (l.value !== remote.clusterName) {
      throw rejected(`unexpected cluster name: got ${l.value}, expected ${remote.clusterName}`);
    }
    found = true;
  }
  if (!found) throw rejected(`could not find expected label ${PolicyLabelCluster}`);
}

/**
 * Anti-spoofing for a remote ipcache entry: its identity must be reserved /
 * well-known / user-reserved (< 256) or inside the remote cluster's range.
 */
export function validateRemoteIPCacheIdentity(
  id: number,
  remote: Omit<RemoteClusterRef, 'clusterName'>,
): void {
  if (isReservedIdentity(id)) return;
  if (!isIdentityInClusterRange(id, remote.clusterId, remote.maxConnectedClusters ?? 255)) {
    throw rejected(
      `ID ${id} does not belong to the allocation range of cluster ID ${remote.clusterId}`,
    );
  }
}

/** A peer may only describe its own hosts: `host` from a remote becomes `remote-node`. */
export function remoteIPCacheIdentity(id: number): number {
  return id === ReservedIdentity.Host ? ReservedIdentity.RemoteNode : id;
}
