import { abortError } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

/** Any thrown value as an Error, so it can be an abort reason and a status text. */
export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/**
 * Settles with `promise`, unless `signal` aborts first (rejects with ERR_ABORTED) or
 * `timeoutMs` passes (rejects with ERR_TIMEOUT naming `what`). Unlike
 * lib/abort.withTimeout it also clears its timer when aborted, so a stopped
 * controller never leaves a timer behind while a backend call hangs.
 */
export function bounded<T>(
  promise: Promise<T>,
  signal: AbortSignal,
  timeoutMs?: number,
  what = 'operation',
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) {
      // The abandoned promise may still reject later: keep that from being unhandled.
      promise.catch(() => undefined);
      reject(abortError(signal));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(abortError(signal));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs !== undefined) {
      timer = setTimeout(() => {
        cleanup();
        reject(new ClusterMeshError(ErrorCode.Timeout, `${what} timed out after ${timeoutMs}ms`));
      }, timeoutMs);
    }
    promise.then(
      (v) => {
        cleanup();
        resolve(v);
      },
      (err: unknown) => {
        cleanup();
        reject(toError(err));
      },
    );
  });
}

/** Reads the flag through a call: the compiler would otherwise keep it narrowed across awaits. */
export function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** A promise with its resolver exposed (Promise.withResolvers is Node 22+). */
export interface Deferred<T> {
  readonly promise: Promise<T>;
  resolve(value: T): void;
}

export function deferred<T>(): Deferred<T> {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}
