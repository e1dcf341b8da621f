/**
 * Stale and missing keys between a remote's etcd and an agent's view of it. The agent is
 * read twice, before and after the remote's listing, so that a change racing the
 * comparison is not reported: a key is stale when both snapshots hold it and the remote
 * does not, missing when the remote holds it and neither snapshot does.
 */
export interface KeyDiff {
  readonly stale: string[];
  readonly missing: string[];
}

export function diffKeys(
  remote: readonly string[],
  agentBefore: readonly string[],
  agentAfter: readonly string[],
): KeyDiff {
  const r = new Set(remote);
  const before = new Set(agentBefore);
  const after = new Set(agentAfter);
  return {
    stale: [...before].filter((k) => after.has(k) && !r.has(k)).sort(),
    missing: [...r].filter((k) => !before.has(k) && !after.has(k)).sort(),
  };
}
