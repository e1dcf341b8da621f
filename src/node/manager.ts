import { encodeNode, nodeFullname, type Node } from '../keyspace/index.js';

export type NodeListener = (event: 'upsert' | 'delete', node: Node) => void;

/**
 * The agent's merged node list: local nodes (from the registry) and remote nodes
 * (from clustermesh), keyed `<cluster>/<name>` so equal names in two clusters
 * never collide.
 */
export class NodeManager {
  private readonly nodes = new Map<string, Node>();
  private readonly listeners = new Set<NodeListener>();

  upsert(node: Node): void {
    const key = `${node.Cluster}/${node.Name}`;
    const prev = this.nodes.get(key);
    if (prev !== undefined && encodeNode(prev) === encodeNode(node)) return;
    this.nodes.set(key, node);
    for (const l of this.listeners) l('upsert', node);
  }

  delete(cluster: string, name: string): void {
    const key = `${cluster}/${name}`;
    const prev = this.nodes.get(key);
    if (prev === undefined) return;
    this.nodes.delete(key);
    for (const l of this.listeners) l('delete', prev);
  }

  /** Sorted like `cilium node list`: by displayed name. */
  list(): Node[] {
    return [...this.nodes.values()].sort((a, b) =>
      nodeFullname(a) < nodeFullname(b) ? -1 : nodeFullname(a) > nodeFullname(b) ? 1 : 0,
    );
  }

  countForCluster(cluster: string): number {
    let n = 0;
    for (const node of this.nodes.values()) if (node.Cluster === cluster) n++;
    return n;
  }

  get size(): number {
    return this.nodes.size;
  }

  onChange(listener: NodeListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
