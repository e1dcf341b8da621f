import type { Backend } from '../kvstore/backend.js';
import { createInformer, type InformerOptions } from './informer.js';
import type { KindName, KindTypes } from './objects.js';
import type { Informer, InformerHandlers } from './types.js';

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
