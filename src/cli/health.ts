import { Option, type Command } from 'commander';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import {
  commandGroup,
  formatStructured,
  globalOptions,
  stateDirOption,
  type CliContext,
} from './common.js';
import type { HealthStatus, NodeHealth } from '../health/prober.js';

/**
 * `clustermesh health status`: `cilium-health status` for every node of the mesh. Each
 * agent probes every node's health endpoint; this gathers what each one measured.
 */

interface HealthFlags {
  readonly stateDir: string;
  readonly node?: string | undefined;
}

/** One prober's report, or why it could not be read. */
export interface HealthReportEntry {
  readonly cluster: string;
  readonly node: string;
  readonly api: string;
  readonly status?: HealthStatus;
  readonly error?: string;
}

function ms(v: number): string {
  return v < 1 ? `${Math.round(v * 1000)}µs` : `${v.toFixed(2)}ms`;
}

function nodeLine(n: NodeHealth): string[] {
  const title = `  ${n.cluster}/${n.name}${n.local ? ' (localhost)' : ''}:`;
  const rtt =
    n.rtt === undefined
      ? ''
      : `, RTT p50=${ms(n.rtt.p50)} p95=${ms(n.rtt.p95)} p99=${ms(n.rtt.p99)}`;
  const state = n.status === 'ok' ? 'OK' : n.status === 'failed' ? 'FAILED' : 'not probed yet';
  const lines = [
    title,
    `    Host connectivity to ${n.ip}:`,
    `      HTTP to agent:   ${state}${rtt}`,
  ];
  if (n.lastError !== undefined) {
    lines.push(`      Last error:      ${n.lastError} (${n.lastErrorAt ?? '?'})`);
  }
  return lines;
}

export function formatHealth(entries: readonly HealthReportEntry[]): string {
  const out: string[] = [];
  let reachable = 0;
  let total = 0;
  for (const e of entries) {
    out.push(`Probes from ${e.cluster}/${e.node}:`);
    if (e.status === undefined) {
      out.push(`  agent ${e.api} did not answer: ${e.error ?? '?'}`, '');
      continue;
    }
    out.push(`Probe time:   ${e.status.probeTime ?? 'no probe yet'}`, 'Nodes:');
    for (const n of e.status.nodes) {
      total++;
      if (n.status === 'ok') reachable++;
      out.push(...nodeLine(n));
    }
    out.push('');
  }
  out.push(
    `Summary: ${reachable}/${total} node probes OK, ${entries.filter((e) => e.status === undefined).length} agent(s) unreachable`,
  );
  return `${out.join('\n')}\n`;
}

export function registerHealthCommands(program: Command, ctx: CliContext): void {
  const health = commandGroup(
    program,
    'health',
    'node-to-node health across the mesh (cilium-health)',
  );
  health
    .command('status')
    .description("every node's probes of every other node: status, RTT p50/p95/p99 and last error")
    .addOption(new Option('--node <cluster/node>', 'only this prober'))
    .addOption(stateDirOption())
    .action(async (flags: HealthFlags, cmd: Command) => {
      const g = globalOptions(cmd);
      const { readMeshState, agentOf } = await import('../localmesh/mesh-state.js');
      const state = await readMeshState(flags.stateDir);
      const agents =
        flags.node === undefined
          ? state.clusters.flatMap((c) => c.agents.map((a) => ({ cluster: c.name, agent: a })))
          : [
              (({ cluster, agent }) => ({ cluster: cluster.name, agent }))(
                agentOf(state, flags.node),
              ),
            ];
      const entries = await Promise.all(
        agents.map(async ({ cluster, agent }): Promise<HealthReportEntry> => {
          const base = { cluster, node: agent.node, api: agent.api };
          try {
            const res = await fetch(new URL('/v1/health', agent.api), {
              signal: AbortSignal.timeout(5_000),
            });
            const text = await res.text();
            if (!res.ok)
              return { ...base, error: `HTTP ${res.status}: ${text.trim().slice(0, 120)}` };
            return { ...base, status: JSON.parse(text) as HealthStatus };
          } catch (err) {
            const cause = (err as { cause?: unknown }).cause;
            return { ...base, error: errorMessage(cause ?? err) };
          }
        }),
      );
      if (entries.length === 0) {
        throw new ClusterMeshError(ErrorCode.ConfigNotFound, 'the running mesh lists no agents');
      }
      ctx.io.stdout(
        g.output === 'text' ? formatHealth(entries) : await formatStructured(entries, g.output),
      );
    });
}
