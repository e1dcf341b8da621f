import type { PodCommand, PodExecIO } from './commands.js';

/**
 * The programs of the Cilium agent's image: `cilium` / `cilium-dbg` and `cilium-health`,
 * run in a `kube-system/cilium-…` pod with `kubectl exec`. Each subcommand is the
 * matching view of our own CLI, asked of the agent of the pod's node, so the output is the
 * one `clustermesh status --node …` prints.
 */

/** Runs our CLI with `argv`; resolves with its exit code. */
export type CliRunner = (
  argv: readonly string[],
  io: { readonly stdout: (text: string) => void; readonly stderr: (text: string) => void },
) => Promise<number>;

export interface CiliumPodTarget {
  /** The running mesh's state dir (its mesh.json names the agents). */
  readonly stateDir: string;
  readonly cluster: string;
  readonly node: string;
}

/** Exit code of a cobra command given a command it does not know. */
const EXIT_USAGE = 1;

interface Mapped {
  readonly argv: readonly string[];
  /** How the mapped command selects its agent or cluster. */
  readonly select: 'node' | 'cluster' | 'none';
}

/** `cilium-dbg <words…>` → our CLI's command words, longest match first. */
const DBG_COMMANDS: readonly (readonly [readonly string[], Mapped])[] = [
  [['status'], { argv: ['status'], select: 'node' }],
  [['node', 'list'], { argv: ['node', 'list'], select: 'node' }],
  [['service', 'list'], { argv: ['service', 'list'], select: 'node' }],
  [['bpf', 'lb', 'list'], { argv: ['lb', 'list'], select: 'node' }],
  [['bpf', 'ipcache', 'list'], { argv: ['ipcache', 'list'], select: 'node' }],
  [['identity', 'list'], { argv: ['identity', 'list'], select: 'node' }],
  [['endpoint', 'list'], { argv: ['endpoint', 'list'], select: 'node' }],
  [['kvstore', 'get'], { argv: ['kvstore', 'get'], select: 'cluster' }],
  [['troubleshoot', 'clustermesh'], { argv: ['troubleshoot'], select: 'cluster' }],
];

const HEALTH_COMMANDS: readonly (readonly [readonly string[], Mapped])[] = [
  [['status'], { argv: ['health', 'status'], select: 'node' }],
];

function lookup(
  table: readonly (readonly [readonly string[], Mapped])[],
  args: readonly string[],
): { mapped: Mapped; rest: readonly string[] } | undefined {
  for (const [words, mapped] of table) {
    if (words.every((w, i) => args[i] === w)) {
      return { mapped, rest: args.slice(words.length) };
    }
  }
  return undefined;
}

/** Commands Cilium's tools print for `--help` or an unknown command. */
function usage(prog: string, table: readonly (readonly [readonly string[], Mapped])[]): string {
  const lines = table.map(([w]) => `  ${prog} ${w.join(' ')}`);
  return `Usage:\n  ${prog} [command]\n\nAvailable here:\n${lines.join('\n')}\n`;
}

function tool(
  prog: string,
  table: readonly (readonly [readonly string[], Mapped])[],
  target: CiliumPodTarget,
  run: CliRunner,
): PodCommand {
  return async (args, _ctx, io: PodExecIO): Promise<number> => {
    if (args.length === 0 || args[0] === '--help' || args[0] === '-h' || args[0] === 'help') {
      io.stdout(usage(prog, table));
      return 0;
    }
    const found = lookup(table, args);
    if (found === undefined) {
      const word = args.find((a) => !a.startsWith('-')) ?? args[0] ?? '';
      io.stderr(
        `Error: unknown command ${JSON.stringify(word)} for ${JSON.stringify(prog)}\nRun '${prog} --help' for usage.\n`,
      );
      return EXIT_USAGE;
    }
    const { mapped, rest } = found;
    const select =
      mapped.select === 'node'
        ? ['--node', `${target.cluster}/${target.node}`]
        : mapped.select === 'cluster'
          ? ['--cluster', target.cluster]
          : [];
    return run([...mapped.argv, ...rest, ...select, '--state-dir', target.stateDir], {
      stdout: (t) => io.stdout(t),
      stderr: (t) => io.stderr(t),
    });
  };
}

/** `cilium`, `cilium-dbg` and `cilium-health` as the agent pod of `target.node` has them. */
export function ciliumCommands(
  target: CiliumPodTarget,
  run: CliRunner,
): ReadonlyMap<string, PodCommand> {
  const dbg = tool('cilium-dbg', DBG_COMMANDS, target, run);
  return new Map<string, PodCommand>([
    ['cilium', dbg],
    ['cilium-dbg', dbg],
    ['cilium-health', tool('cilium-health', HEALTH_COMMANDS, target, run)],
  ]);
}
