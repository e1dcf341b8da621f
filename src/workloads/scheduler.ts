import type { Pod } from '../registry/objects.js';
import type { RuntimeNode } from './nodes.js';

/**
 * Where a pod runs. The binding is `spec.nodeName`, as in Kubernetes; a pod that has none
 * but whose status names a node's IP was bound before and its manifest re-applied (local
 * `apply` replaces the spec), so it stays where it runs instead of moving.
 */
export type Placement =
  | { readonly kind: 'bound'; readonly node: RuntimeNode }
  | { readonly kind: 'unbound' }
  | { readonly kind: 'unknown-node'; readonly nodeName: string };

export function placementOf(pod: Pod, nodes: readonly RuntimeNode[]): Placement {
  const name = pod.spec.nodeName;
  if (name !== undefined && name !== '') {
    const node = nodes.find((n) => n.name === name);
    return node === undefined ? { kind: 'unknown-node', nodeName: name } : { kind: 'bound', node };
  }
  const hostIP = pod.status?.hostIP;
  const previous = hostIP === undefined ? undefined : nodes.find((n) => n.ip === hostIP);
  return previous === undefined ? { kind: 'unbound' } : { kind: 'bound', node: previous };
}

/** The node with the fewest pods; ties go to the earlier node in the list. */
export function pickNode(
  nodes: readonly RuntimeNode[],
  load: (node: string) => number,
): RuntimeNode | undefined {
  let best: RuntimeNode | undefined;
  let bestLoad = Infinity;
  for (const n of nodes) {
    const l = load(n.name);
    if (l < bestLoad) {
      best = n;
      bestLoad = l;
    }
  }
  return best;
}
