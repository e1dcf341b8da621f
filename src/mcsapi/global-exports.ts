import type { ClusterService, MCSAPIServiceSpec } from '../keyspace/index.js';
import { derivedServiceName } from './types.js';

/** `<namespace>/<name>`. */
export function nameKey(namespace: string, name: string): string {
  return `${namespace}/${name}`;
}

/**
 * What the operator knows of the other clusters: their exports (`namespace/name` →
 * cluster → spec) and, for headless imports, the endpoints of their derived Services.
 * Entries stay while a remote is unreachable (its WatchStore keeps them) and go only when
 * the remote deletes them or is removed, the rules of global services.
 */
export class GlobalExports {
  private readonly exports = new Map<string, Map<string, MCSAPIServiceSpec>>();
  /** Derived Service `namespace/name` → cluster → its ClusterService. */
  private readonly services = new Map<string, Map<string, ClusterService>>();
  private readonly listeners = new Set<(namespace: string, name: string) => void>();
  /** Derived Service `namespace/name` → the exported name it stands for. */
  private readonly owners = new Map<string, { namespace: string; name: string }>();

  /** Records the derived name of an exported name, so its endpoints find their import. */
  noteName(namespace: string, name: string): void {
    const key = nameKey(namespace, derivedServiceName(namespace, name));
    if (!this.owners.has(key)) this.owners.set(key, { namespace, name });
  }

  upsert(spec: MCSAPIServiceSpec): void {
    this.noteName(spec.namespace, spec.name);
    setIn(this.exports, nameKey(spec.namespace, spec.name), spec.cluster, spec);
    this.emit(spec.namespace, spec.name);
  }

  delete(cluster: string, namespace: string, name: string): void {
    if (deleteIn(this.exports, nameKey(namespace, name), cluster)) this.emit(namespace, name);
  }

  /** Remote exports of one name, by cluster. */
  specsOf(namespace: string, name: string): readonly MCSAPIServiceSpec[] {
    return [...(this.exports.get(nameKey(namespace, name))?.values() ?? [])];
  }

  /** Every name some remote cluster exports. */
  names(): { namespace: string; name: string }[] {
    return [...this.exports.values()].flatMap((m) => {
      const first = m.values().next().value;
      return first === undefined ? [] : [{ namespace: first.namespace, name: first.name }];
    });
  }

  /** Remote exports per cluster (status, metrics). */
  countByCluster(): Map<string, number> {
    const out = new Map<string, number>();
    for (const m of this.exports.values()) {
      for (const c of m.keys()) out.set(c, (out.get(c) ?? 0) + 1);
    }
    return out;
  }

  upsertService(cs: ClusterService): void {
    const key = nameKey(cs.namespace, cs.name);
    setIn(this.services, key, cs.cluster, cs);
    const owner = this.owners.get(key);
    if (owner !== undefined) this.emit(owner.namespace, owner.name);
  }

  deleteService(cluster: string, namespace: string, name: string): void {
    const key = nameKey(namespace, name);
    const owner = this.owners.get(key);
    if (deleteIn(this.services, key, cluster) && owner !== undefined) {
      this.emit(owner.namespace, owner.name);
    }
  }

  /** Every remote cluster's ClusterService of a derived Service. */
  servicesOf(namespace: string, derivedName: string): readonly ClusterService[] {
    return [...(this.services.get(nameKey(namespace, derivedName))?.values() ?? [])];
  }

  onChange(listener: (namespace: string, name: string) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(namespace: string, name: string): void {
    for (const l of this.listeners) l(namespace, name);
  }
}

function setIn<V>(m: Map<string, Map<string, V>>, key: string, cluster: string, v: V): void {
  let inner = m.get(key);
  if (inner === undefined) {
    inner = new Map();
    m.set(key, inner);
  }
  inner.set(cluster, v);
}

function deleteIn<V>(m: Map<string, Map<string, V>>, key: string, cluster: string): boolean {
  const inner = m.get(key);
  if (inner?.delete(cluster) !== true) return false;
  if (inner.size === 0) m.delete(key);
  return true;
}
