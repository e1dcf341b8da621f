import { accessSync, constants as fsConstants } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

let cachedBinary: string | undefined;

function isExecutable(path: string): boolean {
  try {
    accessSync(path, fsConstants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Locates the etcd binary: `explicit` when given, else /usr/bin/etcd, else `etcd` on PATH.
 * Throws ERR_ETCD_NOT_FOUND with the install hint when there is none.
 */
export function findEtcdBinary(explicit?: string): string {
  if (explicit !== undefined) {
    if (!isExecutable(explicit)) {
      throw new ClusterMeshError(
        ErrorCode.EtcdNotFound,
        `etcd binary ${explicit} is not executable`,
      );
    }
    return explicit;
  }
  if (cachedBinary !== undefined) return cachedBinary;
  const candidates = [
    '/usr/bin/etcd',
    ...(process.env['PATH'] ?? '')
      .split(delimiter)
      .filter((dir) => isAbsolute(dir))
      .map((dir) => join(dir, 'etcd')),
  ];
  const found = candidates.find(isExecutable);
  if (found === undefined) {
    throw new ClusterMeshError(
      ErrorCode.EtcdNotFound,
      'etcd not found: apt-get install etcd-server',
    );
  }
  cachedBinary = found;
  return found;
}
