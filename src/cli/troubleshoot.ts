import { Option, type Command } from 'commander';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  CliExit,
  collect,
  formatStructured,
  globalOptions,
  parseDuration,
  stateDirOption,
  type CliContext,
} from './common.js';

/** `clustermesh troubleshoot`: `cilium troubleshoot clustermesh`, over the whole local mesh. */

interface TroubleshootFlags {
  readonly cluster?: readonly string[] | undefined;
  readonly wait?: boolean | undefined;
  readonly waitDuration: number;
  readonly stateDir: string;
}

export function registerTroubleshootCommands(program: Command, ctx: CliContext): void {
  program
    .command('troubleshoot')
    .description(
      'check the local mesh per cluster and per pair: configuration, connection (DNS, TCP, TLS, etcd, auth), sync, consistency',
    )
    .argument('[remote...]', 'only the pairs toward these remote clusters')
    .addOption(new Option('--cluster <name>', 'only this cluster (repeatable)').argParser(collect))
    .option('--wait', 'retry until every check passes or --wait-duration ends')
    .addOption(
      new Option('--wait-duration <duration>', 'how long --wait retries')
        .argParser(parseDuration)
        .default(120_000, '2m'),
    )
    .addOption(stateDirOption())
    .addHelpText(
      'after',
      `
Each check prints ✅, ⚠️ or ❌ with a hint and, where the agent logs one, the message to look
for. Exits 1 when a check fails. -o json prints {checks:[{id,cluster,remote,node,status,
message,hint,log,details}], summary:{ok,warn,fail}, ok}.`,
    )
    .action(async (remotes: readonly string[], flags: TroubleshootFlags, cmd: Command) => {
      const g = globalOptions(cmd);
      const [{ readMeshState, clusterOf }, { troubleshootMesh }, { renderReport }, ks] =
        await Promise.all([
          import('../localmesh/mesh-state.js'),
          import('../troubleshoot/mesh.js'),
          import('../troubleshoot/check.js'),
          import('../keyspace/index.js'),
        ]);
      const { clusterNameProblem } = ks;
      const state = await readMeshState(flags.stateDir);
      for (const c of flags.cluster ?? []) clusterOf(state, c);
      for (const r of remotes) {
        // A remote may be known only from a config file, so any valid cluster name goes.
        const problem = clusterNameProblem(r);
        if (problem !== null) {
          throw new ClusterMeshError(
            ErrorCode.InvalidArgument,
            `remote ${JSON.stringify(r.slice(0, 80))}: ${problem}`,
          );
        }
      }
      const deadline = Date.now() + (flags.wait === true ? flags.waitDuration : 0);
      let r = await troubleshootMesh({ state, clusters: flags.cluster, remotes });
      while (!r.ok && Date.now() < deadline) {
        if (g.output === 'text') {
          ctx.io.stderr(
            `⌛ ${r.summary.fail} check(s) failing (${r.checks
              .filter((c) => c.status === 'fail')
              .map((c) => c.id)
              .join(', ')}); retrying…\n`,
          );
        }
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        r = await troubleshootMesh({ state, clusters: flags.cluster, remotes });
      }
      ctx.io.stdout(g.output === 'text' ? renderReport(r) : await formatStructured(r, g.output));
      if (!r.ok) throw new CliExit(1);
    });
}
