import type { Logger } from 'pino';
import { globalServiceSettings, parseLabelsFromKVStore } from '../keyspace/index.js';
import { serviceToClusterService } from '../service/local-services.js';
import {
  ipcacheEntriesFromEndpoint,
  labelStringFromCiliumIdentity,
  nodeFromCiliumNode,
  type LocalCluster,
} from '../convert/cilium.js';
import { endpointFromCEP } from '../endpoint/table.js';
import { IPOwners } from '../ipcache/owners.js';
import { joinServices } from '../registry/service-join.js';
import type { ObjectSource } from '../registry/source.js';
import type { CiliumEndpoint, CiliumIdentity, CiliumNode, Informer } from '../registry/types.js';
import type { AgentViews } from './views.js';

/**
 * The agent's own cluster, read from its registry: CiliumNodes, CiliumIdentities
 * and CiliumEndpoints feed the same views as remote clusters, with local
 * precedence in the ipcache.
 */
export class LocalClusterWatcher {
  private readonly informers: Informer<CiliumNode | CiliumIdentity | CiliumEndpoint>[] = [];
  private syncedKinds = 0;

  constructor(
    private readonly objects: ObjectSource,
    private readonly cluster: LocalCluster & { readonly nodeName: string },
    private readonly views: AgentViews,
    private readonly log: Logger,
  ) {}

  get synced(): boolean {
    return this.syncedKinds === 4;
  }

  async run(signal: AbortSignal): Promise<void> {
    const onSynced = (): void => {
      this.syncedKinds++;
    };
    const nodes = this.objects.informer(
      'CiliumNode',
      {
        onEvent: (ev) => {
          if (ev.type === 'deleted') {
            this.views.nodes.delete(this.cluster.name, ev.object.metadata.name);
            return;
          }
          const node = nodeFromCiliumNode(ev.object, this.cluster);
          const self = ev.object.metadata.name === this.cluster.nodeName;
          this.views.nodes.upsert({ ...node, Source: self ? 'local' : 'custom-resource' });
        },
        onSynced,
      },
      { log: this.log },
    );
    const identities = this.objects.informer(
      'CiliumIdentity',
      {
        onEvent: (ev) => {
          const id = Number(ev.object.metadata.name);
          const labels =
            ev.type === 'deleted' ? undefined : labelStringFromCiliumIdentity(ev.object);
          if (labels === undefined) this.views.identities.delete(id);
          else this.views.identities.upsert(id, parseLabelsFromKVStore(labels), this.cluster.name);
        },
        onSynced,
      },
      { log: this.log },
    );
    const owners = new IPOwners();
    const endpoints = this.objects.informer(
      'CiliumEndpoint',
      {
        onEvent: (ev) => {
          const key = `${ev.object.metadata.namespace ?? 'default'}/${ev.object.metadata.name}`;
          const entries = ev.type === 'deleted' ? [] : ipcacheEntriesFromEndpoint(ev.object);
          const ep = ev.type === 'deleted' ? undefined : endpointFromCEP(ev.object);
          if (ep === undefined) {
            this.views.endpoints.delete(
              ev.object.metadata.namespace ?? 'default',
              ev.object.metadata.name,
            );
          } else {
            this.views.endpoints.upsert(ep);
          }
          for (const { ip, winner: e } of owners.update(key, entries)) {
            const cidr = `${ip}/${ip.includes(':') ? 128 : 32}`;
            if (e === undefined) {
              this.views.ipcache.delete('local', this.cluster.name, cidr);
              continue;
            }
            this.views.ipcache.upsert({
              source: 'local',
              cidr,
              identity: e.ID,
              hostIP: e.HostIP,
              encryptKey: e.Key,
              cluster: this.cluster.name,
              k8sNamespace: e.K8sNamespace,
              k8sPodName: e.K8sPodName,
            });
          }
        },
        onSynced,
      },
      { log: this.log },
    );
    const services = joinServices(
      this.objects,
      {
        onEvent: ({ namespace, name, service: svc, slices }) => {
          const cs =
            svc === undefined ? undefined : serviceToClusterService(svc, slices, this.cluster);
          if (svc === undefined || cs === undefined) {
            this.views.services.deleteLocal(namespace, name);
            return;
          }
          const settings = globalServiceSettings(svc.metadata.annotations);
          this.views.services.upsertLocal({
            service: cs,
            global: settings.global,
            affinity: settings.affinity,
            type: svc.spec.type,
          });
        },
        onSynced,
      },
      { log: this.log },
    );
    this.informers.push(nodes, identities, endpoints);
    await Promise.all([
      nodes.run(signal),
      identities.run(signal),
      endpoints.run(signal),
      services.run(signal),
    ]);
  }
}
