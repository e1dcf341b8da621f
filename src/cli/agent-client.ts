import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { DEFAULT_STATE_DIR } from '../localmesh/state-dir.js';

/** Which agent a view asks: `-H` (or `$CLUSTERMESH_HOST`), else one of the running local mesh. */
export interface AgentSelection {
  readonly host?: string | undefined;
  /** `CLUSTER/NODE` (or a node name) of the running local mesh; wins over `host`. */
  readonly node?: string | undefined;
  /** Where the running local mesh keeps mesh.json (default: `.clustermesh`). */
  readonly stateDir?: string | undefined;
}

export interface AgentEndpoint {
  readonly url: string;
  /** `cluster/node` when the address came from mesh.json. */
  readonly label?: string | undefined;
}

/**
 * The agent to ask. Without `-H` and `--node`, the first agent of the running local mesh;
 * with neither `-H` nor a mesh, one line saying how to get one.
 */
export async function resolveAgent(sel: AgentSelection): Promise<AgentEndpoint> {
  if (sel.node === undefined && sel.host !== undefined && sel.host !== '') return { url: sel.host };
  // Loaded on demand: -H needs neither the file nor its schema.
  const { agentOf, readMeshState, stateFile } = await import('../localmesh/mesh-state.js');
  let state;
  try {
    state = await readMeshState(sel.stateDir);
  } catch (err) {
    if (
      sel.node === undefined &&
      isClusterMeshError(err) &&
      err.code === ErrorCode.ConfigNotFound
    ) {
      throw new ClusterMeshError(
        ErrorCode.ConfigNotFound,
        `no agent address: no local mesh runs here (${stateFile(sel.stateDir ?? DEFAULT_STATE_DIR)} not found); ` +
          'start one with "clustermesh up", or pass -H URL (or set CLUSTERMESH_HOST)',
        { cause: err },
      );
    }
    throw err;
  }
  const { agent, label } = agentOf(state, sel.node);
  return { url: agent.api, label };
}

/** GETs a JSON document from the agent API at `host`; `label` names it in errors. */
export async function agentGet(
  host: string | undefined,
  path: string,
  label?: string,
): Promise<unknown> {
  if (host === undefined || host === '') {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      'no agent address: pass -H URL or set CLUSTERMESH_HOST',
    );
  }
  const base = /^https?:\/\//.test(host) ? host : `http://${host}`;
  const who = label === undefined ? `the agent at ${base}` : `agent ${label} at ${base}`;
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
    const hint = label === undefined ? '' : ' (is "clustermesh up" still running?)';
    throw new ClusterMeshError(
      ErrorCode.KvstoreUnreachable,
      `cannot reach ${who}${hint}: ${errorMessage(cause ?? err)}`,
    );
  }
  const text = await res.text();
  if (!res.ok) {
    throw new ClusterMeshError(
      ErrorCode.KvstoreOperation,
      `${who} answered ${res.status}: ${text.trim().split('\n')[0] ?? ''}`,
    );
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new ClusterMeshError(ErrorCode.InvalidEntry, `${who}: invalid JSON from ${path}`);
  }
}
