import { InvalidArgumentError, Option, type Command } from 'commander';
import { DEFAULT_STATE_DIR } from '../localmesh/state-dir.js';

/**
 * Shared plumbing for command groups. This module stays light (commander only):
 * it is loaded for every invocation, including `--help`, so heavy modules (etcd3, the agent,
 * …) belong in dynamic imports inside actions.
 */

export const OUTPUT_FORMATS = ['text', 'json', 'yaml'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

/** Options defined on the root program; every subcommand sees them via `globalOptions(cmd)`. */
export interface GlobalOptions {
  /** Agent API URL (`-H/--host`, default `$CLUSTERMESH_HOST`). */
  readonly host?: string | undefined;
  readonly output: OutputFormat;
}

/** Where command output goes; injectable so that the program can run in-process in tests. */
export interface CliIo {
  readonly stdout: (text: string) => void;
  readonly stderr: (text: string) => void;
}

/** Handed to every command group at registration time. */
export interface CliContext {
  readonly io: CliIo;
}

/** A command group registers its commands on the root program. */
export type CommandGroup = (program: Command, ctx: CliContext) => void;

export function globalOptions(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals<{ host?: string; output?: OutputFormat }>();
  return { host: o.host, output: o.output ?? 'text' };
}

/** Exit code of usage errors (bad flags, unknown commands), as opposed to 1 for failures. */
export const USAGE_EXIT_CODE = 2;

/** Reports a usage error the same way commander does: one `error: …` line, exit 2. */
export function usageError(cmd: Command, message: string): never {
  cmd.error(`error: ${message}`, { exitCode: USAGE_EXIT_CODE, code: 'clustermesh.usage' });
}

/**
 * Adds a command that only groups subcommands (`kvstore`, `node`, …). See `asGroup`.
 */
export function commandGroup(parent: Command, name: string, description: string): Command {
  return asGroup(parent.command(name).description(description));
}

/**
 * Makes `cmd` behave as a group of subcommands: run bare, it prints its help to stdout and
 * succeeds, like the reference's cobra commands; an unknown subcommand is a one-line usage
 * error naming the valid ones (commander's own would print help on stderr instead).
 */
export function asGroup(cmd: Command): Command {
  // The operands are declared rather than allowed as excess arguments: that setting would be
  // inherited by every subcommand created later. No description keeps them out of the help.
  // An action disables commander's implicit `help [command]`, so it is turned back on.
  return cmd
    .argument('[command...]')
    .usage('[options] [command]')
    .helpCommand(true)
    .action((operands: readonly string[], _opts: unknown, self: Command) => {
      const [first] = operands;
      if (first === undefined) {
        self.outputHelp();
        return;
      }
      const known = self.commands.map((c) => c.name()).join(', ');
      usageError(self, `unknown command '${first}' for '${commandPath(self)}' (known: ${known})`);
    });
}

export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** `--state-dir`: where a running `clustermesh up` keeps its mesh.json. */
export function stateDirOption(
  description = 'where the running local mesh keeps its mesh.json',
): Option {
  return new Option('--state-dir <dir>', description).default(DEFAULT_STATE_DIR);
}

/**
 * `--policy-default-local-cluster=true|false` (Cilium 1.19's flag and default): whether
 * policy peers that name no cluster select the local cluster only.
 */
export function policyDefaultLocalClusterOption(): Option {
  return new Option(
    '--policy-default-local-cluster <bool>',
    'peers without a cluster label select the local cluster only (Cilium 1.19 default)',
  )
    .choices(['true', 'false'])
    .default('true');
}

/** Repeatable string option: every occurrence is appended. */
export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** The kvstore flags as the reference spells them; shared by every command that opens a kvstore. */
export interface KvstoreCliOptions {
  readonly kvstore?: string | undefined;
  /** Undefined when no --kvstore-opt was given. */
  readonly kvstoreOpt?: readonly string[] | undefined;
}

export function addKvstoreOptions(cmd: Command, defaultKind?: 'etcd' | 'memory'): Command {
  const kind = new Option('--kvstore <kind>', 'kvstore backend').choices(['etcd', 'memory']);
  if (defaultKind !== undefined) kind.default(defaultKind);
  return cmd
    .addOption(kind)
    .addOption(
      new Option(
        '--kvstore-opt <key=value>',
        'kvstore option, repeatable: etcd.address=URL[,URL…], etcd.config=FILE, etcd.qps, ' +
          'etcd.bootstrapQps, etcd.maxInflight, etcd.limit, etcd.leaseTTL',
      ).argParser(collect),
    );
}

/** Parses `500ms`, `5s`, `1m` or a plain number of seconds into milliseconds. */
export function parseDuration(value: string): number {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m)?$/.exec(value.trim());
  if (m === null) throw new InvalidArgumentError('Expected a duration such as 500ms, 5s or 1m.');
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  const ms = unit === 'ms' ? n : unit === 's' ? n * 1000 : n * 60_000;
  if (ms <= 0) throw new InvalidArgumentError('Must be greater than zero.');
  return ms;
}

/** Renders a JSON or YAML document; JSON is indented like the reference's `-o json`. */
export async function formatStructured(value: unknown, format: 'json' | 'yaml'): Promise<string> {
  if (format === 'json') return `${JSON.stringify(value, null, 2)}\n`;
  // Loaded on demand: only -o yaml pays for the yaml module.
  const { stringify } = await import('yaml');
  return stringify(value);
}

/**
 * Ends a command with a specific exit code (e.g. curl's, from `exec`), optionally with one
 * line on stderr; thrown from an action, handled by `runCli`.
 */
export class CliExit extends Error {
  constructor(
    readonly exitCode: number,
    readonly line?: string | undefined,
  ) {
    super(line ?? `exit ${exitCode}`);
    this.name = 'CliExit';
  }
}
