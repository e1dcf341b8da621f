/**
 * Fault injection of an agent (local mesh only: tests, benches, troubleshooting drills).
 * Wrappers over a remote cluster's kvstore client that let the agent's view diverge from
 * the remote, or cut the remote off as a network partition would: calls and watch events
 * are held (not failed) until the partition heals, so timeouts fire as they would on a
 * blackholed connection.
 */
import type { Backend, ListAndWatchOptions, WatchEvent } from '../kvstore/backend.js';
import type { RemoteBackendFactory } from '../clustermesh/backend-factory.js';

/**
 * `backend` with `listAndWatch` replaced. A Proxy that binds every other method to the
 * original object, so a backend keeping private state never sees `this` swapped.
 */
export function withListAndWatch(
  backend: Backend,
  listAndWatch: Backend['listAndWatch'],
  gate?: () => Promise<void>,
): Backend {
  return new Proxy(backend, {
    get(target, prop) {
      if (prop === 'listAndWatch') return listAndWatch;
      const v: unknown = Reflect.get(target, prop, target);
      if (typeof v !== 'function') return v;
      const fn = v as (...args: unknown[]) => unknown;
      if (gate === undefined || prop === 'status' || prop === 'close' || prop === 'kind') {
        return fn.bind(target);
      }
      return (...args: unknown[]): unknown => {
        const r = fn.apply(target, args);
        if (!(r instanceof Promise)) return r;
        // Held until the gate opens: the answer was "lost in the network" meanwhile.
        return gate().then(() => r);
      };
    },
  });
}

/** Holds calls and events to the partitioned remotes until `heal`. */
export class Partitions {
  private readonly blocked = new Map<string, { promise: Promise<void>; open: () => void }>();

  partition(remote: string): void {
    if (this.blocked.has(remote)) return;
    let open: () => void = () => undefined;
    const promise = new Promise<void>((resolve) => {
      open = resolve;
    });
    this.blocked.set(remote, { promise, open });
  }

  heal(remote: string): void {
    const b = this.blocked.get(remote);
    this.blocked.delete(remote);
    b?.open();
  }

  isPartitioned(remote: string): boolean {
    return this.blocked.has(remote);
  }

  list(): string[] {
    return [...this.blocked.keys()].sort();
  }

  /** Resolves at once, or when `remote`'s partition heals. */
  gate(remote: string): Promise<void> {
    return this.blocked.get(remote)?.promise ?? Promise.resolve();
  }

  /** A factory whose backends go through the gate of the cluster they connect to. */
  wrap(factory: RemoteBackendFactory): RemoteBackendFactory {
    return async (req) => {
      const backend = await factory(req);
      const remote = req.clusterName;
      const gate = (): Promise<void> => this.gate(remote);
      const inner = backend.listAndWatch.bind(backend);
      async function* held(
        prefix: string,
        signal: AbortSignal,
        opts?: ListAndWatchOptions,
      ): AsyncGenerator<WatchEvent> {
        for await (const ev of inner(prefix, signal, opts)) {
          await gate();
          yield ev;
        }
      }
      return withListAndWatch(backend, held, gate);
    };
  }
}
