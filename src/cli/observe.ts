import { InvalidArgumentError, type Command } from 'commander';
import {
  flowType,
  type Flow,
  type FlowEndpoint,
  type FlowPolicy,
  type FlowType,
  type Verdict,
} from '../datapath/flows.js';
import {
  formatStructured,
  globalOptions,
  parseDuration,
  type CliContext,
  type CliIo,
  type OutputFormat,
} from './common.js';

/**
 * `clustermesh observe`: the datapath's flows, like `hubble observe`. Every agent keeps
 * its own flow log; this reads them all (from mesh.json, or one agent with `-H`),
 * merges them by time and prints one line per flow.
 */

export interface ObserveOptions {
  /** One agent's API (`-H`); otherwise every agent listed in the mesh state. */
  readonly host?: string | undefined;
  readonly stateDir: string;
  readonly cluster?: string | undefined;
  readonly last: number;
  readonly follow: boolean;
  /** Only flows at most this old (ms). */
  readonly sinceMs?: number | undefined;
  /** Only flows with one of these verdicts (none: every verdict). */
  readonly verdicts?: readonly Verdict[] | undefined;
  /** Only flows of these event types, as `flowType` reads them (none: every type). */
  readonly types?: readonly FlowType[] | undefined;
  readonly output: OutputFormat;
  readonly io: CliIo;
  /** Ends `follow`; the command wires SIGINT/SIGTERM to it. */
  readonly signal?: AbortSignal | undefined;
  readonly pollMs?: number | undefined;
}

interface Source {
  readonly label: string;
  readonly url: string;
  next: number;
  failing: boolean;
}

interface FlowPageJson {
  readonly flows: Flow[];
  readonly next: number;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const pad = (n: number, w = 2): string => String(n).padStart(w, '0');

/** Go's `time.StampMilli` in local time, as Hubble prints it. */
function stamp(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const day = String(d.getDate()).padStart(2, ' ');
  return `${MONTHS[d.getMonth()] ?? '???'} ${day} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

function hostPort(ip: string, port: number): string {
  return ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`;
}

function endpointText(e: FlowEndpoint): string {
  const reserved = e.labels?.find((l) => l.startsWith('reserved:'));
  const name =
    e.pod !== undefined
      ? `${e.namespace ?? 'default'}/${e.pod}`
      : reserved !== undefined
        ? reserved.slice('reserved:'.length)
        : '';
  const meta = [e.cluster, e.identity].filter((x) => x !== undefined).join(', ');
  const where = hostPort(e.ip, e.port);
  if (name === '') return meta === '' ? where : `${where} (${meta})`;
  return `${name}${meta === '' ? '' : `(${meta})`} ${where}`;
}

/** Hubble's texts for the policy drop reasons; other reasons are printed as recorded. */
const DROP_REASON_TEXT: Readonly<Record<string, string>> = {
  POLICY_DENIED: 'Policy denied',
  POLICY_DENY: 'Policy denied by denylist',
};

function policyNames(list: readonly FlowPolicy[] | undefined): string {
  return (list ?? []).map((p) => `${p.name} (${p.kind})`).join(', ');
}

/**
 * Hubble's compact policy-verdict words with `--print-policy-names`: direction, ALLOWED or
 * DENIED, and the policies that decided. The match type (`:L3-L4`, …) is left out: the
 * datapath does not record which part of a rule matched.
 */
function policyVerdictText(f: Flow): string {
  const egress = f.direction === 'egress';
  const allowedBy = policyNames(egress ? f.egress_allowed_by : f.ingress_allowed_by);
  const deniedBy = policyNames(egress ? f.egress_denied_by : f.ingress_denied_by);
  const decision =
    f.verdict === 'DROPPED'
      ? `DENIED${deniedBy === '' ? '' : ` BY ${deniedBy}`}`
      : `ALLOWED${allowedBy === '' ? '' : ` BY ${allowedBy}`}`;
  return `policy-verdict ${egress ? 'EGRESS' : 'INGRESS'} ${decision} `;
}

/** One Hubble-like line (without the newline). */
export function formatFlow(f: Flow): string {
  const dst =
    f.service !== undefined
      ? `${f.service.namespace}/${f.service.name} (${hostPort(f.destination.ip, f.destination.port)})`
      : endpointText(f.destination);
  const backend = f.backend !== undefined ? ` => ${endpointText(f.backend)}` : '';
  const point = f.direction === 'ingress' ? ' to-endpoint' : '';
  const policy = flowType(f) === 'policy-verdict' ? policyVerdictText(f) : '';
  const reason =
    f.dropReason === undefined ? 'unknown' : (DROP_REASON_TEXT[f.dropReason] ?? f.dropReason);
  const verdict = f.verdict === 'DROPPED' ? `DROPPED (${reason})` : f.verdict;
  return `${stamp(f.time)} [${f.node}] ${endpointText(f.source)} -> ${dst}${backend}${point} ${policy}${verdict}`;
}

function byTime(a: Flow, b: Flow): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  if (a.node !== b.node) return a.node < b.node ? -1 : 1;
  return a.seq - b.seq;
}

async function resolveSources(o: ObserveOptions): Promise<Source[]> {
  if (o.host !== undefined && o.host !== '') {
    return [{ label: o.host, url: o.host, next: 0, failing: false }];
  }
  const { readMeshState, clusterOf } = await import('../localmesh/mesh-state.js');
  const state = await readMeshState(o.stateDir);
  const clusters = o.cluster !== undefined ? [clusterOf(state, o.cluster)] : state.clusters;
  const sources = clusters.flatMap((c) =>
    c.agents.map((a) => ({ label: `${c.name}/${a.node}`, url: a.api, next: 0, failing: false })),
  );
  if (sources.length === 0) {
    const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
    throw new ClusterMeshError(ErrorCode.ConfigNotFound, 'the running mesh lists no agents');
  }
  return sources;
}

function asPage(data: unknown, url: string): FlowPageJson {
  const page = data as Partial<FlowPageJson> | null;
  if (page === null || !Array.isArray(page.flows) || typeof page.next !== 'number') {
    throw new Error(`agent at ${url}: unexpected /v1/flows answer`);
  }
  return page as FlowPageJson;
}

/**
 * Fetches one page from every source. An unreachable agent is reported once on stderr
 * and skipped, so one stopped node does not hide the others; all failing is an error.
 */
async function poll(
  sources: Source[],
  query: (s: Source) => string,
  io: CliIo,
  warnAlone: boolean,
): Promise<Flow[]> {
  const { agentGet } = await import('./agent-client.js');
  const results = await Promise.allSettled(
    sources.map(async (s) => asPage(await agentGet(s.url, `/v1/flows?${query(s)}`), s.url)),
  );
  const flows: Flow[] = [];
  let firstError: Error | undefined;
  results.forEach((r, i) => {
    const s = sources[i];
    if (s === undefined) return;
    if (r.status === 'fulfilled') {
      s.failing = false;
      s.next = r.value.next;
      flows.push(...r.value.flows);
      return;
    }
    const err = r.reason instanceof Error ? r.reason : new Error(String(r.reason));
    firstError ??= err;
    if (!s.failing && (warnAlone || sources.length > 1)) {
      io.stderr(`clustermesh: warning: ${s.label}: ${err.message}\n`);
    }
    s.failing = true;
  });
  if (firstError !== undefined && results.every((r) => r.status === 'rejected')) throw firstError;
  return flows.sort(byTime);
}

/** Reads, filters, merges and prints flows; with `follow`, until `signal` aborts. */
export async function observeFlows(o: ObserveOptions): Promise<void> {
  const sources = await resolveSources(o);
  const byHost = o.host !== undefined && o.host !== '';
  const clusterFilter = byHost ? o.cluster : undefined;
  const verdicts = o.verdicts !== undefined && o.verdicts.length > 0 ? o.verdicts : undefined;
  const types = o.types !== undefined && o.types.length > 0 ? o.types : undefined;
  const keep = (f: Flow): boolean => {
    if (o.sinceMs !== undefined && Date.parse(f.time) < Date.now() - o.sinceMs) return false;
    if (verdicts !== undefined && !verdicts.includes(f.verdict)) return false;
    if (types !== undefined && !types.includes(flowType(f))) return false;
    if (clusterFilter === undefined) return true;
    return (
      f.source.cluster === clusterFilter ||
      f.destination.cluster === clusterFilter ||
      f.backend?.cluster === clusterFilter
    );
  };
  // Filters drop flows after the fact, so the last N kept need the whole log.
  const filtered =
    o.sinceMs !== undefined ||
    clusterFilter !== undefined ||
    verdicts !== undefined ||
    types !== undefined;
  const first = await poll(sources, () => (filtered ? '' : `limit=${o.last}`), o.io, false);
  const initial = first.filter(keep);
  const shown = o.last === 0 ? [] : initial.slice(-o.last);

  if (!o.follow) {
    if (o.output === 'text') o.io.stdout(shown.map((f) => `${formatFlow(f)}\n`).join(''));
    else o.io.stdout(await formatStructured(shown, o.output));
    return;
  }
  const emit = async (flows: readonly Flow[]): Promise<void> => {
    for (const f of flows) {
      if (o.output === 'text') o.io.stdout(`${formatFlow(f)}\n`);
      else if (o.output === 'json') o.io.stdout(`${JSON.stringify(f)}\n`);
      else o.io.stdout(`---\n${await formatStructured(f, 'yaml')}`);
    }
  };
  await emit(shown);
  const { sleep } = await import('../lib/abort.js');
  const signal = o.signal;
  while (signal?.aborted !== true) {
    try {
      await sleep(o.pollMs ?? 250, signal);
    } catch {
      break;
    }
    let flows: Flow[];
    try {
      flows = await poll(sources, (s) => `since=${s.next}`, o.io, true);
    } catch {
      // Every agent is down (the mesh restarting): keep following; poll said so once.
      continue;
    }
    await emit(flows.filter(keep));
  }
}

function parseCount(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new InvalidArgumentError('Expected a non-negative integer.');
  }
  return n;
}

const VERDICTS: readonly Verdict[] = ['FORWARDED', 'DROPPED'];
const FLOW_TYPES: readonly FlowType[] = ['policy-verdict', 'drop', 'trace'];

/**
 * A repeatable flag taking comma lists of `valid` words (case-insensitive); a bad word is
 * commander's one-line usage error naming the valid ones.
 */
function wordList<T extends string>(
  valid: readonly T[],
  normalize: (s: string) => string,
): (value: string, previous: readonly T[] | undefined) => T[] {
  return (value, previous) => {
    const out = [...(previous ?? [])];
    for (const raw of value.split(',')) {
      const word = normalize(raw.trim());
      const found = valid.find((v) => v === word);
      if (found === undefined) {
        throw new InvalidArgumentError(`Expected ${valid.join(', ')} (or a comma list).`);
      }
      if (!out.includes(found)) out.push(found);
    }
    return out;
  };
}

export function registerObserveCommands(program: Command, ctx: CliContext): void {
  program
    .command('observe')
    .description(
      "show the datapath's flows from every agent of the running mesh (reference: hubble observe)",
    )
    .option('--state-dir <dir>', 'directory of the running mesh (mesh.json)', '.clustermesh')
    .option('--cluster <name>', "only this cluster's agents (with -H: flows involving it)")
    .option('--last <n>', 'how many recent flows to show first', parseCount, 20)
    .option('-f, --follow', 'keep printing new flows until interrupted')
    .option('--since <duration>', 'only flows younger than this (500ms, 30s, 5m)', parseDuration)
    .option(
      '--verdict <verdict>',
      `only flows with this verdict: ${VERDICTS.join('|')} (repeatable, or a comma list)`,
      wordList(VERDICTS, (s) => s.toUpperCase()),
    )
    .option(
      '--type <type>',
      `only flows of this event type: ${FLOW_TYPES.join('|')} (repeatable, or a comma list)`,
      wordList(FLOW_TYPES, (s) => s.toLowerCase()),
    )
    .addHelpText(
      'after',
      `
Event types as Hubble names them: policy-verdict (a connection decided by the policy of an
endpoint that enforces it, allowed or denied), drop (any other drop), trace (forwarded, no
policy applied). Policy drops print "DROPPED (Policy denied)" when no rule allows and
"DROPPED (Policy denied by denylist)" when a deny rule matched; policy verdicts name the
policies that decided, e.g. "policy-verdict EGRESS ALLOWED BY allow-dns (CiliumNetworkPolicy)".`,
    )
    .action(
      async (
        opts: {
          stateDir: string;
          cluster?: string;
          last: number;
          follow?: boolean;
          since?: number;
          verdict?: Verdict[];
          type?: FlowType[];
        },
        cmd: Command,
      ) => {
        const g = globalOptions(cmd);
        const ac = new AbortController();
        const stop = (): void => {
          ac.abort();
        };
        if (opts.follow === true) {
          process.once('SIGINT', stop);
          process.once('SIGTERM', stop);
        }
        try {
          await observeFlows({
            host: g.host,
            stateDir: opts.stateDir,
            cluster: opts.cluster,
            last: opts.last,
            follow: opts.follow === true,
            sinceMs: opts.since,
            verdicts: opts.verdict,
            types: opts.type,
            output: g.output,
            io: ctx.io,
            signal: ac.signal,
          });
        } finally {
          process.off('SIGINT', stop);
          process.off('SIGTERM', stop);
        }
      },
    );
}
