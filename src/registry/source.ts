import type { Backend } from '../kvstore/backend.js';
import { createInformer, type InformerOptions } from './informer.js';
import type { KindName, KindTypes } from './objects.js';
import type { ApplyResult, Registry } from './registry.js';
import type { Informer, InformerHandlers, RegistryObject } from './types.js';

/**
 * Where a daemon reads the cluster's objects from: the registry in the cluster's kvstore
 * (local mode) or a Kubernetes API server (Kubernetes mode, src/kubesource/). Domain code
 * asks for informers and does not know which one it reads.
 */
export interface ObjectSource {
  /** `registry` or `kubernetes`, for logs and status. */
  readonly mode: 'registry' | 'kubernetes';
  informer<K extends KindName>(
    kind: K,
    handlers: InformerHandlers<KindTypes[K]>,
    opts?: InformerOptions,
  ): Informer<KindTypes[K]>;
}

/** The registry stored in `backend` (`registry/<resource>/…` keys). */
export function registryObjects(backend: Backend): ObjectSource {
  return {
    mode: 'registry',
    informer: (kind, handlers, opts) => createInformer(backend, kind, handlers, opts),
  };
}

/**
 * Where a daemon writes the objects Cilium writes back (the operator's ServiceImports,
 * derived Services, MCS EndpointSlices, ServiceExport conditions): the registry, or the
 * Kubernetes API (src/kubesource/writer.ts). The same contract as the registry's own
 * calls, so domain code does not know which one it writes.
 */
export interface ObjectWriter {
  readonly mode: 'registry' | 'kubernetes';
  /** Create-or-update, `kubectl apply` style: an input without status keeps the stored one. */
  apply(objects: readonly RegistryObject[]): Promise<ApplyResult[]>;
  /** Whether the object existed (an absent one is not an error). */
  delete(kind: KindName, namespace: string | undefined, name: string): Promise<boolean>;
  /**
   * Read-modify-write, retried on conflict: `fn` gets a copy and returns the new object or
   * `undefined` for "no change". Resolves to `undefined` when the object does not exist.
   */
  patch<K extends KindName>(
    kind: K,
    namespace: string | undefined,
    name: string,
    fn: (current: KindTypes[K]) => KindTypes[K] | undefined,
  ): Promise<KindTypes[K] | undefined>;
}

export function registryWriter(registry: Registry): ObjectWriter {
  return {
    mode: 'registry',
    apply: (objects) => registry.apply(objects),
    delete: (kind, namespace, name) => registry.delete(kind, namespace, name),
    patch: (kind, namespace, name, fn) => registry.patch(kind, namespace, name, fn),
  };
}
