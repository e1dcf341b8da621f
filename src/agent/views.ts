import type { IdentityCache } from '../identity/cache.js';
import type { IPCache } from '../ipcache/ipcache.js';
import type { NodeManager } from '../node/manager.js';
import type { ServiceTable } from '../service/table.js';

/** The agent's merged views of every cluster: what local and remote watchers feed. */
export interface AgentViews {
  readonly nodes: NodeManager;
  readonly identities: IdentityCache;
  readonly ipcache: IPCache;
  readonly services: ServiceTable;
}
