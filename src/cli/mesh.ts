import { Option, type Command } from 'commander';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  CliExit,
  formatStructured,
  globalOptions,
  stateDirOption,
  usageError,
  type CliContext,
  policyDefaultLocalClusterOption,
} from './common.js';
import {
  addBackendProbeOptions,
  addHealthCheckOptions,
  backendHealthOptions,
  healthCheckTiming,
  type BackendProbeFlags,
  type HealthCheckFlags,
} from './daemons.js';
import { registerMeshSetupCommands } from './meshsetup.js';

/**
 * `clustermesh up` (a local mesh in the foreground) and `clustermesh exec` (run a
 * request as one of its pods). Heavy modules load inside the actions.
 */

interface UpFlags extends HealthCheckFlags, BackendProbeFlags {
  readonly clusters: number;
  readonly firstClusterId: number;
  readonly nodes: number;
  readonly kvstore?: 'etcd' | 'memory' | undefined;
  readonly kvstoremesh?: boolean | undefined;
  readonly k8sMode?: boolean | undefined;
  readonly vms?: number | undefined;
  readonly example?: 'rebel-base' | 'rebel-base-mcsapi' | undefined;
  readonly stateDir: string;
  readonly dnsPort?: number | undefined;
  readonly policyDefaultLocalCluster: 'true' | 'false';
  readonly insecure?: boolean | undefined;
  readonly connect: boolean;
}

function positiveInt(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `expected a positive integer, got ${value}`,
    );
  }
  return n;
}

export function registerMeshCommands(program: Command, ctx: CliContext): void {
  const up = program.command('up');
  addBackendProbeOptions(addHealthCheckOptions(up));
  up.description('run a local mesh: N clusters × M nodes with kvstores, daemons, DNS and workloads')
    .addOption(
      new Option(
        '--clusters <n>',
        'number of clusters (cluster1..N, IDs 1..N; see --first-cluster-id)',
      )
        .argParser(positiveInt)
        .default(2),
    )
    .addOption(
      new Option(
        '--first-cluster-id <id>',
        'ID of the first cluster: clusters cluster<id>.. with addresses 127.<id>.x.x',
      )
        .argParser(positiveInt)
        .default(1),
    )
    .addOption(
      new Option('--nodes <m>', 'nodes (agents) per cluster').argParser(positiveInt).default(2),
    )
    .addOption(
      new Option(
        '--kvstore <kind>',
        'kvstore of each cluster (default: etcd when installed, else memory)',
      ).choices(['etcd', 'memory']),
    )
    .option('--kvstoremesh', 'run KVStoreMesh in every cluster; agents read its cache')
    .option(
      '--k8s-mode',
      "Kubernetes mode: apiservers, agents, operators (and KVStoreMesh) read their cluster through its Kubernetes API (each its own context's kubeconfig, <state-dir>/<cluster>/kubeconfig) and the operators write back through it",
    )
    .addOption(
      new Option(
        '--vms <n>',
        'also run VMs vm1..vmN joined to cluster1 as external workloads (clustermesh vm run)',
      ).argParser(positiveInt),
    )
    .option(
      '--insecure',
      "plaintext etcd without users (default: TLS, client certificates, Cilium's etcd users)",
    )
    .option(
      '--no-connect',
      'start the clusters unmeshed (then: clustermesh mesh enable / connect / status --wait)',
    )
    .addOption(
      new Option('--example <name>', 'apply an example from the seeds once the mesh is up').choices(
        ['rebel-base', 'rebel-base-mcsapi'],
      ),
    )
    .addOption(stateDirOption('where mesh.json and the clustermesh configs live'))
    .addOption(policyDefaultLocalClusterOption())
    .addOption(
      new Option('--dns-port <port>', 'DNS port (default 53, a free port when 53 is not permitted)')
        .argParser(positiveInt)
        .hideHelp(),
    )
    .addHelpText(
      'after',
      `
Addresses (all on loopback): cluster c has nodes 127.c.0.n, pod CIDR 127.c.0.0/17 with
127.c.n.0/24 per node, ClusterIPs from 127.c.128.0/17 and DNS at 127.c.128.10. Agent APIs
listen on http://<node IP>:9876 (another port when taken). Each cluster's etcd listens on
127.c.128.2:2379 with TLS (certificates, user configs and hostaliases.yaml in
<state-dir>/<cluster>/etcd; see docs/tls.md). <state-dir>/mesh.json tells the
CLI where everything runs; status and list commands ask its first agent unless --node says:
  clustermesh apply --cluster cluster1 -f app.yaml
  clustermesh exec cluster1/x-wing -- curl -s rebel-base
  clustermesh service list --node cluster2/cluster2-node1
Stops everything it started on Ctrl-C (SIGINT) or SIGTERM.`,
    )
    .action(async (flags: UpFlags) => {
      const [{ LocalMesh }, { createLogger }, { untilSignal }, { formatMeshSummary }] =
        await Promise.all([
          import('../localmesh/up.js'),
          import('../lib/logger.js'),
          import('../lib/lifecycle.js'),
          import('../localmesh/summary.js'),
        ]);
      const log = createLogger();
      // A foreground command for people: warnings and errors only, unless LOG_LEVEL asks.
      if (process.env.LOG_LEVEL === undefined) log.level = 'warn';
      const mesh = new LocalMesh({
        clusters: flags.clusters,
        firstClusterId: flags.firstClusterId,
        nodes: flags.nodes,
        kvstore: flags.kvstore,
        kvstoremesh: flags.kvstoremesh,
        k8sMode: flags.k8sMode,
        vms: flags.vms,
        example: flags.example,
        stateDir: flags.stateDir,
        dnsPort: flags.dnsPort,
        policyDefaultLocalCluster: flags.policyDefaultLocalCluster === 'true',
        backendHealth: backendHealthOptions(flags),
        remoteTiming: healthCheckTiming(flags),
        tls: flags.insecure !== true,
        connect: flags.connect,
        log,
        // `kubectl exec … cilium-xxxxx -- cilium-dbg status` runs this CLI's own views.
        podCli: async (argv, io) => (await import('./program.js')).runCli(argv, io),
      });
      const stopping = untilSignal();
      let state;
      try {
        state = await Promise.race([mesh.start(), stopping.then(() => undefined)]);
      } catch (err) {
        await mesh.stop();
        throw err;
      }
      if (state !== undefined) {
        ctx.io.stdout(
          formatMeshSummary(state, {
            stateDir: flags.stateDir,
            // Since the process started (performance's time origin), module loading included.
            readyMs: performance.now(),
            example: flags.example,
          }),
        );
        const sig = await stopping;
        ctx.io.stdout(`\n${sig}: stopping the mesh…\n`);
      }
      // A second Ctrl-C while stopping means "now". Signals within the first second are
      // the same Ctrl-C delivered again (npm start forwards it to its child as well).
      const since = performance.now();
      const force = (): void => {
        if (performance.now() - since > 1000) process.exit(130);
      };
      process.on('SIGINT', force);
      await mesh.stop();
      process.off('SIGINT', force);
      ctx.io.stdout('stopped: no process, socket or state file left behind\n');
    });

  program
    .command('exec')
    .description('run a command as a pod of the running local mesh (today: curl)')
    .argument(
      '<cluster/pod>',
      'a pod, or a Deployment meaning one of its running pods; vm/NAME: a VM',
    )
    .argument('<command...>', 'after --: curl [-s] [-i] [-m SECS] [-H H] URL')
    .addOption(stateDirOption())
    .option('-n, --namespace <ns>', 'namespace of the pod', 'default')
    .addHelpText(
      'after',
      `
The request leaves from the pod's IP and names resolve through its cluster's DNS with the
pod's search path, so "curl rebel-base" reaches the Service rebel-base of its namespace.
Exit codes are curl's (6 could not resolve, 7 could not connect, 28 timeout).

Example:
  clustermesh exec cluster1/x-wing -- curl -s rebel-base`,
    )
    .action(
      async (
        target: string,
        command: readonly string[],
        opts: { stateDir: string; namespace: string },
        cmd: Command,
      ) => {
        if (target.startsWith('vm/') && target.length > 3) {
          const { execOnVm } = await import('./vm.js');
          await execOnVm(target.slice(3), command, opts.stateDir, ctx.io, (m) =>
            usageError(cmd, m),
          );
          return;
        }
        const slash = target.indexOf('/');
        if (slash <= 0 || slash === target.length - 1) {
          usageError(cmd, `expected CLUSTER/POD, got ${JSON.stringify(target)}`);
        }
        const clusterName = target.slice(0, slash);
        const podName = target.slice(slash + 1);
        const [{ readMeshState, clusterOf }, { MeshControlClient }, curl] = await Promise.all([
          import('../localmesh/mesh-state.js'),
          import('./mesh-client.js'),
          import('../exec/curl.js'),
        ]);
        let args;
        try {
          args = curl.parseCurlArgs(command);
        } catch (err) {
          if (err instanceof curl.CurlUsageError) usageError(cmd, err.message);
          throw err;
        }
        const state = await readMeshState(opts.stateDir);
        const cluster = clusterOf(state, clusterName);
        const pods = await new MeshControlClient(state.control, cluster.name).pods();
        const pod = pickPod(pods, opts.namespace, podName, cluster.name);
        const agent = cluster.agents.find((a) => a.node === pod.node);
        try {
          await curl.curlFrom(
            args,
            {
              sourceIP: pod.ip,
              namespace: pod.namespace,
              dns: cluster.dns,
              beforeConnect:
                agent === undefined
                  ? undefined
                  : async (ip, port) => {
                      const { agentEgressVerdict } = await import('../exec/egress.js');
                      return agentEgressVerdict(agent.api, pod.ip, ip, port);
                    },
            },
            ctx.io,
          );
        } catch (err) {
          if (err instanceof curl.CurlError) {
            const show = !args.silent || args.showError;
            throw new CliExit(
              err.exitCode,
              show ? `curl: (${err.exitCode}) ${err.message}` : undefined,
            );
          }
          throw err;
        }
      },
    );

  const mesh = program.command('mesh');
  registerMeshSetupCommands(mesh, program, ctx);
  mesh
    .description(
      'show the running local mesh (its mesh.json); enable, connect, disconnect, status: the seeds’ setup',
    )
    .addOption(stateDirOption())
    .action(async (opts: { stateDir: string }, cmd: Command) => {
      const [{ readMeshState }, { formatMeshSummary }] = await Promise.all([
        import('../localmesh/mesh-state.js'),
        import('../localmesh/summary.js'),
      ]);
      const state = await readMeshState(opts.stateDir);
      const g = globalOptions(cmd);
      if (g.output !== 'text') {
        ctx.io.stdout(await formatStructured(state, g.output));
        return;
      }
      ctx.io.stdout(formatMeshSummary(state, { stateDir: opts.stateDir }));
    });
}

interface PodRef {
  readonly namespace: string;
  readonly name: string;
  readonly ip: string;
  readonly phase: string;
}

/** A pod by name, else the first running pod of the Deployment of that name (as kubectl). */
function pickPod<P extends PodRef>(
  pods: readonly P[],
  namespace: string,
  name: string,
  cluster: string,
): P {
  const inNs = pods.filter((p) => p.namespace === namespace);
  const exact = inNs.find((p) => p.name === name);
  const owned = inNs
    .filter(
      (p) =>
        p.name.startsWith(`${name}-`) &&
        /^[a-z0-9]+-[a-z0-9]{5}$/.test(p.name.slice(name.length + 1)),
    )
    .sort((a, b) => (a.name < b.name ? -1 : 1));
  const candidates = exact !== undefined ? [exact] : owned;
  const running = candidates.find((p) => p.phase === 'Running' && p.ip !== '');
  if (running !== undefined) return running;
  if (candidates.length > 0) {
    const p = candidates[0];
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `pod ${namespace}/${p?.name ?? name} in ${cluster} is ${p?.phase ?? 'not running'}, not Running`,
    );
  }
  throw new ClusterMeshError(
    ErrorCode.KeyNotFound,
    `no pod or deployment ${JSON.stringify(name)} in namespace ${namespace} of ${cluster}`,
  );
}
