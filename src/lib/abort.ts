import { ClusterMeshError, ErrorCode, toError } from './errors.js';

/** Resolves after `ms`, or rejects with ERR_ABORTED when `signal` fires. Leaves no timer behind. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted === true) {
      reject(abortError(signal));
      return;
    }
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(abortError(signal));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export function abortError(signal?: AbortSignal): ClusterMeshError {
  const reason: unknown = signal?.reason;
  return new ClusterMeshError(
    ErrorCode.Aborted,
    reason instanceof Error ? reason.message : 'operation aborted',
  );
}

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted === true) throw abortError(signal);
}

/** Resolves when `signal` aborts (never rejects). */
export function aborted(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    signal.addEventListener(
      'abort',
      () => {
        resolve();
      },
      { once: true },
    );
  });
}

/** Reads the flag through a call: the compiler would otherwise keep it narrowed across awaits. */
export function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

/** Settles with `promise` unless `ms` passes first (rejects with ERR_TIMEOUT naming `what`). */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return bounded(promise, undefined, ms, what);
}

/**
 * Settles with `promise`, unless `signal` aborts first (rejects with ERR_ABORTED) or
 * `timeoutMs` passes (rejects with ERR_TIMEOUT naming `what`). Either way its timer
 * and abort listener go, so a stopped caller leaves nothing behind while a backend
 * call hangs.
 */
export function bounded<T>(
  promise: Promise<T>,
  signal: AbortSignal | undefined,
  timeoutMs?: number,
  what = 'operation',
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted === true) {
      // The abandoned promise may still reject later: keep that from being unhandled.
      promise.catch(() => undefined);
      reject(abortError(signal));
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      cleanup();
      reject(abortError(signal));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
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
