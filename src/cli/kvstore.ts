import { Option, type Command } from 'commander';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  addKvstoreOptions,
  commandGroup,
  formatStructured,
  globalOptions,
  parseDuration,
  stateDirOption,
  usageError,
  type CliContext,
  type KvstoreCliOptions,
} from './common.js';
import type { OpenKvstoreOptions } from './kvstore-client.js';

/**
 * `clustermesh kvstore get|set|delete`: raw key access for debugging, in the format of the
 * reference's `cilium-dbg kvstore get` (`<key> => <value>` per line).
 */

interface KvstoreCommandOptions extends KvstoreCliOptions {
  readonly timeout?: number | undefined;
  readonly cluster?: string | undefined;
  readonly stateDir: string;
  readonly recursive?: boolean | undefined;
}

interface KeyValueOut {
  readonly key: string;
  readonly value: string;
}

const CONNECTION_HELP = `
Connection:
  --kvstore-opt etcd.address=http://127.0.0.1:2379   plain etcd endpoint(s), comma separated
  --kvstore-opt etcd.config=FILE                     etcd client YAML (endpoints, trusted-ca-file,
                                                     cert-file, key-file), TLS included
  --cluster NAME [--state-dir DIR]                   a cluster of the running local mesh, as
                                                     its admin (credentials from the state dir)
  The first round trip must complete within --timeout (default 5s).`;

export function registerKvstoreCommands(program: Command, ctx: CliContext): void {
  const kvstore = commandGroup(program, 'kvstore', 'read and write raw kvstore keys (debugging)');

  addCommonOptions(
    kvstore
      .command('get')
      .description('print a key, or every key under a prefix with --recursive')
      .argument('<key>', 'key, or key prefix with --recursive')
      .option('-r, --recursive', 'print every key starting with <key>, in key order'),
  )
    .addHelpText(
      'after',
      `
Output: one "<key> => <value>" line per key; -o json prints {"key","value"} (an array with
--recursive), -o yaml the same as YAML. A missing key is an error (exit 1); a prefix with no
keys under it prints nothing and succeeds.
${CONNECTION_HELP}`,
    )
    .action(async (key: string, opts: KvstoreCommandOptions, cmd: Command) => {
      const { output } = globalOptions(cmd);
      const { withKvstore } = await import('./kvstore-client.js');
      const found = await withKvstore(connectOptions(opts), async (backend) => {
        if (opts.recursive === true) {
          const { kvs } = await backend.list(key);
          return kvs.map((kv): KeyValueOut => ({ key: kv.key, value: kv.value }));
        }
        const kv = await backend.get(key);
        if (kv === undefined) {
          throw new ClusterMeshError(ErrorCode.KeyNotFound, `key ${key} is not found`);
        }
        return { key: kv.key, value: kv.value };
      });
      if (output !== 'text') {
        ctx.io.stdout(await formatStructured(found, output));
        return;
      }
      const lines = (Array.isArray(found) ? found : [found]).map(
        (kv) => `${kv.key} => ${kv.value}\n`,
      );
      if (lines.length > 0) ctx.io.stdout(lines.join(''));
    });

  addCommonOptions(
    kvstore
      .command('set')
      .description('write a key (no lease: it stays until deleted)')
      .argument('<key>', 'key')
      .argument('<value>', 'value, stored verbatim'),
  )
    .addHelpText('after', CONNECTION_HELP)
    .action(async (key: string, value: string, opts: KvstoreCommandOptions) => {
      const { withKvstore } = await import('./kvstore-client.js');
      await withKvstore(connectOptions(opts), (backend) => backend.put(key, value));
    });

  addCommonOptions(
    kvstore
      .command('delete')
      .description('delete a key, or every key under a prefix with --recursive')
      .argument('<key>', 'key, or key prefix with --recursive')
      .option('-r, --recursive', 'delete every key starting with <key>'),
  )
    .addHelpText(
      'after',
      `
Deleting a missing key succeeds. Prints nothing; -o json|yaml prints {"deleted": <count>}.
${CONNECTION_HELP}`,
    )
    .action(async (key: string, opts: KvstoreCommandOptions, cmd: Command) => {
      const { output } = globalOptions(cmd);
      // An empty prefix would wipe the whole kvstore, the other clusters' data included.
      if (key === '') usageError(cmd, 'key must not be empty');
      const { withKvstore } = await import('./kvstore-client.js');
      const deleted = await withKvstore(connectOptions(opts), async (backend) =>
        opts.recursive === true ? backend.deletePrefix(key) : Number(await backend.delete(key)),
      );
      if (output !== 'text') ctx.io.stdout(await formatStructured({ deleted }, output));
    });
}

function addCommonOptions(cmd: Command): Command {
  return addKvstoreOptions(cmd)
    .addOption(
      new Option(
        '--timeout <duration>',
        'give up when the kvstore has not answered within this (e.g. 500ms, 5s; default: 5s)',
      ).argParser(parseDuration),
    )
    .option('--cluster <name>', 'a cluster of the running local mesh (its etcd, as admin)')
    .addOption(stateDirOption());
}

function connectOptions(opts: KvstoreCommandOptions): OpenKvstoreOptions {
  return {
    kvstore: opts.kvstore,
    kvstoreOpt: opts.kvstoreOpt,
    connectTimeoutMs: opts.timeout,
    cluster: opts.cluster,
    stateDir: opts.stateDir,
  };
}
