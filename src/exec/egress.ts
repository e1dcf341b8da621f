import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';

/**
 * Asks a pod's node for its egress verdict, as a socket hook in the pod would: a ClusterIP
 * is left to the service proxy, anything else is decided (and logged) there.
 */
export async function agentEgressVerdict(
  agentApi: string,
  src: string,
  dst: string,
  dport: number,
): Promise<'allowed' | 'dropped'> {
  const url = new URL('/v1/connect', agentApi);
  url.search = new URLSearchParams({ src, dst, dport: String(dport), proto: 'TCP' }).toString();
  let res: Response;
  try {
    res = await fetch(url, { method: 'POST', signal: AbortSignal.timeout(5000) });
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.AgentUnreachable,
      `exec: the pod's agent at ${agentApi} did not answer for its egress policy: ${errorMessage(err)}`,
    );
  }
  const body = (await res.json()) as { verdict?: string; error?: string };
  if (!res.ok) throw new Error(`exec: agent at ${agentApi}: ${body.error ?? res.statusText}`);
  return body.verdict === 'dropped' ? 'dropped' : 'allowed';
}
