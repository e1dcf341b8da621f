import type { ObjectSource } from './source.js';
import type { Logger } from 'pino';
import { runInformers } from './informer.js';
import { SERVICE_NAME_LABEL, type EndpointSlice, type Service } from './objects.js';
import type { ObjectEvent } from './types.js';

/**
 * The local cluster's Services joined with their EndpointSlices by the
 * `kubernetes.io/service-name` label: what the apiserver's service export, the agent's
 * service table and DNS all read. It lives with the registry because it depends on
 * nothing but the registry's kinds and informers.
 */

/** One Service whose object or slices changed. */
export interface ServiceJoinEvent {
  readonly namespace: string;
  readonly name: string;
  /** `undefined` once deleted, or while only slices naming it have been seen. */
  readonly service: Service | undefined;
  /**
   * The slices labelled with this Service, by slice name: consumers that merge them must
   * not depend on the order events arrived in.
   */
  readonly slices: readonly EndpointSlice[];
}

/**
 * The join's state without the informers: feed it events, learn which Services changed.
 * A slice's label may name a Service not yet seen, and may change: the slice then leaves
 * its former Service.
 */
export class ServiceSliceIndex {
  /** `<ns>/<name>` → Service. */
  private readonly services = new Map<string, Service>();
  /** `<ns>/<service>` → slice name → slice (a Service's slices share its namespace). */
  private readonly slicesByService = new Map<string, Map<string, EndpointSlice>>();
  /** `<ns>/<slice>` → `<ns>/<service>`: a delete event's object may carry a stale label. */
  private readonly sliceOwners = new Map<string, string>();

  /** Applies a Service event; returns the Service's new state. */
  onService(ev: ObjectEvent<Service>): ServiceJoinEvent {
    const { namespace, name } = ev.object.metadata;
    const id = idOf(namespace, name);
    if (ev.type === 'deleted') this.services.delete(id);
    else this.services.set(id, ev.object);
    return this.state(id);
  }

  /** Applies a slice event; returns the state of each Service it left or joined. */
  onSlice(ev: ObjectEvent<EndpointSlice>): ServiceJoinEvent[] {
    const sliceName = ev.object.metadata.name;
    const sliceId = idOf(ev.object.metadata.namespace, sliceName);
    const before = this.sliceOwners.get(sliceId);
    const after = ev.type === 'deleted' ? undefined : ownerOf(ev.object);
    if (before !== undefined) {
      const slices = this.slicesByService.get(before);
      slices?.delete(sliceName);
      if (slices?.size === 0) this.slicesByService.delete(before);
      this.sliceOwners.delete(sliceId);
    }
    if (after !== undefined) {
      let slices = this.slicesByService.get(after);
      if (slices === undefined) {
        slices = new Map();
        this.slicesByService.set(after, slices);
      }
      slices.set(sliceName, ev.object);
      this.sliceOwners.set(sliceId, after);
    }
    const changed: ServiceJoinEvent[] = [];
    if (before !== undefined && before !== after) changed.push(this.state(before));
    if (after !== undefined) changed.push(this.state(after));
    return changed;
  }

  private state(id: string): ServiceJoinEvent {
    const slash = id.indexOf('/');
    const slices = [...(this.slicesByService.get(id)?.values() ?? [])];
    slices.sort((a, b) => compare(a.metadata.name, b.metadata.name));
    return {
      namespace: id.slice(0, slash),
      name: id.slice(slash + 1),
      service: this.services.get(id),
      slices,
    };
  }
}

export interface ServiceJoinHandlers {
  onEvent(event: ServiceJoinEvent): void;
  /** Called once both informers delivered their initial lists. */
  onSynced?(): void;
}

export interface ServiceJoin {
  /** Runs the Service and EndpointSlice informers until `signal` aborts. */
  run(signal: AbortSignal): Promise<void>;
  /** Both informers delivered their initial lists. */
  readonly hasSynced: boolean;
}

/**
 * Watches the Services and EndpointSlices of one registry and reports every Service whose
 * object or slices changed.
 */
export function joinServices(
  objects: ObjectSource,
  handlers: ServiceJoinHandlers,
  opts: { readonly log?: Logger | undefined } = {},
): ServiceJoin {
  const index = new ServiceSliceIndex();
  let waiting = 2;
  const synced = (): void => {
    waiting--;
    if (waiting === 0) handlers.onSynced?.();
  };
  const serviceInformer = objects.informer(
    'Service',
    {
      onEvent: (ev) => {
        handlers.onEvent(index.onService(ev));
      },
      onSynced: synced,
    },
    { log: opts.log },
  );
  const sliceInformer = objects.informer(
    'EndpointSlice',
    {
      onEvent: (ev) => {
        for (const change of index.onSlice(ev)) handlers.onEvent(change);
      },
      onSynced: synced,
    },
    { log: opts.log },
  );
  return {
    get hasSynced() {
      return serviceInformer.hasSynced && sliceInformer.hasSynced;
    },
    run(signal: AbortSignal): Promise<void> {
      return runInformers([serviceInformer, sliceInformer], signal);
    },
  };
}

function idOf(namespace: string | undefined, name: string): string {
  return `${namespace ?? 'default'}/${name}`;
}

/**
 * Slices holding another cluster's endpoints (the MCS-API operator writes them for DNS of
 * headless imports). Like Cilium's agent and apiserver, the join leaves them out: they
 * are not this cluster's backends, and exporting them would echo them back to their
 * source.
 */
const MESH_MANAGED_BY = 'endpointslice-mesh-controller.cilium.io';

/** `<namespace>/<service>` of the Service a slice belongs to; `undefined` if unlabelled. */
function ownerOf(slice: EndpointSlice): string | undefined {
  if (slice.metadata.labels?.['endpointslice.kubernetes.io/managed-by'] === MESH_MANAGED_BY) {
    return undefined;
  }
  const name = slice.metadata.labels?.[SERVICE_NAME_LABEL];
  return name === undefined || name === '' ? undefined : idOf(slice.metadata.namespace, name);
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
