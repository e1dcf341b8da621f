/**
 * Client side of `clustermesh kvstoremesh status`: reads `/status` from a running
 * KVStoreMesh's health server. Kept free of daemon imports so the CLI loads it cheaply.
 */
import type { ClusterMeshStatus } from '../clustermesh/status.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';

export const DefaultKvstoreMeshStatusUrl = 'http://127.0.0.1:9881';

/** GETs `<url>/status`; `url` may omit the scheme (`127.0.0.1:9881`). */
export async function fetchKvstoreMeshStatus(
  url: string,
  timeoutMs = 10_000,
): Promise<ClusterMeshStatus> {
  const base = /^https?:\/\//.test(url) ? url : `http://${url}`;
  let target: URL;
  try {
    target = new URL('/status', base);
  } catch {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `--url ${url}: not a URL`);
  }
  let res: Response;
  try {
    res = await fetch(target, { signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new ClusterMeshError(
      ErrorCode.KvstoreUnreachable,
      `cannot reach kvstoremesh at ${base}: ${errorMessage(cause ?? err)}`,
    );
  }
  const text = await res.text();
  if (!res.ok) {
    throw new ClusterMeshError(
      ErrorCode.KvstoreOperation,
      `kvstoremesh at ${base} answered ${res.status}: ${text.trim().split('\n')[0] ?? ''}`,
    );
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    doc = undefined;
  }
  if (!isClusterMeshStatus(doc)) {
    throw new ClusterMeshError(
      ErrorCode.InvalidEntry,
      `kvstoremesh at ${base}: /status is not a ClusterMesh status`,
    );
  }
  return doc;
}

function isClusterMeshStatus(doc: unknown): doc is ClusterMeshStatus {
  return (
    typeof doc === 'object' && doc !== null && 'clusters' in doc && Array.isArray(doc.clusters)
  );
}
