import { runCli } from './cli/program.js';

// `clustermesh … | head` closes stdout early; that is not an error worth a stack trace.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

function flushed(stream: NodeJS.WriteStream): Promise<void> {
  return new Promise((resolve) => {
    stream.write('', () => {
      resolve();
    });
  });
}

const code = await runCli(process.argv.slice(2));
// Exit as soon as the output is out: a gRPC channel still dialling a dead etcd would otherwise
// keep a finished command alive. Commands that need cleanup do it before their action returns.
await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
process.exit(code);
