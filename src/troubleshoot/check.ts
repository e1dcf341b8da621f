/**
 * The result model of `clustermesh troubleshoot`: checks as data. Each names what it
 * checked (a stable id), where (cluster, remote cluster, node), its status, one line of
 * findings, a hint when it is not green and, where the agent logs one, the log message
 * to look for. Rendering and the exit decision only read this.
 */

export type CheckStatus = 'ok' | 'warn' | 'fail';

export interface Check {
  /** Stable, e.g. `connection.tls`, `consistency.nodes`. */
  readonly id: string;
  /** The cluster whose configuration or agents are checked. */
  readonly cluster: string;
  /** The remote cluster, for checks of a pair. */
  readonly remote?: string;
  /** The agent's node, for checks of one agent's view. */
  readonly node?: string;
  readonly status: CheckStatus;
  readonly message: string;
  readonly hint?: string;
  /** A log message of the agent that confirms or explains the finding. */
  readonly log?: string;
  /** Structured findings (e.g. the stale and missing keys), for `-o json`. */
  readonly details?: Readonly<Record<string, unknown>>;
}

export interface TroubleshootReport {
  readonly checks: readonly Check[];
  readonly summary: { readonly ok: number; readonly warn: number; readonly fail: number };
  /** No check failed. */
  readonly ok: boolean;
}

export function report(checks: readonly Check[]): TroubleshootReport {
  const summary = { ok: 0, warn: 0, fail: 0 };
  for (const c of checks) summary[c.status]++;
  return { checks, summary, ok: summary.fail === 0 };
}

export const STATUS_MARK: Readonly<Record<CheckStatus, string>> = {
  ok: '✅',
  warn: '⚠️ ',
  fail: '❌',
};

/** Text form: checks grouped by cluster, then by remote; hints and log lines under the failing ones. */
export function renderReport(r: TroubleshootReport): string {
  const lines: string[] = [];
  const clusters = [...new Set(r.checks.map((c) => c.cluster))];
  for (const cluster of clusters) {
    lines.push(`Cluster ${cluster}:`);
    const own = r.checks.filter((c) => c.cluster === cluster);
    const groups = [...new Set(own.map((c) => c.remote ?? ''))];
    for (const remote of groups) {
      const indent = remote === '' ? '  ' : '    ';
      if (remote !== '') lines.push(`  Remote cluster ${remote}:`);
      for (const c of own.filter((x) => (x.remote ?? '') === remote)) {
        const where = c.node === undefined ? '' : `[${c.node}] `;
        lines.push(`${indent}${STATUS_MARK[c.status]} ${c.id}: ${where}${c.message}`);
        if (c.status !== 'ok' && c.hint !== undefined) lines.push(`${indent}   💡 ${c.hint}`);
        if (c.status !== 'ok' && c.log !== undefined) {
          lines.push(`${indent}   🔎 agent log: "${c.log}"`);
        }
      }
    }
    lines.push('');
  }
  const s = r.summary;
  lines.push(`Summary: ${s.ok} ✅  ${s.warn} ⚠️  ${s.fail} ❌`);
  return `${lines.join('\n')}\n`;
}
