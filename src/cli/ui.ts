import type { Command } from 'commander';
import { globalOptions, stateDirOption, type CliContext } from './common.js';

/**
 * `clustermesh ui`: the address of the running mesh's browser view (mesh.json's `ui`),
 * opened in a browser when a desktop opener exists; `--serve` runs a view of its own
 * against a running mesh (a mesh started by an older version, or another port).
 */
export function registerUiCommands(program: Command, ctx: CliContext): void {
  program
    .command('ui')
    .description("print the address of the running mesh's browser view, and open it if possible")
    .addOption(stateDirOption())
    .option('--no-open', 'only print the address, never start a browser')
    .option('--serve', 'serve a browser view of the running mesh from this process')
    .option('--addr <host:port>', 'with --serve: where to listen', '127.0.0.1:0')
    .addHelpText(
      'after',
      `
clustermesh up serves the view on a loopback port, printed at start and recorded in
<state-dir>/mesh.json as "ui". It reads what the CLI reads (mesh.json, the agents' APIs,
the control API): the mesh map (status), global services (service list), flows (observe)
and policies (policy get/trace). A browser is started only when a desktop session has an
opener (xdg-open, or open on macOS); otherwise the address is printed alone.`,
    )
    .action(
      async (
        opts: { stateDir: string; open: boolean; serve?: boolean; addr: string },
        cmd: Command,
      ) => {
        const { output } = globalOptions(cmd);
        if (opts.serve === true) {
          const [{ startUiServer }, { createLogger }, { untilSignal }] = await Promise.all([
            import('../ui/server.js'),
            import('../lib/logger.js'),
            import('../lib/lifecycle.js'),
          ]);
          const log = createLogger();
          if (process.env.LOG_LEVEL === undefined) log.level = 'warn';
          const server = await startUiServer({ stateDir: opts.stateDir, log, addr: opts.addr });
          ctx.io.stdout(`${server.url}/\n`);
          await untilSignal();
          await server.close();
          return;
        }
        const { readMeshState } = await import('../localmesh/mesh-state.js');
        const state = await readMeshState(opts.stateDir);
        if (state.ui === undefined) {
          const { ClusterMeshError, ErrorCode } = await import('../lib/errors.js');
          throw new ClusterMeshError(
            ErrorCode.ConfigNotFound,
            'the running mesh serves no browser view (started by an older version): run "clustermesh ui --serve"',
          );
        }
        const url = `${state.ui}/`;
        if (output === 'json') ctx.io.stdout(`${JSON.stringify({ url })}\n`);
        else ctx.io.stdout(`${url}\n`);
        if (opts.open) await tryOpen(url);
      },
    );
}

/** Starts the desktop's browser when there is one; never fails the command. */
async function tryOpen(url: string): Promise<void> {
  const desktop =
    process.platform === 'darwin' ||
    (process.env.DISPLAY ?? '') !== '' ||
    (process.env.WAYLAND_DISPLAY ?? '') !== '';
  if (!desktop) return;
  const opener = process.platform === 'darwin' ? 'open' : 'xdg-open';
  const [{ spawn }, { access }, path] = await Promise.all([
    import('node:child_process'),
    import('node:fs/promises'),
    import('node:path'),
  ]);
  let found: string | undefined;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir === '') continue;
    try {
      await access(path.join(dir, opener));
      found = path.join(dir, opener);
      break;
    } catch {
      // Not in this directory.
    }
  }
  if (found === undefined) return;
  try {
    const child = spawn(found, [url], { stdio: 'ignore', detached: true });
    child.on('error', () => undefined);
    child.unref();
  } catch {
    // The address is printed; a browser that does not start is not an error.
  }
}
