/**
 * What each container of the cluster's pods wrote: a ring buffer of lines per container,
 * with followers (`kubectl logs -f`). Local mode has no container runtime to keep logs, so
 * the workloads write here; a pod's logs go when the pod is deleted.
 */

/** Lines kept per container (the oldest go first). */
export const POD_LOG_LINES = 2000;

type Follower = (line: string) => void;

interface Buffer {
  readonly lines: string[];
  readonly followers: Set<Follower>;
}

export class PodLogs {
  private readonly buffers = new Map<string, Buffer>();

  constructor(private readonly limit = POD_LOG_LINES) {}

  private buffer(namespace: string, pod: string, container: string): Buffer {
    const key = `${namespace}/${pod}/${container}`;
    let b = this.buffers.get(key);
    if (b === undefined) {
      b = { lines: [], followers: new Set() };
      this.buffers.set(key, b);
    }
    return b;
  }

  /** Appends one line (a trailing newline is added when missing). */
  write(namespace: string, pod: string, container: string, line: string): void {
    const b = this.buffer(namespace, pod, container);
    const text = line.endsWith('\n') ? line : `${line}\n`;
    b.lines.push(text);
    if (b.lines.length > this.limit) b.lines.splice(0, b.lines.length - this.limit);
    for (const f of b.followers) f(text);
  }

  /** The last `tail` lines (all when undefined), each ending in a newline. */
  read(namespace: string, pod: string, container: string, tail?: number): string[] {
    const lines = this.buffers.get(`${namespace}/${pod}/${container}`)?.lines ?? [];
    return tail === undefined ? [...lines] : tail <= 0 ? [] : lines.slice(-tail);
  }

  /** Calls `onLine` for every line written from now on, until the returned function is called. */
  follow(namespace: string, pod: string, container: string, onLine: Follower): () => void {
    const b = this.buffer(namespace, pod, container);
    b.followers.add(onLine);
    return () => {
      b.followers.delete(onLine);
    };
  }

  /** Forgets a deleted pod's logs. */
  drop(namespace: string, pod: string): void {
    const prefix = `${namespace}/${pod}/`;
    for (const [k, b] of this.buffers) {
      if (k.startsWith(prefix) && b.followers.size === 0) this.buffers.delete(k);
    }
  }
}
