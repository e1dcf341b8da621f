import { podSearchPath, resolveA } from '../dns/client.js';
import { CurlError, CurlUsageError, curlFrom, parseCurlArgs } from '../exec/curl.js';
import { errorMessage } from '../lib/errors.js';

/**
 * The commands any pod can run through `kubectl exec` (and exec probes): local mode has no
 * container filesystem, so each is emulated as the pod — `curl` and `nslookup` leave from
 * the pod's IP through its cluster's DNS and its node's egress policy, exactly as
 * `clustermesh exec` does. Exit codes and error lines follow the real tools.
 */

/** What a command sees of the pod it runs in. */
export interface PodExecContext {
  readonly cluster: string;
  readonly namespace: string;
  readonly pod: string;
  readonly ip: string;
  /** `ip:port` of the cluster DNS. */
  readonly dns: string;
  /** The container's environment (its spec's `env` values plus what Kubernetes adds). */
  readonly env: Readonly<Record<string, string>>;
  /** The pod's node decides on each outgoing connection (egress policy). */
  readonly beforeConnect?:
    ((ip: string, port: number) => Promise<'allowed' | 'dropped'>) | undefined;
  /** Programs the pod's image adds to the ones every image has (`cilium` in the agent's). */
  readonly commands?: ReadonlyMap<string, PodCommand> | undefined;
}

export interface PodExecIO {
  readonly stdout: (s: string | Buffer) => void;
  readonly stderr: (s: string | Buffer) => void;
  /** Standard input, when the client sent it (`kubectl exec -i`); ends on stdin EOF. */
  readonly stdin?: AsyncIterable<Buffer> | undefined;
  /** Aborted when the client goes away. */
  readonly signal: AbortSignal;
}

/** The shell's "command not found". */
export const EXIT_NOT_FOUND = 127;

export type PodCommand = (
  args: readonly string[],
  ctx: PodExecContext,
  io: PodExecIO,
) => Promise<number>;
type Command = PodCommand;

const COMMANDS: ReadonlyMap<string, Command> = new Map<string, Command>([
  ['curl', curl],
  ['cat', cat],
  ['echo', echo],
  ['env', env],
  ['printenv', env],
  ['hostname', hostname],
  ['nslookup', nslookup],
  ['sleep', sleep],
  ['true', () => Promise.resolve(0)],
  ['false', () => Promise.resolve(1)],
  ['sh', sh],
  ['bash', sh],
]);

/** The names `runPodCommand` knows (help texts, docs). */
export const POD_COMMANDS: readonly string[] = [...COMMANDS.keys()];

/** Runs `argv` as the pod; resolves with the exit code (never throws for the command's failures). */
export async function runPodCommand(
  argv: readonly string[],
  ctx: PodExecContext,
  io: PodExecIO,
): Promise<number> {
  const [prog, ...args] = argv;
  if (prog === undefined || prog === '') {
    io.stderr('exec: no command given\n');
    return EXIT_NOT_FOUND;
  }
  // `/usr/bin/curl` and `curl` are the same program.
  const base = prog.slice(prog.lastIndexOf('/') + 1);
  const cmd = ctx.commands?.get(base) ?? COMMANDS.get(base);
  if (cmd === undefined) {
    io.stderr(`sh: ${prog}: not found\n`);
    return EXIT_NOT_FOUND;
  }
  try {
    return await cmd(args, ctx, io);
  } catch (err) {
    io.stderr(`${prog}: ${errorMessage(err)}\n`);
    return 1;
  }
}

/**
 * `-o FILE` / `--output FILE`: the body goes to the file instead of stdout. A pod has no
 * filesystem here, so every file is /dev/null (what probes and checks write to).
 */
function withoutOutputFile(args: readonly string[]): { args: string[]; discard: boolean } {
  const out: string[] = [];
  let discard = false;
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if ((a === '-o' || a === '--output') && i + 1 < args.length) {
      discard = true;
      i++;
    } else if (/^-o./.test(a)) discard = true;
    else out.push(a);
  }
  return { args: out, discard };
}

/** The pod's own address for `localhost`: its servers listen on the pod IP. */
function podLocal(url: string, ip: string): string {
  return url.replace(/^((?:https?:\/\/)?)(localhost|127\.0\.0\.1)(?=[:/]|$)/i, `$1${ip}`);
}

async function curl(argv: readonly string[], ctx: PodExecContext, io: PodExecIO): Promise<number> {
  let parsed;
  const { args, discard } = withoutOutputFile(argv);
  try {
    const p = parseCurlArgs(['curl', ...args]);
    parsed = { ...p, url: podLocal(p.url, ctx.ip) };
  } catch (err) {
    if (err instanceof CurlUsageError) {
      io.stderr(`${err.message}\n`);
      // curl's "unknown option" and "option needs an argument" exit.
      return 2;
    }
    throw err;
  }
  try {
    await curlFrom(
      parsed,
      {
        sourceIP: ctx.ip,
        namespace: ctx.namespace,
        dns: ctx.dns,
        beforeConnect: ctx.beforeConnect,
      },
      { stdout: discard ? () => undefined : io.stdout, stderr: io.stderr },
    );
    return 0;
  } catch (err) {
    if (err instanceof CurlError) {
      if (!parsed.silent || parsed.showError) io.stderr(`curl: (${err.exitCode}) ${err.message}\n`);
      return err.exitCode;
    }
    throw err;
  }
}

/** Files a container has whatever its image: enough for `cat` in probes and checks. */
function podFiles(ctx: PodExecContext): ReadonlyMap<string, string> {
  return new Map([
    ['/etc/hostname', `${ctx.pod}\n`],
    ['/etc/hosts', `127.0.0.1\tlocalhost\n${ctx.ip}\t${ctx.pod}\n`],
    [
      '/etc/resolv.conf',
      `search ${podSearchPath(ctx.namespace).join(' ')}\nnameserver ${ctx.dns.replace(/:\d+$/, '')}\noptions ndots:5\n`,
    ],
    ['/var/run/secrets/kubernetes.io/serviceaccount/namespace', ctx.namespace],
  ]);
}

async function cat(args: readonly string[], ctx: PodExecContext, io: PodExecIO): Promise<number> {
  const files = args.filter((a) => a !== '-u');
  if (files.length === 0 || (files.length === 1 && files[0] === '-')) {
    for await (const chunk of io.stdin ?? []) io.stdout(chunk);
    return 0;
  }
  const known = podFiles(ctx);
  let rc = 0;
  for (const f of files) {
    if (f === '-') {
      for await (const chunk of io.stdin ?? []) io.stdout(chunk);
      continue;
    }
    const text = known.get(f);
    if (text === undefined) {
      io.stderr(`cat: can't open '${f}': No such file or directory\n`);
      rc = 1;
    } else io.stdout(text);
  }
  return rc;
}

function echo(args: readonly string[], _ctx: PodExecContext, io: PodExecIO): Promise<number> {
  const newline = args[0] !== '-n';
  io.stdout(`${(newline ? args : args.slice(1)).join(' ')}${newline ? '\n' : ''}`);
  return Promise.resolve(0);
}

function env(args: readonly string[], ctx: PodExecContext, io: PodExecIO): Promise<number> {
  if (args.length > 0) {
    const v = ctx.env[args[0] ?? ''];
    if (v === undefined) return Promise.resolve(1);
    io.stdout(`${v}\n`);
    return Promise.resolve(0);
  }
  io.stdout(
    Object.entries(ctx.env)
      .map(([k, v]) => `${k}=${v}\n`)
      .join(''),
  );
  return Promise.resolve(0);
}

function hostname(args: readonly string[], ctx: PodExecContext, io: PodExecIO): Promise<number> {
  io.stdout(`${args.includes('-i') ? ctx.ip : ctx.pod}\n`);
  return Promise.resolve(0);
}

async function nslookup(
  args: readonly string[],
  ctx: PodExecContext,
  io: PodExecIO,
): Promise<number> {
  const name = args.find((a) => !a.startsWith('-'));
  if (name === undefined) {
    io.stderr('Usage: nslookup HOST\n');
    return 1;
  }
  const server = ctx.dns.replace(/:\d+$/, '');
  io.stdout(`Server:\t\t${server}\nAddress:\t${ctx.dns.replace(/:(\d+)$/, '#$1')}\n\n`);
  let ips: string[];
  try {
    ips = await resolveA(name, {
      server: ctx.dns,
      search: podSearchPath(ctx.namespace),
      sourceIP: ctx.ip,
      signal: io.signal,
    });
  } catch {
    io.stdout(`** server can't find ${name}: NXDOMAIN\n\n`);
    return 1;
  }
  const fqdn =
    name.includes('.') && name.split('.').length > 2
      ? name
      : `${name}.${podSearchPath(ctx.namespace)[0] ?? ''}`;
  for (const ip of ips) io.stdout(`Name:\t${fqdn}\nAddress: ${ip}\n\n`);
  return 0;
}

async function sleep(
  args: readonly string[],
  _ctx: PodExecContext,
  io: PodExecIO,
): Promise<number> {
  const secs = args.reduce((sum, a) => sum + Number(a.replace(/s$/, '')), 0);
  if (args.length === 0 || !Number.isFinite(secs) || secs < 0) {
    io.stderr(`sleep: invalid number '${args[0] ?? ''}'\n`);
    return 1;
  }
  if (secs === Infinity) return 0;
  await new Promise<void>((resolve) => {
    const t = setTimeout(resolve, secs * 1000);
    io.signal.addEventListener('abort', () => {
      clearTimeout(t);
      resolve();
    });
  });
  return 0;
}

/**
 * `sh -c 'SCRIPT'`: a script of simple commands separated by `;`, `&&` or `||`, with
 * `exit N` — what probes and one-liners use. No pipes, redirections or variables.
 */
async function sh(args: readonly string[], ctx: PodExecContext, io: PodExecIO): Promise<number> {
  if (args[0] !== '-c' || args[1] === undefined) {
    io.stderr('sh: only "sh -c SCRIPT" is available in this pod\n');
    return 2;
  }
  let rc = 0;
  let op: string | undefined;
  for (const part of splitScript(args[1])) {
    if (part === ';' || part === '&&' || part === '||') {
      op = part;
      continue;
    }
    if ((op === '&&' && rc !== 0) || (op === '||' && rc === 0)) continue;
    const words = shellWords(part);
    if (words.length === 0) continue;
    if (words[0] === 'exit') {
      const n = Number(words[1] ?? rc);
      return Number.isInteger(n) ? n & 0xff : 2;
    }
    rc = await runPodCommand(words, ctx, io);
  }
  return rc;
}

function splitScript(script: string): string[] {
  const out: string[] = [];
  let cur = '';
  let quote: string | undefined;
  for (let i = 0; i < script.length; i++) {
    const ch = script[i] ?? '';
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      cur += ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur += ch;
    } else if (ch === ';' || ch === '\n') {
      out.push(cur, ';');
      cur = '';
    } else if ((ch === '&' || ch === '|') && script[i + 1] === ch) {
      out.push(cur, ch + ch);
      cur = '';
      i++;
    } else cur += ch;
  }
  out.push(cur);
  return out.filter((p) => p.trim() !== '');
}

/** Splits on blanks, honouring single and double quotes. */
export function shellWords(text: string): string[] {
  const words: string[] = [];
  let cur: string | undefined;
  let quote: string | undefined;
  for (const ch of text) {
    if (quote !== undefined) {
      if (ch === quote) quote = undefined;
      else cur = (cur ?? '') + ch;
    } else if (ch === '"' || ch === "'") {
      quote = ch;
      cur ??= '';
    } else if (/\s/.test(ch)) {
      if (cur !== undefined) words.push(cur);
      cur = undefined;
    } else cur = (cur ?? '') + ch;
  }
  if (cur !== undefined) words.push(cur);
  return words;
}
