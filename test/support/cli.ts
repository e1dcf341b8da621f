import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { runCli } from '../../src/cli/program.js';
import type { CliIo } from '../../src/cli/common.js';

const run = promisify(execFile);

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

/**
 * Runs a program (the CLI's binary, etcdctl, …) as a user would, quietly (`LOG_LEVEL=silent`,
 * etcdctl's v3 API): its exit code and output, a failure included, instead of a throw.
 */
export async function runProgram(
  cmd: string,
  args: readonly string[],
  cwd: string,
  timeoutMs = 90_000,
): Promise<CapturedRun> {
  try {
    const { stdout, stderr } = await run(cmd, args, {
      env: { ...process.env, LOG_LEVEL: 'silent', ETCDCTL_API: '3' },
      cwd,
      timeout: timeoutMs,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return {
      code: typeof e.code === 'number' ? e.code : 1,
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? '',
    };
  }
}
