import { Option, type Command } from 'commander';
import type { Backend } from '../kvstore/backend.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import type { KindInfo } from '../registry/kinds.js';
import type { KindName } from '../registry/objects.js';
import {
  addKvstoreOptions,
  collect,
  formatStructured,
  globalOptions,
  parseDuration,
  usageError,
  type CliContext,
  type KvstoreCliOptions,
} from './common.js';
import type { OpenKvstoreOptions } from './kvstore-client.js';
import type { ApplyOutcome } from '../registry/registry.js';
import type { RegistryObject } from '../registry/types.js';

/**
 * `clustermesh apply|get|delete`: kubectl-like access to the local cluster registry. The
 * registry modules are imported inside the actions, so `--help` stays fast.
 */

interface ConnectionOptions extends KvstoreCliOptions {
  readonly timeout?: number | undefined;
  /** A cluster of the mesh `clustermesh up` runs (found through --state-dir). */
  readonly cluster?: string | undefined;
  readonly stateDir?: string | undefined;
}

/** What apply/get/delete need of a registry: opened from a kvstore, or a running mesh's. */
interface RegistryAccess {
  apply(objects: readonly RegistryObject[]): Promise<ApplyOutcome[]>;
  get(
    info: KindInfo,
    namespace: string | undefined,
    name: string,
  ): Promise<RegistryObject | undefined>;
  list(info: KindInfo, namespace: string | undefined): Promise<RegistryObject[]>;
  delete(info: KindInfo, namespace: string | undefined, name: string): Promise<boolean>;
}

interface ApplyOptions extends ConnectionOptions {
  readonly filename?: readonly string[] | undefined;
  readonly namespace?: string | undefined;
}

interface GetOptions extends ConnectionOptions {
  readonly namespace?: string | undefined;
  readonly allNamespaces?: boolean | undefined;
}

interface DeleteOptions extends ApplyOptions {
  readonly ignoreNotFound?: boolean | undefined;
}

const CONNECTION_HELP = `
Connection (the cluster's kvstore; default kind etcd):
  --cluster NAME [--state-dir DIR]                   a cluster of the mesh "clustermesh up" runs
  --kvstore-opt etcd.address=http://127.0.0.1:2379   plain etcd endpoint(s), comma separated
  --kvstore-opt etcd.config=FILE                     etcd client YAML (endpoints, TLS files)`;

const KINDS_HELP = `
Kinds: namespaces (ns), services (svc), endpointslices, pods (po), deployments (deploy),
  ciliumnodes (cn), ciliumendpoints (cep), ciliumidentities (ciliumid),
  ciliumnetworkpolicies (cnp), ciliumclusterwidenetworkpolicies (ccnp),
  networkpolicies (netpol), ciliumexternalworkloads (cew), serviceexports (svcex),
  serviceimports (svcim); the kind, singular or plural name, any case.`;

export function registerRegistryCommands(program: Command, ctx: CliContext): void {
  connectionOptions(
    program
      .command('apply')
      .description('create or update registry objects from manifests (local mode)')
      .addOption(
        new Option('-f, --filename <path>', 'manifest file, directory of manifests, or - for stdin')
          .argParser(collect)
          .makeOptionMandatory(),
      )
      .option('-n, --namespace <ns>', 'namespace of objects that name none (default: default)'),
  )
    .addHelpText(
      'after',
      `
Multi-document YAML, JSON and "kind: List" are accepted; a directory contributes its *.yaml,
*.yml and *.json files in name order. Every object is validated before anything is written;
an invalid one fails the command with one line naming file, document, field and reason.
Prints one "<kind>/<name> created|configured|unchanged" line per object.
${CONNECTION_HELP}`,
    )
    .action(async (opts: ApplyOptions, cmd: Command) => {
      const { output } = globalOptions(cmd);
      const { loadManifests } = await import('../registry/manifest.js');
      // Files first: a bad manifest fails fast, without a kvstore round trip.
      const loaded = await loadManifests(opts.filename ?? [], { namespace: opts.namespace });
      if (loaded.length === 0) {
        throw new ClusterMeshError(ErrorCode.InvalidArgument, 'no objects passed to apply');
      }
      const { resultLine } = await import('../registry/registry.js');
      const { kindInfo } = await import('../registry/kinds.js');
      const results = await withRegistry(cmd, opts, (registry) =>
        registry.apply(loaded.map((l) => l.object)),
      );
      if (output !== 'text') {
        const out = results.map((r) => ({
          kind: r.kind,
          namespace: r.namespace,
          name: r.name,
          result: r.action,
        }));
        ctx.io.stdout(await formatStructured(out, output));
        return;
      }
      ctx.io.stdout(
        results
          .map((r) => `${resultLine(kindInfo(r.kind as KindName), r.name, r.action)}\n`)
          .join(''),
      );
    });

  connectionOptions(
    program
      .command('get')
      .description('list registry objects of a kind, or show one (local mode)')
      .argument('<kind>', 'kind, e.g. ciliumnodes, svc, CiliumEndpoint')
      .argument('[name]', 'object name')
      .option('-n, --namespace <ns>', 'namespace (default: default)')
      .option('-A, --all-namespaces', 'objects of every namespace'),
  )
    .addHelpText(
      'after',
      `
Output: a table (NAME, kind-specific columns, AGE; NAMESPACE first with -A); -o json|yaml
prints the object, or {"apiVersion":"v1","kind":"List","items":[…]} without a name.
A missing object is an error (exit 1); an empty list prints "No resources found" on stderr.
${KINDS_HELP}
${CONNECTION_HELP}`,
    )
    .action(async (kindArg: string, name: string | undefined, opts: GetOptions, cmd: Command) => {
      const { output } = globalOptions(cmd);
      const { resolveKind } = await loadRegistryCli();
      const info = resolveKind(kindArg);
      const all = opts.allNamespaces === true && name === undefined;
      const namespace = info.namespaced ? (opts.namespace ?? 'default') : undefined;
      const { describeObject } = await import('../registry/codec.js');
      const objects = await withRegistry(cmd, opts, async (registry) => {
        if (name === undefined) return registry.list(info, all ? undefined : namespace);
        const obj = await registry.get(info, namespace, name);
        if (obj === undefined) {
          throw new ClusterMeshError(
            ErrorCode.KeyNotFound,
            `${describeObject(info, name)} not found`,
          );
        }
        return [obj];
      });
      if (output !== 'text') {
        const doc =
          name === undefined ? { apiVersion: 'v1', kind: 'List', items: objects } : objects[0];
        ctx.io.stdout(await formatStructured(doc, output));
        return;
      }
      if (objects.length === 0) {
        const where = info.namespaced && !all ? ` in ${namespace ?? 'default'} namespace` : '';
        ctx.io.stderr(`No resources found${where}.\n`);
        return;
      }
      const { formatTable } = await import('../registry/printers.js');
      ctx.io.stdout(formatTable(info, objects, { allNamespaces: all }));
    });

  connectionOptions(
    program
      .command('delete')
      .description('delete registry objects by manifest or by kind and name (local mode)')
      .argument('[kind]', 'kind, e.g. ciliumnodes, svc')
      .argument('[names...]', 'object names')
      .option(
        '-f, --filename <path>',
        'delete the objects of these manifests (file, directory, or - for stdin)',
        collect,
      )
      .option('-n, --namespace <ns>', 'namespace (default: default)')
      .option('--ignore-not-found', 'treat missing objects as deleted'),
  )
    .addHelpText(
      'after',
      `
Prints one '<kind> "<name>" deleted' line per object. Missing objects fail the command
(exit 1) after the others are deleted, unless --ignore-not-found.
${KINDS_HELP}
${CONNECTION_HELP}`,
    )
    .action(
      async (
        kindArg: string | undefined,
        names: readonly string[],
        opts: DeleteOptions,
        cmd: Command,
      ) => {
        const { output } = globalOptions(cmd);
        const files = opts.filename ?? [];
        if (files.length > 0 && kindArg !== undefined) {
          usageError(cmd, 'give either -f FILE or KIND NAME, not both');
        }
        if (files.length === 0 && kindArg === undefined) {
          usageError(cmd, 'you must provide one or more resources by argument or filename');
        }
        if (kindArg !== undefined && names.length === 0) {
          usageError(cmd, 'resource(s) were provided, but no name was specified');
        }
        const { resolveKind } = await loadRegistryCli();
        let targets: { info: KindInfo; ns?: string; name: string }[];
        if (kindArg !== undefined) {
          const info = resolveKind(kindArg);
          const ns = info.namespaced ? (opts.namespace ?? 'default') : undefined;
          targets = names.map((name) => ({ info, ns, name }));
        } else {
          const { loadManifests } = await import('../registry/manifest.js');
          const loaded = await loadManifests(files, {
            namespace: opts.namespace,
            identityOnly: true,
          });
          if (loaded.length === 0) {
            throw new ClusterMeshError(ErrorCode.InvalidArgument, 'no objects passed to delete');
          }
          targets = loaded.map((l) => ({
            info: l.info,
            ns: l.object.metadata.namespace,
            name: l.object.metadata.name,
          }));
        }
        const { describeObject } = await import('../registry/codec.js');
        const deleted = await withRegistry(cmd, opts, async (registry) => {
          const out: boolean[] = [];
          for (const t of targets) out.push(await registry.delete(t.info, t.ns, t.name));
          return out;
        });
        if (output !== 'text') {
          const out = targets.map((t, i) => ({
            kind: t.info.kind,
            namespace: t.ns,
            name: t.name,
            deleted: deleted[i] === true,
          }));
          ctx.io.stdout(await formatStructured(out, output));
        } else {
          ctx.io.stdout(
            targets
              .filter((_, i) => deleted[i] === true)
              .map((t) => `${t.info.singular} ${JSON.stringify(t.name)} deleted\n`)
              .join(''),
          );
        }
        const missing = targets.filter((_, i) => deleted[i] !== true);
        const [first] = missing;
        if (first !== undefined && opts.ignoreNotFound !== true) {
          const more = missing.length > 1 ? ` (and ${missing.length - 1} more)` : '';
          throw new ClusterMeshError(
            ErrorCode.KeyNotFound,
            `${describeObject(first.info, first.name)} not found${more}`,
          );
        }
      },
    );
}

function connectionOptions(cmd: Command): Command {
  return addKvstoreOptions(cmd)
    .option('--cluster <name>', 'a cluster of the running local mesh (clustermesh up)')
    .option('--state-dir <dir>', 'state directory of the running local mesh', '.clustermesh')
    .addOption(
      new Option(
        '--timeout <duration>',
        'give up when the kvstore has not answered within this (e.g. 500ms, 5s; default: 5s)',
      ).argParser(parseDuration),
    );
}

/**
 * The registry: a running mesh's (`--cluster NAME`, through the control API in its
 * mesh.json, whatever its kvstore), or the one in the kvstore named by --kvstore-opt.
 */
async function withRegistry<T>(
  cmd: Command,
  opts: ConnectionOptions,
  fn: (registry: RegistryAccess) => Promise<T>,
): Promise<T> {
  if (opts.cluster !== undefined) {
    if (opts.kvstoreOpt !== undefined || opts.kvstore !== undefined) {
      usageError(cmd, 'give either --cluster or --kvstore/--kvstore-opt, not both');
    }
    const { readMeshState, clusterOf } = await import('../localmesh/mesh-state.js');
    const { MeshControlClient } = await import('./mesh-client.js');
    const state = await readMeshState(opts.stateDir);
    const client = new MeshControlClient(state.control, clusterOf(state, opts.cluster).name);
    return fn({
      apply: (objects) => client.apply(objects),
      get: async (info, namespace, name) => (await client.objects(info.kind, namespace, name))[0],
      list: (info, namespace) => client.objects(info.kind, namespace),
      delete: async (info, namespace, name) =>
        (await client.delete([{ kind: info.kind, namespace, name }]))[0] === true,
    });
  }
  const { withKvstore } = await import('./kvstore-client.js');
  const { Registry, applyOutcome } = await import('../registry/registry.js');
  const connect: OpenKvstoreOptions = {
    kvstore: opts.kvstore,
    kvstoreOpt: opts.kvstoreOpt,
    connectTimeoutMs: opts.timeout,
  };
  return withKvstore(connect, (backend: Backend) => {
    const registry = new Registry(backend);
    return fn({
      apply: async (objects) => (await registry.apply(objects)).map(applyOutcome),
      get: (info, namespace, name) => registry.get(info, namespace, name),
      list: (info, namespace) => registry.list(info, namespace),
      delete: (info, namespace, name) => registry.delete(info, namespace, name),
    });
  });
}

async function loadRegistryCli(): Promise<{
  resolveKind: (text: string) => KindInfo;
}> {
  const { resolveKindName, KINDS } = await import('../registry/kinds.js');
  return {
    resolveKind: (text) => {
      const info = resolveKindName(text);
      if (info === undefined) {
        const known = KINDS.map((k) => k.resource).join(', ');
        throw new ClusterMeshError(
          ErrorCode.InvalidArgument,
          `unknown resource type ${JSON.stringify(text)} (known: ${known})`,
        );
      }
      return info;
    },
  };
}
