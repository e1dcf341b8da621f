import { ErrorCode, isClusterMeshError } from '../lib/errors.js';
import { sameJson } from '../registry/codec.js';
import type { Pod } from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type {
  CiliumEndpoint,
  Informer,
  OwnerReference,
  RegistryObject,
} from '../registry/types.js';
import type { AllocatedIdentity } from './identity-allocator.js';
import type { RuntimeNode } from './nodes.js';

/**
 * CiliumEndpoints, one per running pod (same namespace and name), which the apiserver
 * turns into ipcache entries: pod IP → identity, host IP, encryption key, named ports.
 */

/** Cilium's endpoint IDs are per node, 1..4095. */
const MAX_ENDPOINT_ID = 4095;

/** Per-node endpoint IDs, lowest free first; rebuilt from the CiliumEndpoints at start. */
export class EndpointIds {
  private readonly used = new Map<string, Set<number>>();
  private readonly owners = new Map<string, { readonly node: string; readonly id: number }>();

  /** The owner's ID on `node`: the one it holds, else `preferred` when free, else the lowest free. */
  allocate(owner: string, node: string, preferred?: number): number | undefined {
    const held = this.owners.get(owner);
    if (held?.node === node) return held.id;
    this.release(owner);
    let ids = this.used.get(node);
    if (ids === undefined) {
      ids = new Set();
      this.used.set(node, ids);
    }
    let id: number | undefined;
    if (
      preferred !== undefined &&
      preferred >= 1 &&
      preferred <= MAX_ENDPOINT_ID &&
      !ids.has(preferred)
    ) {
      id = preferred;
    } else {
      for (let n = 1; n <= MAX_ENDPOINT_ID && id === undefined; n++) if (!ids.has(n)) id = n;
    }
    if (id === undefined) return undefined;
    ids.add(id);
    this.owners.set(owner, { node, id });
    return id;
  }

  release(owner: string): void {
    const held = this.owners.get(owner);
    if (held === undefined) return;
    this.owners.delete(owner);
    this.used.get(held.node)?.delete(held.id);
  }
}

export function podOwnerReference(pod: Pod): OwnerReference {
  return { apiVersion: 'v1', kind: 'Pod', name: pod.metadata.name, uid: pod.metadata.uid ?? '' };
}

/** Whether the runtime wrote this object for a pod (it deletes only those). */
export function isOwnedByPod(obj: RegistryObject): boolean {
  return obj.metadata.ownerReferences?.some((r) => r.kind === 'Pod') === true;
}

export interface EndpointState {
  readonly pod: Pod;
  readonly node: RuntimeNode;
  readonly ip: string;
  readonly endpointId: number;
  readonly identity: AllocatedIdentity;
}

export function desiredEndpoint(s: EndpointState): CiliumEndpoint {
  const namedPorts = s.pod.spec.containers.flatMap((c) =>
    (c.ports ?? []).flatMap((p) =>
      p.name === undefined ? [] : [{ name: p.name, port: p.containerPort, protocol: p.protocol }],
    ),
  );
  return {
    apiVersion: 'cilium.io/v2',
    kind: 'CiliumEndpoint',
    metadata: {
      name: s.pod.metadata.name,
      namespace: s.pod.metadata.namespace ?? 'default',
      ...(s.pod.metadata.labels === undefined ? {} : { labels: s.pod.metadata.labels }),
      ownerReferences: [podOwnerReference(s.pod)],
    },
    status: {
      id: s.endpointId,
      identity: { id: s.identity.id, labels: s.identity.labels },
      networking: { addressing: [{ ipv4: s.ip }], node: s.node.ip },
      encryption: { key: 0 },
      ...(namedPorts.length === 0 ? {} : { 'named-ports': namedPorts }),
      state: 'ready',
    },
  };
}

/** Creates or updates the endpoint unless the cached copy already matches. */
export async function writeEndpoint(
  registry: Registry,
  cache: Informer<CiliumEndpoint>,
  want: CiliumEndpoint,
): Promise<void> {
  const { name, namespace } = want.metadata;
  const cached = cache.get(namespace, name);
  if (cached !== undefined && sameEndpoint(cached, want)) return;
  for (let attempt = 0; ; attempt++) {
    const patched = await registry.patch('CiliumEndpoint', namespace, name, (cur) =>
      sameEndpoint(cur, want)
        ? undefined
        : {
            ...cur,
            metadata: {
              ...cur.metadata,
              labels: want.metadata.labels,
              ownerReferences: want.metadata.ownerReferences,
            },
            status: want.status,
          },
    );
    if (patched !== undefined) return;
    try {
      await registry.create(want);
      return;
    } catch (err) {
      // Created meanwhile: update it on the next round.
      if (!isClusterMeshError(err, ErrorCode.Conflict) || attempt > 0) throw err;
    }
  }
}

/** Deletes the pod's endpoint if the runtime wrote it (never one a user applied by hand). */
export async function deleteEndpoint(
  registry: Registry,
  namespace: string,
  name: string,
): Promise<void> {
  const cur = await registry.get('CiliumEndpoint', namespace, name);
  if (cur !== undefined && isOwnedByPod(cur))
    await registry.delete('CiliumEndpoint', namespace, name);
}

function sameEndpoint(a: CiliumEndpoint, b: CiliumEndpoint): boolean {
  return (
    sameJson(a.status, b.status) &&
    sameJson(a.metadata.labels, b.metadata.labels) &&
    sameJson(a.metadata.ownerReferences, b.metadata.ownerReferences)
  );
}
