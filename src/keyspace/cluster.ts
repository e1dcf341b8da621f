/**
 * STABLE KEYSPACE CONTRACT — cluster name / cluster ID rules and the numeric identity
 * layout shared with the reference system (Cilium `pkg/clustermesh/types`,
 * `pkg/identity/numericidentity.go`). Error texts are the reference's, because
 * operators and tests match on them.
 */

import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

export const DefaultClusterName = 'default';
export const ClusterNameMaxLength = 32;
export const ClusterNameRegex = /^([a-z0-9][-a-z0-9]*)?[a-z0-9]$/;

export type MaxConnectedClusters = 255 | 511;
export const DefaultMaxConnectedClusters: MaxConnectedClusters = 255;
export const SupportedMaxConnectedClusters: readonly MaxConnectedClusters[] = [255, 511];

function invalidArgument(message: string): ClusterMeshError {
  return new ClusterMeshError(ErrorCode.InvalidArgument, message);
}

/**
 * The reason a cluster name is invalid (reference wording, without prefix), or `null`
 * when it is valid. Callers composing their own message use this.
 */
export function clusterNameProblem(name: string): string | null {
  if (name === '') return 'must not be empty';
  if (name.length > ClusterNameMaxLength) {
    return `must not be more than ${ClusterNameMaxLength} characters`;
  }
  if (!ClusterNameRegex.test(name)) {
    return "must consist of lower case alphanumeric characters and '-', and must start and end with an alphanumeric character";
  }
  return null;
}

/** Throws ClusterMeshError(InvalidArgument) with the reference's bare message. */
export function validateClusterName(name: string): void {
  const problem = clusterNameProblem(name);
  if (problem !== null) throw invalidArgument(problem);
}

export function isValidClusterName(name: string): boolean {
  return clusterNameProblem(name) === null;
}

export function isMaxConnectedClusters(n: number): n is MaxConnectedClusters {
  return n === 255 || n === 511;
}

/** Validates `--max-connected-clusters` and narrows it. */
export function validateMaxConnectedClusters(n: number): MaxConnectedClusters {
  if (!isMaxConnectedClusters(n)) {
    throw invalidArgument(
      `--max-connected-clusters=${n} is invalid; supported values are [255, 511]`,
    );
  }
  return n;
}

/** `ClusterIDMax` of the reference: equal to max-connected-clusters. */
export function clusterIdMax(maxConnected: MaxConnectedClusters = 255): number {
  return maxConnected;
}

/**
 * The reference's `ValidateClusterID` message for an ID that is not usable by a mesh
 * member (0 is reserved for "mesh disabled"), or `null` when valid.
 */
export function clusterIdProblem(
  id: number,
  maxConnected: MaxConnectedClusters = 255,
): string | null {
  if (!Number.isInteger(id) || id < 0) return `invalid cluster ID ${id}: must be an integer >= 0`;
  if (id === 0) return 'ClusterID 0 is reserved';
  if (id > maxConnected) return `ClusterID > ${maxConnected} is not supported`;
  return null;
}

/** `ValidateClusterID`: 1..max. Throws ClusterMeshError(InvalidArgument). */
export function validateClusterId(id: number, maxConnected: MaxConnectedClusters = 255): void {
  const problem = clusterIdProblem(id, maxConnected);
  if (problem !== null) throw invalidArgument(problem);
}

export interface ClusterInfo {
  readonly name: string;
  readonly id: number;
  readonly maxConnectedClusters: number;
}

/**
 * Validates the local flags like the reference's `ClusterInfo.Validate`: ID 0 is
 * allowed (mesh disabled), but a non-zero ID needs a non-default name.
 */
export function validateClusterInfo(info: ClusterInfo): void {
  const max = validateMaxConnectedClusters(info.maxConnectedClusters);
  if (!Number.isInteger(info.id) || info.id < 0 || info.id > max) {
    throw invalidArgument(`invalid cluster id ${info.id}: must be in range 0..${max}`);
  }
  const problem = clusterNameProblem(info.name);
  if (problem !== null) throw invalidArgument(`invalid cluster name: ${problem}`);
  if (info.id !== 0 && info.name === DefaultClusterName) {
    throw invalidArgument(
      `cannot use default cluster name (${DefaultClusterName}) with option cluster-id`,
    );
  }
}

// ---------------------------------------------------------------------------------
// Numeric identities
// ---------------------------------------------------------------------------------

/** Only 24 bits of an identity travel on the wire. */
export const NumericIdentityBitlength = 24;
export const IdentityScopeMask = 0xff000000;
export const IdentityScopeGlobal = 0;
/** CIDR/FQDN identities, node-local and never exported. */
export const IdentityScopeLocal = 0x01000000;
export const IdentityScopeRemoteNode = 0x02000000;

/** Identities below this value are reserved, well-known or user-reserved. */
export const MinimalNumericIdentity = 256;
export const UserReservedNumericIdentity = 128;

export const ReservedIdentity = {
  Unknown: 0,
  Host: 1,
  World: 2,
  Unmanaged: 3,
  Health: 4,
  Init: 5,
  RemoteNode: 6,
  KubeAPIServer: 7,
  Ingress: 8,
  WorldIPv4: 9,
  WorldIPv6: 10,
} as const;
export type ReservedIdentity = (typeof ReservedIdentity)[keyof typeof ReservedIdentity];

/** Label key (under source `reserved`) of each reserved identity. */
export const ReservedIdentityNames: Readonly<Record<number, string>> = {
  0: 'unknown',
  1: 'host',
  2: 'world',
  3: 'unmanaged',
  4: 'health',
  5: 'init',
  6: 'remote-node',
  7: 'kube-apiserver',
  8: 'ingress',
  9: 'world-ipv4',
  10: 'world-ipv6',
};

/** 16 with 255 clusters, 15 with 511: `24 - log2(max + 1)`. */
export function clusterIdShift(maxConnected: MaxConnectedClusters = 255): number {
  return maxConnected === 511 ? 15 : 16;
}

export interface IdentityRange {
  readonly min: number;
  readonly max: number;
}

/**
 * The identity allocation range of a cluster. Cluster 0 (mesh disabled) allocates
 * 256..65535; cluster c > 0 owns `c << shift .. ((c + 1) << shift) - 1`, with no
 * hole for well-known IDs because those stay below 256.
 */
export function clusterIdentityRange(
  clusterId: number,
  maxConnected: MaxConnectedClusters = 255,
): IdentityRange {
  const shift = clusterIdShift(maxConnected);
  const size = 2 ** shift;
  if (clusterId === 0) return { min: MinimalNumericIdentity, max: size - 1 };
  validateClusterId(clusterId, maxConnected);
  return { min: clusterId * size, max: (clusterId + 1) * size - 1 };
}

/** The cluster ID encoded in an identity (`NumericIdentity.ClusterID()`). */
export function identityClusterId(id: number, maxConnected: MaxConnectedClusters = 255): number {
  return Math.floor(id / 2 ** clusterIdShift(maxConnected)) & maxConnected;
}

export function identityScope(id: number): number {
  return (id & IdentityScopeMask) >>> 0;
}

/** Reserved, well-known and user-reserved identities are valid from any cluster. */
export function isReservedIdentity(id: number): boolean {
  return id >= 0 && id < MinimalNumericIdentity;
}

export function isIdentityInClusterRange(
  id: number,
  clusterId: number,
  maxConnected: MaxConnectedClusters = 255,
): boolean {
  const r = clusterIdentityRange(clusterId, maxConnected);
  return id >= r.min && id <= r.max;
}
