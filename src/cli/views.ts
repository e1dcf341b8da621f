import { Option, type Command } from 'commander';
import { clusterMeshStatusJson } from '../clustermesh/status.js';
import { formatClusterMeshStatus } from '../clustermesh/status-text.js';
import { agentGet, resolveAgent } from './agent-client.js';
import {
  commandGroup,
  formatStructured,
  globalOptions,
  stateDirOption,
  usageError,
  type CliContext,
} from './common.js';
import { tabwrite } from '../lib/table.js';

/**
 * The agent's merged views, read from its API (`-H URL`, else an agent of the running local
 * mesh): text like the reference's `cilium-dbg` commands, `-o json|yaml` as the raw model
 * the agent API serves.
 */

interface NodeJson {
  readonly Name: string;
  readonly Cluster: string;
  readonly IPAddresses: readonly { readonly Type: string; readonly IP: string }[] | null;
  readonly IPv4AllocCIDR: { readonly IP: string; readonly Mask: string } | string | null;
  readonly IPv6AllocCIDR: { readonly IP: string; readonly Mask: string } | string | null;
  readonly Source: string;
}

interface IdentityJson {
  readonly id: number;
  readonly labels: readonly string[];
}

interface IPCacheJson {
  readonly cidr: string;
  readonly identity: number;
  readonly hostIP: string;
  readonly encryptKey: number;
  readonly cluster: string;
}

/** `--node` and `--state-dir`: which agent of the running local mesh a view asks. */
function agentCommand(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--node <cluster/node>',
        'an agent of the running local mesh (default: its first agent, unless -H is given)',
      ),
    )
    .addOption(stateDirOption());
}

/** GETs `path` from the agent the command names (see `agentCommand`). */
async function fromAgent(cmd: Command, path: string): Promise<unknown> {
  const o = cmd.opts<{ node?: string; stateDir?: string }>();
  const g = globalOptions(cmd);
  // An address in the environment yields to an explicit --node; two on the command line clash.
  if (o.node !== undefined && cmd.getOptionValueSourceWithGlobals('host') === 'cli') {
    usageError(cmd, 'give either -H or --node, not both');
  }
  const agent = await resolveAgent({ host: g.host, node: o.node, stateDir: o.stateDir });
  return agentGet(agent.url, path, agent.label);
}

async function show(
  cmd: Command,
  ctx: CliContext,
  path: string,
  text: (data: unknown) => string,
): Promise<void> {
  const g = globalOptions(cmd);
  const data = await fromAgent(cmd, path);
  if (g.output === 'text') ctx.io.stdout(text(data));
  else ctx.io.stdout(await formatStructured(data, g.output));
}

function maskBits(mask: string): number {
  let bits = 0;
  for (const b of Buffer.from(mask, 'base64')) bits += b.toString(2).replace(/0/g, '').length;
  return bits;
}

function cidrText(c: NodeJson['IPv4AllocCIDR']): string {
  if (c === null) return '';
  if (typeof c === 'string') return c;
  return `${c.IP}/${maskBits(c.Mask)}`;
}

function primaryIP(n: NodeJson, v6: boolean): string {
  const addrs = (n.IPAddresses ?? []).filter((a) => a.IP.includes(':') === v6);
  const internal =
    addrs.find((a) => a.Type === 'InternalIP') ?? addrs.find((a) => a.Type === 'ExternalIP');
  return (internal ?? addrs[0])?.IP ?? '';
}

export function formatNodeList(nodes: readonly NodeJson[]): string {
  const rows: string[][] = [
    ['Name', 'IPv4 Address', 'Endpoint CIDR', 'IPv6 Address', 'Endpoint CIDR', 'Source'],
  ];
  const body = nodes.map((n) => [
    n.Cluster === 'default' || n.Cluster === '' ? n.Name : `${n.Cluster}/${n.Name}`,
    primaryIP(n, false),
    cidrText(n.IPv4AllocCIDR),
    primaryIP(n, true),
    cidrText(n.IPv6AllocCIDR),
    n.Source,
  ]);
  body.sort((a, b) => ((a[0] ?? '') < (b[0] ?? '') ? -1 : 1));
  return tabwrite([...rows, ...body]);
}

export function formatIdentityList(ids: readonly IdentityJson[]): string {
  const rows: string[][] = [['ID', 'LABELS']];
  for (const id of ids) {
    const labels = id.labels.length === 0 ? [''] : id.labels;
    labels.forEach((l, i) => rows.push([i === 0 ? String(id.id) : '', l]));
  }
  return tabwrite(rows);
}

export function formatIPCacheList(entries: readonly IPCacheJson[]): string {
  const rows: string[][] = [['IP PREFIX/ADDRESS', 'IDENTITY']];
  for (const e of entries) {
    rows.push([
      e.cidr,
      `identity=${e.identity} encryptkey=${e.encryptKey} tunnelendpoint=${e.hostIP === '' ? '0.0.0.0' : e.hostIP} flags=<none>`,
    ]);
  }
  return tabwrite(rows);
}

interface AgentStatusJson {
  readonly cluster: { readonly name: string; readonly id: number };
  readonly node: string;
  readonly kvstore: string;
  /** Kubernetes mode only. */
  readonly kubernetes?: {
    readonly server: string;
    readonly ok: boolean;
    readonly resources: readonly { resource: string; connected: boolean; lastError?: string }[];
  };
  readonly clustermesh: Parameters<typeof formatClusterMeshStatus>[0];
}

/** Cilium's `Kubernetes:` line: Ok, or the first resource that fails and why. */
function kubernetesLine(k: NonNullable<AgentStatusJson['kubernetes']>): string {
  if (k.ok) return `Ok (${k.server})`;
  const bad = k.resources.find((r) => !r.connected);
  return `Unreachable (${k.server})${bad === undefined ? '' : `: ${bad.resource}: ${bad.lastError ?? 'not listed yet'}`}`;
}

interface ServiceJson {
  readonly id: number;
  readonly frontend: string;
  readonly type: string;
  readonly backends: readonly {
    readonly address: string;
    readonly cluster: string;
    readonly state: string;
    readonly preferred: boolean;
    /** Absent from agents without a datapath (and older ones): healthy. */
    readonly health?: string;
  }[];
}

interface LbJson {
  readonly frontend: string;
  readonly revnat: number;
  readonly flags: string;
  readonly backends: readonly string[];
  readonly unhealthy?: readonly string[];
}

/** `cilium-dbg service list` (1.14–1.17): first backend on the service line. */
export function formatServiceList(services: readonly ServiceJson[]): string {
  const rows: string[][] = [['ID', 'Frontend', 'Service Type', 'Backend']];
  for (const s of services) {
    const backends = s.backends.map(
      (b, i) =>
        `${i + 1} => ${b.address} (${b.state}${b.health === 'unhealthy' ? ', unhealthy' : ''})${b.preferred ? ' (preferred)' : ''} [${b.cluster}]`,
    );
    rows.push([String(s.id), s.frontend, s.type, backends[0] ?? '']);
    for (const b of backends.slice(1)) rows.push(['', '', '', b]);
  }
  return tabwrite(rows);
}

/** `cilium-dbg bpf lb list`: a master row per frontend, then one row per backend slot. */
export function formatLbList(entries: readonly LbJson[]): string {
  const rows: string[][] = [['SERVICE ADDRESS', 'BACKEND ADDRESS (REVNAT_ID) (SLOT)']];
  for (const e of entries) {
    rows.push([e.frontend, `0.0.0.0:0 (${e.revnat}) (0) [${e.flags}]`]);
    e.backends.forEach((b, i) => rows.push([e.frontend, `${b} (${e.revnat}) (${i + 1})`]));
    // Unhealthy backends hold no slot; listed so the operator sees why they are missing.
    for (const b of e.unhealthy ?? []) {
      if (!e.backends.includes(b)) rows.push([e.frontend, `${b} (${e.revnat}) (unhealthy)`]);
    }
  }
  return tabwrite(rows);
}

export function registerViewCommands(program: Command, ctx: CliContext): void {
  agentCommand(program.command('status'))
    .description("the agent's status and its ClusterMesh view (reference: cilium-dbg status)")
    .option('--verbose', 'details for every remote cluster, not only the failing ones')
    .action(async (o: { verbose?: boolean }, cmd: Command) => {
      const g = globalOptions(cmd);
      const st = (await fromAgent(cmd, '/v1/status')) as AgentStatusJson;
      if (g.output !== 'text') {
        // The ClusterMesh model only (`{ clusters: [...] }`), in Cilium's omitempty form.
        ctx.io.stdout(await formatStructured(clusterMeshStatusJson(st.clustermesh), g.output));
        return;
      }
      const lines = [
        ...tabwrite([
          ['Cluster:', `${st.cluster.name} (${st.cluster.id})`],
          ['Node:', st.node],
          ['KVStore:', st.kvstore],
          ...(st.kubernetes === undefined ? [] : [['Kubernetes:', kubernetesLine(st.kubernetes)]]),
        ])
          .trimEnd()
          .split('\n'),
        ...formatClusterMeshStatus(st.clustermesh, { verbose: o.verbose === true }),
      ];
      ctx.io.stdout(`${lines.join('\n')}\n`);
    });

  /** `<group> list`: one agent view, printed by `text` (or as JSON/YAML). */
  const listView = (
    group: string,
    groupDescription: string,
    description: string,
    path: string,
    text: (data: unknown) => string,
  ): void => {
    agentCommand(commandGroup(program, group, groupDescription).command('list'))
      .description(description)
      .action(async (_o: unknown, cmd: Command) => {
        await show(cmd, ctx, path, text);
      });
  };

  listView(
    'node',
    'nodes known to the agent (local and remote clusters)',
    'list nodes of every cluster (reference: cilium-dbg node list)',
    '/v1/nodes',
    (d) => formatNodeList(d as NodeJson[]),
  );
  listView(
    'identity',
    'security identities known to the agent',
    'list identities of every cluster (reference: cilium-dbg identity list)',
    '/v1/identities',
    (d) => formatIdentityList(d as IdentityJson[]),
  );
  listView(
    'service',
    'services and their merged backends',
    'list services with local and remote backends (reference: cilium-dbg service list)',
    '/v1/services',
    (d) => formatServiceList(d as ServiceJson[]),
  );
  listView(
    'lb',
    'the load-balancer state the datapath uses',
    'list frontends and the backends new flows go to (reference: cilium-dbg bpf lb list)',
    '/v1/lb',
    (d) => formatLbList(d as LbJson[]),
  );
  listView(
    'ipcache',
    'IP → identity mappings known to the agent',
    'list the ipcache (reference: cilium-dbg bpf ipcache list)',
    '/v1/ipcache',
    (d) => {
      const list = d as IPCacheJson[];
      if (list.length === 0) {
        ctx.io.stderr('No entries found.\n');
        return '';
      }
      return formatIPCacheList(list);
    },
  );
}
