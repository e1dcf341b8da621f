import type { Logger } from 'pino';
import type { PolicyEnforcer } from '../policy/enforcer.js';
import type { PolicyKind, PolicyRef } from '../policy/rules.js';
import type { ObjectSource } from '../registry/source.js';

const POLICY_KINDS: readonly PolicyKind[] = [
  'CiliumNetworkPolicy',
  'CiliumClusterwideNetworkPolicy',
  'NetworkPolicy',
];

/**
 * Feeds the agent's policy enforcer with its own cluster's policies (CNP, CCNP and
 * NetworkPolicy), as Cilium's agent watches them: policies stay per cluster, while the
 * identities they select come from every cluster of the mesh.
 */
export class PolicyWatcher {
  private syncedKinds = 0;

  constructor(
    private readonly objects: ObjectSource,
    private readonly enforcer: PolicyEnforcer,
    private readonly log: Logger,
  ) {}

  get synced(): boolean {
    return this.syncedKinds === POLICY_KINDS.length;
  }

  async run(signal: AbortSignal): Promise<void> {
    await Promise.all(
      POLICY_KINDS.map((kind) =>
        this.objects
          .informer(
            kind,
            {
              onEvent: (ev) => {
                const ref: PolicyRef = {
                  kind,
                  namespace:
                    kind === 'CiliumClusterwideNetworkPolicy'
                      ? ''
                      : (ev.object.metadata.namespace ?? 'default'),
                  name: ev.object.metadata.name,
                };
                if (ev.type === 'deleted') this.enforcer.removePolicy(ref);
                else this.enforcer.upsertPolicy(ev.object, ref);
              },
              onSynced: () => {
                this.syncedKinds++;
              },
            },
            { log: this.log },
          )
          .run(signal),
      ),
    );
  }
}
