import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

/**
 * Cluster-ID uniqueness among the remote clusters one process connects to
 * (reference `pkg/clustermesh/common/idsmgr.go`). Two remotes claiming the same ID
 * would make their identities and ipcache entries indistinguishable, so the second
 * connection is refused (and keeps being retried, so it recovers once the conflict
 * is resolved). Error texts are the reference's.
 */
export class ClusterIdsManager {
  /** clusterID → remote cluster name holding it. */
  private readonly byId = new Map<number, string>();
  /** remote cluster name → clusterID it holds. */
  private readonly byName = new Map<string, number>();

  constructor(private readonly localClusterId: number) {}

  /**
   * Reserves `id` for `name`. Idempotent for the same pair; a name holding another
   * ID moves to the new one (its old ID is freed only when the new one is granted).
   */
  reserve(name: string, id: number): void {
    if (id === 0) {
      throw new ClusterMeshError(ErrorCode.InvalidConfig, 'clusterID 0 is reserved');
    }
    if (id === this.localClusterId) {
      throw new ClusterMeshError(
        ErrorCode.InvalidConfig,
        `clusterID ${id} is assigned to the local cluster`,
      );
    }
    const holder = this.byId.get(id);
    if (holder === name) return;
    if (holder !== undefined) {
      throw new ClusterMeshError(ErrorCode.InvalidConfig, `clusterID ${id} is already used`);
    }
    this.release(name);
    this.byId.set(id, name);
    this.byName.set(name, id);
  }

  /** Frees the ID `name` holds, if any. */
  release(name: string): void {
    const id = this.byName.get(name);
    if (id === undefined) return;
    this.byName.delete(name);
    this.byId.delete(id);
  }

  /** The ID `name` holds. */
  idOf(name: string): number | undefined {
    return this.byName.get(name);
  }

  /** The remote cluster holding `id`. */
  holderOf(id: number): string | undefined {
    return this.byId.get(id);
  }
}
