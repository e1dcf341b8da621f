import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';

/** GETs a JSON document from the agent API named by `-H/--host`. */
export async function agentGet(host: string | undefined, path: string): Promise<unknown> {
  if (host === undefined || host === '') {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      'no agent address: pass -H URL or set CLUSTERMESH_HOST',
    );
  }
  const base = /^https?:\/\//.test(host) ? host : `http://${host}`;
  let url: URL;
  try {
    url = new URL(path, base);
  } catch {
    throw new ClusterMeshError(ErrorCode.InvalidArgument, `-H ${host}: not a URL`);
  }
  let res: Response;
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(10_000) });
  } catch (err) {
    const cause = (err as { cause?: unknown }).cause;
    throw new ClusterMeshError(
      ErrorCode.KvstoreUnreachable,
      `cannot reach the agent at ${base}: ${errorMessage(cause ?? err)}`,
    );
  }
  const text = await res.text();
  if (!res.ok) {
    throw new ClusterMeshError(
      ErrorCode.KvstoreOperation,
      `agent at ${base} answered ${res.status}: ${text.trim().split('\n')[0] ?? ''}`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ClusterMeshError(
      ErrorCode.InvalidEntry,
      `agent at ${base}: invalid JSON from ${path}`,
    );
  }
}
