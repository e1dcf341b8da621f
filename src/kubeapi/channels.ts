/**
 * The channel framing of Kubernetes' remote-command WebSocket protocols: each binary
 * message starts with its channel byte. `v5.channel.k8s.io` adds the CLOSE channel (255),
 * by which the client half-closes stdin; `v4.channel.k8s.io` has no such signal.
 */

export const EXEC_PROTOCOLS = ['v5.channel.k8s.io', 'v4.channel.k8s.io'] as const;
export type ExecProtocol = (typeof EXEC_PROTOCOLS)[number];

export const Channel = {
  Stdin: 0,
  Stdout: 1,
  Stderr: 2,
  Error: 3,
  Resize: 4,
  Close: 255,
} as const;

/** The protocol the server speaks among those the client offers (best first), if any. */
export function pickProtocol(offered: Iterable<string>): ExecProtocol | undefined {
  const set = new Set([...offered].map((p) => p.trim()));
  return EXEC_PROTOCOLS.find((p) => set.has(p));
}

export function frame(channel: number, data: string | Buffer): Buffer {
  const body = typeof data === 'string' ? Buffer.from(data) : data;
  const out = Buffer.allocUnsafe(body.length + 1);
  out[0] = channel;
  body.copy(out, 1);
  return out;
}

export interface Frame {
  readonly channel: number;
  readonly data: Buffer;
}

/** `undefined` for an empty message (no channel byte: nothing to deliver). */
export function unframe(message: Buffer): Frame | undefined {
  if (message.length === 0) return undefined;
  return { channel: message[0] ?? 0, data: message.subarray(1) };
}

/**
 * The Status sent once on the error channel when the command ends: kubectl exits with the
 * code found in the `ExitCode` cause, and prints `command terminated with exit code N`.
 */
export function exitStatus(code: number): Record<string, unknown> {
  if (code === 0) return { metadata: {}, status: 'Success' };
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [exit ${code}], exit code ${code}`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

/** A Status for a failure to run the command at all (kubectl prints its message). */
export function execFailureStatus(message: string): Record<string, unknown> {
  return { metadata: {}, status: 'Failure', message, reason: 'InternalError', code: 500 };
}
