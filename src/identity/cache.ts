import { formatLabel, type Label } from '../keyspace/index.js';

export interface CachedIdentity {
  readonly id: number;
  /** `source:key=value` strings, sorted. */
  readonly labels: readonly string[];
  /** Cluster the identity came from (`undefined` for reserved identities). */
  readonly cluster?: string | undefined;
}

export type IdentityListener = (event: 'upsert' | 'delete', identity: CachedIdentity) => void;

/**
 * Numeric identity → labels, for local and remote identities alike (remote ones
 * live in their cluster's ID range, so IDs never collide between valid clusters).
 */
export class IdentityCache {
  private readonly byId = new Map<number, CachedIdentity>();
  private readonly listeners = new Set<IdentityListener>();

  upsert(id: number, labels: readonly Label[], cluster?: string): void {
    const formatted = labels.map(formatLabel).sort();
    const prev = this.byId.get(id);
    if (prev !== undefined && prev.cluster === cluster && sameList(prev.labels, formatted)) return;
    const entry: CachedIdentity = { id, labels: formatted, cluster };
    this.byId.set(id, entry);
    for (const l of this.listeners) l('upsert', entry);
  }

  delete(id: number): void {
    const prev = this.byId.get(id);
    if (prev === undefined) return;
    this.byId.delete(id);
    for (const l of this.listeners) l('delete', prev);
  }

  get(id: number): CachedIdentity | undefined {
    return this.byId.get(id);
  }

  list(): CachedIdentity[] {
    return [...this.byId.values()].sort((a, b) => a.id - b.id);
  }

  countForCluster(cluster: string): number {
    let n = 0;
    for (const e of this.byId.values()) if (e.cluster === cluster) n++;
    return n;
  }

  onChange(listener: IdentityListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
