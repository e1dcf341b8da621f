import { readFileSync } from 'node:fs';
import { Command, CommanderError, Option } from 'commander';
import { errorMessage } from '../lib/errors.js';
import {
  OUTPUT_FORMATS,
  USAGE_EXIT_CODE,
  CliExit,
  asGroup,
  type CliContext,
  type CliIo,
  type CommandGroup,
} from './common.js';
import { registerDaemonCommands } from './daemons.js';
import { registerEndpointCommands } from './endpoint.js';
import { registerKvstoreCommands } from './kvstore.js';
import { registerMeshCommands } from './mesh.js';
import { registerObserveCommands } from './observe.js';
import { registerPolicyCommands } from './policy.js';
import { registerViewCommands } from './views.js';
import { registerRegistryCommands } from './registry.js';
import { registerHealthCommands } from './health.js';
import { registerTroubleshootCommands } from './troubleshoot.js';
import { registerUiCommands } from './ui.js';
import { registerVmCommands } from './vm.js';

/**
 * Command groups in help order. Adding one is a single entry here: a `CommandGroup` function
 * in its own file under src/cli/ that calls `program.command(…)` (or `commandGroup(program, …)`
 * for a group of subcommands). Use `.command()` rather than `addCommand()` so the output and
 * exit handling configured below is inherited, and import heavy modules inside actions.
 */
const COMMAND_GROUPS: readonly CommandGroup[] = [
  registerDaemonCommands,
  registerKvstoreCommands,
  registerViewCommands,
  registerEndpointCommands,
  registerRegistryCommands,
  registerMeshCommands,
  registerObserveCommands,
  registerPolicyCommands,
  registerTroubleshootCommands,
  registerHealthCommands,
  registerUiCommands,
  registerVmCommands,
];

export const processIo: CliIo = {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
};

export function createProgram(io: CliIo = processIo): Command {
  const program = new Command('clustermesh');
  program
    .description('Multi-cluster networking (Cilium ClusterMesh) in TypeScript')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .configureHelp({
      showGlobalOptions: true,
      // A group lists as `kvstore [options] [command]`, not by its internal `[command...]` operand.
      subcommandTerm: (cmd) => `${cmd.name()} ${cmd.usage()}`,
    })
    .addOption(
      new Option(
        '-H, --host <url>',
        'agent API URL for status and list commands (default: the running local mesh)',
      ).env('CLUSTERMESH_HOST'),
    )
    .addOption(
      new Option('-o, --output <format>', 'output format, where a command supports it')
        .choices(OUTPUT_FORMATS)
        .default('text'),
    )
    // Subcommands created with .command() copy these settings.
    .exitOverride()
    .configureOutput({
      writeOut: (s) => io.stdout(s),
      writeErr: (s) => io.stderr(s),
      // Commander puts suggestions on a second line; the contract is one line per error.
      outputError: (s, write) => write(`${oneLine(s)}\n`),
    });
  asGroup(program);

  const ctx: CliContext = { io };
  for (const register of COMMAND_GROUPS) register(program, ctx);
  return program;
}

/**
 * Runs the CLI and returns the exit code instead of exiting, so it can run in-process:
 * 0 success (help and version included), 1 failure, 2 usage error.
 */
export async function runCli(argv: readonly string[], io: CliIo = processIo): Promise<number> {
  const program = createProgram(io);
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (through outputError above).
      return err.exitCode === 0 ? 0 : USAGE_EXIT_CODE;
    }
    if (err instanceof CliExit) {
      if (err.line !== undefined) io.stderr(`${oneLine(err.line)}\n`);
      return err.exitCode;
    }
    io.stderr(`clustermesh: ${oneLine(errorMessage(err))}\n`);
    if (process.env.CLUSTERMESH_DEBUG === '1') io.stderr(debugDetails(err));
    return 1;
  }
}

function oneLine(s: string): string {
  return s.trim().replace(/\s*\n\s*/g, ' ');
}

function debugDetails(err: unknown): string {
  let out = '';
  for (let e: unknown = err; e !== undefined;) {
    if (!(e instanceof Error)) {
      out += `${errorMessage(e)}\n`;
      break;
    }
    out += `${e.stack ?? e.message}\n`;
    e = e.cause;
    if (e !== undefined) out += 'Caused by: ';
  }
  return out;
}

function packageVersion(): string {
  try {
    const pkg: unknown = JSON.parse(
      readFileSync(new URL('../../package.json', import.meta.url), 'utf8'),
    );
    if (typeof pkg === 'object' && pkg !== null && 'version' in pkg) {
      return typeof pkg.version === 'string' ? pkg.version : 'unknown';
    }
  } catch {
    // A broken install still gets a working CLI; only --version suffers.
  }
  return 'unknown';
}
