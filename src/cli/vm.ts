import { Option, type Command } from 'commander';
import {
  commandGroup,
  formatStructured,
  globalOptions,
  stateDirOption,
  type CliContext,
} from './common.js';

/**
 * `clustermesh vm create|status|delete|install|run`: external workloads of a cluster of the
 * running local mesh, as `cilium clustermesh vm …`. Heavy modules load inside the actions.
 */

interface ClusterFlags {
  /** Default: the mesh's first cluster (cluster1, or cluster<N> after --first-cluster-id N). */
  readonly cluster?: string | undefined;
  readonly stateDir: string;
}

function clusterOptions(cmd: Command): Command {
  return cmd
    .addOption(
      new Option(
        '--cluster <name>',
        'a cluster of the running local mesh (default: its first, e.g. cluster1)',
      ),
    )
    .addOption(stateDirOption());
}

async function controlOf(flags: ClusterFlags) {
  const [{ readMeshState, clusterOf }, { MeshControlClient }] = await Promise.all([
    import('../localmesh/mesh-state.js'),
    import('./mesh-client.js'),
  ]);
  const state = await readMeshState(flags.stateDir);
  const first = state.clusters[0];
  const cluster =
    flags.cluster === undefined && first !== undefined
      ? first
      : clusterOf(state, flags.cluster ?? 'cluster1');
  return { state, cluster, client: new MeshControlClient(state.control, cluster.name) };
}

export function registerVmCommands(program: Command, ctx: CliContext): void {
  const vm = commandGroup(
    program,
    'vm',
    'external workloads (VMs) of a cluster: create, status, delete, install, run',
  );

  clusterOptions(
    vm
      .command('create')
      .description('allow a VM to join the cluster under NAME (a CiliumExternalWorkload)')
      .argument('<name>', 'the VM name')
      .option('--ipv4-alloc-cidr <cidr>', 'the addresses the VM may register with')
      .option('--labels <k=v,...>', 'labels of the VM: its identity labels', ''),
  ).action(
    async (name: string, opts: ClusterFlags & { ipv4AllocCidr?: string; labels: string }) => {
      const { externalWorkloadObject, parseLabelsFlag } =
        await import('../externalworkload/workload.js');
      const obj = externalWorkloadObject(name, {
        ipv4AllocCidr: opts.ipv4AllocCidr,
        labels: parseLabelsFlag(opts.labels),
      });
      const { client, cluster } = await controlOf(opts);
      const [result] = await client.apply([obj]);
      ctx.io.stdout(
        `✅ external workload ${name} ${result?.action ?? 'created'} in ${cluster.name}\n`,
      );
    },
  );

  clusterOptions(
    vm
      .command('status')
      .description('the external workloads of the cluster, with their address, identity and state')
      .argument('[name]', 'one VM'),
  ).action(async (name: string | undefined, opts: ClusterFlags, cmd: Command) => {
    const { client, cluster } = await controlOf(opts);
    const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
    const { formatVmStatus } = await import('../externalworkload/status.js');
    const objects = await client.objects('CiliumExternalWorkload', undefined, name);
    if (name !== undefined && objects.length === 0) {
      throw new ClusterMeshError(
        ErrorCode.KeyNotFound,
        `no external workload ${JSON.stringify(name.slice(0, 80))} in ${cluster.name}`,
      );
    }
    const { output } = globalOptions(cmd);
    if (output !== 'text') {
      ctx.io.stdout(await formatStructured(objects, output));
      return;
    }
    ctx.io.stdout(formatVmStatus(objects));
  });

  clusterOptions(
    vm
      .command('delete')
      .description('remove a VM from the cluster: its identity, node and endpoint go too')
      .argument('<name>', 'the VM name'),
  ).action(async (name: string, opts: ClusterFlags) => {
    const { client, cluster } = await controlOf(opts);
    const [deleted] = await client.delete([{ kind: 'CiliumExternalWorkload', name }]);
    if (deleted !== true) {
      const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
      throw new ClusterMeshError(
        ErrorCode.KeyNotFound,
        `no external workload ${JSON.stringify(name.slice(0, 80))} in ${cluster.name}`,
      );
    }
    ctx.io.stdout(`✅ external workload ${name} deleted from ${cluster.name}\n`);
  });

  clusterOptions(
    vm
      .command('install')
      .description(
        "write the shell script a VM runs to join: the cluster's CA, the externalworkload certificate, the etcd endpoint and the join command",
      )
      .argument('<file>', 'where to write the script'),
  ).action(async (file: string, opts: ClusterFlags) => {
    const [{ joinInputsOf }, { installScript }, { writeFile }] = await Promise.all([
      import('../localmesh/vm.js'),
      import('../externalworkload/install.js'),
      import('node:fs/promises'),
    ]);
    const { state, cluster } = await controlOf(opts);
    const inputs = await joinInputsOf(state, cluster.name);
    await writeFile(file, installScript(inputs), { mode: 0o700 });
    ctx.io.stdout(
      `✅ wrote ${file}: run it on the VM as VM_NAME=<name> VM_IP=<address> sh ${file} (joins ${cluster.name} at ${inputs.endpoint})\n`,
    );
  });

  clusterOptions(
    vm
      .command('run')
      .description(
        "run VM NAME of the local mesh as this process, on its own loopback address, from the install script's inputs",
      )
      .argument('<name>', 'the VM name (a CiliumExternalWorkload of the cluster)')
      .option(
        '--ip <address>',
        'its address (default: in its ipv4-alloc-cidr, else 127.<id>.250.k)',
      )
      .option(
        '--script <file>',
        'read the inputs from this install script (default: the mesh’s own)',
      )
      .addOption(
        new Option('--timeout <seconds>', 'give up when the cluster has not answered by then')
          .argParser(Number)
          .default(30),
      ),
  ).action(
    async (
      name: string,
      opts: ClusterFlags & { ip?: string; script?: string; timeout: number },
    ) => {
      const [vmMod, install, { readFile }, { createLogger }, { untilSignal }] = await Promise.all([
        import('../localmesh/vm.js'),
        import('../externalworkload/install.js'),
        import('node:fs/promises'),
        import('../lib/logger.js'),
        import('../lib/lifecycle.js'),
      ]);
      const { state, client, cluster } = await controlOf(opts);
      const inputs =
        opts.script === undefined
          ? await vmMod.joinInputsOf(state, cluster.name)
          : install.parseInstallScript(await readFile(opts.script, 'utf8'), opts.script);
      const { clusterOf } = await import('../localmesh/mesh-state.js');
      const target = clusterOf(state, inputs.cluster);
      const [cew] = await client.objects('CiliumExternalWorkload', undefined, name);
      const spec = cew?.spec as { 'ipv4-alloc-cidr'?: string } | undefined;
      let refused: ((message: string) => void) | undefined;
      const refusedLater = new Promise<string>((resolve) => {
        refused = resolve;
      });
      const vm = await vmMod.runVm({
        stateDir: opts.stateDir,
        name,
        inputs,
        ip: opts.ip,
        cidr: spec?.['ipv4-alloc-cidr'],
        dns: target.dns,
        log: createLogger({ subsys: 'vm' }),
        answerTimeoutMs: opts.timeout * 1000,
        onRefused: (m) => refused?.(m),
      });
      ctx.io.stdout(
        `✅ ${name} joined ${inputs.cluster} as ${vm.record.ip} (identity ${vm.identity ?? '?'}); agent API ${vm.record.api}\n`,
      );
      const stopping = untilSignal();
      const outcome = await Promise.race([
        stopping.then((sig) => ({ sig })),
        refusedLater.then((reason) => ({ reason })),
      ]);
      await vm.stop();
      if ('reason' in outcome) {
        const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
        throw new ClusterMeshError(
          ErrorCode.ExternalWorkloadRefused,
          `registration of ${name} refused: ${outcome.reason}`,
        );
      }
      ctx.io.stdout(`${outcome.sig}: ${name} left ${inputs.cluster}\n`);
    },
  );
}

/**
 * `clustermesh exec vm/NAME -- curl …`: the curl runs as the VM, from its address, with
 * its cluster's DNS; the VM's own agent decides its egress first (and, for a ClusterIP,
 * on the backend its socket load-balancing picks).
 */
export async function execOnVm(
  name: string,
  command: readonly string[],
  stateDir: string,
  io: CliContext['io'],
  usage: (message: string) => never,
): Promise<void> {
  const [{ readVmRecord }, curl, { agentEgressVerdict }, { CliExit }] = await Promise.all([
    import('../localmesh/vm.js'),
    import('../exec/curl.js'),
    import('../exec/egress.js'),
    import('./common.js'),
  ]);
  let args;
  try {
    args = curl.parseCurlArgs(command);
  } catch (err) {
    if (err instanceof curl.CurlUsageError) usage(err.message);
    throw err;
  }
  const vm = await readVmRecord(stateDir, name);
  try {
    await curl.curlFrom(
      args,
      {
        sourceIP: vm.ip,
        namespace: 'default',
        dns: vm.dns,
        beforeConnect: (ip, port) => agentEgressVerdict(vm.api, vm.ip, ip, port),
      },
      io,
    );
  } catch (err) {
    if (err instanceof curl.CurlError) {
      const show = !args.silent || args.showError;
      throw new CliExit(err.exitCode, show ? `curl: (${err.exitCode}) ${err.message}` : undefined);
    }
    throw err;
  }
}
