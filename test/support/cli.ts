import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/common.js';

export interface CapturedRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI in-process with its output captured: the unit tests' way to call a command. */
export async function runCliCaptured(argv: readonly string[]): Promise<CapturedRun> {
  let stdout = '';
  let stderr = '';
  const io: CliIo = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
  };
  const code = await runCli(argv, io);
  return { code, stdout, stderr };
}
