import { Option, type Command } from 'commander';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  collect,
  commandGroup,
  formatStructured,
  globalOptions,
  stateDirOption,
  usageError,
  type CliContext,
  policyDefaultLocalClusterOption,
} from './common.js';
import type { MeshControlClient } from './mesh-client.js';
import type { DirectionTrace, NamedPorts, Peer, PolicyEngine } from '../policy/engine.js';
import type { PolicyRef, Protocol } from '../policy/rules.js';
import type { RegistryObject } from '../registry/types.js';

/**
 * `clustermesh policy trace|get`: explains the verdict the policy engine gives one new
 * connection, from manifests (offline) or from the clusters of the running local mesh
 * (online), and lists a cluster's policies. Each cluster enforces its own pods: the
 * source cluster's policies decide egress, the destination cluster's decide ingress, so
 * a trace builds one engine per side. The policy engine, the registry and yaml load
 * inside the actions, which keeps `--help` and other commands fast.
 */

const CLUSTER_LABEL = 'k8s:io.cilium.k8s.policy.cluster';
const NAMESPACE_LABEL = 'k8s:io.kubernetes.pod.namespace';
/** Ad-hoc identities for `--src`/`--dst` labels: above every cluster's range (511 << 16). */
const SRC_ADHOC_ID = 100_000_001;
const DST_ADHOC_ID = 100_000_002;
const POLICY_KINDS = [
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
  'NetworkPolicy',
] as const;

interface TraceOptions {
  readonly filename?: readonly string[] | undefined;
  readonly cluster?: string | undefined;
  readonly localCluster?: string | undefined;
  readonly policyDefaultLocalCluster: string;
  readonly stateDir: string;
  readonly src?: readonly string[] | undefined;
  readonly srcPod?: string | undefined;
  readonly srcIp?: string | undefined;
  readonly dst?: readonly string[] | undefined;
  readonly dstPod?: string | undefined;
  readonly dstIp?: string | undefined;
  readonly dport: string;
}

interface GetOptions {
  readonly cluster?: string | undefined;
  readonly stateDir: string;
}

/** One end of the traced connection, resolved. */
interface End {
  /** What the user named, for the output. */
  readonly describe: string;
  readonly peer: Peer;
  /** Identity labels; for an address outside the mesh, world and its host prefix. */
  readonly labels: readonly string[];
  /** The cluster whose agent enforces this end's policy; null for world. */
  readonly cluster: string | null;
  /** The destination's container ports, for rules with named ports. */
  readonly namedPorts?: NamedPorts | undefined;
}

interface Side {
  readonly direction: 'egress' | 'ingress';
  /** The cluster whose policies decide this side; null when none enforces it. */
  readonly cluster: string | null;
  readonly trace: DirectionTrace | null;
  readonly explanation: string;
}

const TRACE_HELP = `
LABELS are comma separated (or the flag repeated): source:key=value, e.g.
  k8s:app=x-wing,k8s:io.kubernetes.pod.namespace=default,k8s:io.cilium.k8s.policy.cluster=cluster1
  A label without a source is a k8s: label (pod identity labels are k8s: labels);
  reserved:host, $host, reserved:world, cidr:10.0.0.1/32 are accepted.

Offline (-f FILE|DIR|-): policies come from manifests, validated as by "apply"; no mesh
  needs to run. The source's egress is enforced by the source's cluster (its
  io.cilium.k8s.policy.cluster label), the destination's ingress by the destination's
  cluster; labels without a cluster label get the local cluster's (--local-cluster, else
  "default"). With --local-cluster NAME only the side(s) in NAME are enforced.

Online (--cluster C, or the running local mesh of --state-dir): policies, identities and
  endpoints of every cluster of the mesh; the source cluster's policies decide egress,
  the destination cluster's decide ingress. --src-pod/--dst-pod take CLUSTER/NAMESPACE/POD
  (or NAMESPACE/POD in cluster C); --src-ip/--dst-ip find the endpoint owning the IP in
  any cluster, or stand for world. LABELS without a cluster label are in cluster C.

Exit code 0 whatever the verdict; 1 for bad input; 2 for usage errors.
-o json prints {"verdict","from","to","port","egress","ingress"}.`;

export function registerPolicyCommands(program: Command, ctx: CliContext): void {
  const group = commandGroup(
    program,
    'policy',
    'network policy: trace a connection through the policies, list policies',
  );

  group
    .command('trace')
    .description('explain whether policy allows a new connection, rule by rule')
    .option(
      '-f, --filename <path>',
      'policies from this manifest file, directory or - (offline)',
      collect,
    )
    .option('--cluster <name>', 'a cluster of the running local mesh (online)')
    .option('--local-cluster <name>', 'offline: the cluster whose policies the manifests are')
    .addOption(policyDefaultLocalClusterOption())
    .addOption(stateDirOption())
    .option('--src <labels>', 'source identity labels', collect)
    .option('--src-pod <pod>', 'source pod: CLUSTER/NAMESPACE/POD (online)')
    .option('--src-ip <ip>', 'source IP: an endpoint of the mesh, else world')
    .option('--dst <labels>', 'destination identity labels', collect)
    .option('--dst-pod <pod>', 'destination pod: CLUSTER/NAMESPACE/POD (online)')
    .option('--dst-ip <ip>', 'destination IP: an endpoint of the mesh, else world')
    .addOption(
      new Option(
        '--dport <port[/proto]>',
        'destination port, protocol TCP (default), UDP or SCTP',
      ).makeOptionMandatory(),
    )
    .addHelpText('after', TRACE_HELP)
    .action(async (opts: TraceOptions, cmd: Command) => {
      const { output } = globalOptions(cmd);
      checkEnds(cmd, opts);
      const offline = (opts.filename ?? []).length > 0;
      if (offline && opts.cluster !== undefined) {
        usageError(cmd, 'give either -f (offline) or --cluster (online), not both');
      }
      if (!offline && opts.localCluster !== undefined) {
        usageError(cmd, '--local-cluster applies to -f (offline) traces only');
      }
      if (offline && (opts.srcPod !== undefined || opts.dstPod !== undefined)) {
        usageError(cmd, '--src-pod/--dst-pod need a running mesh (--cluster), not -f');
      }
      const { port, proto } = parseDport(opts.dport);
      const pdlc = opts.policyDefaultLocalCluster === 'true';
      const result = offline
        ? await traceOffline(opts, port, proto, pdlc)
        : await traceOnline(opts, port, proto, pdlc);
      if (output !== 'text') {
        ctx.io.stdout(await formatStructured(result.json, output));
        return;
      }
      ctx.io.stdout(result.text);
    });

  group
    .command('get')
    .description("list a cluster's policies (kind, namespace, name, a summary of each rule)")
    .option('--cluster <name>', 'a cluster of the running local mesh (default: the first)')
    .addOption(stateDirOption())
    .addHelpText(
      'after',
      `
Lists the CiliumNetworkPolicies, CiliumClusterwideNetworkPolicies and NetworkPolicies of
the cluster, one rule per line; -o json|yaml prints the objects as a List.`,
    )
    .action(async (opts: GetOptions, cmd: Command) => {
      const { output } = globalOptions(cmd);
      const { readMeshState, clusterOf } = await import('../localmesh/mesh-state.js');
      const { MeshControlClient } = await import('./mesh-client.js');
      const state = await readMeshState(opts.stateDir);
      const cluster =
        opts.cluster === undefined ? state.clusters[0]?.name : clusterOf(state, opts.cluster).name;
      if (cluster === undefined) {
        throw new ClusterMeshError(ErrorCode.InvalidArgument, 'the running mesh has no cluster');
      }
      const client = new MeshControlClient(state.control, cluster);
      const objects = await listPolicies(client);
      if (output !== 'text') {
        ctx.io.stdout(
          await formatStructured({ apiVersion: 'v1', kind: 'List', items: objects }, output),
        );
        return;
      }
      if (objects.length === 0) {
        ctx.io.stderr(`No policies in cluster ${cluster}.\n`);
        return;
      }
      ctx.io.stdout(await summarizePolicies(objects, cluster));
    });
}

function checkEnds(cmd: Command, opts: TraceOptions): void {
  for (const side of ['src', 'dst'] as const) {
    const given = [
      opts[side] !== undefined,
      opts[`${side}Pod`] !== undefined,
      opts[`${side}Ip`] !== undefined,
    ].filter(Boolean).length;
    if (given !== 1) {
      usageError(cmd, `give exactly one of --${side}, --${side}-pod, --${side}-ip`);
    }
  }
}

function invalid(message: string): ClusterMeshError {
  return new ClusterMeshError(ErrorCode.InvalidArgument, message);
}

export function parseDport(text: string): { port: number; proto: Protocol } {
  const m = /^(\d{1,5})(?:\/([A-Za-z]+))?$/.exec(text.trim());
  const port = m === null ? NaN : Number(m[1]);
  if (m === null || port < 1 || port > 65535) {
    throw invalid(`--dport ${JSON.stringify(text)}: expected PORT[/PROTO] with PORT 1..65535`);
  }
  const proto = (m[2] ?? 'TCP').toUpperCase();
  if (proto !== 'TCP' && proto !== 'UDP' && proto !== 'SCTP') {
    throw invalid(`--dport ${JSON.stringify(text)}: protocol must be TCP, UDP or SCTP`);
  }
  return { port, proto };
}

/**
 * Parses `--src`/`--dst` label lists. A label without a source is a `k8s:` label: pod
 * identities carry only `k8s:` labels, and Kubernetes NetworkPolicy selectors require
 * that source, so an `any:` label (Cilium's select-label parsing) would never match them.
 */
export async function parseLabelList(flag: string, values: readonly string[]): Promise<string[]> {
  const { parseLabel, formatLabel, KNOWN_SOURCES } = await import('../policy/labels.js');
  const out: string[] = [];
  for (const raw of values.flatMap((v) => v.split(','))) {
    const s = raw.trim();
    if (s === '') continue;
    const hasSource = s.startsWith('$') || s.includes(':');
    const l = parseLabel(hasSource ? s : `k8s:${s}`);
    if (l.key === '' || /[\s=]/.test(l.key)) {
      throw invalid(`${flag} ${JSON.stringify(s)}: expected source:key=value`);
    }
    if (!KNOWN_SOURCES.has(l.source) || l.source === 'any') {
      throw invalid(
        `${flag} ${JSON.stringify(s)}: unknown label source ${JSON.stringify(l.source)}`,
      );
    }
    out.push(l.source === 'cidr' ? `cidr:${l.key}` : formatLabel(l));
  }
  if (out.length === 0) throw invalid(`${flag}: no labels given`);
  return out;
}

function isReservedOrCidr(labels: readonly string[]): boolean {
  return labels.some((l) => l.startsWith('reserved:') || l.startsWith('cidr:'));
}

function labelValue(labels: readonly string[], key: string): string | undefined {
  const l = labels.find((x) => x.startsWith(`${key}=`));
  return l?.slice(key.length + 1);
}

interface TraceResult {
  readonly text: string;
  readonly json: unknown;
}

// ---------------------------------------------------------------------------------
// Offline

async function traceOffline(
  opts: TraceOptions,
  port: number,
  proto: Protocol,
  pdlc: boolean,
): Promise<TraceResult> {
  const { loadManifests } = await import('../registry/manifest.js');
  const loaded = await loadManifests(opts.filename ?? []);
  const policies: RegistryObject[] = [];
  const notes: string[] = [];
  for (const l of loaded) {
    if ((POLICY_KINDS as readonly string[]).includes(l.info.kind)) policies.push(l.object);
    else notes.push(`ignored ${l.info.kind} ${l.object.metadata.name} (${l.source}): not a policy`);
  }
  const local = opts.localCluster;
  const offlineEnd = async (side: 'src' | 'dst'): Promise<End> => {
    const ip = side === 'src' ? opts.srcIp : opts.dstIp;
    if (ip !== undefined) return worldEnd(ip);
    let labels = await parseLabelList(`--${side}`, (side === 'src' ? opts.src : opts.dst) ?? []);
    let cluster = labelValue(labels, CLUSTER_LABEL);
    if (cluster === undefined) {
      cluster = local ?? 'default';
      // Every endpoint identity carries its cluster's label; reserved and CIDR ones none.
      if (!isReservedOrCidr(labels)) labels = [...labels, `${CLUSTER_LABEL}=${cluster}`];
    }
    return {
      describe: `--${side} labels`,
      peer: { identity: side === 'src' ? SRC_ADHOC_ID : DST_ADHOC_ID },
      labels,
      cluster,
    };
  };
  const src = await offlineEnd('src');
  const dst = await offlineEnd('dst');
  for (const [name, end] of [
    ['source', src],
    ['destination', dst],
  ] as const) {
    const namespaced = policies.filter((p) => p.metadata.namespace !== undefined);
    if (
      !isReservedOrCidr(end.labels) &&
      namespaced.length > 0 &&
      labelValue(end.labels, NAMESPACE_LABEL) === undefined
    ) {
      const nss = [...new Set(namespaced.map((p) => p.metadata.namespace ?? ''))].join(', ');
      notes.push(
        `the ${name} labels have no ${NAMESPACE_LABEL}: namespaced policies (namespace ${nss}) ` +
          `never select it, and their peers without a namespace are their own namespace`,
      );
    }
  }
  const identities = new Map<number, readonly string[]>();
  if ('identity' in src.peer) identities.set(src.peer.identity, src.labels);
  if ('identity' in dst.peer) identities.set(dst.peer.identity, dst.labels);
  const source = `manifests (${[...new Set(loaded.map((l) => l.source))].join(', ')})`;
  return runTrace({
    src,
    dst,
    port,
    proto,
    pdlc,
    identities,
    policiesOf: () => policies,
    localOnly: local,
    source,
    notes,
  });
}

function worldEnd(ip: string): End {
  return { describe: ip, peer: { ip }, labels: [], cluster: null };
}

// ---------------------------------------------------------------------------------
// Online

interface ClusterData {
  readonly name: string;
  readonly policies: RegistryObject[];
  readonly identities: RegistryObject[];
  readonly endpoints: RegistryObject[];
  readonly pods: RegistryObject[];
  readonly namespaces: RegistryObject[];
}

async function listPolicies(client: MeshControlClient): Promise<RegistryObject[]> {
  const out: RegistryObject[] = [];
  for (const kind of POLICY_KINDS) out.push(...(await client.objects(kind)));
  return out;
}

async function traceOnline(
  opts: TraceOptions,
  port: number,
  proto: Protocol,
  pdlc: boolean,
): Promise<TraceResult> {
  const { readMeshState, clusterOf } = await import('../localmesh/mesh-state.js');
  const { MeshControlClient } = await import('./mesh-client.js');
  const state = await readMeshState(opts.stateDir);
  const home =
    opts.cluster === undefined ? state.clusters[0]?.name : clusterOf(state, opts.cluster).name;
  if (home === undefined) throw invalid('the running mesh has no cluster');
  const clusters = new Map<string, ClusterData>();
  await Promise.all(
    state.clusters.map(async (c) => {
      const client = new MeshControlClient(state.control, c.name);
      const [policies, identities, endpoints, pods, namespaces] = await Promise.all([
        listPolicies(client),
        client.objects('CiliumIdentity'),
        client.objects('CiliumEndpoint'),
        client.objects('Pod'),
        client.objects('Namespace'),
      ]);
      clusters.set(c.name, { name: c.name, policies, identities, endpoints, pods, namespaces });
    }),
  );
  const identities = new Map<number, readonly string[]>();
  for (const c of clusters.values()) {
    for (const ci of c.identities) {
      const id = Number(ci.metadata.name);
      if (Number.isInteger(id)) identities.set(id, securityLabels(ci));
    }
  }
  const end = async (side: 'src' | 'dst'): Promise<End> => {
    const pod = side === 'src' ? opts.srcPod : opts.dstPod;
    const ip = side === 'src' ? opts.srcIp : opts.dstIp;
    if (pod !== undefined) return podEnd(`--${side}-pod`, pod, home, clusters, identities);
    if (ip !== undefined) return ipEnd(ip, clusters, identities);
    let labels = await parseLabelList(`--${side}`, (side === 'src' ? opts.src : opts.dst) ?? []);
    let cluster = labelValue(labels, CLUSTER_LABEL);
    if (cluster === undefined && !isReservedOrCidr(labels)) {
      // Every endpoint identity of the mesh carries its cluster's label.
      cluster = home;
      labels = [...labels, `${CLUSTER_LABEL}=${home}`];
    }
    const id = side === 'src' ? SRC_ADHOC_ID : DST_ADHOC_ID;
    identities.set(id, labels);
    return {
      describe: `--${side} labels`,
      peer: { identity: id },
      labels,
      cluster: cluster ?? home,
    };
  };
  const src = await end('src');
  const dst = await end('dst');
  return runTrace({
    src,
    dst,
    port,
    proto,
    pdlc,
    identities,
    policiesOf: (cluster) => clusters.get(cluster)?.policies ?? [],
    localOnly: undefined,
    source: `the running mesh (${[...clusters.keys()].sort().join(', ')})`,
    notes: [],
  });
}

function securityLabels(ci: RegistryObject): string[] {
  const raw = (ci as { 'security-labels'?: Record<string, string> })['security-labels'] ?? {};
  return Object.entries(raw).map(([k, v]) => (v === '' ? k : `${k}=${v}`));
}

interface CepStatus {
  identity?: { id: number; labels?: string[] };
  networking?: { addressing: { ipv4?: string; ipv6?: string }[] };
  'named-ports'?: { name: string; port: number; protocol?: string }[];
}

function cepStatus(cep: RegistryObject): CepStatus {
  return (cep as { status?: CepStatus }).status ?? {};
}

function namedPortsOf(cep: RegistryObject | undefined): NamedPorts | undefined {
  const list = cep === undefined ? undefined : cepStatus(cep)['named-ports'];
  if (list === undefined) return undefined;
  const out: Record<string, { port: number; protocol: Protocol }> = {};
  for (const p of list) {
    const proto = (p.protocol ?? 'TCP').toUpperCase();
    if (proto === 'TCP' || proto === 'UDP' || proto === 'SCTP') {
      out[p.name] = { port: p.port, protocol: proto };
    }
  }
  return out;
}

function endpointEnd(
  describe: string,
  cluster: string,
  cep: RegistryObject,
  identities: Map<number, readonly string[]>,
): End | undefined {
  const ident = cepStatus(cep).identity;
  if (ident === undefined) return undefined;
  let labels = identities.get(ident.id);
  if (labels === undefined && ident.labels !== undefined) {
    labels = ident.labels;
    identities.set(ident.id, labels);
  }
  if (labels === undefined) return undefined;
  return {
    describe,
    peer: { identity: ident.id },
    labels,
    cluster,
    namedPorts: namedPortsOf(cep),
  };
}

function podEnd(
  flag: string,
  text: string,
  home: string,
  clusters: ReadonlyMap<string, ClusterData>,
  identities: Map<number, readonly string[]>,
): End {
  const parts = text.split('/');
  const [cluster, namespace, name] = parts.length === 2 ? [home, ...parts] : parts;
  if (parts.length < 2 || parts.length > 3 || !cluster || !namespace || !name) {
    throw invalid(`${flag} ${JSON.stringify(text)}: expected CLUSTER/NAMESPACE/POD`);
  }
  const c = clusters.get(cluster);
  if (c === undefined) {
    throw invalid(
      `${flag}: cluster ${JSON.stringify(cluster)} is not part of the running mesh (clusters: ${[...clusters.keys()].join(', ')})`,
    );
  }
  const same = (o: RegistryObject): boolean =>
    o.metadata.namespace === namespace && o.metadata.name === name;
  const describe = `${cluster}/${namespace}/${name}`;
  const cep = c.endpoints.find(same);
  const fromCep = cep === undefined ? undefined : endpointEnd(describe, cluster, cep, identities);
  if (fromCep !== undefined) return fromCep;
  const pod = c.pods.find(same);
  if (pod === undefined) {
    throw new ClusterMeshError(ErrorCode.KeyNotFound, `${flag}: pod ${describe} not found`);
  }
  // No endpoint (yet): the labels its identity would have.
  const ns = c.namespaces.find((n) => n.metadata.name === namespace);
  const labels = [
    ...Object.entries(pod.metadata.labels ?? {}).map(([k, v]) => `k8s:${k}=${v}`),
    ...Object.entries(ns?.metadata.labels ?? {}).map(
      ([k, v]) => `k8s:io.cilium.k8s.namespace.labels.${k}=${v}`,
    ),
    `${NAMESPACE_LABEL}=${namespace}`,
    `${CLUSTER_LABEL}=${cluster}`,
  ];
  const id = flag.startsWith('--src') ? SRC_ADHOC_ID : DST_ADHOC_ID;
  identities.set(id, labels);
  return { describe, peer: { identity: id }, labels, cluster };
}

function ipEnd(
  ip: string,
  clusters: ReadonlyMap<string, ClusterData>,
  identities: Map<number, readonly string[]>,
): End {
  for (const c of clusters.values()) {
    for (const cep of c.endpoints) {
      const owns = (cepStatus(cep).networking?.addressing ?? []).some(
        (a) => a.ipv4 === ip || a.ipv6 === ip,
      );
      if (!owns) continue;
      const describe = `${ip} (${c.name}/${cep.metadata.namespace ?? ''}/${cep.metadata.name})`;
      const e = endpointEnd(describe, c.name, cep, identities);
      if (e !== undefined) return e;
    }
  }
  return worldEnd(ip);
}

// ---------------------------------------------------------------------------------
// The trace itself

interface TraceInput {
  readonly src: End;
  readonly dst: End;
  readonly port: number;
  readonly proto: Protocol;
  readonly pdlc: boolean;
  readonly identities: ReadonlyMap<number, readonly string[]>;
  readonly policiesOf: (cluster: string) => readonly RegistryObject[];
  /** Offline `--local-cluster`: only ends in this cluster are enforced. */
  readonly localOnly: string | undefined;
  readonly source: string;
  readonly notes: readonly string[];
}

async function runTrace(input: TraceInput): Promise<TraceResult> {
  const { PolicyEngine } = await import('../policy/engine.js');
  const engines = new Map<string, PolicyEngine>();
  const engineFor = (cluster: string): PolicyEngine => {
    let e = engines.get(cluster);
    if (e === undefined) {
      e = new PolicyEngine({ clusterName: cluster, policyDefaultLocalCluster: input.pdlc });
      for (const [id, labels] of input.identities) e.upsertIdentity(id, labels);
      for (const p of input.policiesOf(cluster)) e.upsertPolicy(p);
      engines.set(cluster, e);
    }
    return e;
  };
  const side = (direction: 'egress' | 'ingress'): Side => {
    const subject = direction === 'egress' ? input.src : input.dst;
    const what = direction === 'egress' ? 'source' : 'destination';
    if (subject.cluster === null) {
      return {
        direction,
        cluster: null,
        trace: null,
        explanation: `the ${what} is outside the mesh (world): no ${direction} policy applies`,
      };
    }
    if (input.localOnly !== undefined && subject.cluster !== input.localOnly) {
      return {
        direction,
        cluster: null,
        trace: null,
        explanation: `the ${what} is in cluster ${subject.cluster}, not the local cluster ${input.localOnly}: its own cluster enforces its ${direction}`,
      };
    }
    const engine = engineFor(subject.cluster);
    const t = engine.trace({
      src: input.src.peer,
      dst: input.dst.peer,
      dport: input.port,
      proto: input.proto,
      direction,
      dstNamedPorts: input.dst.namedPorts,
    });
    const trace = direction === 'egress' ? t.egress : t.ingress;
    const explanation =
      trace === null
        ? `no ${direction} rule of cluster ${subject.cluster} selects the ${what}: not enforced`
        : `${trace.rulesSelected} ${direction} rule(s) of cluster ${subject.cluster} select the ${what}`;
    return { direction, cluster: subject.cluster, trace, explanation };
  };
  const egress = side('egress');
  const ingress = side('ingress');
  const allowed =
    (egress.trace?.verdict ?? 'allowed') === 'allowed' &&
    (ingress.trace?.verdict ?? 'allowed') === 'allowed';
  const verdict = allowed ? 'ALLOWED' : 'DENIED';
  const fromLabels = labelsShown(input.src);
  const toLabels = labelsShown(input.dst);
  const port = `${input.port}/${input.proto}`;
  const json = {
    verdict,
    from: { peer: input.src.describe, cluster: input.src.cluster, labels: fromLabels },
    to: { peer: input.dst.describe, cluster: input.dst.cluster, labels: toLabels },
    port,
    policies: input.source,
    egress: sideJson(egress),
    ingress: sideJson(ingress),
    notes: input.notes,
  };
  const lines: string[] = [];
  lines.push(`Policies: ${input.source}`);
  lines.push(`From: ${input.src.describe}${clusterSuffix(input.src)}`);
  lines.push(`  labels: ${fromLabels.join(', ')}`);
  lines.push(`To:   ${input.dst.describe}${clusterSuffix(input.dst)}`);
  lines.push(`  labels: ${toLabels.join(', ')}`);
  lines.push(`Port: ${port}`);
  for (const n of input.notes) lines.push(`Note: ${n}`);
  for (const s of [egress, ingress]) {
    lines.push('');
    const who = s.direction === 'egress' ? 'source' : 'destination';
    lines.push(
      s.cluster === null
        ? `${cap(s.direction)}:`
        : `${cap(s.direction)} (enforced by cluster ${s.cluster}, the ${who}'s cluster, with its policies):`,
    );
    lines.push(`  ${s.explanation}`);
    if (s.trace !== null) {
      lines.push(`  default deny: ${s.trace.defaultDeny ? 'on' : 'off'}`);
      for (const r of s.trace.rules) {
        const peerWord = s.direction === 'egress' ? 'to' : 'from';
        const peers = r.peers.length === 0 ? 'nothing' : r.peers.join(' | ');
        lines.push(
          `  ${r.action === 'deny' ? 'DENY ' : 'ALLOW'} ${refText(r.policy)} ${r.path}: ${peerWord} ${peers} ports ${r.ports.join(',')}`,
        );
        lines.push(
          `        peer ${r.peerMatched ? 'matches' : 'does not match'}, port ${r.portMatched ? 'matches' : 'does not match'}: ${r.result}`,
        );
      }
      lines.push(`  => ${s.trace.verdict}: ${s.trace.reason}`);
    } else {
      lines.push('  => allowed');
    }
  }
  lines.push('');
  lines.push(`Final verdict: ${verdict}`);
  return { text: `${lines.join('\n')}\n`, json };
}

function labelsShown(end: End): string[] {
  if ('ip' in end.peer) {
    const host = end.peer.ip.includes(':') ? `${end.peer.ip}/128` : `${end.peer.ip}/32`;
    return ['reserved:world', `cidr:${host}`];
  }
  return [...end.labels];
}

function clusterSuffix(end: End): string {
  return end.cluster === null ? ' (world)' : ` (cluster ${end.cluster})`;
}

function cap(s: string): string {
  return s.charAt(0).toUpperCase() + s.slice(1);
}

function refText(ref: PolicyRef): string {
  return ref.namespace === ''
    ? `${ref.kind} ${ref.name}`
    : `${ref.kind} ${ref.namespace}/${ref.name}`;
}

function sideJson(s: Side): Record<string, unknown> {
  const base = { cluster: s.cluster, explanation: s.explanation };
  if (s.trace === null) {
    return { ...base, enforced: false, verdict: 'allowed', reason: 'not enforced', rules: [] };
  }
  return {
    ...base,
    enforced: true,
    verdict: s.trace.verdict,
    reason: s.trace.reason,
    defaultDeny: s.trace.defaultDeny,
    subject: s.trace.subject,
    rulesSelected: s.trace.rulesSelected,
    rules: s.trace.rules,
    allowedBy: s.trace.allowedBy,
    deniedBy: s.trace.deniedBy,
  };
}

// ---------------------------------------------------------------------------------
// policy get

async function summarizePolicies(
  objects: readonly RegistryObject[],
  cluster: string,
): Promise<string> {
  const { parsePolicy } = await import('../policy/rules.js');
  const { describePeer, describePort } = await import('../policy/engine.js');
  const { formatRequirement } = await import('../policy/labels.js');
  const lines: string[] = [];
  for (const o of objects) {
    const parsed = parsePolicy(o, { clusterName: cluster });
    lines.push(refText(parsed.ref));
    if (parsed.entries.length === 0) lines.push('  (no rules)');
    for (const e of parsed.entries) {
      const subject =
        e.subject.requirements.length === 0
          ? 'every endpoint'
          : e.subject.requirements.map(formatRequirement).join(',');
      const peers =
        e.peers === null || e.peers.length === 0
          ? 'nothing'
          : e.peers.map(describePeer).join(' | ');
      const ports = e.ports.length === 0 ? 'any port' : e.ports.map(describePort).join(',');
      const way = e.direction === 'egress' ? 'to' : 'from';
      lines.push(
        `  ${e.path}: ${e.action} ${e.direction} of [${subject}] ${way} ${peers} on ${ports}${e.defaultDeny ? '' : ' (no default deny)'}`,
      );
    }
  }
  return `${lines.join('\n')}\n`;
}
