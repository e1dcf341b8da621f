import type { Logger } from 'pino';
import { EndpointTable } from '../endpoint/table.js';
import { IdentityCache } from '../identity/cache.js';
import { IPCache } from '../ipcache/ipcache.js';
import { NodeManager } from '../node/manager.js';
import { PolicyEnforcer } from '../policy/enforcer.js';
import { ServiceTable } from '../service/table.js';

/** The agent's merged views of every cluster: what local and remote watchers feed. */
export interface AgentViews {
  readonly nodes: NodeManager;
  readonly identities: IdentityCache;
  readonly ipcache: IPCache;
  readonly services: ServiceTable;
  /** The local cluster's endpoints (CiliumEndpoints), for policy and `endpoint list`. */
  readonly endpoints: EndpointTable;
  /** This node's policy state: the cluster's policies over every known identity. */
  readonly policy: PolicyEnforcer;
}

export interface AgentViewsOptions {
  readonly clusterName: string;
  readonly log: Logger;
  /** `--policy-default-local-cluster` (default true). */
  readonly policyDefaultLocalCluster?: boolean | undefined;
  /** Replaces the service table (tests that share one). */
  readonly services?: ServiceTable | undefined;
}

export function newAgentViews(o: AgentViewsOptions): AgentViews {
  return {
    nodes: new NodeManager(),
    identities: new IdentityCache(),
    ipcache: new IPCache(),
    services: o.services ?? new ServiceTable(o.clusterName, o.log),
    endpoints: new EndpointTable(),
    policy: new PolicyEnforcer({
      clusterName: o.clusterName,
      policyDefaultLocalCluster: o.policyDefaultLocalCluster,
      log: o.log,
    }),
  };
}
