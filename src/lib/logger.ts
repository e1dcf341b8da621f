import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/**
 * Root logger. JSON to stderr so that stdout stays free for command output.
 * LOG_LEVEL selects the level (tests run with `silent`).
 */
export function createLogger(bindings: Record<string, unknown> = {}): Logger {
  return pino(
    { level: process.env.LOG_LEVEL ?? 'info', base: { pid: process.pid, ...bindings } },
    pino.destination({ fd: 2, sync: true }),
  );
}

let root: Logger | undefined;
export function rootLogger(): Logger {
  root ??= createLogger();
  return root;
}

/** A logger that drops everything: for libraries used without a logger. */
export const silentLogger: Logger = pino({ level: 'silent' });
