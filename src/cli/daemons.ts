import { inKubernetesPod } from '../kubesource/in-cluster.js';
import type { Logger } from 'pino';
import type { KvstoreConfig } from '../kvstore/config.js';
import type { MaxConnectedClusters } from '../keyspace/index.js';
import type { RemoteClusterTiming } from '../clustermesh/remote-cluster.js';
import { InvalidArgumentError, Option, type Command } from 'commander';
import {
  addKvstoreOptions,
  formatStructured,
  globalOptions,
  parseDuration,
  usageError,
  type CliContext,
  type KvstoreCliOptions,
  policyDefaultLocalClusterOption,
} from './common.js';

/**
 * Daemon commands (`apiserver`, `agent`, `kvstoremesh`, `operator`). Each action runs until
 * SIGINT/SIGTERM and then stops its components in reverse order before returning.
 */

function intArg(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('Expected an integer.');
  return n;
}

function durationOption(flags: string, description: string, def: string): Option {
  return new Option(flags, description).argParser(parseDuration).default(parseDuration(def), def);
}

interface ClusterFlags extends KvstoreCliOptions {
  readonly clusterName: string;
  readonly clusterId: number;
  readonly maxConnectedClusters: number;
}

/** The hidden timing flags of commands that connect to remote clusters (agent, KVStoreMesh). */
interface RemoteTimingFlags extends HealthCheckFlags {
  readonly clustermeshRetryBase: number;
  readonly heartbeatInterval: number;
}

/** Outage detection of remote kvstores (agent, KVStoreMesh, up). */
export interface HealthCheckFlags {
  readonly clustermeshHealthCheckInterval: number;
  readonly clustermeshHealthCheckTimeout: number;
  readonly clustermeshHealthCheckFailAfter: number;
}

export function addHealthCheckOptions(cmd: Command): Command {
  return cmd
    .addOption(
      durationOption(
        '--clustermesh-health-check-interval <duration>',
        'how often a remote kvstore is read to check that it answers',
        '500ms',
      ),
    )
    .addOption(
      durationOption(
        '--clustermesh-health-check-timeout <duration>',
        'deadline of each remote kvstore health check',
        '1s',
      ),
    )
    .addOption(
      durationOption(
        '--clustermesh-health-check-fail-after <duration>',
        'a remote cluster whose kvstore has not answered for this long is not ready (keep it above the stalls to ride out plus one interval)',
        '4s',
      ),
    );
}

export function healthCheckTiming(o: HealthCheckFlags): {
  healthCheckIntervalMs: number;
  healthCheckTimeoutMs: number;
  healthCheckFailAfterMs: number;
} {
  return {
    healthCheckIntervalMs: o.clustermeshHealthCheckInterval,
    healthCheckTimeoutMs: o.clustermeshHealthCheckTimeout,
    healthCheckFailAfterMs: o.clustermeshHealthCheckFailAfter,
  };
}

/** Backend health checking of the userspace datapath (up). */
export interface BackendProbeFlags {
  readonly backendProbeInterval: number;
  readonly backendProbeTimeout: number;
  readonly backendProbeFailures: number;
  readonly backendEjectFailures: number;
  readonly backendEjectBackoff: number;
}

export function addBackendProbeOptions(cmd: Command): Command {
  const count = (flags: string, description: string, def: number): Option =>
    new Option(flags, description)
      .argParser((v: string) => {
        const n = intArg(v);
        if (n < 1) throw new InvalidArgumentError('Must be at least 1.');
        return n;
      })
      .default(def);
  return cmd
    .addOption(
      durationOption(
        '--backend-probe-interval <duration>',
        'how often each agent probes every service backend (TCP connect)',
        '500ms',
      ),
    )
    .addOption(
      durationOption(
        '--backend-probe-timeout <duration>',
        'deadline of each backend probe',
        '500ms',
      ),
    )
    .addOption(
      count(
        '--backend-probe-failures <n>',
        'consecutive failed probes that mark a backend unhealthy',
        2,
      ),
    )
    .addOption(
      count(
        '--backend-eject-failures <n>',
        'consecutive failed connections that eject a backend',
        1,
      ),
    )
    .addOption(
      durationOption(
        '--backend-eject-backoff <duration>',
        'how long an ejected backend is avoided unless a probe passes first',
        '5s',
      ),
    );
}

export function backendHealthOptions(o: BackendProbeFlags): {
  probeIntervalMs: number;
  probeTimeoutMs: number;
  probeFailures: number;
  ejectAfterFailures: number;
  ejectBackoffMs: number;
} {
  return {
    probeIntervalMs: o.backendProbeInterval,
    probeTimeoutMs: o.backendProbeTimeout,
    probeFailures: o.backendProbeFailures,
    ejectAfterFailures: o.backendEjectFailures,
    ejectBackoffMs: o.backendEjectBackoff,
  };
}

function addRemoteTimingOptions(cmd: Command): Command {
  return addHealthCheckOptions(cmd)
    .addOption(
      durationOption(
        '--clustermesh-retry-base <duration>',
        'remote reconnect back-off unit',
        '1s',
      ).hideHelp(),
    )
    .addOption(
      durationOption(
        '--heartbeat-interval <duration>',
        'expected remote heartbeat interval',
        '1m',
      ).hideHelp(),
    );
}

function remoteTiming(o: RemoteTimingFlags): Partial<RemoteClusterTiming> {
  return {
    retryBaseMs: o.clustermeshRetryBase,
    heartbeatIntervalMs: o.heartbeatInterval,
    ...healthCheckTiming(o),
  };
}

/** How often a daemon writes its cluster config again (apiserver, KVStoreMesh). */
function clusterConfigIntervalOption(): Option {
  return durationOption(
    '--cluster-config-interval <duration>',
    'cluster config re-enforcement',
    '5m',
  ).hideHelp();
}

/**
 * `--cluster-name`, `--cluster-id`, `--max-connected-clusters` and the kvstore flags.
 * `enforced: false` leaves the two required flags to the action: commander applies
 * a command's mandatory options to its subcommands too.
 */
function addClusterOptions(cmd: Command, enforced = true): Command {
  const required = (flags: string, description: string): Option => {
    const opt = new Option(flags, enforced ? description : `${description} (required)`);
    return enforced ? opt.makeOptionMandatory() : opt;
  };
  cmd
    .addOption(
      required('--cluster-name <name>', 'name of the local cluster (≤ 32 chars, [a-z0-9-])'),
    )
    .addOption(
      required('--cluster-id <id>', 'ID of the local cluster (1..255, or 1..511)').argParser(
        intArg,
      ),
    )
    .addOption(
      new Option(
        '--max-connected-clusters <n>',
        'maximum number of clusters in the mesh (255 or 511)',
      )
        .argParser(intArg)
        .default(255),
    );
  return addKvstoreOptions(cmd);
}

/** What every daemon command resolves from its flags before building the daemon. */
interface DaemonBasics {
  readonly maxConnectedClusters: MaxConnectedClusters;
  readonly kvstore: KvstoreConfig;
  readonly log: Logger;
}

/**
 * Validates the shared flags, builds the daemon, runs it until SIGINT/SIGTERM and
 * stops it (in reverse start order) before returning.
 */
async function runDaemon(
  subsys: string,
  flags: KvstoreCliOptions & { readonly maxConnectedClusters: number },
  build: (basics: DaemonBasics) => Promise<{ start(): Promise<void>; stop(): Promise<void> }>,
): Promise<void> {
  const [{ resolveKvstoreConfig }, { createLogger }, { untilSignal }, keyspace] = await Promise.all(
    [
      import('../kvstore/config.js'),
      import('../lib/logger.js'),
      import('../lib/lifecycle.js'),
      import('../keyspace/index.js'),
    ],
  );
  const maxConnectedClusters = keyspace.validateMaxConnectedClusters(flags.maxConnectedClusters);
  const kvstore = await resolveKvstoreConfig(flags.kvstore, flags.kvstoreOpt ?? []);
  const log = createLogger({ subsys });
  const daemon = await build({ maxConnectedClusters, kvstore, log });
  const stopping = untilSignal();
  await daemon.start();
  const sig = await stopping;
  log.info({ signal: sig }, 'stopping');
  await daemon.stop();
}

interface K8sFlags {
  readonly k8sKubeconfigPath?: string | undefined;
}

/** Cilium's flag: read the cluster's objects from a Kubernetes API server. */
function k8sKubeconfigOption(
  description = "Kubernetes mode: read the cluster's objects from the API server this kubeconfig names (in a pod: its in-cluster config without the flag)",
): Option {
  return new Option('--k8s-kubeconfig-path <file>', description);
}

/** Kubernetes mode with the flag, or inside a pod (its service account); else the registry. */
function kubernetesMode(flags: K8sFlags): { kubeconfigPath?: string | undefined } | undefined {
  if (flags.k8sKubeconfigPath !== undefined) return { kubeconfigPath: flags.k8sKubeconfigPath };
  return inKubernetesPod() ? {} : undefined;
}

export function registerDaemonCommands(program: Command, ctx: CliContext): void {
  const apiserver = program
    .command('apiserver')
    .description(
      "mirror this cluster's nodes, identities and endpoints from its registry into its kvstore",
    );
  addClusterOptions(apiserver)
    .option(
      '--health-addr <host:port>',
      'serve /healthz, /readyz and /metrics here',
      '127.0.0.1:9880',
    )
    .option('--metrics-addr <host:port>', 'also serve /metrics on this address')
    .addOption(
      durationOption(
        '--heartbeat-interval <duration>',
        'heartbeat write interval',
        '1m',
      ).hideHelp(),
    )
    .addOption(clusterConfigIntervalOption())
    .addOption(k8sKubeconfigOption())
    .option(
      '--enable-external-workloads',
      'accept VM registrations (cilium/state/noderegister/v1/): identities, CiliumNodes, CiliumEndpoints',
    )
    .action(
      async (
        opts: ClusterFlags &
          K8sFlags & {
            healthAddr: string;
            metricsAddr?: string;
            heartbeatInterval: number;
            clusterConfigInterval: number;
            enableExternalWorkloads?: boolean;
          },
      ) => {
        await runDaemon(
          'clustermesh-apiserver',
          opts,
          async ({ maxConnectedClusters, kvstore, log }) => {
            const { Apiserver } = await import('../apiserver/module.js');
            return new Apiserver({
              clusterName: opts.clusterName,
              clusterId: opts.clusterId,
              maxConnectedClusters,
              kvstore,
              healthAddr: opts.healthAddr,
              metricsAddr: opts.metricsAddr,
              heartbeatIntervalMs: opts.heartbeatInterval,
              clusterConfigIntervalMs: opts.clusterConfigInterval,
              kubernetes: kubernetesMode(opts),
              externalWorkloads: opts.enableExternalWorkloads === true,
              log,
            });
          },
        );
      },
    );

  const agent = program
    .command('agent')
    .description(
      "run a node agent: merge the local cluster with every remote cluster's nodes, identities and IPs",
    );
  addRemoteTimingOptions(addClusterOptions(agent))
    .requiredOption('--node-name <name>', 'name of this node (a CiliumNode of the local cluster)')
    .option('--clustermesh-config <dir>', 'directory with one etcd config file per remote cluster')
    .option(
      '--api-addr <host:port>',
      'serve the agent API (read by status/list commands) here',
      '127.0.0.1:9890',
    )
    .addOption(
      new Option(
        '--clustermesh-cache-ttl <duration>',
        "revoke a disconnected remote cluster's entries after this long (default: keep them)",
      ).argParser(parseDuration),
    )
    .addOption(policyDefaultLocalClusterOption())
    .addOption(k8sKubeconfigOption())
    .option(
      '--join-cluster',
      'external-workload mode: this is a VM joining the cluster as --node-name (a CiliumExternalWorkload)',
    )
    .option('--ipv4-node <address>', 'with --join-cluster: the address of this VM')
    .action(
      async (
        opts: ClusterFlags &
          RemoteTimingFlags &
          K8sFlags & {
            nodeName: string;
            clustermeshConfig?: string;
            apiAddr: string;
            clustermeshCacheTtl?: number;
            policyDefaultLocalCluster: 'true' | 'false';
            joinCluster?: boolean;
            ipv4Node?: string;
          },
        cmd: Command,
      ) => {
        if (opts.joinCluster === true) {
          const ip = opts.ipv4Node;
          if (ip === undefined) usageError(cmd, '--join-cluster needs --ipv4-node <address>');
          await runDaemon('agent', opts, async ({ kvstore, log }) => {
            const { VmAgent } = await import('../externalworkload/vm-agent.js');
            return new VmAgent({
              cluster: opts.clusterName,
              clusterId: opts.clusterId,
              name: opts.nodeName,
              ip,
              kvstore,
              apiAddr: opts.apiAddr,
              workload: false,
              health: false,
              log,
            });
          });
          return;
        }
        await runDaemon('agent', opts, async ({ maxConnectedClusters, kvstore, log }) => {
          const { Agent } = await import('../agent/module.js');
          return new Agent({
            clusterName: opts.clusterName,
            clusterId: opts.clusterId,
            nodeName: opts.nodeName,
            maxConnectedClusters,
            kvstore,
            clustermeshConfig: opts.clustermeshConfig,
            apiAddr: opts.apiAddr,
            cacheTtlMs: opts.clustermeshCacheTtl,
            timing: remoteTiming(opts),
            policyDefaultLocalCluster: opts.policyDefaultLocalCluster === 'true',
            kubernetes: kubernetesMode(opts),
            log,
          });
        });
      },
    );

  registerKvstoreMeshCommand(program, ctx);

  const operator = program
    .command('operator')
    .description(
      "run the MCS-API operator of this cluster: ServiceImports, derived Services and MCS EndpointSlices from every cluster's ServiceExports",
    );
  addRemoteTimingOptions(addClusterOptions(operator))
    .option(
      '--clustermesh-config <dir>',
      "directory with one etcd config file per remote cluster (the agents' directory)",
    )
    .option('--health-addr <host:port>', 'serve /healthz, /readyz, /metrics and /status here')
    .addOption(
      durationOption(
        '--remote-sync-timeout <duration>',
        'the first reconcile waits this long for remote clusters to list their exports',
        '30s',
      ),
    )
    .addOption(
      k8sKubeconfigOption(
        'Kubernetes mode: read ServiceExports, Services, EndpointSlices and Namespaces from the API server this kubeconfig names and write ServiceImports, derived Services, MCS EndpointSlices and ServiceExport conditions back through it (in a pod: its in-cluster config without the flag)',
      ),
    )
    .action(
      async (
        opts: ClusterFlags &
          RemoteTimingFlags &
          K8sFlags & {
            clustermeshConfig?: string;
            healthAddr?: string;
            remoteSyncTimeout: number;
          },
      ) => {
        await runDaemon('operator', opts, async ({ maxConnectedClusters, kvstore, log }) => {
          const { Operator } = await import('../operator/module.js');
          return new Operator({
            clusterName: opts.clusterName,
            clusterId: opts.clusterId,
            maxConnectedClusters,
            kvstore,
            clustermeshConfig: opts.clustermeshConfig,
            healthAddr: opts.healthAddr,
            remoteSyncTimeoutMs: opts.remoteSyncTimeout,
            timing: remoteTiming(opts),
            log,
            kubernetes: kubernetesMode(opts),
          });
        });
      },
    );
}

interface KvstoreMeshFlags extends KvstoreCliOptions, RemoteTimingFlags {
  readonly clusterName?: string;
  readonly clusterId?: number;
  readonly maxConnectedClusters: number;
  readonly clustermeshConfig?: string;
  readonly healthAddr: string;
  readonly perClusterReadyTimeout: number;
  readonly globalReadyTimeout: number;
  readonly drainGracePeriod: number;
  readonly disableDrainOnDisconnection?: boolean;
  readonly clusterConfigInterval: number;
}

/**
 * `kvstoremesh` runs the daemon; `kvstoremesh status` reads a running one (reference:
 * `clustermesh-apiserver kvstoremesh-dbg status`). Commander enforces a parent's
 * mandatory options on its subcommands too, so the daemon's required flags are
 * checked in its action instead, with commander's wording.
 */
function registerKvstoreMeshCommand(program: Command, ctx: CliContext): void {
  const kvstoremesh = program
    .command('kvstoremesh')
    .description(
      "cache every remote cluster's state in the local kvstore, so agents need only one connection",
    );
  addRemoteTimingOptions(addClusterOptions(kvstoremesh, false))
    .option(
      '--clustermesh-config <dir>',
      'directory with one etcd config file per remote cluster (required)',
    )
    .option(
      '--health-addr <host:port>',
      'serve /healthz, /readyz, /metrics and /status here',
      '127.0.0.1:9881',
    )
    .addOption(
      durationOption(
        '--per-cluster-ready-timeout <duration>',
        'readiness does not wait for a remote cluster that has not connected within this time',
        '15s',
      ),
    )
    .addOption(
      durationOption(
        '--global-ready-timeout <duration>',
        'report ready after this time even if remote clusters are still syncing',
        '10m',
      ),
    )
    .addOption(
      durationOption(
        '--drain-grace-period <duration>',
        "wait between withdrawing a removed cluster's config and deleting its cache",
        '3m',
      ),
    )
    .addOption(
      new Option(
        '--disable-drain-on-disconnection',
        'keep the cache of removed clusters until its leases expire',
      ).hideHelp(),
    )
    .addOption(clusterConfigIntervalOption())
    .addOption(
      k8sKubeconfigOption(
        "Kubernetes mode: KVStoreMesh reads no Kubernetes object (it copies remote kvstores into the local one); with this kubeconfig (in a pod: its in-cluster config without the flag) it checks the API server's reachability and reports it in /status and /healthz",
      ),
    )
    .action(async (opts: KvstoreMeshFlags & K8sFlags, cmd: Command) => {
      const { clusterName, clusterId, clustermeshConfig } = opts;
      if (clusterName === undefined) {
        usageError(cmd, "required option '--cluster-name <name>' not specified");
      }
      if (clusterId === undefined) {
        usageError(cmd, "required option '--cluster-id <id>' not specified");
      }
      if (clustermeshConfig === undefined) {
        usageError(cmd, "required option '--clustermesh-config <dir>' not specified");
      }
      await runDaemon('kvstoremesh', opts, async ({ maxConnectedClusters, kvstore, log }) => {
        const { KvstoreMesh } = await import('../kvstoremesh/module.js');
        return new KvstoreMesh({
          clusterName,
          clusterId,
          maxConnectedClusters,
          kvstore,
          clustermeshConfig,
          healthAddr: opts.healthAddr,
          perClusterReadyTimeoutMs: opts.perClusterReadyTimeout,
          globalReadyTimeoutMs: opts.globalReadyTimeout,
          remote: {
            drainGracePeriodMs: opts.drainGracePeriod,
            clusterConfigIntervalMs: opts.clusterConfigInterval,
          },
          disableDrainOnDisconnection: opts.disableDrainOnDisconnection,
          timing: remoteTiming(opts),
          log,
          kubernetes: kubernetesMode(opts),
        });
      });
    });

  kvstoremesh
    .command('status')
    .description('the remote clusters of a running kvstoremesh (reference: kvstoremesh-dbg status)')
    .configureHelp({
      ...kvstoremesh.configureHelp(),
      // The daemon's flags would be listed as global options of `status`: they are not.
      visibleGlobalOptions: (cmd: Command) =>
        (cmd.parent?.parent?.options ?? []).filter((opt) => !opt.hidden),
    })
    .option('--url <url>', 'health address of the kvstoremesh', 'http://127.0.0.1:9881')
    .option('--verbose', 'details for every remote cluster, not only the failing ones')
    .action(async (o: { url: string; verbose?: boolean }, cmd: Command) => {
      const [{ fetchKvstoreMeshStatus }, { formatClusterMeshStatus }, { clusterMeshStatusJson }] =
        await Promise.all([
          import('../kvstoremesh/status-client.js'),
          import('../clustermesh/status-text.js'),
          import('../clustermesh/status.js'),
        ]);
      const g = globalOptions(cmd);
      const status = await fetchKvstoreMeshStatus(o.url);
      if (g.output !== 'text') {
        ctx.io.stdout(await formatStructured(clusterMeshStatusJson(status), g.output));
        return;
      }
      const lines = formatClusterMeshStatus(status, {
        kind: 'kvstoremesh',
        verbose: o.verbose === true,
      });
      ctx.io.stdout(`${lines.join('\n')}\n`);
    });
}
