import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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

/**
 * The real kubectl against `kubeconfig`, with HOME and its discovery cache in `dir`;
 * `input`, when given, is written to a file in `dir` and passed as `-f`. Its stdout; a
 * non-zero exit throws.
 */
export async function kubectlIn(
  dir: string,
  kubeconfig: string,
  args: readonly string[],
  input?: string,
): Promise<string> {
  const file = join(dir, `in-${Math.random().toString(36).slice(2)}.yaml`);
  if (input !== undefined) await writeFile(file, input);
  const { stdout } = await run(
    'kubectl',
    [
      '--kubeconfig',
      kubeconfig,
      '--cache-dir',
      join(dir, 'cache'),
      ...args,
      ...(input === undefined ? [] : ['-f', file]),
    ],
    { env: { ...process.env, HOME: dir }, timeout: 30_000 },
  );
  return stdout;
}
