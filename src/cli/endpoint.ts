import { Option, type Command } from 'commander';
import { tabwrite } from '../lib/table.js';
import {
  commandGroup,
  formatStructured,
  globalOptions,
  stateDirOption,
  usageError,
  type CliContext,
  type CliIo,
} from './common.js';
import type { DirectionSummary } from '../policy/engine.js';

/**
 * `clustermesh endpoint list|get`: the endpoints an agent enforces policy for, read from
 * its API. Endpoint IDs are per node, as under Cilium, so `get` asks exactly one agent;
 * `list` can gather every agent of the running local mesh, one table per agent.
 */

export interface EndpointRow {
  readonly id: number;
  readonly namespace: string;
  readonly pod: string;
  readonly identity: number;
  readonly labels: readonly string[];
  readonly ipv4: string | null;
  readonly ipv6: string | null;
  readonly status: string;
  readonly policyEnforcement: { readonly ingress: boolean; readonly egress: boolean };
}

export interface EndpointDetail extends EndpointRow {
  readonly namedPorts: Readonly<
    Record<string, { readonly port: number; readonly protocol: string }>
  >;
  readonly policy: { readonly ingress: DirectionSummary; readonly egress: DirectionSummary } | null;
}

interface Agent {
  readonly url: string;
  /** `cluster/node` when the agent came from mesh.json. */
  readonly label?: string | undefined;
  readonly cluster?: string | undefined;
  readonly node?: string | undefined;
}

interface SelectOptions {
  readonly node?: string | undefined;
  readonly cluster?: string | undefined;
  readonly stateDir: string;
}

const enforcement = (on: boolean): string => (on ? 'Enabled' : 'Disabled');

/**
 * `cilium endpoint list`: the ENFORCEMENT header line under the policy columns, and one
 * label per line, further labels on continuation lines (Cilium sorts them).
 */
export function formatEndpointList(rows: readonly EndpointRow[]): string {
  const table: string[][] = [
    [
      'ENDPOINT',
      'POLICY (ingress)',
      'POLICY (egress)',
      'IDENTITY',
      'LABELS (source:key[=value])',
      'IPv6',
      'IPv4',
      'STATUS',
    ],
    ['', 'ENFORCEMENT', 'ENFORCEMENT'],
  ];
  for (const ep of [...rows].sort((a, b) => a.id - b.id)) {
    const labels = ep.labels.length === 0 ? ['no labels'] : [...ep.labels].sort();
    labels.forEach((label, i) => {
      if (i > 0) {
        table.push(['', '', '', '', label]);
        return;
      }
      table.push([
        String(ep.id),
        enforcement(ep.policyEnforcement.ingress),
        enforcement(ep.policyEnforcement.egress),
        String(ep.identity),
        label,
        ep.ipv6 ?? '',
        ep.ipv4 ?? '',
        ep.status,
      ]);
    });
  }
  return tabwrite(table);
}

function peersText(e: DirectionSummary['entries'][number]): string {
  const parts: string[] = [];
  if (e.peers === '*') parts.push('every identity');
  else if (e.peers.length > 0) parts.push(`identities ${e.peers.join(',')}`);
  if (e.cidrs.length > 0) parts.push(`cidr ${e.cidrs.join(',')}`);
  return parts.length === 0 ? 'nothing' : parts.join(' and ');
}

function refText(p: DirectionSummary['entries'][number]['policy']): string {
  return p.namespace === '' ? `${p.kind} ${p.name}` : `${p.kind} ${p.namespace}/${p.name}`;
}

function directionText(name: 'Ingress' | 'Egress', d: DirectionSummary): string[] {
  if (!d.enforced) return [`${name} policy: Disabled`];
  const lines = [`${name} policy: Enabled, default deny ${d.defaultDeny ? 'on' : 'off'}`];
  if (d.entries.length === 0) lines.push('  (no rules: every connection is denied)');
  const way = name === 'Ingress' ? 'from' : 'to';
  for (const e of d.entries) {
    lines.push(
      `  ${e.action === 'deny' ? 'DENY ' : 'ALLOW'} ${refText(e.policy)} ${e.path}: ${way} ${peersText(e)} ports ${e.ports.join(',')}`,
    );
  }
  return lines;
}

/** `endpoint get` as text: the endpoint, then its computed policy per direction. */
export function formatEndpointDetail(ep: EndpointDetail): string {
  const labels = ep.labels.length === 0 ? ['no labels'] : [...ep.labels].sort();
  const ports = Object.entries(ep.namedPorts)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([name, p]) => `${name}=${p.port}/${p.protocol}`);
  const rows: string[][] = [
    ['Endpoint:', String(ep.id)],
    ['Pod:', `${ep.namespace}/${ep.pod}`],
    ['Identity:', String(ep.identity)],
    ...labels.map((l, i) => [i === 0 ? 'Labels:' : '', l]),
    ['IPv4:', ep.ipv4 ?? ''],
    ['IPv6:', ep.ipv6 ?? ''],
    ['Status:', ep.status],
    ['Named ports:', ports.length === 0 ? 'none' : ports.join(', ')],
  ];
  const lines = [tabwrite(rows, 1).trimEnd()];
  lines.push('');
  if (ep.policy === null) {
    lines.push(`Policy: none computed (the agent does not know identity ${ep.identity} yet)`);
  } else {
    lines.push(...directionText('Ingress', ep.policy.ingress));
    lines.push(...directionText('Egress', ep.policy.egress));
  }
  return `${lines.join('\n')}\n`;
}

/** `-H` and `--node` clash only when both are on the command line, as for the other views. */
function checkSelectors(cmd: Command, o: SelectOptions): void {
  const hostOnCli = cmd.getOptionValueSourceWithGlobals('host') === 'cli';
  if (o.node !== undefined && hostOnCli) usageError(cmd, 'give either -H or --node, not both');
  if (o.cluster !== undefined && hostOnCli) {
    usageError(cmd, 'give either -H or --cluster, not both');
  }
  if (o.cluster !== undefined && o.node !== undefined) {
    usageError(cmd, 'give either --node or --cluster, not both');
  }
}

/**
 * The agents `endpoint list` asks: `--node` one of the mesh, `--cluster` every agent of a
 * cluster, `-H` (or `$CLUSTERMESH_HOST`) one address, otherwise every agent of the mesh.
 */
async function listAgents(
  o: SelectOptions,
  host: string | undefined,
): Promise<{ agents: Agent[]; many: boolean }> {
  if (o.node === undefined && o.cluster === undefined && host !== undefined && host !== '') {
    return { agents: [{ url: host }], many: false };
  }
  const { readMeshState, clusterOf, agentOf } = await import('../localmesh/mesh-state.js');
  const state = await readMeshState(o.stateDir);
  if (o.node !== undefined) {
    const { cluster, agent, label } = agentOf(state, o.node);
    return {
      agents: [{ url: agent.api, label, cluster: cluster.name, node: agent.node }],
      many: false,
    };
  }
  const clusters = o.cluster !== undefined ? [clusterOf(state, o.cluster)] : state.clusters;
  const agents = clusters.flatMap((c) =>
    c.agents.map((a) => ({
      url: a.api,
      label: `${c.name}/${a.node}`,
      cluster: c.name,
      node: a.node,
    })),
  );
  if (agents.length === 0) {
    const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
    throw new ClusterMeshError(ErrorCode.ConfigNotFound, 'the running mesh lists no agents');
  }
  return { agents, many: true };
}

function asRows(data: unknown, who: string): EndpointRow[] {
  if (!Array.isArray(data)) throw new Error(`${who}: unexpected /v1/endpoints answer`);
  return data as EndpointRow[];
}

/**
 * Every agent's rows. An unreachable agent is reported on stderr and skipped, so one
 * stopped node does not hide the others; all of them failing is an error.
 */
async function gather(
  agents: readonly Agent[],
  io: CliIo,
): Promise<{ agent: Agent; rows: EndpointRow[] }[]> {
  const { agentGet } = await import('./agent-client.js');
  const results = await Promise.allSettled(
    agents.map(async (a) =>
      asRows(await agentGet(a.url, '/v1/endpoints', a.label), a.label ?? a.url),
    ),
  );
  const out: { agent: Agent; rows: EndpointRow[] }[] = [];
  results.forEach((r, i) => {
    const agent = agents[i];
    if (agent === undefined) return;
    if (r.status === 'fulfilled') out.push({ agent, rows: r.value });
  });
  const failed = results.flatMap((r) =>
    r.status === 'rejected'
      ? [r.reason instanceof Error ? r.reason : new Error(String(r.reason))]
      : [],
  );
  if (failed.length === results.length && failed[0] !== undefined) throw failed[0];
  for (const err of failed) io.stderr(`clustermesh: warning: ${err.message}\n`);
  return out;
}

/** The one agent `endpoint get` asks; several candidates is a usage error. */
async function oneAgent(cmd: Command, o: SelectOptions, host: string | undefined): Promise<Agent> {
  if (o.node === undefined && host !== undefined && host !== '') return { url: host };
  const { readMeshState } = await import('../localmesh/mesh-state.js');
  const { resolveAgent } = await import('./agent-client.js');
  if (o.node !== undefined) {
    return resolveAgent({ node: o.node, stateDir: o.stateDir });
  }
  // resolveAgent also explains how to get an agent when no mesh runs here.
  const first = await resolveAgent({ stateDir: o.stateDir });
  const state = await readMeshState(o.stateDir);
  const labels = state.clusters.flatMap((c) => c.agents.map((a) => `${c.name}/${a.node}`));
  if (labels.length > 1) {
    usageError(
      cmd,
      `endpoint IDs are per node and the running mesh has ${labels.length} agents: give --node CLUSTER/NODE (${labels.join(', ')}) or -H URL`,
    );
  }
  return first;
}

const LIST_HELP = `
Agent choice: --node CLUSTER/NODE (one agent of the running local mesh), --cluster C
(every agent of cluster C), -H URL (one agent; also $CLUSTERMESH_HOST); with none of them,
every agent of the running local mesh, one table per agent under a "CLUSTER/NODE:" line.
-o json|yaml prints the agent's rows; when several agents are listed, each row also
carries its "cluster" and "node".`;

const GET_HELP = `
Endpoint IDs are per node: with more than one agent in the running local mesh, name the
agent with --node CLUSTER/NODE or -H URL. Prints the endpoint and the policy computed for
it, per direction: whether it is enforced, default deny, and every rule that selects the
endpoint (policy, action, peer identities, ports). -o json|yaml prints the agent's answer.`;

function parseId(cmd: Command, text: string): number {
  const id = Number(text);
  if (!/^\d+$/.test(text) || !Number.isSafeInteger(id)) {
    usageError(cmd, `endpoint ID ${JSON.stringify(text)}: expected a non-negative integer`);
  }
  return id;
}

export function registerEndpointCommands(program: Command, ctx: CliContext): void {
  const group = commandGroup(program, 'endpoint', 'the endpoints an agent enforces policy for');

  group
    .command('list')
    .description(
      "list the agents' endpoints and their policy enforcement (reference: cilium endpoint list)",
    )
    .addOption(new Option('--node <cluster/node>', 'one agent of the running local mesh'))
    .addOption(new Option('--cluster <name>', 'every agent of this cluster of the running mesh'))
    .addOption(stateDirOption())
    .addHelpText('after', LIST_HELP)
    .action(async (o: SelectOptions, cmd: Command) => {
      checkSelectors(cmd, o);
      const g = globalOptions(cmd);
      const { agents, many } = await listAgents(o, g.host);
      const results = await gather(agents, ctx.io);
      if (g.output !== 'text') {
        const data = many
          ? results.flatMap(({ agent, rows }) =>
              rows.map((r) => ({ cluster: agent.cluster, node: agent.node, ...r })),
            )
          : (results[0]?.rows ?? []);
        ctx.io.stdout(await formatStructured(data, g.output));
        return;
      }
      if (!many) {
        ctx.io.stdout(formatEndpointList(results[0]?.rows ?? []));
        return;
      }
      ctx.io.stdout(
        results
          .map(({ agent, rows }) => `${agent.label ?? agent.url}:\n${formatEndpointList(rows)}`)
          .join('\n'),
      );
    });

  group
    .command('get')
    .description('an endpoint and its computed policy (reference: cilium endpoint get)')
    .argument('<id>', 'endpoint ID, as endpoint list shows it')
    .addOption(new Option('--node <cluster/node>', 'the agent of the running local mesh to ask'))
    .addOption(stateDirOption())
    .addHelpText('after', GET_HELP)
    .action(async (idText: string, o: SelectOptions, cmd: Command) => {
      checkSelectors(cmd, o);
      const id = parseId(cmd, idText);
      const g = globalOptions(cmd);
      const agent = await oneAgent(cmd, o, g.host);
      const { agentGet } = await import('./agent-client.js');
      const rows = asRows(
        await agentGet(agent.url, '/v1/endpoints', agent.label),
        agent.label ?? agent.url,
      );
      if (!rows.some((r) => r.id === id)) {
        const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
        const known = rows.map((r) => r.id).join(', ');
        throw new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `endpoint ${id} not found on ${agent.label ?? agent.url} (endpoints: ${known === '' ? 'none' : known})`,
        );
      }
      const detail = (await agentGet(
        agent.url,
        `/v1/endpoint?id=${id}`,
        agent.label,
      )) as EndpointDetail;
      if (g.output !== 'text') ctx.io.stdout(await formatStructured(detail, g.output));
      else ctx.io.stdout(formatEndpointDetail(detail));
    });
}
