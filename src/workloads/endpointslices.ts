import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { sameJson } from '../registry/codec.js';
import {
  SERVICE_NAME_LABEL,
  type Endpoint,
  type EndpointPort,
  type EndpointSlice,
  type Pod,
  type Service,
  type ServicePort,
} from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type { Informer, ObjectEvent } from '../registry/types.js';
import { Controller, keyOf, splitKey } from './controller.js';
import { isPodReady, isPodTerminal } from './pod-status.js';

/**
 * The endpoint-slice controller: every Service with a selector gets EndpointSlices
 * listing the pods it selects, with each service port's target port resolved against
 * the pods. Pods that resolve the ports alike share a slice (the usual case: one slice);
 * a named target port meaning different numbers in different pods, as during a rollout,
 * needs one slice per variant. Slices without the managed-by label belong to someone
 * else and are never touched.
 */

export const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';
export const MANAGED_BY = 'endpointslice-controller.k8s.io';

const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Five characters derived from `input`: slice names stay put across restarts. */
function suffix(input: string): string {
  const digest = createHash('sha256').update(input).digest();
  let out = '';
  for (let i = 0; i < 5; i++) {
    out += SUFFIX_ALPHABET.charAt((digest[i] ?? 0) % SUFFIX_ALPHABET.length);
  }
  return out;
}

export function selects(selector: Readonly<Record<string, string>>, pod: Pod): boolean {
  const labels = pod.metadata.labels ?? {};
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

/** The selector a Service's slices follow; `undefined` when it has none to manage. */
function selectorOf(svc: Service): Readonly<Record<string, string>> | undefined {
  const sel = svc.spec.selector;
  if (svc.spec.type === 'ExternalName' || sel === undefined || Object.keys(sel).length === 0) {
    return undefined;
  }
  return sel;
}

/** The pod port a service port reaches, or `undefined` when a named one is not in the pod. */
export function resolveTargetPort(port: ServicePort, pod: Pod): number | undefined {
  const target = port.targetPort ?? port.port;
  if (typeof target === 'number') return target;
  for (const c of pod.spec.containers) {
    for (const p of c.ports ?? []) {
      if (p.name === target && p.protocol === port.protocol) return p.containerPort;
    }
  }
  return undefined;
}

export function isManaged(slice: EndpointSlice): boolean {
  return slice.metadata.labels?.[MANAGED_BY_LABEL] === MANAGED_BY;
}

/** The slices a Service should have, given every pod of the cluster. */
export function desiredSlices(svc: Service, pods: readonly Pod[]): EndpointSlice[] {
  const selector = selectorOf(svc);
  if (selector === undefined) return [];
  const namespace = svc.metadata.namespace ?? 'default';
  const groups = new Map<string, { ports: EndpointPort[]; endpoints: Endpoint[] }>();
  const selected = pods
    .filter(
      (p) =>
        (p.metadata.namespace ?? 'default') === namespace &&
        selects(selector, p) &&
        (p.status?.podIP ?? '') !== '' &&
        !isPodTerminal(p),
    )
    .sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
  for (const pod of selected) {
    const ports: EndpointPort[] = svc.spec.ports.flatMap((p) => {
      const port = resolveTargetPort(p, pod);
      return port === undefined ? [] : [{ name: p.name ?? '', port, protocol: p.protocol }];
    });
    // A pod none of whose ports resolve cannot be reached through the Service.
    if (svc.spec.ports.length > 0 && ports.length === 0) continue;
    const signature = JSON.stringify(ports);
    let group = groups.get(signature);
    if (group === undefined) {
      group = { ports, endpoints: [] };
      groups.set(signature, group);
    }
    const ready = isPodReady(pod);
    group.endpoints.push({
      addresses: [pod.status?.podIP ?? ''],
      conditions: { ready, serving: ready, terminating: false },
      ...(pod.spec.nodeName === undefined ? {} : { nodeName: pod.spec.nodeName }),
      targetRef: {
        kind: 'Pod',
        namespace,
        name: pod.metadata.name,
        uid: pod.metadata.uid ?? '',
      },
    });
  }
  // The biggest group keeps the Service's main slice name, so that the common case updates
  // one slice in place.
  const ordered = [...groups.entries()].sort(
    ([sa, a], [sb, b]) => b.endpoints.length - a.endpoints.length || sa.localeCompare(sb),
  );
  if (ordered.length === 0) ordered.push(['', { ports: [], endpoints: [] }]);
  const id = `${namespace}/${svc.metadata.name}`;
  return ordered.map(([signature, g], i) => ({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${svc.metadata.name}-${suffix(i === 0 ? id : `${id}/${signature}`)}`,
      namespace,
      labels: { [SERVICE_NAME_LABEL]: svc.metadata.name, [MANAGED_BY_LABEL]: MANAGED_BY },
      ownerReferences: [
        {
          apiVersion: 'v1',
          kind: 'Service',
          name: svc.metadata.name,
          uid: svc.metadata.uid ?? '',
          controller: true,
          blockOwnerDeletion: true,
        },
      ],
    },
    addressType: 'IPv4',
    endpoints: g.endpoints,
    ports: g.ports,
  }));
}

export interface EndpointSliceControllerOptions {
  readonly registry: Registry;
  readonly services: Informer<Service>;
  readonly pods: Informer<Pod>;
  readonly slices: Informer<EndpointSlice>;
  readonly log: Logger;
}

export class EndpointSliceController {
  readonly controller: Controller;
  private readonly log: Logger;
  /** Slices whose name we want but someone else owns (warned once). */
  private readonly foreign = new Set<string>();

  constructor(private readonly o: EndpointSliceControllerOptions) {
    this.log = o.log.child({ controller: 'endpointslices' });
    this.controller = new Controller('endpointslices', (key) => this.reconcile(key), this.log);
  }

  onService(ev: ObjectEvent<Service>): void {
    this.controller.enqueue(keyOf(ev.object.metadata.namespace, ev.object.metadata.name));
  }

  /** A pod matters to the Services selecting it, before and after the change. */
  onPod(ev: ObjectEvent<Pod>): void {
    const pods = [ev.object, ...(ev.type === 'modified' && ev.old !== undefined ? [ev.old] : [])];
    const namespace = ev.object.metadata.namespace ?? 'default';
    for (const svc of this.o.services.list()) {
      if ((svc.metadata.namespace ?? 'default') !== namespace) continue;
      const selector = selectorOf(svc);
      if (selector !== undefined && pods.some((p) => selects(selector, p))) {
        this.controller.enqueue(keyOf(namespace, svc.metadata.name));
      }
    }
  }

  /** Managed slices changed or deleted by someone else are put back. */
  onSlice(ev: ObjectEvent<EndpointSlice>): void {
    const service = ev.object.metadata.labels?.[SERVICE_NAME_LABEL];
    if (isManaged(ev.object) && service !== undefined && service !== '') {
      this.controller.enqueue(keyOf(ev.object.metadata.namespace, service));
    }
  }

  private async reconcile(key: string): Promise<void> {
    const { namespace, name } = splitKey(key);
    const svc = this.o.services.get(namespace, name);
    const want = svc === undefined ? [] : desiredSlices(svc, this.o.pods.list());
    for (const slice of want) await this.write(slice);
    const keep = new Set(want.map((s) => s.metadata.name));
    const existing = this.o.slices
      .list()
      .filter(
        (s) =>
          (s.metadata.namespace ?? 'default') === namespace &&
          s.metadata.labels?.[SERVICE_NAME_LABEL] === name &&
          isManaged(s),
      );
    for (const s of existing) {
      if (!keep.has(s.metadata.name)) {
        await this.o.registry.delete('EndpointSlice', namespace, s.metadata.name);
      }
    }
  }

  private async write(want: EndpointSlice): Promise<void> {
    const { namespace, name } = want.metadata;
    const cached = this.o.slices.get(namespace, name);
    if (cached !== undefined && isManaged(cached) && sameSlice(cached, want)) return;
    const id = keyOf(namespace, name);
    const stored = await this.o.registry.patch('EndpointSlice', namespace, name, (cur) => {
      if (!isManaged(cur)) return undefined;
      if (sameSlice(cur, want)) return undefined;
      return {
        ...cur,
        metadata: {
          ...cur.metadata,
          labels: { ...cur.metadata.labels, ...want.metadata.labels },
          ownerReferences: want.metadata.ownerReferences,
        },
        addressType: want.addressType,
        endpoints: want.endpoints,
        ports: want.ports,
      };
    });
    if (stored === undefined) {
      // ERR_CONFLICT when created meanwhile: the queue retries, then it patches.
      await this.o.registry.create(want);
      return;
    }
    if (!isManaged(stored)) {
      if (!this.foreign.has(id)) {
        this.foreign.add(id);
        this.log.warn(
          { slice: id },
          'EndpointSlice name taken by a slice this controller does not manage',
        );
      }
    } else {
      this.foreign.delete(id);
    }
  }
}

function sameSlice(a: EndpointSlice, b: EndpointSlice): boolean {
  return (
    a.addressType === b.addressType &&
    sameJson(a.endpoints, b.endpoints) &&
    sameJson(a.ports, b.ports) &&
    sameJson(a.metadata.ownerReferences, b.metadata.ownerReferences) &&
    Object.entries(b.metadata.labels ?? {}).every(([k, v]) => a.metadata.labels?.[k] === v)
  );
}
