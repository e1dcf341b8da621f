import { Option, type Command } from 'commander';
import {
  commandGroup,
  formatStructured,
  globalOptions,
  parseDuration,
  stateDirOption,
  usageError,
  type CliContext,
} from './common.js';

/**
 * The seeds' setup as commands (`cilium clustermesh enable | connect | disconnect | status
 * --wait`) on the clusters of a state dir, and `certs rotate`. `--context` is accepted for
 * `--cluster` and `--destination-context` for `--destination-cluster`: the cluster names
 * play the kubeconfig contexts' part.
 */

interface ClusterFlags {
  readonly cluster?: string | undefined;
  readonly context?: string | undefined;
}

interface ConnectFlags extends ClusterFlags {
  readonly destinationCluster?: string | undefined;
  readonly destinationContext?: string | undefined;
}

interface EnableFlags extends ClusterFlags {
  readonly clusterId?: string | undefined;
  readonly kvstoreEndpoint?: string | undefined;
  readonly clustermeshConfig?: string | undefined;
  readonly kvstoremeshConfig?: string | undefined;
  readonly agentApi?: string[] | undefined;
  readonly tlsDir?: string | undefined;
}

interface CertsCreateFlags extends ClusterFlags {
  readonly tlsDir?: string | undefined;
  readonly kvstoreEndpoint?: string | undefined;
  readonly validityDays?: string | undefined;
}

/** What `certs create` and `mesh enable --tls-dir` print: the files and the flags to start with. */
interface HandStartedView {
  readonly cluster: string;
  readonly dir: string;
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly files: { readonly caFile: string };
  readonly configs: Readonly<Record<string, string>>;
  readonly etcdFlags: readonly string[];
  readonly daemonFlags: readonly string[];
  readonly caNotAfter: Date;
}

function handStartedJson(e: HandStartedView): Record<string, unknown> {
  return {
    cluster: e.cluster,
    tlsDir: e.dir,
    endpoint: e.url,
    hostAlias: { ip: e.host, hostnames: [new URL(e.url).hostname] },
    caFile: e.files.caFile,
    caNotAfter: e.caNotAfter.toISOString(),
    configs: e.configs,
    etcdFlags: e.etcdFlags,
    daemonFlags: e.daemonFlags,
  };
}

function handStartedText(e: HandStartedView): string {
  const name = new URL(e.url).hostname;
  return [
    `🔑 Certificates of ${e.cluster} in ${e.dir} (CA valid until ${e.caNotAfter.toISOString().slice(0, 10)})`,
    `   ${name} → ${e.host} (hostaliases.yaml); other clusters dial ${e.url}`,
    'ℹ️  Start etcd with:',
    `   etcd --name ${e.cluster} --data-dir <dir> \\`,
    `     ${e.etcdFlags.join(' \\\n     ')}`,
    `ℹ️  Start the cluster's apiserver, KVStoreMesh and agents with:`,
    `   ${e.daemonFlags.join(' ')}`,
    '',
  ].join('\n');
}

interface StatusFlags extends ClusterFlags {
  readonly wait?: boolean | undefined;
  readonly waitDuration: number;
  readonly verbose?: boolean | undefined;
}

/**
 * Under `mesh`, `--state-dir` belongs to the parent (commander hands it the option wherever
 * it appears): actions read it with `stateDirOf`. `certs rotate` declares its own.
 */
function clusterOptions(cmd: Command, required: boolean, ownStateDir = false): Command {
  const c = cmd
    .option(
      '--cluster <name>',
      required ? 'the cluster (required)' : 'only this cluster (default: all)',
    )
    .addOption(new Option('--context <name>', 'alias of --cluster').hideHelp());
  return ownStateDir
    ? c.addOption(stateDirOption('where the clusters are recorded (each <cluster>/cluster.json)'))
    : c;
}

function stateDirOf(cmd: Command): string {
  return cmd.optsWithGlobals<{ stateDir: string }>().stateDir;
}

function clusterName(cmd: Command, f: ClusterFlags, required: true): string;
function clusterName(cmd: Command, f: ClusterFlags, required: false): string | undefined;
function clusterName(cmd: Command, f: ClusterFlags, required: boolean): string | undefined {
  if (f.cluster !== undefined && f.context !== undefined && f.cluster !== f.context) {
    usageError(cmd, `--cluster ${f.cluster} and --context ${f.context} name different clusters`);
  }
  const name = f.cluster ?? f.context;
  if (required && name === undefined)
    usageError(cmd, "required option '--cluster <name>' not specified");
  return name;
}

function destination(cmd: Command, f: ConnectFlags): string {
  const name = f.destinationCluster ?? f.destinationContext;
  if (name === undefined) {
    usageError(cmd, "required option '--destination-cluster <name>' not specified");
  }
  return name;
}

function pairOptions(cmd: Command): Command {
  return clusterOptions(cmd, true)
    .option('--destination-cluster <name>', 'the other cluster (required)')
    .addOption(
      new Option('--destination-context <name>', 'alias of --destination-cluster').hideHelp(),
    );
}

/** Registers `mesh enable|connect|disconnect|status` under `mesh`, and `certs rotate`. */
export function registerMeshSetupCommands(mesh: Command, program: Command, ctx: CliContext): void {
  clusterOptions(
    mesh
      .command('enable')
      .description(
        "create a cluster's remote etcd users and certificates (cilium clustermesh enable)",
      ),
    true,
  )
    .option('--clustermesh-config <dir>', "daemons started by hand: the agents' config directory")
    .option('--cluster-id <id>', 'daemons started by hand: the cluster ID')
    .option('--kvstore-endpoint <url>', 'daemons started by hand: the etcd URL other clusters dial')
    .option('--kvstoremesh-config <dir>', "daemons started by hand: KVStoreMesh's config directory")
    .option(
      '--tls-dir <dir>',
      'daemons started by hand: the certificate directory (created); etcd serves TLS at --kvstore-endpoint https://<ip>:<port>',
    )
    .option(
      '--agent-api <node=url>',
      'daemons started by hand: an agent API (repeatable), for status',
      (v: string, prev: string[] | undefined) => [...(prev ?? []), v],
    )
    .addHelpText(
      'after',
      `
Issues the cluster's remote, local and externalworkload client certificates from its CA,
creates those etcd users and roles (Cilium's etcdinit), and records the cluster as enabled,
so that "mesh connect" can hand its access to other clusters. Idempotent.

Clusters of "clustermesh up" are recorded in its state dir already. Daemons started by hand
are recorded by naming their config directory, ID, etcd and agents. With --tls-dir, the
cluster's CA and certificates are created there (kept when present; "clustermesh certs
create" makes them before etcd starts), etcd at --kvstore-endpoint is reached as
admin-<cluster>, every etcdinit user is created and auth enabled; the flags to start etcd
and the daemons with are printed:
  clustermesh mesh enable --cluster cluster1 --state-dir /tmp/cm/state --cluster-id 1 \\
    --tls-dir /tmp/cm/tls1 --kvstore-endpoint https://127.0.0.1:23791 \\
    --clustermesh-config /tmp/cm/mesh1 --agent-api node-1=http://127.0.0.1:9891
Without --tls-dir the etcd is plaintext (--kvstore-endpoint http://<host>:<port>).`,
    )
    .action(async (f: EnableFlags, cmd: Command) => {
      const name = clusterName(cmd, f, true);
      const { enableCluster } = await import('../localmesh/mesh-setup.js');
      let register;
      if (f.clustermeshConfig !== undefined) {
        const id = Number(f.clusterId);
        if (!Number.isInteger(id) || id < 1 || id > 511) {
          usageError(
            cmd,
            `--cluster-id ${String(f.clusterId)}: expected 1..511 with --clustermesh-config`,
          );
        }
        if (f.kvstoreEndpoint === undefined) {
          usageError(cmd, '--kvstore-endpoint URL is required with --clustermesh-config');
        }
        if (f.tlsDir === undefined && !f.kvstoreEndpoint.startsWith('http://')) {
          usageError(
            cmd,
            `--kvstore-endpoint ${f.kvstoreEndpoint.slice(0, 80)}: https:// needs --tls-dir (the cluster's certificates); plaintext etcd is http://`,
          );
        }
        const path = await import('node:path');
        const resolve = (p: string): string => path.resolve(p);
        register = {
          id,
          endpoint: f.kvstoreEndpoint,
          configDir: resolve(f.clustermeshConfig),
          tlsDir: f.tlsDir === undefined ? undefined : resolve(f.tlsDir),
          kvstoremeshConfigDir:
            f.kvstoremeshConfig === undefined ? undefined : resolve(f.kvstoremeshConfig),
          agents: (f.agentApi ?? []).map((a) => {
            const eq = a.indexOf('=');
            if (eq <= 0) usageError(cmd, `--agent-api ${a.slice(0, 80)}: expected NODE=URL`);
            return { node: a.slice(0, eq), api: a.slice(eq + 1) };
          }),
        };
      }
      if (f.clustermeshConfig === undefined && f.tlsDir !== undefined) {
        usageError(cmd, '--tls-dir is for daemons started by hand: give --clustermesh-config too');
      }
      const { record: rec, handStarted } = await enableCluster(stateDirOf(cmd), name, register);
      const { output } = globalOptions(cmd);
      if (output !== 'text') {
        ctx.io.stdout(
          await formatStructured(
            {
              cluster: rec.name,
              enabled: rec.enabled,
              kvstore: rec.kvstore,
              tls: rec.tls,
              ...(handStarted === undefined ? {} : handStartedJson(handStarted)),
            },
            output,
          ),
        );
        return;
      }
      ctx.io.stdout(
        `✅ ClusterMesh enabled in ${rec.name}: etcd at ${rec.kvstore}${rec.tls ? ' (TLS, remote users created)' : ' (plaintext)'}\n` +
          (handStarted === undefined ? '' : handStartedText(handStarted)),
      );
    });

  pairOptions(
    mesh
      .command('connect')
      .description('connect two clusters in both directions (cilium clustermesh connect)'),
  )
    .addHelpText(
      'after',
      `
Writes each cluster's access (config file, its CA, its "remote" client certificate, the
name in hostaliases.yaml) into the other's clustermesh config directory; the agents (or
KVStoreMesh) pick it up without a restart. Both clusters must be enabled; names and IDs
must differ.

Example:
  clustermesh mesh connect --cluster cluster1 --destination-cluster cluster2`,
    )
    .action(async (f: ConnectFlags, cmd: Command) => {
      const a = clusterName(cmd, f, true);
      const b = destination(cmd, f);
      const { connectClusters } = await import('../localmesh/mesh-setup.js');
      await connectClusters(stateDirOf(cmd), a, b);
      ctx.io.stdout(`✅ Connected cluster ${a} <=> ${b}!\n`);
    });

  pairOptions(
    mesh
      .command('disconnect')
      .description('disconnect exactly two clusters (cilium clustermesh disconnect)'),
  ).action(async (f: ConnectFlags, cmd: Command) => {
    const a = clusterName(cmd, f, true);
    const b = destination(cmd, f);
    const { disconnectClusters } = await import('../localmesh/mesh-setup.js');
    const was = await disconnectClusters(stateDirOf(cmd), a, b);
    ctx.io.stdout(
      was
        ? `✅ Disconnected cluster ${a} <=> ${b}\n`
        : `ℹ️  Clusters ${a} and ${b} were not connected\n`,
    );
  });

  clusterOptions(
    mesh
      .command('status')
      .description('per cluster: agents connected to remotes (cilium clustermesh status)'),
    false,
  )
    .option('--wait', 'wait until every agent is connected to every configured remote')
    .addOption(
      new Option('--wait-duration <duration>', 'give up waiting after this (e.g. 30s, 5m)')
        .argParser(parseDuration)
        .default(300_000, '5m'),
    )
    .option('--verbose', 'also list the certificates with their expiry dates')
    .addHelpText(
      'after',
      `
Asks every agent of every recorded cluster for its ClusterMesh status. A connection that
fails prints the reason in one line and a 💡 hint. Certificates expiring within 30 days are
called out. With --wait, exits 1 (ERR_CLUSTERMESH_NOT_READY) when the mesh is not ready
within --wait-duration.`,
    )
    .action(async (f: StatusFlags, cmd: Command) => {
      const name = clusterName(cmd, f, false);
      const [{ listClusterRecords, readClusterRecord }, status, { ClusterMeshError, ErrorCode }] =
        await Promise.all([
          import('../localmesh/cluster-record.js'),
          import('../localmesh/mesh-status.js'),
          import('../lib/errors.js'),
        ]);
      const stateDir = stateDirOf(cmd);
      const records =
        name === undefined
          ? await listClusterRecords(stateDir)
          : [await readClusterRecord(stateDir, name)];
      if (records.length === 0) {
        throw new ClusterMeshError(
          ErrorCode.ConfigNotFound,
          `no clusters recorded in ${stateDir} (start them with "clustermesh up", or pass --state-dir)`,
        );
      }
      const start = performance.now();
      let views = await Promise.all(records.map((r) => status.collectClusterView(r)));
      if (f.wait === true && !views.every(status.clusterReady)) {
        ctx.io.stdout(
          `⌛ Waiting (${Math.round(f.waitDuration / 1000)}s) for clusters to be connected...\n`,
        );
        while (!views.every(status.clusterReady) && performance.now() - start < f.waitDuration) {
          await new Promise((r) => setTimeout(r, 500));
          views = await Promise.all(records.map((r) => status.collectClusterView(r)));
        }
      }
      const { output } = globalOptions(cmd);
      if (output !== 'text') {
        ctx.io.stdout(
          await formatStructured(
            views.map((v) => ({
              cluster: v.record.name,
              ready: status.clusterReady(v),
              configured: v.configured,
              agents: v.agents,
              certificates: v.certificates,
            })),
            output,
          ),
        );
      } else {
        ctx.io.stdout(
          views.map((v) => status.formatClusterView(v, { verbose: f.verbose })).join('\n'),
        );
      }
      if (f.wait === true && !views.every(status.clusterReady)) {
        const pending = views.filter((v) => !status.clusterReady(v)).map((v) => v.record.name);
        throw new ClusterMeshError(
          ErrorCode.ClustermeshNotReady,
          `timed out after ${Math.round(f.waitDuration / 1000)}s waiting for clusters ${pending.join(', ')} to be connected`,
        );
      }
    });

  const certs = commandGroup(program, 'certs', 'the mesh etcd certificates');
  clusterOptions(
    certs
      .command('create')
      .description("create a hand-started cluster's CA, etcd server and client certificates"),
    true,
  )
    .option('--tls-dir <dir>', 'where the certificates and client configs go (required)')
    .option(
      '--kvstore-endpoint <url>',
      'https://<ip>:<port> where etcd will listen (required): the server certificate covers the IP',
    )
    .option('--validity-days <n>', 'validity of the CA and certificates (default 365)')
    .addHelpText(
      'after',
      `
For etcd and daemons started by hand, before etcd starts: in --tls-dir, ca.crt/ca.key,
server.crt/key (SANs *.mesh.cilium.io, <cluster>.mesh.cilium.io,
clustermesh-apiserver.kube-system.svc, localhost, 127.0.0.1, ::1 and the endpoint's IP),
<user>.crt/key for admin-<cluster>, remote, local-<cluster> and externalworkload, an etcd
client config per role (admin.yaml, remote.yaml, local.yaml, externalworkload.yaml naming
https://<cluster>.mesh.cilium.io:<port>) and hostaliases.yaml mapping that name to the IP.
Files already there are kept. Prints the flags etcd and the daemons are started with; then
"clustermesh mesh enable ... --tls-dir" creates the users.`,
    )
    .action(async (f: CertsCreateFlags, cmd: Command) => {
      const name = clusterName(cmd, f, true);
      if (f.tlsDir === undefined)
        usageError(cmd, "required option '--tls-dir <dir>' not specified");
      if (f.kvstoreEndpoint === undefined) {
        usageError(cmd, "required option '--kvstore-endpoint <url>' not specified");
      }
      let validityDays: number | undefined;
      if (f.validityDays !== undefined) {
        validityDays = Number(f.validityDays);
        if (!Number.isInteger(validityDays) || validityDays < 1 || validityDays > 36_500) {
          usageError(cmd, `--validity-days ${f.validityDays.slice(0, 80)}: expected 1..36500`);
        }
      }
      const [{ parseTlsEndpoint }, { prepareHandStartedEtcd }, path] = await Promise.all([
        import('../localmesh/mesh-setup.js'),
        import('../localmesh/secure-etcd.js'),
        import('node:path'),
      ]);
      const { host, port } = parseTlsEndpoint(f.kvstoreEndpoint);
      const e = await prepareHandStartedEtcd({
        cluster: name,
        dir: path.resolve(f.tlsDir),
        host,
        port,
        validityDays,
      });
      const { output } = globalOptions(cmd);
      ctx.io.stdout(
        output === 'text'
          ? `✅ Certificates of ${name} ready\n${handStartedText(e)}`
          : await formatStructured(handStartedJson(e), output),
      );
    });
  clusterOptions(
    certs.command('rotate').description("replace a cluster's server and client certificates"),
    true,
    true,
  )
    .addOption(
      new Option('--ca <step>', 'replace the CA itself, in three steps (see below)').choices([
        'start',
        'reissue',
        'finish',
      ]),
    )
    .addHelpText(
      'after',
      `
New certificates from the same CA: etcd serves the new server certificate on the next
handshake, and the copies of the cluster's client certificates in other clusters'
clustermesh config directories are replaced; agents reconnect with them, keeping every
entry.

With --ca, the CA itself is replaced without dropping a connection. etcd reads the CAs it
verifies clients with only when it starts, hence three steps:
  --ca start     a new CA; ca.crt and every copy other clusters hold trust both CAs.
                 Then restart the cluster's etcd (same flags).
  --ca reissue   server and client certificates from the new CA, handed out.
  --ca finish    ca.crt and the copies trust only the new CA (restart etcd later to make
                 it refuse the old one).`,
    )
    .action(async (f: ClusterFlags & { stateDir: string; ca?: string }, cmd: Command) => {
      const name = clusterName(cmd, f, true);
      const { rotateCluster, rotateClusterCa } = await import('../localmesh/mesh-setup.js');
      const step = f.ca as 'start' | 'reissue' | 'finish' | undefined;
      const { updated } =
        step === undefined
          ? await rotateCluster(f.stateDir, name)
          : await rotateClusterCa(f.stateDir, name, step);
      const what =
        step === undefined
          ? `Rotated the certificates of ${name}`
          : step === 'start'
            ? `Started the CA rotation of ${name}: its CA file and the copies trust the old and the new CA`
            : step === 'reissue'
              ? `Issued ${name}'s certificates from its new CA`
              : `Finished the CA rotation of ${name}: only the new CA is trusted`;
      const next =
        step === 'start'
          ? `ℹ️  Restart ${name}'s etcd (it reads trusted-ca-file only at start), then run "clustermesh certs rotate --cluster ${name} --ca reissue"\n`
          : step === 'reissue'
            ? `ℹ️  Once every party runs with the new certificates: "clustermesh certs rotate --cluster ${name} --ca finish"\n`
            : '';
      ctx.io.stdout(
        `✅ ${what}` + (updated.length > 0 ? `; updated ${updated.join(', ')}\n` : '\n') + next,
      );
    });
}
